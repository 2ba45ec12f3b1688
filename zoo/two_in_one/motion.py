"""The motion condition and motion modulation layers of Two-in-One (Zhao & Snoek, CVPR 2019, Sec. 3.2), as the
released ``Modulssd_CONV2.py`` builds them (``CondNet`` and ``SFTLayer``, after SFT-GAN's spatial feature
transform)."""

from __future__ import annotations

import torch
from torch import nn


class MotionCondition(nn.Module):
    """The motion condition layer: a flow image (B, 3, H, W) -> a condition map (B, c_out, H, W) by three 1x1
    convolutions (3 -> c, c -> c, c -> c, each with LeakyReLU 0.1) and a 3x3 convolution (c -> c_out, pad 1);
    official c = 64, c_out = 32."""

    def __init__(self, channels: int = 64, out_channels: int = 32, negative_slope: float = 0.1) -> None:
        super().__init__()
        self.out_channels = out_channels
        self.layers = nn.Sequential(
            nn.Conv2d(3, channels, 1), nn.LeakyReLU(negative_slope, inplace=True),
            nn.Conv2d(channels, channels, 1), nn.LeakyReLU(negative_slope, inplace=True),
            nn.Conv2d(channels, channels, 1), nn.LeakyReLU(negative_slope, inplace=True),
            nn.Conv2d(channels, out_channels, 3, padding=1),
        )

    def forward(self, flow: torch.Tensor) -> torch.Tensor:
        return self.layers(flow)


def _branch(c_in: int, c_out: int, stride: int, negative_slope: float) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_in, 1), nn.LeakyReLU(negative_slope, inplace=True),
                         nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1))


class MotionModulation(nn.Module):
    """The motion modulation layer: gamma and beta each from the condition map by a 1x1 convolution (c -> c,
    LeakyReLU 0.1) and a 3x3 convolution of ``stride`` (c -> the feature's channels, pad 1), then
    F' = F * (gamma + 1) + beta. Official: after conv2_1 (128 channels at 1/2 resolution, stride 2); at other
    layers (the paper's ablation, code not released) the stride is that layer's (our choice)."""

    def __init__(self, cond_channels: int, feature_channels: int, stride: int = 2, negative_slope: float = 0.1) -> None:
        super().__init__()
        self.gamma = _branch(cond_channels, feature_channels, stride, negative_slope)
        self.beta = _branch(cond_channels, feature_channels, stride, negative_slope)

    def forward(self, feature: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        return feature * (self.gamma(condition) + 1) + self.beta(condition)
