"""``zoo.load``: a registered model, a named checkpoint from the index, or a ``zoo fit`` checkpoint."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from zoo.errors import CheckpointError
from zoo.hub import download, load_checkpoint_file, verify_sha256, zoo_home
from zoo.module import ZooModule, module_classes
from zoo.registry import CheckpointEntry, get_entry, model_entrypoint


def cached_checkpoint(entry: CheckpointEntry, cache_dir: str | os.PathLike | None = None) -> Path:
    """The verified local file of an index entry, downloaded into the cache when absent."""
    folder = Path(cache_dir) if cache_dir is not None else zoo_home() / "checkpoints"
    path = folder / entry.file_name
    if not path.is_file():
        download(entry.url, path, sha256=entry.sha256)
    verify_sha256(path, entry.sha256)
    return path


def _state_dict(ckpt: Any, source: object) -> dict[str, torch.Tensor]:
    if isinstance(ckpt, dict) and isinstance(ckpt.get("state_dict"), dict):
        return ckpt["state_dict"]
    if isinstance(ckpt, dict) and ckpt and all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        return ckpt
    raise CheckpointError(f"{source}: holds no state_dict")


def _hparams(ckpt: dict[str, Any]) -> dict[str, Any]:
    hp = dict(ckpt.get("hyper_parameters") or {})
    return {k: v for k, v in hp.items() if not k.startswith("_")}


def _class_from_checkpoint(ckpt: dict[str, Any], source: object) -> type[ZooModule]:
    import zoo.models  # noqa: F401  (so the built-in classes are known)

    class_path = (ckpt.get("zoo") or {}).get("class_path") or (ckpt.get("hyper_parameters") or {}).get(
        "_class_path"
    )
    if not class_path:
        raise CheckpointError(f"{source}: no class recorded; pass the model name, zoo.load(NAME, checkpoint_path=...)")
    classes = module_classes()
    if class_path not in classes:
        raise CheckpointError(
            f"{source}: class {class_path} is not a known zoo module; import the module that defines it first"
        )
    return classes[class_path]


def _load_weights(model: torch.nn.Module, state: dict[str, torch.Tensor], strict: bool, source: object) -> Any:
    """``load_state_dict`` (its missing and unexpected keys) with a one-line error naming ``source``."""
    try:
        return model.load_state_dict(state, strict=strict)
    except RuntimeError as e:
        lines = [line.strip() for line in str(e).splitlines() if line.strip()]
        raise CheckpointError(f"{source}: weights do not fit the model: {' '.join(lines[1:3])[:400]}") from None


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

    ``name`` is ``arch`` or ``arch.tag``. With ``checkpoint_path`` the weights come from that file
    (a ``zoo fit`` ``.ckpt`` rebuilds its own class even without ``name``); else with ``pretrained`` the
    named checkpoint is fetched into the cache (``$ZOO_HOME``), its sha256 checked before it is read,
    and read with ``torch.load(weights_only=True)``. ``overrides`` go to the model's constructor.
    """
    if name is None and checkpoint_path is None:
        raise ValueError("zoo.load needs a model name or a checkpoint_path")
    if checkpoint_path is not None:
        source = Path(checkpoint_path)
        ckpt = load_checkpoint_file(source, map_location)
        if name is not None:
            entry_args = get_entry(name).args if "." in name else {}
            model = model_entrypoint(name.split(".", 1)[0])(**{**entry_args, **overrides})
        else:
            if not isinstance(ckpt, dict):
                raise CheckpointError(f"{source}: not a zoo checkpoint")
            cls = _class_from_checkpoint(ckpt, source)
            model = cls(**{**_hparams(ckpt), **overrides})
    elif pretrained:
        entry = get_entry(name)
        source = cached_checkpoint(entry, cache_dir)
        ckpt = load_checkpoint_file(source, map_location)
        model = model_entrypoint(entry.arch)(**{**entry.args, **overrides})
    else:
        return model_entrypoint(name.split(".", 1)[0])(**overrides).eval()
    _load_weights(model, _state_dict(ckpt, source), strict, source)
    return model.eval()
