"""Tube linking (zoo.tubes): ROAD's online linking and temporal trimming, whole-video Viterbi linking.

Hand-built cases with hand-computed answers, brute force for the dynamic programmes, and synthetic untrimmed videos
(per-frame detections from the ground truth plus noise, false detections and gaps) on which the linked tubes must
beat per-frame baselines in video-mAP@0.5 and trimming must find where the tubes start and end.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from datamodules.action_tubes import Tube, TubeAnnotations, VideoTubes
from zoo.errors import DatasetError
from zoo.metrics.action_detection import tube_iou, video_ap
from zoo.tubes import (
    box_iou,
    link_online,
    link_videos,
    link_viterbi,
    nms,
    online_paths,
    trim_tube,
    trim_tubes,
    viterbi_labels,
    viterbi_labels_batch,
    viterbi_paths,
)
from zoo.tubes.boxes import ActionPath, fill_gaps, group_boxes

# ----------------------------------------------------------------------------------------------------------------
# Temporal labelling (dpEM_max)


def _energy(m: np.ndarray, labels: np.ndarray, alpha: float) -> float:
    return float(m[np.arange(len(labels)), labels].sum() - alpha * np.count_nonzero(np.diff(labels)))


def test_viterbi_labels_hand_cases():
    s = np.array([0.9, 0.9, 0.1, 0.9, 0.9])
    # binary labelling (action s, background 1 - s): the dip is worth 0.8 against 2 changes
    assert trim_tube(s, alpha=0.5) == [(0, 4)]  # 3.7 > 4.5 - 2 * 0.5
    assert trim_tube(s, alpha=0.1) == [(0, 1), (3, 4)]  # 4.5 - 0.2 > 3.7
    # the first and last labels are free: an action inside the path costs two changes, at an end one
    s = np.array([0.1, 0.1, 0.9, 0.9, 0.9, 0.9, 0.2])  # action minus background: -.8 -.8 .8 .8 .8 .8 -.6
    assert trim_tube(s, alpha=0.5) == [(2, 5)]  # 3.2 - 2 * 0.5 = 2.2 beats 2.6 - 0.5 (to the end) and 1.0 (all)
    assert trim_tube(s, alpha=1.3) == [(2, 6)]  # 2.6 - 1.3 = 1.3 beats 3.2 - 2.6 and 1.0
    assert trim_tube(s, alpha=2.0) == [(0, 6)]  # 1.0 beats 2.6 - 2 and 3.2 - 4
    assert trim_tube(np.full(5, 0.3), alpha=5.0) == []
    # over classes (ROAD's code): the path is cut where another class wins for long enough
    m = np.array([[0.8, 0.1], [0.8, 0.1], [0.1, 0.9], [0.1, 0.9], [0.1, 0.9], [0.1, 0.9]])
    assert trim_tube(m, alpha=1.0, label=0) == [(0, 1)]
    assert trim_tube(m, alpha=1.0, label=1) == [(2, 5)]
    assert trim_tube(m, alpha=5.0, label=1) == [(0, 5)]  # a change costs more than it gains: all class 1 (3.8)
    assert trim_tube(m, alpha=5.0, label=0) == []


def test_viterbi_labels_is_optimal_brute_force():
    rng = np.random.default_rng(3)
    for _ in range(60):
        t_len, n_lab = int(rng.integers(1, 7)), int(rng.integers(2, 4))
        m = rng.random((t_len, n_lab))
        alpha = float(rng.choice([0.0, 0.2, 0.5, 1.5]))
        best = max(_energy(m, np.array(lab), alpha) for lab in itertools.product(range(n_lab), repeat=t_len))
        assert _energy(m, viterbi_labels(m, alpha), alpha) == pytest.approx(best)


def test_trim_tubes_length_and_score():
    def path(scores):
        k = len(scores)
        all_scores = np.column_stack([np.asarray(scores), 1 - np.asarray(scores)])
        boxes = np.tile([10.0, 10, 50, 80], (k, 1))
        return ActionPath(0, np.arange(5, 5 + k), boxes, all_scores)

    # ROAD keeps a segment when last - first > 8: 10 frames yes, 9 frames no
    assert len(trim_tubes([path([0.9] * 10)], mode="none")) == 1
    assert trim_tubes([path([0.9] * 9)], mode="none") == []
    # tube score: mean of the best 40 box scores of the segment
    scores = np.linspace(0.5, 1.0, 50)
    (tube,) = trim_tubes([path(scores)], mode="none")
    assert tube.score == pytest.approx(np.sort(scores)[-40:].mean())
    assert tube.start == 5 and tube.end == 54 and tube.boxes.shape == (50, 5)
    # classes mode on the two-column matrix: frames 20..31 (indices 15..26) belong to the other class
    s = np.array([0.9] * 15 + [0.05] * 12 + [0.9] * 13)
    tubes = trim_tubes([path(s)], alpha=3.0, mode="classes")
    assert [(t.start, t.end) for t in tubes] == [(5, 19), (32, 44)]
    assert [(t.start, t.end) for t in trim_tubes([path(s)], alpha=3.0, mode="classes", min_num_frames=13)] == [
        (5, 19)]


# ----------------------------------------------------------------------------------------------------------------
# Boxes, NMS, ROAD's per-frame filter and incremental linking


def test_box_iou_conventions():
    a = np.array([[0.0, 0, 9, 9]])
    b = np.array([[5.0, 0, 14, 9]])
    assert box_iou(a, b)[0, 0] == pytest.approx(4 * 9 / (81 + 81 - 36))
    assert box_iou(a, b, plus_one=True)[0, 0] == pytest.approx(5 * 10 / (100 + 100 - 50))


def test_nms_keeps_best_and_limit():
    boxes = np.array([[0.0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60], [100, 100, 110, 110]])
    scores = np.array([0.5, 0.9, 0.3, 0.4])
    assert nms(boxes, scores, 0.45).tolist() == [1, 3, 2]  # box 0 overlaps box 1 by 9/11
    assert nms(boxes, scores, 0.45, limit=2).tolist() == [1, 3]
    assert nms(boxes, scores, 0.95).tolist() == [1, 0, 3, 2]


def _track(frames, x0=10.0, dx=2.0, label=0, score=0.8, w=40.0, h=60.0):
    rows = [[f, label, score, x0 + dx * f, 20.0, x0 + dx * f + w, 20.0 + h] for f in frames]
    return np.asarray(rows, dtype=np.float64)


def test_online_linking_bridges_two_missed_frames_and_fills_them_with_the_next_box():
    det = _track([1, 2, 3, 6, 7, 8, 9, 10])  # frames 4 and 5 missed: the path survives (jump_gap 3)
    (path,) = online_paths(det, 12, 1)
    assert path.frames.tolist() == list(range(1, 11))
    box6 = det[det[:, 0] == 6, 3:][0]
    assert np.array_equal(path.boxes[3], box6) and np.array_equal(path.boxes[4], box6)


def test_online_linking_ends_a_path_after_three_missed_frames():
    det = _track([1, 2, 3, 7, 8, 9, 10, 11])  # 3 missed: two paths; 1..3 has 3 matches and is dropped
    paths = online_paths(det, 12, 1)
    assert [(p.frames[0], p.frames[-1]) for p in paths] == [(7, 11)]
    assert len(online_paths(det, 12, 1, min_matches=3)) == 2


def test_online_linking_better_path_takes_the_contested_box_first():
    a = _track(range(1, 9), x0=10, dx=0, score=0.9)
    b = _track(range(1, 9), x0=40, dx=0, score=0.5)  # IoU(a, b) = 11 / (82 - 11) > 0.1 (+1 pixel areas)
    b = b[b[:, 0] != 5]  # at frame 5 only a's box: both paths overlap it, the better one (a) takes it
    paths = online_paths(np.concatenate([a, b]), 8, 1)
    assert len(paths) == 2
    best, other = paths
    assert best.scores.mean() == pytest.approx(0.9) and best.frames.tolist() == list(range(1, 9))
    assert other.frames.tolist() == list(range(1, 9)) and other.scores[4] == pytest.approx(0.5)  # frame 5 filled


def test_online_linking_overlap_threshold():
    # consecutive boxes 40 wide: shifting by 35 gives IoU 6 * 61 / (2 * 41 * 61 - 6 * 61) = 0.079 < 0.1: no link
    far = _track(range(1, 7), dx=35.0)
    assert online_paths(far, 6, 1) == []
    near = _track(range(1, 7), dx=30.0)  # IoU 11 / 71 = 0.155
    assert len(online_paths(near, 6, 1)) == 1


def test_online_filter_score_threshold_and_ten_boxes_per_frame():
    rows = []
    for f in range(1, 7):
        for k in range(12):  # 12 separate boxes, scores 0.12 .. 0.01, plus one at 0.001 (not > 0.001)
            rows.append([f, 0, 0.12 - 0.01 * k, 30.0 * k, 0, 30.0 * k + 20, 20])
        rows.append([f, 0, 0.001, 0, 100, 20, 120])
    paths = online_paths(np.asarray(rows), 6, 1)
    assert len(paths) == 10
    assert sorted(round(float(p.scores[0]), 3) for p in paths) == pytest.approx(
        [0.03, 0.04, 0.05, 0.06, 0.07, 0.08, 0.09, 0.1, 0.11, 0.12])


def test_score_vectors_gathered_from_rows_of_the_same_box():
    # the same box written for two classes: class 1 wins on frames 9..20, so ROAD's labelling cuts class 0's path
    frames = range(1, 21)
    c0 = _track(frames, score=0.9, dx=1.0)
    c1 = c0.copy()
    c1[:, 1] = 1
    c1[:, 2] = np.where(c1[:, 0] >= 9, 0.95, 0.02)
    c0[:, 2] = np.where(c0[:, 0] >= 9, 0.03, 0.9)
    tubes = link_online(np.concatenate([c0, c1]), 20, 2, alpha=1.0, min_num_frames=5)
    assert sorted((t.label, t.start, t.end) for t in tubes) == [(0, 1, 8), (1, 9, 20)]
    # in "binary" mode the class-1 path's first frames (score 0.02) are background too
    tubes = link_online(np.concatenate([c0, c1]), 20, 2, alpha=1.0, min_num_frames=5, mode="binary")
    assert sorted((t.label, t.start, t.end) for t in tubes) == [(0, 1, 8), (1, 9, 20)]


def test_bad_detections_raise_one_line():
    with pytest.raises(DatasetError, match="row 1"):
        link_online(np.array([[1, 0, 0.5, 0, 0, 10, 10], [13, 0, 0.5, 0, 0, 10, 10]]), 12, 1)
    with pytest.raises(DatasetError, match="row 0"):
        link_viterbi(np.array([[1, 3, 0.5, 0, 0, 10, 10]]), 12, 2)
    assert link_online(np.zeros((0, 7)), 12, 2) == []


# ----------------------------------------------------------------------------------------------------------------
# Whole-video Viterbi linking


def test_viterbi_paths_brute_force():
    rng = np.random.default_rng(5)
    for _ in range(10):
        n_frames, n_box = 4, 3
        rows = []
        for f in range(1, n_frames + 1):
            xy = rng.uniform(0, 40, (n_box, 2))
            for k in range(n_box):
                rows.append([f, 0, rng.random(), xy[k, 0], xy[k, 1], xy[k, 0] + 30, xy[k, 1] + 30])
        det = np.asarray(rows)
        frames = [det[det[:, 0] == f] for f in range(1, n_frames + 1)]

        def energy(choice, frames=frames, n_frames=n_frames):
            b = [frames[t][i] for t, i in enumerate(choice)]
            return sum(b[t][2] + b[t + 1][2] + box_iou(b[t][3:], b[t + 1][3:], plus_one=True)[0, 0]
                       for t in range(n_frames - 1))

        best = max(itertools.product(range(n_box), repeat=n_frames), key=energy)
        paths = viterbi_paths(det, n_frames, 1, nms_threshold=1.0)
        assert len(paths) == 3  # three boxes per frame: three paths, then a frame is empty
        expected = np.array([frames[t][i][3:] for t, i in enumerate(best)])
        assert np.array_equal(paths[0].boxes, expected)
        assert paths[0].energy == pytest.approx(energy(best) / n_frames)


def test_link_viterbi_one_tube_per_class_through_the_video():
    det = np.concatenate([_track(range(1, 31), score=0.9), _track(range(1, 31), x0=150, score=0.2, label=1)])
    det = det[det[:, 0] != 12]  # a frame without boxes is crossed and filled with the next box
    tubes = link_viterbi(det, 30, 2, paths_per_class=1)
    assert [(t.label, t.start, t.end, len(t.boxes)) for t in tubes] == [(0, 1, 30, 30), (1, 1, 30, 30)]
    present = [f for f in range(1, 31) if f != 12]
    energy = sum(0.9 + 0.9 + box_iou(_track([f])[0, 3:], _track([g])[0, 3:], plus_one=True)[0, 0]
                 for f, g in zip(present, present[1:]))
    assert tubes[0].score == pytest.approx(energy / 29)
    assert link_viterbi(det, 30, 2, tube_score="mean")[0].score == pytest.approx(0.9)


# ----------------------------------------------------------------------------------------------------------------
# The vectorised linking (all classes and paths at once) against the straightforward per-class loops of the MATLAB


def _reference_online_paths(det, num_frames, num_classes, jump_gap=3, boxes_per_frame=10, min_matches=4):
    """``actionPaths.m`` + ``incremental_linking.m`` as written: class by class, frame by frame, path by path."""
    fb = group_boxes(det, num_frames, num_classes)
    out = []
    for c in range(num_classes):
        live, dead = [], []  # a path: [box rows, frames, scores, lastfound]
        for t in range(1, num_frames + 1):
            ids = fb.frame(t)
            ids = ids[fb.scores[ids, c] > 0.001]
            if len(ids) > 1:  # dofilter
                s = fb.scores[ids, c]
                top = np.argsort(-s, kind="stable")[:50]
                ids = ids[top][nms(fb.boxes[ids[top]], s[top], 0.45, limit=boxes_per_frame)]
            covered = np.zeros(len(ids), dtype=bool)
            if live:
                edges = np.zeros((len(live), len(ids)))
                for k, p in enumerate(live):
                    iou = box_iou(fb.boxes[p[0][-1]], fb.boxes[ids], plus_one=True)[0]
                    edges[k] = np.where(iou >= 0.1, fb.scores[ids, c], 0.0)
                order = []
                for k, p in enumerate(live):
                    if edges[k].sum() > 0:
                        j = int(edges[k].argmax())
                        p[0].append(ids[j]), p[1].append(t), p[2].append(fb.scores[ids[j], c])
                        p[3] = 0
                        edges[:, j], covered[j] = 0.0, True
                    else:
                        p[3] += 1
                    best = sorted(p[2])[-(jump_gap + 1):]
                    order.append(sum(best) / len(best))
                ranked = [live[k] for k in np.argsort(-np.array(order), kind="stable")]
                dead += [p for p in ranked if p[3] >= jump_gap]
                live = [p for p in ranked if p[3] < jump_gap]
            live += [[[i], [t], [fb.scores[i, c]], 0] for i in ids[~covered]]
        kept = [p for p in live + dead if len(p[0]) >= min_matches]
        kept = [kept[k] for k in np.argsort([-np.mean(sorted(p[2])[-20:]) for p in kept], kind="stable")]
        for p in kept:
            frames, rows = fill_gaps(np.array(p[1]), np.array(p[0]))
            out.append((c, frames, fb.boxes[rows], fb.scores[rows]))
    return out


def _reference_viterbi_paths(det, num_frames, num_classes, paths_per_class=3):
    """``compute_tubes.m`` + ``zero_jump_link.m`` as written: class by class, the best path, its boxes removed, ..."""
    fb = group_boxes(det, num_frames, num_classes)
    out = []
    for c in range(num_classes):
        frames, rows = [], []
        for f in range(1, num_frames + 1):
            ids = fb.frame(f)
            ids = ids[fb.present[ids, c]]
            if len(ids):
                frames.append(f)
                rows.append(list(ids[nms(fb.boxes[ids], fb.scores[ids, c], 0.3, plus_one=True)]))
        for _ in range(paths_per_class if frames else 0):
            if any(len(r) == 0 for r in rows):
                break
            value, back = np.zeros(len(rows[-1])), []
            for t in range(len(rows) - 2, -1, -1):
                edge = (fb.scores[rows[t], c][:, None] + fb.scores[rows[t + 1], c][None, :]
                        + box_iou(fb.boxes[rows[t]], fb.boxes[rows[t + 1]], plus_one=True)) + value[None, :]
                back.insert(0, edge.argmax(axis=1))
                value = edge.max(axis=1)
            idx = [int(value.argmax())]
            for step in back:
                idx.append(int(step[idx[-1]]))
            full, full_rows = fill_gaps(np.array(frames), np.array([r[i] for r, i in zip(rows, idx)]))
            out.append((c, full, fb.boxes[full_rows], value[idx[0]] / len(frames)))
            for r, i in zip(rows, idx):
                del r[i]
    return out


def _clutter_video(rng, num_frames, num_classes):
    """SSD-like rows (one per class for each box) of moving actors and clutter, scores rounded so that ties occur."""
    rows = []
    for _ in range(3):
        lab, (x, y), (vx, vy) = rng.integers(num_classes), rng.uniform(0, 200, 2), rng.normal(0, 3, 2)
        for f in range(int(rng.integers(1, 10)), num_frames + 1):
            x, y = x + vx, y + vy
            s = np.round(rng.uniform(0, 0.3, num_classes), 2)
            s[lab] = np.round(rng.uniform(0.4, 1), 2)
            rows += [[f, k, s[k], x, y, x + 60, y + 80] for k in range(num_classes) if rng.random() < 0.9]
    for f in range(1, num_frames + 1):
        for x, y in rng.uniform(0, 200, (6, 2)):
            s = np.round(rng.uniform(0, 0.5, num_classes), 2)
            rows += [[f, k, s[k], x, y, x + 50, y + 70] for k in range(num_classes) if rng.random() < 0.7]
    return np.asarray(rows)[rng.permutation(len(rows))]


def test_fast_linking_matches_the_per_class_loops_on_random_videos():
    rng = np.random.default_rng(11)
    for _ in range(3):
        det = _clutter_video(rng, 40, 3)
        for params in ({}, {"jump_gap": 1, "boxes_per_frame": 3}):
            fast = [(p.label, p.frames, p.boxes, p.all_scores) for p in online_paths(det, 40, 3, **params)]
            slow = _reference_online_paths(det, 40, 3, **params)
            assert len(fast) == len(slow) > 10
            for a, b in zip(fast, slow):
                assert a[0] == b[0] and all(np.array_equal(x, y) for x, y in zip(a[1:], b[1:]))
        fast = [(p.label, p.frames, p.boxes, p.energy) for p in viterbi_paths(det, 40, 3)]
        slow = _reference_viterbi_paths(det, 40, 3)
        assert len(fast) == len(slow) >= 3
        for a, b in zip(fast, slow):
            assert a[0] == b[0] and np.array_equal(a[1], b[1]) and np.array_equal(a[2], b[2]) and a[3] == b[3]
        paths = online_paths(det, 40, 3)
        for p, labels in zip(paths, viterbi_labels_batch([p.all_scores for p in paths], 0.5)):
            assert np.array_equal(labels, viterbi_labels(p.all_scores, 0.5))


# ----------------------------------------------------------------------------------------------------------------
# Synthetic untrimmed videos: linking recovers the tubes


W, H, NUM_CLASSES = 320, 240, 3


def _actor_track(rng: np.random.Generator, n: int) -> np.ndarray:
    w, h = rng.uniform(40, 60), rng.uniform(60, 90)
    c0 = np.array([rng.uniform(w, W - w), rng.uniform(h, H - h)])
    v = rng.uniform(-1.5, 1.5, 2)
    t = np.arange(n)
    cx = np.clip(c0[0] + v[0] * t + 6 * np.sin(t / 9), w / 2, W - w / 2)
    cy = np.clip(c0[1] + v[1] * t, h / 2, H - h / 2)
    return np.column_stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])


def _synthetic_video(rng: np.random.Generator, num_frames: int, actors: list[tuple[int, int, int, int, int]],
                     miss: float = 0.12) -> tuple[np.ndarray, list[Tube]]:
    """Detections as an SSD writes them (one row per class for each box) and the ground-truth tubes. ``actors``:
    (label, action start, action end, visible start, visible end); while visible but not acting, the actor is
    detected with a low score for its class; every frame also has two false boxes of a random class."""
    rows, tubes = [], []
    for label, a0, a1, v0, v1 in actors:
        track = _actor_track(rng, v1 - v0 + 1)
        frames = np.arange(v0, v1 + 1)
        acting = (frames >= a0) & (frames <= a1)
        tubes.append(Tube(label, np.column_stack([frames[acting], track[acting]]).astype(float)))
        for f, box, act in zip(frames, track, acting):
            if rng.random() < miss:
                continue
            s = rng.uniform(0, 0.05, NUM_CLASSES)
            s[label] = rng.uniform(0.55, 0.95) if act else rng.uniform(0.01, 0.15)
            noisy = box + rng.normal(0, 2, 4)
            rows += [[f, c, s[c], *noisy] for c in range(NUM_CLASSES)]
    for f in range(1, num_frames + 1):
        for _ in range(2):
            w, h = rng.uniform(20, 80, 2)
            x, y = rng.uniform(0, W - w), rng.uniform(0, H - h)
            s = rng.uniform(0, 0.05, NUM_CLASSES)
            s[rng.integers(NUM_CLASSES)] = rng.uniform(0.05, 0.35)
            rows += [[f, c, s[c], x, y, x + w, y + h] for c in range(NUM_CLASSES)]
    return np.asarray(rows), tubes


@pytest.fixture(scope="module")
def synthetic():
    rng = np.random.default_rng(2024)
    specs = {
        "v1": (96, [(0, 20, 65, 8, 77), (1, 40, 85, 28, 96)]),
        "v2": (90, [(2, 30, 70, 15, 85)]),
        "v3": (100, [(1, 10, 50, 1, 62), (2, 55, 88, 45, 100)]),
        "v4": (80, [(0, 25, 60, 12, 72)]),
    }
    detections, videos = {}, {}
    for name, (n, actors) in specs.items():
        det, tubes = _synthetic_video(rng, n, actors)
        detections[name] = det
        videos[name] = VideoTubes(name, n, (H, W), tubes[0].label, tubes)
    names = list(specs)
    ann = TubeAnnotations("synthetic", ["a", "b", "c"], videos, {1: ([], names)})
    return detections, ann


def _video_map(tubes: dict[str, list[Tube]], ann: TubeAnnotations, delta: float = 0.5) -> float:
    return float(np.nanmean(video_ap(tubes, ann, delta=delta)))


def _frame_baseline(det: np.ndarray) -> list[Tube]:
    return [Tube(int(r[1]), np.array([[r[0], *r[3:]]]), float(r[2])) for r in det]


def _whole_video_baseline(det: np.ndarray, num_frames: int) -> list[Tube]:
    """One tube per class through the whole video from the best box of each frame, untrimmed."""
    tubes = []
    for c in range(NUM_CLASSES):
        d = det[det[:, 1] == c]
        best = [d[d[:, 0] == f][np.argmax(d[d[:, 0] == f][:, 2])] for f in range(1, num_frames + 1)
                if (d[:, 0] == f).any()]
        best = np.asarray(best)
        tubes.append(Tube(c, np.column_stack([best[:, 0], best[:, 3:]]), float(best[:, 2].mean())))
    return tubes


def test_linking_beats_per_frame_baselines_on_synthetic_videos(synthetic):
    detections, ann = synthetic
    online = link_videos(detections, ann, method="online")
    binary = link_videos(detections, ann, method="online", mode="binary")
    frame_only = {v: _frame_baseline(d) for v, d in detections.items()}
    whole = {v: _whole_video_baseline(d, ann.videos[v].num_frames) for v, d in detections.items()}
    m_online, m_binary = _video_map(online, ann), _video_map(binary, ann)
    m_frame, m_whole = _video_map(frame_only, ann), _video_map(whole, ann)
    assert m_frame < 0.05 and m_whole < 0.4
    assert m_online > 0.6 and m_binary > 0.95  # ROAD's default labelling does not cut idle actors (see module)


def test_trimming_finds_start_and_end_inside_the_video(synthetic):
    detections, ann = synthetic
    tubes = link_videos(detections, ann, method="online", mode="binary", workers=2)
    for v, vt in ann.videos.items():
        for gt in vt.tubes:
            best = max((t for t in tubes[v] if t.label == gt.label), key=lambda t: tube_iou(t.boxes, gt.boxes))
            assert abs(best.start - gt.start) <= 3 and abs(best.end - gt.end) <= 3, (v, gt.start, gt.end, best.start,
                                                                                     best.end)
            assert 1 < gt.start and gt.end < vt.num_frames  # the tubes start and end inside the videos


def test_link_videos_viterbi_and_unknown_video(synthetic):
    detections, ann = synthetic
    out = link_videos({"v2": detections["v2"]}, ann, method="viterbi", paths_per_class=1)
    assert [t.label for t in out["v2"]] == [0, 1, 2] and all(len(t.boxes) == 90 for t in out["v2"])
    with pytest.raises(DatasetError, match="nope"):
        link_videos({"nope": detections["v2"]}, ann)
