"""Metrics: classification (MedMNIST ACC/AUC semantics, per-class tables, confusion)."""

from medaug.metrics.classification import ClassificationMetrics, binary_rates, evaluate

__all__ = ["ClassificationMetrics", "binary_rates", "evaluate"]
