"""Base classes shared by the zoo's datamodules: seeded shuffling that survives a resume, and datasets
that can skip corrupt videos instead of ending a long run."""

from __future__ import annotations

import logging
from typing import Any

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset
from torch.utils.data.distributed import DistributedSampler

from zoo.errors import VideoReadError

log = logging.getLogger(__name__)


class SkippingDataset(Dataset):
    """A dataset whose ``load(index)`` may raise VideoReadError.

    ``on_error="raise"`` (default) stops with the error, which names the file; ``"skip"`` logs the file,
    counts it in ``self.skipped`` (per process) and returns the next loadable sample instead.
    """

    def __init__(self, on_error: str = "raise") -> None:
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', not {on_error!r}")
        self.on_error = on_error
        self.skipped: dict[int, str] = {}

    def load(self, index: int) -> Any:
        raise NotImplementedError

    def __getitem__(self, index: int) -> Any:
        if self.on_error == "raise":
            return self.load(index)
        for attempt in range(len(self)):
            i = (index + attempt) % len(self)
            try:
                return self.load(i)
            except VideoReadError as e:
                if i not in self.skipped:
                    self.skipped[i] = str(e)
                    log.warning("skipping sample %d (%d skipped so far): %s", i, len(self.skipped), e)
        first = next(iter(self.skipped.values()))
        raise VideoReadError(f"{type(self).__name__}: every sample failed to load; first: {first}")


class ZooDataModule(pl.LightningDataModule):
    """Base datamodule: DataLoaders with a shuffle order fixed by ``(seed, epoch)``.

    On one device the training sampler is seeded and told its epoch by the Trainer, so a run resumed
    from a checkpoint sees the same batches as an uninterrupted one. Under DDP, Lightning's own
    ``DistributedSampler`` (seeded the same way) takes its place.
    """

    def __init__(self, batch_size: int = 8, num_workers: int = 2, seed: int = 0, pin_memory: bool = True) -> None:
        super().__init__()
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.seed = seed
        self.pin_memory = pin_memory

    def train_dataloader(self) -> DataLoader:
        """``self.train_set``, shuffled by the seeded sampler."""
        return self._loader(self.train_set, train=True)

    def val_dataloader(self) -> DataLoader | list:
        """``self.val_set`` in order (none when a subclass sets it to ``None``)."""
        val_set = getattr(self, "val_set", None)
        return self._loader(val_set, train=False) if val_set is not None else []

    def _loader(self, dataset: Dataset, train: bool) -> DataLoader:
        distributed = self.trainer is not None and self.trainer.world_size > 1
        sampler = None
        if train and not distributed:
            sampler = DistributedSampler(dataset, num_replicas=1, rank=0, shuffle=True, seed=self.seed)
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=train and distributed,
            sampler=sampler,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory and torch.cuda.is_available(),
            persistent_workers=self.num_workers > 0,
            drop_last=train,
        )
