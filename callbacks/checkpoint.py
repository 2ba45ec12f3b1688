"""``HashedCheckpoint``: Lightning's ``ModelCheckpoint`` with a sha256 sidecar beside every checkpoint."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.plugins.io import AsyncCheckpointIO

from zoo.hub import read_sha256_sidecar, sidecar_path, write_sha256_sidecar


def _is_local(path: str | os.PathLike) -> bool:
    scheme = urlparse(str(path)).scheme
    return scheme in ("", "file") or len(scheme) == 1  # a Windows drive letter is no protocol


def _local(path: str | os.PathLike) -> Path:
    text = str(path)
    return Path(text[len("file://"):] if text.startswith("file://") else text)


class HashedCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` (same arguments) that writes ``<file>.sha256`` beside each checkpoint it saves, as
    ``sha256sum`` does (``"<hex>  <name>\\n"``, written atomically), and removes it with the checkpoint.

    ``last.ckpt`` gets its own sidecar whether it is saved, linked (``save_last="link"``) or copied. ``zoo.load``
    checks the sidecar before it reads a checkpoint, so a file changed after it was written is refused. Only
    local files get sidecars, written by the global-zero process; with ``AsyncCheckpointIO`` none is written.
    """

    def _save_checkpoint(self, trainer: pl.Trainer, filepath: str) -> None:
        if trainer.is_global_zero and _is_local(filepath):  # a kill between the two writes leaves no stale hash
            sidecar_path(_local(filepath)).unlink(missing_ok=True)
        super()._save_checkpoint(trainer, filepath)
        if not (trainer.is_global_zero and _is_local(filepath)):
            return
        if isinstance(getattr(trainer.strategy, "checkpoint_io", None), AsyncCheckpointIO):
            # still being written in the background: no hash to record, and an old one would no longer match
            sidecar_path(_local(filepath)).unlink(missing_ok=True)
        else:
            write_sha256_sidecar(_local(filepath))

    @staticmethod
    def _link_checkpoint(trainer: pl.Trainer, filepath: str, linkpath: str) -> None:
        ModelCheckpoint._link_checkpoint(trainer, filepath, linkpath)
        same = os.path.abspath(filepath) == os.path.abspath(linkpath)
        if trainer.is_global_zero and not same and _is_local(filepath) and _is_local(linkpath):
            # a symlink or a copy has the target's content: its recorded hash (none while written asynchronously)
            digest = read_sha256_sidecar(_local(filepath))
            if digest is None:
                sidecar_path(_local(linkpath)).unlink(missing_ok=True)
            else:
                write_sha256_sidecar(_local(linkpath), digest)

    def _remove_checkpoint(self, trainer: pl.Trainer, filepath: str) -> None:
        super()._remove_checkpoint(trainer, filepath)
        if trainer.is_global_zero and _is_local(filepath):
            sidecar_path(_local(filepath)).unlink(missing_ok=True)
