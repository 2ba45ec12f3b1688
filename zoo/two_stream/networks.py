"""The streams' networks (Simonyan & Zisserman, NeurIPS 2014, Sec. 5 and Fig. 1): CNN-M-2048 (Chatfield et al.,
BMVC 2014), torchvision ImageNet networks in its place for the spatial stream, the CPU-sized tiny network, and the
cross-modality initialisation of a flow network from an RGB one (Wang et al., ECCV 2016, Sec. 3.2)."""

from __future__ import annotations

import torch
import torchvision
from torch import nn

from zoo.nn.backbones import cross_modality_conv, load_weights, resnet
from zoo.nn.tiny import tiny_cnn

# Krizhevsky et al.'s LRN (the paper: "the same settings as [15]"): size 5, k = 2, alpha = 1e-4 on the plain sum of
# squares, beta 0.75; torch divides alpha by the size, hence 5 x 1e-4
LRN = {"size": 5, "alpha": 5e-4, "beta": 0.75, "k": 2.0}
BACKBONES = ("cnnm", "tiny", "alexnet", "resnet18", "resnet34", "resnet50", "resnet101")


class CNNM2048(nn.Module):
    """CNN-M-2048 up to full7 (Fig. 1): conv1 7x7/2 96, LRN, pool; conv2 5x5/2 256, LRN, pool; conv3-5 3x3 512, pool;
    full6 4096 and full7 2048, each with ReLU and dropout. ReLU after every weight layer, max pooling 3x3 / 2
    (Sec. 5), Caffe's ceil rounding (pool5 6 x 6 at 224 x 224), conv2 padded by 1 as in CNN-M. ``norm2=False``: the
    temporal net, without the second normalisation layer (Sec. 5)."""

    def __init__(self, in_channels: int = 3, dropout: float = 0.5, norm2: bool = True) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 96, 7, stride=2), nn.ReLU(True), nn.LocalResponseNorm(**LRN),
            nn.MaxPool2d(3, 2, ceil_mode=True),
            nn.Conv2d(96, 256, 5, stride=2, padding=1), nn.ReLU(True),
            *([nn.LocalResponseNorm(**LRN)] if norm2 else []),
            nn.MaxPool2d(3, 2, ceil_mode=True),
            nn.Conv2d(256, 512, 3, padding=1), nn.ReLU(True),
            nn.Conv2d(512, 512, 3, padding=1), nn.ReLU(True),
            nn.Conv2d(512, 512, 3, padding=1), nn.ReLU(True), nn.MaxPool2d(3, 2, ceil_mode=True),
        )
        self.full6 = nn.Sequential(nn.Flatten(), nn.Linear(512 * 6 * 6, 4096), nn.ReLU(True), nn.Dropout(dropout))
        self.full7 = nn.Sequential(nn.Linear(4096, 2048), nn.ReLU(True), nn.Dropout(dropout))
        self.out_dim = 2048

    @property
    def conv1(self) -> nn.Conv2d:
        return self.features[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        if x.shape[-2:] != (6, 6):
            raise ValueError(f"CNN-M-2048 expects 224 x 224 input (pool5 6 x 6), got pool5 {tuple(x.shape[-2:])}")
        return self.full7(self.full6(x))


class TinyStreamNet(nn.Module):
    """The CPU size: ``tiny_cnn`` with ``blocks`` stride-2 blocks (3: the zoo's usual; 4 reaches 31 pixels, the path
    of an object over 10 flow fields) and one fully connected layer with ReLU and dropout in place of full6 / full7."""

    def __init__(self, in_channels: int = 3, width: int = 16, fc_dim: int = 128, dropout: float = 0.0,
                 blocks: int = 3) -> None:
        super().__init__()
        self.features = tiny_cnn(in_channels, width)
        if blocks == 4:
            layers = list(self.features)
            block = [nn.Conv2d(4 * width, 4 * width, 3, 2, 1, bias=False), nn.BatchNorm2d(4 * width), nn.ReLU(True)]
            self.features = nn.Sequential(*layers[:-2], *block, *layers[-2:])  # before the pooling and flattening
        elif blocks != 3:
            raise ValueError(f"tiny blocks must be 3 or 4, not {blocks}")
        self.fc = nn.Sequential(nn.Linear(4 * width, fc_dim), nn.ReLU(True), nn.Dropout(dropout))
        self.out_dim = fc_dim

    @property
    def conv1(self) -> nn.Conv2d:
        return self.features[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


class TorchvisionNet(nn.Module):
    """A torchvision ImageNet network without its last layer: AlexNet up to fc7 (4096, its own dropout at
    ``dropout``) or a ResNet up to global pooling, then dropout; ImageNet weights when ``pretrained``."""

    def __init__(self, name: str, pretrained: bool = False, dropout: float = 0.5) -> None:
        super().__init__()
        self.name = name
        if name == "alexnet":
            net = torchvision.models.alexnet(weights=None)
            if pretrained:
                net.load_state_dict(load_weights(torchvision.models.AlexNet_Weights.IMAGENET1K_V1))
            for i in (0, 3):
                net.classifier[i] = nn.Dropout(dropout)
            net.classifier = net.classifier[:-1]
            self.net, self.out_dim = net, 4096
        else:
            self.net = nn.Sequential(resnet(name, pretrained=pretrained), nn.Dropout(dropout))
            self.out_dim = 512 if name in ("resnet18", "resnet34") else 2048

    @property
    def conv1(self) -> nn.Conv2d:
        return self.net.features[0] if self.name == "alexnet" else self.net[0].conv1

    def set_conv1(self, conv: nn.Conv2d) -> None:
        if self.name == "alexnet":
            self.net.features[0] = conv
        else:
            self.net[0].conv1 = conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def stream_net(backbone: str, in_channels: int, dropout: float, *, norm2: bool = True, pretrained: bool = False,
               cross_modality: bool = False, width: int = 16, fc_dim: int = 128, blocks: int = 3) -> nn.Module:
    """One stream's network up to its features (``out_dim``) for ``in_channels`` inputs (3: RGB; 2L: flow).

    ``pretrained``: ImageNet weights (torchvision backbones only; CNN-M has none there). ``cross_modality``: the
    network is built for RGB (with its ImageNet weights when ``pretrained``) and its conv1 widened to
    ``in_channels`` by :func:`cross_modality_conv`; otherwise a flow network is built for its inputs from scratch."""
    if backbone not in BACKBONES:
        raise ValueError(f"backbone must be one of {', '.join(BACKBONES)}, not {backbone!r}")
    if pretrained and backbone in ("cnnm", "tiny"):
        raise ValueError(f"torchvision has no ImageNet weights for {backbone!r}: pretrained_backbone needs one of "
                         f"{', '.join(BACKBONES[2:])}")
    built_for = 3 if cross_modality else in_channels
    if backbone == "cnnm":
        net: nn.Module = CNNM2048(built_for, dropout, norm2)
    elif backbone == "tiny":
        net = TinyStreamNet(built_for, width, fc_dim, dropout, blocks)
    else:
        net = TorchvisionNet(backbone, pretrained, dropout)
        if not cross_modality and in_channels != 3:
            old = net.conv1
            net.set_conv1(nn.Conv2d(in_channels, old.out_channels, old.kernel_size, old.stride, old.padding,
                                    bias=old.bias is not None))
    if cross_modality and in_channels != 3:
        if isinstance(net, TorchvisionNet):
            net.set_conv1(cross_modality_conv(net.conv1, in_channels))
        else:
            net.features[0] = cross_modality_conv(net.features[0], in_channels)
    return net
