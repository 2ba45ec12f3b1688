"""The base class of every zoo LightningModule."""

from __future__ import annotations

import hashlib
import inspect
import io
import os
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F


class ZooModule(pl.LightningModule):
    """A LightningModule that ``zoo.load`` can rebuild from a checkpoint alone.

    Subclasses call ``self.save_hyperparameters()`` in ``__init__``; the checkpoint then holds the
    constructor arguments and, under ``"zoo"``, the class path. Only registered zoo classes are rebuilt:
    the class path is looked up among ``ZooModule`` subclasses, never imported from the file.
    """

    @classmethod
    def rebuild_kwargs(cls, kwargs: dict[str, Any]) -> dict[str, Any]:
        """Constructor arguments for a model whose weights are loaded right after it is built (``zoo.load`` from a
        checkpoint): nothing is downloaded, ``pretrained_backbone=False`` where the class takes it, whatever the
        checkpoint's hyperparameters say. Subclasses holding other networks' arguments extend it."""
        if "pretrained_backbone" in inspect.signature(cls.__init__).parameters:
            return {**kwargs, "pretrained_backbone": False}
        return dict(kwargs)

    def save(self, path: str | os.PathLike) -> Path:
        """One checkpoint (weights, constructor arguments, class) that ``zoo.load(checkpoint_path=...)`` rebuilds;
        written atomically, with its sha256 beside it (``<path>.sha256``, checked on load)."""
        from zoo.hub import atomic_write_bytes, write_sha256_sidecar

        ckpt = {"state_dict": self.state_dict(), "hyper_parameters": dict(self.hparams)}
        self.on_save_checkpoint(ckpt)
        buffer = io.BytesIO()
        torch.save(ckpt, buffer)
        data = buffer.getvalue()
        atomic_write_bytes(Path(path), data)
        write_sha256_sidecar(path, hashlib.sha256(data).hexdigest())
        return Path(path)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        from zoo import __version__

        cls = type(self)
        checkpoint["zoo"] = {"class_path": f"{cls.__module__}.{cls.__qualname__}", "version": __version__}


def check_datamodule_agrees(module: pl.LightningModule, keys: tuple[str, ...]) -> None:
    """Raise ValueError when the trainer's datamodule has any of ``keys`` as a hyperparameter with another value
    than ``module`` has (the data would be cut for another network)."""
    data = getattr(module.trainer, "datamodule", None)
    data_hp = getattr(data, "hparams", {})
    wrong = [f"{k}: model {module.hparams[k]}, data {data_hp[k]}" for k in keys
             if k in data_hp and k in module.hparams and data_hp[k] != module.hparams[k]]
    if wrong:
        raise ValueError(f"{type(data).__name__} prepares other inputs than {type(module).__name__} reads "
                         f"({'; '.join(wrong)})")


def make_optimizer(params, optimizer: str, lr: float, momentum: float = 0.9, weight_decay: float = 0.0
                   ) -> torch.optim.Optimizer:  # noqa: ANN001
    """The zoo's two optimisers by name: ``"adam"`` or ``"sgd"`` (with momentum); ``params`` may be groups."""
    if optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    raise ValueError(f"optimizer must be 'sgd' or 'adam', not {optimizer!r}")


def weight_bias_groups(named_params, lr: float, weight_decay: float, bias_lr_factor: float = 2.0
                       ) -> list[dict[str, Any]]:  # noqa: ANN001
    """Caffe's usual multipliers (``lr_mult: 1 / 2``, ``decay_mult: 1 / 0``), as the UvA methods' prototxts and
    ssd.pytorch train: of ``(name, parameter)`` pairs, the weights at ``lr`` with ``weight_decay`` and the biases
    (names ending in ``bias``) at ``bias_lr_factor`` x ``lr`` without; an empty group is left out."""
    named = [(n, p) for n, p in named_params if p.requires_grad]
    groups = [
        {"params": [p for n, p in named if not n.endswith("bias")], "lr": lr, "weight_decay": weight_decay},
        {"params": [p for n, p in named if n.endswith("bias")], "lr": lr * bias_lr_factor, "weight_decay": 0.0},
    ]
    return [g for g in groups if g["params"]]


def hparams_optimizer(module: pl.LightningModule, params=None) -> torch.optim.Optimizer:  # noqa: ANN001
    """``make_optimizer`` from a module's ``optimizer``, ``lr``, ``momentum`` and ``weight_decay`` hyperparameters,
    over its trainable parameters unless ``params`` is given."""
    hp = module.hparams
    params = [p for p in module.parameters() if p.requires_grad] if params is None else params
    return make_optimizer(params, hp.optimizer, hp.lr, hp.get("momentum", 0.9), hp.get("weight_decay", 0.0))


class ClassifierSteps(ZooModule):
    """Training, validation and test steps of a classifier: batches ``{input_key: x, "label": y}``,
    cross-entropy, and ``<stage>/loss`` and ``<stage>/acc`` logged from ``self.<stage>_acc`` metrics."""

    input_key = "video"

    def _step(self, batch: dict[str, torch.Tensor], stage: str) -> torch.Tensor:
        logits = self(batch[self.input_key])
        loss = F.cross_entropy(logits, batch["label"])
        metric = getattr(self, f"{stage}_acc")
        metric(logits, batch["label"])
        bs = batch["label"].shape[0]
        self.log(f"{stage}/loss", loss, prog_bar=stage == "train", batch_size=bs, sync_dist=stage != "train")
        self.log(f"{stage}/acc", metric, prog_bar=True, on_step=False, on_epoch=True, batch_size=bs)
        return loss

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._step(batch, "test")


def module_classes() -> dict[str, type[ZooModule]]:
    """Every imported ZooModule subclass by ``module.QualName``."""
    found: dict[str, type[ZooModule]] = {}
    stack = [ZooModule]
    while stack:
        cls = stack.pop()
        for sub in cls.__subclasses__():
            found[f"{sub.__module__}.{sub.__qualname__}"] = sub
            stack.append(sub)
    return found
