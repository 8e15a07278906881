"""mmfuse: multimodal fusion with scikit-learn estimators.

One 2-D ``X`` holds the modalities side by side; every multimodal estimator
takes a ``blocks`` parameter that says which columns form each modality, so
it works in ``Pipeline``, ``GridSearchCV`` and ``cross_validate`` as is.
"""

from mmfuse._blocks import (
    ModalitySelector,
    present_modalities,
    resolve_blocks,
    stack_modalities,
)

__version__ = "0.1.0.dev0"

__all__ = [
    "ModalitySelector",
    "__version__",
    "present_modalities",
    "resolve_blocks",
    "stack_modalities",
]
