"""mmfuse: multimodal fusion with scikit-learn estimators.

One 2-D ``X`` holds the modalities side by side; every multimodal estimator
takes a ``blocks`` parameter that says which columns form each modality, so
it works in ``Pipeline``, ``GridSearchCV`` and ``cross_validate`` as is.

The subpackages (:mod:`mmfuse.cca`, :mod:`mmfuse.fusion`, :mod:`mmfuse.deep`,
:mod:`mmfuse.datasets`, :mod:`mmfuse.metrics`) are imported on first use, so
``import mmfuse`` stays light and never imports torch.

Examples
--------
>>> import mmfuse
>>> mmfuse.cca.MCCA(n_components=2)
MCCA()
"""

from importlib import import_module

from mmfuse._blocks import (
    ModalitySelector,
    present_modalities,
    resolve_blocks,
    stack_modalities,
)

__version__ = "0.1.0.dev0"

__all__ = [
    "ModalitySelector",
    "present_modalities",
    "resolve_blocks",
    "stack_modalities",
]

_SUBMODULES = ("cca", "datasets", "deep", "fusion", "metrics", "utils")


def __getattr__(name: str):
    """Import a subpackage on first access: ``mmfuse.cca.MCCA`` just works."""
    if name in _SUBMODULES:
        return import_module(f"mmfuse.{name}")
    raise AttributeError(f"module 'mmfuse' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_SUBMODULES])
