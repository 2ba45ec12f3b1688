"""The model registry (timm style) and the index of named checkpoints in ``checkpoints/``.

A model is registered by a builder function, ``@register_model def sint(**kwargs) -> ZooModule``; its
name is the function name. A checkpoint is named ``arch.tag`` and described by one YAML file in the
index: architecture and arguments, URL, sha256, size, dataset, metrics with their protocol, training
config, licence and provenance. An entry with ``convert`` (the command that converts the file at ``url``, such as
the authors' Caffe weights, which the zoo does not fetch) has no sha256 or size: the user converts it.
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

import yaml

from zoo.errors import CheckpointError, UnknownModelError

F = TypeVar("F", bound=Callable[..., Any])

_MODELS: dict[str, Callable[..., Any]] = {}
_EXTRA_INDEX_DIRS: list[Path] = []

REQUIRED_KEYS = ("arch", "url", "sha256", "size", "dataset", "metrics", "protocol", "license", "provenance")
ENTRY_KEYS = ("name", *REQUIRED_KEYS, "args", "config", "default", "convert")
CONVERTED_KEYS = ("sha256", "size")  # not required of an entry with ``convert``
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


def register_model(fn: F) -> F:
    """Register a builder function under its own name; it must return a ``ZooModule``."""
    name = fn.__name__
    if name in _MODELS and _MODELS[name] is not fn:
        raise ValueError(f"model {name!r} is registered twice ({_MODELS[name].__module__} and {fn.__module__})")
    _MODELS[name] = fn
    return fn


def model_entrypoint(arch: str) -> Callable[..., Any]:
    """The builder of a registered architecture; an unknown name gets the closest matches."""
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
    sha256: str | None
    size: int | None
    dataset: str
    metrics: dict[str, float]
    protocol: str
    license: str
    provenance: str
    args: dict[str, Any] = field(default_factory=dict)
    config: str | None = None
    default: bool = False
    convert: str | None = None
    source: str = ""

    @property
    def tag(self) -> str:
        return self.name.split(".", 1)[1]

    @property
    def file_name(self) -> str:
        """The cache file name, ``<arch>.<tag>-<sha256[:8]>.<ext>`` (ext from the URL, default ``pt``): unique
        per entry and content, even when several URLs end in the same name (``last.ckpt``); ``<arch>.<tag>.pt`` for an
        entry the user converts (``convert``)."""
        if self.convert:
            return f"{self.name}.pt"
        ext = Path(urlparse(self.url).path).suffix.lstrip(".")
        ext = ext if ext.isalnum() and len(ext) <= 8 else "pt"
        return f"{self.name}-{self.sha256[:8]}.{ext}"


def index_dirs() -> list[Path]:
    """Where index entries are read: the package's ``checkpoints/``, ``$ZOO_INDEX_PATH``, added dirs."""
    import checkpoints

    dirs = [Path(checkpoints.__file__).parent]
    dirs += [Path(p) for p in os.environ.get("ZOO_INDEX_PATH", "").split(os.pathsep) if p]
    return dirs + list(_EXTRA_INDEX_DIRS)


def add_index_dir(path: str | os.PathLike) -> None:
    """Read index entries from one more folder (for checkpoints you host yourself)."""
    _EXTRA_INDEX_DIRS.append(Path(path))


def _describe(value: object) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:60] + '...' if len(text) > 60 else text}"


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


_TEXT_KEYS = ("name", "arch", "url", "dataset", "protocol", "license", "provenance", "convert")


def _check_entry(path: Path, data: dict[str, Any]) -> None:
    """Raise CheckpointError naming ``path`` and the key for each value of the wrong type or form."""

    def wrong(key: str, expected: str) -> CheckpointError:
        return CheckpointError(f"{path}: {key} must be {expected}, not {_describe(data[key])}")

    for key in _TEXT_KEYS:
        if key in data and (not isinstance(data[key], str) or not data[key].strip()):
            raise wrong(key, "a non-empty string")
    converted = "convert" in data
    sha = data.get("sha256")
    if (sha is not None or not converted) and (not isinstance(sha, str) or not _SHA256.fullmatch(sha)):
        raise wrong("sha256", "a string of 64 hex digits (quote it in YAML)")
    size = data.get("size")
    if (size is not None or not converted) and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
        raise wrong("size", "a number of bytes (a non-negative integer)")
    metrics = data.get("metrics")
    if not isinstance(metrics, dict) or not all(isinstance(k, str) and _is_number(v) for k, v in metrics.items()):
        raise wrong("metrics", "a mapping of metric names to numbers")
    if "args" in data and not (isinstance(data["args"], dict) and all(isinstance(k, str) for k in data["args"])):
        raise wrong("args", "a mapping of constructor argument names to values")
    if data.get("config") is not None and not isinstance(data["config"], str):
        raise wrong("config", "a path (a string)")
    if "default" in data and not isinstance(data["default"], bool):
        raise wrong("default", "true or false")


def _read_entry(path: Path) -> CheckpointEntry:
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise CheckpointError(f"{where}: invalid YAML in checkpoint index entry") from None
    except (OSError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: cannot read checkpoint index entry ({e})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: a checkpoint index entry must be a mapping")
    data.setdefault("name", path.stem)
    unknown = sorted(str(k) for k in set(data) - set(ENTRY_KEYS))
    if unknown:
        raise CheckpointError(f"{path}: unknown keys in checkpoint index entry: {', '.join(unknown)}")
    name = data["name"]
    missing = [k for k in REQUIRED_KEYS if k not in data and not ("convert" in data and k in CONVERTED_KEYS)]
    if missing:
        raise CheckpointError(f"{path}: checkpoint index entry {name!r} lacks {', '.join(missing)}")
    _check_entry(path, data)
    if "." not in name or name.split(".", 1)[0] != data["arch"]:
        raise CheckpointError(f"{path}: entry name {name!r} must be '<arch>.<tag>' with arch {data['arch']!r}")
    sha = data.get("sha256")
    return CheckpointEntry(**{"size": None, **data, "sha256": sha.lower() if sha else None, "source": str(path)})


def checkpoint_entries() -> dict[str, CheckpointEntry]:
    """All index entries by name, read fresh from disk."""
    entries: dict[str, CheckpointEntry] = {}
    for folder in index_dirs():
        for path in sorted(folder.glob("*.yaml")):
            entry = _read_entry(path)
            entries[entry.name] = entry
    return entries


def _existing(entries: dict[str, CheckpointEntry]) -> str:
    names = sorted(e.name for e in entries.values() if e.arch in _MODELS)
    return f"named checkpoints: {', '.join(names)}" if names else "the index has no named checkpoints yet"


def get_entry(name: str) -> CheckpointEntry:
    """The entry for ``arch.tag``, or for ``arch`` its default (or only) checkpoint.

    An unknown architecture, an unknown tag, or an architecture without checkpoints is an UnknownModelError
    that lists what exists.
    """
    entries = checkpoint_entries()
    if name in entries:
        return entries[name]
    arch = name.split(".", 1)[0]
    model_entrypoint(arch)  # unknown architecture: the registry's message
    tagged = sorted(e.name for e in entries.values() if e.arch == arch)
    if "." in name:
        has = f"{arch} has: {', '.join(tagged)}" if tagged else f"{arch} has none; {_existing(entries)}"
        raise UnknownModelError(f"unknown checkpoint {name!r}; {has}")
    # the only entry is the default, unless the user converts it (``convert``): then only an explicit ``default``
    default = [entries[n] for n in tagged if entries[n].default] or (
        [entries[tagged[0]]] if len(tagged) == 1 and not entries[tagged[0]].convert else [])
    if default:
        return default[0]
    if len(tagged) > 1:
        raise UnknownModelError(f"{name!r} has several checkpoints, name one: {', '.join(tagged)}")
    if tagged:
        raise UnknownModelError(f"{name!r} has no checkpoint ready to download; {tagged[0]} is the authors' file, "
                                f"which you convert first (`zoo info {tagged[0]}` says how), or use pretrained=False")
    raise UnknownModelError(
        f"model {name!r} has no pretrained checkpoint in the index ({_existing(entries)}); use pretrained=False, "
        "or checkpoint_path= for your own file"
    )


def list_models(pattern: str = "*", pretrained: bool = False) -> list[str]:
    """Registered architectures matching ``pattern``; with ``pretrained`` the named checkpoints instead."""
    if pretrained:
        names = [e.name for e in checkpoint_entries().values() if e.arch in _MODELS]
    else:
        names = list(_MODELS)
    return sorted(n for n in names if fnmatch.fnmatchcase(n, pattern))

