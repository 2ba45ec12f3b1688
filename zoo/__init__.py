"""videozoo: a PyTorch Lightning model zoo for video learning.

>>> import zoo
>>> zoo.list_models()
>>> model = zoo.load("clip_tiny", pretrained=False)
"""

__version__ = "0.1.0"

from zoo.errors import ZooError  # noqa: E402
from zoo.loading import load  # noqa: E402
from zoo.module import ZooModule  # noqa: E402
from zoo.registry import (  # noqa: E402
    add_index_dir,
    checkpoint_entries,
    get_entry,
    list_models,
    model_entrypoint,
    register_model,
)


def create_model(name: str, **kwargs):  # noqa: ANN201
    """A randomly initialised registered model, ``zoo.load(name, pretrained=False, **kwargs)`` in train mode."""
    return model_entrypoint(name)(**kwargs)


__all__ = [
    "ZooError",
    "ZooModule",
    "add_index_dir",
    "checkpoint_entries",
    "create_model",
    "get_entry",
    "list_models",
    "load",
    "model_entrypoint",
    "register_model",
    "__version__",
]
