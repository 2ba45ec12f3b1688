"""Late fusion of an appearance stream's and a motion stream's per-frame detections, ROAD's three rules (Singh et
al., ICCV 2017, Sec. 3.3; ``frameAp.m`` / ``fusedActionPaths.m``), used by two-stream SSD and by Two-in-One
two-stream (Zhao & Snoek, CVPR 2019, Sec. 4).

Both streams are SSDs over the same default boxes; each gives per prior a relative box (P, 4) and softmax
scores (P, C, background first). Detections are rows ``label, score, x1, y1, x2, y2``.
"""

from __future__ import annotations

import torch
import torchvision

from zoo.nn.multibox import class_detections

FUSIONS = ("mean", "union", "boost")


def top_per_class(dets: torch.Tensor, top_k: int) -> torch.Tensor:
    """Rows sorted by class then score, at most ``top_k`` per class."""
    order = torch.argsort(dets[:, 1], descending=True, stable=True)
    dets = dets[order]
    dets = dets[torch.argsort(dets[:, 0], stable=True)]
    labels = dets[:, 0].long()
    first = torch.searchsorted(labels, labels)  # index of each row's class's first row (labels are sorted)
    return dets[torch.arange(len(dets), device=dets.device) - first < top_k]


def _nms_top(dets: torch.Tensor, nms_thresh: float, top_k: int) -> torch.Tensor:
    kept = torchvision.ops.batched_nms(dets[:, 2:].float(), dets[:, 1].float(), dets[:, 0].long(), nms_thresh)
    return top_per_class(dets[kept], top_k)


def boost(base: torch.Tensor, top: torch.Tensor, iou: float = 0.3) -> torch.Tensor:
    """Boost fusion (``boost_boxes``): going down ``base`` (by class, then score), a box whose best-overlapping ``top``
    box of its class has IoU >= ``iou`` and is not yet taken adds that box's score times the IoU to its own and takes
    it; the ``top`` boxes left untaken join. (ROAD's MATLAB tests "taken" with ``isempty(ismember(...))``, which is
    true only while nothing is taken; we follow the rule as the paper states it.)"""
    if len(base) == 0 or len(top) == 0:
        return torch.cat([base, top])
    overlap = torchvision.ops.box_iou(base[:, 2:], top[:, 2:])
    overlap[base[:, :1] != top[:, 0][None]] = -1.0  # other classes never match
    best, j = overlap.max(1)
    ok = best >= iou
    # a top box is taken by the first base box (in base order) whose best it is: that is the sequential rule
    first = torch.full((len(top),), len(base), dtype=torch.long, device=base.device)
    order = torch.arange(len(base), device=base.device)
    first.scatter_reduce_(0, j[ok], order[ok], reduce="amin")
    boosted = ok & (first[j] == order)
    out = base.clone()
    out[boosted, 1] += top[j[boosted], 1] * best[boosted]
    taken = torch.zeros(len(top), dtype=torch.bool, device=base.device)
    taken[j[boosted]] = True
    return torch.cat([out, top[~taken]])


def fuse(base: tuple[torch.Tensor, torch.Tensor], top: tuple[torch.Tensor, torch.Tensor], rule: str = "mean",
         conf_thresh: float = 0.01, nms_thresh: float = 0.45, top_k: int = 20, boost_iou: float = 0.3) -> torch.Tensor:
    """One frame's fused detections from the appearance stream ``base`` and the motion stream ``top``, each
    ``(boxes (P, 4), scores (P, C))``:

    - ``mean``: the two streams' scores averaged per prior, on ``base``'s boxes, then the usual per-class top-k and
      NMS (``class_detections``);
    - ``union``: each stream's detections, pooled, then per-class NMS;
    - ``boost``: each stream's detections, ``boost``-ed, then per-class NMS.

    Each stream's detections are ROAD's ``test-ucf24.py`` ones (per class the ``top_k`` best priors, then NMS); ROAD's
    MATLAB ``frameAp.m`` takes the 50 best, NMS, then 20, and keeps every box left after the fused NMS, which we cap
    at ``top_k`` per class (our choice, as for one stream).
    """
    if rule == "mean":
        return class_detections(base[0], (base[1] + top[1]) / 2, conf_thresh, nms_thresh, top_k)
    if rule not in FUSIONS:
        raise ValueError(f"fusion must be one of {', '.join(FUSIONS)}, not {rule!r}")
    a = class_detections(*base, conf_thresh, nms_thresh, top_k)
    b = class_detections(*top, conf_thresh, nms_thresh, top_k)
    pooled = torch.cat([a, b]) if rule == "union" else boost(a, b, boost_iou)
    return _nms_top(pooled, nms_thresh, top_k)
