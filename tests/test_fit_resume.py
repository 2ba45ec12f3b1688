"""A ``zoo fit`` killed with ``kill -9`` in the middle of an epoch and resumed with ``--ckpt_path`` ends with the
parameters of an uninterrupted fit, bit for bit, in the same run folder (workers, temporal jitter, dropout)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def _args(data: Path, root: Path) -> list[str]:
    return [sys.executable, "-m", "zoo.cli", "fit", "--config", str(ROOT / "configs" / "demo_clip_tiny.yaml"),
            f"--data.init_args.root={data}", "--data.init_args.size=[32,40]", "--data.init_args.num_workers=2",
            "--data.init_args.temporal_jitter=true", "--model.init_args.width=8", "--model.init_args.dropout=0.5",
            f"--trainer.default_root_dir={root}", "--trainer.enable_progress_bar=false", "--trainer.max_epochs=3",
            "--trainer.limit_val_batches=1", "--run_name=r", "--logger=", "--save_every_n_steps=2"]


def _state(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["state_dict"]


def test_killed_fit_resumes_bit_for_bit(synth_ucf101, tmp_path):
    ref = subprocess.run(_args(synth_ucf101, tmp_path / "a"), env=ENV, cwd=ROOT, capture_output=True, text=True,
                         timeout=600)
    assert ref.returncode == 0, ref.stderr[-3000:]
    reference = torch.load(tmp_path / "a" / "r" / "version_0" / "checkpoints" / "last.ckpt", weights_only=True)
    steps_per_epoch = reference["global_step"] // 3

    proc = subprocess.Popen(_args(synth_ucf101, tmp_path / "b"), env=ENV, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    last = tmp_path / "b" / "r" / "version_0" / "checkpoints" / "last.ckpt"
    killed_at = None
    deadline = time.time() + 400
    while time.time() < deadline and proc.poll() is None:
        if last.is_file():
            try:
                step = torch.load(last, weights_only=True)["global_step"]
            except Exception:  # noqa: BLE001  (being replaced at this moment)
                step = 0
            if step > steps_per_epoch and step % steps_per_epoch:  # after epoch 1, in the middle of epoch 2
                os.kill(proc.pid, signal.SIGKILL)
                killed_at = step
                break
        time.sleep(0.02)
    proc.wait()
    assert killed_at is not None, "the fit ended before a mid-epoch checkpoint could be caught"

    resumed = subprocess.run(_args(synth_ucf101, tmp_path / "b") + [f"--ckpt_path={last}"], env=ENV, cwd=ROOT,
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert sorted(p.name for p in (tmp_path / "b" / "r").iterdir()) == ["version_0"], "resumed into its own folder"
    final = torch.load(last, weights_only=True)
    assert final["global_step"] == reference["global_step"]
    for name, value in reference["state_dict"].items():
        assert torch.equal(final["state_dict"][name], value), f"{name} differs after resuming at step {killed_at}"


def test_fit_resumed_from_an_epoch_end_with_workers_is_exact(synth_ucf101, tmp_path):
    """Resumed from the checkpoint of an epoch's end, the loader's workers draw the next epoch, not the first."""
    import pytorch_lightning as pl

    import zoo
    from datamodules.ucf101 import UCF101DataModule
    from zoo.trainer import build_trainer

    def fit(root: Path, epochs: int, ckpt: Path | None = None) -> torch.nn.Module:
        pl.seed_everything(0)
        model = zoo.create_model("clip_tiny", width=8, dropout=0.5)
        dm = UCF101DataModule(root=str(synth_ucf101), clip_len=8, stride=2, size=(32, 40), batch_size=8,
                              num_workers=2, seed=3)
        trainer = build_trainer(max_epochs=epochs, default_root_dir=str(root), loggers="", run_name="r",
                                limit_val_batches=0, enable_progress_bar=False, enable_model_summary=False,
                                save_every_n_steps=0)
        trainer.fit(model, dm, ckpt_path=ckpt)
        return model

    reference = fit(tmp_path / "a", 3)
    fit(tmp_path / "b", 1)
    resumed = fit(tmp_path / "c", 3, ckpt=tmp_path / "b" / "r" / "version_0" / "checkpoints" / "last.ckpt")
    for (name, p), q in zip(reference.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(p, q), name
