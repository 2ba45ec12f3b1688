"""Box sampling of SINT (Tao et al., CVPR 2016, Sec. 4.1 and 4.2) as the released code samples: training boxes at
polar offsets of the ground truth (``scripts_prepare_training_data/funcSample.m``), tracking candidates and
box-regression samples at polar offsets of a box's top-left corner (``run_SINT_OTB.py``, ``sample_regions``).

Boxes are x, y, w, h in frame pixels, in the OTB / ALOV convention of the released code: a box covers the pixels
x .. x + w - 1 (``func_iou`` and ``funcIoU.m`` count pixels with the +1).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from zoo.metrics.otb import iou

SCALES = (0.7071, 1.0, 1.4142)  # run_SINT_OTB.py's candidate scales of the first-frame box size
REGRESSION_SCALES = (0.7, 0.8, 0.9, 1.0, 1 / 0.9, 1 / 0.8, 1 / 0.7)


def box_iou(boxes: np.ndarray, box: np.ndarray, plus_one: bool = True) -> np.ndarray:
    """IoU of (N, 4) x, y, w, h boxes against one box, counting pixels as ``func_iou`` does (``plus_one``)."""
    a = torch.as_tensor(np.asarray(boxes, dtype=np.float64).reshape(-1, 4))
    return iou(a, torch.as_tensor(np.asarray(box, dtype=np.float64)).expand_as(a), plus_one=plus_one).numpy()


def polar_offsets(radius: float, step: float, angles: int) -> np.ndarray:
    """(N, 2) offsets at ``step``, 2 ``step``, ... up to ``radius`` in ``angles`` directions, then the zero offset
    (``sample_regions_precompute``: ``int(radius / step)`` radii, the zero offset last)."""
    radii = step * np.arange(1, int(radius / step) + 1)
    a = 2 * np.pi * np.arange(angles) / angles
    ring = np.stack([(radii[:, None] * np.cos(a)[None]).ravel(), (radii[:, None] * np.sin(a)[None]).ravel()], 1)
    return np.concatenate([ring, np.zeros((1, 2))])


def sample_regions(
    corner: np.ndarray, size: np.ndarray, width: float, height: float, offsets: np.ndarray, scales: tuple[float, ...]
) -> np.ndarray:
    """Boxes whose top-left corner is ``corner`` plus each offset and whose size is ``scales`` x ``size`` (scale
    after scale), rounded to whole pixels; kept when strictly inside the image (x1 > 0, y1 > 0, x2 < W, y2 < H
    with x2 = x1 + w - 1), as ``sample_regions`` in ``run_SINT_OTB.py``. Returns x, y, w, h."""
    x, y = float(corner[0]), float(corner[1])
    out = []
    for s in scales:
        x1, y1 = x + offsets[:, 0], y + offsets[:, 1]
        x2, y2 = x1 + s * size[0] - 1, y1 + s * size[1] - 1
        out.append(np.round(np.stack([x1, y1, x2, y2], 1)))
    b = np.concatenate(out)
    b = b[(b[:, 0] > 0) & (b[:, 1] > 0) & (b[:, 2] < width) & (b[:, 3] < height)]
    return np.concatenate([b[:, :2], b[:, 2:] - b[:, :2] + 1], 1)


def search_radius(radius: float, width: float, adaptive: bool, reference_width: int = 512) -> float:
    """The search radius in frame pixels: ``radius`` x W / 512 when ``adaptive`` (SINT+, ``run_SINT_OTB.py``'s
    ``base_rad / 512 * W``), else ``radius`` itself (plain SINT, Sec. 4.2: 30 px)."""
    return radius * width / reference_width if adaptive else radius


def candidate_boxes(
    previous: np.ndarray,
    first_size: np.ndarray,
    width: float,
    height: float,
    radius: float = 30.0,
    step: float = 3.0,
    angles: int = 10,
    scales: tuple[float, ...] = SCALES,
    adaptive: bool = True,
) -> np.ndarray:
    """Tracking candidates (Sec. 4.2, ``run_SINT_OTB.py``): the previous box's top-left corner moved by polar offsets
    (``step`` px radial steps up to the search radius, ``angles`` directions, and no move) with ``scales`` x the
    first-frame box size; 121 x 3 = 363 at 640 x 480 with the adaptive radius. If every box leaves the image, the
    previous box (clipped) is the only candidate."""
    r = search_radius(radius, width, adaptive)
    boxes = sample_regions(previous[:2], first_size, width, height, polar_offsets(r, step, angles), scales)
    if len(boxes) == 0:
        x = np.clip(previous[0], 0, max(width - previous[2], 0))
        y = np.clip(previous[1], 0, max(height - previous[3], 0))
        boxes = np.array([[x, y, min(previous[2], width), min(previous[3], height)]])
    return boxes


def regression_samples(
    box: np.ndarray,
    width: float,
    height: float,
    radius: float = 30.0,
    angles: int = 20,
    step: float = 1.0,
    scales: tuple[float, ...] = REGRESSION_SCALES,
    min_iou: float = 0.6,
) -> np.ndarray:
    """First-frame training boxes of the box regressors (``run_SINT_OTB.py``): top-left polar offsets at 1 px radial
    steps up to 30 W / 512 px in 20 directions, 7 scales from 0.7 to 1/0.7, kept with IoU > ``min_iou``."""
    r = search_radius(radius, width, True)
    samples = sample_regions(box[:2], box[2:], width, height, polar_offsets(r, step, angles), scales)
    return samples[box_iou(samples, box) > min_iou]


def training_candidates(gt: np.ndarray, width: float, height: float, angles: int = 16, radii: int = 10) -> np.ndarray:
    """Boxes of the ground truth's size at ``angles`` x ``radii`` polar offsets of its corner, radius step
    max(w, h) / ``radii``, kept when x > 0, y > 0, x + w < W and y + h < H (``funcSample.m``, Sec. 4.1)."""
    x, y, w, h = (float(v) for v in gt)
    ring = polar_offsets(max(w, h), max(w, h) / radii, angles)[:-1]  # funcSample has no zero offset
    b = np.stack([x + ring[:, 0], y + ring[:, 1], np.full(len(ring), w), np.full(len(ring), h)], 1)
    return b[(b[:, 0] > 0) & (b[:, 1] > 0) & (b[:, 0] + w < width) & (b[:, 1] + h < height)]


def labelled_candidates(
    gt: np.ndarray, width: float, height: float, pos_iou: float = 0.7, neg_iou: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """A frame's candidate boxes and labels (1: IoU > ``pos_iou``, 0: IoU < ``neg_iou``; boxes between are
    dropped), as ``genPosNegPerFrameALOV.m`` lists them."""
    cands = training_candidates(np.asarray(gt, dtype=np.float64), width, height)
    ious = box_iou(cands, gt)
    keep = (ious > pos_iou) | (ious < neg_iou)
    return cands[keep], (ious[keep] > pos_iou).astype(np.float32)


def sample_training_boxes(
    gt: np.ndarray,
    width: float,
    height: float,
    rng: np.random.Generator,
    num_boxes: int = 64,
    pos_iou: float = 0.7,
    neg_iou: float = 0.5,
) -> tuple[np.ndarray, np.ndarray] | None:
    """``num_boxes`` boxes of one frame, the ground truth first and then ``num_boxes - 1`` of its labelled candidates
    drawn without replacement, with their labels; None when the frame has fewer candidates (the official
    ``prepare4hdf5gen.m`` drops such pairs)."""
    gt = np.asarray(gt, dtype=np.float64)
    cands, labels = labelled_candidates(gt, width, height, pos_iou, neg_iou)
    if len(cands) < num_boxes - 1:
        return None
    pick = rng.permutation(len(cands))[: num_boxes - 1]
    return np.concatenate([gt[None], cands[pick]]), np.concatenate([[1.0], labels[pick]]).astype(np.float32)


def caffe_rois(boxes: np.ndarray, index: int, sx: float, sy: float, rounded: bool = False) -> torch.Tensor:
    """x, y, w, h boxes in frame pixels -> (K, 5) rois (image ``index``, x1, y1, x2, y2 in input pixels) as the
    released code makes them: the inclusive corners x and x + w - 1 scaled to the input and moved to 0-based
    (``- 1``); ``rounded`` as ``genHDF5.m`` rounds the training boxes."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    xyxy = np.stack([b[:, 0] * sx, b[:, 1] * sy, (b[:, 0] + b[:, 2] - 1) * sx, (b[:, 1] + b[:, 3] - 1) * sy], 1)
    if rounded:
        xyxy = np.round(xyxy)
    return torch.from_numpy(np.concatenate([np.full((len(b), 1), float(index)), xyxy - 1], 1)).float()


def candidate_count(width: float, radius: float = 30.0, step: float = 3.0, angles: int = 10,
                    scales: int = len(SCALES), adaptive: bool = True) -> int:
    """How many candidates a frame of ``width`` gets when none leave the image (363 at 640 wide, adaptive)."""
    return (angles * math.floor(search_radius(radius, width, adaptive) / step) + 1) * scales
