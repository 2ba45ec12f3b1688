"""Randomness of the training step (dropout, random layers) as a function of the step, so a resumed fit draws
what an uninterrupted one draws."""

from __future__ import annotations

import os
from typing import Any

import pytorch_lightning as pl

from datamodules.base import sample_seed, seed_everything_from


class StepSeed(pl.Callback):
    """Before each training batch, seed Python, NumPy and torch from ``(seed, batch, rank)`` (``batch``: training
    batches so far, so the micro-batches of an accumulated step differ); ``seed`` is
    ``seed_everything``'s (``PL_GLOBAL_SEED``), else 0. Lightning does not save the generators' states in a
    checkpoint, so without this a resumed run's dropout masks differ from an uninterrupted run's."""

    def __init__(self, seed: int | None = None) -> None:
        self.seed = seed

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        seed = self.seed if self.seed is not None else int(os.environ.get("PL_GLOBAL_SEED", 0))
        batches = trainer.fit_loop.epoch_loop.batch_progress.total.ready
        seed_everything_from(sample_seed(seed, int(batches), trainer.global_rank))
