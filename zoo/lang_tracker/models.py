"""Models I, II and III of tracking by natural language specification (Li et al., CVPR 2017, Sec. 4) as one
loadable module each: the lingual network (and for II and III the visual one) with the rule that combines them.

The networks are trained on their own (``configs/lingual_*.yaml``, ``configs/visual_*.yaml``);
``LanguageTracking.from_checkpoints`` puts trained ones together and ``save`` writes one checkpoint that
``zoo.load`` rebuilds.
"""

from __future__ import annotations

import os
from typing import Any

from zoo.lang_tracker import lingual as _lingual
from zoo.lang_tracker import visual as _visual
from zoo.lang_tracker.lingual import LingualSpecification
from zoo.lang_tracker.tracker import LingualTracker, VisualTracker
from zoo.lang_tracker.visual import VisualSpecification
from zoo.module import ZooModule
from zoo.registry import register_model

MODELS = ("I", "II", "III")


class LanguageTracking(ZooModule):
    """Model I: the lingual network grounds the sentence in every frame. Model II: it gives the first-frame box,
    then the visual network tracks. Model III: the visual tracker with the lingual response (word attention
    conditioned on the target) mixed in every frame, weight ``lingual_weight``.

    ``lingual`` and ``visual`` are the two networks' constructor arguments.
    """

    def __init__(
        self,
        model: str = "II",
        lingual: dict[str, Any] | None = None,
        visual: dict[str, Any] | None = None,
        lingual_weight: float = 0.5,
    ) -> None:
        super().__init__()
        if model not in MODELS:
            raise ValueError(f"model must be one of {', '.join(MODELS)}, not {model!r}")
        self.save_hyperparameters()
        self.lingual, self.visual = _networks(model, lingual, visual)

    @classmethod
    def from_networks(
        cls, model: str, lingual: LingualSpecification, visual: VisualSpecification | None = None, **kwargs: Any
    ) -> LanguageTracking:
        """The model over trained networks (their weights copied; no ImageNet download)."""
        if model != "I" and visual is None:
            raise ValueError(f"Model {model} needs a visual specification network")
        args = LingualSpecification.rebuild_kwargs(dict(lingual.hparams))
        vargs = None if visual is None or model == "I" else VisualSpecification.rebuild_kwargs(dict(visual.hparams))
        out = cls(model, lingual=args, visual=vargs, **kwargs)
        out.lingual.load_state_dict(lingual.state_dict())
        if out.visual is not None:
            out.visual.load_state_dict(visual.state_dict())
        return out.eval()

    @classmethod
    def from_checkpoints(
        cls, model: str, lingual: str | os.PathLike, visual: str | os.PathLike | None = None, **kwargs: Any
    ) -> LanguageTracking:
        """The model over a ``zoo fit`` checkpoint of each network."""
        import zoo

        net = zoo.load(checkpoint_path=visual) if visual is not None else None
        return cls.from_networks(model, zoo.load(checkpoint_path=lingual), net, **kwargs)

    @classmethod
    def rebuild_kwargs(cls, kwargs: dict[str, Any]) -> dict[str, Any]:
        """Both networks' arguments made download-free (``ZooModule.rebuild_kwargs``)."""
        out = dict(kwargs)
        for key, net in (("lingual", LingualSpecification), ("visual", VisualSpecification)):
            if isinstance(out.get(key), dict):
                out[key] = net.rebuild_kwargs(out[key])
        return out

    def tracker(self, **kwargs: Any) -> LingualTracker | VisualTracker:
        """The got10k-style tracker of this model (initialised with sentences, in lockstep over many videos)."""
        model = self.hparams.model
        if model == "I":
            return LingualTracker(self.lingual, **kwargs)
        weight = self.hparams.lingual_weight if model == "III" else 0.0
        return VisualTracker(self.visual, lingual=self.lingual, **{"lingual_weight": weight, **kwargs})


def _networks(model: str, lingual: dict | None, visual: dict | None
              ) -> tuple[LingualSpecification, VisualSpecification | None]:
    # built outside LanguageTracking.__init__, whose arguments Lightning would otherwise add to theirs
    return LingualSpecification(**(lingual or {})), VisualSpecification(**(visual or {})) if model != "I" else None


_FAITHFUL = (_lingual.FAITHFUL, _visual.FAITHFUL)
_TINY = (_lingual.TINY, _visual.TINY)


def _build(model: str, sizes: tuple[dict, dict], lingual: dict | None, visual: dict | None, **kwargs: Any
           ) -> LanguageTracking:
    lingual_args = {**sizes[0], "attention": model == "III", **(lingual or {})}
    visual_args = {**sizes[1], **(visual or {})} if model != "I" else None
    return LanguageTracking(model, lingual=lingual_args, visual=visual_args, **kwargs)


@register_model
def lang_model_i_vgg16(lingual: dict | None = None, **kwargs: Any) -> LanguageTracking:
    """Model I as in the paper: the VGG16 lingual network on every frame."""
    return _build("I", _FAITHFUL, lingual, None, **kwargs)


@register_model
def lang_model_ii_vgg16(lingual: dict | None = None, visual: dict | None = None, **kwargs: Any) -> LanguageTracking:
    """Model II as in the paper: the lingual network's first-frame box, then the VGG16 visual tracker."""
    return _build("II", _FAITHFUL, lingual, visual, **kwargs)


@register_model
def lang_model_iii_vgg16(lingual: dict | None = None, visual: dict | None = None, **kwargs: Any) -> LanguageTracking:
    """Model III: the visual tracker and the lingual network with word attention, mixed every frame."""
    return _build("III", _FAITHFUL, lingual, visual, **kwargs)


@register_model
def lang_model_i_tiny(lingual: dict | None = None, **kwargs: Any) -> LanguageTracking:
    """Model I at CPU size (``lingual_tiny``)."""
    return _build("I", _TINY, lingual, None, **kwargs)


@register_model
def lang_model_ii_tiny(lingual: dict | None = None, visual: dict | None = None, **kwargs: Any) -> LanguageTracking:
    """Model II at CPU size (``lingual_tiny`` and ``visual_tiny``)."""
    return _build("II", _TINY, lingual, visual, **kwargs)


@register_model
def lang_model_iii_tiny(lingual: dict | None = None, visual: dict | None = None, **kwargs: Any) -> LanguageTracking:
    """Model III at CPU size."""
    return _build("III", _TINY, lingual, visual, **kwargs)
