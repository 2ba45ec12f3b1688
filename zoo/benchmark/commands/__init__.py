"""``zoo benchmark NAME``: one module per benchmark, each with ``DESCRIPTION`` and ``main(argv) -> int``.

A new benchmark is one new file here; ``zoo benchmark --help`` lists them. A module ``jhmdb_sentences.py`` is the
command ``jhmdb-sentences``.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType


def names() -> list[str]:
    """The benchmark commands: the modules of this package."""
    return sorted(m.name.replace("_", "-") for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


def get(name: str) -> ModuleType:
    """The module of benchmark ``name``."""
    return importlib.import_module(f"{__name__}.{name.replace('-', '_')}")
