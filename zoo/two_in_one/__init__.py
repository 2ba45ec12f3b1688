"""Two-in-One stream action detection (Zhao & Snoek, CVPR 2019) and its SSD baselines (ROAD, Singh et al., ICCV
2017): RGB stream, flow stream, two-stream fusion."""

from zoo.two_in_one.fusion import FUSIONS, boost, fuse
from zoo.two_in_one.model import (
    ActionSSD,
    TwoStreamSSD,
    ssd300_flow,
    ssd300_rgb,
    ssd_flow_tiny,
    ssd_rgb_tiny,
    two_in_one,
    two_in_one_tiny,
    two_in_one_two_stream,
    two_in_one_two_stream_tiny,
    two_stream_ssd,
    two_stream_ssd_tiny,
)
from zoo.two_in_one.motion import MotionCondition, MotionModulation

__all__ = [
    "FUSIONS", "ActionSSD", "MotionCondition", "MotionModulation", "TwoStreamSSD", "boost", "fuse", "ssd300_flow",
    "ssd300_rgb", "ssd_flow_tiny", "ssd_rgb_tiny", "two_in_one", "two_in_one_tiny", "two_in_one_two_stream",
    "two_in_one_two_stream_tiny", "two_stream_ssd", "two_stream_ssd_tiny",
]
