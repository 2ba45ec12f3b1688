"""Metrics of the zoo, as torchmetrics ``Metric``s and plain functions."""

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
    "OTBMetrics",
    "ReferringSegmentationMetrics",
    "center_error",
    "coco_stats",
    "coco_stats_from_masks",
    "iou",
    "iou_from_counts",
    "paper_map",
    "precision_at",
    "sequence_curves",
]
