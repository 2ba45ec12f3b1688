"""Tracking by natural language specification (Li, Tao, Gavves, Snoek, Smeulders, CVPR 2017)."""

from zoo.lang_tracker.lingual import LingualSpecification, lingual_tiny, lingual_vgg16
from zoo.lang_tracker.tracker import LingualTracker, VisualTracker
from zoo.lang_tracker.visual import VisualSpecification, visual_tiny, visual_vgg16

__all__ = [
    "LingualSpecification", "LingualTracker", "VisualSpecification", "VisualTracker", "lingual_tiny",
    "lingual_vgg16", "visual_tiny", "visual_vgg16",
]
