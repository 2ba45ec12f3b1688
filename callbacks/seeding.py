"""Randomness of the training step (dropout, random layers) as a function of the step, so a resumed fit draws
what an uninterrupted one draws."""

from __future__ import annotations

import os
from typing import Any

import pytorch_lightning as pl

from datamodules.base import sample_seed, seed_everything_from


class StepSeed(pl.Callback):
    """Before each training batch, seed Python, NumPy and torch from ``(seed, global_step, rank)``; ``seed`` is
    ``seed_everything``'s (``PL_GLOBAL_SEED``), else 0. Lightning does not save the generators' states in a
    checkpoint, so without this a resumed run's dropout masks differ from an uninterrupted run's."""

    def __init__(self, seed: int | None = None) -> None:
        self.seed = seed

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        seed = self.seed if self.seed is not None else int(os.environ.get("PL_GLOBAL_SEED", 0))
        seed_everything_from(sample_seed(seed, trainer.global_step, trainer.global_rank))
