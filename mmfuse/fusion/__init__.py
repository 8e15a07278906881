"""Fusion strategies as scikit-learn meta-estimators."""

__all__: list[str] = []
