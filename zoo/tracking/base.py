"""The tracker interface of the zoo, in the style of got10k-toolkit.

A tracker is two methods: ``init(image, box)`` with the first frame and the target box ``(x, y, w, h)``,
then ``update(image) -> box`` for each next frame; ``track(img_files, box)`` runs a whole sequence as
got10k-toolkit's ``Tracker.track`` does. The batched form, ``init_batch`` / ``update_batch``, advances many
sequences in lockstep; a model overrides it to score all of them in one forward pass (the default loops over
per-sequence copies).

Images may be numpy arrays (RGB ``uint8 (H, W, 3)``, grayscale ``(H, W)`` / ``(H, W, 1)``, RGBA), PIL images
or file paths, and boxes lists, tuples or arrays: ``Tracker`` converts them (``as_rgb``, ``as_box``) before
any subclass's ``init``, ``update``, ``init_batch`` or ``update_batch`` runs, so those always see RGB
``uint8 (H, W, 3)`` arrays and float64 ``(4,)`` boxes.
"""

from __future__ import annotations

import copy
import functools
import os
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np

from datamodules.video import read_rgb
from zoo.module import ZooModule
from zoo.registry import register_model

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

ImageLike: TypeAlias = "np.ndarray | PILImage | str | os.PathLike[str]"
BoxLike: TypeAlias = "Sequence[float] | np.ndarray"


def _describe(value: object, limit: int = 60) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= limit else text[: limit - 3] + '...'}"


def as_rgb(image: ImageLike) -> np.ndarray:
    """An image as RGB ``uint8 (H, W, 3)`` C-contiguous numpy, the frames every zoo tracker reads.

    Takes a numpy ``uint8`` array (``(H, W, 3)`` RGB, returned as is when contiguous; ``(H, W)`` or
    ``(H, W, 1)`` grayscale, repeated to 3 channels; ``(H, W, 4)`` RGBA, alpha dropped as PIL's
    ``convert("RGB")`` does), a PIL image (converted to RGB, as got10k-toolkit reads frames) or a path to an
    image file. Anything else is a TypeError, a wrong shape or dtype a ValueError, naming what was given."""
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8:
            raise ValueError(f"an image array must be uint8 (0-255), got {image.dtype} of shape {image.shape}")
        if image.ndim == 3 and image.shape[2] == 3:
            rgb = image
        elif image.ndim == 2:
            rgb = np.repeat(image[:, :, None], 3, axis=2)
        elif image.ndim == 3 and image.shape[2] == 1:
            rgb = np.repeat(image, 3, axis=2)
        elif image.ndim == 3 and image.shape[2] == 4:
            rgb = image[:, :, :3]
        else:
            raise ValueError(
                f"an image array must be (H, W, 3) RGB, (H, W) or (H, W, 1) gray, or (H, W, 4) RGBA; got {image.shape}"
            )
        if rgb.shape[0] == 0 or rgb.shape[1] == 0:
            raise ValueError(f"an image must have pixels, got shape {image.shape}")
        return rgb if rgb.flags.c_contiguous else np.ascontiguousarray(rgb)
    if isinstance(image, (str, os.PathLike)):
        if not Path(image).is_file():
            raise FileNotFoundError(f"{os.fspath(image)}: no such image file")
        return read_rgb(image)
    pil = sys.modules.get("PIL.Image")  # an object can only be a PIL image once PIL is imported
    if pil is not None and isinstance(image, pil.Image):
        return as_rgb(np.array(image if image.mode == "RGB" else image.convert("RGB")))
    raise TypeError(f"expected an image (numpy uint8 array, PIL image or file path), got {_describe(image)}")


def as_box(box: BoxLike) -> np.ndarray:
    """A box as a new float64 ``(4,)`` array ``(x, y, w, h)`` (a list, tuple or array of 4 numbers, as
    got10k-toolkit's ``init(image, box)`` takes); a ValueError unless they are finite with ``w, h > 0``."""
    try:
        b = np.array(box, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise ValueError(f"a box is 4 numbers x, y, w, h; got {_describe(box)}") from None
    if b.shape != (4,):
        raise ValueError(f"a box is 4 numbers x, y, w, h; got {b.size} numbers: {_describe(box)}")
    if not (np.isfinite(b).all() and b[2] > 0 and b[3] > 0):
        raise ValueError(f"a box needs finite x, y and a positive size w, h > 0; got {b.tolist()}")
    return b


def _images(images: Sequence[ImageLike | None]) -> list[np.ndarray | None]:
    return [None if image is None else as_rgb(image) for image in images]


def _boxes(boxes: Sequence[BoxLike | None] | None, count: int) -> list[np.ndarray | None] | None:
    if boxes is None:
        return None
    boxes = list(boxes)
    if len(boxes) != count:
        raise ValueError(f"init_batch got {count} images but {len(boxes)} boxes")
    return [None if b is None else as_box(b) for b in boxes]


def _swap(args: tuple, kwargs: dict, index: int, key: str, convert: Callable[[Any], Any]) -> tuple[tuple, dict]:
    """``args``/``kwargs`` with argument ``index`` (or keyword ``key``) converted, if it was given."""
    if len(args) > index:
        args = (*args[:index], convert(args[index]), *args[index + 1 :])
    elif key in kwargs:
        kwargs = {**kwargs, key: convert(kwargs[key])}
    return args, kwargs


def _init_args(args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    args, kwargs = _swap(args, kwargs, 0, "image", as_rgb)
    return _swap(args, kwargs, 1, "box", lambda b: None if b is None else as_box(b))


def _update_args(args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    return _swap(args, kwargs, 0, "image", as_rgb)


def _init_batch_args(args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    args, kwargs = _swap(args, kwargs, 0, "images", _images)
    images = args[0] if args else kwargs.get("images", [])
    return _swap(args, kwargs, 1, "boxes", lambda b: _boxes(b, len(images)))


def _update_batch_args(args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    return _swap(args, kwargs, 0, "images", _images)


_CONVERTERS: dict[str, Callable[[tuple, dict], tuple[tuple, dict]]] = {
    "init": _init_args,
    "update": _update_args,
    "init_batch": _init_batch_args,
    "update_batch": _update_batch_args,
}


def _converting(fn: Callable, convert: Callable[[tuple, dict], tuple[tuple, dict]]) -> Callable:
    """``fn`` called with its arguments converted by ``convert``."""
    @functools.wraps(fn)
    def wrapper(self: Tracker, *args: Any, **kwargs: Any) -> Any:
        args, kwargs = convert(args, kwargs)
        return fn(self, *args, **kwargs)

    wrapper._as_rgb = True
    return wrapper


def _show_frame(image: np.ndarray, box: np.ndarray) -> None:
    """Draw ``image`` with ``box`` in a matplotlib window, as got10k-toolkit's ``show_frame``."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    fig = plt.figure("track")
    fig.clf()
    ax = fig.add_subplot(1, 1, 1)
    ax.imshow(image)
    ax.add_patch(Rectangle(tuple(box[:2]), box[2], box[3], fill=False, edgecolor="r", linewidth=2))
    ax.set_axis_off()
    plt.pause(0.001)


class Tracker(ABC):
    """``init(image, box)``, ``update(image) -> box``; boxes are ``np.ndarray`` ``(x, y, w, h)``.

    Every subclass's ``init``, ``update``, ``init_batch`` and ``update_batch`` are wrapped when the class is
    made so that they receive RGB ``uint8 (H, W, 3)`` arrays (``as_rgb``) and float64 boxes (``as_box``),
    whatever the caller passed (arrays already in that form are not copied)."""

    name: str = "tracker"
    needs_sentence: bool = False  # language trackers: init_batch gets ``sentences``

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for attr, convert in _CONVERTERS.items():
            fn = cls.__dict__.get(attr)
            if callable(fn) and not isinstance(fn, (staticmethod, classmethod)) and not getattr(fn, "_as_rgb", False):
                setattr(cls, attr, _converting(fn, convert))

    @abstractmethod
    def init(self, image: ImageLike, box: BoxLike) -> None: ...

    @abstractmethod
    def update(self, image: ImageLike) -> np.ndarray: ...

    def init_batch(
        self, images: Sequence[ImageLike], boxes: Sequence[BoxLike], sentences: Sequence[str] | None = None
    ) -> list[np.ndarray] | None:
        """Start one tracking state per sequence. Language trackers also get ``sentences`` and may return their
        own first-frame boxes (used in place of the given ones when they are ``None``)."""
        self._states = []
        for image, box in zip(images, boxes):
            state = copy.copy(self)
            state._states = None
            state.init(image, box)
            self._states.append(state)

    def update_batch(self, images: Sequence[ImageLike | None]) -> list[np.ndarray | None]:
        """One step for every sequence; ``None`` marks a sequence that has ended."""
        return [None if image is None else state.update(image) for state, image in zip(self._states, images)]

    def track(
        self, img_files: Sequence[ImageLike], box: BoxLike | None, visualize: bool = False, sentence: str | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Track one sequence as got10k-toolkit's ``Tracker.track``: ``init`` on the first frame, ``update`` on
        the rest. Returns ``boxes`` ``(N, 4)`` (the first row the given box, or a language tracker's own first
        box; give it the ``sentence``) and ``times`` ``(N,)``, the seconds of each call (reading excluded).
        ``img_files`` are paths or images (anything ``as_rgb`` reads); ``visualize`` draws each frame."""
        frames = list(img_files)
        if not frames:
            raise ValueError("track needs at least one frame")
        first = None if box is None else as_box(box)
        boxes = np.zeros((len(frames), 4))
        times = np.zeros(len(frames))
        for f, frame in enumerate(frames):
            image = as_rgb(frame)
            start = time.perf_counter()
            if f == 0:
                out = self.init(image, first) if sentence is None else self.init(image, first, sentence=sentence)
            else:
                boxes[f] = self.update(image)
            times[f] = time.perf_counter() - start
            if f == 0:
                if out is not None and (first is None or self.needs_sentence):
                    first = np.asarray(out, dtype=np.float64)
                if first is None:
                    raise ValueError(f"{self.name}: init found no first box; give track one")
                boxes[0] = first
            if visualize:
                _show_frame(image, boxes[f])
        return boxes, times


Tracker.init_batch = _converting(Tracker.init_batch, _init_batch_args)
Tracker.update_batch = _converting(Tracker.update_batch, _update_batch_args)


class BatchTracker(Tracker):
    """A tracker whose batched form is the real one: ``init`` and ``update`` run it on a single sequence.
    ``init`` returns what ``init_batch`` returns for that sequence (a language tracker's own first box)."""

    def init(self, image: ImageLike, box: BoxLike | None = None, sentence: str | None = None) -> Any:
        out = self.init_batch([image], [box]) if sentence is None else self.init_batch([image], [box], [sentence])
        return None if out is None else out[0]

    def update(self, image: ImageLike) -> np.ndarray:
        return self.update_batch([image])[0]


def as_tracker(model: Any) -> Tracker:
    """A Tracker from a zoo model: the model itself, or what its ``tracker()`` method returns."""
    if isinstance(model, Tracker):
        return model
    if callable(getattr(model, "tracker", None)):
        return model.tracker()
    raise TypeError(f"{type(model).__name__} is not a tracker (no init/update and no tracker() method)")


class IdentityTracker(ZooModule, Tracker):
    """Repeats the first box on every frame: the baseline every tracker must beat (got10k's IdentityTracker)."""

    name = "IdentityTracker"

    def __init__(self) -> None:
        super().__init__()
        self.save_hyperparameters()
        self._box: np.ndarray | None = None

    def init(self, image: ImageLike, box: BoxLike) -> None:
        self._box = as_box(box)

    def update(self, image: ImageLike) -> np.ndarray:
        return self._box.copy()


@register_model
def identity_tracker() -> IdentityTracker:
    """Tracker that repeats the first box (got10k's IdentityTracker); a floor for OTB scores."""
    return IdentityTracker()
