"""Callbacks the shared trainer adds to every run."""

from callbacks.checkpoint import HashedCheckpoint
from callbacks.throughput import batch_size, samples_per_second

__all__ = ["HashedCheckpoint", "batch_size", "samples_per_second"]
