"""The small CNN of the zoo's CPU-sized models."""

from __future__ import annotations

from torch import nn


def tiny_cnn(in_channels: int, width: int) -> nn.Sequential:
    """Three stride-2 conv-BN-ReLU blocks and global max pooling, ``4 * width`` features.

    Choice: max rather than average pooling, since on frame differences the signal is a few moving pixels.
    """
    layers: list[nn.Module] = []
    channels = [in_channels, width, 2 * width, 4 * width]
    for c_in, c_out in zip(channels[:-1], channels[1:]):
        layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(True)]
    return nn.Sequential(*layers, nn.AdaptiveMaxPool2d(1), nn.Flatten())
