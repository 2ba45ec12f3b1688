"""Evaluation views of a whole video for action recognition: K clips spread over the video, each cut into one,
three or ten crops, as the benchmark and ``predict_video`` score them.

Clips (``ClipSpec``): ``strided`` clips are windows of ``frames`` frames ``stride`` apart, K of them evenly spaced
from the first possible start to the last (K = 1: the centred window, as the datamodules' evaluation clip);
``random`` and ``constrained`` clips are O3N's elements (``datamodules.odd_one_out.element_indices``) drawn from
a generator seeded by the video's relative path, so a video gets the same clips in any order, process or rank.

Crops (``CROPS``): frames are decoded at ``resize_ratio`` times the model's input size and cut to that size:
``centre`` (the middle), ``3`` (start, middle and end of the longer side, as SlowFast's 3-crop testing) or ``10``
(four corners and the centre, and their horizontal flips, as C3D's and TSN's 10-crop testing). Choice: with the
centre crop the default ratio is 1 (the whole frame, as the zoo's classifiers are trained); with 3 and 10 crops
it is 256 / 224, TSN's ratio.
"""

from __future__ import annotations

import os
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from datamodules.action import open_item
from datamodules.video import VideoReader
from zoo.errors import VideoReadError

CROPS = ("centre", "3", "10")
MULTI_CROP_RATIO = 256 / 224
STRATEGIES = ("strided", "random", "constrained")


@dataclass(frozen=True)
class ClipSpec:
    """How a classifier's evaluation clips are cut from a video: ``frames`` per clip, ``stride`` between them
    (``strided``), or O3N's ``random`` / ``constrained`` elements with their ``window_factor``."""

    frames: int
    stride: int = 1
    strategy: str = "strided"
    window_factor: float = 1.5

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"clip strategy must be one of {', '.join(STRATEGIES)}, not {self.strategy!r}")
        if self.frames < 1 or self.stride < 1:
            raise ValueError(f"clips need frames >= 1 and stride >= 1, not {self.frames} and {self.stride}")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def video_seed(rel: str) -> int:
    """A seed fixed by a video's relative path."""
    return zlib.crc32(rel.encode())


def eval_clip_indices(spec: ClipSpec, num_frames: int, clips: int, seed: int = 0) -> np.ndarray:
    """Frame indices ``(clips, spec.frames)`` of a video of ``num_frames`` frames (indices past the end repeat the
    last frame, as the datamodules' clips)."""
    if num_frames < 1:
        raise ValueError("a video without frames has no clips")
    if spec.strategy == "strided":
        span = (spec.frames - 1) * spec.stride + 1
        slack = max(num_frames - span, 0)
        starts = [slack // 2] if clips == 1 else np.round(np.linspace(0, slack, clips)).astype(int).tolist()
        rows = np.array(starts)[:, None] + np.arange(spec.frames)[None] * spec.stride
        return np.minimum(rows, num_frames - 1)
    from datamodules.odd_one_out import element_indices

    if num_frames < spec.frames:
        raise ValueError(f"a video of {num_frames} frames cannot give {spec.frames} distinct frames")
    rng = np.random.default_rng(seed)
    strategy = "constrained" if spec.strategy == "constrained" else "random"
    return np.stack([element_indices(strategy, num_frames, spec.frames, rng, spec.window_factor)
                     for _ in range(clips)])


def decode_size(size: tuple[int, int], crops: str, resize_ratio: float | None = None) -> tuple[int, int]:
    """The size frames are decoded at for crops of ``size`` (the default ratio is described in the module)."""
    if crops not in CROPS:
        raise ValueError(f"crops must be one of {', '.join(CROPS)}, not {crops!r}")
    ratio = resize_ratio if resize_ratio is not None else (1.0 if crops == "centre" else MULTI_CROP_RATIO)
    if ratio < 1.0:
        raise ValueError(f"resize ratio must be at least 1 (crops lie inside the frame), not {ratio}")
    return int(round(size[0] * ratio)), int(round(size[1] * ratio))


def crops_text(crops: str) -> str:
    """``centre crop``, ``3 crops`` or ``10 crops``."""
    return "centre crop" if crops == "centre" else f"{crops} crops"


def crop_boxes(crops: str, frame: tuple[int, int], size: tuple[int, int]) -> list[tuple[int, int, bool]]:
    """``(top, left, flip)`` of each crop of ``size`` in a frame of size ``frame``."""
    (fh, fw), (h, w) = frame, size
    dy, dx = fh - h, fw - w
    centre = (dy // 2, dx // 2, False)
    if crops == "centre":
        return [centre]
    if crops == "3":
        if fw - w >= fh - h:
            return [(dy // 2, 0, False), centre, (dy // 2, dx, False)]
        return [(0, dx // 2, False), centre, (dy, dx // 2, False)]
    if crops == "10":
        five = [(0, 0, False), (0, dx, False), (dy, 0, False), (dy, dx, False), centre]
        return five + [(y, x, True) for y, x, _ in five]
    raise ValueError(f"crops must be one of {', '.join(CROPS)}, not {crops!r}")


def video_views(video: VideoReader, spec: ClipSpec, clips: int, size: tuple[int, int], crops: str = "centre",
                seed: int = 0) -> torch.Tensor:
    """Every view of one video (opened at ``decode_size``): uint8 ``(clips * crops, frames, 3, H, W)``, the crops
    of the first clip first."""
    n = len(video)
    if n == 0:
        raise VideoReadError(f"{video.path}: no decodable frames")
    indices = eval_clip_indices(spec, n, clips, seed)
    unique, inverse = np.unique(indices, return_inverse=True)
    frames = video.get_frames(unique)[inverse.reshape(indices.shape)]  # (K, T, H', W', 3)
    fh, fw = frames.shape[2:4]
    if fh < size[0] or fw < size[1]:
        raise VideoReadError(f"{video.path}: frames of {fh}x{fw} are smaller than the {size[0]}x{size[1]} crops")
    views = []
    for clip in frames:
        for top, left, flip in crop_boxes(crops, (fh, fw), size):
            view = clip[:, top:top + size[0], left:left + size[1]]
            views.append(view[:, :, ::-1] if flip else view)
    return torch.from_numpy(np.ascontiguousarray(np.stack(views))).permute(0, 1, 4, 2, 3).contiguous()


class VideoViews(Dataset):
    """The listed videos of a test split, each as ``{"clips": uint8 (V, T, 3, H, W), "label", "index"}`` with
    V = clips x crops views (``video_views``). A video that cannot be decoded stops the run with its name."""

    def __init__(self, root: str | os.PathLike, items: list[tuple[str, int]], spec: ClipSpec, clips: int,
                 size: tuple[int, int], crops: str = "centre", resize_ratio: float | None = None,
                 backend: str = "decord", frame_store: str | os.PathLike | None = None) -> None:
        self.root, self.items, self.spec, self.clips = Path(root), items, spec, clips
        self.size, self.crops, self.backend, self.frame_store = tuple(size), crops, backend, frame_store
        self.decode = decode_size(self.size, crops, resize_ratio)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        rel, label = self.items[index]
        with open_item(self.root, rel, self.decode, self.backend, self.frame_store) as video:
            try:
                views = video_views(video, self.spec, self.clips, self.size, self.crops, video_seed(rel))
            except ValueError as e:
                raise VideoReadError(f"{self.root / rel}: {e}") from None
        return {"clips": views, "label": label, "index": index}
