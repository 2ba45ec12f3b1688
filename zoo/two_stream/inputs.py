"""The streams' inputs (Simonyan & Zisserman 2014): optical-flow stacking with mean flow subtraction (Sec. 3.1),
training crops, flips and RGB jittering and the test-time ten crops (Sec. 5), on tensors on the model's device.

A flow stack is ``(..., 2L, H, W)`` with channels ``x_1, y_1, x_2, y_2, ...`` (Eq. 1: channel ``2k-1`` holds the x
and ``2k`` the y displacement of field ``k``), in pixels; flipping it mirrors the fields and negates every x."""

from __future__ import annotations

import torch

from datamodules.eval_views import crop_boxes

TEST_CROPS = (1, 10)
# ImageNet's RGB principal components (eigenvalues and eigenvectors as columns, pixels in 0-1), as Krizhevsky et
# al.'s colour augmentation uses them (values of fb.resnet.torch)
PCA_EIGVAL = (0.2175, 0.0188, 0.0045)
PCA_EIGVEC = ((-0.5675, 0.7192, 0.4009), (-0.5808, -0.0045, -0.8140), (-0.5836, -0.6948, 0.4203))


def stack_flow(fields: torch.Tensor) -> torch.Tensor:
    """``(..., L, 2, H, W)`` displacement fields (x then y) -> ``(..., 2L, H, W)`` flow stack (Eq. 1)."""
    if fields.ndim < 4 or fields.shape[-3] != 2:
        raise ValueError(f"expected flow fields (..., L, 2, H, W), got shape {tuple(fields.shape)}")
    return fields.flatten(-4, -3)


def subtract_mean_flow(stack: torch.Tensor) -> torch.Tensor:
    """Mean flow subtraction (Sec. 3.1): from each displacement field its mean vector over the field's pixels (a
    flow stack's channels are x and y of the fields: each channel less its own mean)."""
    return stack - stack.mean(dim=(-2, -1), keepdim=True)


def hflip(x: torch.Tensor, flow: bool = False) -> torch.Tensor:
    """Mirror ``(..., C, H, W)`` left-right; a flow stack (``flow``) also has its x channels (0, 2, 4...) negated."""
    x = x.flip(-1)
    if flow:
        sign = torch.ones(x.shape[-3], dtype=x.dtype, device=x.device)
        sign[0::2] = -1
        x = x * sign.view(-1, 1, 1)
    return x


def crop(x: torch.Tensor, top: int, left: int, size: int) -> torch.Tensor:
    return x[..., top:top + size, left:left + size]


def check_size(x: torch.Tensor, size: int) -> None:
    if min(x.shape[-2:]) < size:
        raise ValueError(f"frames of {tuple(x.shape[-2:])} pixels are smaller than the {size} x {size} crop")


def ten_crops(x: torch.Tensor, size: int, flow: bool = False) -> torch.Tensor:
    """``(N, C, H, W)`` -> ``(N, 10, C, size, size)``: the four corners and the centre (top-left, top-right,
    bottom-left, bottom-right, centre), then the same five flipped (Sec. 5, after Krizhevsky et al.)."""
    check_size(x, size)
    boxes = crop_boxes("10", tuple(x.shape[-2:]), (size, size))  # the benchmark's 10 crops, in the same order
    return torch.stack([hflip(crop(x, t, left, size), flow) if flip else crop(x, t, left, size)
                        for t, left, flip in boxes], dim=1)


def centre_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    """``(N, C, H, W)`` -> ``(N, 1, C, size, size)``, the centre crop."""
    check_size(x, size)
    (top, left, _), = crop_boxes("centre", tuple(x.shape[-2:]), (size, size))
    return crop(x, top, left, size)[:, None]


def eval_crops(x: torch.Tensor, size: int, crops: int, flow: bool = False) -> torch.Tensor:
    """``(N, C, H, W)`` -> ``(N, crops, C, size, size)`` for ``crops`` 10 (the paper) or 1 (centre)."""
    if crops not in TEST_CROPS:
        raise ValueError(f"test_crops must be one of {TEST_CROPS}, not {crops}")
    return ten_crops(x, size, flow) if crops == 10 else centre_crop(x, size)


def random_crops(x: torch.Tensor, size: int, flow: bool = False) -> torch.Tensor:
    """Training (Sec. 5): from each of ``(N, C, H, W)`` one ``size`` x ``size`` crop anywhere in the frame, flipped
    with probability 1/2 (torch's generator: seeded runs repeat)."""
    check_size(x, size)
    h, w = x.shape[-2:]
    tops = torch.randint(h - size + 1, (len(x),)).tolist()
    lefts = torch.randint(w - size + 1, (len(x),)).tolist()
    flips = (torch.rand(len(x)) < 0.5).tolist()
    out = [crop(x[i], t, left, size) for i, (t, left) in enumerate(zip(tops, lefts))]
    return torch.stack([hflip(c, flow) if f else c for c, f in zip(out, flips)])


def rgb_jitter(x: torch.Tensor, std: float) -> torch.Tensor:
    """Krizhevsky et al.'s colour augmentation: to every pixel of each ``(N, 3, H, W)`` image in 0-1 add
    ``sum_i a_i lambda_i p_i`` over ImageNet's RGB principal components, ``a_i ~ N(0, std)`` drawn per image."""
    if std <= 0:
        return x
    eigval = torch.tensor(PCA_EIGVAL, dtype=x.dtype, device=x.device)
    eigvec = torch.tensor(PCA_EIGVEC, dtype=x.dtype, device=x.device)
    alpha = torch.randn(len(x), 3).to(x) * std
    shift = (alpha * eigval) @ eigvec.T  # (N, 3): eigvec columns weighted by alpha_i lambda_i
    return x + shift[:, :, None, None]
