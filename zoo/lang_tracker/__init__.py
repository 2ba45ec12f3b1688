"""Tracking by natural language specification (Li, Tao, Gavves, Snoek, Smeulders, CVPR 2017)."""

from zoo.lang_tracker.lingual import LingualSpecification, lingual_tiny, lingual_vgg16
from zoo.lang_tracker.tracker import LingualTracker

__all__ = ["LingualSpecification", "LingualTracker", "lingual_tiny", "lingual_vgg16"]
