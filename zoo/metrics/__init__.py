"""Metrics of the zoo, as torchmetrics ``Metric``s and plain functions."""

from zoo.metrics.otb import CONVENTIONS, Convention, OTBMetrics, center_error, iou, sequence_curves

__all__ = ["CONVENTIONS", "Convention", "OTBMetrics", "center_error", "iou", "sequence_curves"]
