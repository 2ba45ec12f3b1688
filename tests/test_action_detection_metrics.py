"""frame-mAP / video-mAP (zoo.metrics.action_detection): hand-computed cases, the official evaluators' quirks as
conventions, the real UCF101-24 annotation, and the torchmetrics versions across two real DDP processes."""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from datamodules.action_tubes import Tube, TubeAnnotations, VideoTubes
from zoo.errors import DatasetError
from zoo.metrics.action_detection import (
    CONVENTIONS,
    FrameMAP,
    VideoMAP,
    average_precision,
    box_iou,
    frame_ap,
    frame_map,
    mean_ap,
    tube_iou,
    tube_nms,
    video_ap,
    video_aps,
    video_map_table,
)

HERE = Path(__file__).resolve().parent


def tube(label: int, frames, box, score: float = 1.0) -> Tube:
    frames = np.asarray(list(frames), dtype=np.float64)
    return Tube(label, np.column_stack([frames, np.tile(np.asarray(box, dtype=np.float64), (len(frames), 1))]), score)


def annotation(videos: dict[str, list[Tube]], num_classes: int = 3, num_frames: int = 20) -> TubeAnnotations:
    vt = {v: VideoTubes(v, num_frames, (240, 320), ts[0].label if ts else 0, ts) for v, ts in videos.items()}
    return TubeAnnotations("toy", [f"class{i}" for i in range(num_classes)], vt, {1: ([], list(vt))})


def as_detections(ann: TubeAnnotations, score: float = 1.0) -> dict[str, np.ndarray]:
    """Every ground-truth box as a detection row frame, label, score, x1, y1, x2, y2."""
    out = {}
    for v, vt in ann.videos.items():
        rows = [np.column_stack([t.boxes[:, 0], np.full(len(t.boxes), t.label), np.full(len(t.boxes), score),
                                 t.boxes[:, 1:5]]) for t in vt.tubes]
        out[v] = np.concatenate(rows) if rows else np.zeros((0, 7))
    return out


def toy() -> TubeAnnotations:
    """Two videos, three classes (class 2 only in video b), two actors of class 0 in video a."""
    return annotation({
        "a": [tube(0, range(1, 11), [10, 10, 50, 90]), tube(0, range(5, 16), [100, 20, 140, 100]),
              tube(1, range(3, 9), [200, 50, 260, 120])],
        "b": [tube(2, range(2, 20), [30, 30, 80, 80])],
    })


def toy_detections(seed: int = 0) -> tuple[dict[str, np.ndarray], dict[str, list[Tube]]]:
    """Noisy frame detections and tubes on ``toy()`` (also used by the DDP worker)."""
    rng = np.random.default_rng(seed)
    ann = toy()
    dets, tubes = {}, {}
    for v, vt in ann.videos.items():
        d = as_detections(annotation({v: vt.tubes}))[v]
        d = np.concatenate([d, d, d[:5]])
        d[:, 2] = rng.random(len(d))
        d[:, 3:7] += rng.normal(0, 8, (len(d), 4))
        d[rng.random(len(d)) < 0.2, 1] = rng.integers(0, 3)
        dets[v] = d
        tubes[v] = []
        for t in vt.tubes * 2:
            b = t.boxes.copy()
            b[:, 1:5] += rng.normal(0, 6, (len(b), 4))
            cut = int(rng.integers(0, 4))
            tubes[v].append(Tube(t.label, b[cut:], float(rng.random())))
    return dets, tubes


# ------------------------------------------------------------------------------------------------------- AP
def test_average_precision_of_a_known_sequence_under_each_convention():
    # ranked detections TP, FP, TP, TP, FP against 4 ground truths:
    # precision 1, 1/2, 2/3, 3/4, 3/5 at recall 1/4, 1/4, 1/2, 3/4, 3/4.
    tp = np.array([1, 0, 1, 1, 0], dtype=bool)
    # ACT pr_to_ap, trapezoids from (p=1, r=0): 1/4 * (1 + 1)/2 + 1/4 * (1/2 + 2/3)/2 + 1/4 * (2/3 + 3/4)/2 = 55/96
    assert average_precision(tp, 4, "pr_to_ap") == pytest.approx(55 / 96, abs=1e-12)
    # VOC all-point: envelope 1 on (0, 1/4], 3/4 on (1/4, 3/4], 0 after: 1/4 + 1/2 * 3/4 = 5/8
    assert average_precision(tp, 4, "voc") == pytest.approx(5 / 8, abs=1e-12)
    # VOC07 11-point: t = 0, .1, .2 -> 1; t = .3 .. .7 -> 3/4; t = .8, .9, 1 -> 0: (3 + 5 * 3/4) / 11 = 27/44
    assert average_precision(tp, 4, "voc07") == pytest.approx(27 / 44, abs=1e-12)
    assert math.isnan(average_precision(tp, 0, "voc"))
    assert average_precision(np.zeros(0, bool), 3, "pr_to_ap") == 0.0
    assert average_precision(np.zeros(0, bool), 3, "voc") == 0.0
    with pytest.raises(ValueError, match="unknown AP method"):
        average_precision(tp, 4, "coco")


def test_box_iou_with_and_without_the_extra_pixel():
    a, b = [0, 0, 9, 9], [5, 0, 14, 9]
    # continuous: 4 x 9 = 36 over 81 + 81 - 36; +1 pixel: 5 x 10 = 50 over 100 + 100 - 50
    assert box_iou(a, b)[0, 0] == pytest.approx(36 / 126)
    assert box_iou(a, b, plus_one=True)[0, 0] == pytest.approx(50 / 150)
    m = box_iou(np.array([a, b, [100, 100, 110, 110]]), np.array([a, b]))
    assert m.shape == (3, 2) and m[0, 0] == 1 and m[1, 1] == 1 and m[2].max() == 0


# ------------------------------------------------------------------------------------------------ tube IoU
def test_half_covering_tube_with_perfect_boxes_has_st_iou_one_half():
    gt = tube(0, range(1, 11), [10, 10, 50, 90]).boxes
    det = gt[:5]  # frames 1..5 of 1..10, the same boxes
    assert tube_iou(det, gt, "act") == pytest.approx(0.5)
    assert tube_iou(det, gt, "spatial") == pytest.approx(1.0)  # spatial only: the mean IoU over frames 1..5
    assert tube_iou(gt, gt, "act") == 1.0
    shifted = det.copy()
    shifted[:, [1, 3]] += 20  # x 30..70 against 10..50; with +1 pixels: 21 x 81 over 2 * 41 * 81 - 21 * 81
    assert tube_iou(shifted, gt, "voc") == pytest.approx(0.5 * 21 / (82 - 21))
    # a missing frame inside the temporal intersection counts 0: 4 of 5 frames, mean 4/5, times 5/10
    assert tube_iou(np.delete(det, 2, axis=0), gt, "act") == pytest.approx(0.4)


def test_one_frame_overlap_and_the_road_box_quirk():
    gt = tube(0, range(1, 11), [10, 10, 57, 88]).boxes  # w = 47, h = 78 as pyannot x, y, w, h
    det = tube(0, range(10, 13), [10, 10, 57, 88]).boxes
    assert tube_iou(det, gt, "act") == pytest.approx(1 / 12)  # 1 shared frame of 12, IoU 1 there
    assert tube_iou(det, gt, "road") == 0.0  # ROAD MATLAB / YOWO: T_i = min(te) - max(tb) = 0 fails the > 0 test
    # ROAD moves the detection by 1 px and grows it by 1 px: x 11..59 against 10..57 etc.
    # intersection 46 x 77, union 47 * 78 + 48 * 79 - 46 * 77
    assert tube_iou(gt, gt, "road") == pytest.approx(46 * 77 / (47 * 78 + 48 * 79 - 46 * 77))


def test_tube_nms_keeps_the_best_and_drops_overlaps():
    a = tube(0, range(1, 11), [0, 0, 40, 40]).boxes
    b = a.copy()
    b[:, [1, 3]] += 4  # IoU with a well above 0.3
    c = tube(0, range(1, 11), [200, 200, 240, 240]).boxes
    assert tube_nms([a, b, c], [0.5, 0.9, 0.1], 0.3).tolist() == [1, 2]


# ------------------------------------------------------------------------------------------------- frame-AP
@pytest.mark.parametrize("convention", sorted(CONVENTIONS))
def test_ground_truth_as_detections_scores_one(convention):
    ann = toy()
    aps = frame_ap(as_detections(ann), ann, convention=convention)
    assert aps == pytest.approx([1.0, 1.0, 1.0])
    table = video_map_table({v: list(vt.tubes) for v, vt in ann.videos.items()}, ann, convention="act")
    assert list(table["video_map"].values()) == pytest.approx([1.0] * 4)
    assert set(table["video_map"]) == {"0.2", "0.5", "0.75", "0.5:0.95"}


def test_duplicate_detection_is_a_false_positive():
    ann = annotation({"a": [tube(0, [1, 2], [10, 10, 50, 50])]}, num_classes=1)
    box = [10, 10, 50, 50]
    dets = {"a": np.array([[1, 0, 0.9, *box], [1, 0, 0.8, *box], [2, 0, 0.7, *box]], dtype=float)}
    # TP, FP (the frame's one ground truth is taken), TP: precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1
    # pr_to_ap: 1/2 * (1 + 1)/2 + 0 + 1/2 * (1/2 + 2/3)/2 = 19/24; VOC: 1/2 * 1 + 1/2 * 2/3 = 5/6
    assert frame_ap(dets, ann, convention="act")[0] == pytest.approx(19 / 24)
    assert frame_ap(dets, ann, convention="voc")[0] == pytest.approx(5 / 6)
    assert frame_ap({"a": dets["a"][[0, 2]]}, ann)[0] == pytest.approx(1.0)


def test_wrong_class_detection_counts_for_nothing():
    ann = annotation({"a": [tube(0, [1, 2], [10, 10, 50, 50])]}, num_classes=2)
    box = [10, 10, 50, 50]
    dets = {"a": np.array([[1, 0, 0.9, *box], [2, 1, 0.95, *box]], dtype=float)}
    aps = frame_ap(dets, ann)
    # class 0: its one detection is a TP at recall 1/2 -> 1/2 * (1 + 1)/2 = 1/2; the class-1 box on frame 2 does
    # not recover it. Class 1 has no ground truth: NaN under ACT (left out of the mean), 0 under ROAD.
    assert aps[0] == pytest.approx(0.5) and math.isnan(aps[1])
    assert mean_ap(aps) == pytest.approx(0.5)
    assert frame_map(dets, ann)["frame_map"] == pytest.approx(0.5)
    assert frame_ap(dets, ann, convention="road").tolist() == pytest.approx([0.5, 0.0])


def test_best_unmatched_ground_truth_versus_voc_matching():
    # two ground truths in one frame; detection 1 overlaps both (best: g1), detection 2 overlaps only g1.
    ann = annotation({"a": [tube(0, [1], [0, 0, 100, 100]), tube(0, [1], [20, 0, 120, 100])]}, num_classes=1)
    dets = {"a": np.array([[1, 0, 0.9, 0, 0, 100, 100], [1, 0, 0.8, 0, 0, 100, 100]], dtype=float)}
    # ACT / ROAD: detection 2 takes g2 (IoU 81 * 101 / (2 * 101 * 101 - 81 * 101) = 0.67 >= 0.5): AP 1.
    # VOC matching (YOWO's Object-Detection-Metrics): its best ground truth g1 is taken -> FP. TP, FP with 2 gt:
    # precision 1, 1/2 at recall 1/2, 1/2: VOC all-point 1/2.
    assert frame_ap(dets, ann, convention="act")[0] == pytest.approx(1.0)
    assert frame_ap(dets, ann, convention="yowo")[0] == pytest.approx(0.5)


def test_detections_in_frames_without_ground_truth():
    ann = annotation({"a": [tube(0, [1], [10, 10, 50, 50])]}, num_classes=1)
    dets = {"a": np.array([[5, 0, 0.9, 10, 10, 50, 50], [1, 0, 0.5, 10, 10, 50, 50]], dtype=float)}
    # frame 5 has no ground truth: FP then TP, precision 0, 1/2 at recall 0, 1. ACT trapezoids from (p 1, r 0):
    # 0 + 1 * (0 + 1/2)/2 = 1/4; ROAD VOC all-point: 1 * 1/2. YOWO scores only annotated frames: TP alone, 1.
    assert frame_ap(dets, ann, convention="act")[0] == pytest.approx(0.25)
    assert frame_ap(dets, ann, convention="road")[0] == pytest.approx(0.5)
    assert frame_ap(dets, ann, convention="yowo")[0] == pytest.approx(1.0)


def test_frame_threshold_is_inclusive_and_strict_on_request():
    ann = annotation({"a": [tube(0, [1], [0, 0, 10, 10])]}, num_classes=1)
    dets = {"a": np.array([[1, 0, 1.0, 0, 0, 10, 5]], dtype=float)}  # continuous IoU exactly 1/2
    assert frame_ap(dets, ann, convention="road")[0] == 1.0  # IoU >= 0.5
    assert frame_ap(dets, ann, convention=replace(CONVENTIONS["road"], frame_strict=True))[0] == 0.0


def test_bad_detections_and_unknown_videos_are_one_line_errors():
    ann = toy()
    with pytest.raises(DatasetError, match=r"detections of 'a': row 1: label 7 is not in 0\.\.2"):
        frame_ap({"a": np.array([[1, 0, 1, 0, 0, 5, 5], [1, 7, 1, 0, 0, 5, 5]], dtype=float)}, ann)
    with pytest.raises(DatasetError, match="expected \\(M, 7\\)"):
        frame_ap({"a": np.zeros((2, 6))}, ann)
    with pytest.raises(DatasetError, match="'zz' is not in the toy annotation"):
        frame_ap({}, ann, videos=["zz"])
    with pytest.raises(DatasetError, match="tube 0: frames are not strictly increasing"):
        video_ap({"a": [Tube(0, np.array([[2, 0, 0, 5, 5], [1, 0, 0, 5, 5]], dtype=float))]}, ann)
    with pytest.raises(ValueError, match="unknown convention"):
        frame_ap({}, ann, convention="coco")


# ------------------------------------------------------------------------------------------------- video-AP
def test_video_duplicates_wrong_class_and_partial_tubes():
    gt_a = tube(0, range(1, 11), [10, 10, 50, 90])
    gt_b = tube(0, range(1, 11), [100, 10, 140, 90])
    ann = annotation({"v": [gt_a, gt_b]}, num_classes=2)
    half = Tube(0, gt_b.boxes[:5], 0.7)  # st-IoU 0.5 with gt_b
    tubes = {"v": [Tube(0, gt_a.boxes, 0.9), Tube(0, gt_a.boxes, 0.8), half, Tube(1, gt_b.boxes, 0.95)]}
    aps = video_aps(tubes, ann, deltas=(0.2, 0.5, 0.75))
    # class 0 ranked: TP (gt_a), FP (duplicate of gt_a), TP at delta <= 0.5 (half tube on gt_b)
    # -> precision 1, 1/2, 2/3, recall 1/2, 1/2, 1: 19/24 (as the frame case); at 0.75: TP, FP, FP -> 1/2
    assert aps[:, 0] == pytest.approx([19 / 24, 19 / 24, 0.5])
    assert np.isnan(aps[:, 1]).all()  # the class-1 tube is on a class without ground truth
    strict = replace(CONVENTIONS["act"], video_strict=True)
    assert video_ap(tubes, ann, delta=0.5, convention=strict)[0] == pytest.approx(0.5)  # 0.5 > 0.5 fails
    table = video_map_table(tubes, ann)
    # 0.5:0.95: TP + half tube only at 0.5 (19/24), else 1/2 for the other 9 thresholds
    assert table["video_map"]["0.5:0.95"] == pytest.approx((19 / 24 + 9 * 0.5) / 10)
    assert table["per_class"]["0.5:0.95"][0] == pytest.approx((19 / 24 + 9 * 0.5) / 10)
    assert table["num_gt"] == [2, 0] and table["num_tubes"] == [3, 1]


def test_act_nms_suppresses_overlapping_same_class_ground_truth():
    a = tube(0, range(1, 11), [0, 0, 40, 40])
    b = tube(0, range(1, 11), [8, 0, 48, 40])  # st-IoU with a: 33 * 41 / (2 * 41 * 41 - 33 * 41) = 0.67 > 0.3
    ann = annotation({"v": [a, b]}, num_classes=1)
    tubes = {"v": [Tube(0, a.boxes, 0.9), Tube(0, b.boxes, 0.8)]}
    assert video_ap(tubes, ann, convention="act")[0] == 1.0
    assert video_ap(tubes, ann, convention="act_nms")[0] == pytest.approx(0.5)  # b suppressed: recall 1/2


def naive_frame_ap(dets: dict[str, np.ndarray], ann: TubeAnnotations, iou: float = 0.5) -> np.ndarray:
    """A direct per-class loop of the ACT rules (reference for the vectorised code)."""
    out = []
    for c in range(len(ann.classes)):
        rows = [(v, r) for v in ann.videos for r in dets.get(v, np.zeros((0, 7))) if int(r[1]) == c]
        rows.sort(key=lambda x: -x[1][2])  # stable: ties keep the input order
        gt = {}
        for v, vt in ann.videos.items():
            for t in vt.tubes:
                if t.label == c:
                    for r in t.boxes:
                        gt.setdefault((v, int(r[0])), []).append(r[1:5])
        n = sum(len(g) for g in gt.values())
        tp = []
        for v, r in rows:
            cand = gt.get((v, int(r[0])), [])
            ious = [box_iou(r[3:7], g, plus_one=True)[0, 0] for g in cand]
            j = int(np.argmax(ious)) if ious else -1
            tp.append(j >= 0 and ious[j] >= iou)
            if tp[-1]:
                cand.pop(j)
        out.append(average_precision(np.array(tp, bool), n, "pr_to_ap"))
    return np.array(out)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_vectorised_frame_ap_equals_a_direct_loop(seed):
    ann = toy()
    dets, _ = toy_detections(seed)
    assert frame_ap(dets, ann) == pytest.approx(naive_frame_ap(dets, ann), nan_ok=True)


# ------------------------------------------------------------------------------------------------ real data
def test_real_ucf101_24_split1_ground_truth_scores_one_in_seconds(shared):
    from datamodules.action_tubes import read_pyannot

    root = shared / "ucf101_24"
    if not (root / "pyannot.pkl").is_file():
        pytest.skip("pyannot.pkl not in the shared data")
    ann = read_pyannot(root / "pyannot.pkl", testlist=root / "testlist01.txt")
    test = ann.test_videos(1)
    assert len(test) == 910
    dets = {v: as_detections(annotation({v: ann.videos[v].tubes}))[v] for v in test}
    tubes = {v: [Tube(t.label, t.boxes.copy(), 1.0) for t in ann.videos[v].tubes] for v in test}
    t0 = time.perf_counter()
    fm = frame_map(dets, ann, test)
    table = video_map_table(tubes, ann, test)
    seconds = time.perf_counter() - t0
    assert fm["frame_map"] == pytest.approx(1.0) and sum(fm["num_gt"]) == sum(len(d) for d in dets.values())
    assert list(table["video_map"].values()) == pytest.approx([1.0] * 4)
    assert seconds < 10, seconds
    # the published evaluators' own quirks on the same input (documented in the module):
    road = video_map_table(tubes, ann, test, convention="road")["video_map"]
    assert road["0.2"] == pytest.approx(1.0) and road["0.5:0.95"] < 0.95  # ROAD's +1 px on detected boxes
    assert video_ap(tubes, ann, test, 0.5, "act_nms").mean() < 1.0  # ACT's NMS drops same-class gt tubes


# ---------------------------------------------------------------------------------------------- torchmetrics
def test_metrics_equal_the_plain_functions():
    ann = toy()
    dets, tubes = toy_detections(3)
    fm, vm = FrameMAP(ann), VideoMAP(ann)
    for v in ann.videos:  # a video's detections over several updates add up
        fm.update(v, dets[v][:7])
        fm.update(v, dets[v][7:])
        vm.update(v, tubes[v])
    assert fm.compute() == frame_map(dets, ann, list(ann.videos))
    assert vm.compute() == video_map_table(tubes, ann, list(ann.videos))
    only_b = FrameMAP(ann)
    only_b.update("b", dets["b"])  # default videos: those updated (video a's ground truth is not scored)
    assert only_b.compute()["frame_map"] == frame_map(dets, ann, ["b"])["frame_map"]
    with pytest.raises(DatasetError, match="'zz' is not in the toy annotation"):
        fm.update("zz", dets["a"])


DDP_WORKER = """
import json, os, sys
import torch.distributed as dist
sys.path.insert(0, {here!r})
import test_action_detection_metrics as T
from zoo.metrics.action_detection import FrameMAP, VideoMAP
dist.init_process_group("gloo")
rank = dist.get_rank()
ann = T.toy()
dets, tubes = T.toy_detections(5)
fm, vm = FrameMAP(ann), VideoMAP(ann)
if rank == 0:  # rank 1 gets no video at all
    for v in ann.videos:
        fm.update(v, dets[v])
        vm.update(v, tubes[v])
out = {{"frame": fm.compute(), "video": vm.compute()}}
fm2, vm2 = FrameMAP(ann), VideoMAP(ann)
v = sorted(ann.videos)[rank]  # one video per rank
fm2.update(v, dets[v])
vm2.update(v, tubes[v])
out["frame_split"], out["video_split"] = fm2.compute(), vm2.compute()
print("RESULT" + json.dumps(out))
dist.destroy_process_group()
"""


def test_metrics_sync_across_two_ddp_processes():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code = DDP_WORKER.format(here=str(HERE))
    procs = []
    for rank in range(2):
        env = dict(os.environ, RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
                   PYTHONWARNINGS="ignore")
        procs.append(subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True, cwd=str(HERE.parent)))
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err[-2000:]
    ann = toy()
    dets, tubes = toy_detections(5)
    expected_f = frame_map(dets, ann, list(ann.videos))
    expected_v = video_map_table(tubes, ann, list(ann.videos))
    for out, _ in outs:
        got = json.loads(next(line for line in out.splitlines() if line.startswith("RESULT"))[6:])
        for key, expected in (("frame", expected_f), ("frame_split", expected_f), ("video", expected_v),
                              ("video_split", expected_v)):
            assert json.dumps(got[key], sort_keys=True) == json.dumps(expected, sort_keys=True), key
