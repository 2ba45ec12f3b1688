"""RGB frames and optical-flow fields of UCF101 / HMDB51 for the two-stream ConvNets (Simonyan & Zisserman 2014).

A sample is a set of time points of one video: one random point in training, ``test_frames`` (25) with equal
spacing in evaluation (Sec. 5). At point t it holds the frame t (spatial stream) and the L flow fields of the pairs
t -> t+1 ... t+L-1 -> t+L (temporal stream, Sec. 3.1), so the last point is at frame n - 1 - L. Items:
``{"frames": uint8 (K, 3, H, W), "flow": float16 (K, L, 2, H, W) pixels (x, y), "label"}`` at ``size``; the model
crops, flips, stacks and subtracts the mean flow.

Flow comes from the JPEGs of ``zoo prepare flow`` (``flow_folder/<Class>/<video>/<frame>.jpg``, the n-th image of a
folder = the flow from frame n to n+1, decoded with the bound recorded in the folder's ``flow.json``, fields resized
to ``size`` with their vectors scaled), or, with no ``flow_folder``, computed on the fly from the decoded frames at
``size``: here on the CPU (OpenCV DIS, Farneback or TV-L1), or, with ``flow_method="tvl1_torch"``, by the model on
its own device (the GPU): then the items hold ``"flow_pairs"``, uint8 grey (K, L, 2, H, W), the two frames of each
field, instead of ``"flow"``, and ``zoo.nn.tvl1`` (OpenCV's TV-L1 in PyTorch, batched) turns them into fields. The
paper's Brox et al. flow is not in OpenCV (its JPEGs, as the paper stores flow, can be read).
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader

from datamodules.action import SplitClasses, open_item, split_videos
from datamodules.base import SkippingDataset, ZooDataModule
from datamodules.flow_images import (
    FLOW_BOUND,
    SETTINGS_FILE,
    check_method,
    compute_flow,
    frame_files,
    image_to_flow,
    read_settings,
)
from datamodules.video import read_rgb
from zoo.errors import DatasetError, VideoReadError

MODALITIES = ("rgb", "flow", "rgb+flow")
DEVICE_METHOD = "tvl1_torch"  # flow the model computes on its own device from the grey frame pairs


def time_points(num_frames: int, flow_length: int, count: int, rng: np.random.Generator | None) -> np.ndarray:
    """Frame indices of the samples: one drawn from ``rng`` (training) or ``count`` with equal spacing (evaluation,
    ends included), each with room for ``flow_length`` flow fields after it (0 when the video is shorter)."""
    last = max(num_frames - 1 - flow_length, 0)
    if rng is not None:
        return np.array([int(rng.integers(last + 1))])
    return np.rint(np.linspace(0, last, count)).astype(np.int64)


def resize_flow(field: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """An H x W x 2 flow field resized to ``size`` (H', W'), its x scaled by W'/W and y by H'/H."""
    h, w = field.shape[:2]
    if (h, w) == tuple(size):
        return field
    out = cv2.resize(field, (int(size[1]), int(size[0])), interpolation=cv2.INTER_LINEAR)
    return out * np.array([size[1] / w, size[0] / h], np.float32)


def folder_bound(flow_folder: str | os.PathLike) -> float:
    """The bound the flow JPEGs of ``flow_folder`` were written with (``flow.json`` of ``zoo prepare flow``; the
    zoo's default 8 pixels when the folder has none)."""
    settings = read_settings(flow_folder)
    if settings is None:
        return FLOW_BOUND
    try:
        return float(settings["bound"])
    except (KeyError, TypeError, ValueError):
        raise DatasetError(f"{Path(flow_folder) / SETTINGS_FILE}: no numeric 'bound' in the flow settings") from None


class TwoStreamVideos(SkippingDataset):
    """The videos of one split of UCF101 or HMDB51 as two-stream samples (see the module's docstring)."""

    skippable = (VideoReadError,)

    def __init__(
        self,
        dataset: str,
        root: str | os.PathLike,
        split: int = 1,
        train: bool = True,
        modality: str = "rgb+flow",
        flow_length: int = 10,
        test_frames: int = 25,
        size: tuple[int, int] = (256, 340),
        flow_folder: str | os.PathLike | None = None,
        flow_method: str = "dis",
        dis_preset: str = "fast",
        split_dir: str | os.PathLike | None = None,
        backend: str = "decord",
        frame_store: str | os.PathLike | None = None,
        on_error: str = "skip",
        cache: bool = False,
    ) -> None:
        super().__init__(on_error)
        if modality not in MODALITIES:
            raise ValueError(f"modality must be one of {', '.join(MODALITIES)}, not {modality!r}")
        if flow_length < 1 or test_frames < 1:
            raise ValueError(f"flow_length and test_frames must be at least 1, not {flow_length} and {test_frames}")
        check_method(flow_method, dis_preset)
        self.root = Path(root)
        self.classes, self.items, self.missing = split_videos(dataset, root, split, train, split_dir, frame_store)
        self.train, self.modality, self.flow_length, self.test_frames = train, modality, flow_length, test_frames
        self.size, self.backend, self.frame_store = tuple(size), backend, frame_store
        self.flow_folder = Path(flow_folder) if flow_folder else None
        if self.flow_folder is not None and not self.flow_folder.is_dir():
            raise DatasetError(f"{self.flow_folder}: flow folder not found (make it with zoo prepare flow)")
        self.bound = folder_bound(self.flow_folder) if self.flow_folder is not None else FLOW_BOUND
        self.flow_method, self.dis_preset = flow_method, dis_preset
        self.cache = cache
        self._store: dict[str, tuple[np.ndarray, dict[int, np.ndarray]]] = {}

    def __len__(self) -> int:
        return len(self.items)

    def _rng(self) -> np.random.Generator | None:
        # training: drawn from torch, so seed_everything and the seeded sampler fix it; evaluation: no draw
        return np.random.default_rng(int(torch.randint(2**31, ()))) if self.train else None

    def _flow_files(self, rel: str) -> tuple[Path, list[str]]:
        folder = self.flow_folder / Path(rel).with_suffix("")
        if not folder.is_dir():
            raise VideoReadError(f"{folder}: no flow images for {rel}")
        files = frame_files(folder)
        if not files:
            raise VideoReadError(f"{folder}: no flow images for {rel}")
        return folder, files

    def _cached(self, rel: str) -> tuple[np.ndarray | None, dict[int, np.ndarray]]:
        """With ``cache``: all decoded frames of ``rel`` and the flow fields computed so far (kept in this process);
        else ``(None, {})``."""
        if not self.cache:
            return None, {}
        if rel not in self._store:
            with open_item(self.root, rel, self.size, self.backend, self.frame_store) as video:
                self._store[rel] = (video.get_frames(np.arange(len(video))), {})
        return self._store[rel]

    def _points(self, n: int, rel: str, flow: bool) -> tuple[np.ndarray, np.ndarray]:
        """The time points of a video of ``n`` frames and the first frame of each of their flow pairs (K, L)."""
        points = time_points(n, self.flow_length, self.test_frames, self._rng())
        if not flow:
            return points, np.zeros((len(points), 0), np.int64)
        if n < 2:
            raise VideoReadError(f"{self.root / rel}: {n} frame, flow needs at least 2")
        return points, np.minimum(points[:, None] + np.arange(self.flow_length), n - 2)

    def load(self, index: int) -> dict[str, torch.Tensor | int]:
        rel, label = self.items[index]
        rgb, flow = self.modality != "flow", self.modality != "rgb"
        out: dict[str, torch.Tensor | int] = {"label": label}
        steps = np.arange(self.flow_length)
        if flow and self.flow_folder is not None:
            folder, files = self._flow_files(rel)
            with open_item(self.root, rel, self.size, self.backend, self.frame_store) as video:
                n = len(video) if rgb else len(files)
                points = time_points(n, self.flow_length, self.test_frames, self._rng())
                if rgb:
                    out["frames"] = _chw(video.get_frames(points))
            wanted = np.minimum(points[:, None] + steps, len(files) - 1)
            fields = {i: resize_flow(image_to_flow(read_rgb(folder / files[i]), self.bound), self.size)
                      for i in np.unique(wanted).tolist()}
        else:
            frames, known = self._cached(rel)
            if frames is None:
                with open_item(self.root, rel, self.size, self.backend, self.frame_store) as video:
                    points, wanted = self._points(len(video), rel, flow)
                    needed = np.unique(np.concatenate([points, wanted.ravel(), wanted.ravel() + 1]))
                    frames = dict(zip(needed.tolist(), video.get_frames(needed)))
            else:
                points, wanted = self._points(len(frames), rel, flow)
            if rgb:
                out["frames"] = _chw(np.stack([frames[int(t)] for t in points]))
            if flow and self.flow_method == DEVICE_METHOD:
                needed = np.unique(np.concatenate([wanted.ravel(), wanted.ravel() + 1])).tolist()
                grey = {i: cv2.cvtColor(frames[i], cv2.COLOR_RGB2GRAY) for i in needed}
                out["flow_pairs"] = torch.from_numpy(np.array([[(grey[i], grey[i + 1]) for i in row.tolist()]
                                                               for row in wanted]))
                return out
            for i in np.unique(wanted).tolist():
                if i not in known:
                    known[i] = compute_flow(frames[i], frames[i + 1], self.flow_method, self.dis_preset)
            fields = known
        if flow:
            stacks = np.stack([[fields[int(i)] for i in row] for row in wanted])  # (K, L, H, W, 2)
            out["flow"] = torch.from_numpy(np.ascontiguousarray(stacks.transpose(0, 1, 4, 2, 3))).half()
        return out


def flow_fields(frames: np.ndarray, method: str = "dis", dis_preset: str = "fast") -> np.ndarray:
    """The flow of each consecutive pair of ``(T, H, W, 3)`` uint8 frames: ``(T - 1, 2, H, W)`` float32 pixels
    (x, y)."""
    pairs = zip(frames[:-1], frames[1:])
    return np.stack([compute_flow(a, b, method, dis_preset).transpose(2, 0, 1) for a, b in pairs])


def _chw(frames: np.ndarray) -> torch.Tensor:
    """(K, H, W, 3) uint8 -> (K, 3, H, W)."""
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).contiguous()


class TwoStreamDataModule(SplitClasses, ZooDataModule):
    """Two-stream training on a split's training list, validation and test on its test list (``test_frames`` time
    points per video, ``test_batch_size`` videos a batch). ``modality``: what the model's streams read, ``rgb``
    (spatial), ``flow`` (temporal) or ``rgb+flow``; ``flow_folder``: the flow JPEGs of ``zoo prepare flow``, else
    flow is computed on the fly with ``flow_method`` (``tvl1_torch``: by the model on its device); ``cache``: each
    loader process keeps the decoded frames and the flow it computed in memory (small datasets, such as the
    synthetic ones). ``size``: frames and flow are resized to it (the paper rescales frames to a smallest side of 256
    and crops 224)."""

    def __init__(
        self,
        root: str,
        dataset: str = "ucf101",
        split: int = 1,
        modality: str = "rgb+flow",
        flow_length: int = 10,
        test_frames: int = 25,
        size: tuple[int, int] = (256, 340),
        flow_folder: str | None = None,
        flow_method: str = "dis",
        dis_preset: str = "fast",
        split_dir: str | None = None,
        backend: str = "decord",
        frame_store: str | None = None,
        on_error: str = "skip",
        cache: bool = False,
        batch_size: int = 256,
        test_batch_size: int = 2,
        num_workers: int = 8,
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size=batch_size, num_workers=num_workers, seed=seed)
        self.save_hyperparameters()
        if split not in (1, 2, 3):
            raise ValueError(f"split must be 1, 2 or 3, not {split}")

    @property
    def clip_sampling(self) -> dict:
        """The settings a classifier needs to cut clips as this datamodule does (recorded in its checkpoint): the
        frame size and how flow is computed."""
        hp = self.hparams
        return {"size": list(hp.size), "flow_method": hp.flow_method, "dis_preset": hp.dis_preset}

    def _dataset(self, train: bool) -> TwoStreamVideos:
        hp = self.hparams
        return TwoStreamVideos(
            hp.dataset, hp.root, hp.split, train, hp.modality, hp.flow_length, hp.test_frames, tuple(hp.size),
            hp.flow_folder, hp.flow_method, hp.dis_preset, hp.split_dir, hp.backend, hp.frame_store, hp.on_error,
            hp.cache,
        )

    def setup(self, stage: str | None = None) -> None:
        if stage in (None, "fit"):
            self.train_set = self._dataset(train=True)
        self.val_set = self._dataset(train=False)

    def _eval_loader(self) -> DataLoader:
        return DataLoader(self.val_set, batch_size=self.hparams.test_batch_size, shuffle=False,
                          num_workers=self.num_workers, persistent_workers=self.num_workers > 0,
                          pin_memory=self.pin_memory and torch.cuda.is_available())

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader()

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader()
