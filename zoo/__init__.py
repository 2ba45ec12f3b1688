"""videozoo: a PyTorch Lightning model zoo for video learning.

>>> import zoo
>>> zoo.list_models()
>>> model = zoo.create_model("clip_tiny")  # random weights, train mode; nothing is downloaded
>>> model = zoo.load("clip_tiny", pretrained=False)  # the same in eval mode
"""

__version__ = "0.1.0"

from zoo.errors import ZooError  # noqa: E402
from zoo.loading import create_model, load  # noqa: E402
from zoo.module import ZooModule  # noqa: E402
from zoo.registry import (  # noqa: E402
    add_index_dir,
    checkpoint_entries,
    get_entry,
    list_models,
    model_entrypoint,
    register_model,
)

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

# last, after the API above: registers the built-in architectures whenever any part of zoo is imported
# (zoo.registry stays a leaf that imports no model)
import zoo.models  # noqa: E402, F401
