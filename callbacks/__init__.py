"""Callbacks the shared trainer adds to every run."""

from callbacks.throughput import batch_size, samples_per_second

__all__ = ["batch_size", "samples_per_second"]
