"""Fusion strategies as scikit-learn meta-estimators."""

from mmfuse.fusion._compare import compare_fusion, infer_task
from mmfuse.fusion._early import make_early_fusion
from mmfuse.fusion._late import LateFusionClassifier, LateFusionRegressor
from mmfuse.fusion._strategies import default_strategies

__all__ = [
    "LateFusionClassifier",
    "LateFusionRegressor",
    "compare_fusion",
    "default_strategies",
    "infer_task",
    "make_early_fusion",
]
