"""How a network normalises its RGB input pixels: torchvision's ImageNet mean and std (the default, what
torchvision's ImageNet weights expect), or Caffe's 0-255 pixels minus a mean pixel, what released Caffe weights
expect (their conv1 converted from BGR to RGB input channels by ``zoo convert caffe``)."""

from __future__ import annotations

import torch

from zoo.nn.backbones import IMAGENET_MEAN, IMAGENET_STD

PREPROCESSING = ("torchvision", "caffe")
# RGB order. VGG16's mean pixel as the language tracker subtracts it (track_model / lang_seg_model ``channel_mean``)
CAFFE_VGG_MEAN = (123.68, 116.779, 103.939)
# Caffe's ilsvrc_2012_mean.npy averaged over its pixels, as SINT's run_SINT_OTB.py subtracts it (BGR 104.007,
# 116.669, 122.679)
CAFFE_ILSVRC_MEAN = (122.6789143406786, 116.66876761696767, 104.0069879317889)


def input_normalization(preprocessing: str, caffe_mean: tuple[float, float, float] = CAFFE_VGG_MEAN
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(mean, std)``, each (1, 3, 1, 1), for ``(pixels / 255 - mean) / std`` on RGB pixels in 0-255:
    ``"torchvision"``: ImageNet's mean and std; ``"caffe"``: the pixels in 0-255 less ``caffe_mean`` (RGB)."""
    if preprocessing == "torchvision":
        mean, std = IMAGENET_MEAN, IMAGENET_STD
    elif preprocessing == "caffe":
        mean, std = tuple(m / 255 for m in caffe_mean), (1 / 255,) * 3
    else:
        raise ValueError(f"preprocessing must be one of {', '.join(PREPROCESSING)}, not {preprocessing!r}")
    return torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)
