"""Two-in-One's claim on synthetic UCF101-24 (Zhao & Snoek, CVPR 2019, Sec. 4): where the action is the motion and
the look is random, modulating the RGB network by the flow beats the RGB SSD by a clear margin in frame-mAP and
video-mAP@0.5, the flow stream beats RGB, and Two-in-One comes close to two-stream fusion with about half its
parameters and clearly fewer FLOPs.

The three tiny streams train as ``configs/*_tiny_synthetic.yaml`` say, on the data their header line writes (4
motions: still, linear, growing, shrinking; Farneback flow images); the fusions reuse the trained streams.
Measured (2 CPU cores, seed 0; frame-mAP / video-mAP@0.5): RGB 0.25 / 0.07, flow 0.34 / 0.11, Two-in-One
0.49 / 0.19, two-stream (mean) 0.39 / 0.14, Two-in-One two-stream 0.57 / 0.21.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import pytest
import pytorch_lightning as pl
import torch
import yaml
from torch.utils.flop_counter import FlopCounterMode

import zoo
from datamodules.synthetic import SynthConfig, synthesize
from zoo.benchmark.action_detection import score_split
from zoo.benchmark.detector_run import benchmark_detector
from zoo.two_in_one import ActionSSD, TwoStreamSSD

ROOT = Path(__file__).resolve().parents[1]
STREAMS = {"rgb": "ssd_rgb_tiny_synthetic.yaml", "flow": "ssd_flow_tiny_synthetic.yaml",
           "two_in_one": "two_in_one_tiny_synthetic.yaml"}


def _instance(section: dict[str, Any], **changes: Any) -> Any:
    module, cls = section["class_path"].rsplit(".", 1)
    return getattr(importlib.import_module(module), cls)(**{**section["init_args"], **changes})


def _fit(config: str, root: Path, tmp: Path) -> ActionSSD:
    cfg = yaml.safe_load((ROOT / "configs" / config).read_text())
    pl.seed_everything(cfg["seed_everything"], workers=True)
    data = _instance(cfg["data"], root=str(root), inputs="rgb+flow", pin_memory=False)
    model = _instance(cfg["model"])
    trainer = pl.Trainer(max_epochs=cfg["trainer"]["max_epochs"], accelerator="cpu", devices=1, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         limit_val_batches=0, num_sanity_val_steps=0, default_root_dir=str(tmp))
    trainer.fit(model, data)
    return model.eval()


def _score(model: Any, root: Path, tmp: Path, name: str) -> dict[str, float]:
    from datamodules.ucf101_24 import read_ucf101_24

    ann = read_ucf101_24(root)
    test = ann.splits[1][1]
    out = benchmark_detector(model, root, ann, test, tmp / name, {}, batch_size=32, num_workers=0,
                             accelerator="cpu", logger=False, enable_progress_bar=False)
    report = score_split(ann, test, "frames", out["detections"]).report
    return {"frame": report["frame_map"], "video": report["video_map"]["0.5"]}


def _gflops(model: Any, size: int) -> float:
    x = torch.rand(1, 3, size, size) * 255
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model.detect(x, x)
    return counter.get_total_flops() / 1e9


def _params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.fixture(scope="module")
def scores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("two_in_one")
    root = synthesize("ucf101-24", tmp / "ucf101-24", num_videos=160, seed=0,
                      cfg=SynthConfig(height=120, width=160, num_frames=12),
                      classes=("still", "linear", "growing", "shrinking"), flow_method="farneback")
    models: dict[str, Any] = {k: _fit(config, root, tmp) for k, config in STREAMS.items()}
    models["two_stream"] = TwoStreamSSD.from_streams(models["rgb"], models["flow"], fusion="mean")
    models["two_in_one_two_stream"] = TwoStreamSSD.from_streams(models["two_in_one"], models["flow"], fusion="mean")
    out = {k: _score(m, root, tmp, k) for k, m in models.items()}
    untrained = zoo.create_model("two_in_one_tiny", num_classes=4).eval()
    out["untrained"] = _score(untrained, root, tmp, "untrained")
    out["cost"] = {k: (_params(m), _gflops(m, 128)) for k, m in models.items()}
    print({k: v for k, v in out.items()})
    return out


def test_two_in_one_beats_rgb_and_flow_beats_rgb(scores):
    rgb, flow, two_in_one = scores["rgb"], scores["flow"], scores["two_in_one"]
    assert two_in_one["frame"] > rgb["frame"] + 0.10, scores
    assert two_in_one["video"] > rgb["video"] + 0.05, scores
    assert flow["frame"] > rgb["frame"] and flow["video"] > rgb["video"], scores
    assert rgb["frame"] > scores["untrained"]["frame"] + 0.1, scores


def test_two_in_one_comes_close_to_two_stream_at_a_fraction_of_the_cost(scores):
    two_in_one, two_stream = scores["two_in_one"], scores["two_stream"]
    assert two_in_one["frame"] > 0.8 * two_stream["frame"], scores
    assert two_in_one["video"] > 0.8 * two_stream["video"], scores
    (p1, f1), (p2, f2) = scores["cost"]["two_in_one"], scores["cost"]["two_stream"]
    assert p1 < 0.55 * p2 and f1 < 0.8 * f2, scores["cost"]
    # the paper's best row: Two-in-One fused with the flow stream beats two-stream
    assert scores["two_in_one_two_stream"]["frame"] > two_stream["frame"], scores
