"""The benchmark machinery every task shares: a run's identity, its result folder, and the test loop.

A run is identified by what produced it (``run_identity``: the weights' sha256, the tracker's or model's
settings, the data and the protocol). Its folder holds ``run.json`` (that identity) and one result file per
video, each written atomically as the video finishes. A rerun with the same identity resumes: the videos
already written are skipped (and counted); a rerun with another identity into the same folder is refused
with one line saying what differs, so a folder never mixes two models' results. ``run_test_loop`` runs a
``BenchmarkModule`` in Lightning's test loop, split across DDP ranks.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch

from zoo.errors import ZooError
from zoo.hub import atomic_write_bytes

IDENTITY_FILE = "run.json"


class RunClashError(ZooError):
    """A result folder written by another run (other weights, settings, data or protocol)."""


def weights_sha256(modules: Iterable[torch.nn.Module]) -> str:
    """sha256 over the names, dtypes, shapes and bytes of the modules' parameters and buffers."""
    digest = hashlib.sha256()
    for k, module in enumerate(modules):
        for name, tensor in module.state_dict().items():
            t = tensor.detach().cpu().contiguous()
            digest.update(f"{k}.{name}:{t.dtype}:{tuple(t.shape)}".encode())
            digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _plain(value: Any) -> Any:
    """``value`` as JSON if it is a setting (numbers, strings, tuples, small arrays), else ``None``."""
    if isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, tuple) and all(isinstance(v, (bool, int, float, str)) for v in value):
        return list(value)
    if isinstance(value, np.ndarray) and value.size <= 64 and value.dtype.kind in "biuf":
        return value.tolist()
    return None


def _json(value: Any) -> Any:
    """A hyperparameter as JSON: plain values, lists, tuples and mappings of them; anything else by its type."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_json(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    return f"<{type(value).__name__}>"


def settings_of(obj: Any) -> dict[str, Any]:
    """The settings of an object: its plain public attributes that are set (``None`` and tracking state such as
    tensors and lists are left out, so a tracker's identity does not change once it has run), the sha256 of
    every module it holds (public or not), and a module's hyperparameters."""
    out: dict[str, Any] = {"class": f"{type(obj).__module__}.{type(obj).__qualname__}"}
    modules = {}
    for key, value in sorted(vars(obj).items()):
        if isinstance(value, torch.nn.Module):
            modules[key] = value
        elif not key.startswith("_") and (plain := _plain(value)) is not None:
            out[key] = plain
    if isinstance(obj, torch.nn.Module):
        out["weights_sha256"] = weights_sha256([obj])
        hp = getattr(obj, "hparams", None)
        if hp:
            out["hparams"] = {k: _json(v) for k, v in sorted(dict(hp).items()) if not k.startswith("_")}
    for key, module in modules.items():
        out[key] = settings_of(module)
    return out


def run_identity(model: Any, **protocol: Any) -> dict[str, Any]:
    """What produced a run: the model's (or tracker's) settings and weights, plus ``protocol`` (data, split,
    convention...); ``source`` in ``protocol`` describes where the weights came from (name, checkpoint sha256)."""
    return {"model": settings_of(model), **{k: v for k, v in sorted(protocol.items())}}


def identity_key(identity: dict[str, Any]) -> str:
    """A short hash of an identity (12 hex digits)."""
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:12]


def _first_difference(a: Any, b: Any, path: str = "") -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b), key=lambda k: (k != "source", k)):  # where the weights came from first
            if a.get(k, "<unset>") != b.get(k, "<unset>"):
                return _first_difference(a.get(k, "<unset>"), b.get(k, "<unset>"), f"{path}.{k}" if path else k)
        return path
    return f"{path}: {_short(b)!r} here, {_short(a)!r} there"


def _short(value: Any) -> Any:
    return value[:12] + "..." if isinstance(value, str) and len(value) == 64 else value


def read_identity(path: str | os.PathLike) -> dict[str, Any]:
    """A ``run.json``; a malformed one is a RunClashError naming ``file:line``."""
    path = Path(path)
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as e:
        line = path.read_bytes()[: e.start].count(b"\n") + 1
        raise RunClashError(f"{path}:{line}: not a run identity file (not UTF-8)") from None
    except json.JSONDecodeError as e:
        raise RunClashError(f"{path}:{e.lineno}: not a run identity file (corrupt JSON: {e.msg})") from None
    if not isinstance(data, dict):
        raise RunClashError(f"{path}:1: not a run identity file (not a JSON object)")
    return data


class ResultStore:
    """One run's result folder: ``run.json`` plus one file per video (``<video><suffix>``), written atomically."""

    def __init__(self, folder: str | os.PathLike, identity: dict[str, Any], suffix: str = ".txt") -> None:
        self.folder = Path(folder)
        self.identity = identity
        self.suffix = suffix

    def check(self) -> int:
        """Raise RunClashError when the folder holds another run's results; return how many it holds."""
        marker = self.folder / IDENTITY_FILE
        existing = sorted(self.folder.glob(f"*{self.suffix}")) if self.folder.is_dir() else []
        if marker.is_file() and not existing:
            return 0  # a run that wrote nothing (it failed before its first result): start afresh
        if marker.is_file():
            theirs = read_identity(marker)
            if theirs != self.identity:
                raise RunClashError(
                    f"{self.folder}: holds the results of another run ({_first_difference(theirs, self.identity)}); "
                    "give another --name or --out to keep both, or delete the folder"
                )
        elif existing:
            raise RunClashError(
                f"{self.folder}: holds {len(existing)} result files of an unknown run (no {IDENTITY_FILE}); "
                "give another --name or --out, or delete the folder"
            )
        return len(existing)

    def open(self) -> None:
        """Check, then record the identity (rank 0 only, before any result is written)."""
        written = self.check()
        marker = self.folder / IDENTITY_FILE
        if not written:
            atomic_write_bytes(marker, json.dumps(self.identity, indent=1, sort_keys=True).encode())

    def path(self, video: str, suffix: str | None = None, sub: str | None = None) -> Path:
        folder = self.folder / sub if sub else self.folder
        return folder / f"{video}{self.suffix if suffix is None else suffix}"

    def write(self, video: str, data: bytes, suffix: str | None = None, sub: str | None = None) -> Path:
        """Write one video's result atomically; a result file that exists is complete."""
        path = self.path(video, suffix, sub)
        atomic_write_bytes(path, data)
        return path


class BenchmarkModule(pl.LightningModule):
    """A LightningModule for ``trainer.test`` that runs a model over videos and writes one result each to its
    ``ResultStore``; a subclass implements ``test_step``, reading ``self.store`` and counting ``self.resumed``."""

    def __init__(self, store: ResultStore) -> None:
        super().__init__()
        self.store = store
        self.resumed = 0
        self.ran = 0
        self.frames = 0
        self.seconds = 0.0

    def on_test_epoch_end(self) -> None:
        """Counts summed over ranks (every rank takes part, whatever its share was)."""
        counts = torch.tensor([float(self.resumed), float(self.ran), float(self.frames), self.seconds],
                              dtype=torch.float64, device=self.device)
        counts = self.trainer.strategy.reduce(counts, reduce_op="sum")
        self.resumed, self.ran, self.frames, self.seconds = int(counts[0]), int(counts[1]), int(counts[2]), float(
            counts[3])


def run_test_loop(module: BenchmarkModule, datamodule: pl.LightningDataModule, **trainer_kwargs: Any) -> bool:
    """Run ``module`` over ``datamodule``'s test set with the zoo's Trainer (DDP across ranks when there are
    several devices); the store's identity is recorded first. Returns whether this is rank 0."""
    from zoo.trainer import build_trainer

    defaults = dict(loggers="", enable_checkpointing=False, enable_model_summary=False, logger=False,
                    default_root_dir=str(module.store.folder))
    trainer = build_trainer(**{**defaults, **trainer_kwargs})
    if trainer.is_global_zero:
        module.store.open()
    trainer.strategy.barrier()
    trainer.test(module, datamodule=datamodule, verbose=False)
    trainer.strategy.barrier()
    return trainer.is_global_zero
