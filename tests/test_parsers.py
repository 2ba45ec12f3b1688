"""Parsers on the real annotation files, and their errors on bad input."""

from __future__ import annotations

import numpy as np
import pytest

from datamodules import alov, otb, ucf101
from zoo.errors import DatasetError


def test_ucf101_official_splits(shared):
    lists = shared / "ucf101" / "ucfTrainTestlist"
    classes = ucf101.read_class_index(lists / "classInd.txt")
    assert len(classes) == 101 and classes[0] == "ApplyEyeMakeup" and classes[36] == "HandstandPushups"
    sizes = {(s, t): len(ucf101.read_split(lists, s, t)) for s in (1, 2, 3) for t in (True, False)}
    assert sizes[(1, True)] == 9537 and sizes[(1, False)] == 3783
    assert all(sizes[(s, True)] + sizes[(s, False)] == 13320 for s in (1, 2, 3))
    test = dict(ucf101.read_split(lists, 1, False))
    assert test["HandstandPushups/v_HandStandPushups_g01_c01.avi"] == 36
    assert all(not rel.endswith("\r") for rel in test)


def test_ucf101_bad_label_names_file_and_line(tmp_path):
    (tmp_path / "classInd.txt").write_text("1 Walk\r\n2 Run\r\n")
    (tmp_path / "trainlist01.txt").write_text("Walk/v_Walk_g01_c01.avi 1\r\nRun/v_Run_g01_c01.avi 1\r\n")
    with pytest.raises(DatasetError, match=r"trainlist01.txt:2: label 1 does not match folder Run"):
        ucf101.read_split(tmp_path, 1, True)
    (tmp_path / "testlist01.txt").write_text("Walk/v_Walk_g01_c01.avi\nJump/v_Jump_g01_c01.avi\n")
    with pytest.raises(DatasetError, match=r"testlist01.txt:2: .*Jump"):
        ucf101.read_split(tmp_path, 1, False)


def test_ucf101_missing_root_is_one_line(tmp_path):
    with pytest.raises(DatasetError, match="UCF101 root folder not found") as e:
        ucf101.UCF101Clips(tmp_path / "nope")
    assert "\n" not in str(e.value)


def test_otb_boxes_with_mixed_delimiters(shared, tmp_path):
    crossing = otb.load_sequence(shared / "otb" / "sequences" / "Crossing")
    assert crossing.boxes.shape == (120, 4)
    np.testing.assert_array_equal(crossing.boxes[0], [205, 151, 17, 50])  # tab separated
    for path in sorted((shared / "otb" / "anno").glob("*.txt"))[:30]:
        boxes = otb.read_boxes(path)
        assert boxes.shape[1] == 4 and len(boxes) > 10
    mixed = tmp_path / "gt.txt"
    mixed.write_text("1,2,3,4\n5\t6\t7\t8\n9 10 11 12\n\n13, 14,15 ,16\n")
    np.testing.assert_array_equal(otb.read_boxes(mixed)[:, 0], [1, 5, 9, 13])
    mixed.write_text("1,2,3,4\n5,6,x,8\n")
    with pytest.raises(DatasetError, match=r"gt.txt:2: not a number"):
        otb.read_boxes(mixed)
    mixed.write_text("1,2,3\n")
    with pytest.raises(DatasetError, match=r"gt.txt:1: expected 4 values"):
        otb.read_boxes(mixed)


def test_alov_corners_and_errors(tmp_path):
    ann = tmp_path / "01-Light_video00001.ann"
    ann.write_text("1 155.33 85.45 155.33 30.12 200.00 30.12 200.00 85.45\n6 10 20 12 5 40 7 38 22\n")
    boxes = alov.read_ann(ann)
    np.testing.assert_allclose(boxes[1], [155.33, 30.12, 44.67, 55.33])
    np.testing.assert_allclose(boxes[6], [10, 5, 30, 17])  # a rotated quadrilateral: its bounding box
    ann.write_text("1 1 2 3 4 5 6 7\n")
    with pytest.raises(DatasetError, match=r"video00001.ann:1: expected frame number and 8"):
        alov.read_ann(ann)
    with pytest.raises(DatasetError, match="ALOV300\\+\\+ folder not found"):
        alov.list_videos(tmp_path / "missing")
