"""Closed-form subspace learning: multiset CCA, generalized CCA, kernel CCA."""

__all__: list[str] = []
