"""Fusion strategies as scikit-learn meta-estimators."""

from mmfuse.fusion._compare import compare_fusion, default_strategies
from mmfuse.fusion._early import make_early_fusion
from mmfuse.fusion._late import LateFusionClassifier, LateFusionRegressor

__all__ = [
    "LateFusionClassifier",
    "LateFusionRegressor",
    "compare_fusion",
    "default_strategies",
    "make_early_fusion",
]
