"""Host-to-device copies inside a tracker's per-frame step that do not wait for the device.

A plain ``tensor.to("cuda")`` synchronises the stream after the copy, so a small array copied after the network's
work is queued stalls the host until that work is done, and the next kernels are launched only then. From pageable
memory ``non_blocking=True`` copies through a staging buffer before returning (CUDA's "API synchronization behavior":
the source may be freed right after) and usually without that synchronisation (the driver may still synchronise).
Only for pageable sources: a pinned one must not change until the copy is done. On the CPU both are the same.
``waiting_copies`` sets a flag for the whole process (the benchmarks' former path), not per thread.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import torch

_waiting = [False]


def to_device(values: np.ndarray | torch.Tensor | list, device: torch.device | str,
              dtype: torch.dtype | None = None) -> torch.Tensor:
    """``values`` as a tensor on ``device`` (``dtype`` if given), copied without waiting for the device's queue."""
    return torch.as_tensor(values, dtype=dtype).to(device, non_blocking=not _waiting[0])


@contextlib.contextmanager
def waiting_copies() -> Iterator[None]:
    """Inside, ``to_device`` waits for the device as a plain copy does: the speed benchmarks' former path."""
    previous, _waiting[0] = _waiting[0], True
    try:
        yield
    finally:
        _waiting[0] = previous
