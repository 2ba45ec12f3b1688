"""Odd-One-Out Networks (Fernando, Bilen, Gavves, Gould, CVPR 2017).

N + 1 branches with shared weights each see one encoded element (Sec. 3.3); their features are fused
(concatenation, or the sum of differences sum_{j>i} (v_j - v_i), Sec. 3.2) and a final fully connected
layer with softmax over the N + 1 positions answers which element is odd (cross-entropy). All elements
of all questions go through the branch as one batch. ``O3NClassifier`` fine-tunes the pretrained branch
for action recognition (Sec. 5.2).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from zoo.errors import CheckpointError
from zoo.module import ClassifierSteps, hparams_optimizer
from zoo.nn.tiny import tiny_cnn
from zoo.o3n.encodings import ENCODINGS, encode, encoded_channels
from zoo.registry import register_model
from zoo.video_classifier import VideoClassifier

if TYPE_CHECKING:
    from datamodules.eval_views import ClipSpec

log = logging.getLogger(__name__)
FUSIONS = ("concat", "sum_of_differences")


class CaffeNetBranch(nn.Module):
    """CaffeNet (the AlexNet variant of Caffe: pool before LRN, grouped conv2/4/5) up to fc6 at 227 x 227.

    Choice: a branch ends at fc6 (4096, ReLU, dropout); fusion and the answer layer follow it.
    """

    def __init__(self, in_channels: int = 3, fc_dim: int = 4096, dropout: float = 0.5) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 96, 11, stride=4), nn.ReLU(True), nn.MaxPool2d(3, 2),
            nn.LocalResponseNorm(5, 1e-4, 0.75),
            nn.Conv2d(96, 256, 5, padding=2, groups=2), nn.ReLU(True), nn.MaxPool2d(3, 2),
            nn.LocalResponseNorm(5, 1e-4, 0.75),
            nn.Conv2d(256, 384, 3, padding=1), nn.ReLU(True),
            nn.Conv2d(384, 384, 3, padding=1, groups=2), nn.ReLU(True),
            nn.Conv2d(384, 256, 3, padding=1, groups=2), nn.ReLU(True), nn.MaxPool2d(3, 2),
        )
        self.fc6 = nn.Sequential(nn.Flatten(), nn.Linear(256 * 6 * 6, fc_dim), nn.ReLU(True), nn.Dropout(dropout))
        self.out_dim = fc_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        if x.shape[-2:] != (6, 6):
            raise ValueError(f"CaffeNet branch expects 227 x 227 input (pool5 6 x 6), got pool5 {tuple(x.shape[-2:])}")
        return self.fc6(x)


class TinyBranch(nn.Module):
    """The CPU size: ``tiny_cnn`` and an fc layer in place of fc6."""

    def __init__(self, in_channels: int = 3, width: int = 16, fc_dim: int = 128, dropout: float = 0.0) -> None:
        super().__init__()
        self.features = tiny_cnn(in_channels, width)
        self.fc6 = nn.Sequential(nn.Linear(4 * width, fc_dim), nn.ReLU(True), nn.Dropout(dropout))
        self.out_dim = fc_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc6(self.features(x))


def build_branch(branch: str, encoding: str, frames: int, width: int, fc_dim: int, dropout: float) -> nn.Module:
    if encoding not in ENCODINGS:
        raise ValueError(f"encoding must be one of {ENCODINGS}, not {encoding!r}")
    in_channels = encoded_channels(encoding, frames)
    if branch == "caffenet":
        return CaffeNetBranch(in_channels, fc_dim, dropout)
    if branch == "tiny":
        return TinyBranch(in_channels, width, fc_dim, dropout)
    raise ValueError(f"branch must be 'caffenet' or 'tiny', not {branch!r}")


def fuse(features: torch.Tensor, fusion: str) -> torch.Tensor:
    """(B, N + 1, D) -> (B, (N + 1) D) for ``concat``, (B, D) for ``sum_of_differences`` = sum_{j>i} (v_j - v_i)."""
    if fusion == "concat":
        return features.flatten(1)
    if fusion == "sum_of_differences":
        m = features.shape[1]
        weights = 2 * torch.arange(m, dtype=features.dtype, device=features.device) - (m - 1)  # v_k: k - (m-1-k)
        return torch.einsum("m,bmd->bd", weights, features)
    raise ValueError(f"fusion must be one of {FUSIONS}, not {fusion!r}")


class _Encoder(ClassifierSteps):
    """Shared by pretraining and fine-tuning: uint8 frames -> encoded, standardised branch input."""

    def encode_elements(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 (..., W, 3, H, W') -> (prod(...), C, H, W'), frames first resized to ``input_size`` when set
        (on the model's device: the loader can ship low-resolution frames).

        Choice: each encoded element is standardised (zero mean, unit standard deviation over its
        pixels), in place of the released code's rescaling of dynamic images to 0..255.
        """
        lead = frames.shape[:-4]
        if frames.shape[-4] != self.hparams.frames:
            raise ValueError(f"elements have {frames.shape[-4]} frames, the model was built for {self.hparams.frames}")
        x = frames.flatten(0, len(lead) - 1).float().div_(255)
        size = self.hparams.input_size
        if size is not None and tuple(x.shape[-2:]) != tuple(size):  # low-resolution frames, resized here
            n, w = x.shape[:2]
            x = F.interpolate(x.flatten(0, 1), size=tuple(size), mode="bilinear", align_corners=False)
            x = x.view(n, w, *x.shape[1:])
        x = encode(x, self.hparams.encoding)
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        std = x.std(dim=(1, 2, 3), keepdim=True)
        return (x - mean) / (std + 1e-5)

    def _optimizer(self) -> Any:
        hp = self.hparams
        opt = hparams_optimizer(self)
        if not hp.lr_steps:
            return opt
        sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=list(hp.lr_steps), gamma=0.1)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}


class OddOneOut(_Encoder):
    """O3N: input ``uint8 (B, N + 1, W, 3, H, W')`` questions, output logits over the N + 1 positions."""

    input_key = "question"

    def __init__(
        self,
        elements: int = 6,
        frames: int = 6,
        encoding: str = "dynamic_image",
        input_size: tuple[int, int] | None = None,
        fusion: str = "sum_of_differences",
        branch: str = "caffenet",
        width: int = 16,
        fc_dim: int = 4096,
        dropout: float = 0.5,
        optimizer: str = "sgd",
        lr: float = 0.01,
        momentum: float = 0.9,
        weight_decay: float = 5e-4,
        lr_steps: tuple[int, ...] = (),
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        if fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {FUSIONS}, not {fusion!r}")
        self.branch = build_branch(branch, encoding, frames, width, fc_dim, dropout)
        fused = self.branch.out_dim * (elements if fusion == "concat" else 1)
        self.answer = nn.Linear(fused, elements)
        metric = MulticlassAccuracy(num_classes=elements, average="micro")
        self.train_acc, self.val_acc, self.test_acc = metric.clone(), metric.clone(), metric.clone()

    def forward(self, questions: torch.Tensor) -> torch.Tensor:
        b, m = questions.shape[:2]
        if m != self.hparams.elements:
            raise ValueError(f"questions have {m} elements, the model was built for {self.hparams.elements}")
        features = self.branch(self.encode_elements(questions)).view(b, m, -1)
        return self.answer(fuse(features, self.hparams.fusion))

    def configure_optimizers(self) -> Any:
        return self._optimizer()


BRANCH_KEYS = ("branch", "encoding", "frames", "width", "fc_dim")


def pretrained_branch(source: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The branch weights and hyperparameters of an O3N model: a ``zoo fit`` checkpoint path or a zoo name."""
    import zoo

    model = zoo.load(checkpoint_path=source) if Path(source).is_file() else zoo.load(str(source))
    if not isinstance(model, OddOneOut):
        raise CheckpointError(f"{source}: holds a {type(model).__name__}, not an odd-one-out network")
    return model.branch.state_dict(), dict(model.hparams)


class O3NClassifier(VideoClassifier, _Encoder):
    """Action classifier on the O3N branch: input ``uint8 (B, K, W, 3, H, W')`` (K clips per video).

    Training uses each clip as a sample; evaluation reports ``clip_acc`` (each clip alone) and
    ``video_acc`` (softmax averaged over the K clips of a video). ``pretrained`` (a ``zoo fit``
    checkpoint or a zoo name) is loaded into the branch when fitting starts; ``None`` trains from random
    initialisation. ``class_names`` and ``clip_sampling`` (the datamodule's frame size and clip strategy) are
    recorded when fitting starts. ``freeze_branch`` trains the classifier alone on the branch's features, kept in
    eval mode (the linear-probe protocol of self-supervised evaluation).
    """

    default_frame_size = (227, 227)

    def __init__(
        self,
        num_classes: int = 101,
        pretrained: str | None = None,
        frames: int = 6,
        encoding: str = "dynamic_image",
        input_size: tuple[int, int] | None = None,
        branch: str = "caffenet",
        width: int = 16,
        fc_dim: int = 4096,
        dropout: float = 0.5,
        optimizer: str = "sgd",
        lr: float = 0.001,
        momentum: float = 0.9,
        weight_decay: float = 5e-4,
        lr_steps: tuple[int, ...] = (),
        class_names: list[str] | None = None,
        clip_sampling: dict[str, Any] | None = None,
        freeze_branch: bool = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.branch = build_branch(branch, encoding, frames, width, fc_dim, dropout)
        if freeze_branch:
            self.branch.requires_grad_(False).eval()
        self.classifier = nn.Linear(self.branch.out_dim, num_classes)
        acc = MulticlassAccuracy(num_classes=num_classes, average="micro")
        self.train_acc = acc.clone()
        self.val_clip_acc, self.val_video_acc = acc.clone(), acc.clone()
        self.test_clip_acc, self.test_video_acc = acc.clone(), acc.clone()

    def load_pretrained(self, source: str | Path) -> None:
        state, hp = pretrained_branch(source)
        mismatch = {k: (hp.get(k), self.hparams[k]) for k in BRANCH_KEYS if hp.get(k) != self.hparams[k]}
        if mismatch:
            text = ", ".join(f"{k}: checkpoint {a!r} vs model {b!r}" for k, (a, b) in mismatch.items())
            raise CheckpointError(f"{source}: the O3N branch does not fit this classifier ({text})")
        self.branch.load_state_dict(state)
        log.info("branch initialised from %s", source)

    def train(self, mode: bool = True) -> O3NClassifier:
        super().train(mode)
        if self.hparams.freeze_branch:  # frozen features: batch-norm statistics and dropout as in evaluation
            self.branch.eval()
        return self

    def setup(self, stage: str) -> None:
        # before a checkpoint restore, so resuming a fine-tuning run keeps its own weights
        if stage == "fit" and self.hparams.pretrained:
            self.load_pretrained(self.hparams.pretrained)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        """Class logits per clip, (B, K, num_classes)."""
        b, k = clips.shape[:2]
        return self.classifier(self.branch(self.encode_elements(clips))).view(b, k, -1)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        logits = self(batch["clips"]).flatten(0, 1)
        labels = batch["label"].repeat_interleave(batch["clips"].shape[1])
        loss = F.cross_entropy(logits, labels)
        self.train_acc(logits, labels)
        bs = labels.shape[0]
        self.log("train/loss", loss, prog_bar=True, batch_size=bs)
        self.log("train/acc", self.train_acc, on_step=False, on_epoch=True, batch_size=bs)
        return loss

    def _evaluate(self, batch: dict[str, torch.Tensor], stage: str) -> None:
        logits = self(batch["clips"])
        labels = batch["label"]
        k = logits.shape[1]
        clip_acc, video_acc = getattr(self, f"{stage}_clip_acc"), getattr(self, f"{stage}_video_acc")
        loss = F.cross_entropy(logits.flatten(0, 1), labels.repeat_interleave(k))
        clip_acc(logits.flatten(0, 1), labels.repeat_interleave(k))
        video_acc(logits.softmax(-1).mean(1), labels)
        bs = labels.shape[0]
        self.log(f"{stage}/loss", loss, batch_size=bs, sync_dist=True)
        self.log(f"{stage}/clip_acc", clip_acc, on_step=False, on_epoch=True, batch_size=bs)
        self.log(f"{stage}/video_acc", video_acc, prog_bar=True, on_step=False, on_epoch=True, batch_size=bs)

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def predict_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self(batch["clips"]).softmax(-1).mean(1)

    def clip_logits(self, clips: torch.Tensor) -> torch.Tensor:
        return self(clips[:, None])[:, 0]

    def eval_clip_spec(self) -> ClipSpec:
        """``frames`` frames by the datamodule's strategy (``random``, ActionClipsDataModule's default, when
        unrecorded; ``consecutive`` is a window of stride 1)."""
        from datamodules.eval_views import ClipSpec

        strategy = self.sampling.get("strategy", "random")
        return ClipSpec(frames=self.hparams.frames, stride=1,
                        strategy="strided" if strategy == "consecutive" else strategy,
                        window_factor=float(self.sampling.get("window_factor", 1.5)))

    def configure_optimizers(self) -> Any:
        return self._optimizer()


@register_model
def o3n_alexnet(**kwargs: Any) -> OddOneOut:
    """O3N as in the paper: CaffeNet branches at 227 x 227, 6 elements of 6 frames, dynamic images,
    sum-of-differences fusion, SGD."""
    return OddOneOut(**{"branch": "caffenet", "fc_dim": 4096, "dropout": 0.5, **kwargs})


@register_model
def o3n_tiny(**kwargs: Any) -> OddOneOut:
    """The CPU size: a 3-layer CNN branch at 64 x 80, stacks of differences (dynamic images of 6 frames
    barely train this small net), Adam; trains in minutes on the synthetic UCF101."""
    defaults = dict(
        branch="tiny", width=16, fc_dim=128, dropout=0.0, encoding="stack_of_differences", optimizer="adam",
        lr=3e-3, weight_decay=0.0,
    )
    return OddOneOut(**{**defaults, **kwargs})
