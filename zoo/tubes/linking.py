"""ROAD's online tube linking (Singh et al., ICCV 2017) as in its released MATLAB
(``gurkirt/realtime-action-detection`` ``online-tubes/``): per class, per-frame filtering (``actionPaths.m``
``dofilter``), incremental linking of boxes by score and overlap (``incremental_linking.m``), then temporal labelling
by Viterbi (:func:`zoo.tubes.trim_tubes`).

Per class and frame: boxes scoring > 0.001 for the class, the best 50, NMS at 0.45, the best 10. Each frame, the live
paths, best first (by the mean of their best ``jump_gap + 1`` scores), each take the best-scoring box (``cost``) among
those overlapping their last box by IoU >= 0.1 that no better path took; a path that finds nothing for ``jump_gap``
(3) frames in a row ends; boxes left start new paths. A path's missed frames take its next box, and paths with fewer
than ``min_matches`` matched boxes are dropped.

Classes never interact, so the linking runs frame by frame for all classes at once: the per-frame filter of every
(frame, class) is a few array operations (:func:`zoo.tubes.boxes.per_frame_nms`), the live paths of every class are
the rows of two arrays (:class:`LivePaths`), the edge scores of a frame are computed for every (path, candidate) pair
of the same class in one go (:func:`edge_scores`), and the greedy choice of ``incremental_linking.m`` is made for all
paths at once where no two paths want the same box (:func:`assign_boxes`). A path's boxes are recorded as the owner
of each candidate (:class:`Candidates`). The results are those of the per-class loops of the MATLAB code, to the last
bit: the same sums in the same order, the same tie-breaking (``tests/test_tube_linking.py`` keeps those loops as the
reference).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial

import numpy as np

from datamodules.action_tubes import Tube, TubeAnnotations
from zoo.errors import DatasetError
from zoo.tubes.boxes import (
    ActionPath,
    FrameBoxes,
    FrameCandidates,
    box_area,
    group_boxes,
    pair_iou,
    per_frame_nms,
)
from zoo.tubes.viterbi import link_viterbi, trim_tubes

COSTS = ("score", "scrSim", "scrMinusSim")
METHODS = ("online", "viterbi")


def frame_candidates(fb: FrameBoxes, score_threshold: float = 0.001, pre_nms_topk: int = 50,
                     nms_threshold: float = 0.45, boxes_per_frame: int = 10) -> FrameCandidates:
    """ROAD's ``dofilter`` for every class and frame: boxes scoring > ``score_threshold`` for the class, the best
    ``pre_nms_topk``, NMS (no +1 pixel), the best ``boxes_per_frame``."""
    return per_frame_nms(fb, fb.scores > score_threshold, nms_threshold, plus_one=False, limit=boxes_per_frame,
                         pre_nms_topk=pre_nms_topk)


@dataclass
class Candidates:
    """A video's candidate boxes (:func:`frame_candidates`), indexed by candidate: ``box`` (N,) box index,
    ``label``, ``score`` (the class score), ``coords`` (4, N) and ``area`` (+1 pixel) of the box; ``start[t] :
    start[t + 1]`` are frame ``t``'s; ``owner`` (N,) the path that took each (-1: none yet)."""

    box: np.ndarray
    label: np.ndarray
    score: np.ndarray
    start: np.ndarray
    coords: np.ndarray
    area: np.ndarray
    owner: np.ndarray

    @classmethod
    def build(cls, fb: FrameBoxes, cand: FrameCandidates) -> Candidates:
        coords = np.ascontiguousarray(fb.boxes[cand.box].T)
        return cls(cand.box, cand.label, fb.scores[cand.box, cand.label], cand.start, coords,
                   box_area(coords, plus_one=True), np.full(len(cand.box), -1))


@dataclass
class LivePaths:
    """The live paths of every class, one row each (``live_paths`` of ``incremental_linking.m``): ``ids`` (P, 4)
    columns path id, class, last candidate, frames since the last match (``lastfound``), and ``best`` (P, jump_gap
    + 1) the best scores so far, ascending, -inf where a path has fewer. Each class's rows are in ROAD's order;
    ``count`` paths were started."""

    ids: np.ndarray
    best: np.ndarray
    count: int = 0

    @property
    def pid(self) -> np.ndarray:
        return self.ids[:, 0]

    @property
    def label(self) -> np.ndarray:
        return self.ids[:, 1]

    @property
    def last(self) -> np.ndarray:
        return self.ids[:, 2]

    @property
    def missed(self) -> np.ndarray:
        return self.ids[:, 3]

    def __len__(self) -> int:
        return len(self.ids)

    def take(self, rows: np.ndarray) -> None:
        """Keep ``rows`` (indices or a mask), in that order."""
        self.ids, self.best = self.ids[rows], self.best[rows]

    def matched(self, rows: np.ndarray, cands: np.ndarray, scores: np.ndarray) -> None:
        """Rows ``rows`` take candidates ``cands`` of class score ``scores``; the others missed this frame."""
        self.ids[:, 3] += 1
        self.ids[rows, 3] = 0
        self.ids[rows, 2] = cands
        best = np.sort(np.concatenate([self.best[rows], scores[:, None]], axis=1), axis=1)
        self.best[rows] = best[:, 1:]  # drops a -inf, or the lowest of jump_gap + 2 scores

    def order_score(self) -> np.ndarray:
        """``path_order_score``: the mean of the best ``jump_gap + 1`` scores, summed in ascending order."""
        found = self.best > -np.inf
        total = np.where(found, self.best, 0.0).cumsum(axis=1)[:, -1]
        return total / found.sum(axis=1)

    def start(self, cands: np.ndarray, labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """New paths from candidates ``cands``, after the existing ones; returns their ids."""
        pid = np.arange(self.count, self.count + len(cands))
        self.count += len(cands)
        ids = np.zeros((len(cands), 4), dtype=np.int64)
        ids[:, 0], ids[:, 1], ids[:, 2] = pid, labels, cands
        best = np.full((len(cands), self.best.shape[1]), -np.inf)
        best[:, -1] = scores
        self.ids = np.concatenate([self.ids, ids])
        self.best = np.concatenate([self.best, best])
        return pid


def same_class_pairs(path_label: np.ndarray, box_label: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every (path, box) pair of the same class as (rows, columns), path by path, boxes in order; ``box_label``
    sorted."""
    lo = box_label.searchsorted(path_label, side="left")
    n = box_label.searchsorted(path_label, side="right") - lo
    rows = np.arange(len(path_label)).repeat(n)
    cols = np.arange(len(rows)) - (n.cumsum() - n - lo).repeat(n)
    return rows, cols


def edge_scores(fb: FrameBoxes, cand: Candidates, live: LivePaths, frame: slice, iou_threshold: float,
                cost: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``score_of_edge`` of every live path and each candidate of its class in ``frame``, as (path, column, score)
    pairs, path by path, candidates in order: 0 where the IoU of the candidate with the path's last box (+1 pixel
    areas) is below ``iou_threshold``. (Pairs across classes score 0 and are left out.)"""
    rows, cols = same_class_pairs(live.label, cand.label[frame])
    last, box = live.last[rows], frame.start + cols
    iou = pair_iou(cand.coords.take(last, axis=1), cand.coords.take(box, axis=1), True, cand.area[last],
                   cand.area[box])
    if cost == "score":
        value = cand.score[box]
    else:
        dist = np.linalg.norm(fb.scores[cand.box[last]] - fb.scores[cand.box[box]], axis=1)
        value = 1.0 - dist if cost == "scrSim" else cand.score[box] + 1.0 - dist
    return rows, cols, np.where(iou >= iou_threshold, value, 0.0)


def _assign_in_order(rows: np.ndarray, cols: np.ndarray, value: np.ndarray, match: np.ndarray) -> np.ndarray:
    """``incremental_linking.m``'s loop as written, path by path: a path matches when the sum of its edge scores
    (over its class's candidates) is > 0, taking the best; that box's scores are then zeroed. Fills ``match``."""
    value = value.copy()
    bounds = np.searchsorted(rows, np.arange(len(match) + 1))
    for k in range(len(match)):
        row = value[bounds[k]:bounds[k + 1]]
        if row.sum() > 0:
            match[k] = cols[bounds[k] + int(row.argmax())]
            value[cols == match[k]] = 0.0
    return match


def assign_boxes(rows: np.ndarray, cols: np.ndarray, value: np.ndarray, num_paths: int,
                 nonnegative: bool = False) -> np.ndarray:
    """The greedy matching of ``incremental_linking.m``: paths (each class's best first) each take, in order, the
    best box left (first column on ties) with an edge score > 0. ``rows, cols, value``: the edge scores of
    :func:`edge_scores`. Returns each path's column or -1.

    With edge scores >= 0 (``nonnegative``, or checked), a path's choice can only change when an earlier path takes
    its box: when no two paths want the same box, all are settled at once; otherwise in rounds, each settling the
    paths whose box no earlier unsettled path has a positive edge to (at least the first of each class). Costs that
    can be negative (``scrSim``) take the path-by-path loop."""
    match = np.full(num_paths, -1)
    if not nonnegative and (value < 0).any():
        return _assign_in_order(rows, cols, value, match)
    positive = value > 0
    rows, cols, value = rows[positive], cols[positive], value[positive]
    if (rows[1:] == rows[:-1]).any():  # each path's edges, best first (the first column on ties)
        order = np.lexsort((cols, -value, rows))
        rows, cols = rows[order], cols[order]
    settled = taken = None
    while len(rows):
        head = np.ones(len(rows), dtype=bool)
        head[1:] = rows[1:] != rows[:-1]
        path, box = rows[head], cols[head]  # each unsettled path's best box left
        wanted = np.sort(box)
        if not (wanted[1:] == wanted[:-1]).any():  # no two paths want the same box
            match[path] = box
            return match
        boxes, first = np.unique(cols, return_index=True)  # the first path with an edge to each box
        safe = rows[first][boxes.searchsorted(box)] == path
        match[path[safe]] = box[safe]
        if settled is None:
            settled, taken = np.zeros(num_paths, dtype=bool), np.zeros(int(boxes[-1]) + 1, dtype=bool)
        settled[path[safe]], taken[box[safe]] = True, True
        left = ~settled[rows] & ~taken[cols]
        rows, cols = rows[left], cols[left]
    return match


def _link_frame(fb: FrameBoxes, cand: Candidates, live: LivePaths, frame: slice, iou_threshold: float,
                jump_gap: int, cost: str, nonnegative: bool) -> np.ndarray:
    """One frame of ``incremental_linking.m`` for every class: match, reorder (``sort_live_paths``), end paths.
    Returns the ids of the paths that ended, in ROAD's order."""
    match = assign_boxes(*edge_scores(fb, cand, live, frame, iou_threshold, cost), len(live), nonnegative)
    rows = (match >= 0).nonzero()[0]
    taken = frame.start + match[rows]
    cand.owner[taken] = live.pid[rows]
    live.matched(rows, taken, cand.score[taken])
    order = np.lexsort((-live.order_score(), live.label))  # stable, best first within each class
    ended = live.missed[order] >= jump_gap
    pid = live.pid[order[ended]]
    live.take(order[~ended])
    return pid


def _link_all(fb: FrameBoxes, num_frames: int, cand: Candidates, iou_threshold: float, jump_gap: int, cost: str,
              nonnegative: bool) -> tuple[np.ndarray, np.ndarray]:
    """``incremental_linking.m`` for all classes (fills ``cand.owner``); returns the paths in their final order
    (live paths as ordered at the last frame, then ended ones in the order they ended) and each path's class."""
    live = LivePaths(np.zeros((0, 4), dtype=np.int64), np.zeros((0, jump_gap + 1)))
    ended: list[np.ndarray] = []
    for t in range(1, num_frames + 1):
        frame = slice(int(cand.start[t]), int(cand.start[t + 1]))
        if len(live):
            ended.append(_link_frame(fb, cand, live, frame, iou_threshold, jump_gap, cost, nonnegative))
        new = frame.start + (cand.owner[frame] < 0).nonzero()[0]  # boxes left start new paths
        if len(new):
            cand.owner[new] = live.start(new, cand.label[new], cand.score[new])
    final = np.concatenate([live.pid, *ended])
    taken = cand.owner >= 0
    path_label = np.zeros(live.count, dtype=np.int64)
    path_label[cand.owner[taken]] = cand.label[taken]
    return final, path_label


def online_paths(detections: np.ndarray, num_frames: int, num_classes: int, *, score_threshold: float = 0.001,
                 pre_nms_topk: int = 50, nms_threshold: float = 0.45, boxes_per_frame: int = 10,
                 iou_threshold: float = 0.1, jump_gap: int = 3, min_matches: int = 4,
                 cost: str = "score") -> list[ActionPath]:
    """ROAD's action paths of a video (``actionPaths.m``), every class, each class's best first.

    ``score_threshold`` 0.001, ``pre_nms_topk`` 50, ``nms_threshold`` 0.45 (no +1 pixel), ``boxes_per_frame`` 10:
    ``dofilter``. ``iou_threshold``: a box extends a path when its IoU with the path's last box (+1 pixel areas)
    is >= 0.1 (``iouth``, ``I01onlineTubes.m``). ``jump_gap``: a path ends after 3 frames in a row without a match
    (``gap``). ``min_matches``: paths with fewer matched boxes are dropped (``fill_gaps`` keeps more than ``gap``).
    ``cost``: the link score, ``"score"`` (the box's class score; ROAD's setting), ``"scrSim"`` (1 - L2 distance of
    the class-score vectors) or ``"scrMinusSim"`` (their sum). Paths are ordered by the mean of their best 20 scores.
    """
    if cost not in COSTS:
        raise ValueError(f"cost {cost!r} is not one of {COSTS}")
    if jump_gap < 0:
        raise ValueError(f"online linking needs jump_gap >= 0, got {jump_gap}")
    fb = group_boxes(detections, num_frames, num_classes)
    cand = Candidates.build(fb, frame_candidates(fb, score_threshold, pre_nms_topk, nms_threshold, boxes_per_frame))
    nonnegative = cost == "score" and score_threshold >= 0  # edge scores are candidate scores, > score_threshold
    final, path_label = _link_all(fb, num_frames, cand, iou_threshold, jump_gap, cost, nonnegative)
    return _action_paths(fb, cand, final, path_label, min_matches)


def _action_paths(fb: FrameBoxes, cand: Candidates, final: np.ndarray, path_label: np.ndarray,
                  min_matches: int) -> list[ActionPath]:
    """The linked paths with at least ``min_matches`` boxes, gaps filled, per class (in class order) by the mean of
    their best 20 scores (``sort_paths``; ties in the order of ``final``)."""
    taken = np.flatnonzero(cand.owner >= 0)
    by_path = taken[np.argsort(cand.owner[taken], kind="stable")]  # each path's candidates in frame order
    count = np.bincount(cand.owner[taken], minlength=len(path_label))
    first = np.cumsum(count) - count
    final = final[np.argsort(path_label[final], kind="stable")]
    final = final[count[final] >= min_matches]
    if len(final) == 0:
        return []
    top20 = _top_mean(cand.score[by_path], first[final], count[final], 20)
    final = final[np.lexsort((-top20, path_label[final]))]
    frames, rows = _fill_gaps_all(fb.frames, cand.box[by_path], first[final], count[final])
    bounds = np.cumsum([len(f) for f in frames])[:-1]
    boxes, scores = np.split(fb.boxes[np.concatenate(rows)], bounds), np.split(fb.scores[np.concatenate(rows)], bounds)
    return [ActionPath(int(c), f, b, s) for c, f, b, s in zip(path_label[final], frames, boxes, scores)]


def _ranges(first: np.ndarray, count: np.ndarray) -> np.ndarray:
    """The concatenated ranges ``first[i], ..., first[i] + count[i] - 1``."""
    return np.arange(count.sum()) + np.repeat(first - (np.cumsum(count) - count), count)


def _top_mean(values: np.ndarray, first: np.ndarray, count: np.ndarray, k: int) -> np.ndarray:
    """Mean of the ``k`` largest of each segment ``values[first : first + count]`` (``np.mean(sorted(v)[-k:])``,
    the same sums: one ``np.mean`` over rows per segment length)."""
    seg = np.repeat(np.arange(len(first)), count)
    idx = _ranges(first, count)
    ranked = values[idx][np.lexsort((values[idx], seg))]  # each segment ascending
    end = np.cumsum(count)
    top = np.minimum(count, k)
    out = np.zeros(len(first))
    for n in np.unique(top).tolist():
        sel = np.flatnonzero(top == n)
        out[sel] = np.mean(ranked[(end[sel] - n)[:, None] + np.arange(n)[None, :]], axis=1)
    return out


def _fill_gaps_all(frame_of: np.ndarray, boxes: np.ndarray, first: np.ndarray,
                   count: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """:func:`fill_gaps` of many paths, path ``i`` being boxes ``boxes[first[i] : first[i] + count[i]]`` (in frame
    order, frames ``frame_of[box]``): their consecutive frames and box rows."""
    idx = _ranges(first, count)
    path = np.repeat(np.arange(len(first)), count)
    found, rows = frame_of[boxes[idx]], boxes[idx]
    ends = np.cumsum(count)
    start, stop = found[ends - count], found[ends - 1]
    span = stop - start + 1
    full_path = np.repeat(np.arange(len(first)), span)
    full = _ranges(start, span)
    scale = int(frame_of.max(initial=0)) + 2  # (path, frame) keys, ascending: one search for every path
    at = np.searchsorted(path * scale + found, full_path * scale + full, side="left")
    bounds = np.cumsum(span)[:-1]
    return np.split(full, bounds), np.split(rows[at], bounds)


_LINK_KEYS = ("score_threshold", "pre_nms_topk", "nms_threshold", "boxes_per_frame", "iou_threshold", "jump_gap",
              "min_matches", "cost")


def link_online(detections: np.ndarray, num_frames: int, num_classes: int, **params: object) -> list[Tube]:
    """ROAD's tubes of a video: :func:`online_paths` then :func:`zoo.tubes.trim_tubes` (``params`` are theirs:
    linking ``score_threshold, pre_nms_topk, nms_threshold, boxes_per_frame, iou_threshold, jump_gap, min_matches,
    cost``; trimming ``alpha`` (5), ``mode`` ("classes"), ``min_num_frames`` (8), ``topk`` (40),
    ``score_threshold`` of tubes as ``tube_score_threshold`` (0)). ROAD's labelling ("classes") cuts a path only
    where another class outscores the path's class, so an actor detected before or after its action with a low score
    stays in the tube; ``mode="binary"`` (Saha et al.) cuts it there (see :mod:`zoo.tubes.viterbi`)."""
    link = {k: v for k, v in params.items() if k in _LINK_KEYS}
    trim = {k: v for k, v in params.items() if k not in _LINK_KEYS}
    if "tube_score_threshold" in trim:
        trim["score_threshold"] = trim.pop("tube_score_threshold")
    paths = online_paths(detections, num_frames, num_classes, **link)  # type: ignore[arg-type]
    return trim_tubes(paths, **trim)  # type: ignore[arg-type]


def _link_one(item: tuple[str, np.ndarray, int], num_classes: int, method: str,
              params: dict) -> tuple[str, list[Tube]]:
    name, det, num_frames = item
    fn = link_online if method == "online" else link_viterbi
    try:
        return name, fn(det, num_frames, num_classes, **params)
    except DatasetError as err:
        raise DatasetError(f"video {name}: {err}") from None


def link_videos(detections_by_video: Mapping[str, np.ndarray], annotations: TubeAnnotations, method: str = "online",
                workers: int = 1, **params: object) -> dict[str, list[Tube]]:
    """Tubes of every video in ``detections_by_video`` (frame counts and classes from ``annotations``), by
    ``method`` ``"online"`` (:func:`link_online`) or ``"viterbi"`` (:func:`zoo.tubes.link_viterbi`), in ``workers``
    processes. A video the annotation does not know raises one line naming it."""
    if method not in METHODS:
        raise ValueError(f"linking method {method!r} is not one of {METHODS}")
    unknown = [v for v in detections_by_video if v not in annotations.videos]
    if unknown:
        raise DatasetError(f"{annotations.source or annotations.dataset}: detections for {len(unknown)} video(s) "
                           f"not in the annotation, first {unknown[0]!r}")
    items = [(v, det, annotations.videos[v].num_frames) for v, det in detections_by_video.items()]
    job = partial(_link_one, num_classes=len(annotations.classes), method=method, params=params)
    from tqdm import tqdm

    bar = partial(tqdm, total=len(items), desc=f"linking ({method})", unit="video", leave=False,
                  disable=not sys.stderr.isatty())
    if workers <= 1:
        return dict(bar(map(job, items)))
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return dict(bar(pool.map(job, items, chunksize=max(1, len(items) // (8 * workers)))))
