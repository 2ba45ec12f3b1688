"""I3D (Carreira & Zisserman, CVPR 2017): Inflated 3D Inception-v1 with DeepMind's Kinetics-400 weights."""

from zoo.i3d.model import I3DClassifier, i3d_inception, kinetics400_classes

__all__ = ["I3DClassifier", "i3d_inception", "kinetics400_classes"]
