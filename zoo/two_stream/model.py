"""Two-stream ConvNets for action recognition (Simonyan & Zisserman, NeurIPS 2014).

A spatial stream classifies single RGB frames, a temporal stream stacks of L optical-flow fields (2L channels, mean
flow subtracted, Sec. 3.1); each is CNN-M-2048 (Sec. 5, Fig. 1; the temporal net without the second normalisation
layer) and their softmax scores are averaged (Sec. 6, "fusion by averaging"). Training takes one frame (and the flow
stack starting there) per video, a random crop anywhere in the frame, flipped, the RGB jittered (Sec. 5); testing
25 frames per video with ten crops each, the scores averaged. Batches come from ``datamodules.two_stream``:
``frames`` uint8 (B, K, 3, H, W), ``flow`` float pixels (B, K, L, 2, H, W), ``label``.

Choices, each a parameter: the paper's SVM fusion on L2-normalised softmax scores is left out (averaging only); RGB
is normalised with ImageNet's mean and std (the paper's Caffe mean is not published); weight decay 5e-4 (as
Krizhevsky et al., whose procedure the paper adapts); training shuffles videos rather than drawing them uniformly
across classes; both streams of a ``two_stream`` model train at once, each on its own loss (their parameters are
disjoint: the same as training each alone, under one optimiser and schedule).
"""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from zoo.module import ZooModule, check_datamodule_agrees, hparams_optimizer
from zoo.nn.backbones import IMAGENET_MEAN, IMAGENET_STD
from zoo.nn.tvl1 import TVL1, grey, tvl1_flow
from zoo.registry import register_model
from zoo.two_stream.inputs import eval_crops, random_crops, rgb_jitter, stack_flow, subtract_mean_flow
from zoo.two_stream.networks import stream_net
from zoo.video_classifier import VideoClassifier

if TYPE_CHECKING:
    from datamodules.eval_views import ClipSpec

STREAMS = ("spatial", "temporal", "two_stream")
TEMPORAL_INITS = ("scratch", "cross_modality")
FUSIONS = ("mean",)


def average_softmax(logits: list[torch.Tensor]) -> torch.Tensor:
    """Late fusion by averaging the streams' softmax scores, returned as log-probabilities (their softmax is the
    average; cross-entropy on them is the fused prediction's)."""
    log_probs = torch.stack([F.log_softmax(x, dim=-1) for x in logits])
    return torch.logsumexp(log_probs, dim=0) - math.log(len(logits))


class TwoStream(VideoClassifier, ZooModule):
    """The spatial stream, the temporal stream or both (``streams``), with late fusion by averaging softmax scores.

    ``forward(frames, flow)`` gives per-input class logits (B, K', C): in training K' = K (one random crop per
    sampled frame), in evaluation K' = K x ``test_crops``; for two streams the fused log-probabilities. Evaluation
    logs ``clip_acc`` (each input alone) and ``video_acc`` (softmax averaged over a video's inputs), and per stream
    ``spatial_*`` / ``temporal_*`` when both run. ``pretrained_backbone``: ImageNet weights for a torchvision
    backbone (CNN-M has none there: the spatial stream trains from scratch, or choose ``spatial_backbone``
    ``alexnet`` / ``resnet*``). ``temporal_init="cross_modality"``: the flow net's conv1 is the RGB conv1 averaged
    over channels and replicated 2L times (Wang et al. 2016), the other layers as the RGB net (ImageNet when
    ``pretrained_backbone``); ``"scratch"``: the paper's random initialisation. ``spatial_last_layer_only``: only
    the spatial stream's last layer learns (the paper's choice for its ImageNet net, Sec. 6, Table 1a). ``width``,
    ``fc_dim`` and ``tiny_blocks`` size the ``tiny`` backbone. Batches with ``flow_pairs`` (the datamodule's
    ``flow_method="tvl1_torch"``) get their TV-L1 flow computed here, on the model's device, ``flow_batch`` pairs at
    a time (``flow_compile``: each iteration and median through ``torch.compile``: the same fields, 1.9x the pairs
    per second on 2 CPU cores).
    """

    def __init__(
        self,
        num_classes: int = 101,
        streams: str = "two_stream",
        spatial_backbone: str = "cnnm",
        temporal_backbone: str = "cnnm",
        pretrained_backbone: bool = False,
        temporal_init: str = "scratch",
        spatial_last_layer_only: bool = False,
        flow_length: int = 10,
        mean_flow_subtraction: bool = True,
        spatial_dropout: float = 0.5,
        temporal_dropout: float = 0.9,
        width: int = 16,
        fc_dim: int = 128,
        tiny_blocks: int = 3,
        crop_size: int = 224,
        test_crops: int = 10,
        rgb_jitter: float = 0.1,
        fusion: str = "mean",
        flow_batch: int = 256,
        flow_compile: bool = False,
        optimizer: str = "sgd",
        lr: float = 1e-2,
        momentum: float = 0.9,
        weight_decay: float = 5e-4,
        lr_steps: tuple[int, ...] = (50000, 70000),
        lr_interval: str = "step",
        class_names: list[str] | None = None,
        clip_sampling: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        for name, value, allowed in (("streams", streams, STREAMS), ("temporal_init", temporal_init, TEMPORAL_INITS),
                                     ("fusion", fusion, FUSIONS), ("lr_interval", lr_interval, ("step", "epoch"))):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}, not {value!r}")
        if test_crops not in (1, 10):
            raise ValueError(f"test_crops must be 1 (centre) or 10 (corners, centre and their flips), not {test_crops}")
        if flow_length < 1 or flow_batch < 1:
            raise ValueError(f"flow_length and flow_batch must be at least 1, not {flow_length} and {flow_batch}")
        common = dict(width=width, fc_dim=fc_dim, blocks=tiny_blocks)
        if streams in ("spatial", "two_stream"):
            net = stream_net(spatial_backbone, 3, spatial_dropout, pretrained=pretrained_backbone, **common)
            self.spatial = nn.Sequential(net, nn.Linear(net.out_dim, num_classes))
            if spatial_last_layer_only:
                net.requires_grad_(False)
        if streams in ("temporal", "two_stream"):
            net = stream_net(temporal_backbone, 2 * flow_length, temporal_dropout, norm2=False,
                             pretrained=pretrained_backbone and temporal_init == "cross_modality",
                             cross_modality=temporal_init == "cross_modality", **common)
            self.temporal = nn.Sequential(net, nn.Linear(net.out_dim, num_classes))
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        acc = MulticlassAccuracy(num_classes=num_classes, average="micro")
        self.train_acc = acc.clone()
        names = ["clip_acc", "video_acc"]
        if streams == "two_stream":
            names += [f"{s}_{n}" for s in ("spatial", "temporal") for n in ("clip_acc", "video_acc")]
        self.eval_metrics = nn.ModuleDict({f"{stage}_{n}": acc.clone() for stage in ("val", "test") for n in names})

    @property
    def stream_names(self) -> tuple[str, ...]:
        s = self.hparams.streams
        return ("spatial", "temporal") if s == "two_stream" else (s,)

    @property
    def num_classes(self) -> int:
        return self.hparams.num_classes

    # ------------------------------------------------------------------------------------------------ inputs

    def _crops(self, x: torch.Tensor, flow: bool) -> torch.Tensor:
        """(N, C, H, W) -> (N, K'', C, s, s): one random crop in training, ``test_crops`` in evaluation."""
        size = self.hparams.crop_size
        if self.training:
            return random_crops(x, size, flow)[:, None]
        return eval_crops(x, size, self.hparams.test_crops, flow)

    def spatial_input(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 (B, K, 3, H, W) -> normalised (B * K', 3, s, s) crops."""
        if frames.ndim != 5 or frames.shape[2] != 3:
            raise ValueError(f"frames must be uint8 (B, K, 3, H, W), got shape {tuple(frames.shape)}")
        x = self._crops(frames.flatten(0, 1).to(self.mean.dtype).div(255), flow=False).flatten(0, 1)
        if self.training:
            x = rgb_jitter(x, self.hparams.rgb_jitter)
        return (x - self.mean) / self.std

    def temporal_input(self, flow: torch.Tensor) -> torch.Tensor:
        """Flow fields (B, K, L, 2, H, W) in pixels -> (B * K', 2L, s, s) crops of the stacks, mean flow
        subtracted from each whole field first."""
        if flow.ndim != 6 or flow.shape[2:4] != (self.hparams.flow_length, 2):
            raise ValueError(f"flow must be (B, K, L={self.hparams.flow_length}, 2, H, W), got {tuple(flow.shape)}")
        x = stack_flow(flow.flatten(0, 1).to(self.mean.dtype))
        if self.hparams.mean_flow_subtraction:
            x = subtract_mean_flow(x)
        return self._crops(x, flow=True).flatten(0, 1)

    # ------------------------------------------------------------------------------------------------ outputs

    def stream_logits(self, frames: torch.Tensor | None = None, flow: torch.Tensor | None = None
                      ) -> dict[str, torch.Tensor]:
        """Each stream's class logits (B, K', C)."""
        out = {}
        for name, x, key in (("spatial", frames, "frames"), ("temporal", flow, "flow")):
            if name not in self.stream_names:
                continue
            if x is None:
                modality = "rgb" if key == "frames" else "flow"
                raise ValueError(f"the {name} stream needs '{key}' in the batch (datamodules.two_stream."
                                 f"TwoStreamDataModule with modality {modality} or rgb+flow)")
            b = x.shape[0]
            inputs = self.spatial_input(x) if name == "spatial" else self.temporal_input(x)
            out[name] = getattr(self, name)(inputs).view(b, -1, self.hparams.num_classes)
        return out

    def forward(self, frames: torch.Tensor | None = None, flow: torch.Tensor | None = None) -> torch.Tensor:
        """Per-input class logits (B, K', C); two streams: the log of their averaged softmax scores."""
        logits = self.stream_logits(frames, flow)
        return average_softmax(list(logits.values())) if len(logits) > 1 else next(iter(logits.values()))

    def flow_from_pairs(self, pairs: torch.Tensor) -> torch.Tensor:
        """uint8 grey frame pairs (..., 2, H, W) -> their TV-L1 fields (..., 2, H, W) in pixels (x, y), computed on
        the pairs' device (``zoo.nn.tvl1``, OpenCV's defaults)."""
        if pairs.ndim < 3 or pairs.shape[-3] != 2:
            raise ValueError(f"flow_pairs must be (..., 2, H, W) frame pairs, got shape {tuple(pairs.shape)}")
        flat = pairs.reshape(-1, *pairs.shape[-3:])
        settings = TVL1(check_every=1 if flat.device.type == "cpu" else 10, compile=self.hparams.flow_compile)
        fields = [tvl1_flow(chunk[:, 0], chunk[:, 1], settings) for chunk in flat.split(self.hparams.flow_batch)]
        return torch.cat(fields).view(pairs.shape)

    def batch_inputs(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """The frames and flow fields of a batch; flow from ``flow_pairs`` is computed here."""
        flow = batch.get("flow")
        if flow is None and "flow_pairs" in batch and "temporal" in self.stream_names:
            flow = self.flow_from_pairs(batch["flow_pairs"])
        return batch.get("frames"), flow

    def _logits(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return self.stream_logits(*self.batch_inputs(batch))

    # ------------------------------------------------------------------------------------------------ steps

    def on_fit_start(self) -> None:
        check_datamodule_agrees(self, ("flow_length",))
        super().on_fit_start()

    # ------------------------------------------------------------------------------------------------ clips

    @property
    def frame_size(self) -> tuple[int, int]:
        """The network's input: ``crop_size`` square."""
        return self.hparams.crop_size, self.hparams.crop_size

    def eval_clip_spec(self) -> ClipSpec:
        """L + 1 consecutive frames (the first for the spatial stream, their L flow fields for the temporal one)."""
        from datamodules.eval_views import ClipSpec

        return ClipSpec(frames=self.hparams.flow_length + 1 if "temporal" in self.stream_names else 1, stride=1)

    def clip_logits(self, clips: torch.Tensor) -> torch.Tensor:
        """Class logits of crops already cut: uint8 ``(N, T, 3, s, s)`` -> ``(N, C)`` (two streams: the log of the
        averaged softmax scores)."""
        from datamodules.two_stream import DEVICE_METHOD, flow_fields

        s = self.hparams.crop_size
        if clips.ndim != 5 or tuple(clips.shape[-3:]) != (3, s, s):
            raise ValueError(f"clips must be uint8 (N, T, 3, {s}, {s}), got shape {tuple(clips.shape)}")
        logits = []
        if "spatial" in self.stream_names:
            x = (clips[:, 0].to(self.mean.dtype) / 255 - self.mean) / self.std
            logits.append(self.spatial(x))
        if "temporal" in self.stream_names:
            length = self.hparams.flow_length
            if clips.shape[1] != length + 1:
                raise ValueError(f"the temporal stream needs clips of {length + 1} frames, got {clips.shape[1]}")
            method = self.sampling.get("flow_method", "dis")
            preset = self.sampling.get("dis_preset", "fast")
            if method == DEVICE_METHOD:
                frames = grey(clips.to(self.mean.device))
                fields = self.flow_from_pairs(torch.stack([frames[:, :-1], frames[:, 1:]], dim=2))
            else:
                frames = clips.permute(0, 1, 3, 4, 2).cpu().numpy()
                fields = torch.from_numpy(np.stack([flow_fields(f, method, preset) for f in frames]))
            x = stack_flow(fields.to(self.mean.device, self.mean.dtype))
            if self.hparams.mean_flow_subtraction:
                x = subtract_mean_flow(x)
            logits.append(self.temporal(x))
        return average_softmax(logits) if len(logits) > 1 else logits[0]

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        logits = self._logits(batch)
        labels = batch["label"]
        bs = labels.shape[0]
        loss = 0.0
        for name, x in logits.items():
            stream_loss = F.cross_entropy(x.flatten(0, 1), labels.repeat_interleave(x.shape[1]))
            if len(logits) > 1:
                self.log(f"train/{name}_loss", stream_loss, batch_size=bs)
            loss = loss + stream_loss
        main = average_softmax(list(logits.values())) if len(logits) > 1 else next(iter(logits.values()))
        self.train_acc(main.flatten(0, 1), labels.repeat_interleave(main.shape[1]))
        self.log("train/loss", loss, prog_bar=True, batch_size=bs)
        self.log("train/acc", self.train_acc, on_step=False, on_epoch=True, batch_size=bs)
        return loss

    def _evaluate(self, batch: dict[str, torch.Tensor], stage: str) -> None:
        logits = self._logits(batch)
        labels = batch["label"]
        bs = labels.shape[0]
        outputs = {"": average_softmax(list(logits.values())) if len(logits) > 1 else next(iter(logits.values()))}
        if len(logits) > 1:
            outputs.update({f"{name}_": x for name, x in logits.items()})
        k = outputs[""].shape[1]
        self.log(f"{stage}/loss", F.cross_entropy(outputs[""].flatten(0, 1), labels.repeat_interleave(k)),
                 batch_size=bs, sync_dist=True)
        for prefix, x in outputs.items():
            clip_acc = self.eval_metrics[f"{stage}_{prefix}clip_acc"]
            video_acc = self.eval_metrics[f"{stage}_{prefix}video_acc"]
            clip_acc(x.flatten(0, 1), labels.repeat_interleave(k))
            video_acc(x.softmax(-1).mean(1), labels)
            self.log(f"{stage}/{prefix}clip_acc", clip_acc, on_step=False, on_epoch=True, batch_size=bs)
            self.log(f"{stage}/{prefix}video_acc", video_acc, prog_bar=not prefix, on_step=False, on_epoch=True,
                     batch_size=bs)

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def predict_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """Video class probabilities (B, C): the softmax averaged over the video's inputs (and streams)."""
        return self(*self.batch_inputs(batch)).softmax(-1).mean(1)

    def configure_optimizers(self) -> Any:
        hp = self.hparams
        opt = hparams_optimizer(self)
        sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=list(hp.lr_steps), gamma=0.1)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": hp.lr_interval}}

    # ------------------------------------------------------------------------------------------------ fusion

    @classmethod
    def from_streams(cls, spatial: TwoStream, temporal: TwoStream) -> TwoStream:
        """The two-stream model of a trained spatial and a trained temporal stream (the paper trains them apart and
        fuses at test time); weights copied, nothing downloaded, in eval mode."""
        a, m = dict(spatial.hparams), dict(temporal.hparams)
        if "spatial" not in spatial.stream_names or "temporal" not in temporal.stream_names:
            raise ValueError("from_streams needs a model with a spatial stream and one with a temporal stream")
        for key in ("num_classes", "crop_size"):
            if a[key] != m[key]:
                raise ValueError(f"the streams differ in {key}: spatial {a[key]}, temporal {m[key]}")
        kwargs = {**a, **{k: v for k, v in m.items() if k.startswith("temporal") or k.startswith("flow")
                          or k == "mean_flow_subtraction"}, "streams": "two_stream", "pretrained_backbone": False}
        if a["spatial_backbone"] == "tiny" or m["temporal_backbone"] == "tiny":
            if (a["width"], a["fc_dim"]) != (m["width"], m["fc_dim"]):
                raise ValueError("tiny streams must share width and fc_dim")
        out = cls(**kwargs)
        out.spatial.load_state_dict(spatial.spatial.state_dict())
        out.temporal.load_state_dict(temporal.temporal.state_dict())
        return out.eval()

    @classmethod
    def from_checkpoints(cls, spatial: str | os.PathLike, temporal: str | os.PathLike) -> TwoStream:
        """:meth:`from_streams` of a ``zoo fit`` checkpoint of each stream."""
        import zoo

        return cls.from_streams(zoo.load(checkpoint_path=spatial), zoo.load(checkpoint_path=temporal))


# ---------------------------------------------------------------------------------------------------------------
# Builders: the paper's CNN-M-2048 streams and their CPU-sized versions

# the paper's from-scratch spatial dropout (0.9, Table 1a) and RGB jittering; no temporal dropout (0.9 on a 128-unit
# layer leaves the tiny flow net underfitting the synthetic motions); 4 blocks, whose 31-pixel reach spans an object's
# path over 10 flow fields; 64-pixel crops of 64 x 80 frames, which keep the small synthetic actors in view
TINY = dict(spatial_backbone="tiny", temporal_backbone="tiny", width=16, fc_dim=128, tiny_blocks=4, spatial_dropout=0.9,
            temporal_dropout=0.0, crop_size=64, rgb_jitter=0.1, optimizer="adam", lr=3e-3, weight_decay=0.0,
            lr_steps=())


@register_model
def two_stream_cnnm(**kwargs: Any) -> TwoStream:
    """The paper's two-stream ConvNet: CNN-M-2048 spatial (dropout 0.5) and temporal (L = 10, no second LRN, dropout
    0.9) streams at 224 x 224, softmax scores averaged; both from scratch (torchvision has no ImageNet CNN-M)."""
    return TwoStream(**{"streams": "two_stream", **kwargs})


@register_model
def spatial_cnnm(**kwargs: Any) -> TwoStream:
    """The paper's spatial stream alone: CNN-M-2048 on single RGB frames."""
    return TwoStream(**{"streams": "spatial", **kwargs})


@register_model
def temporal_cnnm(**kwargs: Any) -> TwoStream:
    """The paper's temporal stream alone: CNN-M-2048 without the second LRN on 10 stacked flow fields."""
    return TwoStream(**{"streams": "temporal", **kwargs})


@register_model
def two_stream_tiny(**kwargs: Any) -> TwoStream:
    """The CPU size: both streams a 4-block CNN at 64 x 64 crops, Adam; trains in a minute on the synthetic UCF101."""
    return TwoStream(**{"streams": "two_stream", **TINY, **kwargs})


@register_model
def spatial_tiny(**kwargs: Any) -> TwoStream:
    """The tiny spatial stream alone."""
    return TwoStream(**{"streams": "spatial", **TINY, **kwargs})


@register_model
def temporal_tiny(**kwargs: Any) -> TwoStream:
    """The tiny temporal stream alone."""
    return TwoStream(**{"streams": "temporal", **TINY, **kwargs})
