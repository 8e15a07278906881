"""Real multimodal data sets and a synthetic multi-view generator."""

from mmfuse.datasets._generators import make_multiview
from mmfuse.datasets._loaders import load_mfeat, load_nutrimouse

__all__ = ["load_mfeat", "load_nutrimouse", "make_multiview"]
