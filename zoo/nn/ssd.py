"""SSD on a VGG16 trunk with fc6 / fc7 reduced (Liu et al., ECCV 2016), as ssd.pytorch, ROAD (Singh et al., ICCV
2017) and Two-in-One (Zhao & Snoek, CVPR 2019) build it for action detection.

The layer list follows ssd.pytorch's ``vgg()`` / ``add_extras()`` index for index (``vgg.31`` is conv6, the 3 x 3
dilation-6 fc6, ``vgg.33`` conv7), so the published ``vgg16_reducedfc`` state dict loads as it is. Default boxes
come from torchvision's ``DefaultBoxGenerator``, which gives ssd.pytorch's ``PriorBox`` when each layer's max size is
the next layer's min size (true of SSD300's ``v2`` config; checked, else a ValueError) and, with ``clip``, the
centres are clipped too (torchvision clips only the sizes: the 10 x 10 map's last centres would be 1.013).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torchvision.models.detection.anchor_utils import DefaultBoxGenerator
from torchvision.models.detection.image_list import ImageList

from zoo.nn.backbones import IMAGENET_MEAN, IMAGENET_STD, load_weights

# ssd.pytorch's base['300']: channels, "M" max pool, "C" max pool with ceil_mode (75 -> 38)
VGG16_LAYERS: tuple[int | str, ...] = (64, 64, "M", 128, 128, "M", 256, 256, 256, "C", 512, 512, 512, "M",
                                       512, 512, 512)
# ssd.pytorch's extras['300']: (1x1 channels, 3x3 channels, 3x3 stride, 3x3 padding) per pair: conv8 .. conv11
SSD300_EXTRAS: tuple[tuple[int, int, int, int], ...] = ((256, 512, 2, 1), (128, 256, 2, 1), (128, 256, 1, 0),
                                                        (128, 256, 1, 0))
CAFFE_MEAN_RGB = (123.0, 117.0, 104.0)  # ssd.pytorch subtracts (104, 117, 123) from BGR, then flips to RGB


@dataclass(frozen=True)
class PriorSpec:
    """Default boxes (ssd.pytorch ``data/config.py``): one entry per source map; sizes in input pixels."""

    image_size: int
    feature_maps: tuple[int, ...]
    steps: tuple[float, ...]
    min_sizes: tuple[float, ...]
    max_sizes: tuple[float, ...]
    aspect_ratios: tuple[tuple[int, ...], ...]
    variances: tuple[float, float] = (0.1, 0.2)
    clip: bool = True

    @property
    def boxes_per_location(self) -> list[int]:
        return [2 + 2 * len(r) for r in self.aspect_ratios]


# ROAD / Two-in-One ``v2``: 38^2*4 + 19^2*6 + 10^2*6 + 5^2*6 + 3^2*4 + 1^2*4 = 8,732 priors
SSD300_PRIORS = PriorSpec(300, (38, 19, 10, 5, 3, 1), (8, 16, 32, 64, 100, 300), (30, 60, 111, 162, 213, 264),
                          (60, 111, 162, 213, 264, 315), ((2,), (2, 3), (2, 3), (2, 3), (2,), (2,)))


def prior_boxes(spec: PriorSpec) -> torch.Tensor:
    """The (P, 4) default boxes, ``cx, cy, w, h`` relative to the image, in ssd.pytorch's order (map, row, column,
    box: min size, sqrt(min*max), then each aspect ratio r as (w, h) = s(sqrt r, 1/sqrt r) and its transpose)."""
    if any(a != b for a, b in zip(spec.max_sizes[:-1], spec.min_sizes[1:])):
        raise ValueError(f"max_sizes {spec.max_sizes} must be the next layer's min_sizes {spec.min_sizes}")
    s = spec.image_size
    scales = [m / s for m in spec.min_sizes] + [spec.max_sizes[-1] / s]
    gen = DefaultBoxGenerator([list(r) for r in spec.aspect_ratios], scales=scales, steps=list(spec.steps),
                              clip=spec.clip)
    images = ImageList(torch.empty(1, 3, s, s, dtype=torch.float64), [(s, s)])
    maps = [torch.empty(1, 0, f, f, dtype=torch.float64) for f in spec.feature_maps]
    xyxy = gen(images, maps)[0] / s
    boxes = torchvision.ops.box_convert(xyxy, "xyxy", "cxcywh")
    return (boxes.clamp(0, 1) if spec.clip else boxes).float()


class L2Norm(nn.Module):
    """Channel-wise L2 normalisation with a learned per-channel scale, initialised to ``scale`` (20 on conv4_3)."""

    def __init__(self, channels: int, scale: float = 20.0, eps: float = 1e-10) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.full((channels,), float(scale)))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x / (x.pow(2).sum(1, keepdim=True).sqrt() + self.eps) * self.weight.view(1, -1, 1, 1)


def vgg_reduced_layers(layers: Sequence[int | str], fc_channels: int = 1024, in_channels: int = 3,
                       batch_norm: bool = False) -> tuple[list[nn.Module], dict[str, int]]:
    """ssd.pytorch's ``vgg()``: the conv layers of ``layers`` (each with BatchNorm when ``batch_norm``, as its
    option) then pool5 (3x3, stride 1), conv6 (3x3, dilation 6) and conv7 (1x1), each conv followed by an in-place
    ReLU; with the index of each named ReLU (``conv2_1`` -> 6, ``conv4_3`` -> 22, ``fc7`` -> 34 for VGG16) and
    ``source`` (the ReLU before the last pool)."""
    modules: list[nn.Module] = []
    names: dict[str, int] = {}
    block, index, c = 1, 1, in_channels
    for v in layers:
        if v in ("M", "C"):
            names["source"] = len(modules) - 1
            modules.append(nn.MaxPool2d(2, 2, ceil_mode=v == "C"))
            block, index = block + 1, 1
            continue
        modules += [nn.Conv2d(c, int(v), 3, padding=1), *([nn.BatchNorm2d(int(v))] if batch_norm else []),
                    nn.ReLU(inplace=True)]
        names[f"conv{block}_{index}"] = len(modules) - 1
        c, index = int(v), index + 1
    modules += [nn.MaxPool2d(3, 1, 1), nn.Conv2d(c, fc_channels, 3, padding=6, dilation=6), nn.ReLU(inplace=True),
                nn.Conv2d(fc_channels, fc_channels, 1), nn.ReLU(inplace=True)]
    names["fc6"], names["fc7"] = len(modules) - 3, len(modules) - 1
    return modules, names


class SSD(nn.Module):
    """SSD: the reduced VGG trunk, L2Norm on its ``source`` map (conv4_3), fc7 and the extras as source maps, and
    per map a 3x3 loc head (4 k) and conf head (C k). ``forward(x, modulate)`` gives ``loc`` (B, P, 4) offsets and
    ``conf`` (B, P, C) logits; ``modulate`` (a function of the feature map) is applied after the ReLU named
    ``modulate_at`` (Two-in-One's motion modulation, Sec. 3.2)."""

    def __init__(self, num_classes: int, priors: PriorSpec = SSD300_PRIORS,
                 layers: Sequence[int | str] = VGG16_LAYERS, fc_channels: int = 1024,
                 extras: Sequence[tuple[int, int, int, int]] = SSD300_EXTRAS, in_channels: int = 3,
                 modulate_at: str | None = None, l2norm_scale: float = 20.0, batch_norm: bool = False) -> None:
        super().__init__()
        self.num_classes, self.spec = num_classes, priors
        vgg, self.layer_index = vgg_reduced_layers(layers, fc_channels, in_channels, batch_norm)
        self.vgg = nn.ModuleList(vgg)
        if modulate_at is not None and not (modulate_at in self.layer_index and modulate_at.startswith("conv")):
            known = ", ".join(k for k in self.layer_index if k.startswith("conv"))
            raise ValueError(f"modulate_at must name a conv layer ({known}), not {modulate_at!r}")
        self.modulate_index = self.layer_index.get(modulate_at, -1) if modulate_at else -1
        self.source_index = self.layer_index["source"]
        source_channels = [self.channels_at("source"), fc_channels]
        self.L2Norm = L2Norm(source_channels[0], l2norm_scale)
        ex: list[nn.Module] = []
        c = fc_channels
        for mid, out, stride, pad in extras:
            ex += [nn.Conv2d(c, mid, 1), nn.Conv2d(mid, out, 3, stride=stride, padding=pad)]
            source_channels.append(out)
            c = out
        self.extras = nn.ModuleList(ex)
        if len(source_channels) != len(priors.feature_maps):
            raise ValueError(f"{len(source_channels)} source maps but {len(priors.feature_maps)} prior layers")
        k = priors.boxes_per_location
        self.loc = nn.ModuleList(nn.Conv2d(ch, n * 4, 3, padding=1) for ch, n in zip(source_channels, k))
        self.conf = nn.ModuleList(nn.Conv2d(ch, n * num_classes, 3, padding=1) for ch, n in zip(source_channels, k))
        self.register_buffer("priors", prior_boxes(priors), persistent=False)

    def channels_at(self, name: str) -> int:
        """Output channels of the ReLU named ``name``."""
        convs = [m for m in self.vgg[:self.layer_index[name]] if isinstance(m, nn.Conv2d)]
        return convs[-1].out_channels

    def init_new_layers(self) -> None:
        """ROAD / Two-in-One ``weights_init``: xavier-uniform weights and zero biases on extras and heads."""
        for m in [*self.extras, *self.loc, *self.conf]:
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor, modulate: Callable[[torch.Tensor], torch.Tensor] | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        sources = []
        for k, layer in enumerate(self.vgg):
            x = layer(x)
            if k == self.modulate_index and modulate is not None:
                x = modulate(x)
            if k == self.source_index:
                sources.append(self.L2Norm(x))
        sources.append(x)
        for k, layer in enumerate(self.extras):
            x = F.relu(layer(x), inplace=True)
            if k % 2 == 1:
                sources.append(x)
        b = x.shape[0]
        loc = torch.cat([h(s).permute(0, 2, 3, 1).reshape(b, -1) for h, s in zip(self.loc, sources)], 1)
        conf = torch.cat([h(s).permute(0, 2, 3, 1).reshape(b, -1) for h, s in zip(self.conf, sources)], 1)
        return loc.view(b, -1, 4), conf.view(b, -1, self.num_classes)


def vgg16_reducedfc_state(vgg16_state: dict[str, torch.Tensor], fold_imagenet_norm: bool = True
                          ) -> dict[str, torch.Tensor]:
    """The ``vgg16_reducedfc`` weights (SSD paper Sec. 3: fc6 / fc7 subsampled into conv6 / conv7) from a
    torchvision VGG16 state dict, keyed as ``SSD.vgg``: conv6 keeps every 4th of fc6's 4,096 filters and every
    3rd tap of its 7x7 kernel (3x3 at dilation 6), conv7 every 4th of fc7's rows and columns.

    ``fold_imagenet_norm``: torchvision's weights read (x / 255 - mean) / std; conv1_1 is rescaled so that they read
    the Caffe-style input the SSD takes (0..255 RGB minus ``CAFFE_MEAN_RGB``); exact except on the zero-padded border.
    (ssd.pytorch's own ``vgg16_reducedfc.pth`` is Caffe's BGR model fed RGB; these weights read the colours right.)
    """
    conv_keys = sorted({k.rsplit(".", 1)[0] for k in vgg16_state if k.startswith("features.")},
                       key=lambda k: int(k.split(".")[1]))
    out: dict[str, torch.Tensor] = {}
    for key in conv_keys:
        out[f"vgg.{key.split('.')[1]}.weight"] = vgg16_state[f"{key}.weight"].clone()
        out[f"vgg.{key.split('.')[1]}.bias"] = vgg16_state[f"{key}.bias"].clone()
    fc6_w = vgg16_state["classifier.0.weight"].view(4096, 512, 7, 7)
    out["vgg.31.weight"] = fc6_w[::4, :, ::3, ::3].contiguous()
    out["vgg.31.bias"] = vgg16_state["classifier.0.bias"][::4].clone()
    out["vgg.33.weight"] = vgg16_state["classifier.3.weight"][::4, ::4].reshape(1024, 1024, 1, 1).contiguous()
    out["vgg.33.bias"] = vgg16_state["classifier.3.bias"][::4].clone()
    if fold_imagenet_norm:
        w, b = out["vgg.0.weight"], out["vgg.0.bias"]
        std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        caffe = torch.tensor(CAFFE_MEAN_RGB).view(1, 3, 1, 1)
        scaled = w / (255 * std)
        out["vgg.0.weight"] = scaled
        out["vgg.0.bias"] = b + (scaled * caffe).sum((1, 2, 3)) - (w * mean / std).sum((1, 2, 3))
    return out


def load_vgg16_reducedfc(model: SSD) -> None:
    """Initialise ``model.vgg`` from torchvision's ImageNet VGG16 (``IMAGENET1K_V1``; the zoo's offline error when
    it is neither cached nor downloadable), reduced as ``vgg16_reducedfc_state``."""
    state = vgg16_reducedfc_state(load_weights(torchvision.models.VGG16_Weights.IMAGENET1K_V1))
    own = {k[len("vgg."):]: v for k, v in state.items()}
    model.vgg.load_state_dict(own)
