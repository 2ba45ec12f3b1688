"""The base class of every zoo LightningModule."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl


class ZooModule(pl.LightningModule):
    """A LightningModule that ``zoo.load`` can rebuild from a checkpoint alone.

    Subclasses call ``self.save_hyperparameters()`` in ``__init__``; the checkpoint then holds the
    constructor arguments and, under ``"zoo"``, the class path. Only registered zoo classes are rebuilt:
    the class path is looked up among ``ZooModule`` subclasses, never imported from the file.
    """

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        from zoo import __version__

        cls = type(self)
        checkpoint["zoo"] = {"class_path": f"{cls.__module__}.{cls.__qualname__}", "version": __version__}


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
