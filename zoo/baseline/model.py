"""Temporal Segment Network classifier (Wang et al., ECCV 2016).

A clip of T frames is cut into K segments (Sec. 3.1); each segment gives one snippet to a shared 2D
CNN: its centre frame (``modality="rgb"``) or the stack of differences of its consecutive frames
(``"rgb_diff"``, Sec. 3.2). Class scores are averaged over segments (average consensus). Used as the
zoo's reference model for the shared trainer, the registry and the CLI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from zoo.module import ClassifierSteps, hparams_optimizer
from zoo.nn.backbones import IMAGENET_MEAN, IMAGENET_STD, cross_modality_conv, resnet
from zoo.nn.tiny import tiny_cnn
from zoo.registry import register_model
from zoo.video_classifier import VideoClassifier

if TYPE_CHECKING:
    from datamodules.eval_views import ClipSpec


class ClipClassifier(VideoClassifier, ClassifierSteps):
    """TSN: K segments, shared 2D CNN, average consensus; input ``uint8 (B, T, 3, H, W)``.

    Choice: T frames are split into K equal consecutive segments of the sampled clip (the paper samples
    segments over the whole video; with one long clip this is the same up to the stride). ``class_names`` and
    ``clip_sampling`` (the datamodule's frame size and stride) are recorded when fitting starts.
    """

    def __init__(
        self,
        num_classes: int = 101,
        backbone: str = "resnet18",
        pretrained_backbone: bool = False,
        width: int = 16,
        num_segments: int = 3,
        clip_len: int = 9,
        modality: str = "rgb",
        dropout: float = 0.8,
        optimizer: str = "sgd",
        lr: float = 0.001,
        momentum: float = 0.9,
        weight_decay: float = 5e-4,
        lr_steps: tuple[int, ...] = (30, 60),
        class_names: list[str] | None = None,
        clip_sampling: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        if modality not in ("rgb", "rgb_diff"):
            raise ValueError(f"modality must be 'rgb' or 'rgb_diff', not {modality!r}")
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        if clip_len % num_segments:
            raise ValueError(f"clip_len={clip_len} is not a multiple of num_segments={num_segments}")
        seg_len = clip_len // num_segments
        if modality == "rgb_diff" and seg_len < 2:
            raise ValueError("rgb_diff needs at least 2 frames per segment")
        in_channels = 3 if modality == "rgb" else 3 * (seg_len - 1)
        if backbone == "tiny":
            self.trunk = tiny_cnn(in_channels, width)
            self.feature_dim = 4 * width
        else:
            self.trunk = resnet(backbone, pretrained=pretrained_backbone)
            if in_channels != 3:
                self.trunk.conv1 = cross_modality_conv(self.trunk.conv1, in_channels)
            self.feature_dim = 512 if backbone in ("resnet18", "resnet34") else 2048
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(self.feature_dim, num_classes))
        metric = MulticlassAccuracy(num_classes=num_classes, average="micro")
        self.train_acc, self.val_acc, self.test_acc = metric.clone(), metric.clone(), metric.clone()

    def snippets(self, video: torch.Tensor) -> torch.Tensor:
        """(B, T, 3, H, W) uint8 -> (B * K, C, H, W) normalised network input."""
        b, t, c, h, w = video.shape
        k = self.hparams.num_segments
        if t != self.hparams.clip_len:
            raise ValueError(f"clip has {t} frames, the model was built for clip_len={self.hparams.clip_len}")
        seg = video.view(b * k, t // k, c, h, w).float().div_(255)
        if self.hparams.modality == "rgb":
            return (seg[:, seg.shape[1] // 2] - self.mean) / self.std
        diff = (seg[:, 1:] - seg[:, :-1]) / self.std.unsqueeze(1)
        return diff.flatten(1, 2)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        """Class logits (B, num_classes), averaged over segments."""
        logits = self.head(self.trunk(self.snippets(video)))
        return logits.view(video.shape[0], self.hparams.num_segments, -1).mean(1)

    def predict_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self(batch["video"]).softmax(-1)

    def clip_logits(self, clips: torch.Tensor) -> torch.Tensor:
        return self(clips)

    def eval_clip_spec(self) -> ClipSpec:
        """``clip_len`` frames ``stride`` apart (the datamodule's stride; 2, UCF101DataModule's default, when
        unrecorded)."""
        from datamodules.eval_views import ClipSpec

        return ClipSpec(frames=self.hparams.clip_len, stride=int(self.sampling.get("stride", 2)))

    def configure_optimizers(self) -> Any:
        opt = hparams_optimizer(self)
        sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=list(self.hparams.lr_steps), gamma=0.1)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}


@register_model
def clip_resnet18(**kwargs: Any) -> ClipClassifier:
    """TSN with a ResNet-18, 3 segments, RGB (the paper's setting with a smaller trunk); ``pretrained_backbone=True``
    starts from ImageNet weights (downloaded; the default builds random weights)."""
    return ClipClassifier(**{"backbone": "resnet18", "num_segments": 3, "modality": "rgb", **kwargs})


@register_model
def clip_tiny(**kwargs: Any) -> ClipClassifier:
    """The CPU size: a 3-layer CNN on frame differences, trains in seconds on the synthetic UCF101."""
    defaults = dict(
        num_classes=7, backbone="tiny", pretrained_backbone=False, width=16, num_segments=1,
        clip_len=8, modality="rgb_diff", dropout=0.0, optimizer="adam", lr=3e-3, weight_decay=0.0, lr_steps=(1000,),
    )
    return ClipClassifier(**{**defaults, **kwargs})
