"""The action-detection annotation readers and writers: ROAD's pyannot.pkl, ACT's *-GT.pkl, the J-HMDB splits."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

from datamodules.action_tubes import (
    JHMDB_CLASSES,
    UCF24_CLASSES,
    Tube,
    TubeAnnotations,
    VideoTubes,
    read_act_gt,
    read_jhmdb_splits,
    read_pyannot,
    read_split_list,
    write_act_gt,
    write_pyannot,
    write_split_list,
)
from zoo.errors import DatasetError


# ------------------------------------------------------------------------------------------------------ real files
@pytest.fixture(scope="module")
def real_pyannot(shared):
    return read_pyannot(shared / "ucf101_24" / "pyannot.pkl", testlist=shared / "ucf101_24" / "testlist01.txt")


def test_real_pyannot_counts_and_split(real_pyannot, shared):
    ann = real_pyannot
    assert len(ann.videos) == 3194
    assert sum(len(v.tubes) for v in ann.videos.values()) == 4458
    listed = [line.strip() for line in (shared / "ucf101_24" / "testlist01.txt").read_text().splitlines()]
    listed = [v for v in listed if v]
    assert ann.test_videos(1) == listed and len(listed) == 910
    # ROAD's make_lists: every video not in the train list trains; no trainlist here, so train = the rest
    assert sorted(ann.train_videos(1) + ann.test_videos(1)) == sorted(ann.videos)
    assert ann.classes == UCF24_CLASSES and ann.skipped == []
    several = [v for v in ann.videos.values() if len(v.tubes) > 1]
    inside = [t for v in ann.videos.values() for t in v.tubes if t.start > 1 and t.end < v.num_frames]
    assert several and inside  # several actors per video; tubes that start and end inside the video


def test_real_pyannot_no_wrap(real_pyannot):
    """Boxes of uint8 x + w > 255 wrap round in uint8 arithmetic: x2 would fall below x1 and nothing would pass 255."""
    boxes = np.concatenate([t.boxes for v in real_pyannot.videos.values() for t in v.tubes])
    assert boxes.dtype == np.float64
    assert np.all(boxes[:, 3] > boxes[:, 1]) and np.all(boxes[:, 4] > boxes[:, 2])
    assert boxes[:, 3].max() == 320 and boxes[:, 4].max() == 240  # the frame is 320 x 240
    assert boxes[:, 1:].min() >= 1
    assert max(v.num_frames for v in real_pyannot.videos.values()) > 255  # numf is uint8 or uint16 too


def test_real_pyannot_first_video(real_pyannot, shared):
    """Hand-read: Basketball/v_Basketball_g01_c01: numf 141, one tube sf=8, ef=52, first box x,y,w,h 189,102,47,78."""
    v = real_pyannot.videos["Basketball/v_Basketball_g01_c01"]
    assert (v.num_frames, v.label, v.resolution, len(v.tubes)) == (141, 0, (240, 320), 1)
    t = v.tubes[0]
    assert (t.start, t.end, len(t.boxes)) == (9, 52, 44)
    np.testing.assert_array_equal(t.boxes[0], [9, 189, 102, 236, 180])


def test_real_jhmdb_splits(shared):
    classes, splits, labels = read_jhmdb_splits(shared / "jhmdb" / "splits")
    assert classes == JHMDB_CLASSES and len(classes) == 21
    assert {k: (len(tr), len(te)) for k, (tr, te) in splits.items()} == {1: (660, 268), 2: (658, 270), 3: (663, 265)}
    assert len(labels) == 928
    v = "brush_hair/Aussie_Brunette_Brushing_Long_Hair_brush_hair_u_nm_np1_ba_med_3"
    assert v in splits[1][0] and labels[v] == 0
    for tr, te in splits.values():
        assert not set(tr) & set(te) and len(set(tr) | set(te)) == 928


# ----------------------------------------------------------------------------------------------- hand-built files
def _boxes(frames, x1, y1, x2, y2):
    f = np.asarray(frames, dtype=np.float64)
    return np.stack([f, np.full_like(f, x1), np.full_like(f, y1), np.full_like(f, x2), np.full_like(f, y2)], 1)


def _small(dataset="ucf101-24", classes=("A", "B", "C")):
    videos = {
        "A/v1": VideoTubes("A/v1", 10, (240, 320), 0, [Tube(0, _boxes(range(3, 8), 200, 10, 300, 60)),
                                                      Tube(0, _boxes(range(1, 11), 0, 0, 5, 7))]),
        "B/v2": VideoTubes("B/v2", 300, (240, 320), 1, [Tube(1, _boxes(range(250, 301), 1, 2, 319, 239))]),
        "C/v3": VideoTubes("C/v3", 4, (240, 320), 2, []),
    }
    return TubeAnnotations(dataset, list(classes), videos, {1: (["A/v1", "C/v3"], ["B/v2"])})


def _same(a: TubeAnnotations, b: TubeAnnotations) -> None:
    assert a.classes == b.classes and a.splits == b.splits and sorted(a.videos) == sorted(b.videos)
    for name, v in a.videos.items():
        w = b.videos[name]
        assert (v.num_frames, v.resolution, v.label, len(v.tubes)) == (w.num_frames, w.resolution, w.label,
                                                                       len(w.tubes))
        for s, t in zip(sorted(v.tubes, key=lambda t: t.start), sorted(w.tubes, key=lambda t: t.start)):
            assert s.label == t.label
            np.testing.assert_array_equal(s.boxes, t.boxes)


def test_pyannot_round_trip(tmp_path):
    ann = _small()
    write_pyannot(ann, tmp_path / "pyannot.pkl")
    write_split_list(ann.train_videos(), tmp_path / "trainlist01.txt")
    write_split_list(ann.test_videos(), tmp_path / "testlist01.txt")
    assert (tmp_path / "testlist01.txt").read_text() == "B/v2\n"
    raw = pickle.load(open(tmp_path / "pyannot.pkl", "rb"))
    t = raw["A/v1"]["annotations"][0]
    assert (t["sf"], t["ef"], t["boxes"].dtype) == (2, 7, np.uint16)  # frames 3..7 are sf=2 (0-based), ef=7
    np.testing.assert_array_equal(t["boxes"][0], [200, 10, 100, 50])
    back = read_pyannot(tmp_path / "pyannot.pkl", classes=["A", "B", "C"])
    _same(ann, back)


def test_pyannot_uint8_boxes_do_not_wrap(tmp_path):
    """x=200, w=100 stored as uint8: x2 must be 300, not (200 + 100) % 256 = 44."""
    boxes = np.array([[200, 100, 100, 120]] * 3, dtype=np.uint8)
    data = {"A/v1": {"label": 0, "numf": np.uint8(5), "annotations": [{"label": 0, "sf": 1, "ef": 4, "boxes": boxes}]}}
    (tmp_path / "p.pkl").write_bytes(pickle.dumps(data, protocol=2))
    t = read_pyannot(tmp_path / "p.pkl", classes=["A"]).videos["A/v1"].tubes[0]
    np.testing.assert_array_equal(t.boxes, [[2, 200, 100, 300, 220], [3, 200, 100, 300, 220], [4, 200, 100, 300, 220]])


def test_act_round_trip(tmp_path):
    ann = _small("jhmdb")
    ann.splits = {1: (["A/v1"], ["B/v2", "C/v3"]), 2: (["B/v2"], ["A/v1"]), 3: (["C/v3"], ["A/v1", "B/v2"])}
    ann.videos["A/v1"].tubes[0].boxes[:, 1:] += 0.25  # ACT boxes are floats: kept exactly
    ann.videos["A/v1"].resolution = (120, 160)
    write_act_gt(ann, tmp_path / "JHMDB-GT.pkl")
    raw = pickle.load(open(tmp_path / "JHMDB-GT.pkl", "rb"), encoding="latin1")
    assert raw["train_videos"][1] == ["B/v2"] and raw["resolution"]["A/v1"] == (120, 160)
    assert sorted(raw["gttubes"]["A/v1"]) == [0] and len(raw["gttubes"]["A/v1"][0]) == 2
    back = read_act_gt(tmp_path / "JHMDB-GT.pkl")
    assert back.dataset == "jhmdb"
    _same(ann, back)


# ---------------------------------------------------------------------------------------------------- bad input
def _write_pyannot(tmp_path, ann=None):
    write_pyannot(ann or _small(), tmp_path / "pyannot.pkl")
    return tmp_path / "pyannot.pkl"


def test_split_video_missing_from_annotation(tmp_path):
    path = _write_pyannot(tmp_path)
    (tmp_path / "testlist01.txt").write_text("B/v2\n\nZ/nope\n")
    with pytest.raises(DatasetError) as e:
        read_pyannot(path, classes=["A", "B", "C"])
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"{tmp_path / 'testlist01.txt'}:3:") and "Z/nope" in msg
    ann = read_pyannot(path, classes=["A", "B", "C"], on_missing="skip")
    assert ann.test_videos() == ["B/v2"] and len(ann.skipped) == 1 and "Z/nope" in ann.skipped[0]


def test_tube_boxes_disagree_with_frames(tmp_path):
    data = {"A/v1": {"label": 0, "numf": 9, "annotations": [
        {"label": 0, "sf": 0, "ef": 5, "boxes": np.ones((4, 4), np.uint8)}]}}
    (tmp_path / "p.pkl").write_bytes(pickle.dumps(data, protocol=2))
    with pytest.raises(DatasetError) as e:
        read_pyannot(tmp_path / "p.pkl")
    msg = str(e.value)
    assert "\n" not in msg and str(tmp_path / "p.pkl") in msg and "A/v1" in msg and "4 boxes" in msg
    ann = read_pyannot(tmp_path / "p.pkl", on_bad_tube="skip")
    assert ann.videos["A/v1"].tubes == [] and len(ann.skipped) == 1


def test_act_bad_input(tmp_path):
    ann = _small("ucfsports")
    ann.splits[1] = (["A/v1", "Q/gone"], ["B/v2"])
    write_act_gt(ann, tmp_path / "UCFSports-GT.pkl")
    with pytest.raises(DatasetError, match=r"UCFSports-GT.pkl: train_videos\[0\]\[1\]: video 'Q/gone'"):
        read_act_gt(tmp_path / "UCFSports-GT.pkl")
    assert read_act_gt(tmp_path / "UCFSports-GT.pkl", on_missing="skip").train_videos() == ["A/v1"]
    ann = _small()
    ann.videos["C/v3"].tubes = [Tube(2, _boxes([3, 4, 5], 1, 1, 2, 2))]  # frame 5 of a 4-frame video
    write_act_gt(ann, tmp_path / "X-GT.pkl")
    with pytest.raises(DatasetError, match=r"X-GT.pkl: video 'C/v3': tube frames 3..5"):
        read_act_gt(tmp_path / "X-GT.pkl")
    (tmp_path / "junk.pkl").write_bytes(b"not a pickle")
    with pytest.raises(DatasetError, match="junk.pkl: not a readable pickle"):
        read_act_gt(tmp_path / "junk.pkl")
    data = pickle.loads((tmp_path / "X-GT.pkl").read_bytes())
    data["gttubes"]["A/v1"] = {0: [[[1, 2, 3, 4, 5], [2, 3]]]}  # a ragged tube
    (tmp_path / "R-GT.pkl").write_bytes(pickle.dumps(data))
    with pytest.raises(DatasetError, match=r"R-GT.pkl: video 'A/v1': malformed entry \(ValueError"):
        read_act_gt(tmp_path / "R-GT.pkl")
    data["nframes"]["A/v1"] = None
    (tmp_path / "N-GT.pkl").write_bytes(pickle.dumps(data))
    with pytest.raises(DatasetError, match=r"N-GT.pkl: video 'A/v1': malformed entry \(TypeError"):
        read_act_gt(tmp_path / "N-GT.pkl")


def test_jhmdb_split_bad_line(tmp_path):
    (tmp_path / "a_test_split1.txt").write_text("x.avi 1\ny.avi 2\nz.avi\n")
    with pytest.raises(DatasetError, match=r"a_test_split1.txt:3: expected"):
        read_jhmdb_splits(tmp_path, splits=(1,))
    (tmp_path / "a_test_split1.txt").write_text("x.avi 1\ny.avi 2 \n")
    classes, splits, labels = read_jhmdb_splits(tmp_path, splits=(1,))
    assert classes == ["a"] and splits == {1: (["a/x"], ["a/y"])} and labels == {"a/x": 0, "a/y": 0}
    with pytest.raises(DatasetError, match="a_test_split2.txt: split file missing"):
        read_jhmdb_splits(tmp_path)


def test_split_list_reader(tmp_path):
    write_split_list(["A/v1", "B/v2"], tmp_path / "l.txt")
    assert read_split_list(tmp_path / "l.txt") == ["A/v1", "B/v2"]
    with pytest.raises(DatasetError, match="nope.txt: split list not found"):
        read_split_list(tmp_path / "nope.txt")


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("echo this must never run",))


def test_an_annotation_pickle_never_runs_code(tmp_path):
    (tmp_path / "JHMDB-GT.pkl").write_bytes(pickle.dumps({"labels": _RunsCode()}))
    with pytest.raises(DatasetError, match=r"JHMDB-GT.pkl: not a readable pickle .*refused, the pickle imports"):
        read_act_gt(tmp_path / "JHMDB-GT.pkl")
