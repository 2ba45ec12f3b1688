"""A TSN-style clip classifier: the zoo's reference model for the shared trainer, CLI and registry."""

from zoo.baseline.model import ClipClassifier, clip_resnet18, clip_tiny

__all__ = ["ClipClassifier", "clip_resnet18", "clip_tiny"]
