"""Odd-one-out questions built on the accelerator from a frame store held in its memory.

A DataLoader cannot feed an AlexNet O3N step on a modern GPU (36 frames per question through worker
shared memory; see ``benchmarks/o3n_train.py``). ``FrameBank`` loads the prepared store of a split into
one uint8 tensor on the device, the loader ships only video indices, and ``sample_questions`` draws the
frame indices of whole batches with tensor operations and gathers the frames there (the same rules as
``datamodules.odd_one_out.make_question``). UCF101 at 64x85 is about 41 GB of uint8.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from datamodules.action import FRAME_STORE_SUFFIX
from zoo.errors import VideoReadError


class FrameBank:
    """Every frame of ``videos`` (store-relative paths) as one ``uint8 (F, H, W, 3)`` tensor on ``device``."""

    def __init__(self, store: str | os.PathLike, videos: list[str], device: str | torch.device = "cpu") -> None:
        arrays = []
        for rel in videos:
            path = Path(store) / (rel + FRAME_STORE_SUFFIX)
            try:
                arrays.append(np.load(path, mmap_mode="r"))
            except (OSError, ValueError) as e:
                raise VideoReadError(f"{path}: not a readable frame store file ({e})") from None
        shapes = {a.shape[1:] for a in arrays}
        if len(shapes) != 1:
            raise VideoReadError(f"{store}: stored frames differ in size {sorted(shapes)}")
        lengths = torch.tensor([a.shape[0] for a in arrays], dtype=torch.long)
        self.frames = torch.empty((int(lengths.sum()), *arrays[0].shape[1:]), dtype=torch.uint8, device=device)
        start = 0
        for a in arrays:  # one video at a time: host memory holds at most one video
            self.frames[start : start + len(a)] = torch.from_numpy(np.array(a)).to(device)
            start += len(a)
        self.lengths = lengths.to(device)
        self.offsets = (torch.cumsum(lengths, 0) - lengths).to(device)


def _sorted_choice(n: torch.Tensor, span: torch.Tensor, frames: int, generator: torch.Generator | None) -> torch.Tensor:
    """Per row, ``frames`` distinct sorted offsets in ``[0, span)`` (span <= n)."""
    width = int(span.max())
    keys = torch.rand((len(n), width), device=n.device, generator=generator)
    keys = keys.masked_fill(torch.arange(width, device=n.device)[None] >= span[:, None], 2.0)
    return keys.topk(frames, dim=1, largest=False).indices.sort(dim=1).values


def sample_indices(
    lengths: torch.Tensor,
    frames: int,
    strategy: str,
    window_factor: float = 1.5,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Sorted frame indices ``(len(lengths), frames)`` of one element per video length (the strategies of
    ``datamodules.odd_one_out.element_indices``)."""
    if bool((lengths < frames).any()):
        raise ValueError(f"a video shorter than {frames} frames cannot give an element")
    dev = lengths.device
    u = torch.rand(len(lengths), device=dev, generator=generator)
    if strategy == "consecutive":
        start = (u * (lengths - frames + 1)).long()
        return start[:, None] + torch.arange(frames, device=dev)
    if strategy == "constrained":
        window = (lengths.new_full(lengths.shape, round(window_factor * frames))).clamp(min=frames).minimum(lengths)
        start = (u * (lengths - window + 1)).long()
        return start[:, None] + _sorted_choice(lengths, window, frames, generator)
    if strategy == "random":
        return _sorted_choice(lengths, lengths, frames, generator)
    raise ValueError(f"unknown strategy {strategy!r}")


def sample_questions(
    bank: FrameBank,
    videos: torch.Tensor,
    elements: int = 6,
    frames: int = 6,
    strategy: str = "random",
    window_factor: float = 1.5,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Questions for a batch of video indices: ``(questions uint8 (B, elements, frames, 3, H, W), odd (B,),
    frame indices (B, elements, frames) within each video)``."""
    b, dev = len(videos), bank.frames.device
    videos = videos.to(dev)
    lengths = bank.lengths[videos].repeat_interleave(elements)
    idx = sample_indices(lengths, frames, strategy, window_factor, generator).view(b, elements, frames)
    odd = torch.randint(elements, (b,), device=dev, generator=generator)
    order = torch.rand((b, frames), device=dev, generator=generator).argsort(dim=1)
    identity = (order == torch.arange(frames, device=dev)).all(dim=1)
    order[identity] = order[identity].roll(1, dims=1)  # never the sorted order
    rows = torch.arange(b, device=dev)
    idx[rows, odd] = idx[rows, odd].gather(1, order)
    flat = bank.offsets[videos][:, None, None] + idx
    questions = bank.frames[flat.flatten()].view(b, elements, frames, *bank.frames.shape[1:])
    return questions.permute(0, 1, 2, 5, 3, 4), odd, idx
