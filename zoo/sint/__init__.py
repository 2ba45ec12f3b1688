"""SINT and SINT+ (Tao, Gavves, Smeulders, CVPR 2016): Siamese instance search for tracking."""

from zoo.sint.model import SINT, contrastive_loss, sint_tiny, sint_vgg16
from zoo.sint.tracker import SINTTracker

__all__ = ["SINT", "SINTTracker", "contrastive_loss", "sint_tiny", "sint_vgg16"]
