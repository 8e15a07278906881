"""Deep multimodal models wrapped as scikit-learn estimators with skorch.

Needs the ``deep`` extra: ``pip install "mmfuse[deep]"``. On Linux, PyPI's
torch is a CUDA build of several GB; on a machine without an NVIDIA GPU,
install PyTorch's CPU build first (README.md, "PyTorch: CUDA or CPU build").
"""

try:
    import skorch  # noqa: F401
    import torch  # noqa: F401
except ImportError as exc:
    raise ImportError(
        "mmfuse.deep needs torch and skorch, which are not installed: install "
        "the 'deep' extra with  pip install \"mmfuse[deep]\"  . On Linux, "
        "PyPI's torch is a CUDA build of several GB; without an NVIDIA GPU, "
        "first install PyTorch's CPU build with  pip install torch "
        "--index-url https://download.pytorch.org/whl/cpu  (README.md, "
        "'PyTorch: CUDA or CPU build')."
    ) from exc

from mmfuse.deep._aligner import ContrastiveAligner
from mmfuse.deep._fusion_net import MLPFusionClassifier, MLPFusionRegressor
from mmfuse.deep._mmvae import KLWarmup, MultimodalVAE

__all__ = [
    "ContrastiveAligner",
    "KLWarmup",
    "MLPFusionClassifier",
    "MLPFusionRegressor",
    "MultimodalVAE",
]
