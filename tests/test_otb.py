"""OTB toolkit: the sequence table, metrics and conventions, scoring published results, running trackers."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import zoo
from datamodules import otb
from zoo.benchmark.otb import compare, score_results
from zoo.benchmark.tracking import benchmark_otb
from zoo.errors import DatasetError
from zoo.metrics.otb import OTBMetrics, align, curves, frame_scores, iou, sequence_curves, summarize
from zoo.tracking import IdentityTracker

ROOT = Path(__file__).resolve().parents[1]


def test_sequence_table_facts(shared):
    table = otb.sequence_table()
    assert len(otb.sequences("otb2013")) == 51 and len(otb.sequences("otb100")) == 100
    assert len(otb.sequences("tb50")) == 50
    david = otb.lookup("David")
    assert (david.start, david.end, len(david)) == (300, 770, 471)
    assert david.frame_paths("/r")[0] == Path("/r/David/img/0300.jpg")
    assert otb.lookup("BlurCar1").start == 247 and otb.lookup("Board").frame_paths("/r")[0].name == "00001.jpg"
    assert otb.lookup("Tiger1").init_omit_frames == 5
    jog = otb.lookup("jogging_1")
    assert (jog.name, jog.folder, jog.gt_file, jog.anno_name) == (
        "Jogging-1",
        "Jogging",
        "groundtruth_rect.1.txt",
        "jogging-1",
    )
    assert otb.lookup("human4").gt_file == "groundtruth_rect.2.txt"
    # attributes agree with the toolkit's anno/att flags
    for info in table.values():
        flags = (
            (shared / "otb" / "anno" / "att" / f"{info.anno_name}.txt").read_text().replace(" ", "").strip().split(",")
        )
        assert info.attributes == tuple(a for a, f in zip(otb.ATTRIBUTES, flags) if f == "1")
        assert len(otb.load_ground_truth(info, anno_dir=shared / "otb" / "anno")) == len(info)
    with pytest.raises(DatasetError, match="unknown OTB sequence 'Crosing'; did you mean Crossing"):
        otb.lookup("Crosing")
    with pytest.raises(DatasetError, match="unknown OTB subset"):
        otb.sequences("otb50")


def _published(shared):
    with open(shared / "otb" / "results" / "published.csv") as f:
        return list(csv.DictReader(f))


def test_published_numbers_are_reproduced(shared):
    rows = _published(shared)
    assert len(rows) >= 3
    for row in rows:
        subset = row["benchmark"].lower()
        perf = score_results(
            shared / "otb" / "results" / row["tracker"], anno_dir=shared / "otb" / "anno", subset=subset
        )
        assert perf["meta"]["num_sequences"] == int(row["n_sequences"])
        assert round(perf["overall"]["success_score"], 3) == float(row["auc"]), row
        if row["precision_at_20px"]:
            assert round(perf["overall"]["precision_score"], 3) == float(row["precision_at_20px"]), row


def test_metric_objects_match_the_scorer(shared):
    anno = shared / "otb" / "anno"
    results = shared / "otb" / "results" / "SiamFC"
    names = ["Crossing", "Tiger1", "Board", "Jogging-2", "David"]
    metric = OTBMetrics("otb")
    for name in names:
        info = otb.lookup(name)
        pred = torch.from_numpy(otb.read_boxes(otb.find_file(results, info)))
        metric.update(
            pred, torch.from_numpy(otb.load_ground_truth(info, anno_dir=anno)), init_omit=info.init_omit_frames
        )
    perf = score_results(results, anno_dir=anno, names=names, allow_missing=True)
    got = metric.compute()
    assert abs(float(got["success_score"]) - perf["overall"]["success_score"]) < 1e-12
    assert abs(float(got["precision_score"]) - perf["overall"]["precision_score"]) < 1e-12
    assert metric._reductions["success"].__name__ == "dim_zero_cat"  # per-sequence curves gathered under DDP


@pytest.mark.parametrize("convention", ["otb", "got10k", "pytracking", "pysot"])
def test_ground_truth_against_itself(convention):
    gt = torch.tensor([[10.0 + t, 20.0, 30.0, 40.0] for t in range(15)])
    s, p, n = sequence_curves(gt.clone(), gt, convention)
    assert float(p[20]) == 1.0 and float(n[20]) == 1.0
    assert abs(float(s.mean()) - 20 / 21) < 1e-12  # IoU 1 is never > 1


@pytest.mark.parametrize("convention", ["otb", "got10k"])
def test_shifted_box_by_hand(convention):
    T = 11
    gt = torch.tensor([[10.0, 10.0, 20.0, 20.0]] * T)
    pred = gt.clone()
    pred[:, 0] += 5  # IoU = 15*20 / (400 + 400 - 300) = 0.6 with or without the +1 pixel; centre error 5
    s, p, _ = sequence_curves(pred, gt, convention)
    thresholds = np.linspace(0, 1, 21)
    first = 0.0 if convention == "pysot" else 1.0  # frame 1 is the ground truth
    expected = [(first * (t < 1) + (T - 1) * (0.6 > t)) / T for t in thresholds]
    np.testing.assert_allclose(s.numpy(), expected, atol=1e-12)
    assert abs(float(s.mean()) - ((20 / 21) + (T - 1) * (12 / 21)) / T) < 1e-12
    assert float(p[4]) == pytest.approx(1 / T) and float(p[5]) == 1.0


def test_plus_one_pixel_iou_equals_the_continuous_one():
    """min(x1 + w1 - 1, x2 + w2 - 1) - max(x1, x2) + 1 == min(x1 + w1, x2 + w2) - max(x1, x2): the toolkits agree."""
    g = torch.Generator().manual_seed(0)
    a = torch.cat([torch.randint(1, 100, (500, 2), generator=g), torch.randint(1, 60, (500, 2), generator=g)], 1)
    b = torch.cat([torch.randint(1, 100, (500, 2), generator=g), torch.randint(1, 60, (500, 2), generator=g)], 1)
    a, b = a.double(), b.double()
    torch.testing.assert_close(iou(a, b, plus_one=True), iou(a, b, plus_one=False), rtol=0, atol=1e-12)
    assert float(iou(torch.tensor([[1.0, 1, 10, 10]]), torch.tensor([[10.0, 1, 10, 10]]))[0]) == pytest.approx(10 / 190)


def _write(path: Path, rows) -> Path:
    path.write_text("".join(",".join(str(v) for v in r) + "\n" for r in rows))
    return path


def test_malformed_results_follow_the_convention(tmp_path):
    gt = torch.tensor([[10.0, 10.0, 20.0, 20.0]] * 6)
    good = [[10, 10, 20, 20]] * 6
    # too few rows: otb repeats the last box, got10k rejects naming the file
    short = _write(tmp_path / "Short.txt", good[:4])
    boxes, lines = otb.read_boxes(short, with_lines=True)
    pred, _ = align(torch.from_numpy(boxes), gt, "otb", source=str(short), lines=lines)
    assert len(pred) == 6 and torch.equal(pred[-1], pred[3])
    with pytest.raises(DatasetError, match=r"Short.txt: 4 boxes for 6 ground-truth frames \(got10k"):
        align(torch.from_numpy(boxes), gt, "got10k", source=str(short))
    # too many rows: truncated, or rejected
    long = torch.tensor(good * 2, dtype=torch.float64)
    assert len(align(long, gt, "otb")[0]) == 6
    with pytest.raises(DatasetError, match="12 boxes for 6"):
        align(long, gt, "pysot", source="Long.txt")
    # NaN and negative sizes: the previous box (otb), failures (got10k), rejected with file:line (pytracking)
    bad = _write(
        tmp_path / "Bad.txt",
        [
            [10, 10, 20, 20],
            [11, 10, 20, 20],
            ["nan", "nan", "nan", "nan"],
            [10, 10, -5, 20],
            [10, 10, 20, 20],
            [10, 10, 20, 20],
        ],
    )
    boxes, lines = otb.read_boxes(bad, with_lines=True)
    pred, _ = align(torch.from_numpy(boxes), gt, "otb", source=str(bad), lines=lines)
    assert pred[2].tolist() == pred[3].tolist() == [11, 10, 20, 20]
    ious = frame_scores(*align(torch.from_numpy(boxes), gt, "got10k"), "got10k")[0]
    assert ious[2] == 0 and ious[3] == 0 and ious[4] == 1
    with pytest.raises(DatasetError, match=r"Bad.txt:3: invalid box"):
        align(torch.from_numpy(boxes), gt, "pytracking", source=str(bad), lines=lines)
    # a line that is not four numbers is rejected with file and line, whatever the convention
    broken = tmp_path / "Broken.txt"
    broken.write_text("1,2,3,4\n1,2,3\n")
    with pytest.raises(DatasetError, match=r"Broken.txt:2: expected 4 values"):
        otb.read_boxes(broken)


def test_invalid_ground_truth_policies():
    gt = torch.tensor([[10.0, 10.0, 20.0, 20.0], [0.0, 0.0, 0.0, 0.0], [10.0, 10.0, 20.0, 20.0]])
    pred = torch.tensor([[10.0, 10.0, 20.0, 20.0], [300.0, 300.0, 20.0, 20.0], [10.0, 10.0, 20.0, 20.0]])
    s, p, _ = curves(*frame_scores(pred, gt, "otb"))
    assert float(s[0]) == pytest.approx(2 / 3) and float(p[0]) == 1.0  # the OTB toolkit's -1 error succeeds
    s, p, _ = curves(*frame_scores(pred, gt, "pytracking"))
    assert float(s[0]) == pytest.approx(2 / 3) and float(p[0]) == pytest.approx(2 / 3)


def test_missing_and_unknown_result_files(shared, tmp_path, caplog):
    results = tmp_path / "Mine"
    results.mkdir()
    for name in ("Crossing", "Bird2"):
        src = otb.find_file(shared / "otb" / "results" / "MDNet", otb.lookup(name))
        (results / f"{name}.txt").write_text(src.read_text())
    (results / "NotASequence.txt").write_text("1,2,3,4\n")
    with pytest.raises(DatasetError, match=r"no result file for 98 otb100 sequences: .*Matrix"):
        score_results(results, anno_dir=shared / "otb" / "anno")
    perf = score_results(results, anno_dir=shared / "otb" / "anno", allow_missing=True)
    assert perf["meta"]["num_sequences"] == 2 and "NotASequence" in caplog.text


def test_gt_with_mixed_delimiters_scores(shared, tmp_path):
    root = tmp_path / "otb"
    seq = root / "Crossing"
    (seq / "img").mkdir(parents=True)
    rows = otb.read_boxes(shared / "otb" / "sequences" / "Crossing" / "groundtruth_rect.txt")
    seps = [",", "\t", " "]
    (seq / "groundtruth_rect.txt").write_text(
        "".join(seps[i % 3].join(str(int(v)) for v in r) + "\n" for i, r in enumerate(rows))
    )
    results = tmp_path / "GT"
    results.mkdir()
    _write(results / "Crossing.txt", rows.astype(int).tolist())
    perf = score_results(results, root=root, names=["Crossing"])
    assert perf["overall"]["precision_score"] == 1.0


def _zoo(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "zoo.cli", *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def test_benchmark_cli_runs_scores_and_plots(shared, tmp_path):
    run = _zoo(
        "benchmark",
        "otb",
        "--model",
        "identity_tracker",
        "--root",
        str(shared / "otb" / "sequences"),
        "--allow-missing",
        "--out",
        str(tmp_path),
        "--batch-size",
        "2",
    )
    assert run.returncode == 0, run.stderr[-3000:]
    results = tmp_path / "results" / "identity_tracker"
    for name, n in {"Crossing": 120, "Bird2": 99, "DragonBaby": 113, "MotorRolling": 164}.items():
        assert len(otb.read_boxes(results / f"{name}.txt")) == n
        assert len(np.loadtxt(results / "times" / f"{name}_time.txt")) == n
    report = tmp_path / "reports" / "identity_tracker" / "otb100"
    for f in ("performance.json", "success_plots.png", "precision_plots.png", "attributes.png"):
        assert (report / f).stat().st_size > 0
    ran = json.loads((report / "performance.json").read_text())["identity_tracker"]
    assert ran["meta"]["convention"] == "otb" and ran["overall"]["speed_fps"] > 0
    scored = _zoo(
        "benchmark",
        "otb",
        "--results",
        str(results),
        "--root",
        str(shared / "otb" / "sequences"),
        "--allow-missing",
        "--out",
        str(tmp_path / "again"),
    )
    assert scored.returncode == 0, scored.stderr[-3000:]
    again_report = tmp_path / "again" / "reports" / "identity_tracker" / "otb100" / "performance.json"
    again = json.loads(again_report.read_text())
    for key in ("success_score", "precision_score", "success_curve", "precision_curve"):
        assert again["identity_tracker"]["overall"][key] == ran["overall"][key]
    assert "identity_tracker" in scored.stdout and "AUC" in scored.stdout
    # the identity tracker is far from perfect, and ground truth run as a "tracker" is
    assert 0.05 < ran["overall"]["success_score"] < 0.5


class _Crash(Exception):
    pass


class CrashingTracker(IdentityTracker):
    """Dies on its third sequence, as a killed run would."""

    name = "IdentityTracker"

    def __init__(self):
        super().__init__()
        self._crash = True  # not a setting: the resumed run is the same run
        self.started = [0]  # shared by the per-sequence copies of init_batch

    def init(self, image, box):
        super().init(image, box)
        self.started[0] += 1
        if self.started[0] == 3 and self._crash:
            raise _Crash


def test_killed_benchmark_resumes_to_the_same_report(shared, tmp_path):
    root = shared / "otb" / "sequences"
    reference = benchmark_otb(IdentityTracker(), root, tmp_path / "a", allow_missing=True, enable_progress_bar=False)
    crashing = CrashingTracker()
    with pytest.raises(_Crash):
        benchmark_otb(crashing, root, tmp_path / "b", allow_missing=True, enable_progress_bar=False)
    done = sorted(p.name for p in (tmp_path / "b" / "results" / "IdentityTracker").glob("*.txt"))
    assert len(done) == 2, done
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "b" / "results" / "IdentityTracker").glob("*.txt")}
    healed = CrashingTracker()
    healed._crash = False
    resumed = benchmark_otb(healed, root, tmp_path / "b", allow_missing=True,
                            enable_progress_bar=False)
    assert all(p.stat().st_mtime_ns == t for p, t in before.items()), "finished sequences are not run again"
    a, b = reference["IdentityTracker"], resumed["IdentityTracker"]
    for key in ("success_curve", "precision_curve", "success_score", "precision_score"):
        assert a["overall"][key] == b["overall"][key]
    assert {k: v["success_score"] for k, v in a["seq_wise"].items()} == {
        k: v["success_score"] for k, v in b["seq_wise"].items()
    }


def test_ddp_benchmark_splits_sequences(shared, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "ddp_benchmark.py"), str(shared / "otb" / "sequences"), str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    overall = json.loads((tmp_path / "rank0.json").read_text())
    single = compare([tmp_path / "results" / "IdentityTracker"], root=shared / "otb" / "sequences", allow_missing=True)
    assert overall["success_score"] == single["IdentityTracker"]["overall"]["success_score"]
    assert len(list((tmp_path / "results" / "IdentityTracker").glob("*.txt"))) == 4


def test_summarize_matches_got10k_keys():
    s = torch.rand(3, 21)
    p = torch.rand(3, 51)
    out = summarize(s, p, p)
    assert {"success_curve", "precision_curve", "success_score", "precision_score", "success_rate"} <= set(out)
    assert out["precision_score"] == pytest.approx(float(p.mean(0)[20]))


def test_zoo_load_identity_tracker():
    tracker = zoo.load("identity_tracker", pretrained=False)
    tracker.init(np.zeros((8, 8, 3), np.uint8), np.array([1, 2, 3, 4.0]))
    assert tracker.update(np.zeros((8, 8, 3), np.uint8)).tolist() == [1, 2, 3, 4]


def test_benchmark_on_synthetic_sequences_in_the_otb_layout(tmp_path):
    from datamodules.synthetic import SynthConfig, generate_video, synthesize

    cfg = SynthConfig(height=48, width=64, num_frames=12, min_size=5, max_size=8)
    root = synthesize("otb", tmp_path / "otb", num_videos=3, seed=4, cfg=cfg)
    infos = otb.sequences("folders", root)
    assert [i.name for i in infos] == ["Synth0000", "Synth0001", "Synth0002"] and len(infos[0]) == 12
    perf = benchmark_otb(IdentityTracker(), root, tmp_path / "out", subset="folders", enable_progress_bar=False)
    seq = perf["IdentityTracker"]["seq_wise"]["Synth0001"]
    video = generate_video(4, 1, cfg)
    gt = torch.from_numpy(video.target.boxes)
    expected = sequence_curves(gt[:1].expand(len(gt), 4), gt, "otb")[0]
    assert seq["success_curve"] == expected.tolist()
    with pytest.raises(DatasetError, match="no result file for any of the 100 otb100 sequences"):
        score_results(tmp_path / "out" / "results" / "IdentityTracker", root=root)


def test_benchmark_cli_seeds_untrained_networks(tmp_path):
    """``--model`` without weights builds a random network: ``--seed`` (default 0) makes the run repeat."""
    from datamodules.synthetic import SynthConfig, synthesize

    root = synthesize("otb", tmp_path / "otb", num_videos=2, seed=3, cfg=SynthConfig(height=72, width=96, num_frames=8))

    def boxes(out: str, *seed: str) -> list[str]:
        run = _zoo("benchmark", "otb", "--model", "sint_tiny", "--root", str(root), "--subset", "folders",
                   "--out", str(tmp_path / out), "--name", "t", *seed)
        assert run.returncode == 0, run.stderr[-3000:]
        return [f.read_text() for f in sorted((tmp_path / out / "results" / "t").glob("*.txt"))]

    first = boxes("a")
    assert len(first) == 2 and first == boxes("b", "--seed", "0") and first != boxes("c", "--seed", "1")


class FrameEchoTracker(zoo.tracking.Tracker):
    """A box made from each frame's pixels: results show which frame a tracker was given."""

    name = "FrameEcho"

    def init(self, image, box):  # noqa: ANN001, ANN201
        self.size = np.asarray(box, dtype=np.float64)[2:]

    def update(self, image):  # noqa: ANN001, ANN201
        return np.array([image.mean(), image[..., 0].mean(), *self.size])


def test_frames_read_ahead_in_threads_give_the_same_results(tmp_path):
    from datamodules.synthetic import SynthConfig, synthesize
    from zoo.errors import VideoReadError

    cfg = SynthConfig(height=48, width=64, num_frames=10, min_size=5, max_size=8)
    root = synthesize("otb", tmp_path / "otb", num_videos=3, seed=5, cfg=cfg)
    for f in sorted((root / "Synth0002" / "img").iterdir())[7:]:  # a shorter sequence ends before the others
        f.unlink()
    gt = root / "Synth0002" / "groundtruth_rect.txt"
    gt.write_text("".join(gt.read_text().splitlines(keepends=True)[:7]))
    kw = dict(subset="folders", batch_size=3, enable_progress_bar=False)
    runs = {w: benchmark_otb(FrameEchoTracker(), root, tmp_path / f"w{w}", decode_workers=w, **kw)["FrameEcho"]
            for w in (0, 3)}
    for name in runs[0]["seq_wise"]:
        assert (tmp_path / "w0" / "results" / "FrameEcho" / f"{name}.txt").read_text() == (
            tmp_path / "w3" / "results" / "FrameEcho" / f"{name}.txt").read_text()
    assert runs[0]["seq_wise"]["Synth0002"]["num_frames"] == 7
    assert runs[3]["meta"]["decode_workers"] == 3 and runs[3]["meta"]["fps_with_decoding"] > 0
    frame = sorted((root / "Synth0001" / "img").iterdir())[6]
    frame.write_bytes(b"not a jpeg")
    with pytest.raises(VideoReadError, match=f"{frame.name}: cannot read image"):
        benchmark_otb(FrameEchoTracker(), root, tmp_path / "bad", decode_workers=2, **kw)
    with pytest.raises(ValueError, match="decode_workers"):
        benchmark_otb(FrameEchoTracker(), root, tmp_path / "neg", decode_workers=-1, **kw)
