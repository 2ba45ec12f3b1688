"""The one Trainer factory of the zoo.

``trainer_config(**kwargs)`` fills in what every method shares: accelerator and devices chosen
automatically; DDP when there is more than one device (multi-node through Lightning's own detection of
torchrun and SLURM); precision ``bf16-mixed`` on GPUs that support it, ``16-mixed`` on older GPUs,
``32-true`` on CPU; a CSV logger always, TensorBoard and wandb on request (wandb offline unless
``WANDB_MODE`` says otherwise); checkpoints keeping ``last.ckpt`` at each epoch's end and every
``save_every_n_steps`` training steps (so a kill loses at most that many steps; resuming from such a checkpoint
is exact, see ``datamodules.base``); the training step's randomness seeded by the step (``StepSeed``);
learning-rate monitor; samples/s. Anything passed explicitly wins. ``build_trainer`` returns the Trainer.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback, LearningRateMonitor, ModelCheckpoint, ThroughputMonitor
from pytorch_lightning.loggers import CSVLogger, Logger, TensorBoardLogger

from callbacks import samples_per_second
from callbacks.checkpoint import HashedCheckpoint
from callbacks.seeding import StepSeed

LOGGERS = ("csv", "tensorboard", "wandb")


def default_precision(accelerator: str = "auto") -> str:
    """bf16-mixed on GPUs with bf16, 16-mixed on older GPUs, 32-true on CPU."""
    use_gpu = accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()
    if not use_gpu:
        return "32-true"
    return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"


def parse_loggers(spec: str | Sequence[str] | None) -> list[str]:
    """``"tensorboard,wandb"`` -> ``["csv", "tensorboard", "wandb"]``: CSV is always on."""
    names = [s.strip() for s in spec.split(",")] if isinstance(spec, str) else list(spec or [])
    unknown = [n for n in names if n and n not in LOGGERS]
    if unknown:
        raise ValueError(f"unknown logger {unknown[0]!r}; choose from {', '.join(LOGGERS)}")
    return ["csv"] + [n for n in LOGGERS[1:] if n in names]


class ResumingCSVLogger(CSVLogger):
    """A CSVLogger that, in a run folder that already has ``metrics.csv`` (a resumed run), keeps the rows logged
    before ``resume_step`` instead of deleting the file as Lightning's does."""

    def __init__(self, *args: Any, resume_step: int | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.resume_step = resume_step

    @property
    def experiment(self) -> Any:
        if self._experiment is not None or self.resume_step is None or pl.utilities.rank_zero_only.rank != 0:
            return super().experiment
        import csv

        path = os.path.join(self.log_dir, "metrics.csv")
        rows, keys = [], []
        if os.path.isfile(path):
            with open(path, newline="") as f:
                reader = csv.DictReader(f)
                keys = list(reader.fieldnames or [])
                rows = [r for r in reader if r.get("step", "").isdigit() and int(r["step"]) < self.resume_step]
        writer = super().experiment
        if keys:
            writer.metrics_keys = sorted(keys)
            with open(path, "w", newline="") as f:
                out = csv.DictWriter(f, fieldnames=writer.metrics_keys)
                out.writeheader()
                out.writerows(rows)
        return writer


def build_loggers(names: Sequence[str], save_dir: str, run_name: str, version: str | int | None = None,
                  resume_step: int | None = None) -> list[Logger]:
    """Loggers sharing one run folder ``save_dir/run_name/version_N`` (``resume_step``: a resumed run's folder,
    whose CSV rows before that step are kept)."""
    loggers: list[Logger] = [ResumingCSVLogger(save_dir, name=run_name, version=version, resume_step=resume_step)]
    version = loggers[0].version
    if "tensorboard" in names:
        loggers.append(TensorBoardLogger(save_dir, name=run_name, version=version, default_hp_metric=False))
    if "wandb" in names:
        from pytorch_lightning.loggers import WandbLogger

        offline = os.environ.get("WANDB_MODE", "offline") in ("offline", "disabled")
        loggers.append(WandbLogger(name=f"{run_name}-{version}", save_dir=save_dir, offline=offline))
    return loggers


def default_callbacks(existing: Sequence[Callback], with_logger: bool, checkpointing: bool = True,
                      save_every_n_steps: int = 100) -> list[Callback]:
    """The shared callbacks that ``existing`` does not already provide."""
    added: list[Callback] = []
    if not any(isinstance(c, StepSeed) for c in existing):
        added.append(StepSeed())
    if checkpointing and not any(isinstance(c, ModelCheckpoint) for c in existing):
        # both keep the one last.ckpt (no last-v1.ckpt): the newest state, at an epoch's end or every N steps
        added.append(checkpoint_callback(save_last=True, enable_version_counter=False))
        if save_every_n_steps:
            added.append(checkpoint_callback(save_last=True, save_top_k=0, every_n_train_steps=save_every_n_steps,
                                             enable_version_counter=False))
    if with_logger and not any(isinstance(c, LearningRateMonitor) for c in existing):
        added.append(LearningRateMonitor(logging_interval="step"))
    if with_logger and not any(isinstance(c, ThroughputMonitor) for c in existing):
        added.append(samples_per_second())
    return added


def checkpoint_callback(**kwargs: Any) -> ModelCheckpoint:
    """The zoo's checkpoint callback: a ``ModelCheckpoint`` that writes a sha256 file beside each checkpoint."""
    return HashedCheckpoint(**kwargs)


def trainer_config(
    *,
    loggers: str | Sequence[str] | None = "tensorboard",
    run_name: str = "zoo",
    root_dir: str = "runs",
    version: str | int | None = None,
    resume_step: int | None = None,
    save_every_n_steps: int = 100,
    **kwargs: Any,
) -> dict[str, Any]:
    """Trainer arguments with the zoo's defaults filled in where ``kwargs`` leaves them unset (None); ``version``
    picks the run folder ``root_dir/run_name/version_N`` (a resumed run writes into its own folder)."""
    cfg = dict(kwargs)
    accelerator = cfg.get("accelerator") or "auto"
    cfg["accelerator"] = accelerator
    cfg["devices"] = cfg.get("devices") or "auto"
    strategy = cfg.get("strategy") or "auto"
    if strategy == "auto" and _device_count(accelerator, cfg["devices"]) * int(cfg.get("num_nodes") or 1) > 1:
        strategy = "ddp"
    cfg["strategy"] = strategy
    if cfg.get("precision") is None:
        cfg["precision"] = default_precision(accelerator)
    if cfg.get("default_root_dir") is None:
        cfg["default_root_dir"] = root_dir
    if cfg.get("logger") is None or cfg.get("logger") is True:
        cfg["logger"] = build_loggers(parse_loggers(loggers), cfg["default_root_dir"], run_name, version, resume_step)
    callbacks = list(cfg.get("callbacks") or [])
    with_logger = cfg["logger"] not in (False, [], None)
    checkpointing = cfg.get("enable_checkpointing") is not False
    cfg["callbacks"] = callbacks + default_callbacks(callbacks, with_logger, checkpointing, save_every_n_steps)
    return cfg


def _device_count(accelerator: str, devices: Any) -> int:
    if isinstance(devices, int):
        return devices if devices > 0 else max(torch.cuda.device_count(), 1)
    if isinstance(devices, (list, tuple)):
        return len(devices)
    if isinstance(devices, str) and devices.strip().lstrip("-").isdigit():
        return _device_count(accelerator, int(devices))
    if isinstance(devices, str) and "," in devices:
        return len([d for d in devices.split(",") if d.strip()])
    if accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available():
        return torch.cuda.device_count()
    return 1


def build_trainer(**kwargs: Any) -> pl.Trainer:
    """A Trainer with the zoo's defaults; see ``trainer_config`` for the arguments it adds."""
    return pl.Trainer(**trainer_config(**kwargs))
