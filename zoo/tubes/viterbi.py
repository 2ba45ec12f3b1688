"""Viterbi dynamic programmes for action tubes: temporal labelling (trimming) of a path, and whole-video linking.

Temporal labelling is ``dpEM_max.m`` (Evangelidis & Singh; ROAD ``online-tubes/gentube/``, Saha et al. BMVC 2016
``action_tubes/``): given a score ``M[t, l]`` per frame and label, choose labels ``l_1..l_T`` maximising
``sum_t M[t, l_t] - alpha * #{t : l_t != l_(t-1)}``; the first label is free. The frames labelled with the path's
class form its tubes. Two score matrices are used in the official code:

- ``"classes"`` (ROAD's released ``PARactionPathSmoother.m``, the default of :func:`zoo.tubes.link_online`): the boxes'
  scores for every action class (background left out; ROAD adds 20 to all, which does not change the labels), so a
  path is cut only where another class wins;
- ``"binary"`` (Saha et al. ``par_path_smoother.m`` and the formulation in the ROAD and Saha papers): the path's
  class score ``s`` against background ``1 - s``, so a path is cut where its class score stays below 0.5.

Whole-video linking is Gkioxari & Malik's ``zero_jump_link.m`` (Action Tubes, CVPR 2015; reused by Saha et al.): per
class, the path through every frame that maximises ``sum_t s(b_t) + s(b_(t+1)) + lambda * IoU(b_t, b_(t+1))``;
its boxes are removed and the next path is found, until a frame runs out of boxes. ACT and MOC instead link
multi-frame tubelets (``ACT_utils.py``); that is not implemented here.

Both programmes run for many paths (classes) at once, one pass over time for all, with the numbers and tie-breaking
of the one-at-a-time loops (:func:`viterbi_labels` is that loop, kept as the reference).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from datamodules.action_tubes import Tube
from zoo.tubes.boxes import ActionPath, FrameBoxes, fill_gaps, group_boxes, group_starts, pair_iou, per_frame_nms

TRIM_MODES = ("classes", "binary", "none")
EDGE_BUDGET = 1 << 22  # edge scores of whole-video linking held at once (32 MB); more are computed step by step


def viterbi_labels(scores: np.ndarray, alpha: float) -> np.ndarray:
    """The labelling of ``dpEM_max.m``: ``scores`` (T, L) per frame and label; returns (T,) labels maximising the
    summed scores minus ``alpha`` per label change. Ties go to the lowest label (MATLAB's ``max``)."""
    m = np.asarray(scores, dtype=np.float64)
    if m.ndim != 2 or m.shape[0] == 0:
        raise ValueError(f"viterbi_labels: scores must be (T, L) with T > 0, got {m.shape}")
    t_len, n_lab = m.shape
    penalty = alpha * (1.0 - np.eye(n_lab))  # penalty[i, k]: from label k to label i
    back = np.zeros((t_len, n_lab), dtype=np.int64)
    acc = m[0].copy()  # the free first label: the previous column is all 0
    for t in range(1, t_len):
        cand = acc[None, :] - penalty
        back[t] = cand.argmax(axis=1)
        acc = m[t] + cand[np.arange(n_lab), back[t]]
    labels = np.empty(t_len, dtype=np.int64)
    labels[-1] = int(acc.argmax())
    for t in range(t_len - 1, 0, -1):
        labels[t - 1] = back[t, labels[t]]
    return labels


def _best_previous(acc: np.ndarray, alpha: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One step of :func:`viterbi_labels` for many paths (rows of ``acc`` (n, L), label-change costs ``alpha`` (n,)):
    for each label i, the best previous label (first on ties) and its value, ``max_k acc[k] - alpha [k != i]``, from
    the best and second-best switch instead of the (L, L) table (the same numbers: ``acc[k] - alpha`` off the
    diagonal, ``acc[i] - 0`` on it)."""
    rows, lab = np.arange(len(acc)), np.arange(acc.shape[1])[None, :]
    switch = acc - alpha[:, None]
    k1 = switch.argmax(axis=1)
    m1 = switch[rows, k1]
    switch[rows, k1] = -np.inf
    k2 = switch.argmax(axis=1)
    m2 = switch[rows, k2]
    own = lab == k1[:, None]  # label k1's best switch is the second best
    other = np.where(own, k2[:, None], k1[:, None])
    other_value = np.where(own, m2[:, None], m1[:, None])
    back = np.where(acc > other_value, lab, np.where(acc < other_value, other, np.minimum(lab, other)))
    return back, np.where(back == lab, acc, other_value)


def _viterbi_labels_padded(scores: Sequence[np.ndarray], alpha: np.ndarray) -> np.ndarray:
    """:func:`viterbi_labels` of many score matrices (T_i, L), one pass over time for all, the longest first; returns
    the labels (n, max T_i), each row padded after its T_i labels."""
    n = len(scores)
    lengths = np.array([len(m) for m in scores])
    if n == 0 or lengths.min() == 0:
        raise ValueError("viterbi_labels: every score matrix needs T > 0 rows")
    order = np.argsort(-lengths, kind="stable")
    lengths, alpha = lengths[order], alpha[order]
    flat = np.concatenate([np.asarray(scores[k], dtype=np.float64) for k in order])
    first = np.cumsum(lengths) - lengths  # each matrix's first row in ``flat``
    steps = int(lengths[0])
    alive = np.searchsorted(-lengths, -np.arange(steps + 1), side="left")  # alive[t]: matrices longer than t
    back = np.zeros((n, steps, flat.shape[1]), dtype=np.min_scalar_type(flat.shape[1]))
    last = np.zeros(n, dtype=np.int64)
    acc = flat[first]
    for t in range(1, steps):
        k = alive[t]
        last[k:len(acc)] = acc[k:].argmax(axis=1)  # the matrices of length t end here
        back[:k, t], best = _best_previous(acc[:k], alpha[:k])
        acc = flat[first[:k] + t] + best
    last[:len(acc)] = acc.argmax(axis=1)
    labels = np.zeros((n, steps), dtype=np.int64)
    for t in range(steps - 1, -1, -1):
        k = alive[t]
        labels[alive[t + 1]:k, t] = last[alive[t + 1]:k]
        if t > 0:
            labels[:k, t - 1] = back[np.arange(k), t, labels[:k, t]]
    out = np.empty_like(labels)
    out[order] = labels
    return out


def viterbi_labels_batch(scores: Sequence[np.ndarray], alpha: float | Sequence[float]) -> list[np.ndarray]:
    """:func:`viterbi_labels` of many score matrices (T_i, L) with the same L at once, ``alpha`` one value or one per
    matrix: the same labels, to the last bit, from one pass over time for all."""
    if len(scores) == 0:
        return []
    labels = _viterbi_labels_padded(scores, np.broadcast_to(np.asarray(alpha, dtype=np.float64), (len(scores),)))
    return [row[:len(m)] for row, m in zip(labels, scores)]


def _runs(labels: np.ndarray, lengths: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The maximal runs of ``target[i]`` in the first ``lengths[i]`` entries of each row of ``labels`` (n, T), as
    (row, first, last) arrays, inclusive, row by row in order (:func:`label_segments` of every row)."""
    hit = np.zeros((len(labels), labels.shape[1] + 2), dtype=bool)
    hit[:, 1:-1] = (labels == target[:, None]) & (np.arange(labels.shape[1])[None, :] < lengths[:, None])
    row, edge = np.nonzero(hit[:, 1:] != hit[:, :-1])  # run starts and ends alternate in each row
    return row[::2], edge[::2], edge[1::2] - 1


def label_segments(labels: np.ndarray, label: int) -> list[tuple[int, int]]:
    """The maximal runs of ``label`` in ``labels`` as (first, last) indices, inclusive."""
    hit = np.concatenate([[False], np.asarray(labels) == label, [False]])
    edges = np.flatnonzero(hit[1:] != hit[:-1])
    return [(int(s), int(e) - 1) for s, e in zip(edges[::2], edges[1::2])]


def trim_tube(scores: np.ndarray, alpha: float, label: int | None = None) -> list[tuple[int, int]]:
    """Temporal labelling of one path; returns the (first, last) index ranges, inclusive, labelled as the action.

    ``scores`` (T,): the path's class scores, labelled action (``s``) or background (``1 - s``) (Saha et al.);
    ``scores`` (T, C): every class's score per box, labelled over the classes, and the runs of ``label`` are
    returned (ROAD's code)."""
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim == 1:
        return label_segments(viterbi_labels(np.stack([s, 1.0 - s], axis=1), alpha), 0)
    if label is None:
        raise ValueError("trim_tube: a (T, C) score matrix needs the path's label")
    return label_segments(viterbi_labels(s, alpha), label)


def tube_score(scores: np.ndarray, topk: int) -> float:
    """Mean of the ``topk`` best box scores (ROAD ``convert2eval.m``)."""
    return float(np.mean(np.sort(scores)[::-1][:topk]))


def trim_tubes(paths: Sequence[ActionPath], alpha: float | Sequence[float] = 5.0, mode: str = "classes",
               min_num_frames: int = 8, topk: int = 40, score_threshold: float = 0.0) -> list[Tube]:
    """Cut paths into tubes by temporal labelling and score them (ROAD ``PARactionPathSmoother.m`` +
    ``convert2eval.m``).

    ``alpha``: label-change cost, one value or one per class; ROAD evaluates 3 and 5 and prints 5.
    ``mode``: ``"classes"`` (ROAD's code), ``"binary"`` (Saha et al.) or ``"none"`` (whole paths); see the module.
    ``min_num_frames``: a segment is kept when last - first > 8 frames, i.e. 10 frames or more (ROAD's strict ``>``).
    ``topk``: the tube score is the mean of its best 40 box scores for its class.
    ``score_threshold``: tubes scoring at most this are dropped (ROAD's ``kthresh`` 0).
    """
    if mode not in TRIM_MODES:
        raise ValueError(f"trim mode {mode!r} is not one of {TRIM_MODES}")
    paths = [p for p in paths if len(p.frames) - 1 > min_num_frames]  # shorter paths have no segment long enough
    row, first, last = _segments(paths, alpha, mode)
    long = last - first > min_num_frames  # checked first: a cheap test of ROAD's two
    tubes = []
    for k, a, b in zip(row[long].tolist(), first[long].tolist(), last[long].tolist()):
        path, seg = paths[k], slice(a, b + 1)
        score = tube_score(path.scores[seg], topk)
        if score > score_threshold:
            boxes = np.column_stack([path.frames[seg].astype(np.float64), path.boxes[seg]])
            tubes.append(Tube(label=path.label, boxes=boxes, score=score))
    return tubes


def _segments(paths: Sequence[ActionPath], alpha: float | Sequence[float],
              mode: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every path's segments labelled as its action, as (path, first, last) arrays, path by path; the temporal
    labelling of all paths with the same number of labels runs at once (:func:`viterbi_labels_batch`)."""
    lengths = np.array([len(p.frames) for p in paths], dtype=np.int64)
    if mode == "none" or len(paths) == 0:
        return np.arange(len(paths)), np.zeros(len(paths), dtype=np.int64), lengths - 1
    alphas = np.array([float(np.asarray(alpha)[p.label]) if np.ndim(alpha) else float(alpha) for p in paths])
    if mode == "binary":
        matrices = [np.stack([p.scores, 1.0 - p.scores], axis=1) for p in paths]
        target = np.zeros(len(paths), dtype=np.int64)
    else:
        matrices = [p.all_scores for p in paths]
        target = np.array([p.label for p in paths], dtype=np.int64)
    width = np.array([m.shape[1] for m in matrices])
    parts = []
    for w in np.unique(width):  # one batch per number of labels
        ids = np.flatnonzero(width == w)
        labels = _viterbi_labels_padded([matrices[k] for k in ids], alphas[ids])
        row, first, last = _runs(labels, lengths[ids], target[ids])
        parts.append((ids[row], first, last))
    row, first, last = (np.concatenate(x) for x in zip(*parts))
    order = np.argsort(row, kind="stable")
    return row[order], first[order], last[order]


@dataclass
class _Lattice:
    """The boxes some classes' whole-video paths choose from, one row per class: the class's frames with boxes are
    steps ``first[c] .. S - 1`` (right-aligned, so every class's Viterbi pass ends at step S - 1), each with K box
    slots, best first: ``box`` (n, S, K) box index (-1: none), ``score`` their class score, ``coords`` (4, n, S, K)."""

    labels: np.ndarray
    frames: list[np.ndarray]
    first: np.ndarray
    box: np.ndarray
    score: np.ndarray
    coords: np.ndarray

    @classmethod
    def build(cls, fb: FrameBoxes, box: np.ndarray, label: np.ndarray) -> _Lattice:
        """From boxes ``box`` of class ``label``, sorted by class, frame, then rank."""
        frame = fb.frames[box]
        labels, row = np.unique(label, return_inverse=True)
        new = group_starts(np.column_stack([label, frame]))
        group = np.cumsum(new) - 1
        group_first = np.flatnonzero(new)
        class_groups = np.bincount(row[group_first], minlength=len(labels))  # frames per class
        class_first_group = np.cumsum(class_groups) - class_groups
        steps = int(class_groups.max())
        step = steps - class_groups[row] + group - class_first_group[row]
        slot = np.arange(len(box)) - group_first[group]
        shape = (len(labels), steps, int(slot.max()) + 1)
        ids = np.full(shape, -1)
        ids[row, step, slot] = box
        score = np.zeros(shape)
        score[row, step, slot] = fb.scores[box, label]
        coords = np.zeros((4, *shape))
        coords[:, row, step, slot] = fb.boxes[box].T
        frames = np.split(frame[group_first], np.cumsum(class_groups)[:-1])
        return cls(labels, frames, steps - class_groups, ids, score, coords)

    def edge_base(self, steps: slice, overlap_weight: float, plus_one: bool) -> np.ndarray:
        """``s(b_t) + s(b_t+1) + lambda * IoU(b_t, b_t+1)`` of ``steps`` and the next: (n, len(steps), K, K)."""
        now, nxt = steps, slice(steps.start + 1, steps.stop + 1)
        iou = pair_iou(self.coords[:, :, now, :, None], self.coords[:, :, nxt, None, :], plus_one)
        return self.score[:, now, :, None] + self.score[:, nxt, None, :] + overlap_weight * iou


def _best_paths(lat: _Lattice, base: np.ndarray | None, valid: np.ndarray, overlap_weight: float,
                plus_one: bool) -> tuple[np.ndarray, np.ndarray]:
    """Viterbi over every class's boxes still ``valid`` (``zero_jump_link.m``), backward from the last step, all
    classes at once: each class's chosen slot per step (n, S) and the path's value. ``base``: the precomputed
    :meth:`_Lattice.edge_base` of all steps, or None to compute it step by step."""
    n, steps, slots = valid.shape
    rows = np.arange(n)
    value = np.where(valid[:, -1], 0.0, -np.inf)
    start = value.copy()
    back = np.zeros((n, max(steps - 1, 0), slots), dtype=np.int64)
    for s in range(steps - 2, -1, -1):
        edge = base[:, s] if base is not None else lat.edge_base(slice(s, s + 1), overlap_weight, plus_one)[:, 0]
        edge = edge + value[:, None, :]
        back[:, s] = edge.argmax(axis=2)
        value = np.where(valid[:, s], edge.max(axis=2), -np.inf)
        start[lat.first == s] = value[lat.first == s]
    slot = np.zeros((n, steps), dtype=np.int64)
    slot[rows, lat.first] = start.argmax(axis=1)
    for s in range(steps - 1):
        slot[:, s + 1] = np.where(lat.first <= s, back[rows, s, slot[:, s]], slot[:, s + 1])
    return slot, start[rows, slot[rows, lat.first]]


def _class_paths(fb: FrameBoxes, lat: _Lattice, paths_per_class: int, overlap_weight: float,
                 plus_one: bool) -> list[list[ActionPath]]:
    """Each class's paths (``compute_tubes.m``): the best path, its boxes removed, the next, ... while every frame
    has a box left."""
    n, steps, slots = lat.box.shape
    base = None
    if n * steps * slots * slots <= EDGE_BUDGET and steps > 1:
        block = max(1, (1 << 16) // (n * slots * slots))  # steps at a time: small temporaries, in cache
        base = np.concatenate([lat.edge_base(slice(s, min(s + block, steps - 1)), overlap_weight, plus_one)
                               for s in range(0, steps - 1, block)], axis=1)
    valid = lat.box >= 0
    in_video = np.arange(steps)[None, :] >= lat.first[:, None]
    paths: list[list[ActionPath]] = [[] for _ in range(n)]
    for _ in range(paths_per_class):
        active = (valid.any(axis=2) | ~in_video).all(axis=1)
        if not active.any():
            break
        slot, value = _best_paths(lat, base, valid, overlap_weight, plus_one)
        for c in np.flatnonzero(active):
            chosen = lat.box[c, np.arange(lat.first[c], steps), slot[c, lat.first[c]:]]
            full, rows = fill_gaps(lat.frames[c], chosen)
            energy = float(value[c]) / len(lat.frames[c])
            paths[c].append(ActionPath(int(lat.labels[c]), full, fb.boxes[rows], fb.scores[rows], energy))
        taken = active[:, None] & in_video
        valid[np.nonzero(taken)[0], np.nonzero(taken)[1], slot[taken]] = False
    return paths


def viterbi_paths(detections: np.ndarray, num_frames: int, num_classes: int, nms_threshold: float = 0.3,
                  boxes_per_frame: int | None = None, paths_per_class: int = 3, overlap_weight: float = 1.0,
                  plus_one: bool = True) -> list[ActionPath]:
    """Whole-video Viterbi paths per class (Gkioxari & Malik ``compute_tubes.m`` + ``zero_jump_link.m``).

    ``nms_threshold``: per-frame, per-class NMS at IoU 0.3 (both Action Tubes and Saha et al.).
    ``boxes_per_frame``: boxes kept per frame after NMS; Action Tubes keeps all (``None``), Saha et al. 5.
    ``paths_per_class``: paths found per class, each after removing the previous ones' boxes (the search also stops
    when a frame runs out); the Action Tubes evaluation keeps the best 3 and Saha et al. trim the best 3.
    ``overlap_weight``: lambda on the IoU of consecutive boxes (1, with ``plus_one`` pixel areas as ``rectint``).
    Frames without a box of the class are skipped by the path and filled with the next box (ROAD's ``fill_gaps``;
    Action Tubes stops with an error there). ``energy`` is the path's value over the number of frames it has a box
    in (those its value sums over; a filled gap adds none).
    All classes are searched at once (:func:`_best_paths`), in batches of classes that fit ``EDGE_BUDGET``.
    """
    fb = group_boxes(detections, num_frames, num_classes)
    cand = per_frame_nms(fb, fb.present, nms_threshold, plus_one, limit=boxes_per_frame)
    by_class = np.argsort(cand.label, kind="stable")  # class, frame, rank
    box, label = cand.box[by_class], cand.label[by_class]
    bounds = np.searchsorted(label, np.arange(num_classes + 1))
    paths: list[ActionPath] = []
    for chunk in _class_chunks(fb, box, bounds):
        lat = _Lattice.build(fb, box[bounds[chunk[0]]:bounds[chunk[-1] + 1]],
                             label[bounds[chunk[0]]:bounds[chunk[-1] + 1]])
        for class_paths in _class_paths(fb, lat, paths_per_class, overlap_weight, plus_one):
            paths += class_paths
    return paths


def _class_chunks(fb: FrameBoxes, box: np.ndarray, bounds: np.ndarray) -> list[list[int]]:
    """Consecutive classes with boxes, in groups whose lattice holds at most ``EDGE_BUDGET`` edge scores (a class
    alone may hold more)."""
    chunks: list[list[int]] = []
    steps = slots = 0
    for c in np.flatnonzero(np.diff(bounds) > 0).tolist():
        frames = fb.frames[box[bounds[c]:bounds[c + 1]]]
        s, k = max(steps, len(np.unique(frames))), max(slots, int(np.bincount(frames).max()))
        if chunks and (len(chunks[-1]) + 1) * s * k * k <= EDGE_BUDGET:
            chunks[-1].append(c)
            steps, slots = s, k
        else:
            chunks.append([c])
            steps, slots = len(np.unique(frames)), int(np.bincount(frames).max())
    return chunks


def link_viterbi(detections: np.ndarray, num_frames: int, num_classes: int, *, tube_score: str = "energy",
                 **params: object) -> list[Tube]:
    """Tubes of trimmed videos (J-HMDB, UCF-Sports) by whole-video Viterbi linking (:func:`viterbi_paths`, whose
    parameters ``params`` are). ``tube_score``: ``"energy"`` (the path value over its frames, Action Tubes'
    ``total_score``, the default) or ``"mean"`` (mean box score)."""
    if tube_score not in ("energy", "mean"):
        raise ValueError(f"tube_score {tube_score!r} is not 'energy' or 'mean'")
    tubes = []
    for p in viterbi_paths(detections, num_frames, num_classes, **params):  # type: ignore[arg-type]
        score = p.energy if tube_score == "energy" else float(p.scores.mean())
        tubes.append(Tube(p.label, np.column_stack([p.frames.astype(np.float64), p.boxes]), score))
    return tubes
