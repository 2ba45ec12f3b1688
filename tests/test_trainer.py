"""The shared trainer: DDP, resume, the CLI, and a model that learns on synthetic data."""

from __future__ import annotations

import copy
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import CSVLogger

import zoo
from datamodules.ucf101 import UCF101DataModule
from zoo.trainer import build_trainer, default_precision, parse_loggers, trainer_config

ROOT = Path(__file__).resolve().parents[1]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}


def test_defaults_on_cpu(tmp_path):
    assert default_precision() == "32-true"
    assert parse_loggers("wandb") == ["csv", "wandb"] and parse_loggers(None) == ["csv"]
    with pytest.raises(ValueError, match="unknown logger 'mlflow'"):
        parse_loggers("mlflow")
    cfg = trainer_config(default_root_dir=str(tmp_path), devices=2, accelerator="cpu")
    assert cfg["strategy"] == "ddp" and cfg["precision"] == "32-true"
    names = {type(c).__name__ for c in cfg["callbacks"]}
    assert {"HashedCheckpoint", "LearningRateMonitor", "ThroughputMonitor", "StepSeed"} <= names
    assert [type(lg).__name__ for lg in cfg["logger"]] == ["ResumingCSVLogger", "TensorBoardLogger"]
    assert isinstance(cfg["logger"][0], CSVLogger)
    assert trainer_config(default_root_dir=str(tmp_path))["strategy"] == "auto"
    trainer = build_trainer(default_root_dir=str(tmp_path), loggers="tensorboard,wandb", enable_progress_bar=False)
    assert [type(lg).__name__ for lg in trainer.loggers] == ["ResumingCSVLogger", "TensorBoardLogger", "WandbLogger"]
    assert trainer.checkpoint_callback.save_last


def test_ddp_two_processes_end_identical(synth_ucf101, tmp_path):
    run = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "ddp_fit.py"), str(synth_ucf101), str(tmp_path)],
        env=_env(), capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    infos = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert all(i == {"world_size": 2, "strategy": "DDPStrategy", "backend": "gloo", "global_step": 4} for i in infos)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    init = torch.load(tmp_path / "init.pt", weights_only=True)
    assert r0.keys() == r1.keys() == init.keys()
    for name in r0:
        torch.testing.assert_close(r0[name], r1[name], rtol=0, atol=0)
    assert any(not torch.equal(r0[n], init[n]) for n in r0), "training changed the parameters"


class Interrupt(Exception):
    pass


class InterruptAt(pl.Callback):
    """Stops a fit by an exception in the middle of an epoch (as a crash or a kill would)."""

    def __init__(self, epoch: int, batch: int) -> None:
        self.epoch, self.batch = epoch, batch

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.current_epoch == self.epoch and batch_idx == self.batch:
            raise Interrupt


class RecordStart(pl.Callback):
    def on_train_start(self, trainer, pl_module):
        self.global_step = trainer.global_step
        self.optimizer = copy.deepcopy(trainer.optimizers[0].state_dict())


def _fit(data: Path, root: Path, callbacks=(), ckpt_path=None) -> tuple[pl.Trainer, pl.LightningModule]:
    pl.seed_everything(0)
    model = zoo.create_model("clip_tiny", width=8)
    dm = UCF101DataModule(root=str(data), clip_len=8, stride=2, size=(32, 40), temporal_jitter=False,
                          batch_size=8, num_workers=0, seed=3)
    trainer = build_trainer(max_epochs=4, default_root_dir=str(root), loggers="", run_name="resume",
                            limit_val_batches=1, enable_progress_bar=False, enable_model_summary=False,
                            callbacks=list(callbacks))
    trainer.fit(model, dm, ckpt_path=ckpt_path)
    return trainer, model


def test_interrupted_fit_resumes_exactly(synth_ucf101, tmp_path):
    _, reference = _fit(synth_ucf101, tmp_path / "a")
    with pytest.raises(Interrupt):
        _fit(synth_ucf101, tmp_path / "b", callbacks=[InterruptAt(epoch=2, batch=3)])
    last = next((tmp_path / "b").rglob("last.ckpt"))
    saved = torch.load(last, weights_only=True)
    steps_per_epoch = saved["global_step"] // 2
    assert saved["epoch"] == 1 and steps_per_epoch > 3
    record = RecordStart()
    trainer, resumed = _fit(synth_ucf101, tmp_path / "c", callbacks=[record], ckpt_path=last)
    assert record.global_step == 2 * steps_per_epoch
    for key, value in saved["optimizer_states"][0]["state"].items():
        for name, tensor in value.items():
            torch.testing.assert_close(record.optimizer["state"][key][name], tensor, rtol=0, atol=0)
    assert trainer.global_step == 4 * steps_per_epoch
    for (name, p), q in zip(reference.state_dict().items(), resumed.state_dict().values()):
        torch.testing.assert_close(p, q, rtol=0, atol=0, msg=name)


def _zoo(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "zoo.cli", *args], env=_env(), cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def test_cli_fit_test_and_load(synth_ucf101, tmp_path):
    common = ["--config", str(ROOT / "configs" / "demo_clip_tiny.yaml"), f"--data.init_args.root={synth_ucf101}",
              "--data.init_args.size=[32,40]", "--data.init_args.num_workers=0", "--model.init_args.width=8",
              f"--trainer.default_root_dir={tmp_path}", "--trainer.enable_progress_bar=false"]
    fit = _zoo("fit", *common, "--trainer.max_epochs=2", "--trainer.limit_val_batches=1", "--run_name=cli")
    assert fit.returncode == 0, fit.stderr[-3000:]
    run_dir = tmp_path / "cli" / "version_0"
    last = run_dir / "checkpoints" / "last.ckpt"
    assert last.is_file() and (run_dir / "config.yaml").is_file()
    rows = list(csv.DictReader(open(run_dir / "metrics.csv")))
    assert any(r.get("train/device/samples_per_sec") for r in rows) and any(r.get("lr-Adam") for r in rows)
    test = _zoo("test", *common, f"--ckpt_path={last}")
    assert test.returncode == 0 and "test/acc" in test.stdout, test.stderr[-3000:]
    model = zoo.load(checkpoint_path=last)  # the class comes from the checkpoint alone
    assert type(model).__name__ == "ClipClassifier" and model.hparams.width == 8 and not model.training


@pytest.mark.parametrize(
    "args, expected",
    [
        (["fit", "--config", "configs/demo_clip_tiny.yaml", "--data.init_args.root=/no/such/dir"],
         "zoo: error: /no/such/dir: UCF101 root folder not found"),
        (["fit", "--config", "configs/demo_clip_tiny.yaml", "--model.init_args.widht=3"],
         "zoo: error: Parser key \"model\" ('zoo.baseline.ClipClassifier'): Option 'widht' is not accepted"),
        (["fit", "--config", "configs/no_such.yaml"], "File does not exist"),
        (["fit", "--config", "configs/demo_clip_tiny.yaml", "--model.class_path=zoo.baseline.Nope"],
         "has no attribute 'Nope'"),
        (["info", "clip_tyni"], "zoo: error: unknown model 'clip_tyni'; did you mean clip_tiny"),
        (["frobnicate"], "zoo: error: unknown command 'frobnicate'"),
    ],
)
def test_cli_bad_input_is_one_line(args, expected):
    run = _zoo(*args)
    assert run.returncode == 2
    assert "Traceback" not in run.stderr
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("zoo: error:") and expected in last, run.stderr[-2000:]


def test_cli_wrong_config_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("trainer:\n  max_epochz: 3\n")
    run = _zoo("fit", "--config", "configs/demo_clip_tiny.yaml", "--config", str(bad))
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert run.stderr.strip().splitlines()[-1].startswith("zoo: error:") and "max_epochz" in run.stderr


def test_cli_help_list_info_synth(tmp_path):
    help_text = _zoo("--help").stdout
    for command in ("fit", "validate", "test", "predict", "list", "info", "synth"):
        assert f"  {command} " in help_text
    listing = _zoo("list").stdout
    assert "clip_tiny" in listing and "clip_resnet18" in listing
    info = _zoo("info", "clip_tiny").stdout
    assert "parameters:" in info and "ClipClassifier" in info
    synth = _zoo("synth", "--format", "alov", "--out", str(tmp_path / "alov"), "--videos", "2", "--frames", "6")
    assert synth.returncode == 0 and (tmp_path / "alov" / "alov300++_rectangleAnnotation_full").is_dir()
    bad = _zoo("synth", "--format", "otb", "--out", str(tmp_path / "otb"), "--appearance-change", "2")
    assert bad.returncode == 2 and "--appearance-change must lie in [0, 1]" in bad.stderr


def test_tiny_model_learns_motion_classes(synth_ucf101, tmp_path):
    """Above chance (1/7) on the held-out test list, and better than the same model untrained."""
    pl.seed_everything(0)
    dm = UCF101DataModule(root=str(synth_ucf101), clip_len=8, stride=2, size=(64, 80), batch_size=8, num_workers=0)
    model = zoo.create_model("clip_tiny")
    trainer = build_trainer(max_epochs=12, default_root_dir=str(tmp_path), loggers="", run_name="learn",
                            enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0)
    untrained = trainer.test(model, dm, verbose=False)[0]["test/acc"]
    trainer.fit(model, dm)
    trained = trainer.test(model, dm, verbose=False)[0]["test/acc"]
    print(f"test accuracy untrained {untrained:.3f}, trained {trained:.3f}")
    assert trained > 2 / 7 and trained > untrained + 0.1, (untrained, trained)


def test_cli_corrupt_video_in_worker_is_one_line_or_skipped(synth_ucf101, tmp_path):
    import shutil

    data = tmp_path / "ucf101"
    shutil.copytree(synth_ucf101, data)
    rel = (data / "ucfTrainTestlist" / "testlist01.txt").read_text().splitlines()[0].strip()
    video = data / rel
    video.write_bytes(video.read_bytes()[:3000])
    common = ["validate", "--config", str(ROOT / "configs" / "demo_clip_tiny.yaml"), f"--data.init_args.root={data}",
              "--data.init_args.num_workers=2", "--data.init_args.size=[32,40]",
              f"--trainer.default_root_dir={tmp_path}", "--trainer.enable_progress_bar=false"]
    strict = _zoo(*common)
    assert strict.returncode == 2 and "Traceback" not in strict.stderr
    expected = f"zoo: error: {video}: cannot open video (Error reading {video}...)"
    assert strict.stderr.strip().splitlines()[-1] == expected
    lenient = _zoo(*common, "--data.init_args.on_error=skip")
    assert lenient.returncode == 0, lenient.stderr[-2000:]
    assert f"skipping sample 0 (1 skipped so far): {video}" in lenient.stderr
