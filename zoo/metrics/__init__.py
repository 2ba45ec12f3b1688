"""Metrics of the zoo, as torchmetrics ``Metric``s and plain functions."""

from zoo.metrics.action_detection import (
    FrameMAP,
    VideoMAP,
    average_precision,
    box_iou,
    frame_ap,
    frame_map,
    tube_iou,
    video_ap,
    video_aps,
    video_map_table,
)
from zoo.metrics.otb import CONVENTIONS, Convention, OTBMetrics, center_error, iou, sequence_curves
from zoo.metrics.referring import (
    ReferringSegmentationMetrics,
    coco_stats,
    coco_stats_from_masks,
    iou_from_counts,
    paper_map,
    precision_at,
)

__all__ = [
    "CONVENTIONS",
    "Convention",
    "FrameMAP",
    "OTBMetrics",
    "ReferringSegmentationMetrics",
    "VideoMAP",
    "average_precision",
    "box_iou",
    "center_error",
    "coco_stats",
    "coco_stats_from_masks",
    "frame_ap",
    "frame_map",
    "iou",
    "iou_from_counts",
    "paper_map",
    "precision_at",
    "sequence_curves",
    "tube_iou",
    "video_ap",
    "video_aps",
    "video_map_table",
]
