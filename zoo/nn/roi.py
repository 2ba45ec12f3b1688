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

    def forward(self, c4: torch.Tensor, c5: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
        p4 = pool_regions(c4, rois, self.pool_size, self.spatial_scale, self.mode).flatten(1)
        p5 = pool_regions(c5, rois, self.pool_size, self.spatial_scale, self.mode).flatten(1)
        f6 = self.fc6(p5) if self.fc6_relu else self.fc6[0](p5)  # fc6 is (Linear, ReLU)
        parts = [F.normalize(p, dim=1) for p in (p4, p5, f6)]
        return F.normalize(torch.cat(parts, 1), dim=1)

    def conv4_features(self, c4: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
        """Pooled conv4_3 features (K, C * 7 * 7): the input of SINT's box regressors."""
        return pool_regions(c4, rois, self.pool_size, self.spatial_scale, self.mode).flatten(1)
