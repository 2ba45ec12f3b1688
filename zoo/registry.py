"""The model registry (timm style) and the index of named checkpoints in ``checkpoints/``.

A model is registered by a builder function, ``@register_model def sint(**kwargs) -> ZooModule``; its
name is the function name. A checkpoint is named ``arch.tag`` and described by one YAML file in the
index: architecture and arguments, URL, sha256, size, dataset, metrics with their protocol, training
config, licence and provenance.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from zoo.errors import CheckpointError, UnknownModelError

F = TypeVar("F", bound=Callable[..., Any])

_MODELS: dict[str, Callable[..., Any]] = {}
_EXTRA_INDEX_DIRS: list[Path] = []

REQUIRED_KEYS = ("arch", "url", "sha256", "size", "dataset", "metrics", "protocol", "license", "provenance")


def register_model(fn: F) -> F:
    """Register a builder function under its own name; it must return a ``ZooModule``."""
    name = fn.__name__
    if name in _MODELS and _MODELS[name] is not fn:
        raise ValueError(f"model {name!r} is registered twice ({_MODELS[name].__module__} and {fn.__module__})")
    _MODELS[name] = fn
    return fn


def model_entrypoint(arch: str) -> Callable[..., Any]:
    """The builder of a registered architecture; an unknown name gets the closest matches."""
    _import_builtin_models()
    if arch not in _MODELS:
        import difflib

        close = difflib.get_close_matches(arch, _MODELS, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; known models: {', '.join(sorted(_MODELS))}"
        raise UnknownModelError(f"unknown model {arch!r}{hint}")
    return _MODELS[arch]


@dataclass(frozen=True)
class CheckpointEntry:
    """One named checkpoint of the index."""

    name: str
    arch: str
    url: str
    sha256: str
    size: int
    dataset: str
    metrics: dict[str, float]
    protocol: str
    license: str
    provenance: str
    args: dict[str, Any] = field(default_factory=dict)
    config: str | None = None
    default: bool = False
    source: str = ""

    @property
    def tag(self) -> str:
        return self.name.split(".", 1)[1]

    @property
    def file_name(self) -> str:
        base = self.url.rstrip("/").rsplit("/", 1)[-1]
        return base or f"{self.name}.pt"


def index_dirs() -> list[Path]:
    """Where index entries are read: the package's ``checkpoints/``, ``$ZOO_INDEX_PATH``, added dirs."""
    import checkpoints

    dirs = [Path(checkpoints.__file__).parent]
    dirs += [Path(p) for p in os.environ.get("ZOO_INDEX_PATH", "").split(os.pathsep) if p]
    return dirs + list(_EXTRA_INDEX_DIRS)


def add_index_dir(path: str | os.PathLike) -> None:
    """Read index entries from one more folder (for checkpoints you host yourself)."""
    _EXTRA_INDEX_DIRS.append(Path(path))


def _read_entry(path: Path) -> CheckpointEntry:
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise CheckpointError(f"{where}: invalid YAML in checkpoint index entry") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: a checkpoint index entry must be a mapping")
    name = data.get("name", path.stem)
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise CheckpointError(f"{path}: checkpoint index entry {name!r} lacks {', '.join(missing)}")
    if "." not in name or name.split(".", 1)[0] != data["arch"]:
        raise CheckpointError(f"{path}: entry name {name!r} must be '<arch>.<tag>' with arch {data['arch']!r}")
    known = set(CheckpointEntry.__dataclass_fields__)
    unknown = sorted(set(data) - known)
    if unknown:
        raise CheckpointError(f"{path}: unknown keys in checkpoint index entry: {', '.join(unknown)}")
    return CheckpointEntry(**{**data, "name": name, "source": str(path)})


def checkpoint_entries() -> dict[str, CheckpointEntry]:
    """All index entries by name, read fresh from disk."""
    entries: dict[str, CheckpointEntry] = {}
    for folder in index_dirs():
        for path in sorted(folder.glob("*.yaml")):
            entry = _read_entry(path)
            entries[entry.name] = entry
    return entries


def get_entry(name: str) -> CheckpointEntry:
    """The entry for ``arch.tag``, or for ``arch`` its default (or only) checkpoint."""
    entries = checkpoint_entries()
    if name in entries:
        return entries[name]
    if "." not in name:
        model_entrypoint(name)  # unknown architecture: the registry's message
        tagged = [e for e in entries.values() if e.arch == name]
        default = [e for e in tagged if e.default] or (tagged if len(tagged) == 1 else [])
        if default:
            return default[0]
        if tagged:
            raise UnknownModelError(
                f"{name!r} has several checkpoints, name one: {', '.join(sorted(e.name for e in tagged))}"
            )
        raise UnknownModelError(
            f"model {name!r} has no pretrained checkpoint in the index; use pretrained=False, or "
            "checkpoint_path= for your own file"
        )
    arch = name.split(".", 1)[0]
    model_entrypoint(arch)
    tags = sorted(e.name for e in entries.values() if e.arch == arch)
    raise UnknownModelError(f"unknown checkpoint {name!r}; {arch} has: {', '.join(tags) or 'none'}")


def list_models(pattern: str = "*", pretrained: bool = False) -> list[str]:
    """Registered architectures matching ``pattern``; with ``pretrained`` the named checkpoints instead."""
    _import_builtin_models()
    if pretrained:
        names = [e.name for e in checkpoint_entries().values() if e.arch in _MODELS]
    else:
        names = list(_MODELS)
    return sorted(n for n in names if fnmatch.fnmatchcase(n, pattern))


def _import_builtin_models() -> None:
    import zoo.models  # noqa: F401  (registers the built-in architectures)
