"""Tracking by natural language specification (Li, Tao, Gavves, Snoek, Smeulders, CVPR 2017)."""

from zoo.lang_tracker.lingual import LingualSpecification, lingual_tiny, lingual_vgg16
from zoo.lang_tracker.models import (
    LanguageTracking,
    lang_model_i_tiny,
    lang_model_i_vgg16,
    lang_model_ii_tiny,
    lang_model_ii_vgg16,
    lang_model_iii_tiny,
    lang_model_iii_vgg16,
)
from zoo.lang_tracker.tracker import LingualTracker, VisualTracker
from zoo.lang_tracker.visual import VisualSpecification, visual_tiny, visual_vgg16

__all__ = [
    "LanguageTracking", "LingualSpecification", "LingualTracker", "VisualSpecification", "VisualTracker",
    "lang_model_i_tiny", "lang_model_i_vgg16", "lang_model_ii_tiny", "lang_model_ii_vgg16", "lang_model_iii_tiny",
    "lang_model_iii_vgg16", "lingual_tiny", "lingual_vgg16", "visual_tiny", "visual_vgg16",
]
