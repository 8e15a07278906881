"""Input handling shared by the deep estimators (the one float32 cast).

Rule for every deep estimator: each column is standardized with the mean and
standard deviation of its observed (non-NaN) training values, inside the
estimator, so users pass raw features. A block that is entirely NaN in a row
is a missing modality: its values become 0 and the row's mask says so.
"""

import numpy as np
import torch
from numpy.typing import NDArray
from sklearn.utils import check_random_state


def column_statistics(X: NDArray) -> tuple[NDArray, NDArray]:
    """Mean and scale of each column over its observed (non-NaN) values.

    A column with no observed value, or with zero variance, gets mean 0 and
    scale 1 so that standardizing never divides by zero.
    """
    observed = ~np.isnan(X)
    count = observed.sum(axis=0)
    filled = np.where(observed, X, 0.0)
    mean = filled.sum(axis=0) / np.maximum(count, 1)
    var = (np.where(observed, X - mean, 0.0) ** 2).sum(axis=0) / np.maximum(count, 1)
    scale = np.sqrt(var)
    scale[scale < 1e-12] = 1.0
    return mean, scale


def standardize(X: NDArray, mean: NDArray, scale: NDArray) -> NDArray[np.float32]:
    """Standardize ``X`` and cast it to float32, NaN becoming 0.

    This is the one place where mmfuse's deep estimators cast to float32.
    """
    Z = (X - mean) / scale
    return np.nan_to_num(Z, nan=0.0).astype(np.float32)


def seed_torch(random_state) -> torch.Generator:
    """Seed torch's global generator from ``random_state`` and return a seeded one.

    skorch draws initial weights and shuffles from torch's global generator,
    so a fit seeds it here; ``random_state=None`` leaves it as it is.
    """
    generator = torch.Generator()
    if random_state is None:
        generator.seed()
        return generator
    seed = int(check_random_state(random_state).randint(np.iinfo(np.int32).max))
    torch.manual_seed(seed)
    generator.manual_seed(seed)
    return generator
