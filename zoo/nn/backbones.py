"""ImageNet backbones through torchvision's weights API, with the zoo's offline behaviour.

Weights are looked for in torch's hub cache first (``$TORCH_HOME/hub/checkpoints/<file>``); when absent
they are downloaded, and a failure (no network, ``ZOO_OFFLINE=1``) is one clear error naming the URL,
the path where the file can be placed by hand and the hash prefix torchvision checks.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torchvision
from torch import nn
from torchvision.models import WeightsEnum

from zoo.errors import DownloadError
from zoo.hub import load_checkpoint_file

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def weights_path(weights: WeightsEnum) -> Path:
    """Where torchvision keeps (or expects) the file of ``weights``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights.url)


def load_weights(weights: WeightsEnum) -> dict[str, torch.Tensor]:
    """The state dict of ``weights``: from the hub cache, else downloaded (hash prefix checked)."""
    path = weights_path(weights)
    if path.is_file():
        return load_checkpoint_file(path)
    hint = f"place the file by hand at {path} (its name carries the sha256 prefix torchvision checks)"
    if os.environ.get("ZOO_OFFLINE", "0") not in ("", "0"):
        raise DownloadError(f"{weights} is not cached and ZOO_OFFLINE is set: download {weights.url} and {hint}")
    try:
        return weights.get_state_dict(progress=False, check_hash=True)
    except (OSError, RuntimeError) as e:
        reason = getattr(e, "reason", None) or str(e).splitlines()[0]
        raise DownloadError(f"could not download {weights.url} ({reason}); {hint}") from None


def resnet(name: str = "resnet18", pretrained: bool = False) -> nn.Module:
    """A torchvision ResNet without its classifier (``fc`` is Identity); ImageNet weights if ``pretrained``."""
    builder = getattr(torchvision.models, name)
    model = builder(weights=None)
    if pretrained:
        enum = torchvision.models.get_model_weights(name).DEFAULT
        model.load_state_dict(load_weights(enum))
    model.fc = nn.Identity()
    return model


def cross_modality_conv(conv: nn.Conv2d, in_channels: int) -> nn.Conv2d:
    """Cross-modality initialisation (Wang et al. 2016, Sec. 3.2): a copy of ``conv`` taking ``in_channels`` inputs
    whose filters are ``conv``'s averaged over its input (RGB) channels, replicated ``in_channels`` times; the bias
    is kept."""
    new = nn.Conv2d(in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                    bias=conv.bias is not None)
    with torch.no_grad():
        new.weight.copy_(conv.weight.mean(1, keepdim=True).expand(-1, in_channels, -1, -1))
        if conv.bias is not None:
            new.bias.copy_(conv.bias)
    return new
