"""VGG16 trunks (Simonyan & Zisserman, ICLR 2015) as the UvA trackers use them."""

from __future__ import annotations

import torch
import torchvision
from torch import nn

from zoo.nn.backbones import load_weights


class StrideFourVGG16(nn.Module):
    """VGG16 with only pool1 and pool2 kept: conv4_3 and conv5_3 at stride 4 (SINT, Sec. 3.2).

    ``forward`` returns (relu4_3, relu5_3); ``fc6`` (Linear 25088 -> 4096 + ReLU) is kept for the RoI head.
    """

    out_channels = (512, 512)

    def __init__(self, pretrained: bool = False) -> None:
        super().__init__()
        vgg = torchvision.models.vgg16()
        if pretrained:
            vgg.load_state_dict(load_weights(torchvision.models.VGG16_Weights.IMAGENET1K_V1))
        f = vgg.features
        self.block123 = nn.Sequential(*f[0:16])  # conv1_1 .. relu3_3, pool1 and pool2 inside, no pool3
        self.block4 = nn.Sequential(*f[17:23])  # conv4_1 .. relu4_3 (pool4 dropped)
        self.block5 = nn.Sequential(*f[24:30])  # conv5_1 .. relu5_3 (pool5 dropped)
        self.fc6 = nn.Sequential(vgg.classifier[0], nn.ReLU(inplace=True))
        self.fc6_in = 512 * 7 * 7
        self.fc6_out = 4096

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c4 = self.block4(self.block123(x))
        return c4, self.block5(c4)

    def frozen_prefix(self) -> list[nn.Parameter]:
        """conv1_1 .. conv4_2: frozen when fine-tuning SINT."""
        return list(self.block123.parameters()) + list(self.block4[:4].parameters())

    def slow_parameters(self) -> list[nn.Parameter]:
        """conv4_3 and conv5_x: 0.01x the base learning rate."""
        return list(self.block4[4:].parameters()) + list(self.block5.parameters())


class TinyStrideFour(nn.Module):
    """A small trunk with the same interface (stride 4, two feature maps, fc6), for CPU runs."""

    def __init__(self, width: int = 32, fc_dim: int = 256) -> None:
        super().__init__()
        w = width

        def conv(c_in: int, c_out: int) -> list[nn.Module]:
            return [nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU(inplace=True)]

        self.block123 = nn.Sequential(*conv(3, w // 2), nn.MaxPool2d(2), *conv(w // 2, w), nn.MaxPool2d(2), *conv(w, w))
        self.block4 = nn.Sequential(*conv(w, w), *conv(w, w))
        self.block5 = nn.Sequential(*conv(w, w), *conv(w, w))
        self.out_channels = (w, w)
        self.fc6_in = w * 7 * 7
        self.fc6_out = fc_dim
        self.fc6 = nn.Sequential(nn.Linear(self.fc6_in, fc_dim), nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c4 = self.block4(self.block123(x))
        return c4, self.block5(c4)

    def frozen_prefix(self) -> list[nn.Parameter]:
        return []

    def slow_parameters(self) -> list[nn.Parameter]:
        return []
