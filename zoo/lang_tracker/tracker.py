"""Model I (Li et al., CVPR 2017, Sec. 4): the lingual specification network grounds the sentence in every
frame; no box is needed, so many videos are tracked at once from their sentences alone."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from zoo.tracking.base import Tracker


class LingualTracker(Tracker):
    """Tracks by grounding the sentence in each frame; ``init`` returns the first-frame box it found (a given
    box is ignored: Model I uses the sentence only)."""

    needs_sentence = True

    def __init__(self, model, name: str | None = None, amp: bool | None = None) -> None:  # noqa: ANN001
        self.model = model.eval()
        self.name = name or "LangModelI"
        self.amp = model.mean.is_cuda if amp is None else amp  # bf16 on the GPU
        self.sentences: list[str] = []

    def init(self, image: np.ndarray, box: np.ndarray | None = None, sentence: str | None = None) -> np.ndarray:
        return self.init_batch([image], [box], [sentence])[0]

    def update(self, image: np.ndarray) -> np.ndarray:
        return self.update_batch([image])[0]

    def init_batch(
        self,
        images: Sequence[np.ndarray],
        boxes: Sequence[np.ndarray | None] | None = None,
        sentences: Sequence[str] | None = None,
    ) -> list[np.ndarray]:
        if sentences is None or len(sentences) != len(images) or not all(isinstance(s, str) for s in sentences):
            raise ValueError(f"{self.name} tracks from a sentence: give one per sequence")
        self.sentences = list(sentences)
        return list(self.model.ground(list(images), self.sentences, self.amp))

    def update_batch(self, images: Sequence[np.ndarray | None]) -> list[np.ndarray | None]:
        active = [k for k, image in enumerate(images) if image is not None]
        out: list[np.ndarray | None] = [None] * len(images)
        if active:
            found = self.model.ground([images[k] for k in active], [self.sentences[k] for k in active], self.amp)
            for k, box in zip(active, found):
                out[k] = box
        return out
