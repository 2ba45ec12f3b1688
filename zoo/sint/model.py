"""SINT, the Siamese INstance search Tracker (Tao, Gavves, Smeulders, CVPR 2016).

Two branches with shared weights map a frame and boxes to instance descriptors (``SiameseRoIHead`` on a
stride-4 VGG16); training pulls descriptors of the same object together with a margin contrastive loss
(Sec. 3.3); tracking scores candidate boxes against the first-frame query (``zoo.sint.tracker``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from zoo.module import ZooModule, hparams_optimizer, weight_bias_groups
from zoo.nn.preprocessing import CAFFE_ILSVRC_MEAN, input_normalization
from zoo.nn.roi import SiameseRoIHead
from zoo.nn.vgg import StrideFourVGG16, TinyStrideFour
from zoo.registry import register_model


def contrastive_loss(d: torch.Tensor, y: torch.Tensor, margin: float = 1.0) -> torch.Tensor:
    """L = 1/2 y D^2 + 1/2 (1 - y) max(0, eps - D^2), averaged over pairs (Sec. 3.3, eps = margin)."""
    d2 = d.pow(2)
    return (0.5 * y * d2 + 0.5 * (1 - y) * (margin - d2).clamp(min=0)).mean()


class SINT(ZooModule):
    """SINT network and training module; ``tracker()`` gives the got10k-style tracker.

    Choice: frames are normalised with torchvision's ImageNet mean and std (the weights used), not the
    Caffe BGR mean of the released code; ``preprocessing="caffe"`` subtracts that mean from 0-255 pixels, as the
    authors' weights expect (``zoo convert caffe``). As ``SINT_train.prototxt``: fc6 is linear
    (``fc6_relu=False``) and biases learn at ``bias_lr_factor`` (2) x their layer's rate without weight decay.
    """

    def __init__(
        self,
        backbone: str = "vgg16",
        pretrained_backbone: bool = False,
        input_size: int = 512,
        roi_mode: str = "pool",
        width: int = 32,
        fc_dim: int = 256,
        margin: float = 1.0,
        optimizer: str = "sgd",
        lr: float = 1e-3,
        momentum: float = 0.9,
        weight_decay: float = 5e-4,
        slow_lr_factor: float = 0.01,
        freeze_prefix: bool = True,
        fc6_relu: bool = False,
        bias_lr_factor: float = 2.0,
        preprocessing: str = "torchvision",
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        if backbone == "vgg16":
            self.trunk = StrideFourVGG16(pretrained=pretrained_backbone)
        elif backbone == "tiny":
            self.trunk = TinyStrideFour(width=width, fc_dim=fc_dim)
        else:
            raise ValueError(f"backbone must be 'vgg16' or 'tiny', not {backbone!r}")
        self.head = SiameseRoIHead(self.trunk.fc6, pool_size=7, spatial_scale=0.25, mode=roi_mode, fc6_relu=fc6_relu)
        if freeze_prefix:
            for p in self.trunk.frozen_prefix():
                p.requires_grad_(False)
        mean, std = input_normalization(preprocessing, CAFFE_ILSVRC_MEAN)
        self.register_buffer("mean", mean, persistent=False)
        self.register_buffer("std", std, persistent=False)

    @property
    def embedding_dim(self) -> int:
        return sum(self.trunk.out_channels) * 49 + self.trunk.fc6_out

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (B, 3, S, S) -> normalised float."""
        return (images.to(self.mean.dtype) / 255 - self.mean) / self.std

    def prepare(self, frames: list[np.ndarray]) -> tuple[torch.Tensor, list[tuple[float, float]]]:
        """RGB frames of any size -> (B, 3, S, S) normalised input (aspect ratio not kept, bilinear, on the
        model's device) and per-frame (sx, sy) factors from frame to input pixels."""
        s = self.hparams.input_size
        device = self.mean.device
        if len({f.shape for f in frames}) == 1:  # frames of one size: one transfer, one resize
            groups = [np.stack(frames) if len(frames) > 1 else np.ascontiguousarray(frames[0])[None]]
        else:
            groups = [np.ascontiguousarray(f)[None] for f in frames]
        resized = []
        for g in groups:
            t = torch.from_numpy(g).to(device, non_blocking=True).permute(0, 3, 1, 2)
            resized.append(F.interpolate(t.float(), size=(s, s), mode="bilinear", align_corners=False))
        x = torch.cat(resized).clamp_(0, 255)
        return self.normalize(x), [(s / f.shape[1], s / f.shape[0]) for f in frames]

    def embed(self, features: tuple[torch.Tensor, torch.Tensor], rois: torch.Tensor) -> torch.Tensor:
        """Descriptors (K, D) of ``rois`` (K, 5: image index, x1, y1, x2, y2 in input pixels)."""
        return self.head(features[0], features[1], rois.float())

    def forward(self, images: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
        """Normalised images (B, 3, S, S) and rois -> descriptors; one trunk pass for all boxes."""
        return self.embed(self.trunk(images), rois)

    def _pair_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        images, boxes, labels = batch["images"], batch["boxes"], batch["labels"]  # (B,2,3,S,S) (B,2,N,4) (B,2,N)
        b, _, n, _ = boxes.shape
        x = self.normalize(images.flatten(0, 1))
        index = torch.arange(2 * b, device=x.device).repeat_interleave(n).to(boxes.dtype)
        rois = torch.cat([index[:, None], boxes.flatten(0, 2)], 1)
        f = self(x, rois).view(b, 2, n, -1)
        # the ground truth of each frame (index 0) against every box of the other frame: 2 n pairs
        d_ab = (f[:, 0, :1] - f[:, 1]).norm(dim=-1)
        d_ba = (f[:, 1, :1] - f[:, 0]).norm(dim=-1)
        d = torch.cat([d_ab, d_ba], 1)
        y = torch.cat([labels[:, 1], labels[:, 0]], 1).to(d.dtype)
        loss = contrastive_loss(d, y, self.hparams.margin)
        pos, neg = d[y > 0.5], d[y < 0.5]
        stats = {
            "pos_dist": pos.mean() if pos.numel() else d.new_tensor(0.0),
            "neg_dist": neg.mean() if neg.numel() else d.new_tensor(0.0),
        }
        return loss, stats

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss, stats = self._pair_loss(batch)
        bs = batch["images"].shape[0]
        self.log("train/loss", loss, prog_bar=True, batch_size=bs)
        self.log_dict({f"train/{k}": v for k, v in stats.items()}, batch_size=bs)
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        loss, stats = self._pair_loss(batch)
        bs = batch["images"].shape[0]
        self.log("val/loss", loss, prog_bar=True, batch_size=bs, sync_dist=True)
        self.log_dict({f"val/{k}": v for k, v in stats.items()}, batch_size=bs, sync_dist=True)

    def configure_optimizers(self) -> Any:
        hp = self.hparams
        slow = {id(p) for p in self.trunk.slow_parameters()}
        named = list(self.named_parameters())
        groups = weight_bias_groups([(n, p) for n, p in named if id(p) not in slow], hp.lr, hp.weight_decay,
                                    hp.bias_lr_factor)
        groups += weight_bias_groups([(n, p) for n, p in named if id(p) in slow], hp.lr * hp.slow_lr_factor,
                                     hp.weight_decay, hp.bias_lr_factor)
        return hparams_optimizer(self, groups)

    def tracker(self, **kwargs: Any):  # noqa: ANN201
        """The SINT tracker over this network (``zoo.sint.tracker.SINTTracker``)."""
        from zoo.sint.tracker import SINTTracker

        return SINTTracker(self, **kwargs)


@register_model
def sint_vgg16(**kwargs: Any) -> SINT:
    """SINT as in the paper: stride-4 VGG16, 512 x 512 frames, RoI max pooling 7 x 7; ``pretrained_backbone=True``
    starts from ImageNet weights as the paper (downloaded; the default builds random weights)."""
    return SINT(**{"backbone": "vgg16", "input_size": 512, **kwargs})


@register_model
def sint_tiny(**kwargs: Any) -> SINT:
    """SINT's head on a small stride-4 trunk at 128 x 128: trains in minutes on a CPU."""
    defaults = dict(
        backbone="tiny",
        pretrained_backbone=False,
        input_size=128,
        width=32,
        fc_dim=256,
        optimizer="adam",
        lr=1e-3,
        weight_decay=0.0,
        freeze_prefix=False,
        fc6_relu=True,  # the tiny preset's own choices, kept since before the official ones were in
        bias_lr_factor=1.0,
    )
    return SINT(**{**defaults, **kwargs})
