"""OTB (Wu, Lim, Yang, CVPR 2013; TPAMI 2015): the on-disk format, the toolkit's sequence table, and a
datamodule of whole sequences for benchmarking trackers.

Layout: ``<root>/<Seq>/img/%04d.jpg`` + ``groundtruth_rect.txt`` (``groundtruth_rect.1.txt`` / ``.2.txt``
for the two targets of Jogging and Skating2, ``.2.txt`` for Human4). Values are separated by commas, tabs
or spaces (mixed within the dataset). Boxes are kept as written (top-left corner and size in pixels).
The toolkit's own ``anno/`` folder (``anno/jogging-1.txt``, ``anno/Board.txt``...) also serves as ground
truth, so result files can be scored without the images.

The sequence table (``otb_sequences.csv``, written from the toolkit's ``configSeqs``, ``anno/att`` and
``initOmit``) holds each sequence's folder, frame range (David 300-770, BlurCar1 247-988, BlurCar3 3-359,
BlurCar4 18-397, Football1 / Freeman3 / Freeman4 / Diving cut short), digits (Board: 5), subsets
(otb2013: 51, otb100: 100, tb50: 50), the 11 attributes, the frames a tracker skips before its first
frame (Tiger1: 5, so OTB results hold 349 rows) and the fully occluded ranges of OTB-2013's initOmit.
"""

from __future__ import annotations

import csv
import difflib
import logging
import math
import os
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from datamodules.base import ZooDataModule
from datamodules.text import read_lines
from datamodules.video import FrameFolderReader
from zoo.errors import DatasetError, parse_error

log = logging.getLogger(__name__)

_SPLIT = re.compile(r"[,\s]+")
ATTRIBUTES = ("IV", "OPR", "SV", "OCC", "DEF", "MB", "FM", "IPR", "OV", "BC", "LR")
ATTRIBUTE_NAMES = {
    "IV": "illumination variation",
    "OPR": "out-of-plane rotation",
    "SV": "scale variation",
    "OCC": "occlusion",
    "DEF": "deformation",
    "MB": "motion blur",
    "FM": "fast motion",
    "IPR": "in-plane rotation",
    "OV": "out of view",
    "BC": "background clutters",
    "LR": "low resolution",
}
SUBSETS = ("otb2013", "otb100", "tb50")


def read_boxes(path: str | os.PathLike, with_lines: bool = False, *, ground_truth: bool = False) -> Any:
    """(N, 4) float boxes from an OTB ground-truth or result file; a bad line names ``file:line``.

    With ``with_lines`` also the line number of each row (blank lines are skipped). An infinite value is
    an error; so is NaN with ``ground_truth``, while in result files it is kept: the toolkits' mark of an
    invalid box, which ``zoo.metrics.otb.align`` treats as each convention says.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: box file not found")
    rows, numbers = [], []
    for line_no, line in enumerate(read_lines(path), 1):
        text = line.strip()
        if not text:
            continue
        fields = [f for f in _SPLIT.split(text) if f]
        if len(fields) != 4:
            raise parse_error(path, line_no, f"expected 4 values x,y,w,h, got {len(fields)}: {text[:60]!r}")
        try:
            row = [float(f) for f in fields]
        except ValueError:
            raise parse_error(path, line_no, f"not a number in {text[:60]!r}") from None
        if any(math.isinf(v) for v in row):
            raise parse_error(path, line_no, f"infinite value in {text[:60]!r}")
        if ground_truth and any(math.isnan(v) for v in row):
            raise parse_error(path, line_no, f"NaN in ground truth {text[:60]!r} (write an unknown box as 0,0,0,0)")
        rows.append(row)
        numbers.append(line_no)
    boxes = np.asarray(rows, dtype=np.float64).reshape(-1, 4)
    return (boxes, numbers) if with_lines else boxes


def format_boxes(boxes: np.ndarray, delimiter: str = ",") -> str:
    """(N, 4) boxes one per line, integers where they are whole."""
    lines = []
    for box in np.asarray(boxes, dtype=np.float64):
        box = np.nan_to_num(box, nan=0.0)
        lines.append(delimiter.join(str(int(v)) if float(v).is_integer() else f"{v:.3f}" for v in box))
    return "\n".join(lines) + "\n"


def write_boxes(path: str | os.PathLike, boxes: np.ndarray, delimiter: str = ",") -> None:
    """Write (N, 4) boxes one per line, integers where they are whole."""
    Path(path).write_text(format_boxes(boxes, delimiter))


@dataclass
class OTBSequence:
    """One sequence: its frames and ground-truth boxes (one per frame)."""

    name: str
    frames: list[Path]
    boxes: np.ndarray

    def __len__(self) -> int:
        return len(self.frames)


def load_sequence(folder: str | os.PathLike) -> OTBSequence:
    """Read ``<Seq>/img`` and ``<Seq>/groundtruth_rect.txt``."""
    folder = Path(folder)
    img = folder / "img"
    if not img.is_dir():
        raise DatasetError(f"{folder}: not an OTB sequence (no img/ folder)")
    gt = folder / "groundtruth_rect.txt"
    boxes = read_boxes(gt, ground_truth=True)
    frames = FrameFolderReader(img).files
    if len(boxes) > len(frames):
        raise DatasetError(f"{gt}: {len(boxes)} boxes for {len(frames)} frames in {img}")
    return OTBSequence(folder.name, frames, boxes)


def list_sequences(root: str | os.PathLike) -> list[str]:
    """Names of the sequence folders under ``root`` (those holding ``img/``)."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: OTB root folder not found (expected <root>/<Seq>/img/0001.jpg)")
    return sorted(p.name for p in root.iterdir() if (p / "img").is_dir())


@dataclass(frozen=True)
class SequenceInfo:
    """One row of the toolkit's sequence table."""

    name: str
    folder: str
    gt_file: str
    anno_name: str
    start: int
    end: int
    digits: int
    ext: str
    init_omit_frames: int
    subsets: tuple[str, ...]
    attributes: tuple[str, ...]
    occluded_frames: tuple[tuple[int, int], ...]

    def __len__(self) -> int:
        return self.end - self.start + 1

    def frame_paths(self, root: str | os.PathLike) -> list[Path]:
        img = Path(root) / self.folder / "img"
        return [img / f"{i:0{self.digits}d}.{self.ext}" for i in range(self.start, self.end + 1)]


def short_list(names: list[str], most: int = 8) -> str:
    """``a, b, c and 12 more``."""
    head = ", ".join(names[:most])
    return head + (f" and {len(names) - most} more" if len(names) > most else "")


def normalize_name(name: str) -> str:
    """``Jogging_1``, ``jogging.1``, ``Jogging-1`` -> ``jogging-1`` (result files use all of these)."""
    return re.sub(r"[_.]", "-", name.strip().lower())


@cache
def sequence_table() -> dict[str, SequenceInfo]:
    """The built-in table, by sequence name."""
    table = {}
    with open(Path(__file__).with_name("otb_sequences.csv"), newline="") as f:
        for row in csv.DictReader(f):
            omitted = tuple(tuple(int(v) for v in r.split("-")) for r in row["occluded_frames"].split(";") if r)
            table[row["name"]] = SequenceInfo(
                name=row["name"],
                folder=row["folder"],
                gt_file=row["gt_file"],
                anno_name=row["anno_name"],
                start=int(row["start"]),
                end=int(row["end"]),
                digits=int(row["digits"]),
                ext=row["ext"],
                init_omit_frames=int(row["init_omit_frames"]),
                subsets=tuple(row["subsets"].split()),
                attributes=tuple(row["attributes"].split()),
                occluded_frames=omitted,
            )
    return table


def name_aliases(info: SequenceInfo) -> set[str]:
    """Every normalised spelling of a sequence's name that result and annotation files use."""
    names = {normalize_name(info.name), normalize_name(info.anno_name)}
    if info.gt_file == "groundtruth_rect.2.txt" and info.folder == "Human4":
        names.add(normalize_name(info.folder))  # the only target of Human4
    return names


def lookup(name: str) -> SequenceInfo:
    """The table entry for a sequence name in any of its spellings; unknown names get suggestions."""
    key = normalize_name(name)
    for info in sequence_table().values():
        if key in name_aliases(info):
            return info
    close = difflib.get_close_matches(name, list(sequence_table()), n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise DatasetError(f"unknown OTB sequence {name!r}{hint}")


def folder_sequences(root: str | os.PathLike) -> list[SequenceInfo]:
    """Every ``<root>/<Seq>/img`` + ``groundtruth_rect.txt`` as a sequence of its own (all its frames): datasets
    in the OTB layout that are not OTB, such as ``zoo synth --format otb``. A folder named as an OTB sequence
    keeps that sequence's attributes; a folder with ``img/`` but no ground truth is left out with a warning."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: OTB root folder not found (expected <root>/<Seq>/img/0001.jpg)")
    infos = []
    lacking = sorted(p.name for p in root.iterdir()
                     if (p / "img").is_dir() and not (p / "groundtruth_rect.txt").is_file())
    if lacking:
        log.warning("%s: left out %d folders with img/ but no groundtruth_rect.txt: %s", root, len(lacking),
                    short_list(lacking))
    for folder in sorted(p for p in root.iterdir() if (p / "img").is_dir() and (p / "groundtruth_rect.txt").is_file()):
        files = FrameFolderReader(folder / "img").files
        if not files:
            raise DatasetError(f"{folder / 'img'}: no frames")
        first, last = files[0], files[-1]
        if not (first.stem.isdigit() and last.stem.isdigit()) or int(last.stem) - int(first.stem) + 1 != len(files):
            raise DatasetError(f"{folder / 'img'}: frames must be numbered without gaps (0001.jpg, 0002.jpg, ...)")
        known = sequence_table().get(folder.name)
        infos.append(SequenceInfo(
            name=folder.name, folder=folder.name, gt_file="groundtruth_rect.txt", anno_name=folder.name,
            start=int(first.stem), end=int(last.stem), digits=len(first.stem), ext=first.suffix[1:],
            init_omit_frames=0, subsets=("folders",), attributes=known.attributes if known else (),
            occluded_frames=(),
        ))
    return infos


def sequences(subset: str = "otb100", root: str | os.PathLike | None = None) -> list[SequenceInfo]:
    """The sequences of ``otb2013`` (51), ``otb100`` (100) or ``tb50`` (50), in table order; ``folders``:
    every sequence folder under ``root`` (see ``folder_sequences``)."""
    if subset == "folders":
        if root is None:
            raise DatasetError("subset 'folders' needs the dataset root")
        return folder_sequences(root)
    subset = subset.lower().replace("-", "")
    aliases = {"otb2015": "otb100", "tb100": "otb100", "otb13": "otb2013", "otb15": "otb100"}
    subset = aliases.get(subset, subset)
    if subset not in SUBSETS:
        raise DatasetError(f"unknown OTB subset {subset!r}; choose one of {', '.join(SUBSETS)}")
    return [s for s in sequence_table().values() if subset in s.subsets]


def find_file(folder: str | os.PathLike, info: SequenceInfo, suffix: str = ".txt") -> Path | None:
    """The file for ``info`` in ``folder`` under any spelling of its name (``jogging_1.txt``...)."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    wanted = name_aliases(info)
    for path in sorted(folder.iterdir()):
        if path.suffix == suffix and normalize_name(path.stem) in wanted:
            return path
    return None


def load_ground_truth(
    info: SequenceInfo, root: str | os.PathLike | None = None, anno_dir: str | os.PathLike | None = None
) -> np.ndarray:
    """Ground truth of one sequence from the dataset (``<root>/<folder>/<gt_file>``) or the toolkit's
    ``anno/`` folder; one row per frame of the table's range."""
    if anno_dir is not None:
        path = find_file(anno_dir, info)
        if path is None:
            raise DatasetError(f"{anno_dir}: no annotation file for {info.name} (expected {info.anno_name}.txt)")
    elif root is not None:
        path = Path(root) / info.folder / info.gt_file
    else:
        raise ValueError("give the dataset root or the toolkit's anno folder")
    boxes = read_boxes(path, ground_truth=True)
    if len(boxes) != len(info):
        raise DatasetError(f"{path}: {len(boxes)} boxes, the table has {len(info)} frames for {info.name}")
    return boxes


def present_sequences(
    root: str | os.PathLike, subset: str = "otb100", allow_missing: bool = False
) -> list[SequenceInfo]:
    """The subset's sequences found under ``root``; missing ones are an error listing them, or with
    ``allow_missing`` a warning and the subset that is present."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: OTB root folder not found (expected <root>/<Seq>/img/0001.jpg)")
    infos = sequences(subset, root)
    missing = [s.name for s in infos if not (root / s.folder / s.gt_file).is_file()]
    if missing and not allow_missing:
        raise DatasetError(f"{root}: {len(missing)} of {len(infos)} {subset} sequences missing: {', '.join(missing)}")
    if missing:
        log.warning(
            "%s: using the %d present %s sequences; missing: %s",
            root,
            len(infos) - len(missing),
            subset,
            short_list(missing),
        )
    return [s for s in infos if s.name not in missing]


def select_sequences(infos: list[SequenceInfo], names: list[str], root: str | os.PathLike,
                     subset: str, strict: bool = True) -> list[SequenceInfo]:
    """The sequences of ``infos`` that ``names`` (``--sequences``) name, in table order; with ``strict`` a name that
    is not among them is an error (with suggestions), never dropped in silence."""
    by_name = {info.name: info for info in infos}
    wanted = []
    for n in names:
        key = n if subset == "folders" else lookup(n).name
        if key not in by_name and not strict:
            continue
        if key not in by_name:
            close = difflib.get_close_matches(n, list(by_name), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise DatasetError(f"{root}: no sequence {n!r} of {subset} there (--sequences){hint}")
        wanted.append(key)
    return [info for info in infos if info.name in set(wanted)]


class OTBSequences(Dataset):
    """Whole sequences: ``{"name", "frames" (paths), "boxes" (T, 4), "init_omit"}``, one item each."""

    def __init__(
        self,
        root: str | os.PathLike,
        subset: str = "otb100",
        allow_missing: bool = False,
        names: list[str] | None = None,
        require_names: bool = True,
    ) -> None:
        self.root = Path(root)
        if names is None:
            self.infos = present_sequences(self.root, subset, allow_missing)
        elif not require_names:
            self.infos = select_sequences(present_sequences(self.root, subset, True), names, self.root, subset,
                                          strict=False)
        else:
            if not self.root.is_dir():
                raise DatasetError(f"{root}: OTB root folder not found (expected <root>/<Seq>/img/0001.jpg)")
            self.infos = select_sequences(sequences(subset, self.root), names, self.root, subset)
            absent = [s.name for s in self.infos if not (self.root / s.folder / s.gt_file).is_file()]
            if absent:
                raise DatasetError(f"{root}: --sequences names {', '.join(absent)}, which are not there "
                                   f"(no {self.infos[0].gt_file if len(absent) == 1 else 'ground-truth files'})")

    def __len__(self) -> int:
        return len(self.infos)

    def ground_truth(self) -> dict[str, np.ndarray]:
        """Every listed sequence's ground truth, read (and checked) once, before any tracking starts."""
        if getattr(self, "_ground_truth", None) is None:
            self._ground_truth = {info.name: load_ground_truth(info, root=self.root) for info in self.infos}
            for info in self.infos:
                first = info.frame_paths(self.root)[0]
                if not first.is_file():
                    raise DatasetError(f"{first}: first frame of {info.name} not found")
        return self._ground_truth

    def __getitem__(self, index: int) -> dict[str, Any]:
        info = self.infos[index]
        frames = info.frame_paths(self.root)
        return {
            "name": info.name,
            "frames": [str(p) for p in frames],
            "boxes": torch.from_numpy(self.ground_truth()[info.name]),
            "init_omit": info.init_omit_frames,
        }


def collate_sequences(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Sequences differ in length: a batch is a plain list."""
    return items


class OTBDataModule(ZooDataModule):
    """OTB sequences for the test loop; ``batch_size`` sequences advance in lockstep."""

    def __init__(
        self,
        root: str,
        subset: str = "otb100",
        allow_missing: bool = False,
        names: list[str] | None = None,
        batch_size: int = 1,
        num_workers: int = 0,
    ) -> None:
        super().__init__(batch_size=batch_size, num_workers=num_workers)
        self.save_hyperparameters()
        self.root, self.subset, self.allow_missing, self.names = root, subset, allow_missing, names

    def setup(self, stage: str | None = None) -> None:
        if getattr(self, "test_set", None) is not None:  # listed and checked once
            return
        self.test_set = OTBSequences(self.root, self.subset, self.allow_missing, self.names)

    def test_dataloader(self):  # noqa: ANN201
        """Under DDP each sequence goes to one rank only (no padding by repeated sequences)."""
        from pytorch_lightning.overrides.distributed import UnrepeatedDistributedSampler
        from torch.utils.data import DataLoader

        trainer = self.trainer
        sampler = None
        if trainer is not None and trainer.world_size > 1:
            sampler = UnrepeatedDistributedSampler(self.test_set, num_replicas=trainer.world_size,
                                                   rank=trainer.global_rank, shuffle=False)
        return DataLoader(
            self.test_set,
            batch_size=self.batch_size,
            shuffle=False,
            sampler=sampler,
            num_workers=self.num_workers,
            collate_fn=collate_sequences,
        )
