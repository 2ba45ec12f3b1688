"""Samples per second, logged through Lightning's own ThroughputMonitor."""

from __future__ import annotations

from typing import Any

import torch
from pytorch_lightning.callbacks import ThroughputMonitor


def batch_size(batch: Any) -> int:
    """Leading dimension of the first tensor found in a batch (dict, list, tuple or tensor)."""
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0]) if batch.ndim else 1
    if isinstance(batch, dict):
        batch = list(batch.values())
    if isinstance(batch, (list, tuple)):
        for item in batch:
            n = batch_size(item)
            if n:
                return n
    return 0


def samples_per_second(window_size: int = 10) -> ThroughputMonitor:
    """Logs ``train/device/samples_per_sec`` (and batches/s), a rolling mean over ``window_size`` batches."""
    return ThroughputMonitor(batch_size_fn=batch_size, window_size=window_size)
