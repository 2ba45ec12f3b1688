"""``zoo benchmark ucf101-24|jhmdb|ucfsports``: detection files read exactly (or refused with file and row), ground
truth given as detections scores 1.0, hand-computed partial scores, J-HMDB's mean over splits, reports and plots,
and a user's detector run through the test loop with per-video result files and resume."""

from __future__ import annotations

import inspect
import json
import os
import pickle
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from datamodules.action_tubes import Tube, read_act_gt
from zoo.benchmark.action_detection import DATASETS, load_annotations
from zoo.benchmark.detection_files import (
    read_frame_detections_csv,
    read_tubes_json,
    write_frame_detections_csv,
    write_tubes_json,
)
from zoo.cli import main as zoo_main
from zoo.errors import DatasetError
from zoo.module import ZooModule

# ------------------------------------------------------------------------------------------------ helpers


def gt_rows(tubes: list[Tube]) -> np.ndarray:
    """Ground-truth tubes as per-frame detections of score 1."""
    return np.concatenate([np.column_stack([t.boxes[:, 0], np.full(len(t.boxes), t.label), np.ones(len(t.boxes)),
                                            t.boxes[:, 1:5]]) for t in tubes]) if tubes else np.zeros((0, 7))


def report_of(out: Path, name: str, key: str) -> dict:
    return json.loads((out / "reports" / name / key / "performance.json").read_text())


def run(capsys, *args: str) -> tuple[int, str, str]:
    rc = zoo_main(["benchmark", *map(str, args)])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


# ------------------------------------------------------------------------------------------------ real UCF101-24


@pytest.fixture(scope="module")
def ucf24(shared):
    return load_annotations(DATASETS["ucf101-24"], None, shared / "ucf101_24" / "pyannot.pkl")


def test_real_split1_ground_truth_scores_one(ucf24, shared, tmp_path, capsys):
    """Every test video of split 1 (910): its ground-truth boxes as a CSV give frame-mAP 1.0; its tubes as JSON
    give frame-mAP and video-mAP 1.0 at every delta. Without one video's tubes, the class's AP drops to exactly the
    share of its ground truth still found (precision stays 1, so ACT's trapezoid AP is the recall)."""
    annotations = str(shared / "ucf101_24" / "pyannot.pkl")
    videos = ucf24.test_videos(1)
    assert len(videos) == 910
    csv = write_frame_detections_csv(tmp_path / "gt.csv", {v: gt_rows(ucf24.videos[v].tubes) for v in videos},
                                     ucf24.classes)
    rc, out, err = run(capsys, "ucf101-24", "--annotations", annotations, "--detections", csv, "--out", tmp_path)
    assert rc == 0, err
    r = report_of(tmp_path, "gt", "split1")
    assert r["frame_map"] == 1.0 and set(r["frame_ap"].values()) == {1.0}
    assert r["meta"]["num_videos"] == 910 and r["meta"]["frame_map_from"] == "detections"
    assert r["video_map"]["0.2"] > 0.8  # ROAD's linking of the boxes: same-class actors that overlap (IceDancing) split
    assert "ucf101-24 split 1, 910 test videos" in out and "WalkingWithDog" in out
    linked = tmp_path / "reports" / "gt" / "split1" / "tubes_split1.json"
    rc, _, err = run(capsys, "ucf101-24", "--annotations", annotations, "--detections", linked, "--out", tmp_path)
    assert rc == 0, err
    assert report_of(tmp_path, "tubes_split1", "split1")["video_map"] == r["video_map"]  # linked tubes re-scored

    tubes = {v: ucf24.videos[v].tubes for v in videos}
    write_tubes_json(tmp_path / "gt_tubes.json", tubes, ucf24.classes)
    rc, out, err = run(capsys, "ucf101-24", "--annotations", annotations, "--detections", tmp_path / "gt_tubes.json",
                       "--out", tmp_path)
    assert rc == 0, err
    r = report_of(tmp_path, "gt_tubes", "split1")
    assert r["frame_map"] == 1.0 and r["meta"]["frame_map_from"] == "tubes"
    assert r["video_map"] == {"0.2": 1.0, "0.5": 1.0, "0.75": 1.0, "0.5:0.95": 1.0}
    assert set(r["video_map_curve"].values()) == {1.0} and len(r["video_map_curve"]) == 19
    assert all(set(per_class.values()) == {1.0} for per_class in r["video_ap"].values())
    folder = tmp_path / "reports" / "gt_tubes" / "split1"
    assert (folder / "class_ap.png").stat().st_size > 1000 and (folder / "video_map_delta.png").stat().st_size > 1000

    # hand-computed: drop the tubes of one Basketball test video
    basketball = [v for v in videos if ucf24.videos[v].label == 0]
    dropped = basketball[0]
    n_class = sum(len(ucf24.videos[v].tubes) for v in basketball)
    n_boxes = sum(len(t.boxes) for v in basketball for t in ucf24.videos[v].tubes)
    k_tubes = len(ucf24.videos[dropped].tubes)
    k_boxes = sum(len(t.boxes) for t in ucf24.videos[dropped].tubes)
    write_tubes_json(tmp_path / "partial.json", {v: t for v, t in tubes.items() if v != dropped}, ucf24.classes)
    rc, _, err = run(capsys, "ucf101-24", "--annotations", annotations, "--detections", tmp_path / "partial.json",
                     "--out", tmp_path, "--compare", folder / "performance.json")
    assert rc == 0 and "1 of 910 split-1 test videos have no detections" in err
    r = report_of(tmp_path, "partial", "split1")
    assert r["video_ap"]["0.5"]["Basketball"] == pytest.approx((n_class - k_tubes) / n_class, abs=1e-12)
    assert r["frame_ap"]["Basketball"] == pytest.approx((n_boxes - k_boxes) / n_boxes, abs=1e-12)
    assert r["video_ap"]["0.5"]["Biking"] == 1.0
    assert r["video_map"]["0.5"] == pytest.approx((23 + (n_class - k_tubes) / n_class) / 24, abs=1e-12)


# ------------------------------------------------------------------------------------------------ tiny ACT data

CLASSES = ["jump", "run", "wave"]
H, W, FRAMES = 48, 64, 8
LEVEL0, LEVEL_STEP = 60, 60  # grey level of class 0's actor, and the step per class


def _box(k: int, f: int) -> list[float]:
    x, y = 4 + 3 * k + 2 * f, 6 + 2 * k + f
    return [float(x), float(y), float(x + 18 + k), float(y + 14)]


@pytest.fixture(scope="module")
def act_root(tmp_path_factory) -> Path:
    """Six trimmed videos (two per class, one actor each) in ACT's layout, PNG frames in which the actor is a
    rectangle of grey level 60 / 120 / 180 by class, and a hand-built JHMDB-GT.pkl with 3 splits."""
    root = tmp_path_factory.mktemp("act")
    names = [f"{CLASSES[k % 3]}/clip_{k}" for k in range(6)]
    gttubes, nframes, resolution = {}, {}, {}
    for k, name in enumerate(names):
        label = k % 3
        boxes = np.array([[f, *_box(k, f)] for f in range(1, FRAMES + 1)])
        gttubes[name] = {label: [boxes]}
        nframes[name], resolution[name] = FRAMES, (H, W)
        (root / "Frames" / name).mkdir(parents=True)
        for f, x1, y1, x2, y2 in boxes:
            image = np.zeros((H, W, 3), np.uint8)
            image[int(y1) : int(y2), int(x1) : int(x2)] = LEVEL0 + LEVEL_STEP * label
            cv2.imwrite(str(root / "Frames" / name / f"{int(f):05d}.png"), image)
    tests = [[names[0], names[3]], [names[1], names[4]], [names[2], names[5]]]
    gt = {"labels": CLASSES, "train_videos": [[n for n in names if n not in t] for t in tests], "test_videos": tests,
          "nframes": nframes, "resolution": resolution, "gttubes": gttubes}
    with open(root / "JHMDB-GT.pkl", "wb") as f:
        pickle.dump(gt, f)
    return root


def test_act_ground_truth_scores_one_and_jhmdb_is_the_mean_of_its_splits(act_root, tmp_path, capsys):
    ann = read_act_gt(act_root / "JHMDB-GT.pkl")
    tubes = {v: info.tubes for v, info in ann.videos.items()}
    write_frame_detections_csv(tmp_path / "boxes.csv", {v: gt_rows(t) for v, t in tubes.items()})  # labels by index
    write_tubes_json(tmp_path / "tubes.json", tubes, ann.classes)  # labels by name
    for file, key in (("boxes.csv", "splitall"), ("tubes.json", "splitall")):
        rc, out, err = run(capsys, "jhmdb", "--root", act_root, "--detections", tmp_path / file, "--out", tmp_path)
        assert rc == 0, err
        r = report_of(tmp_path, Path(file).stem, key)
        assert r["splits"] == ["1", "2", "3"] and "mean of splits 1, 2, 3" in out
        assert r["frame_map"] == 1.0
        assert r["video_map"] == {"0.2": 1.0, "0.5": 1.0, "0.75": 1.0, "0.5:0.95": 1.0}, (file, r["video_map"])
    assert r["linking"] == "viterbi"

    # split 1 tests clip_0 (jump) and clip_3 (jump): without clip_0's tube, jump has AP 1/2 in split 1 only; the
    # other classes have no ground truth in split 1 (NaN, left out), so split 1's mAP is 0.5 and the mean 5/6
    write_tubes_json(tmp_path / "miss.json", {v: t for v, t in tubes.items() if v != "jump/clip_0"}, ann.classes)
    rc, _, err = run(capsys, "jhmdb", "--root", act_root, "--detections", tmp_path / "miss.json", "--out", tmp_path)
    assert rc == 0, err
    r = report_of(tmp_path, "miss", "splitall")
    assert r["per_split"]["1"]["video_map"]["0.5"] == 0.5
    assert r["per_split"]["1"]["video_ap"]["0.5"]["run"] is None
    assert r["video_map"]["0.5"] == pytest.approx((0.5 + 1 + 1) / 3, abs=1e-12)
    assert r["video_ap"]["0.5"]["jump"] is None  # a class without ground truth in some split has no mean

    rc, _, err = run(capsys, "jhmdb", "--root", act_root, "--detections", tmp_path / "tubes.json", "--split", "2",
                     "--convention", "voc07", "--out", tmp_path)
    assert rc == 0, err
    assert report_of(tmp_path, "tubes", "split2-voc07")["split"] == "2"
    rc, _, err = run(capsys, "jhmdb", "--root", act_root, "--detections", tmp_path / "tubes.json", "--split", "4")
    assert rc == 2 and "no split '4'" in err


# ------------------------------------------------------------------------------------------------ bad input


def _csv(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "d.csv"
    path.write_text("video,frame,label,score,x1,y1,x2,y2\n" + body)
    return path


@pytest.mark.parametrize("row, message", [
    ("run/clip_1,1,run,0.9,1,2,3,4\nnope/clip_9,1,run,0.9,1,2,3,4\n", r"d\.csv:3: unknown video 'nope/clip_9'"),
    ("run/clip_1,1,swim,0.9,1,2,3,4\n", r"d\.csv:2: unknown class 'swim'"),
    ("run/clip_1,1,7,0.9,1,2,3,4\n", r"d\.csv:2: unknown class '7'"),
    ("run/clip_1,1,run,0.9,1,2,3\n", r"d\.csv:2: 7 fields, expected 8"),
    ("run/clip_1,1,run,high,1,2,3,4\n", r"d\.csv:2: not a number: 'high'"),
    ("run/clip_1,9,run,0.9,1,2,3,4\n", r"d\.csv:2: frame 9 outside the video's frames 1\.\.8"),
    ("run/clip_1,0,run,0.9,1,2,3,4\n", r"d\.csv:2: frame 0 outside"),
    ("\nrun/clip_1,1,run,0.9,5,2,3,4\n", r"d\.csv:3: box has x2 < x1"),
    ("run/clip_1,1,run,nan,1,2,3,4\n", r"d\.csv:2: not a finite number"),
])
def test_bad_csv_rows_name_file_and_line(act_root, tmp_path, row, message):
    ann = read_act_gt(act_root / "JHMDB-GT.pkl")
    with pytest.raises(DatasetError, match=message) as e:
        read_frame_detections_csv(_csv(tmp_path, row), ann)
    assert "\n" not in str(e.value)


def test_csv_reading_is_exact_and_bad_rows_can_be_skipped(act_root, tmp_path, capsys, caplog):
    ann = read_act_gt(act_root / "JHMDB-GT.pkl")
    path = _csv(tmp_path, "run/clip_1, 2, run, 0.75, 1.5, 2, 3.25, 4\r\n"
                          "wave/clip_2,3,2,0.5,0,0,10,10\n"
                          "nope,1,run,0.9,1,2,3,4\n"
                          "run/clip_1,99,run,0.9,1,2,3,4\n"
                          "run/clip_1,1,0,0.25,1,1,2,2\n")
    with pytest.raises(DatasetError, match=r"d\.csv:4: unknown video 'nope'"):
        read_frame_detections_csv(path, ann)
    got = read_frame_detections_csv(path, ann, skip_bad=True)
    assert "skipped 2 bad rows (first at 4: unknown video 'nope'" in caplog.text
    assert set(got) == {"run/clip_1", "wave/clip_2"}
    np.testing.assert_array_equal(got["run/clip_1"], [[2, 1, 0.75, 1.5, 2, 3.25, 4], [1, 0, 0.25, 1, 1, 2, 2]])
    np.testing.assert_array_equal(got["wave/clip_2"], [[3, 2, 0.5, 0, 0, 10, 10]])
    headerless = tmp_path / "h.csv"
    headerless.write_text("wave/clip_2,3,wave,0.5,0,0,10,10\n")
    got = read_frame_detections_csv(headerless, ann)
    np.testing.assert_array_equal(got["wave/clip_2"], [[3, 2, 0.5, 0, 0, 10, 10]])

    rc, _, err = run(capsys, "jhmdb", "--root", act_root, "--detections", path, "--out", tmp_path)
    lines = err.strip().splitlines()
    assert rc == 2 and len(lines) == 1 and lines[0].startswith("zoo: error:") and "d.csv:4: unknown video" in lines[0]
    rc, _, err = run(capsys, "jhmdb", "--root", act_root, "--detections", path, "--out", tmp_path, "--skip-bad-rows")
    assert rc == 0, err


@pytest.mark.parametrize("data, message", [
    ({"nope": []}, r"t\.json: videos\['nope'\]: unknown video"),
    ({"run/clip_1": [{"label": "swim", "score": 1, "boxes": [[1, 0, 0, 5, 5]]}]},
     r"t\.json: videos\['run/clip_1'\]\[0\]: unknown class 'swim'"),
    ({"run/clip_1": [{"label": 1, "boxes": [[1, 0, 0, 5, 5]]}]}, r"\[0\]: not an object with \"label\", \"score\""),
    ({"run/clip_1": [{"label": 1, "score": 1, "boxes": [[2, 0, 0, 5, 5], [1, 0, 0, 5, 5]]}]}, r"increase strictly"),
    ({"run/clip_1": [{"label": 1, "score": 1, "boxes": [[1, 0, 0, 5]]}]}, r"\[frame, x1, y1, x2, y2\]"),
    ({"run/clip_1": [{"label": 1, "score": 1, "boxes": [[9, 0, 0, 5, 5]]}]}, r"whole numbers 1\.\.8"),
])
def test_bad_tubes_name_file_and_tube(act_root, tmp_path, data, message):
    ann = read_act_gt(act_root / "JHMDB-GT.pkl")
    path = tmp_path / "t.json"
    path.write_text(json.dumps(data))
    with pytest.raises(DatasetError, match=message):
        read_tubes_json(path, ann)


# ------------------------------------------------------------------------------------------------ a user's detector


class BrightBoxDetector(ZooModule):
    """A user's per-frame detector (not a zoo model): the bounding box of the bright pixels, its class from their
    grey level. Offers the interface ``zoo benchmark`` runs: ``detect(images, flows)`` and hparams ``input_size``,
    ``modality``."""

    def __init__(self, input_size: int = 32, modality: str = "rgb", calls_file: str = "") -> None:
        super().__init__()
        self.save_hyperparameters()
        self.threshold = torch.nn.Parameter(torch.tensor(30.0), requires_grad=False)

    def detect(self, images: torch.Tensor, flows: torch.Tensor | None) -> list[np.ndarray]:
        assert flows is None and images.shape[1:] == (3, 32, 32) and float(images.max()) > 1  # 0..255, resized
        if self.hparams.calls_file:
            with open(self.hparams.calls_file, "a") as f:
                f.write(f"{len(images)} {os.environ.get('LOCAL_RANK', '0')}\n")
        out = []
        for image in images.cpu():
            grey = image.mean(0)
            mask = grey > self.threshold
            ys, xs = torch.nonzero(mask, as_tuple=True)
            label = round((float(grey[mask].max()) - LEVEL0) / LEVEL_STEP)
            out.append(np.array([[label, 0.9, xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], dtype=np.float64))
        return out


class NotADetector(ZooModule):
    def __init__(self, input_size: int = 32) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.w = torch.nn.Parameter(torch.zeros(1))


def _checkpoint(model: ZooModule, path: Path) -> Path:
    cls = type(model)
    torch.save({"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams),
                "zoo": {"class_path": f"{cls.__module__}.{cls.__qualname__}"}}, path)
    return path


def test_a_users_detector_runs_resumes_and_scores(act_root, tmp_path, capsys):
    calls = tmp_path / "calls.txt"
    ckpt = _checkpoint(BrightBoxDetector(calls_file=str(calls)), tmp_path / "bright.ckpt")
    args = ("jhmdb", "--root", act_root, "--checkpoint", ckpt, "--out", tmp_path / "runs", "--batch-size", "3",
            "--workers", "0", "--devices", "1")
    rc, out, err = run(capsys, *args)
    assert rc == 0, err
    results = tmp_path / "runs" / "results" / "bright" / "jhmdb"
    files = sorted(p.name for p in results.glob("*.csv"))
    assert files == sorted(f"{c}__clip_{k}.csv" for k, c in enumerate(CLASSES * 2)) and (results / "run.json").is_file()
    assert sum(int(n) for n in calls.read_text().split()[::2]) == 6 * FRAMES  # every frame of the 6 test videos, once
    rows = np.loadtxt(results / "wave__clip_2.csv", delimiter=",", skiprows=1)
    assert rows.shape == (FRAMES, 7) and set(rows[:, 1]) == {2.0}
    assert np.abs(rows[:, 3:] - [_box(2, f) for f in range(1, FRAMES + 1)]).max() <= 2.0  # back in frame pixels
    r = report_of(tmp_path / "runs", "bright", "splitall")
    assert r["frame_map"] == 1.0 and r["video_map"]["0.5"] == 1.0
    assert r["meta"]["runs"][0]["ran_videos"] == 6

    stamps = {p.name: p.stat().st_mtime_ns for p in results.glob("*.csv")}
    rc, _, err = run(capsys, *args)
    assert rc == 0 and "resumed: 6 of 6 videos were already done" in err
    assert {p.name: p.stat().st_mtime_ns for p in results.glob("*.csv")} == stamps
    assert sum(int(n) for n in calls.read_text().split()[::2]) == 6 * FRAMES  # nothing ran again

    (results / "run__clip_1.csv").write_text("frame,label,score,x1,y1,x2,y2\n1,0,0.5,1,2\n")  # damaged: run again
    rc, _, err = run(capsys, *args)
    assert rc == 0 and "resumed: 5 of 6 videos" in err
    assert sum(int(n) for n in calls.read_text().split()[::2]) == 7 * FRAMES
    assert report_of(tmp_path / "runs", "bright", "splitall")["frame_map"] == 1.0

    other = _checkpoint(NotADetector(), tmp_path / "other.ckpt")
    rc, _, err = run(capsys, "jhmdb", "--root", act_root, "--checkpoint", other, "--out", tmp_path / "runs")
    lines = err.strip().splitlines()
    assert rc == 2 and len(lines) == 1 and "NotADetector is not a detector" in lines[0] and "other.ckpt" in lines[0]


def test_an_unreadable_frame_is_named_and_the_run_goes_on(act_root, tmp_path, capsys, caplog):
    root = tmp_path / "root"
    shutil.copytree(act_root, root)
    lost = root / "Frames" / "wave" / "clip_2" / "00003.png"
    lost.unlink()
    ckpt = _checkpoint(BrightBoxDetector(calls_file=str(tmp_path / "calls.txt")), tmp_path / "bright.ckpt")
    rc, _, err = run(capsys, "jhmdb", "--root", root, "--checkpoint", ckpt, "--out", tmp_path / "runs",
                     "--workers", "1", "--devices", "1")
    assert rc == 0, err
    assert "1 frames could not be read" in err
    assert [r.getMessage() for r in caplog.records if str(lost) in r.getMessage()] == [
        f"no detections for wave/clip_2 frame 3: {lost}: frame image not found"]
    rows = np.loadtxt(tmp_path / "runs" / "results" / "bright" / "jhmdb" / "wave__clip_2.csv", delimiter=",",
                      skiprows=1)
    assert sorted(rows[:, 0]) == [f for f in range(1, FRAMES + 1) if f != 3]


def test_compare_reports_alone_draws_the_delta_plot(act_root, tmp_path, capsys):
    ann = read_act_gt(act_root / "JHMDB-GT.pkl")
    tubes = {v: info.tubes for v, info in ann.videos.items()}
    write_tubes_json(tmp_path / "a.json", tubes)
    write_tubes_json(tmp_path / "b.json", {v: t for v, t in tubes.items() if "clip_0" not in v})
    for name in ("a", "b"):
        assert run(capsys, "jhmdb", "--root", act_root, "--detections", tmp_path / f"{name}.json", "--out",
                   tmp_path)[0] == 0
    reports = [tmp_path / "reports" / n / "splitall" / "performance.json" for n in ("a", "b")]
    rc, out, err = run(capsys, "jhmdb", "--compare", *reports, "--out", tmp_path)
    assert rc == 0, err
    assert (tmp_path / "reports" / "a-b" / "video_map_delta.png").stat().st_size > 1000
    rc, _, err = run(capsys, "jhmdb", "--compare", tmp_path / "a.json", "--out", tmp_path)
    assert rc == 2 and "a.json:1: not a detection report" in err


DDP_SCRIPT = """
import json, os, sys
from pathlib import Path

import numpy as np
import torch

from datamodules.action_tubes import read_act_gt
from zoo.benchmark.detector_run import benchmark_detector
from zoo.module import ZooModule

LEVEL0, LEVEL_STEP = {levels}
{detector}
root, out = Path(sys.argv[1]), Path(sys.argv[2])
ann = read_act_gt(root / "JHMDB-GT.pkl")
run = benchmark_detector(BrightBoxDetector(calls_file=str(out / "calls.txt")), root, ann, list(ann.videos),
                         out / "results", {{"dataset": "jhmdb"}}, "Frames", batch_size=3, num_workers=0,
                         accelerator="cpu", devices=2, enable_progress_bar=False)
if run is not None:
    (out / "rank0.json").write_text(json.dumps({{v: d.tolist() for v, d in run["detections"].items()}}))
"""


def test_ddp_ranks_split_the_videos(act_root, tmp_path):
    """Two CPU processes: each runs whole videos (every frame once in all), rank 0 scores every video's file."""
    script = tmp_path / "ddp_detect.py"
    script.write_text(DDP_SCRIPT.format(levels=(LEVEL0, LEVEL_STEP), detector=textwrap.dedent(
        inspect.getsource(BrightBoxDetector))))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    done = subprocess.run([sys.executable, str(script), str(act_root), str(tmp_path)], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    calls = np.array(tmp_path.joinpath("calls.txt").read_text().split(), dtype=int).reshape(-1, 2)
    assert calls[:, 0].sum() == 6 * FRAMES and set(calls[:, 1]) == {0, 1}
    detections = json.loads((tmp_path / "rank0.json").read_text())
    assert len(detections) == 6 and all(len(d) == FRAMES for d in detections.values())
    files = sorted((tmp_path / "results").glob("*.csv"))
    assert len(files) == 6
    # resumed with one video left: rank 1 has none and skips the loop, rank 0 runs it and scores all six
    files[2].unlink()
    (tmp_path / "rank0.json").unlink()
    done = subprocess.run([sys.executable, str(script), str(act_root), str(tmp_path)], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    calls = np.array(tmp_path.joinpath("calls.txt").read_text().split(), dtype=int).reshape(-1, 2)
    assert calls[:, 0].sum() == 7 * FRAMES
    assert len(json.loads((tmp_path / "rank0.json").read_text())) == 6 and files[2].is_file()


def test_ucfsports_defaults_to_its_gt_file_and_one_split(act_root, tmp_path, capsys):
    gt = pickle.loads((act_root / "JHMDB-GT.pkl").read_bytes())
    root = tmp_path / "ucfsports"
    root.mkdir()
    one = {**gt, "train_videos": gt["train_videos"][:1], "test_videos": gt["test_videos"][:1]}
    (root / "UCFSports-GT.pkl").write_bytes(pickle.dumps(one))
    ann = read_act_gt(root / "UCFSports-GT.pkl")
    write_tubes_json(tmp_path / "t.json", {v: i.tubes for v, i in ann.videos.items()})
    rc, out, err = run(capsys, "ucfsports", "--root", root, "--detections", tmp_path / "t.json", "--out", tmp_path)
    assert rc == 0, err
    r = report_of(tmp_path, "t", "split1")
    assert r["dataset"] == "ucfsports" and r["splits"] == ["1"] and r["meta"]["num_videos"] == 2
    assert r["video_map"]["0.5:0.95"] == 1.0
    rc, _, err = run(capsys, "ucfsports", "--root", tmp_path / "nowhere", "--detections", tmp_path / "t.json")
    assert rc == 2 and "nowhere/UCFSports-GT.pkl: annotation file not found" in err
