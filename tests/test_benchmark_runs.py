"""Benchmark runs never mix models: a results folder is keyed by what produced it, resumes only that, and a
killed ``zoo benchmark`` resumes to the report an uninterrupted run gives."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from datamodules.synthetic import SynthConfig, synthesize

ROOT = Path(__file__).resolve().parents[1]


def _zoo(*args: str, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "zoo.cli", *args], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=600, **kwargs)


@pytest.fixture(scope="module")
def otb_root(tmp_path_factory) -> Path:
    cfg = SynthConfig(height=72, width=96, num_frames=8, min_size=8, max_size=14)
    return synthesize("otb", tmp_path_factory.mktemp("runs") / "otb", num_videos=3, seed=5, cfg=cfg)


def _bench(root: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    return _zoo("benchmark", "otb", "--root", str(root), "--subset", "folders", "--out", str(out),
                "--batch-size", "1", *extra)


def _auc(run: subprocess.CompletedProcess) -> float:
    row = next(line for line in run.stdout.splitlines() if line.startswith(("sint_tiny", "t ")))
    return float(row.split()[1])


def test_another_seed_or_checkpoint_is_refused_not_mixed(otb_root, tmp_path):
    """The issue's reproduction: the same --out with --seed 7, or with a checkpoint, used to report the first run's
    AUC in seconds."""
    first = _bench(otb_root, tmp_path / "X", "--model", "sint_tiny", "--name", "t")
    assert first.returncode == 0, first.stderr[-2000:]
    again = _bench(otb_root, tmp_path / "X", "--model", "sint_tiny", "--name", "t")
    assert again.returncode == 0 and "resumed: 3 of 3 sequences" in again.stderr, again.stderr[-2000:]
    assert _auc(again) == _auc(first)
    before = sorted((p.name, p.stat().st_mtime_ns) for p in (tmp_path / "X").rglob("*") if p.is_file())
    seeded = _bench(otb_root, tmp_path / "X", "--model", "sint_tiny", "--name", "t", "--seed", "7")
    assert seeded.returncode == 2
    lines = seeded.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("zoo: error:") and "another run" in lines[0], seeded.stderr
    assert "seed" in lines[0] and str(tmp_path / "X" / "results" / "t") in lines[0]
    assert sorted((p.name, p.stat().st_mtime_ns) for p in (tmp_path / "X").rglob("*") if p.is_file()) == before
    fresh = _bench(otb_root, tmp_path / "Y", "--model", "sint_tiny", "--name", "t", "--seed", "7")
    assert fresh.returncode == 0 and _auc(fresh) != _auc(first)


def test_results_without_identity_are_refused(otb_root, tmp_path):
    """A folder of result files that no zoo run keyed (another toolkit's, or an older zoo's) is not resumed."""
    folder = tmp_path / "results" / "identity_tracker"
    folder.mkdir(parents=True)
    (folder / "Synth0000.txt").write_text("1,1,5,5\n" * 8)
    run = _bench(otb_root, tmp_path, "--model", "identity_tracker")
    assert run.returncode == 2 and "unknown run" in run.stderr and len(run.stderr.strip().splitlines()) == 1


def test_reports_are_keyed_by_subset(tmp_path, shared):
    """Scoring otb2013 after otb100 keeps both reports."""
    root = shared / "otb" / "sequences"
    for subset in ("otb100", "otb2013"):
        run = _zoo("benchmark", "otb", "--model", "identity_tracker", "--root", str(root), "--allow-missing",
                   "--subset", subset, "--out", str(tmp_path))
        assert run.returncode == 0, run.stderr[-2000:]
    reports = tmp_path / "reports" / "identity_tracker"
    a = json.loads((reports / "otb100" / "performance.json").read_text())["identity_tracker"]
    b = json.loads((reports / "otb2013" / "performance.json").read_text())["identity_tracker"]
    assert a["meta"]["subset"] == "otb100" and b["meta"]["subset"] == "otb2013"
    assert a["meta"]["num_sequences"] != b["meta"]["num_sequences"]


def test_killed_benchmark_process_resumes_to_the_same_report(otb_root, tmp_path):
    """``kill -9`` a running ``zoo benchmark`` by its pid once a sequence is written; the rerun tracks only the
    rest and reports exactly what an uninterrupted run reports."""
    args = ["--model", "sint_tiny", "--name", "t"]
    reference = _bench(otb_root, tmp_path / "ref", *args)
    assert reference.returncode == 0, reference.stderr[-2000:]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "zoo.cli", "benchmark", "otb", "--root", str(otb_root), "--subset", "folders",
           "--out", str(tmp_path / "killed"), *args]
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    results = tmp_path / "killed" / "results" / "t"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and not list(results.glob("*.txt")):
        time.sleep(0.05)
    assert proc.poll() is None, "the benchmark ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = sorted(p.name for p in results.glob("*.txt"))
    assert 1 <= len(done) < 3, done
    resumed = _bench(otb_root, tmp_path / "killed", *args)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"resumed: {len(done)} of 3 sequences" in resumed.stderr
    ref = json.loads((tmp_path / "ref" / "reports" / "t" / "folders" / "performance.json").read_text())["t"]
    got = json.loads((tmp_path / "killed" / "reports" / "t" / "folders" / "performance.json").read_text())["t"]
    for key in ("success_curve", "precision_curve", "success_score", "precision_score"):
        assert got["overall"][key] == ref["overall"][key]
    for name in ("Synth0000", "Synth0001", "Synth0002"):
        ref_boxes = (tmp_path / "ref" / "results" / "t" / f"{name}.txt").read_text()
        assert (results / f"{name}.txt").read_text() == ref_boxes
