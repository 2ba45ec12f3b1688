"""Base classes shared by the zoo's datamodules: training data whose order and randomness survive a resume,
and datasets that can skip corrupt videos instead of ending a long run.

Every random draw of a training sample (temporal jitter, crops, box sampling) is a function of
``(seed, epoch, index)`` alone: the sampler hands each index with its own seed, and the dataset is seeded
with it before the sample is made, in whichever worker makes it. So the batches do not depend on the number
of workers, on their state, or on whether the run was resumed; and a run resumed from a checkpoint saved in the
middle of an epoch skips the batches that epoch already trained on (the loader is stateful for Lightning).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset
from torch.utils.data.distributed import DistributedSampler

from zoo.errors import VideoReadError

log = logging.getLogger(__name__)


class SkippingDataset(Dataset):
    """A dataset whose ``load(index)`` may raise VideoReadError.

    ``on_error="raise"`` (default) stops with the error, which names the file; ``"skip"`` logs the file,
    counts it in ``self.skipped`` (per process) and returns the next loadable sample instead. Subclasses may
    skip more kinds of error (``skippable``).
    """

    skippable: tuple[type[Exception], ...] = (VideoReadError,)

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
            except self.skippable as e:
                if i not in self.skipped:
                    self.skipped[i] = str(e)
                    log.warning("skipping sample %d (%d skipped so far): %s", i, len(self.skipped), e)
        first = next(iter(self.skipped.values()))
        raise VideoReadError(f"{type(self).__name__}: every sample failed to load; first: {first}")


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """The seed of training sample ``index`` in ``epoch`` of a run seeded ``seed``."""
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1, dtype=np.uint32)[0])


def seed_everything_from(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators (this process only, without logging)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class SeededSampler(DistributedSampler):
    """A ``DistributedSampler`` (one replica on one device) that yields ``(index, seed)`` pairs, the seed made by
    ``sample_seed``; ``skip`` drops the first samples of the next epoch (a resume in the middle of an epoch)."""

    def __init__(self, dataset: Dataset, num_replicas: int = 1, rank: int = 0, seed: int = 0,
                 drop_last: bool = False) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed, drop_last=drop_last)
        self.skip = 0

    def __iter__(self) -> Iterator[tuple[int, int]]:
        indices = list(super().__iter__())[self.skip:]
        self.skip = 0
        return iter([(i, sample_seed(self.seed, self.epoch, i)) for i in indices])


class SeededItems(Dataset):
    """``dataset[index]`` made after seeding the global generators with the sampler's seed for it."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int] | int) -> Any:
        if isinstance(key, tuple):  # Lightning swaps in a plain sampler for overfit_batches
            index, seed = key
            seed_everything_from(seed)
            key = index
        return self.dataset[key]


class ResumableLoader(DataLoader):
    """The training DataLoader: stateful for Lightning, so a checkpoint saved in the middle of an epoch records how
    many batches of it were trained on and the resumed run skips them."""

    def __init__(self, *args: Any, datamodule: pl.LightningDataModule, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.datamodule = datamodule
        self._loaded = False

    def __iter__(self) -> Any:
        trainer = self.datamodule.trainer
        if not self._loaded and trainer is not None and isinstance(self.sampler, SeededSampler):
            # a run resumed from an epoch's end makes its iterator before Lightning sets the sampler's epoch
            self.sampler.set_epoch(int(trainer.fit_loop.epoch_progress.current.processed))
        self._loaded = False
        return super().__iter__()

    def state_dict(self) -> dict[str, int]:
        trainer = self.datamodule.trainer
        epoch = int(getattr(self.sampler, "epoch", 0))
        done = trainer.fit_loop.epoch_loop.batch_progress.current.ready if trainer is not None else 0
        if trainer is not None and done >= trainer.num_training_batches:  # saved on an epoch's last batch
            epoch, done = epoch + 1, 0
        return {"epoch": epoch, "batches": int(done)}

    def load_state_dict(self, state: dict[str, int]) -> None:
        if isinstance(self.sampler, SeededSampler):
            self.sampler.set_epoch(int(state["epoch"]))
            self.sampler.skip = int(state["batches"]) * int(self.batch_size)
            self._loaded = True


class ZooDataModule(pl.LightningDataModule):
    """Base datamodule: DataLoaders with a shuffle order and sample randomness fixed by ``(seed, epoch)``.

    The training sampler (a ``SeededSampler``, one replica per rank under DDP) is told its epoch by the Trainer,
    so a run resumed from a checkpoint, at an epoch's end or in its middle, sees the same batches as an
    uninterrupted one. ``collate_fn`` (None: PyTorch's default) makes the batches.
    """

    collate_fn: Any = None

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
        common = dict(batch_size=self.batch_size, num_workers=self.num_workers, collate_fn=self.collate_fn,
                      pin_memory=self.pin_memory and torch.cuda.is_available(), persistent_workers=self.num_workers > 0)
        if not train:
            return DataLoader(dataset, shuffle=False, **common)
        trainer = self.trainer
        replicas, rank = (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)
        sampler = SeededSampler(dataset, num_replicas=replicas, rank=rank, seed=self.seed)
        return ResumableLoader(SeededItems(dataset), sampler=sampler, drop_last=True, datamodule=self, **common)
