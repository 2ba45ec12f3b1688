"""Two-in-One stream action detection (Zhao & Snoek, "Dance with Flow", CVPR 2019) and its baselines, as
``jiaozizhao/Two-in-one-ActionDetection`` and ROAD (Singh et al., ICCV 2017, ``gurkirt/realtime-action-detection``)
build them: an SSD300 per frame on RGB (``stream="rgb"``), on flow images (``"flow"``), or on RGB with its
low-level features modulated by the flow (``"two_in_one"``, Sec. 3.2); ``TwoStreamSSD`` fuses an appearance and a
flow stream's detections (Sec. 4, ROAD's late fusion).

A detector for ``zoo benchmark ucf101-24|jhmdb|ucfsports``: ``detect(images, flows)`` takes (B, 3, S, S) 0..255 RGB
frames and flow images and gives per frame rows ``label, score, x1, y1, x2, y2`` in input pixels.
"""

from __future__ import annotations

import bisect
import inspect
import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from zoo.module import ZooModule, make_optimizer, weight_bias_groups
from zoo.nn.multibox import MultiBoxLoss, class_detections, decode
from zoo.nn.ssd import CAFFE_MEAN_RGB, SSD, SSD300_EXTRAS, SSD300_PRIORS, VGG16_LAYERS, PriorSpec, load_vgg16_reducedfc
from zoo.registry import register_model
from zoo.two_in_one.fusion import FUSIONS, fuse
from zoo.two_in_one.motion import MotionCondition, MotionModulation

STREAMS = ("rgb", "flow", "two_in_one")
MODALITIES = {"rgb": "rgb", "flow": "flow", "two_in_one": "rgb+flow"}
TRUNKS = ("vgg16", "tiny")


class MultiStep:
    """The learning-rate factor of ``MultiStepLR`` at a step: ``gamma`` to the number of ``milestones`` passed (a
    callable object, so ``LambdaLR`` keeps it in the checkpoint)."""

    def __init__(self, milestones: Sequence[int], gamma: float) -> None:
        self.milestones, self.gamma = sorted(int(m) for m in milestones), float(gamma)

    def __call__(self, step: int) -> float:
        return self.gamma ** bisect.bisect_right(self.milestones, step)


def tiny_network(input_size: int, width: int) -> dict[str, Any]:
    """A small SSD of the same design for CPU runs: a 5-block VGG of ``width`` with BatchNorm (trained from scratch),
    2 extras pairs, 4 source maps (stride 8, 16, 32, 64), default boxes at 0.1 to 0.95 of the image."""
    w = width
    layers = (w, w, "M", 2 * w, 2 * w, "M", 4 * w, 4 * w, "C", 8 * w, 8 * w, "M", 8 * w)
    extras = ((4 * w, 8 * w, 2, 1), (4 * w, 8 * w, 2, 1))
    f1 = math.ceil(input_size / 8)
    maps = [f1, f1 // 2]
    for _ in extras:
        maps.append((maps[-1] - 1) // 2 + 1)
    sizes = [0.1, 0.2, 0.4, 0.65, 0.95]
    priors = PriorSpec(input_size, tuple(maps), tuple(input_size / f for f in maps),
                       tuple(s * input_size for s in sizes[:-1]), tuple(s * input_size for s in sizes[1:]),
                       ((2,), (2, 3), (2,), (2,)))
    return {"layers": layers, "fc_channels": 16 * w, "extras": extras, "priors": priors, "batch_norm": True}


def _check(name: str, value: Any, allowed: Sequence[Any]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(str, allowed))}, not {value!r}")


class DetectorSteps(ZooModule):
    """Training and validation of a detector whose ``losses(batch)`` gives named losses: their sum is the loss;
    ``<stage>/loss`` and each ``<stage>/<name>`` are logged; the datamodule is checked against the model first."""

    input_size: int
    modality: str
    num_classes: int
    flow_folder: str | None

    def losses(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def record_flow_folder(self, folder: str) -> None:
        """Keep the flow folder trained on in the hyperparameters (``zoo benchmark`` reads it from there)."""
        raise NotImplementedError

    def _step(self, batch: dict[str, Any], stage: str) -> torch.Tensor:
        parts = self.losses(batch)
        loss = sum(parts.values())
        bs, sync = len(batch["boxes"]), stage != "train"
        self.log(f"{stage}/loss", loss, prog_bar=True, batch_size=bs, sync_dist=sync)
        self.log_dict({f"{stage}/{k}": v for k, v in parts.items()}, batch_size=bs, sync_dist=sync)
        return loss

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._step(batch, "val")

    def on_fit_start(self) -> None:
        folder = check_data(self)
        if folder is not None and self.flow_folder is None:
            self.record_flow_folder(folder)


class ActionSSD(DetectorSteps):
    """SSD300 (VGG16, fc-reduced) per frame for action detection, on one of three inputs (``stream``):

    - ``rgb``: the ROAD appearance stream; ``flow``: the same network on flow images (ROAD's motion stream);
    - ``two_in_one``: the RGB network with the motion condition layer on the flow image and the motion modulation
      layer after ``modulate_at`` (conv2_1 in the released code; the paper ablates it), F' = F * (gamma + 1) + beta.

    Inputs are 0..255 RGB with ``mean`` subtracted (ssd.pytorch's Caffe BGR mean, flipped; ROAD uses it for flow
    images too); the condition layer reads the flow image minus ``cond_mean`` (120 in Two-in-One's loader).
    ``flow_folder``: the flow images it reads (set
    from the datamodule at fit start when None; ``zoo benchmark`` reads the same folder).
    Training: MultiBox loss (``zoo.nn.multibox``), SGD with biases at ``bias_lr_factor`` x the rate and no weight
    decay, the rate times ``gamma`` at each of ``milestones`` (steps). ``pretrained_backbone``: ImageNet VGG16
    reduced as ``vgg16_reducedfc`` (ROAD starts its flow stream from a Brox-flow model; we start it from ImageNet).
    """

    def __init__(
        self,
        num_classes: int = 24,
        stream: str = "rgb",
        trunk: str = "vgg16",
        width: int = 8,
        input_size: int = 300,
        pretrained_backbone: bool = False,
        modulate_at: str = "conv2_1",
        cond_channels: tuple[int, int] = (64, 32),
        mean: tuple[float, float, float] = CAFFE_MEAN_RGB,
        cond_mean: float = 120.0,
        flow_folder: str | None = None,
        match_threshold: float = 0.5,
        neg_pos: int = 3,
        conf_thresh: float = 0.01,
        nms_thresh: float = 0.45,
        top_k: int = 20,
        optimizer: str = "sgd",
        lr: float = 1e-3,
        momentum: float = 0.9,
        weight_decay: float = 5e-4,
        bias_lr_factor: float = 2.0,
        milestones: Sequence[int] = (30000, 60000, 100000),
        gamma: float = 0.1,
    ) -> None:
        super().__init__()
        _check("stream", stream, STREAMS)
        _check("trunk", trunk, TRUNKS)
        self.save_hyperparameters()
        if trunk == "vgg16":
            if input_size != 300:
                raise ValueError(f"the VGG16 SSD is SSD300: input_size must be 300, not {input_size}")
            net = {"layers": VGG16_LAYERS, "fc_channels": 1024, "extras": SSD300_EXTRAS, "priors": SSD300_PRIORS}
        else:
            net = tiny_network(input_size, width)
        modulated = stream == "two_in_one"
        self.ssd = SSD(num_classes + 1, modulate_at=modulate_at if modulated else None, **net)
        self.ssd.init_new_layers()
        if pretrained_backbone:
            if trunk != "vgg16":
                raise ValueError("pretrained_backbone needs trunk='vgg16'")
            load_vgg16_reducedfc(self.ssd)
        if modulated:
            stride = 2 ** (int(modulate_at[len("conv"):].split("_")[0]) - 1)
            self.condition = MotionCondition(cond_channels[0], cond_channels[1])
            self.modulation = MotionModulation(cond_channels[1], self.ssd.channels_at(modulate_at), stride)
        self.criterion = MultiBoxLoss(match_threshold, neg_pos, self.ssd.spec.variances)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)

    @property
    def modality(self) -> str:
        """What ``detect`` reads: ``rgb``, ``flow`` or ``rgb+flow``."""
        return MODALITIES[self.hparams.stream]

    @property
    def input_size(self) -> int:
        return self.hparams.input_size

    @property
    def num_classes(self) -> int:
        return self.hparams.num_classes

    @property
    def flow_folder(self) -> str | None:
        return self.hparams.flow_folder if "flow" in self.modality else None

    def record_flow_folder(self, folder: str) -> None:
        self.hparams.flow_folder = folder

    def forward(self, images: torch.Tensor | None = None, flows: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """0..255 frames and/or flow images (B, 3, S, S) -> loc offsets (B, P, 4) and class logits (B, P, C + 1)."""
        stream = self.hparams.stream
        needed = self.modality.split("+")
        given = {"rgb": images, "flow": flows}
        missing = [k for k in needed if given[k] is None]
        if missing:
            raise ValueError(f"ActionSSD(stream={stream!r}) reads {' and '.join(needed)} images; "
                             f"{' and '.join(missing)} missing (datamodule inputs: {self.modality})")
        x = (flows if stream == "flow" else images).to(self.mean.dtype) - self.mean
        if stream != "two_in_one":
            return self.ssd(x)
        condition = self.condition(flows.to(self.mean.dtype) - self.hparams.cond_mean)
        return self.ssd(x, lambda feature: self.modulation(feature, condition))

    def raw(self, images: torch.Tensor | None, flows: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Per prior the decoded relative boxes (B, P, 4) and softmax scores (B, P, C + 1)."""
        loc, conf = self(images, flows)
        return decode(loc, self.ssd.priors, self.ssd.spec.variances), conf.float().softmax(-1)

    @torch.no_grad()
    def detect(self, images: torch.Tensor | None, flows: torch.Tensor | None) -> list[np.ndarray]:
        """Per frame (K, 6) rows ``label, score, x1, y1, x2, y2`` (input pixels, clipped to the image): per class
        scores above ``conf_thresh``, the ``top_k`` best, NMS at ``nms_thresh`` (ROAD's test settings)."""
        hp = self.hparams
        boxes, scores = self.raw(images, flows)
        return [_pixels(class_detections(b, s, hp.conf_thresh, hp.nms_thresh, hp.top_k), hp.input_size)
                for b, s in zip(boxes, scores)]

    def loss(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """(loc, conf) MultiBox loss of a ``collate_detections`` batch (boxes in input pixels)."""
        loc, conf = self(batch.get("rgb"), batch.get("flow"))
        size = self.hparams.input_size
        boxes = [b.to(loc.device) / size for b in batch["boxes"]]
        return self.criterion(loc, conf, self.ssd.priors, boxes, batch["labels"])

    def losses(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        loss_l, loss_c = self.loss(batch)
        return {"loc": loss_l, "conf": loss_c}

    def param_groups(self) -> list[dict[str, Any]]:
        """ROAD / Two-in-One's groups: weights at ``lr`` with weight decay, biases at ``bias_lr_factor`` x ``lr``
        without."""
        hp = self.hparams
        return weight_bias_groups(self.named_parameters(), hp.lr, hp.weight_decay, hp.bias_lr_factor)

    def schedule(self) -> MultiStep:
        return MultiStep(self.hparams.milestones, self.hparams.gamma)

    def configure_optimizers(self) -> Any:
        hp = self.hparams
        groups = self.param_groups()
        return _optimizers(groups, [self.schedule()] * len(groups), hp.optimizer, hp.lr, hp.momentum)


def check_data(module: DetectorSteps) -> str | None:
    """A ValueError when the trainer's datamodule gives images of another size, lacks an input ``module`` reads, has
    another number of classes or another flow folder than the model records; else the datamodule's flow folder
    (None when the model reads no flow or the datamodule does not say)."""
    data = getattr(module.trainer, "datamodule", None)
    hp = getattr(data, "hparams", {})
    name, data_name = type(module).__name__, type(data).__name__
    if "input_size" in hp and hp["input_size"] != module.input_size:
        raise ValueError(f"{data_name} gives {hp['input_size']} x {hp['input_size']} images; {name} takes "
                         f"{module.input_size}")
    if "inputs" in hp and not set(module.modality.split("+")) <= set(hp["inputs"].split("+")):
        raise ValueError(f"{data_name}(inputs={hp['inputs']!r}) lacks what {name} reads ({module.modality}): "
                         f"set the datamodule's inputs to {module.modality}")
    classes = getattr(data, "classes", None)
    if classes is not None and len(classes) != module.num_classes:
        raise ValueError(f"{data_name} has {len(classes)} classes; {name} detects {module.num_classes} "
                         "(set the model's num_classes)")
    layout = getattr(data, "layout", None)
    folder = layout().flow_dir if callable(layout) and "flow" in module.modality else None
    if folder is not None and module.flow_folder is not None and folder != module.flow_folder:
        raise ValueError(f"{data_name} reads flow images from {folder}; {name} was set up for "
                         f"{module.flow_folder} (flow_folder)")
    return folder


def _optimizers(groups: list[dict[str, Any]], schedules: list[MultiStep], optimizer: str, lr: float,
                momentum: float) -> dict[str, Any]:
    opt = make_optimizer(groups, optimizer, lr, momentum)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedules)
    return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def _pixels(dets: torch.Tensor, size: int) -> np.ndarray:
    out = dets.float().cpu().numpy()
    out[:, 2:] = np.clip(out[:, 2:], 0.0, 1.0) * size
    return out


class TwoStreamSSD(DetectorSteps):
    """Two streams, each detecting on its own, fused per frame (``zoo.two_in_one.fusion``): two-stream SSD (ROAD:
    ``appearance`` stream ``rgb``) or Two-in-One two-stream (the paper's best row: ``appearance`` stream
    ``two_in_one``), the ``motion`` stream an SSD on flow images. ``appearance`` / ``motion`` are the streams'
    ``ActionSSD`` arguments. Fitting trains both streams at once, each with its own loss, rate and schedule
    (their parameters are disjoint: the same as training each alone; both streams take the same optimiser);
    ``from_streams`` joins trained ones. ``fusion``: ``mean`` (our default; ROAD's best in its PyTorch release),
    ``union`` or ``boost``, with the appearance stream's ``conf_thresh``, ``nms_thresh`` and ``top_k`` for both.
    Both streams read one flow folder (the official Two-in-One reads fastOF images, ROAD's flow stream Brox's)."""

    def __init__(self, appearance: dict[str, Any] | None = None, motion: dict[str, Any] | None = None,
                 fusion: str = "mean", boost_iou: float = 0.3) -> None:
        super().__init__()
        _check("fusion", fusion, FUSIONS)
        self.save_hyperparameters()
        self.appearance, self.motion = _streams(appearance, motion)

    @classmethod
    def from_streams(cls, appearance: ActionSSD, motion: ActionSSD, **kwargs: Any) -> TwoStreamSSD:
        """The fusion of two trained streams (their weights copied; nothing downloaded)."""
        out = cls(ActionSSD.rebuild_kwargs(dict(appearance.hparams)), ActionSSD.rebuild_kwargs(dict(motion.hparams)),
                  **kwargs)
        out.appearance.load_state_dict(appearance.state_dict())
        out.motion.load_state_dict(motion.state_dict())
        return out.eval()

    @classmethod
    def from_checkpoints(cls, appearance: str | os.PathLike, motion: str | os.PathLike, **kwargs: Any
                         ) -> TwoStreamSSD:
        """The fusion of a ``zoo fit`` checkpoint of each stream."""
        import zoo

        return cls.from_streams(zoo.load(checkpoint_path=appearance), zoo.load(checkpoint_path=motion), **kwargs)

    @classmethod
    def rebuild_kwargs(cls, kwargs: dict[str, Any]) -> dict[str, Any]:
        out = dict(kwargs)
        for key in ("appearance", "motion"):
            if isinstance(out.get(key), dict):
                out[key] = ActionSSD.rebuild_kwargs(out[key])
        return out

    @property
    def modality(self) -> str:
        return "rgb+flow"

    @property
    def input_size(self) -> int:
        return self.appearance.hparams.input_size

    @property
    def num_classes(self) -> int:
        return self.appearance.hparams.num_classes

    @property
    def flow_folder(self) -> str | None:
        return self.motion.flow_folder

    def record_flow_folder(self, folder: str) -> None:
        for key in ("appearance", "motion"):
            getattr(self, key).record_flow_folder(folder)
            self.hparams[key] = {**(self.hparams[key] or {}), "flow_folder": folder}

    @torch.no_grad()
    def detect(self, images: torch.Tensor | None, flows: torch.Tensor | None) -> list[np.ndarray]:
        """Per frame the fused detections, rows ``label, score, x1, y1, x2, y2`` in input pixels; the appearance
        stream's ``conf_thresh``, ``nms_thresh`` and ``top_k``."""
        hp = self.appearance.hparams
        a_boxes, a_scores = self.appearance.raw(images, flows)
        m_boxes, m_scores = self.motion.raw(None, flows)
        return [_pixels(fuse((ab, ascore), (mb, mscore), self.hparams.fusion, hp.conf_thresh, hp.nms_thresh, hp.top_k,
                             self.hparams.boost_iou), hp.input_size)
                for ab, ascore, mb, mscore in zip(a_boxes, a_scores, m_boxes, m_scores)]

    def losses(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """Each stream's loss (loc + conf): their sum is what the optimiser follows."""
        return {name: sum(stream.loss(batch)) for name, stream in (("appearance", self.appearance),
                                                                   ("motion", self.motion))}

    def configure_optimizers(self) -> Any:
        a, m = self.appearance, self.motion
        hp = a.hparams
        a_groups, m_groups = a.param_groups(), m.param_groups()
        schedules = [a.schedule()] * len(a_groups) + [m.schedule()] * len(m_groups)
        return _optimizers(a_groups + m_groups, schedules, hp.optimizer, hp.lr, hp.momentum)


def _streams(appearance: dict[str, Any] | None, motion: dict[str, Any] | None) -> tuple[ActionSSD, ActionSSD]:
    # built outside TwoStreamSSD.__init__, whose arguments Lightning would otherwise add to theirs
    a = ActionSSD(**(appearance or {}))
    m = ActionSSD(**{**(motion or {}), "stream": "flow"})
    if a.hparams.stream == "flow":
        raise ValueError("the appearance stream must be 'rgb' or 'two_in_one', not 'flow'")
    if a.hparams.input_size != m.hparams.input_size or a.hparams.num_classes != m.hparams.num_classes:
        raise ValueError("the two streams must share input_size and num_classes")
    if (a.hparams.optimizer, a.hparams.momentum) != (m.hparams.optimizer, m.hparams.momentum):
        raise ValueError("the two streams are trained by one optimiser: they must share optimizer and momentum")
    folders = {f for f in (a.flow_folder, m.flow_folder) if f is not None}
    if len(folders) > 1:
        raise ValueError(f"the two streams read one flow folder, not {' and '.join(sorted(folders))}")
    return a, m


# ---------------------------------------------------------------------------------------------------------------
# Builders: the faithful SSD300 models and their tiny CPU versions

ROAD_RGB = {"lr": 1e-3, "milestones": (30000, 60000, 90000)}  # ROAD README: rgb, 120k iterations
# ROAD README: flow, 120k iterations; test-ucf24.py keeps flow-stream scores above 0.05 (0.01 for RGB)
ROAD_FLOW = {"stream": "flow", "lr": 1e-3, "milestones": (70000, 90000), "conf_thresh": 0.05}
TWO_IN_ONE = {"stream": "two_in_one", "lr": 1e-4, "milestones": (50000, 80000, 110000)}  # train-ucf24.py, 150k
TINY = {"trunk": "tiny", "width": 8, "input_size": 128, "cond_channels": (8, 4),
        "optimizer": "adam", "lr": 1e-3,
        "weight_decay": 0.0, "bias_lr_factor": 1.0, "milestones": ()}


@register_model
def ssd300_rgb(**kwargs: Any) -> ActionSSD:
    """ROAD's appearance stream: SSD300 on RGB frames (``pretrained_backbone=True``: ImageNet VGG16, as ROAD)."""
    return ActionSSD(**{**ROAD_RGB, **kwargs})


@register_model
def ssd300_flow(**kwargs: Any) -> ActionSSD:
    """ROAD's motion stream: SSD300 on flow images."""
    return ActionSSD(**{**ROAD_FLOW, **kwargs})


@register_model
def two_in_one(**kwargs: Any) -> ActionSSD:
    """Two-in-One: SSD300 on RGB with motion modulation after conv2_1 (the released ``Modulssd_CONV2.py``)."""
    return ActionSSD(**{**TWO_IN_ONE, **kwargs})


STREAM_ARGS = frozenset(inspect.signature(ActionSSD.__init__).parameters) - {"self"}


def two_stream(appearance: dict[str, Any], motion: dict[str, Any], kwargs: dict[str, Any]) -> TwoStreamSSD:
    """A ``TwoStreamSSD`` of two stream recipes: ``kwargs`` ``appearance`` / ``motion`` (dicts) update each recipe,
    other ``ActionSSD`` arguments (``num_classes``, ``input_size``, ...) both, the rest go to ``TwoStreamSSD``."""
    kwargs = dict(kwargs)
    shared = {k: kwargs.pop(k) for k in list(kwargs) if k in STREAM_ARGS}
    a = {**appearance, **shared, **(kwargs.pop("appearance", None) or {})}
    m = {**motion, **shared, **(kwargs.pop("motion", None) or {})}
    return TwoStreamSSD(a, m, **kwargs)


@register_model
def two_stream_ssd(**kwargs: Any) -> TwoStreamSSD:
    """ROAD two-stream: the RGB and flow SSD300 streams, detections fused per frame (``fusion``, default mean)."""
    return two_stream(ROAD_RGB, ROAD_FLOW, kwargs)


@register_model
def two_in_one_two_stream(**kwargs: Any) -> TwoStreamSSD:
    """Two-in-One two-stream, the paper's best row: Two-in-One fused with the flow SSD300 stream."""
    return two_stream(TWO_IN_ONE, ROAD_FLOW, kwargs)


@register_model
def ssd_rgb_tiny(**kwargs: Any) -> ActionSSD:
    """The RGB SSD on a small VGG (width 8) at 128 x 128, Adam: trains in minutes on a CPU."""
    return ActionSSD(**{**TINY, **kwargs})


@register_model
def ssd_flow_tiny(**kwargs: Any) -> ActionSSD:
    """The flow SSD, tiny (as ``ssd_rgb_tiny``)."""
    return ActionSSD(**{**TINY, "stream": "flow", **kwargs})


@register_model
def two_in_one_tiny(**kwargs: Any) -> ActionSSD:
    """Two-in-One, tiny (as ``ssd_rgb_tiny``; condition layer 8 channels wide)."""
    return ActionSSD(**{**TINY, "stream": "two_in_one", **kwargs})


@register_model
def two_stream_ssd_tiny(**kwargs: Any) -> TwoStreamSSD:
    """Two-stream SSD, tiny."""
    return two_stream(TINY, {**TINY, "stream": "flow"}, kwargs)


@register_model
def two_in_one_two_stream_tiny(**kwargs: Any) -> TwoStreamSSD:
    """Two-in-One two-stream, tiny."""
    return two_stream({**TINY, "stream": "two_in_one"}, {**TINY, "stream": "flow"}, kwargs)
