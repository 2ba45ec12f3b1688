"""Two-stream ConvNets (Simonyan & Zisserman, NeurIPS 2014): spatial and temporal CNN-M-2048 streams, late fusion."""

from zoo.two_stream.model import (
    TwoStream,
    average_softmax,
    spatial_cnnm,
    spatial_tiny,
    temporal_cnnm,
    temporal_tiny,
    two_stream_cnnm,
    two_stream_tiny,
)
from zoo.two_stream.networks import CNNM2048

__all__ = [
    "CNNM2048", "TwoStream", "average_softmax", "spatial_cnnm", "spatial_tiny",
    "temporal_cnnm", "temporal_tiny", "two_stream_cnnm", "two_stream_tiny",
]
