"""Spatio-temporal action detection metrics: frame-mAP and video-mAP as scored on UCF101-24, J-HMDB-21 and
UCF-Sports, with the conventions of the published evaluators as a switch.

**frame-mAP@IoU** (default 0.5): every detection row ``frame, label, score, x1, y1, x2, y2`` of the scored videos
is ranked by score within its class; it is a true positive when it overlaps a still unmatched ground-truth box of
its class in its frame by at least the IoU. Matching is greedy by score, a ground truth is matched once, so a
duplicate is a false positive; a detection of another class counts for nothing (it can only be a false positive
of its own class). Detections in frames without ground truth are false positives (``frames="all"``). AP per
class, mean over classes.

**video-mAP@delta**: detected tubes against ground-truth tubes of the same class and video, greedy by tube score,
with ACT's spatio-temporal IoU (Kalogeiton et al. ICCV 2017, ``ACT_utils.iou3dt``): the temporal IoU of the two
frame ranges times the mean per-frame IoU over their temporal intersection. Reported at delta 0.2, 0.5, 0.75 and
"0.5:0.95", the mean of video-mAP at 0.50, 0.55, ..., 0.95 (ROAD's ``AVGmAP``, MOC's ``videoAP_all``).

Classes without any ground truth in the scored videos get AP NaN and are left out of the mean (ACT's scripts
divide by zero there; ROAD's count them as 0: ``empty_class_ap``). Ties in score keep the input order (videos in
the order given, rows in their order); the official scripts use numpy's unstable sort, so theirs is arbitrary.
Everything is float64 (ACT keeps its precision-recall table in float32).

What the evaluators in use do (read in their code) and the ``Convention`` that reproduces each:

| detail | ``act`` (default) (1) | ``road`` (2) | ``yowo`` (3) |
|---|---|---|---|
| AP | ``pr_to_ap`` (trapezoids) | VOC all-point | VOC all-point |
| box areas | +1 pixel | continuous | +1 pixel |
| a box matches | IoU >= t, best unmatched gt | IoU >= t, best unmatched gt | IoU >= t with the best gt, FP if taken |
| a tube matches | st-IoU >= delta | st-IoU > delta | st-IoU >= delta |
| frames scored | all frames of the videos | all (``full_test=True``) | only frames with ground truth |
| tubes sharing 1 frame | temporal IoU 1 / T_u | st-IoU 0 (4) | st-IoU 0 (``tmax <= tmin``) |
| detected tube boxes | as given | x, y, w, h each + 1 (5) | as given |
| class without gt | division by zero | AP 0, in the mean | - |
| tube NMS in the evaluator | ``nms3dt`` 0.3 (``act_nms``) | none | none (NMS 0.3 in its linker) |

(1) ACT ``act-detector-scripts/ACT.py`` ``frameAP`` / ``videoAP`` with ``ACT_utils.py`` (``iou2d``, ``iou3dt``,
``pr_to_ap``); MOC ``src/ACT.py`` is the same code. (2) ROAD ``utils/evaluation.py`` (frame; Two-in-One ships the
same file) and ``online-tubes/eval/get_PR_curve.m`` + ``compute_spatio_temporal_iou.m`` + ``xVOCap.m`` (video).
(3) YOWO ``evaluation_ucf24_jhmdb`` (Object-Detection-Metrics, frame) and ``core/eval_results.py`` (video).
(4) ``T_i = max(0, min(te) - max(tb))`` is tested > 0 before its + 1. (5) ``dt_bb + 1`` after ``convert2eval.m``
made w = x2 - x1: the box moves 1 px and grows 1 px; the ground truth's x, y, w, h are used as they are.

Other conventions: ``act_nms`` is ``act`` with ACT's tube NMS (its ``videoAP`` suppresses, per video and class,
tubes whose st-IoU with a better one exceeds 0.3 before scoring; it is left out of ``act`` because it is tube
post-processing, and it suppresses ground-truth tubes given as detections: test videos of UCF101-24 split 1 have
same-class ground-truth tube pairs with st-IoU > 0.3 (IceDancing, SalsaSpin, TrampolineJumping), so the ground
truth scores video-mAP 0.979 under ``act_nms``). ``voc`` and ``voc07`` are ``act``
with VOC all-point and VOC 2007 11-point AP (``np.arange(0, 1.1, 0.1)`` thresholds, as ROAD's and py-faster-rcnn's
``voc_ap(use_07_metric=True)``). ``spatial`` is ``act`` with ACT's ``spatialonly`` tube IoU (the mean per-frame
IoU over the temporal intersection, no temporal factor), as older trimmed-dataset papers scored J-HMDB and
UCF-Sports. Under ``road`` even the ground truth scored as detections stays below 1.0 at high delta: the 1 px
shift and growth of detected boxes costs about 5-10 % IoU on UCF101's 320 x 240 frames.

Which convention each published number was computed with (``--convention``):

| numbers | computed by | convention |
|---|---|---|
| ROAD (Singh et al. ICCV 2017) video-mAP 73.5 / 46.3 / 15.0 / 20.4, README rows | MATLAB ``get_PR_curve`` | ``road`` |
| ROAD re-implementation frame-mAP (README, RGB 64.96) | ``test-ucf24.py`` -> ``evaluation.py`` (a) | ``road`` |
| Peng & Schmid (ECCV 2016), Saha et al. (BMVC 2016) on corrected UCF101-24 (b) | ``compute_mAPs.m`` | ``road`` |
| ACT (Kalogeiton et al. ICCV 2017) f-mAP 69.5, v-mAP 76.5 / 49.2 / 19.7 / 23.4 | ``ACT.py`` | ``act_nms`` (c) |
| MOC (Li et al. ECCV 2020) f-mAP 78.0, v-mAP 82.8 / 53.8 / 29.6 / 28.3 | ``src/ACT.py`` | ``act_nms`` (c) |
| Two-in-One (Zhao & Snoek CVPR 2019) UCF101-24 frame-mAP 78.5 | ``test-ucf24.py`` -> ``evaluation.py`` | ``road`` |
| Two-in-One UCF101-24 video-mAP 75.48 / 48.31 (two-stream 78.48 / 50.3) | not released (d) | ``road`` |
| Two-in-One J-HMDB 57.96 / 74.74, UCF-Sports 92.74 / 96.52 | not released | unknown |
| YOWO (Koepueklue et al. 2019) frame-mAP (UCF101-24, J-HMDB) | Object-Detection-Metrics | ``yowo`` |
| Gkioxari & Malik (CVPR 2015), Weinzaepfel et al. (ICCV 2015) on trimmed data | spatial-only tube IoU | ``spatial`` |

(a) ROAD's README recommends its ``frameAp.m``: same AP, detections 1 px larger. (b) Re-scored by Singh
(corrected-UCF101-Annots README: 73.67 / 32.07 / 0.85 / 7.26 and 66.55 / 36.37 / 7.94 / 14.37). (c) Frame-mAP:
``act`` (the NMS is on tubes only). (d) Its tubes come from ROAD's MATLAB ``online-tubes``, which scores them with
``get_PR_curve`` (inferred).

A "drops the last box of every tube" off-by-one was looked for in ACT, MOC, ROAD (python and MATLAB, incl.
``convert2eval.m`` and ``extract_action``), corrected-UCF101-Annots, 3D-RetinaNet and YOWO / YOWOv2 and not
found; the off-by-one found is the one-frame-overlap rule (4), ``min_overlap_frames=2`` here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np
import torch
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from zoo.errors import DatasetError

if TYPE_CHECKING:  # datamodules.action_tubes imports zoo, whose package imports zoo.metrics
    from datamodules.action_tubes import Tube, TubeAnnotations

DELTAS = (0.2, 0.5, 0.75)
COCO_DELTAS = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))  # 0.50:0.05:0.95
AP_METHODS = ("pr_to_ap", "voc", "voc07")
DETECTION_COLUMNS = ("frame", "label", "score", "x1", "y1", "x2", "y2")


@dataclass(frozen=True)
class Convention:
    """How an evaluator turns detections into APs (see the module's tables)."""

    name: str
    ap: str = "pr_to_ap"  # "pr_to_ap" (ACT trapezoids) | "voc" (all-point) | "voc07" (11-point)
    plus_one: bool = True  # box areas count an extra pixel: (x2 - x1 + 1) * (y2 - y1 + 1)
    tube_iou: str = "spatiotemporal"  # | "spatial" (ACT's spatialonly)
    frame_match: str = "remaining"  # a box takes its best unmatched gt | "voc": its best gt, FP if that is taken
    # (a tube always takes its best unmatched gt tube: every evaluator read does so)
    frames: str = "all"  # score detections in every frame | "annotated": only frames with a ground-truth box
    frame_strict: bool = False  # a box matches at IoU > t instead of >= t
    video_strict: bool = False  # a tube matches at st-IoU > delta instead of >= delta
    min_overlap_frames: int = 1  # temporal intersections shorter than this give st-IoU 0
    tube_det_shift: float = 0.0  # pixels added to a detected tube's x1, y1, x2, y2 before its IoU (ROAD: 1)
    tube_det_widen: float = 0.0  # pixels then added to its x2, y2 (ROAD: 1)
    tube_nms: float | None = None  # st-IoU NMS of each video's tubes per class before scoring (ACT's script: 0.3)
    empty_class_ap: float = math.nan  # AP of a class without ground truth (NaN: left out of the mean)
    description: str = field(default="", compare=False)


_ACT = Convention("act", description="ACT / MOC evaluator (ACT.py frameAP / videoAP) without its tube NMS")
CONVENTIONS: dict[str, Convention] = {
    "act": _ACT,
    "act_nms": replace(_ACT, name="act_nms", tube_nms=0.3, description="ACT / MOC videoAP exactly: nms3dt 0.3"),
    "road": Convention(
        "road", ap="voc", plus_one=False, video_strict=True, min_overlap_frames=2, tube_det_shift=1.0,
        tube_det_widen=1.0, empty_class_ap=0.0,
        description="ROAD / Two-in-One: evaluation.py (frame), MATLAB get_PR_curve (video)",
    ),
    "voc": replace(_ACT, name="voc", ap="voc", description="act with VOC all-point AP"),
    "voc07": replace(_ACT, name="voc07", ap="voc07", description="act with VOC 2007 11-point AP"),
    "spatial": replace(_ACT, name="spatial", tube_iou="spatial", description="act with spatial-only tube IoU"),
    "yowo": Convention(
        "yowo", ap="voc", frame_match="voc", frames="annotated", min_overlap_frames=2,
        description="YOWO: Object-Detection-Metrics on annotated frames, core/eval_results.py video AP",
    ),
}


def get_convention(convention: str | Convention) -> Convention:
    """A Convention by name (or itself), with its fields checked."""
    if isinstance(convention, Convention):
        conv = convention
    elif convention in CONVENTIONS:
        conv = CONVENTIONS[convention]
    else:
        raise ValueError(f"unknown convention {convention!r}; choose one of {', '.join(CONVENTIONS)}")
    for name, value, allowed in (
        ("ap", conv.ap, AP_METHODS),
        ("tube_iou", conv.tube_iou, ("spatiotemporal", "spatial")),
        ("frame_match", conv.frame_match, ("remaining", "voc")),
        ("frames", conv.frames, ("all", "annotated")),
    ):
        if value not in allowed:
            raise ValueError(f"convention {conv.name!r}: {name}={value!r}, expected one of {allowed}")
    return conv


# ---------------------------------------------------------------------------------------------------------- AP
def average_precision(tp: np.ndarray, num_gt: int, method: str = "pr_to_ap") -> float:
    """AP of detections sorted by decreasing score (``tp``: bool, True for a true positive) against ``num_gt``
    ground truths; NaN when ``num_gt`` is 0.

    ``pr_to_ap``: ACT's ``pr_to_ap``, trapezoids under the precision-recall points with (precision 1, recall 0)
    first. ``voc``: VOC all-point (ROAD ``voc_ap``, ``xVOCap.m``): area under the precision envelope with
    sentinels (0, 0) and (1, 0). ``voc07``: the mean of the best precision at recall >= t for the 11 thresholds
    ``np.arange(0, 1.1, 0.1)`` (so t = 0.30000000000000004: a recall of exactly 0.3 misses it, as in their code).
    """
    if method not in AP_METHODS:
        raise ValueError(f"unknown AP method {method!r}; choose one of {', '.join(AP_METHODS)}")
    if num_gt <= 0:
        return math.nan
    tp = np.asarray(tp, dtype=bool)
    ctp = np.cumsum(tp, dtype=np.float64)
    prec = ctp / np.arange(1, len(tp) + 1, dtype=np.float64)
    rec = ctp / float(num_gt)
    if method == "pr_to_ap":
        r = np.concatenate([[0.0], rec])
        p = np.concatenate([[1.0], prec])
        return float(np.sum(np.diff(r) * (p[1:] + p[:-1]) * 0.5))
    if method == "voc":
        mrec = np.concatenate([[0.0], rec, [1.0]])
        mpre = np.concatenate([[0.0], prec, [0.0]])
        mpre = np.maximum.accumulate(mpre[::-1])[::-1]
        i = np.flatnonzero(mrec[1:] != mrec[:-1])
        return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))
    ap = 0.0
    for t in np.arange(0.0, 1.1, 0.1):
        above = rec >= t
        ap += (float(prec[above].max()) if above.any() else 0.0) / 11.0
    return ap


def _class_aps(
    labels: np.ndarray, scores: np.ndarray, tp: np.ndarray, num_gt: np.ndarray, conv: Convention
) -> np.ndarray:
    """AP per class of scored detections (ties in score keep the input order)."""
    num_classes = len(num_gt)
    order = np.lexsort((np.arange(len(labels)), -scores, labels))
    labels, tp = labels[order], tp[order]
    bounds = np.searchsorted(labels, np.arange(num_classes + 1))
    aps = np.empty(num_classes, dtype=np.float64)
    for c in range(num_classes):
        n = int(num_gt[c])
        aps[c] = conv.empty_class_ap if n == 0 else average_precision(tp[bounds[c] : bounds[c + 1]], n, conv.ap)
    return aps


def mean_ap(aps: np.ndarray) -> float:
    """The mean over classes, leaving NaN (classes without ground truth) out; NaN if all are."""
    aps = np.asarray(aps, dtype=np.float64)
    return float(aps[~np.isnan(aps)].mean()) if np.any(~np.isnan(aps)) else math.nan


# --------------------------------------------------------------------------------------------------------- boxes
def _pairwise_rows_iou(a: np.ndarray, b: np.ndarray, plus_one: bool) -> np.ndarray:
    """IoU of x1, y1, x2, y2 boxes along the last axis, broadcasting the others (0 where the union is empty)."""
    one = 1.0 if plus_one else 0.0
    iw = np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]) + one
    ih = np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]) + one
    inter = np.maximum(iw, 0.0) * np.maximum(ih, 0.0)
    area_a = (a[..., 2] - a[..., 0] + one) * (a[..., 3] - a[..., 1] + one)
    area_b = (b[..., 2] - b[..., 0] + one) * (b[..., 3] - b[..., 1] + one)
    union = area_a + area_b - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def box_iou(a: np.ndarray, b: np.ndarray, plus_one: bool = False) -> np.ndarray:
    """IoU matrix (N, M) of x1, y1, x2, y2 boxes ``a`` (N, 4) and ``b`` (M, 4) (a single box may be 1-D);
    ``plus_one`` counts pixels as ACT's ``area2d`` / ``overlap2d`` do: ``(x2 - x1 + 1) * (y2 - y1 + 1)``."""
    a = np.atleast_2d(np.asarray(a, dtype=np.float64))[:, :4]
    b = np.atleast_2d(np.asarray(b, dtype=np.float64))[:, :4]
    return _pairwise_rows_iou(a[:, None, :], b[None, :, :], plus_one)


# ----------------------------------------------------------------------------------------------------- matching
def _greedy_match(
    group: np.ndarray, score: np.ndarray, ious: np.ndarray, threshold: float, strict: bool, match: str
) -> np.ndarray:
    """Greedy matching by score within each group (one frame or video and class): ``ious`` (N, K) holds each
    detection's IoU with its group's ground truths (-inf past the group's count). Returns the true positives.

    The groups are processed together, one rank (1st, 2nd, ... best detection of each group) at a time.
    """
    n = len(group)
    tp = np.zeros(n, dtype=bool)
    if n == 0 or ious.shape[1] == 0:
        return tp
    hits = ious > threshold if strict else ious >= threshold
    cand = np.flatnonzero(hits.any(axis=1))  # the others can never be true positives
    if cand.size == 0:
        return tp
    cand = cand[np.lexsort((cand, -score[cand], group[cand]))]
    g = group[cand]
    first = np.concatenate([[True], g[1:] != g[:-1]])
    run_start = np.maximum.accumulate(np.where(first, np.arange(len(g)), 0))
    rank = np.arange(len(g)) - run_start
    _, ginv = np.unique(g, return_inverse=True)
    taken = np.zeros((int(ginv.max()) + 1, ious.shape[1]), dtype=bool)
    by_rank = np.argsort(rank, kind="stable")
    bounds = np.searchsorted(rank[by_rank], np.arange(int(rank.max()) + 2))
    for r in range(int(rank.max()) + 1):
        sl = by_rank[bounds[r] : bounds[r + 1]]
        det, gi = cand[sl], ginv[sl]
        m = ious[det]
        if match == "remaining":
            m = np.where(taken[gi], -np.inf, m)
        j = np.argmax(m, axis=1)
        best = m[np.arange(len(j)), j]
        ok = best > threshold if strict else best >= threshold
        if match != "remaining":
            ok &= ~taken[gi, j]
        taken[gi[ok], j[ok]] = True
        tp[det[ok]] = True
    return tp


def _group_ious(
    det_keys: np.ndarray, det_boxes: np.ndarray, gt_keys: np.ndarray, gt_boxes: np.ndarray, plus_one: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Each detection's IoU with the ground-truth boxes of the same key (padded with -inf) and whether it has any."""
    order = np.argsort(gt_keys, kind="stable")
    gk, gb = gt_keys[order], gt_boxes[order]
    ukeys, start, count = np.unique(gk, return_index=True, return_counts=True)
    if len(ukeys) == 0 or len(det_keys) == 0:
        return np.full((len(det_keys), 0), -np.inf), np.zeros(len(det_keys), dtype=bool)
    pos = np.clip(np.searchsorted(ukeys, det_keys), 0, len(ukeys) - 1)
    has = ukeys[pos] == det_keys
    kmax = int(count.max())
    ious = np.full((len(det_keys), kmax), -np.inf)
    idx = np.flatnonzero(has)
    for j in range(kmax):
        sel = idx[count[pos[idx]] > j]
        ious[sel, j] = _pairwise_rows_iou(det_boxes[sel], gb[start[pos[sel]] + j], plus_one)
    return ious, has


# ------------------------------------------------------------------------------------------------------ inputs
def _video_list(annotations: TubeAnnotations, videos: Iterable[str] | None) -> list[str]:
    names = list(annotations.videos) if videos is None else [str(v) for v in videos]
    for v in names:
        if v not in annotations.videos:
            where = f" ({annotations.source})" if annotations.source is not None else ""
            raise DatasetError(f"video {v!r} is not in the {annotations.dataset} annotation{where}")
    return names


def _gt_boxes(annotations: TubeAnnotations, videos: Sequence[str]) -> np.ndarray:
    """Ground-truth boxes of the videos as rows ``video index, frame, label, x1, y1, x2, y2``."""
    rows = []
    for vi, v in enumerate(videos):
        for t in annotations.videos[v].tubes:
            b = np.asarray(t.boxes, dtype=np.float64).reshape(-1, 5)
            rows.append(np.column_stack([np.full(len(b), vi), b[:, 0], np.full(len(b), t.label), b[:, 1:5]]))
    return np.concatenate(rows) if rows else np.zeros((0, 7))


def _detection_rows(detections: Mapping[str, np.ndarray], videos: Sequence[str], num_classes: int) -> np.ndarray:
    """The detections of the videos as rows ``video index, frame, label, score, x1, y1, x2, y2``."""
    rows = []
    for vi, v in enumerate(videos):
        d = detections.get(v)
        if d is None:
            continue
        d = np.asarray(d, dtype=np.float64)
        if d.size == 0:
            continue
        if d.ndim != 2 or d.shape[1] != 7:
            cols = ", ".join(DETECTION_COLUMNS)
            raise DatasetError(f"detections of {v!r}: shape {d.shape}, expected (M, 7) rows {cols}")
        bad = np.flatnonzero((d[:, 1] != np.rint(d[:, 1])) | (d[:, 1] < 0) | (d[:, 1] >= num_classes))
        if bad.size:
            i = int(bad[0])
            raise DatasetError(f"detections of {v!r}: row {i}: label {d[i, 1]:g} is not in 0..{num_classes - 1}")
        rows.append(np.column_stack([np.full(len(d), vi), d]))
    return np.concatenate(rows) if rows else np.zeros((0, 8))


def _frame_keys(video: np.ndarray, frame: np.ndarray, label: np.ndarray, num_frames: int, num_classes: int):
    return (video.astype(np.int64) * num_frames + frame.astype(np.int64)) * num_classes + label.astype(np.int64)


# ------------------------------------------------------------------------------------------------------ frame-AP
def frame_scores(
    detections: Mapping[str, np.ndarray],
    annotations: TubeAnnotations,
    videos: Sequence[str] | None = None,
    iou: float = 0.5,
    convention: str | Convention = "act",
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The scored detections of ``frame_ap``: (labels, scores, true-positive flags, ground truths per class)."""
    conv = get_convention(convention)
    names = _video_list(annotations, videos)
    num_classes = len(annotations.classes)
    gt = _gt_boxes(annotations, names)
    det = _detection_rows(detections, names, num_classes)
    num_gt = np.bincount(gt[:, 2].astype(np.int64), minlength=num_classes)[:num_classes]
    frames = np.rint(np.concatenate([gt[:, 1], det[:, 1]]))
    fmin = frames.min() if len(frames) else 0.0
    nf = int(frames.max() - fmin) + 1 if len(frames) else 1
    gkeys = _frame_keys(gt[:, 0], np.rint(gt[:, 1]) - fmin, gt[:, 2], nf, num_classes)
    if conv.frames == "annotated" and len(det):
        annotated = np.unique(_frame_keys(gt[:, 0], np.rint(gt[:, 1]) - fmin, np.zeros(len(gt)), nf, 1))
        dkeys_f = _frame_keys(det[:, 0], np.rint(det[:, 1]) - fmin, np.zeros(len(det)), nf, 1)
        det = det[np.isin(dkeys_f, annotated)]
    dkeys = _frame_keys(det[:, 0], np.rint(det[:, 1]) - fmin, det[:, 2], nf, num_classes)
    ious, _ = _group_ious(dkeys, det[:, 4:8], gkeys, gt[:, 3:7], conv.plus_one)
    tp = _greedy_match(dkeys, det[:, 3], ious, iou, conv.frame_strict, conv.frame_match)
    return det[:, 2].astype(np.int64), det[:, 3], tp, num_gt


def frame_ap(
    detections: Mapping[str, np.ndarray],
    annotations: TubeAnnotations,
    videos: Sequence[str] | None = None,
    iou: float = 0.5,
    convention: str | Convention = "act",
) -> np.ndarray:
    """frame-AP per class (num_classes,) of per-frame detections ``{video: (M, 7) rows frame, label, score, x1, y1,
    x2, y2}`` on ``videos`` (default: every annotated video; pass the split's test list). Detections of other videos
    are left out; a listed video without detections only has misses. Classes without ground truth in these videos
    get ``empty_class_ap`` (NaN for ``act``: left out of the mean).
    """
    conv = get_convention(convention)
    labels, scores, tp, num_gt = frame_scores(detections, annotations, videos, iou, conv)
    return _class_aps(labels, scores, tp, num_gt, conv)


def frame_map(
    detections: Mapping[str, np.ndarray],
    annotations: TubeAnnotations,
    videos: Sequence[str] | None = None,
    iou: float = 0.5,
    convention: str | Convention = "act",
) -> dict:
    """frame-mAP with its per-class APs: ``{"frame_map", "per_class", "num_gt", "num_detections", "iou",
    "classes", "convention"}`` (JSON-ready; NaN classes are left out of ``frame_map``)."""
    conv = get_convention(convention)
    labels, scores, tp, num_gt = frame_scores(detections, annotations, videos, iou, conv)
    aps = _class_aps(labels, scores, tp, num_gt, conv)
    return {
        "frame_map": mean_ap(aps),
        "per_class": aps.tolist(),
        "num_gt": num_gt.tolist(),
        "num_detections": np.bincount(labels, minlength=len(num_gt)).tolist(),
        "iou": float(iou),
        "classes": list(annotations.classes),
        "convention": conv.name,
    }


# ------------------------------------------------------------------------------------------------------- tubes
@dataclass
class _TubeRows:
    """Tubes flattened: per box row its tube index, frame and box; per tube its first and last frame."""

    tube: np.ndarray
    frame: np.ndarray
    box: np.ndarray
    start: np.ndarray
    end: np.ndarray

    @property
    def count(self) -> int:
        return len(self.start)


def _tube_rows(boxes: Sequence[np.ndarray], conv: Convention | None = None) -> _TubeRows:
    n = len(boxes)
    lens = np.array([len(b) for b in boxes], dtype=np.int64)
    cat = np.concatenate([np.asarray(b, dtype=np.float64).reshape(-1, 5) for b in boxes]) if n else np.zeros((0, 5))
    frame = np.rint(cat[:, 0]).astype(np.int64)
    box = cat[:, 1:5].copy()
    if conv is not None and (conv.tube_det_shift or conv.tube_det_widen):
        box += conv.tube_det_shift
        box[:, 2:] += conv.tube_det_widen
    ends = np.cumsum(lens)
    nonempty = lens > 0
    start = np.full(n, 1, dtype=np.int64)
    end = np.zeros(n, dtype=np.int64)  # empty tubes: end < start, no overlap with anything
    start[nonempty] = frame[ends[nonempty] - lens[nonempty]]
    end[nonempty] = frame[ends[nonempty] - 1]
    return _TubeRows(np.repeat(np.arange(n), lens), frame, box, start, end)


def _ious_with_tube(rows: _TubeRows, gt: np.ndarray, conv: Convention) -> np.ndarray:
    """st-IoU (or spatial-only IoU) of every tube in ``rows`` with the tube ``gt`` (G, 5).

    The mean spatial IoU runs over every frame of the temporal intersection; a frame where either tube has no box
    counts 0 (ACT needs both tubes to have every frame there; ROAD's MATLAB reuses the previous frame's box).
    """
    gt = np.asarray(gt, dtype=np.float64).reshape(-1, 5)
    if len(gt) == 0 or rows.count == 0:
        return np.zeros(rows.count)
    gf = np.rint(gt[:, 0]).astype(np.int64)
    g0, g1 = int(gf[0]), int(gf[-1])
    lut = np.full((g1 - g0 + 1, 4), np.nan)
    lut[gf - g0] = gt[:, 1:5]
    off = rows.frame - g0
    inside = np.flatnonzero((off >= 0) & (off <= g1 - g0))
    gb = lut[off[inside]]
    known = ~np.isnan(gb[:, 0])
    spatial = np.zeros(len(inside))
    spatial[known] = _pairwise_rows_iou(rows.box[inside[known]], gb[known], conv.plus_one)
    sums = np.bincount(rows.tube[inside], weights=spatial, minlength=rows.count)
    inter = np.minimum(rows.end, g1) - np.maximum(rows.start, g0) + 1
    union = np.maximum(rows.end, g1) - np.minimum(rows.start, g0) + 1
    ok = inter >= max(conv.min_overlap_frames, 1)
    out = np.zeros(rows.count)
    out[ok] = sums[ok] / inter[ok]
    if conv.tube_iou == "spatiotemporal":
        out[ok] *= inter[ok] / union[ok]
    return out


def tube_iou(det: np.ndarray, gt: np.ndarray, convention: str | Convention = "act") -> float:
    """Spatio-temporal IoU of a detected tube and a ground-truth tube, (N, 5) and (M, 5) rows ``frame, x1, y1, x2,
    y2`` in increasing frame order: temporal IoU x the mean IoU over the temporal intersection (ACT ``iou3dt``);
    ``spatial`` convention: that mean alone. ``det`` gets the convention's box adjustments (ROAD's +1 px)."""
    conv = get_convention(convention)
    return float(_ious_with_tube(_tube_rows([np.asarray(det, dtype=np.float64)], conv), gt, conv)[0])


def _check_tube(video: str, i: int, tube: Tube, num_classes: int) -> np.ndarray:
    b = np.asarray(tube.boxes, dtype=np.float64)
    if b.ndim != 2 or b.shape[1] != 5:
        raise DatasetError(f"tubes of {video!r}: tube {i}: boxes of shape {b.shape}, expected (N, 5)")
    if not 0 <= int(tube.label) < num_classes or int(tube.label) != tube.label:
        raise DatasetError(f"tubes of {video!r}: tube {i}: label {tube.label} is not in 0..{num_classes - 1}")
    if len(b) > 1 and np.any(np.diff(b[:, 0]) <= 0):
        raise DatasetError(f"tubes of {video!r}: tube {i}: frames are not strictly increasing")
    return b


def tube_nms(boxes: Sequence[np.ndarray], scores: Sequence[float], overlap: float = 0.3,
             convention: str | Convention = "act") -> np.ndarray:
    """Indices of the tubes kept by ACT's ``nms3dt``: best score first, dropping tubes whose st-IoU with a kept
    one exceeds ``overlap``."""
    conv = get_convention(convention)
    rows = _tube_rows([np.asarray(b, dtype=np.float64) for b in boxes])
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    alive = np.ones(len(order), dtype=bool)
    keep = []
    for i in order:
        if not alive[i]:
            continue
        keep.append(i)
        alive[i] = False
        alive &= _ious_with_tube(rows, boxes[i], conv) <= overlap
    return np.asarray(keep, dtype=np.int64)


def _video_matches(
    tubes: Mapping[str, Sequence[Tube]], annotations: TubeAnnotations, videos: Sequence[str] | None,
    conv: Convention,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every scored tube's group (video x class), label, score and st-IoU with its group's ground truths (-inf
    padded), and the ground-truth tubes per class."""
    names = _video_list(annotations, videos)
    num_classes = len(annotations.classes)
    num_gt = np.zeros(num_classes, dtype=np.int64)
    groups, labels, scores, iou_blocks = [], [], [], []
    kmax = 0
    for vi, v in enumerate(names):
        gts_by_class: dict[int, list[np.ndarray]] = {}
        for t in annotations.videos[v].tubes:
            gts_by_class.setdefault(int(t.label), []).append(np.asarray(t.boxes, dtype=np.float64))
            num_gt[int(t.label)] += 1
        dets_by_class: dict[int, list[tuple[np.ndarray, float]]] = {}
        for i, t in enumerate(tubes.get(v, ()) or ()):
            b = _check_tube(v, i, t, num_classes)
            dets_by_class.setdefault(int(t.label), []).append((b, float(t.score)))
        for c, dets in dets_by_class.items():
            boxes = [b for b, _ in dets]
            sc = np.array([s for _, s in dets], dtype=np.float64)
            if conv.tube_nms is not None:
                keep = np.sort(tube_nms(boxes, sc, conv.tube_nms, conv))
                boxes, sc = [boxes[k] for k in keep], sc[keep]
            gts = gts_by_class.get(c, [])
            rows = _tube_rows(boxes, conv)
            block = np.stack([_ious_with_tube(rows, g, conv) for g in gts], axis=1) if gts else np.zeros((len(sc), 0))
            kmax = max(kmax, block.shape[1])
            groups.append(np.full(len(sc), vi * num_classes + c, dtype=np.int64))
            labels.append(np.full(len(sc), c, dtype=np.int64))
            scores.append(sc)
            iou_blocks.append(block)
    ious = np.full((sum(len(s) for s in scores), kmax), -np.inf)
    row = 0
    for block in iou_blocks:
        ious[row : row + len(block), : block.shape[1]] = block
        row += len(block)

    def cat(parts: list[np.ndarray], dtype) -> np.ndarray:
        return np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)

    return cat(groups, np.int64), cat(labels, np.int64), cat(scores, np.float64), ious, num_gt


def video_aps(
    tubes: Mapping[str, Sequence[Tube]],
    annotations: TubeAnnotations,
    videos: Sequence[str] | None = None,
    deltas: Sequence[float] = DELTAS,
    convention: str | Convention = "act",
) -> np.ndarray:
    """video-AP per delta and class, (len(deltas), num_classes), computing the st-IoUs once."""
    conv = get_convention(convention)
    groups, labels, scores, ious, num_gt = _video_matches(tubes, annotations, videos, conv)
    out = np.empty((len(deltas), len(num_gt)))
    for k, delta in enumerate(deltas):
        tp = _greedy_match(groups, scores, ious, float(delta), conv.video_strict, "remaining")
        out[k] = _class_aps(labels, scores, tp, num_gt, conv)
    return out


def video_ap(
    tubes: Mapping[str, Sequence[Tube]],
    annotations: TubeAnnotations,
    videos: Sequence[str] | None = None,
    delta: float = 0.5,
    convention: str | Convention = "act",
) -> np.ndarray:
    """video-AP per class (num_classes,) of detected tubes ``{video: [Tube]}`` (``Tube.score`` ranks them) on
    ``videos`` (default: every annotated video). Other videos' tubes are left out; classes without ground-truth
    tubes get ``empty_class_ap`` (NaN for ``act``). For several deltas use ``video_aps``: it computes the IoUs once.
    """
    return video_aps(tubes, annotations, videos, (delta,), convention)[0]


def _key(delta: float) -> str:
    return f"{delta:g}"


def video_map_table(
    tubes: Mapping[str, Sequence[Tube]],
    annotations: TubeAnnotations,
    videos: Sequence[str] | None = None,
    deltas: Sequence[float] = DELTAS,
    convention: str | Convention = "act",
) -> dict:
    """video-mAP at each delta and at "0.5:0.95" (the mean of video-mAP at 0.50, 0.55, ..., 0.95):
    ``{"video_map": {"0.2": .., "0.5": .., "0.75": .., "0.5:0.95": ..}, "per_class": {same keys: [AP per class]},
    "num_gt", "num_tubes", "classes", "convention"}``; per-class "0.5:0.95" is each class's mean over the 10 deltas.
    """
    conv = get_convention(convention)
    all_deltas = list(dict.fromkeys([float(d) for d in deltas] + list(COCO_DELTAS)))
    aps = video_aps(tubes, annotations, videos, all_deltas, conv)
    by_delta = dict(zip(all_deltas, aps))
    table = {_key(d): by_delta[float(d)] for d in deltas}
    coco = np.stack([by_delta[d] for d in COCO_DELTAS])
    names = _video_list(annotations, videos)
    num_gt = np.zeros(len(annotations.classes), dtype=np.int64)
    num_tubes = np.zeros(len(annotations.classes), dtype=np.int64)
    for v in names:
        for t in annotations.videos[v].tubes:
            num_gt[int(t.label)] += 1
        for t in tubes.get(v, ()) or ():
            num_tubes[int(t.label)] += 1
    with np.errstate(invalid="ignore"):
        coco_class = np.full(coco.shape[1], np.nan)
        finite = ~np.isnan(coco).any(axis=0)
        coco_class[finite] = coco[:, finite].mean(axis=0)
    video_map = {k: mean_ap(v) for k, v in table.items()}
    video_map["0.5:0.95"] = float(np.mean([mean_ap(a) for a in coco]))
    per_class = {k: v.tolist() for k, v in table.items()}
    per_class["0.5:0.95"] = coco_class.tolist()
    return {
        "video_map": video_map,
        "per_class": per_class,
        "num_gt": num_gt.tolist(),
        "num_tubes": num_tubes.tolist(),
        "classes": list(annotations.classes),
        "convention": conv.name,
    }


# ---------------------------------------------------------------------------------------------------- Metrics
class _ActionMetric(Metric):
    """Shared DDP plumbing: 1-D float64 list states reduced by concatenation, videos as indices into the
    annotation's video list."""

    full_state_update = False
    _STATES: tuple[str, ...] = ()

    def __init__(self, annotations: TubeAnnotations, videos: Sequence[str] | None = None,
                 convention: str | Convention = "act", **kwargs) -> None:
        super().__init__(**kwargs)
        self.annotations = annotations
        self.convention = get_convention(convention)
        self.video_names = list(annotations.videos)
        self.video_index = {v: i for i, v in enumerate(self.video_names)}
        self.videos = None if videos is None else _video_list(annotations, videos)
        for name in ("seen", *self._STATES):
            self.add_state(name, default=[], dist_reduce_fx="cat")

    def _index(self, video: str) -> int:
        if video not in self.video_index:
            raise DatasetError(f"video {video!r} is not in the {self.annotations.dataset} annotation")
        return self.video_index[video]

    def _append(self, name: str, values: np.ndarray) -> None:
        getattr(self, name).append(torch.as_tensor(np.ascontiguousarray(values, dtype=np.float64).ravel(),
                                                   device=self.device))

    def _sync_dist(self, dist_sync_fn=None, process_group=None) -> None:
        # a rank without updates would offer torchmetrics' float32 placeholder: give it an empty float64 instead
        for name in ("seen", *self._STATES):
            if isinstance(getattr(self, name), list) and not getattr(self, name):
                setattr(self, name, [torch.zeros(0, dtype=torch.float64, device=self.device)])
        super()._sync_dist(dist_sync_fn=dist_sync_fn, process_group=process_group)

    def _state(self, name: str, width: int) -> np.ndarray:
        value = getattr(self, name)
        value = dim_zero_cat(value) if isinstance(value, list) and value else value
        if isinstance(value, list):
            return np.zeros((0, width))
        return value.detach().to("cpu", torch.float64).numpy().reshape(-1, width)

    def _scored_videos(self) -> list[str]:
        if self.videos is not None:
            return self.videos
        seen = np.unique(self._state("seen", 1)[:, 0].astype(np.int64))
        return [self.video_names[i] for i in seen]


class FrameMAP(_ActionMetric):
    """frame-mAP over videos, ``update(video, detections)`` with (M, 7) rows ``frame, label, score, x1, y1, x2,
    y2`` (several updates per video add up). ``compute`` is ``frame_map`` on ``videos`` (default: the videos
    updated on any rank, in the annotation's order), so it equals the plain function however videos are split
    across DDP ranks."""

    _STATES = ("detections",)

    def __init__(self, annotations: TubeAnnotations, videos: Sequence[str] | None = None, iou: float = 0.5,
                 convention: str | Convention = "act", **kwargs) -> None:
        super().__init__(annotations, videos, convention, **kwargs)
        self.iou = float(iou)

    def update(self, video: str, detections: np.ndarray | torch.Tensor) -> None:
        vi = self._index(video)
        if isinstance(detections, torch.Tensor):
            detections = detections.detach().cpu().numpy()
        d = np.asarray(detections, dtype=np.float64).reshape(-1, 7) if np.size(detections) else np.zeros((0, 7))
        self._append("seen", np.array([vi]))
        self._append("detections", np.column_stack([np.full(len(d), vi), d]))

    def compute(self) -> dict:
        rows = self._state("detections", 8)
        names = self._scored_videos()
        by_video = _split_rows(rows, self.video_names)
        return frame_map(by_video, self.annotations, names, self.iou, self.convention)


class VideoMAP(_ActionMetric):
    """video-mAP at ``deltas`` and 0.5:0.95 over videos, ``update(video, tubes)`` with a list of ``Tube``.
    ``compute`` is ``video_map_table`` on ``videos`` (default: the videos updated on any rank)."""

    _STATES = ("tube_meta", "tube_boxes")

    def __init__(self, annotations: TubeAnnotations, videos: Sequence[str] | None = None,
                 deltas: Sequence[float] = DELTAS, convention: str | Convention = "act", **kwargs) -> None:
        super().__init__(annotations, videos, convention, **kwargs)
        self.deltas = tuple(float(d) for d in deltas)

    def update(self, video: str, tubes: Sequence[Tube]) -> None:
        vi = self._index(video)
        self._append("seen", np.array([vi]))
        tubes = list(tubes)
        meta = np.array([[vi, t.label, t.score, len(t.boxes)] for t in tubes], dtype=np.float64).reshape(-1, 4)
        boxes = [np.asarray(t.boxes, dtype=np.float64).reshape(-1, 5) for t in tubes]
        self._append("tube_meta", meta)
        self._append("tube_boxes", np.concatenate(boxes) if boxes else np.zeros((0, 5)))

    def compute(self) -> dict:
        from datamodules.action_tubes import Tube

        meta, boxes = self._state("tube_meta", 4), self._state("tube_boxes", 5)
        ends = np.cumsum(meta[:, 3].astype(np.int64))
        tubes: dict[str, list[Tube]] = {}
        for (vi, label, score, n), end in zip(meta, ends):
            tube = Tube(int(label), boxes[end - int(n) : end], float(score))
            tubes.setdefault(self.video_names[int(vi)], []).append(tube)
        return video_map_table(tubes, self.annotations, self._scored_videos(), self.deltas, self.convention)


def _split_rows(rows: np.ndarray, names: Sequence[str]) -> dict[str, np.ndarray]:
    """Rows ``video index, ...`` as ``{video: rows without the index}``, keeping their order."""
    if len(rows) == 0:
        return {}
    vid = rows[:, 0].astype(np.int64)
    order = np.argsort(vid, kind="stable")
    vid, rows = vid[order], rows[order]
    cuts = np.flatnonzero(np.diff(vid)) + 1
    return {names[int(chunk[0, 0])]: chunk[:, 1:] for chunk in np.split(rows, cuts)}
