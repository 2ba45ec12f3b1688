"""Training targets of the language trackers (Li et al., CVPR 2017): overlap label maps for the visual
specification network and region masks for the lingual one, and the box read back from a response."""

from __future__ import annotations

import cv2
import numpy as np
import torch


def iou_map(map_size: tuple[int, int], stride: float, offset: float, box_wh: tuple[float, float],
            target: np.ndarray) -> np.ndarray:
    """IoU with ``target`` (x, y, w, h, in search-crop pixels) of the ``box_wh`` box centred on each response
    cell; cell (i, j) sits at (offset + j * stride, offset + i * stride)."""
    h, w = map_size
    cx = offset + np.arange(w) * stride
    cy = offset + np.arange(h) * stride
    bw, bh = box_wh
    x1 = np.maximum(cx[None, :] - bw / 2, target[0])
    x2 = np.minimum(cx[None, :] + bw / 2, target[0] + target[2])
    y1 = np.maximum(cy[:, None] - bh / 2, target[1])
    y2 = np.minimum(cy[:, None] + bh / 2, target[1] + target[3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    return inter / (bw * bh + target[2] * target[3] - inter)


def overlap_labels(ious: np.ndarray, positive: float = 0.7, negative: float = 0.5, side_weight: float = 0.1
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Labels (1 at or above ``positive``, 0 below ``negative``) and weights for the weighted sigmoid
    cross-entropy: the positives' weights sum to ``side_weight`` and so do the negatives'; cells in between
    weigh 0.

    As ``track_model/train_config.py`` (``generate_cost_weights``): weight on overlaps >= 0.7 and < 0.5, each
    side normalised to sum 1 and scaled by ``scale_factor = 0.1``. Its label map is 1 above 0.5
    (``generate_template_labels``); the cells between 0.5 and 0.7 it adds weigh 0, so the loss is the same.
    """
    pos, neg = ious >= positive, ious < negative
    labels = pos.astype(np.float32)
    weights = np.zeros_like(ious, dtype=np.float32)
    if pos.any():
        weights[pos] = side_weight / pos.sum()
    if neg.any():
        weights[neg] = side_weight / neg.sum()
    return labels, weights


def box_from_response(response: torch.Tensor | np.ndarray) -> np.ndarray:
    """x, y, w, h (response pixels) of the largest connected region above half the maximum (Sec. 3.1)."""
    r = response.detach().float().cpu().numpy() if isinstance(response, torch.Tensor) else np.asarray(response)
    r = np.squeeze(r)
    mask = (r >= 0.5 * r.max()).astype(np.uint8) if r.max() > 0 else (r >= r.max()).astype(np.uint8)
    n, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if n <= 1:
        return np.array([0.0, 0.0, float(r.shape[1]), float(r.shape[0])])
    best = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    x, y, w, h = stats[best, :4]
    return np.array([x, y, w, h], dtype=np.float64)
