"""Per-frame boxes for tube linking: reading the detections array, box overlap, NMS, and the action path.

Detections are float64 arrays of rows ``frame, label, score, x1, y1, x2, y2`` (frames 1-based, labels 0-based, boxes in
pixels; ``datamodules.action_tubes``). ROAD's linking (``online-tubes/actionpath/actionPaths.m``) works on boxes that
carry a score for every class (``allScores``: SSD decodes one box per prior and scores it for all classes); here a
box's score vector is gathered from the rows that share its frame and coordinates exactly, so a detector that writes
one row per class for the same box gives ROAD's input, and a class without a row scores 0.

Everything here works on all the boxes of a video at once (one sort, no Python object per box): :func:`group_boxes`
gathers the rows, :func:`per_frame_nms` runs the per-frame, per-class filtering of every (frame, class) in a few
array operations (:func:`grouped_nms`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from zoo.errors import DatasetError


@dataclass
class ActionPath:
    """One linked path of class ``label`` before temporal trimming: ``frames`` (K,) consecutive frame numbers,
    ``boxes`` (K, 4) x1, y1, x2, y2, ``all_scores`` (K, C) the boxes' class scores (``scores`` is the path's class
    column), and ``energy`` the path score of whole-video Viterbi linking (Gkioxari & Malik's ``total_score``)."""

    label: int
    frames: np.ndarray
    boxes: np.ndarray
    all_scores: np.ndarray
    energy: float = 0.0

    @property
    def scores(self) -> np.ndarray:
        return self.all_scores[:, self.label]


@dataclass
class FrameBoxes:
    """The distinct boxes of a video: ``boxes`` (U, 4), ``scores`` (U, C) with 0 where a class has no row,
    ``present`` (U, C) whether a row gave that class, ``frames`` (U,) their frame numbers, and
    ``start[f] : start[f + 1]`` the boxes of frame ``f`` (1-based; ``start`` has ``num_frames + 2`` entries) in the
    order of their first row."""

    boxes: np.ndarray
    scores: np.ndarray
    present: np.ndarray
    start: np.ndarray
    frames: np.ndarray

    def frame(self, f: int) -> np.ndarray:
        """Indices of frame ``f``'s boxes."""
        return np.arange(self.start[f], self.start[f + 1])


@dataclass
class FrameCandidates:
    """Boxes kept by a per-frame, per-class filter (:func:`per_frame_nms`): ``box`` (N,) indices into a
    :class:`FrameBoxes`, ``label`` (N,) their class, ordered by frame, then class, then rank (best first);
    ``start[f] : start[f + 1]`` are frame ``f``'s."""

    box: np.ndarray
    label: np.ndarray
    start: np.ndarray


def check_detections(detections: np.ndarray, num_frames: int, num_classes: int) -> np.ndarray:
    """``detections`` as an (M, 7) float64 array; a bad row raises one ``DatasetError`` line naming it."""
    det = np.asarray(detections, dtype=np.float64)
    if det.size == 0:
        return np.zeros((0, 7))
    if det.ndim != 2 or det.shape[1] != 7:
        raise DatasetError(f"detections: expected rows frame,label,score,x1,y1,x2,y2 (M, 7), got shape {det.shape}")
    bad = ~np.isfinite(det).all(axis=1)
    frames, labels = det[:, 0], det[:, 1]
    bad |= (frames != np.round(frames)) | (frames < 1) | (frames > num_frames)
    bad |= (labels != np.round(labels)) | (labels < 0) | (labels >= num_classes)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DatasetError(
            f"detections row {i}: {det[i].tolist()} is not frame 1..{num_frames}, label 0..{num_classes - 1}, "
            f"finite score and box ({int(bad.sum())} bad rows)"
        )
    return det


def group_starts(keys: np.ndarray) -> np.ndarray:
    """Where each run of equal rows of ``keys`` (N,) or (N, k), already sorted, starts: a bool (N,) mask."""
    new = np.ones(len(keys), dtype=bool)
    if len(keys) > 1:
        keys = keys.reshape(len(keys), -1)
        new[1:] = (keys[1:] != keys[:-1]).any(axis=1)
    return new


def _distinct_rows(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct rows of ``keys`` (N, k) float64: each row's group id and each group's first row. Runs of equal
    rows (a detector's rows for one box, one per class) are merged before the sort."""
    keys = (keys + 0.0).view(np.dtype((np.void, keys.itemsize * keys.shape[1]))).ravel()  # -0.0 -> 0.0: one key
    head = np.ones(len(keys), dtype=bool)
    head[1:] = keys[1:] != keys[:-1]
    heads = np.flatnonzero(head)
    rows = heads[np.argsort(keys[heads], kind="stable")]  # equal keys together, in row order
    new = np.ones(len(rows), dtype=bool)
    new[1:] = keys[rows[1:]] != keys[rows[:-1]]
    group = np.empty(len(keys), dtype=np.int64)
    group[rows] = np.cumsum(new) - 1
    return group[heads[np.cumsum(head) - 1]], rows[new]


def group_boxes(detections: np.ndarray, num_frames: int, num_classes: int) -> FrameBoxes:
    """Gather rows with the same frame and box into one box with a class-score vector (the max if a class
    repeats)."""
    det = check_detections(detections, num_frames, num_classes)
    if len(det) == 0:
        empty = np.zeros((0, num_classes))
        return FrameBoxes(np.zeros((0, 4)), empty, empty.astype(bool), np.zeros(num_frames + 2, dtype=np.int64),
                          np.zeros(0, dtype=np.int64))
    box_id, first = _distinct_rows(np.ascontiguousarray(det[:, [0, 3, 4, 5, 6]]))
    order = np.lexsort((first, det[first, 0]))  # boxes by frame, then by first row
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    box_id = rank[box_id]
    scores = np.full((len(order), num_classes), -np.inf)
    np.maximum.at(scores, (box_id, det[:, 1].astype(np.int64)), det[:, 2])
    present = np.isfinite(scores)
    scores[~present] = 0.0
    kept = first[order]
    frames = det[kept, 0].astype(np.int64)
    start = np.searchsorted(frames, np.arange(num_frames + 2))
    return FrameBoxes(det[kept, 3:7].copy(), scores, present, start, frames)


def box_area(boxes: np.ndarray, plus_one: bool = False) -> np.ndarray:
    """Areas of boxes given coordinates first, (4, ...) x1, y1, x2, y2; ``plus_one`` counts the last pixel (width
    x2 - x1 + 1)."""
    p = 1.0 if plus_one else 0.0
    return (boxes[2] - boxes[0] + p) * (boxes[3] - boxes[1] + p)


def pair_iou(a: np.ndarray, b: np.ndarray, plus_one: bool = False, area_a: np.ndarray | None = None,
             area_b: np.ndarray | None = None) -> np.ndarray:
    """IoU of boxes ``a`` and ``b`` given coordinates first, (4, ...) x1, y1, x2, y2, element by element with
    broadcasting; ``plus_one`` counts the last pixel (width x2 - x1 + 1, as MATLAB's ``rectint`` on
    ``[x, y, x2 - x + 1, y2 - y + 1]`` in ROAD and Action Tubes). ``area_a``, ``area_b``: their :func:`box_area` if
    known. Boxes without area overlap nothing (IoU 0)."""
    p = 1.0 if plus_one else 0.0
    wh = np.minimum(a[2:], b[2:]) - np.maximum(a[:2], b[:2]) + p  # intersection width, height
    wh = np.maximum(wh, 0.0)
    inter = wh[0] * wh[1]
    area_a = box_area(a, plus_one) if area_a is None else area_a
    area_b = box_area(b, plus_one) if area_b is None else area_b
    union = area_a + area_b - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def box_iou(a: np.ndarray, b: np.ndarray, plus_one: bool = False) -> np.ndarray:
    """IoU of boxes ``a`` (N, 4) and ``b`` (M, 4) as an (N, M) array (:func:`pair_iou`)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    return pair_iou(a.T[:, :, None], b.T[:, None, :], plus_one)


def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float, plus_one: bool = False,
        limit: int | None = None) -> np.ndarray:
    """Greedy NMS (the voc-release ``nms.m`` that ROAD and Action Tubes call): the best box is kept and boxes
    overlapping it by IoU > ``threshold`` are dropped; returns kept indices best first, at most ``limit``. Ties go
    as in MATLAB's stable ascending sort picked from the end (the later box first)."""
    order = np.argsort(scores, kind="stable")[::-1]
    overlap = box_iou(boxes[order], boxes[order], plus_one) > threshold
    suppressed = np.zeros(len(order), dtype=bool)
    keep: list[int] = []
    for i in range(len(order)):
        if suppressed[i]:
            continue
        if limit is not None and len(keep) >= limit:
            break
        keep.append(int(order[i]))
        suppressed |= overlap[i]
    return np.asarray(keep, dtype=np.int64)


def grouped_nms(boxes: np.ndarray, group: np.ndarray, threshold: float, plus_one: bool = False,
                limit: int | None = None) -> np.ndarray:
    """:func:`nms` of many groups at once: ``boxes`` (N, 4) sorted by ``group`` (N,) and, within a group, best first;
    returns the kept mask (N,). Each round keeps every group's first box not yet kept or suppressed and suppresses
    the boxes overlapping it, so a group's kept boxes are the greedy ones, in order, at most ``limit``. Groups of
    like size (within a factor 2) are padded together, so one crowded frame does not pad every other."""
    n = len(boxes)
    if n == 0:
        return np.zeros(0, dtype=bool)
    first = np.flatnonzero(group_starts(group))
    sizes = np.diff(np.append(first, n))
    bucket = np.repeat(np.ceil(np.log2(sizes)).astype(np.int64), sizes)
    if bucket[0] == bucket[-1] and (bucket == bucket[0]).all():
        return _padded_nms(boxes, group, threshold, plus_one, limit)
    keep = np.zeros(n, dtype=bool)
    for b in np.unique(bucket):
        rows = bucket == b  # whole groups, in their order
        keep[rows] = _padded_nms(boxes[rows], group[rows], threshold, plus_one, limit)
    return keep


def _padded_nms(boxes: np.ndarray, group: np.ndarray, threshold: float, plus_one: bool, limit: int | None
                ) -> np.ndarray:
    """:func:`grouped_nms` with every group padded to the largest."""
    n = len(boxes)
    first = np.flatnonzero(group_starts(group))
    sizes = np.diff(np.append(first, n))
    gid = np.repeat(np.arange(len(first)), sizes)
    pos = np.arange(n) - first[gid]
    padded = np.zeros((4, len(first), int(sizes.max())))  # coordinates first
    padded[:, gid, pos] = boxes.T
    area = box_area(padded, plus_one)
    alive = np.zeros(padded.shape[1:], dtype=bool)
    alive[gid, pos] = True
    kept = np.zeros_like(alive)
    rounds = padded.shape[2] if limit is None else min(padded.shape[2], limit)
    todo = np.arange(len(first))
    for _ in range(rounds):
        todo = todo[alive[todo].any(axis=1)]
        if todo.size == 0:
            break
        best = alive[todo].argmax(axis=1)
        kept[todo, best] = True
        alive[todo, best] = False
        iou = pair_iou(padded[:, todo, best][:, :, None], padded[:, todo], plus_one, area[todo, best][:, None],
                       area[todo])
        alive[todo] &= ~(iou > threshold)
    return kept[gid, pos]


def per_frame_nms(fb: FrameBoxes, mask: np.ndarray, threshold: float, plus_one: bool = False,
                  limit: int | None = None, pre_nms_topk: int | None = None) -> FrameCandidates:
    """Per frame and class, the boxes with ``mask`` (U, C) true, the best ``pre_nms_topk``, greedy NMS at
    ``threshold``, the best ``limit`` kept: every (frame, class) at once. As ROAD's ``dofilter`` (``actionPaths.m``)
    and Action Tubes' per-frame NMS: the top-k takes score ties in box order (MATLAB's stable descending sort),
    NMS the later box first (:func:`nms`). ``limit`` and ``pre_nms_topk``: None (all) or >= 1."""
    if (limit is not None and limit < 1) or (pre_nms_topk is not None and pre_nms_topk < 1):
        raise ValueError(f"per-frame NMS keeps at least one box: limit {limit}, pre_nms_topk {pre_nms_topk}")
    box, label = np.nonzero(mask)
    score = fb.scores[box, label]
    group = fb.frames[box] * mask.shape[1] + label  # (frame, class), in frame then class order
    order = np.lexsort((box, -score, group))  # best first, the earlier box first on ties (top-k order)
    box, score, group = box[order], score[order], group[order]
    first = np.flatnonzero(group_starts(group))
    sizes = np.diff(np.append(first, len(box)))
    if pre_nms_topk is not None:
        top = np.arange(len(box)) - np.repeat(first, sizes) < pre_nms_topk
        box, score, group, sizes = box[top], score[top], group[top], np.minimum(sizes, pre_nms_topk)
    if ((score[1:] == score[:-1]) & (group[1:] == group[:-1])).any():  # NMS order: the later box first on ties
        order = np.lexsort((-box, -score, group))
        box, group = box[order], group[order]
    keep = np.ones(len(box), dtype=bool)
    several = np.repeat(sizes, sizes) > 1  # a lone box is kept
    keep[several] = grouped_nms(fb.boxes[box[several]], group[several], threshold, plus_one, limit)
    box, group = box[keep], group[keep]
    frame, label = np.divmod(group, mask.shape[1])
    return FrameCandidates(box, label, np.searchsorted(frame, np.arange(len(fb.start))))


def fill_gaps(frames: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Consecutive frames from the first to the last found frame; a missing frame takes the box found next (ROAD's
    ``fill_gaps`` in ``incremental_linking.m``). Returns (frames, box rows)."""
    full = np.arange(frames[0], frames[-1] + 1)
    return full, rows[np.searchsorted(frames, full, side="left")]
