"""What the action-recognition benchmark (``zoo benchmark ucf101|hmdb51``) and ``zoo predict --video`` need of a
clip classifier, shared by the zoo's classifiers (TSN's ``ClipClassifier``, ``O3NClassifier``).

A ``VideoClassifier`` scores independent clips (``clip_logits``), says how its evaluation clips are cut
(``eval_clip_spec``) and at what size (``frame_size``), and knows its class names. The names and the data settings
come from the datamodule when fitting starts (``class_names`` and ``clip_sampling`` hyperparameters, so every
checkpoint of ``zoo fit`` carries them); ``predict_video`` classifies a video file with them.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from datamodules.eval_views import ClipSpec

log = logging.getLogger(__name__)


class VideoClassifier:
    """Mixin of a ``ZooModule`` classifier whose constructor takes ``class_names`` and ``clip_sampling`` (None until
    a fit fills them in from the datamodule's ``class_names`` and ``clip_sampling``)."""

    default_frame_size: tuple[int, int] = (112, 112)

    def clip_logits(self, clips: torch.Tensor) -> torch.Tensor:
        """Class logits of independent clips: uint8 ``(N, T, 3, H, W)`` -> ``(N, num_classes)``."""
        raise NotImplementedError

    def eval_clip_spec(self) -> ClipSpec:
        """How evaluation clips are cut from a video."""
        raise NotImplementedError

    @property
    def sampling(self) -> dict[str, Any]:
        """The data settings recorded at fit time (empty when the model was never fitted by ``zoo fit``)."""
        return dict(self.hparams.get("clip_sampling") or {})

    @property
    def frame_size(self) -> tuple[int, int]:
        """The (height, width) frames were given to the network in training: the datamodule's ``size``."""
        size = self.sampling.get("size")
        return (int(size[0]), int(size[1])) if size else tuple(self.default_frame_size)

    @property
    def classes(self) -> list[str] | None:
        """Class names in label order, or None when the checkpoint records none."""
        names = self.hparams.get("class_names")
        return list(names) if names else None

    def on_fit_start(self) -> None:
        """Record the datamodule's class names and data settings in the hyperparameters (saved in checkpoints)."""
        data = getattr(self.trainer, "datamodule", None)
        names = getattr(data, "class_names", None)
        if names is not None:
            if len(names) != self.hparams.num_classes:
                raise ValueError(f"{type(data).__name__} has {len(names)} classes, {type(self).__name__} was built "
                                 f"for num_classes={self.hparams.num_classes}")
            self.hparams.class_names = list(names)
        sampling = getattr(data, "clip_sampling", None)
        if sampling is not None:
            self.hparams.clip_sampling = dict(sampling)

    @torch.no_grad()
    def predict_video(self, path: str | os.PathLike, top: int = 5, clips: int = 10, crops: str = "centre",
                      backend: str = "decord") -> list[tuple[str, float]]:
        """The ``top`` classes of a video file with their probabilities (softmax averaged over ``clips`` clips x
        ``crops`` crops, as the benchmark's video accuracy); classes without recorded names are ``class <i>``."""
        from datamodules.eval_views import decode_size, video_seed, video_views
        from datamodules.video import open_video

        was_training = self.training
        self.eval()
        try:
            with open_video(path, backend=backend, size=decode_size(self.frame_size, crops)) as video:
                views = video_views(video, self.eval_clip_spec(), clips, self.frame_size, crops,
                                    video_seed(os.path.basename(str(path))))
            probs = self.clip_logits(views.to(self.device)).float().softmax(-1).mean(0).cpu()
        finally:
            self.train(was_training)
        names = self.classes or [f"class {i}" for i in range(probs.numel())]
        values, order = probs.topk(min(top, probs.numel()))
        return [(names[i], float(v)) for v, i in zip(values.tolist(), order.tolist())]
