"""UCF101 on-disk format and a clip datamodule.

Videos: ``<root>/<Class>/v_<Class>_gXX_cYY.avi``. Splits: ``ucfTrainTestlist/classInd.txt``
(``1 ApplyEyeMakeup``), ``trainlist0{1,2,3}.txt`` (``Class/v_..avi 1``, labels 1-based) and
``testlist0{1,2,3}.txt`` (paths only). The official files have CRLF line ends, and folder
``HandstandPushups`` holds files ``v_HandStandPushups_*``: labels come from the folder, never the
file name.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from datamodules.base import SkippingDataset, ZooDataModule
from datamodules.text import read_lines
from datamodules.video import open_video
from zoo.errors import DatasetError, parse_error

SPLIT_DIR = "ucfTrainTestlist"


def read_class_index(path: str | os.PathLike) -> list[str]:
    """Class names in label order (label 0 is the line numbered 1)."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: classInd.txt not found")
    names: dict[int, str] = {}
    for line_no, line in enumerate(read_lines(path), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2 or not fields[0].isdecimal():
            raise parse_error(path, line_no, f"expected '<number> <ClassName>', got {line.strip()[:60]!r}")
        names[int(fields[0])] = fields[1]
    if sorted(names) != list(range(1, len(names) + 1)):
        raise DatasetError(f"{path}: class numbers must run 1..{len(names)}")
    return [names[i] for i in range(1, len(names) + 1)]


def read_split(split_dir: str | os.PathLike, split: int = 1, train: bool = True) -> list[tuple[str, int]]:
    """``[(relative_path, label)]`` of one official split; labels are 0-based class indices."""
    split_dir = Path(split_dir)
    classes = read_class_index(split_dir / "classInd.txt")
    by_name = {c.lower(): i for i, c in enumerate(classes)}
    path = split_dir / f"{'train' if train else 'test'}list{split:02d}.txt"
    if not path.is_file():
        raise DatasetError(f"{path}: split file not found")
    items = []
    for line_no, line in enumerate(read_lines(path), 1):
        fields = line.split()
        if not fields:
            continue
        rel = fields[0]
        folder = rel.split("/", 1)[0]
        if "/" not in rel or folder.lower() not in by_name:
            raise parse_error(path, line_no, f"{rel!r} is not <Class>/<file> with a class of classInd.txt")
        label = by_name[folder.lower()]
        if len(fields) > 1:
            if not fields[1].isdecimal() or int(fields[1]) - 1 != label:
                raise parse_error(path, line_no, f"label {fields[1]} does not match folder {folder}")
        items.append((rel, label))
    return items


def clip_indices(
    num_frames: int, clip_len: int, stride: int, rng: np.random.Generator | None
) -> np.ndarray:
    """``clip_len`` frame indices ``stride`` apart: a random start (train) or the centred one (eval)."""
    span = (clip_len - 1) * stride + 1
    slack = max(num_frames - span, 0)
    start = int(rng.integers(slack + 1)) if rng is not None else slack // 2
    return np.minimum(start + np.arange(clip_len) * stride, max(num_frames - 1, 0))


class UCF101Clips(SkippingDataset):
    """Clips of ``clip_len`` frames from one split, as ``{"video": uint8 (T, 3, H, W), "label": int}``."""

    def __init__(
        self,
        root: str | os.PathLike,
        split: int = 1,
        train: bool = True,
        clip_len: int = 8,
        stride: int = 2,
        size: tuple[int, int] = (112, 112),
        temporal_jitter: bool = True,
        split_dir: str | os.PathLike | None = None,
        backend: str = "decord",
        on_error: str = "raise",
    ) -> None:
        super().__init__(on_error)
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetError(f"{self.root}: UCF101 root folder not found (expected <root>/<Class>/v_*.avi)")
        self.split_dir = Path(split_dir) if split_dir else self.root / SPLIT_DIR
        self.classes = read_class_index(self.split_dir / "classInd.txt")
        self.items = read_split(self.split_dir, split, train)
        self.clip_len, self.stride, self.size = clip_len, stride, tuple(size)
        self.jitter = temporal_jitter and train
        self.backend = backend

    def __len__(self) -> int:
        return len(self.items)

    def load(self, index: int) -> dict[str, torch.Tensor]:
        rel, label = self.items[index]
        with open_video(self.root / rel, backend=self.backend, size=self.size) as video:
            # seeded from torch, so seed_everything (and DataLoader worker seeding) fixes the clips
            rng = np.random.default_rng(int(torch.randint(2**31, ()))) if self.jitter else None
            frames = video.get_frames(clip_indices(len(video), self.clip_len, self.stride, rng))
        return {"video": torch.from_numpy(frames).permute(0, 3, 1, 2).contiguous(), "label": label}


class UCF101DataModule(ZooDataModule):
    """UCF101 (or a synthetic dataset in its layout): train list for fit, test list for val and test."""

    def __init__(
        self,
        root: str,
        split: int = 1,
        clip_len: int = 8,
        stride: int = 2,
        size: tuple[int, int] = (112, 112),
        temporal_jitter: bool = True,
        split_dir: str | None = None,
        backend: str = "decord",
        on_error: str = "raise",
        batch_size: int = 8,
        num_workers: int = 2,
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size=batch_size, num_workers=num_workers, seed=seed)
        self.save_hyperparameters()
        self.kwargs = dict(
            root=root, split=split, clip_len=clip_len, stride=stride, size=size, split_dir=split_dir,
            backend=backend, on_error=on_error,
        )
        self.temporal_jitter = temporal_jitter

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def class_names(self) -> list[str]:
        """Class names in label order (classInd.txt); a classifier records them when fitting starts."""
        split_dir = Path(self.kwargs["split_dir"] or Path(self.kwargs["root"]) / SPLIT_DIR)
        return read_class_index(split_dir / "classInd.txt")

    @property
    def clip_sampling(self) -> dict:
        """The settings a classifier needs to cut clips as this datamodule does (recorded in its checkpoint)."""
        return {"size": list(self.kwargs["size"]), "stride": int(self.kwargs["stride"])}

    def setup(self, stage: str | None = None) -> None:
        if stage in (None, "fit"):
            self.train_set = UCF101Clips(train=True, temporal_jitter=self.temporal_jitter, **self.kwargs)
        self.test_set = UCF101Clips(train=False, temporal_jitter=False, **self.kwargs)

    def train_dataloader(self):  # noqa: ANN201
        return self._loader(self.train_set, train=True)

    def val_dataloader(self):  # noqa: ANN201
        return self._loader(self.test_set, train=False)

    def test_dataloader(self):  # noqa: ANN201
        return self._loader(self.test_set, train=False)
