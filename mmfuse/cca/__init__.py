"""Closed-form subspace learning: multiset CCA, generalized CCA, kernel CCA."""

from mmfuse.cca._kcca import KCCA
from mmfuse.cca._mcca import GCCA, MCCA

__all__ = ["GCCA", "KCCA", "MCCA"]
