"""Dynamic filters: convolution kernels computed per sample, from a sentence or from a target template
(Li et al., CVPR 2017, Sec. 3.1-3.2)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

ACTIVATIONS = {"sigmoid": torch.sigmoid, "tanh": torch.tanh}


class DynamicFilter(nn.Module):
    """A 1x1 filter per sample from a sentence encoding: w = sigmoid(FC(h_T)) (the paper's); response = w * features.

    ``activation="tanh"`` gives signed filters, tanh(x) = 2 sigmoid(2x) - 1, for trunks trained from scratch."""

    def __init__(self, text_dim: int, channels: int, activation: str = "sigmoid") -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, not {activation!r}")
        self.fc = nn.Linear(text_dim, channels)
        self.activation = ACTIVATIONS[activation]

    def filters(self, text: torch.Tensor) -> torch.Tensor:
        """(B, text_dim) -> (B, channels, 1, 1) kernels."""
        return self.activation(self.fc(text))[:, :, None, None]

    def forward(self, features: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) features and (B, text_dim) -> (B, 1, H, W) response."""
        return correlate(features, self.filters(text))


def correlate(search: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Per-sample cross-correlation as one grouped convolution: (B, C, H, W) with (B, C, h, w) kernels ->
    (B, 1, H - h + 1, W - w + 1)."""
    b, c, h, w = search.shape
    if kernels.shape[:2] != (b, c):
        raise ValueError(f"kernels {tuple(kernels.shape)} do not fit features {tuple(search.shape)}")
    out = F.conv2d(search.reshape(1, b * c, h, w), kernels, groups=b)
    return out.view(b, 1, *out.shape[-2:])


def spatial_map(height: int, width: int, device=None) -> torch.Tensor:  # noqa: ANN001
    """The 8-channel spatial map of Hu et al. (ECCV 2016) used with the lingual network: per cell its
    x_min, y_min, x_max, y_max, x_centre, y_centre in [-1, 1], and 1 / width, 1 / height."""
    xs = torch.arange(width, dtype=torch.float32, device=device)
    ys = torch.arange(height, dtype=torch.float32, device=device)
    x0, x1 = xs / width * 2 - 1, (xs + 1) / width * 2 - 1
    y0, y1 = ys / height * 2 - 1, (ys + 1) / height * 2 - 1
    grid = [
        x0.expand(height, width), y0[:, None].expand(height, width),
        x1.expand(height, width), y1[:, None].expand(height, width),
        ((x0 + x1) / 2).expand(height, width), ((y0 + y1) / 2)[:, None].expand(height, width),
        torch.full((height, width), 1 / width, device=device), torch.full((height, width), 1 / height, device=device),
    ]
    return torch.stack(grid)
