"""The Two-in-One and ROAD configs (``configs/*_ucf24.yaml``, ``configs/*_tiny_synthetic.yaml``): each parses with
``zoo fit``'s LightningCLI, builds the model and datamodule it names (nothing downloaded), agrees with the registered
builder of its recipe and with its datamodule; the tiny ones train a step on synthetic UCF101-24 through ``zoo fit``;
``benchmarks/detection_cost.py`` runs (tiny) and counts FLOPs as a hand count says."""

from __future__ import annotations

import importlib
import json
import math
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

import zoo
from datamodules.synthetic import SynthConfig, synthesize
from zoo.cli import main, run_lightning
from zoo.two_in_one import ActionSSD, TwoStreamSSD

ROOT = Path(__file__).resolve().parents[1]
# config -> the registered builder of its recipe, and the step count of the recipe (None: epochs)
CONFIGS = {
    "two_in_one_ucf24.yaml": ("two_in_one", 150000),  # Two-in-One train-ucf24.py max_iter
    "ssd300_rgb_ucf24.yaml": ("ssd300_rgb", 120000),  # ROAD README --max_iter=120000
    "ssd300_flow_ucf24.yaml": ("ssd300_flow", 120000),
    "two_stream_ssd_ucf24.yaml": ("two_stream_ssd", 120000),
    "two_in_one_tiny_synthetic.yaml": ("two_in_one_tiny", None),
    "ssd_rgb_tiny_synthetic.yaml": ("ssd_rgb_tiny", None),
    "ssd_flow_tiny_synthetic.yaml": ("ssd_flow_tiny", None),
}
TINY = [name for name, (_, steps) in CONFIGS.items() if steps is None]


@pytest.fixture(autouse=True)
def _argv(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["zoo"])  # LightningCLI is given its arguments, not pytest's


def _parsed(name: str, capsys: pytest.CaptureFixture) -> dict[str, Any]:
    """The whole config as ``zoo fit --config NAME --print_config`` resolves it (class paths, types, defaults)."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:
        main(["fit", "--config", str(ROOT / "configs" / name), "--print_config"])
    assert stop.value.code in (0, None)
    return yaml.safe_load(capsys.readouterr().out)


def _build(section: dict[str, Any], **changes: Any) -> Any:
    module, cls = section["class_path"].rsplit(".", 1)
    return getattr(importlib.import_module(module), cls)(**{**section["init_args"], **changes})


def _streams(model: ActionSSD | TwoStreamSSD) -> dict[str, ActionSSD]:
    if isinstance(model, TwoStreamSSD):
        return {"appearance": model.appearance, "motion": model.motion}
    return {"model": model}


def _plain(hparams: Any) -> dict[str, Any]:
    """The arguments as JSON types, less those of the motion layers where the stream has none."""
    out = json.loads(json.dumps(dict(hparams)))
    if out["stream"] != "two_in_one":
        for key in ("modulate_at", "cond_channels", "cond_mean"):
            out.pop(key)
    return out


@pytest.mark.parametrize("name", list(CONFIGS))
def test_config_builds_its_recipe(name, capsys, monkeypatch):
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    cfg = _parsed(name, capsys)
    builder, steps = CONFIGS[name]
    init = cfg["model"]["init_args"]
    two_stream = cfg["model"]["class_path"] == "zoo.two_in_one.TwoStreamSSD"
    stream_args = [init["appearance"], init["motion"]] if two_stream else [init]
    # the SSD300 recipes start from ImageNet VGG16 (ROAD, Two-in-One); built here without it, nothing downloaded
    assert all(args["pretrained_backbone"] is (steps is not None) for args in stream_args)
    if two_stream:
        init = {**init, **{k: {**init[k], "pretrained_backbone": False} for k in ("appearance", "motion")}}
        model = _build({**cfg["model"], "init_args": init})
    else:
        model = _build(cfg["model"], pretrained_backbone=False)
    data = _build(cfg["data"])
    assert type(data).__name__ == "UCF101_24DataModule"
    assert model.input_size == data.hparams.input_size
    assert model.modality == data.hparams.inputs  # reads what it needs, no more
    if "flow" in model.modality.split("+"):
        assert data.hparams.flow_dir == ("fastOF-images" if "two_in_one" in builder or steps is None else "brox-images")
    # the same network and training arguments as the registered builder (the tiny ones on the 4 synthetic classes)
    reference = zoo.create_model(builder, **({"num_classes": 4} if steps is None else {}))
    assert type(reference) is type(model)
    for key, stream in _streams(model).items():
        assert _plain(stream.hparams) == _plain(_streams(reference)[key].hparams), key
    trainer = cfg["trainer"]
    if steps is None:
        assert trainer["max_epochs"] >= 1 and data.hparams.num_workers <= 2  # CPU size
        return
    assert trainer["max_steps"] == steps and trainer["max_epochs"] is None
    assert trainer["val_check_interval"] == 10000 and trainer["check_val_every_n_epoch"] is None
    for stream in _streams(model).values():
        assert max(stream.hparams.milestones) < steps
    if "flow" in model.modality.split("+"):
        assert data.hparams.negate_flow_x is False  # the official RandomMirror leaves the flow values as they are


@pytest.fixture(scope="module")
def synth_ucf24(tmp_path_factory) -> Path:
    cfg = SynthConfig(height=72, width=96, num_frames=16, min_size=6, max_size=12)
    return synthesize("ucf101-24", tmp_path_factory.mktemp("ucf24") / "ucf101-24", num_videos=12, seed=3, cfg=cfg,
                      classes=("still", "linear", "growing", "shrinking"), flow_method="farneback")


@pytest.mark.parametrize("name", TINY)
def test_tiny_config_trains_a_step(name, synth_ucf24, tmp_path, monkeypatch):
    """``zoo fit --config`` on synthetic UCF101-24: one training step and one validation batch, finite losses (the
    model checks at fit start that the datamodule gives its input size and inputs)."""
    monkeypatch.chdir(tmp_path)
    cli = run_lightning(["fit", "--config", str(ROOT / "configs" / name), f"--data.init_args.root={synth_ucf24}",
                         "--data.init_args.num_workers=0", "--trainer.fast_dev_run=1", "--trainer.accelerator=cpu"])
    assert cli.trainer.global_step == 1
    # the flow folder trained on is kept for ``zoo benchmark``
    assert cli.model.flow_folder == (None if cli.model.modality == "rgb" else "fastOF-images")
    assert math.isfinite(float(cli.trainer.callback_metrics["train/loss"]))
    assert math.isfinite(float(cli.trainer.callback_metrics["val/loss"]))


@pytest.mark.parametrize("change, message", [
    ("--model.init_args.num_classes=6", "UCF101_24DataModule has 4 classes; ActionSSD detects 6"),
    ("--model.init_args.flow_folder=brox-images", "reads flow images from fastOF-images; ActionSSD was set up for "
                                                  "brox-images"),
    ("--data.init_args.inputs=rgb", r"UCF101_24DataModule\(inputs='rgb'\) lacks what ActionSSD reads \(rgb\+flow\)"),
])
def test_a_model_and_data_that_disagree_stop_at_fit_start(change, message, synth_ucf24, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=message):
        run_lightning(["fit", "--config", str(ROOT / "configs" / "two_in_one_tiny_synthetic.yaml"),
                       f"--data.init_args.root={synth_ucf24}", "--data.init_args.num_workers=0",
                       "--trainer.fast_dev_run=1", "--trainer.accelerator=cpu", change])


def test_detection_cost_runs_and_counts_flops(tmp_path, monkeypatch):
    """The tiny benchmark: the two-stream model costs its two streams together; Two-in-One costs the RGB SSD plus
    its condition and modulation layers, counted by hand (multiply-add = 2 FLOPs)."""
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    bench = importlib.import_module("detection_cost")
    threads = torch.get_num_threads()
    try:
        report = bench.main(["--tiny", "--repeats", "1", "--warmup", "0", "--batch", "2", "--devices", "cpu",
                             "--flow-pairs", "2", "--threads", "1", "--json", str(tmp_path / "cost.json")])
    finally:
        torch.set_num_threads(threads)
    assert json.loads((tmp_path / "cost.json").read_text()) == json.loads(json.dumps(report))
    m = report["models"]
    assert m["two_stream_ssd"]["params_m"] == pytest.approx(m["ssd300_rgb"]["params_m"] + m["ssd300_flow"]["params_m"])
    assert m["two_stream_ssd"]["gflops"] == pytest.approx(m["ssd300_rgb"]["gflops"] + m["ssd300_flow"]["gflops"])
    tiny = zoo.create_model("two_in_one_tiny")
    s, (c, c_out), w = tiny.input_size, tiny.hparams.cond_channels, tiny.hparams.width
    feature = 2 * w  # conv2_1 of the tiny VGG: 2 x width channels at half resolution, so the 3x3 convs stride 2
    condition = s * s * (3 * c + c * c + c * c + 9 * c * c_out)
    modulation = 2 * (s * s * c_out * c_out + (s // 2) ** 2 * 9 * c_out * feature)
    extra = 2 * (condition + modulation) / 1e9
    assert m["two_in_one"]["gflops"] - m["ssd300_rgb"]["gflops"] == pytest.approx(extra, rel=1e-9)
    timing = {(r["role"], r["batch"]) for r in report["timing"]}
    assert timing == {(role, b) for role in bench.MODELS for b in (1, 2)}
    assert all(r["net_fps"] > 0 and r["detect_fps"] > 0 for r in report["timing"]) and report["flow"]["fps"] > 0
