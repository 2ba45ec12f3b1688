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


MODALITIES = ("rgb", "rgb+flow")
FLOW_BOUND = 20.0  # pixels: flow is truncated to [-20, 20] and scaled to [-1, 1], as I3D's flow stream reads it


def clip_flow(clip: np.ndarray) -> np.ndarray:
    """Optical flow of a (T, S, S, 3) uint8 clip as float32 (2, T, S, S) in [-1, 1]: DIS flow (OpenCV) from each
    frame to the next, the last frame repeating the flow before it, truncated at ``FLOW_BOUND`` pixels and scaled.
    Choice: DIS on the network's input frames, computed on the fly (TV-L1 images precomputed at full size, as
    I3D's flow stream was trained on, are not available here)."""
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    gray = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in clip]
    flows = [dis.calc(a, b, None) for a, b in zip(gray[:-1], gray[1:])]
    if not flows:
        flows = [np.zeros((*gray[0].shape, 2), np.float32)]
    flows.append(flows[-1])
    out = np.stack(flows).transpose(3, 0, 1, 2)
    return np.clip(out, -FLOW_BOUND, FLOW_BOUND).astype(np.float32) / FLOW_BOUND


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
    meta, and with ``modality="rgb+flow"`` ``flow`` float (2, T, S, S) (``clip_flow``). Annotation errors
    (DatasetError) are skipped and counted like unreadable videos with ``on_error="skip"``."""

    skippable = (VideoReadError, DatasetError)

    def __init__(self, num_frames: int, input_size: int, augment: bool = False, on_error: str = "raise",
                 modality: str = "rgb") -> None:
        super().__init__(on_error)
        if num_frames < 1 or input_size < 8:
            raise ValueError(f"num_frames must be >= 1 and input_size >= 8, not {num_frames} and {input_size}")
        if modality not in MODALITIES:
            raise ValueError(f"modality must be one of {', '.join(MODALITIES)}, not {modality!r}")
        self.num_frames, self.input_size, self.modality = num_frames, input_size, modality
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
        item = {} if self.modality == "rgb" else {"flow": torch.from_numpy(clip_flow(clip))}
        return {
            **item,
            "clip": torch.from_numpy(np.ascontiguousarray(clip)).permute(3, 0, 1, 2),
            "mask": torch.from_numpy(small.astype(np.float32)),
            "gt": torch.from_numpy(np.ascontiguousarray(mask, dtype=bool)),
            "sentence": sentence,
            "index": index,
            **meta,
        }


def collate_clips(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack ``clip``, ``mask``, ``flow`` and ``index``; keep ``gt`` (frames of different sizes) and the rest as
    lists."""
    batch: dict[str, Any] = {k: [item[k] for item in items] for k in items[0]}
    for key in ("clip", "mask", "flow"):
        if key in batch:
            batch[key] = torch.stack(batch[key])
    batch["index"] = torch.tensor(batch["index"])
    return batch
