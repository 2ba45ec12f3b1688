"""Annotation and list files with non-finite numbers or bytes that are not UTF-8: one-line errors at ``file:line``."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from datamodules import alov, hmdb51, otb, ucf101
from datamodules.frame_store import FrameStoreReader, read_meta
from datamodules.otb99lang import read_queries
from datamodules.text import read_lines, read_text
from zoo.errors import DatasetError


def raises_at(where: str):
    """``pytest.raises`` for a one-line DatasetError that starts its message at ``where`` (``file:line: ...``)."""
    return pytest.raises(DatasetError, match=re.escape(where))


def test_otb_ground_truth_nan_and_inf_are_errors(tmp_path):
    seq = tmp_path / "Crossing"
    (seq / "img").mkdir(parents=True)
    (seq / "groundtruth_rect.txt").write_text("nan,nan,nan,nan\n205,151,17,50\n")
    with raises_at("groundtruth_rect.txt:1: NaN in ground truth") as e:
        otb.load_sequence(seq)
    assert "\n" not in str(e.value)
    anno = tmp_path / "anno"
    anno.mkdir()
    info = otb.lookup("Crossing")
    (anno / "Crossing.txt").write_text("205,151,17,50\n\n205,151,inf,50\n" + "205,151,17,50\n" * (len(info) - 2))
    with raises_at("Crossing.txt:3: infinite value in '205,151,inf,50'"):
        otb.load_ground_truth(info, anno_dir=anno)


def test_otb_results_keep_nan_but_not_inf(tmp_path):
    result = tmp_path / "Crossing.txt"
    result.write_text("1,2,3,4\nnan,nan,nan,nan\n5,6,7,8\n")
    boxes, lines = otb.read_boxes(result, with_lines=True)  # NaN: a tracker's invalid box, scored by convention
    assert np.isnan(boxes[1]).all() and lines == [1, 2, 3]
    with raises_at("Crossing.txt:2: NaN in ground truth"):
        otb.read_boxes(result, ground_truth=True)
    result.write_text("1,2,3,4\n5,6,-inf,8\n")
    with raises_at("Crossing.txt:2: infinite value"):
        otb.read_boxes(result)


def test_alov_non_finite_corners_are_errors(tmp_path):
    ann = tmp_path / "01-Light_video00001.ann"
    ann.write_text("1 10 20 12 5 40 7 38 22\n6 nan 85.45 155.33 30.12 200.00 30.12 200.00 85.45\n")
    with raises_at("01-Light_video00001.ann:2: corner values must be finite"):
        alov.read_ann(ann)
    ann.write_text("1 10 20 12 5 40 7 38 22\n\n11 10 20 12 5 inf 7 38 22\n")
    with raises_at("01-Light_video00001.ann:3: corner values must be finite"):
        alov.read_ann(ann)


def test_ucf101_non_ascii_digits_are_errors(tmp_path):
    (tmp_path / "classInd.txt").write_text("1 Walk\n\u00b2 Run\n")  # '²'.isdigit() is True but int('²') fails
    with raises_at("classInd.txt:2: expected '<number> <ClassName>'"):
        ucf101.read_class_index(tmp_path / "classInd.txt")
    (tmp_path / "classInd.txt").write_text("1 Walk\n2 Run\n")
    (tmp_path / "trainlist01.txt").write_text("Walk/v_Walk_g01_c01.avi 1\nRun/v_Run_g01_c01.avi \u00b2\n")
    with raises_at("trainlist01.txt:2: label \u00b2 does not match folder Run"):
        ucf101.read_split(tmp_path, 1, True)


def _file(folder, name: str, data: bytes):
    folder.mkdir(parents=True)
    (folder / name).write_bytes(data)
    return folder / name


def _ucf_lists(folder, data: bytes, name: str):
    _file(folder, "classInd.txt", b"1 Walk\r\n2 Run\r\n")
    (folder / "trainlist01.txt").write_bytes(b"Walk/v_Walk_g01_c01.avi 1\r\n")
    (folder / name).write_bytes(data)
    return folder


def _lang_root(folder, data: bytes):
    _file(folder / "OTB_query_test", "Crossing.txt", data)
    return folder


# reader: (file name, read(folder, bytes) that writes the file into folder and parses it, a valid file)
READERS = {
    "otb_groundtruth": (
        "groundtruth_rect.txt",
        lambda d, b: otb.read_boxes(_file(d, "groundtruth_rect.txt", b)),
        b"1,2,3,4\r\n5,6,7,8\r\n",
    ),
    "alov_ann": (
        "video00001.ann",
        lambda d, b: alov.read_ann(_file(d, "video00001.ann", b)),
        b"1 10 20 12 5 40 7 38 22\r\n6 10 20 12 5 40 7 38 22\r\n",
    ),
    "ucf101_classind": (
        "classInd.txt",
        lambda d, b: ucf101.read_class_index(_ucf_lists(d, b, "classInd.txt") / "classInd.txt"),
        b"1 Walk\r\n2 Run\r\n",
    ),
    "ucf101_trainlist": (
        "trainlist01.txt",
        lambda d, b: ucf101.read_split(_ucf_lists(d, b, "trainlist01.txt")),
        b"Walk/v_Walk_g01_c01.avi 1\r\nRun/v_Run_g01_c01.avi 2\r\n",
    ),
    "hmdb51_split": (
        "walk_test_split1.txt",
        lambda d, b: hmdb51.read_split(_file(d, "walk_test_split1.txt", b).parent),
        b"a.avi 1 \r\nb.avi 2 \r\n",
    ),
    "otb99lang_query": (
        "Crossing.txt",
        lambda d, b: read_queries(_lang_root(d, b), "test"),
        b"a man\r\nin black\r\n",
    ),
    "frame_store_meta": (
        "frame_store.json",
        lambda d, b: read_meta(_file(d, "frame_store.json", b)),
        b'{"size": [8, 8],\r\n "backend": "pyav"}\r\n',
    ),
}


@pytest.mark.parametrize("reader", list(READERS))
def test_non_utf8_byte_names_file_line_and_column(tmp_path, reader):
    name, read, good = READERS[reader]
    read(tmp_path / "good", good)  # the valid file reads
    first, second = good.split(b"\r\n")[:2]
    bad = first + b"\r\n" + second[:3] + b"\xff" + second[3:] + b"\r\n"
    with raises_at(f"{name}:2: not UTF-8 text (byte 0xff at column 4)") as e:
        read(tmp_path / "bad", bad)
    assert "\n" not in str(e.value)


def test_read_text_line_ends_and_byte_order_mark(tmp_path):
    path = tmp_path / "list.txt"
    path.write_bytes(b"\xef\xbb\xbfa\r\nb\rc\n")
    assert read_text(path) == "a\nb\nc\n" and read_lines(path) == ["a", "b", "c"]
    path.write_bytes(b"\xc3\xa9t\xc3\xa9\r\n\r\n\xc3\xa9\xe9")  # UTF-8 'été', a blank line, 'é' + Latin-1 'é'
    with raises_at("list.txt:3: not UTF-8 text (byte 0xe9 at column 2)"):
        read_lines(path)
    with raises_at("nope.txt: cannot read"):
        read_text(tmp_path / "nope.txt")


def test_frame_store_fps_must_be_finite(tmp_path):
    store = tmp_path / "store"
    (store / "Walk").mkdir(parents=True)
    np.save(store / "Walk" / "v.avi.npy", np.zeros((2, 4, 4, 3), np.uint8))
    (store / "frame_store.json").write_text(json.dumps({"size": [4, 4], "backend": "pyav", "fps": 30}, indent=1))
    assert FrameStoreReader(store / "Walk" / "v.avi.npy").fps == 30.0
    (store / "frame_store.json").write_text(json.dumps({"size": [4, 4], "fps": float("nan")}, indent=1))
    with raises_at("frame_store.json:6: fps must be a positive finite number, got nan"):
        _ = FrameStoreReader(store / "Walk" / "v.avi.npy").fps
    (store / "frame_store.json").write_text('{"size": [4, 4],\n "fps": }')
    with raises_at("frame_store.json:2: not JSON"):
        read_meta(store / "frame_store.json")
