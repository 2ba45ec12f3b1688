"""TV-L1 optical flow in PyTorch (Zach, Pock & Bischof, DAGM 2007), batched and on any device: the flow of the
two-stream networks computed on the GPU when no flow folder is given.

The algorithm and every default follow OpenCV's ``DualTVL1OpticalFlow`` (opencv_contrib ``optflow/src/tvl1flow.cpp``,
after Sanchez, Meinhardt-Llopis & Facciolo, IPOL 2013), the TV-L1 that TSN's and I3D's flow came from. Grey images in
0-255; a pyramid of up to ``scales`` levels, each ``scale_step`` the size of the one above (bilinear as
``cv2.resize``, none below 16 pixels); at each level, coarse to fine, ``warps`` warpings of the second image and its
gradient (bicubic, zero outside, as ``cv2.remap``), each followed by up to ``outer_iterations`` x
``inner_iterations`` primal-dual iterations (thresholding step ``lambda * theta``, dual step ``tau / theta``) that
stop once the summed squared update of the flow falls to ``epsilon**2`` per pixel, a ``median_filtering`` x
``median_filtering`` median of the flow before each outer iteration; the flow is zoomed by ``1 / scale_step`` to
the next level. Each pair of a batch stops on its own, as OpenCV runs it alone. The median is selected by a
pruned sorting network (the same value as a sort, in elementwise minima and maxima). Unlike OpenCV's own CUDA
TV-L1, which has no median filtering and one flat iteration loop, this is the CPU algorithm on the GPU.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

MIN_SIZE = 16  # pixels: no pyramid level smaller than this (tvl1flow.cpp)
CUBIC_A = -0.75  # OpenCV's bicubic kernel
TINY = float(torch.finfo(torch.float32).eps)  # tvl1flow.cpp: no thresholding step where |grad I|^2 is below it
# cv2.COLOR_RGB2GRAY on 8-bit images: fixed point with 14 fractional bits, rounded
GREY_WEIGHTS = (4899, 9617, 1868)
GREY_SHIFT = 14


@dataclass(frozen=True)
class TVL1:
    """The settings of TV-L1 flow; the defaults are ``cv2.optflow.DualTVL1OpticalFlow_create()``'s.

    ``check_every``: how many iterations run between asking whether any pair of the batch still iterates (a
    host synchronisation on the GPU; the result does not depend on it). ``compile``: each iteration and each median
    through ``torch.compile`` (the same fields, fewer kernels)."""

    tau: float = 0.25
    lambda_: float = 0.15
    theta: float = 0.3
    scales: int = 5
    warps: int = 5
    epsilon: float = 0.01
    inner_iterations: int = 30
    outer_iterations: int = 10
    scale_step: float = 0.8
    median_filtering: int = 5
    check_every: int = 1
    compile: bool = False

    def __post_init__(self) -> None:
        if not 0 < self.scale_step < 1:
            raise ValueError(f"scale_step must be between 0 and 1, not {self.scale_step}")
        for name in ("scales", "warps", "inner_iterations", "outer_iterations", "check_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, not {getattr(self, name)}")
        if self.median_filtering > 1 and self.median_filtering % 2 == 0:
            raise ValueError(f"median_filtering must be odd, not {self.median_filtering}")


def grey(frames: torch.Tensor) -> torch.Tensor:
    """RGB ``(..., 3, H, W)`` -> float32 grey ``(..., H, W)`` in 0-255: uint8 exactly as ``cv2.COLOR_RGB2GRAY``
    (BT.601 weights in 14-bit fixed point, rounded), float as the same weighted sum."""
    if frames.ndim < 3 or frames.shape[-3] != 3:
        raise ValueError(f"expected RGB frames (..., 3, H, W), got shape {tuple(frames.shape)}")
    r, g, b = frames.unbind(-3)
    if frames.dtype == torch.uint8:
        wr, wg, wb = GREY_WEIGHTS
        value = r.int() * wr + g.int() * wg + b.int() * wb + (1 << (GREY_SHIFT - 1))
        return (value >> GREY_SHIFT).float()
    wr, wg, wb = (w / (1 << GREY_SHIFT) for w in GREY_WEIGHTS)
    return (r * wr + g * wg + b * wb).float()


def resize_by(x: torch.Tensor, step: float) -> torch.Tensor:
    """``(N, H, W)`` -> ``(N, round(H * step), round(W * step))`` as ``cv2.resize(x, None, fx=step, fy=step)``
    bilinear: source position ``(d + 0.5) / step - 0.5``, clamped at the border."""
    h, w = x.shape[-2:]
    out_h, out_w = round(h * step), round(w * step)
    # float32 whatever the default dtype (Lightning's 16-true / bf16-true precision changes it)
    ys = ((torch.arange(out_h, device=x.device, dtype=torch.float32) + 0.5) / step - 0.5) * (2 / h) + (1 / h - 1)
    xs = ((torch.arange(out_w, device=x.device, dtype=torch.float32) + 0.5) / step - 0.5) * (2 / w) + (1 / w - 1)
    grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1).to(x.dtype)
    grid = grid.expand(len(x), out_h, out_w, 2)
    return F.grid_sample(x[:, None], grid, mode="bilinear", padding_mode="border", align_corners=False)[:, 0]


def centred_gradient(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Central differences of ``(N, H, W)``, one-sided (halved) at the border, as tvl1flow.cpp's
    ``centeredGradient``."""
    p = F.pad(x[:, None], (1, 1, 1, 1), mode="replicate")[:, 0]
    return 0.5 * (p[:, 1:-1, 2:] - p[:, 1:-1, :-2]), 0.5 * (p[:, 2:, 1:-1] - p[:, :-2, 1:-1])


def forward_gradient(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward differences of ``(N, H, W)``, zero in the last column (x) and row (y)."""
    return F.pad(x[..., 1:] - x[..., :-1], (0, 1)), F.pad(x[..., 1:, :] - x[..., :-1, :], (0, 0, 0, 1))


def divergence(v1: torch.Tensor, v2: torch.Tensor) -> torch.Tensor:
    """Backward-difference divergence of the field ``(v1, v2)``, the adjoint of :func:`forward_gradient` (zero
    before the first column and row)."""
    return v1 - F.pad(v1[..., :-1], (1, 0)) + v2 - F.pad(v2[..., :-1, :], (0, 0, 1, 0))


@functools.cache
def median_network(n: int) -> tuple[tuple[int, int, bool, bool], ...]:
    """The comparators ``(i, j, keep_min, keep_max)`` that put the median of ``n`` (odd) values at position ``n // 2``:
    Batcher's odd-even merge sort on the next power of two, without the comparators that touch the padding (which
    would only ever hold +inf) or that the median does not depend on; ``keep_min`` / ``keep_max``: whether position
    ``i`` / ``j`` is read later."""
    size = 1 << (n - 1).bit_length()
    pairs = []
    p = 1
    while p < size:
        k = p
        while k >= 1:
            for j in range(k % p, size - k, 2 * k):
                for i in range(min(k, size - j - k)):
                    if (i + j) // (2 * p) == (i + j + k) // (2 * p) and i + j + k < n:
                        pairs.append((i + j, i + j + k))
            k //= 2
        p *= 2
    needed, kept = {n // 2}, []
    for i, j in reversed(pairs):
        if i in needed or j in needed:
            kept.append((i, j, i in needed, j in needed))
            needed |= {i, j}
    return tuple(reversed(kept))


def median_of(values: list[torch.Tensor]) -> torch.Tensor:
    """The elementwise median of an odd number of tensors, by :func:`median_network` (elementwise minima and maxima
    only, so ``torch.compile`` fuses it into one kernel)."""
    values = list(values)
    for i, j, keep_min, keep_max in median_network(len(values)):
        a, b = values[i], values[j]
        if keep_min:
            values[i] = torch.minimum(a, b)
        if keep_max:
            values[j] = torch.maximum(a, b)
    return values[len(values) // 2]


def median(x: torch.Tensor, size: int) -> torch.Tensor:
    """The ``size`` x ``size`` median of ``(N, H, W)``, the border replicated (``cv2.medianBlur`` on floats)."""
    h, w = x.shape[-2:]
    r = size // 2
    padded = F.pad(x[:, None], (r, r, r, r), mode="replicate")[:, 0]
    return median_of([padded[:, dy:dy + h, dx:dx + w] for dy in range(size) for dx in range(size)])


def cubic_weights(t: torch.Tensor, a: float = CUBIC_A) -> tuple[torch.Tensor, ...]:
    """The four bicubic weights of the taps at offsets -1, 0, 1, 2 for fractions ``t`` in [0, 1) (OpenCV's
    ``interpolateCubic``: exactly 0, 1, 0, 0 at ``t = 0``)."""
    w0 = ((a * (t + 1) - 5 * a) * (t + 1) + 8 * a) * (t + 1) - 4 * a
    w1 = ((a + 2) * t - (a + 3)) * t * t + 1
    w2 = ((a + 2) * (1 - t) - (a + 3)) * (1 - t) * (1 - t) + 1
    return w0, w1, w2, 1 - w0 - w1 - w2


def warp(images: torch.Tensor, u1: torch.Tensor, u2: torch.Tensor) -> torch.Tensor:
    """``(N, C, H, W)`` sampled at ``(x + u1, y + u2)``: bicubic, taps outside the image zero (``cv2.remap`` with
    ``INTER_CUBIC`` and its constant border); exact where the flow is whole pixels. At the exact fraction, as OpenCV
    5.0's ``remap`` samples float images with float maps (checked: not rounded to 1/32 pixel, ``INTER_TAB_SIZE``;
    rounding made the flow of tests/reference's cricket pair twice as far from OpenCV's)."""
    n, c, h, w = images.shape
    xs = torch.arange(w, device=images.device, dtype=u1.dtype).view(1, 1, w) + u1
    ys = torch.arange(h, device=images.device, dtype=u1.dtype).view(1, h, 1) + u2
    x0, y0 = xs.floor(), ys.floor()
    wx, wy = cubic_weights(xs - x0), cubic_weights(ys - y0)
    x0, y0 = x0.long(), y0.long()
    flat = images.reshape(n, c, h * w)
    out = torch.zeros_like(images)
    for j in range(4):
        row_index = y0 + (j - 1)
        row_weight = wy[j] * ((row_index >= 0) & (row_index < h))
        row_index = row_index.clamp(0, h - 1) * w
        for i in range(4):
            col_index = x0 + (i - 1)
            weight = row_weight * wx[i] * ((col_index >= 0) & (col_index < w))
            index = (row_index + col_index.clamp(0, w - 1)).view(n, 1, h * w).expand(n, c, h * w)
            out += flat.gather(2, index).view(n, c, h, w) * weight[:, None]
    return out


def primal_dual_step(u1: torch.Tensor, u2: torch.Tensor, p: torch.Tensor, i1wx: torch.Tensor, i1wy: torch.Tensor,
                     grad: torch.Tensor, rho_c: torch.Tensor, active: torch.Tensor, l_t: float, theta: float,
                     taut: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One inner iteration for the pairs where ``active`` (N, 1, 1): the thresholding step (``estimateV``), the
    primal step (``estimateU``) and the dual step (``estimateDualVariables``) of tvl1flow.cpp. ``p``: the dual
    variables (4, N, H, W), p11, p12, p21, p22. Returns the new ``u1``, ``u2``, ``p`` and each pair's summed squared
    update of the flow (N,)."""
    rho = rho_c + i1wx * u1 + i1wy * u2
    fi = torch.where(grad > TINY, -rho / grad.clamp_min(TINY), torch.zeros_like(rho))
    step = torch.where(rho < -l_t * grad, l_t, torch.where(rho > l_t * grad, -l_t, fi))
    new1 = u1 + step * i1wx + theta * divergence(p[0], p[1])
    new2 = u2 + step * i1wy + theta * divergence(p[2], p[3])
    error = ((new1 - u1) ** 2 + (new2 - u2) ** 2).sum(dim=(1, 2))
    u1, u2 = torch.where(active, new1, u1), torch.where(active, new2, u2)
    u1x, u1y = forward_gradient(u1)
    u2x, u2y = forward_gradient(u2)
    ng1 = 1 + taut * torch.hypot(u1x, u1y)
    ng2 = 1 + taut * torch.hypot(u2x, u2y)
    new_p = torch.stack([(p[0] + taut * u1x) / ng1, (p[1] + taut * u1y) / ng1,
                         (p[2] + taut * u2x) / ng2, (p[3] + taut * u2y) / ng2])
    return u1, u2, torch.where(active, new_p, p), error


@functools.cache
def compiled(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` through ``torch.compile`` (its elementwise work fused into a few kernels), made once."""
    return torch.compile(fn)


def _one_scale(i0: torch.Tensor, i1: torch.Tensor, u1: torch.Tensor, u2: torch.Tensor, s: TVL1
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """The flow at one pyramid level (tvl1flow.cpp ``procOneScale``), from the initial ``u1``, ``u2``."""
    n, h, w = i0.shape
    scaled_epsilon = s.epsilon * s.epsilon * h * w
    l_t, taut = s.lambda_ * s.theta, s.tau / s.theta
    step, med = (compiled(primal_dual_step), compiled(median)) if s.compile else (primal_dual_step, median)
    i1x, i1y = centred_gradient(i1)
    images = torch.stack([i1, i1x, i1y], dim=1)
    p = torch.zeros((4, *i0.shape), dtype=i0.dtype, device=i0.device)
    for _ in range(s.warps):
        i1w, i1wx, i1wy = warp(images, u1, u2).unbind(1)
        grad = i1wx * i1wx + i1wy * i1wy
        rho_c = i1w - i1wx * u1 - i1wy * u2 - i0
        active = torch.ones(n, dtype=torch.bool, device=i0.device)
        count = 0
        for _ in range(s.outer_iterations):
            if not bool(active.any()):
                break
            if s.median_filtering > 1:
                a = active.view(n, 1, 1)
                u1 = torch.where(a, med(u1, s.median_filtering), u1)
                u2 = torch.where(a, med(u2, s.median_filtering), u2)
            for _ in range(s.inner_iterations):
                if count and count % s.check_every == 0 and not bool(active.any()):
                    break
                count += 1
                u1, u2, p, error = step(u1, u2, p, i1wx, i1wy, grad, rho_c, active.view(n, 1, 1), l_t, s.theta, taut)
                active = active & (error > scaled_epsilon)
    return u1, u2


@torch.no_grad()
def tvl1_flow(first: torch.Tensor, second: torch.Tensor, settings: TVL1 | None = None) -> torch.Tensor:
    """The TV-L1 flow from each image of ``first`` to the one of ``second``: ``(N, 3, H, W)`` RGB (uint8 as
    ``cv2.COLOR_RGB2GRAY``) or ``(N, H, W)`` grey in 0-255, on any device -> ``(N, 2, H, W)`` float32 pixels, x (right)
    then y (down), as ``DualTVL1OpticalFlow.calc`` gives for each pair of 8-bit images. Float frames are read as
    0-255 too (OpenCV's ``calc`` multiplies float images by 255, expecting 0-1: scale such frames first)."""
    s = settings or TVL1()
    if first.shape != second.shape:
        raise ValueError(f"frames of different shapes: {tuple(first.shape)} and {tuple(second.shape)}")
    i0 = grey(first) if first.ndim == 4 else first.float()
    i1 = grey(second) if second.ndim == 4 else second.float()
    if i0.ndim != 3:
        raise ValueError(f"expected (N, 3, H, W) RGB or (N, H, W) grey frames, got shape {tuple(first.shape)}")
    if min(i0.shape[-2:]) < 3:
        raise ValueError(f"TV-L1 needs frames of at least 3 x 3 pixels, got {tuple(i0.shape[-2:])}")
    with torch.autocast(i0.device.type, enabled=False):  # float32 throughout, inside a mixed-precision step too
        pyramid = [(i0, i1)]
        for _ in range(1, s.scales):
            a, b = resize_by(pyramid[-1][0], s.scale_step), resize_by(pyramid[-1][1], s.scale_step)
            if min(a.shape[-2:]) < MIN_SIZE:
                break
            pyramid.append((a, b))
        u1 = torch.zeros_like(pyramid[-1][0])
        u2 = torch.zeros_like(u1)
        for level in range(len(pyramid) - 1, -1, -1):
            u1, u2 = _one_scale(*pyramid[level], u1, u2, s)
            if level:
                size = pyramid[level - 1][0].shape[-2:]
                u1, u2 = (F.interpolate(u[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
                          / s.scale_step for u in (u1, u2))
        return torch.stack([u1, u2], dim=1)
