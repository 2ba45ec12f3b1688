"""Box sampling of SINT (Tao et al., CVPR 2016, Sec. 4.1 and 4.2): training boxes at polar offsets of the
ground truth, and tracking candidates at polar offsets of the previous box."""

from __future__ import annotations

import math

import numpy as np
import torch

from zoo.metrics.otb import iou


def box_iou(boxes: np.ndarray, box: np.ndarray) -> np.ndarray:
    """IoU of (N, 4) x, y, w, h boxes against one box (continuous coordinates), via ``zoo.metrics.otb.iou``."""
    a = torch.as_tensor(np.asarray(boxes, dtype=np.float64).reshape(-1, 4))
    return iou(a, torch.as_tensor(np.asarray(box, dtype=np.float64)).expand_as(a), plus_one=False).numpy()


def inside(boxes: np.ndarray, width: float, height: float) -> np.ndarray:
    """Which boxes lie wholly inside a width x height image."""
    return (
        (boxes[:, 0] >= 0)
        & (boxes[:, 1] >= 0)
        & (boxes[:, 0] + boxes[:, 2] <= width)
        & (boxes[:, 1] + boxes[:, 3] <= height)
    )


def polar_boxes(box: np.ndarray, width: float, height: float, angles: int = 16, radii: int = 10) -> np.ndarray:
    """Boxes of the same size as ``box`` at ``angles`` x ``radii`` polar offsets, radius step max(w, h) / radii,
    kept when inside the image (the training samples of Sec. 4.1)."""
    x, y, w, h = (float(v) for v in box)
    step = max(w, h) / radii
    a = 2 * np.pi * np.arange(angles) / angles
    r = step * np.arange(1, radii + 1)
    dx = (r[:, None] * np.cos(a)[None]).ravel()
    dy = (r[:, None] * np.sin(a)[None]).ravel()
    boxes = np.stack([x + dx, y + dy, np.full_like(dx, w), np.full_like(dy, h)], 1)
    return boxes[inside(boxes, width, height)]


def sample_training_boxes(
    gt: np.ndarray,
    width: float,
    height: float,
    rng: np.random.Generator,
    num_boxes: int = 64,
    pos_iou: float = 0.7,
    neg_iou: float = 0.5,
) -> tuple[np.ndarray, np.ndarray]:
    """``num_boxes`` boxes of one frame, the ground truth first, and their labels (1: IoU > pos_iou, 0:
    IoU < neg_iou; boxes in between are never drawn). Sampled with replacement when too few qualify."""
    gt = np.asarray(gt, dtype=np.float64)
    cands = polar_boxes(gt, width, height)
    ious = box_iou(cands, gt)
    keep = (ious > pos_iou) | (ious < neg_iou)
    cands, labels = cands[keep], (ious[keep] > pos_iou).astype(np.float32)
    if len(cands) == 0:
        cands, labels = gt[None], np.ones(1, np.float32)
    pick = rng.choice(len(cands), num_boxes - 1, replace=len(cands) < num_boxes - 1)
    boxes = np.concatenate([gt[None], cands[pick]])
    return boxes, np.concatenate([[1.0], labels[pick]]).astype(np.float32)


def candidate_offsets(radius: float = 30.0, step: float = 3.0, angles: int = 10) -> np.ndarray:
    """(N, 2) offsets at the network's input scale: zero plus ``angles`` directions at step, 2 step, ...,
    radius (Sec. 4.2: 10 angles, 3 px steps up to 30 px at 512 x 512) -> 1 + 10 x 10 = 101."""
    radii = step * np.arange(1, int(math.floor(radius / step)) + 1)
    a = 2 * np.pi * np.arange(angles) / angles
    offsets = np.stack([(radii[:, None] * np.cos(a)[None]).ravel(), (radii[:, None] * np.sin(a)[None]).ravel()], 1)
    return np.concatenate([np.zeros((1, 2)), offsets])


def candidate_boxes(
    previous: np.ndarray,
    first_size: np.ndarray,
    width: float,
    height: float,
    input_size: int = 512,
    radius: float = 30.0,
    step: float = 3.0,
    angles: int = 10,
    scales: tuple[float, ...] = (math.sqrt(2) / 2, 1.0, math.sqrt(2)),
) -> np.ndarray:
    """Candidates around the previous box's centre: the polar offsets (taken at the input scale, so
    ``radius * width / input_size`` in the frame) times ``scales`` of the first-frame box size; boxes
    leaving the image are dropped."""
    cx, cy = previous[0] + previous[2] / 2, previous[1] + previous[3] / 2
    off = candidate_offsets(radius, step, angles) * np.array([width / input_size, height / input_size])
    boxes = []
    for s in scales:
        w, h = first_size[0] * s, first_size[1] * s
        boxes.append(
            np.stack([cx + off[:, 0] - w / 2, cy + off[:, 1] - h / 2, np.full(len(off), w), np.full(len(off), h)], 1)
        )
    boxes = np.concatenate(boxes)
    kept = boxes[inside(boxes, width, height)]
    if len(kept) == 0:  # everything leaves the image: keep the previous box, clipped
        x = np.clip(previous[0], 0, max(width - previous[2], 0))
        y = np.clip(previous[1], 0, max(height - previous[3], 0))
        kept = np.array([[x, y, min(previous[2], width), min(previous[3], height)]])
    return kept
