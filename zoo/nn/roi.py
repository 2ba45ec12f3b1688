"""RoI heads: pooled region features from a trunk's feature maps (torchvision ``roi_pool`` / ``roi_align``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import roi_align, roi_pool


def pool_regions(features: torch.Tensor, rois: torch.Tensor, size: int, scale: float, mode: str) -> torch.Tensor:
    """(K, C, size, size) features of ``rois`` (K, 5: batch index, x1, y1, x2, y2 in input pixels).

    Pooling runs in float32 (box coordinates would lose pixels in bf16), whatever the trunk's precision.
    """
    features, rois = features.float(), rois.float()
    if mode == "pool":
        return roi_pool(features, rois, (size, size), scale)
    if mode == "align":
        return roi_align(features, rois, (size, size), scale, sampling_ratio=2, aligned=True)
    raise ValueError(f"roi mode must be 'pool' or 'align', not {mode!r}")


class SiameseRoIHead(nn.Module):
    """SINT's instance descriptor (Tao et al., CVPR 2016, Sec. 3.2): RoI max pooling 7x7 on conv4_3 and on
    conv5_3, fc6 on the pooled conv5_3, each L2-normalised, concatenated and normalised again. ``fc6_relu=False``:
    fc6 linear, as the released ``SINT_deploy.prototxt`` has it (no ReLU before its L2 normalisation)."""

    def __init__(self, fc6: nn.Module, pool_size: int = 7, spatial_scale: float = 0.25, mode: str = "pool",
                 fc6_relu: bool = True) -> None:
        super().__init__()
        self.fc6 = fc6
        self.pool_size, self.spatial_scale, self.mode, self.fc6_relu = pool_size, spatial_scale, mode, fc6_relu

    def parts(self, c4: torch.Tensor, c5: torch.Tensor, rois: torch.Tensor) -> list[torch.Tensor]:
        """The descriptor's three parts before normalisation: pooled conv4_3, pooled conv5_3 (K, C * 7 * 7) and fc6."""
        p4 = pool_regions(c4, rois, self.pool_size, self.spatial_scale, self.mode).flatten(1)
        p5 = pool_regions(c5, rois, self.pool_size, self.spatial_scale, self.mode).flatten(1)
        f6 = self.fc6(p5) if self.fc6_relu else self.fc6[0](p5)  # fc6 is (Linear, ReLU)
        return [p4, p5, f6]

    def forward(self, c4: torch.Tensor, c5: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
        parts = [F.normalize(p, dim=1) for p in self.parts(c4, c5, rois)]
        return F.normalize(torch.cat(parts, 1), dim=1)

    def conv4_features(self, c4: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
        """Pooled conv4_3 features (K, C * 7 * 7): the input of SINT's box regressors."""
        return pool_regions(c4, rois, self.pool_size, self.spatial_scale, self.mode).flatten(1)


def descriptor_scores(parts: list[torch.Tensor], queries: torch.Tensor, counts: list[int],
                      eps: float = 1e-12) -> torch.Tensor:
    """Inner products (K,) of the descriptors ``SiameseRoIHead`` would make of ``parts`` with their queries (queries
    (B, D): whole descriptors; the first ``counts[0]`` rows belong to query 0, and so on), without building the
    (K, D) descriptors: per part, each row's product with its query summed, scaled by the norms that ``F.normalize``
    (eps included) divides by. Products and sums, not a matrix product: a row's score must not depend on its place
    (candidates pooled into the same bins tie exactly, and the first of them wins, alone or in lockstep)."""
    if len(counts) != len(queries) or sum(counts) != len(parts[0]):
        raise ValueError(f"{len(queries)} queries with {sum(counts)} rows in all; the parts have {len(parts[0])}")
    total, sq, start = 0, 0, 0
    even = len(set(counts)) == 1  # one broadcast product for all queries
    for p in parts:
        p = p.float()
        d = p.shape[1]
        q = queries[:, start : start + d].float()
        n = p.norm(dim=1)
        r = n.clamp_min(eps)  # F.normalize's divisor of this part
        if even:
            dots = (p.view(len(counts), counts[0], d) * q[:, None]).sum(-1).flatten()
        else:
            dots = torch.cat([(rows * q[k]).sum(1) for k, rows in enumerate(p.split(counts))])
        total = total + dots / r
        sq = sq + (n / r).square()  # the normalised part's squared norm (1, or 0 for a zero part)
        start += d
    if start != queries.shape[1]:
        raise ValueError(f"the parts have {start} features in all, the queries {queries.shape[1]}")
    return total / sq.sqrt().clamp_min(eps)
