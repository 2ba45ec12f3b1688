"""Encodings of an element (W frames) into one network input (Fernando et al., CVPR 2017, Sec. 3.3).

All take float frames ``(..., W, C, H, W')`` and run where the tensor is (on the GPU in training):

- ``dynamic_image``: approximate rank pooling (Bilen et al., CVPR 2016, Eq. 7), sum_t alpha_t I_t with
  alpha_t = 2 (W - t + 1) - (W + 1) (H_W - H_{t-1}), H_t the t-th harmonic number (H_0 = 0);
- ``stack_of_differences``: the W - 1 differences I_{t+1} - I_t stacked as 3 (W - 1) channels;
- ``sum_of_differences``: sum over t' > t of (I_t' - I_t), which equals sum_t (2 t - W - 1) I_t.
"""

from __future__ import annotations

import torch

ENCODINGS = ("dynamic_image", "stack_of_differences", "sum_of_differences")


def rank_pooling_weights(frames: int, dtype: torch.dtype = torch.float32, device=None) -> torch.Tensor:  # noqa: ANN001
    """alpha_t, t = 1..W, of approximate rank pooling."""
    t = torch.arange(1, frames + 1, dtype=torch.float64)
    harmonic = torch.cat([torch.zeros(1, dtype=torch.float64), torch.cumsum(1.0 / t, 0)])  # H_0 .. H_W
    alpha = 2 * (frames - t + 1) - (frames + 1) * (harmonic[frames] - harmonic[:-1])
    return alpha.to(dtype=dtype, device=device)


def dynamic_image(frames: torch.Tensor) -> torch.Tensor:
    """(..., W, C, H, W') -> (..., C, H, W')."""
    alpha = rank_pooling_weights(frames.shape[-4], frames.dtype, frames.device)
    return torch.einsum("t,...tchw->...chw", alpha, frames)


def stack_of_differences(frames: torch.Tensor) -> torch.Tensor:
    """(..., W, C, H, W') -> (..., (W - 1) C, H, W'), differences in time order."""
    diff = frames[..., 1:, :, :, :] - frames[..., :-1, :, :, :]
    return diff.flatten(-4, -3)


def sum_of_differences(frames: torch.Tensor) -> torch.Tensor:
    """(..., W, C, H, W') -> (..., C, H, W'): sum over all ordered pairs t < t' of I_t' - I_t."""
    w = frames.shape[-4]
    weights = 2 * torch.arange(1, w + 1, dtype=frames.dtype, device=frames.device) - w - 1
    return torch.einsum("t,...tchw->...chw", weights, frames)


def encode(frames: torch.Tensor, encoding: str) -> torch.Tensor:
    if encoding == "dynamic_image":
        return dynamic_image(frames)
    if encoding == "stack_of_differences":
        return stack_of_differences(frames)
    if encoding == "sum_of_differences":
        return sum_of_differences(frames)
    raise ValueError(f"encoding must be one of {ENCODINGS}, not {encoding!r}")


def encoded_channels(encoding: str, frames: int, channels: int = 3) -> int:
    return channels * (frames - 1) if encoding == "stack_of_differences" else channels
