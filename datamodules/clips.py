"""Clip samples for referring segmentation (A2D Sentences, J-HMDB Sentences): a clip centred on an annotated
frame, resized to the network's square input, with the referred actor's mask at the input size and at the
frame's own size (the metrics score at the original resolution)."""

from __future__ import annotations

import logging
from typing import Any

import cv2
import numpy as np
import torch

from datamodules.base import SkippingDataset
from zoo.errors import DatasetError, VideoReadError

log = logging.getLogger(__name__)


def clip_indices(centre: int, length: int, num_frames: int, step: int = 1) -> np.ndarray:
    """0-based indices of ``num_frames`` frames ``step`` apart with ``centre`` at position ``num_frames // 2``;
    indices before the first or past the last frame repeat the end frame (MTTR's convention)."""
    offsets = (np.arange(num_frames) - num_frames // 2) * step
    return np.clip(centre + offsets, 0, length - 1)


def augmentation() -> Any:
    """The training augmentation, the same for every frame of a clip and its mask (albumentations): a small
    affine (scale 0.9-1.1, shift up to 5 %) and brightness / contrast. Choice: no flips and no hue changes,
    which would contradict sentences that say "on the left" or name colours."""
    import albumentations as A

    return A.Compose([
        A.Affine(scale=(0.9, 1.1), translate_percent=(-0.05, 0.05), p=0.5),
        A.RandomBrightnessContrast(brightness_limit=0.15, contrast_limit=0.15, p=0.5),
    ])


class ClipSampleDataset(SkippingDataset):
    """Base of the referring-segmentation datasets. Subclasses give ``samples`` and ``read(index) -> (frames
    (T, H, W, 3) uint8, mask (H, W) bool, sentence, meta)``; items are dicts with ``clip`` uint8 (3, T, S, S),
    ``mask`` float (S, S), ``gt`` bool (H, W) (the mask at the frame's size), ``sentence``, ``index`` and the
    meta. Annotation errors (DatasetError) are skipped and counted like unreadable videos with
    ``on_error="skip"``."""

    skippable = (VideoReadError, DatasetError)

    def __init__(self, num_frames: int, input_size: int, augment: bool = False, on_error: str = "raise") -> None:
        super().__init__(on_error)
        if num_frames < 1 or input_size < 8:
            raise ValueError(f"num_frames must be >= 1 and input_size >= 8, not {num_frames} and {input_size}")
        self.num_frames, self.input_size = num_frames, input_size
        self.augment = augmentation() if augment else None

    def read(self, index: int) -> tuple[np.ndarray, np.ndarray, str, dict[str, Any]]:
        raise NotImplementedError

    def load(self, index: int) -> dict[str, Any]:
        frames, mask, sentence, meta = self.read(index)
        s = self.input_size
        clip = np.stack([cv2.resize(f, (s, s), interpolation=cv2.INTER_AREA) for f in frames])
        small = cv2.resize(mask.astype(np.uint8), (s, s), interpolation=cv2.INTER_NEAREST)
        if self.augment is not None:
            self.augment.set_random_seed(int(np.random.randint(2**31)))  # seeded per sample by the sampler
            out = self.augment(images=clip, mask=small)
            clip, small = out["images"], out["mask"]
        return {
            "clip": torch.from_numpy(np.ascontiguousarray(clip)).permute(3, 0, 1, 2),
            "mask": torch.from_numpy(small.astype(np.float32)),
            "gt": torch.from_numpy(np.ascontiguousarray(mask, dtype=bool)),
            "sentence": sentence,
            "index": index,
            **meta,
        }


def collate_clips(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack ``clip``, ``mask`` and ``index``; keep ``gt`` (frames of different sizes) and the rest as lists."""
    batch: dict[str, Any] = {k: [item[k] for item in items] for k in items[0]}
    for key in ("clip", "mask"):
        batch[key] = torch.stack(batch[key])
    batch["index"] = torch.tensor(batch["index"])
    return batch
