"""Deep multimodal models wrapped as scikit-learn estimators with skorch.

Needs the ``deep`` extra: ``pip install "mmfuse[deep]"``. On a machine without a
GPU, install a CPU build of torch first (PyTorch's CPU wheels) to avoid the
multi-GB CUDA build.
"""

try:
    import skorch  # noqa: F401
    import torch  # noqa: F401
except ImportError as exc:
    raise ImportError(
        "mmfuse.deep needs torch and skorch, which are not installed: install "
        "the 'deep' extra with  pip install \"mmfuse[deep]\"  (see the README "
        "for a CPU-only torch)."
    ) from exc

from mmfuse.deep._fusion_net import MLPFusionClassifier, MLPFusionRegressor
from mmfuse.deep._mmvae import KLWarmup, MultimodalVAE

__all__ = ["KLWarmup", "MLPFusionClassifier", "MLPFusionRegressor", "MultimodalVAE"]
