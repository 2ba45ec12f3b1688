"""The tracker interface of the zoo, in the style of got10k-toolkit.

A tracker is two methods: ``init(image, box)`` with the first frame (RGB ``uint8 (H, W, 3)``) and the
target box ``(x, y, w, h)``, then ``update(image) -> box`` for each next frame. The batched form,
``init_batch`` / ``update_batch``, advances many sequences in lockstep; a model overrides it to score all
of them in one forward pass (the default loops over per-sequence copies).
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np

from zoo.module import ZooModule
from zoo.registry import register_model


class Tracker(ABC):
    """``init(image, box)``, ``update(image) -> box``; boxes are ``np.ndarray`` ``(x, y, w, h)``."""

    name: str = "tracker"
    needs_sentence: bool = False  # language trackers: init_batch gets ``sentences``

    @abstractmethod
    def init(self, image: np.ndarray, box: np.ndarray) -> None: ...

    @abstractmethod
    def update(self, image: np.ndarray) -> np.ndarray: ...

    def init_batch(
        self, images: Sequence[np.ndarray], boxes: Sequence[np.ndarray], sentences: Sequence[str] | None = None
    ) -> list[np.ndarray] | None:
        """Start one tracking state per sequence. Language trackers also get ``sentences`` and may return their
        own first-frame boxes (used in place of the given ones when they are ``None``)."""
        self._states = []
        for image, box in zip(images, boxes):
            state = copy.copy(self)
            state._states = None
            state.init(image, box)
            self._states.append(state)

    def update_batch(self, images: Sequence[np.ndarray | None]) -> list[np.ndarray | None]:
        """One step for every sequence; ``None`` marks a sequence that has ended."""
        return [None if image is None else state.update(image) for state, image in zip(self._states, images)]


class BatchTracker(Tracker):
    """A tracker whose batched form is the real one: ``init`` and ``update`` run it on a single sequence.
    ``init`` returns what ``init_batch`` returns for that sequence (a language tracker's own first box)."""

    def init(self, image: np.ndarray, box: np.ndarray | None = None, sentence: str | None = None) -> Any:
        out = self.init_batch([image], [box]) if sentence is None else self.init_batch([image], [box], [sentence])
        return None if out is None else out[0]

    def update(self, image: np.ndarray) -> np.ndarray:
        return self.update_batch([image])[0]


def as_tracker(model: Any) -> Tracker:
    """A Tracker from a zoo model: the model itself, or what its ``tracker()`` method returns."""
    if isinstance(model, Tracker):
        return model
    if callable(getattr(model, "tracker", None)):
        return model.tracker()
    raise TypeError(f"{type(model).__name__} is not a tracker (no init/update and no tracker() method)")


class IdentityTracker(ZooModule, Tracker):
    """Repeats the first box on every frame: the baseline every tracker must beat."""

    name = "IdentityTracker"

    def __init__(self) -> None:
        super().__init__()
        self.save_hyperparameters()
        self._box: np.ndarray | None = None

    def init(self, image: np.ndarray, box: np.ndarray) -> None:
        self._box = np.asarray(box, dtype=np.float64).copy()

    def update(self, image: np.ndarray) -> np.ndarray:
        return self._box.copy()


@register_model
def identity_tracker() -> IdentityTracker:
    """Tracker that repeats the first box (got10k's IdentityTracker); a floor for OTB scores."""
    return IdentityTracker()
