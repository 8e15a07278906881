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

# A column whose standard deviation is below this fraction of its largest
# magnitude is constant: float64 sums of its values cannot resolve less.
_CONSTANT = 1e-12
_FLOAT32_MAX = float(np.finfo(np.float32).max)


def column_statistics(
    X: NDArray, sample_weight: NDArray | None = None
) -> tuple[NDArray, NDArray]:
    """Mean and scale of each column over its observed (non-NaN) values.

    Weighted by ``sample_weight`` when given (integer weights count as
    repeated rows). Each column is first divided by the power of two just
    above its largest magnitude, which is exact, so that squares neither
    overflow (values near 1e300) nor underflow, and the statistics are
    scaled back: multiplying a column by a power of two multiplies its
    statistics by it, exactly. A column with no observed value gets mean 0
    and scale 1; a constant column (standard deviation below ``1e-12`` of
    its largest magnitude) gets the power of two as scale, so that
    standardizing never divides by zero.
    """
    observed = ~np.isnan(X)
    magnitude = np.where(observed, np.abs(X), 0.0).max(axis=0, initial=0.0)
    bound = np.ldexp(1.0, np.frexp(magnitude)[1])  # 1 for all-zero columns
    U = np.where(observed, X / bound, 0.0)
    weight = observed if sample_weight is None else observed * sample_weight[:, None]
    total = np.maximum(weight.sum(axis=0), np.finfo(np.float64).tiny)
    mean = (weight * U).sum(axis=0) / total
    std = np.sqrt((weight * (U - mean) ** 2).sum(axis=0) / total)
    std[std < _CONSTANT] = 1.0
    return mean * bound, std * bound


def standardize(
    X: NDArray, mean: NDArray, scale: NDArray, name: str = "X"
) -> NDArray[np.float32]:
    """Standardize ``X`` and cast it to float32, NaN becoming 0.

    This is the one place where mmfuse's deep estimators cast to float32.
    ``name`` names the data in the error (``"X"`` or ``"y"``).

    Raises
    ------
    ValueError
        When a value lies beyond float32's range once standardized (new
        data far outside the training range): the net could only see it as
        infinite.
    """
    with np.errstate(over="ignore"):
        Z = (X - mean) / scale
    beyond = np.abs(Z) > _FLOAT32_MAX  # False for NaN
    if beyond.any():
        row, column = np.argwhere(beyond)[0]
        raise ValueError(
            f"{name}[{row}, {column}] = {X[row, column]:.6g} standardizes to "
            f"{Z[row, column]:.3g} (its column's training mean is "
            f"{mean[column]:.6g}, scale {scale[column]:.6g}), beyond float32's "
            f"range (±{_FLOAT32_MAX:.3g}) in which the net computes; "
            f"{beyond.sum()} value(s) do. Pass data in the range and units seen "
            f"in fit, and divide columns near float64's largest value by a "
            f"constant."
        )
    return np.nan_to_num(Z, nan=0.0).astype(np.float32)


def unstandardize(Z: NDArray, mean: NDArray, scale: NDArray, what: str) -> NDArray:
    """Return ``Z * scale + mean`` in float64, the inverse of :func:`standardize`.

    Raises
    ------
    ValueError
        When a value overflows float64 (training values near float64's
        largest, scaled far beyond them by the net's output).
    """
    with np.errstate(over="ignore"):
        values = np.asarray(Z, dtype=np.float64) * scale + mean
    if not np.isfinite(values).all():
        rows = np.flatnonzero(~np.isfinite(values).reshape(len(values), -1).all(1))
        raise ValueError(
            f"The {what} of {rows.size} row(s) (first: {rows[:5].tolist()}) "
            f"overflow float64: the training values' scale is up to "
            f"{np.max(scale):.3g}. Divide the data by a large constant before fit."
        )
    return values


def seed_torch(random_state, offset: int = 0) -> None:
    """Seed torch's global generator from ``random_state``, plus ``offset``.

    skorch draws initial weights and shuffles from torch's global generator,
    so a fit seeds it here. A later ``partial_fit`` passes the epochs trained
    so far as ``offset``: each call draws anew, and two copies of a net
    trained alike stay alike.
    """
    bound = np.iinfo(np.int32).max
    seed = int(check_random_state(random_state).randint(bound))
    torch.manual_seed((seed + offset) % bound)
