"""Synthetic multi-view data with a known shared latent structure."""

from collections.abc import Sequence
from numbers import Integral, Real

import numpy as np
from numpy.typing import NDArray
from sklearn.utils import check_random_state

# Elementwise maps applied to the latent of views 1, 2, … when
# ``nonlinear=True`` (view 0 stays linear): the even ones have no linear
# correlation with the latent, so linear CCA misses what kernel CCA finds;
# sin(2z) keeps a weak one (about 0.38).
_NONLINEAR_MAPS = (
    lambda z: z**2 - 1.0,
    lambda z: np.sin(2.0 * z),
    lambda z: np.abs(z) - np.sqrt(2.0 / np.pi),
)


def make_multiview(
    n_samples: int = 100,
    view_dims: Sequence[int] = (10, 10),
    n_latent: int = 2,
    noise: float = 0.1,
    nonlinear: bool = False,
    random_state: int | np.random.RandomState | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Generate views that share a latent signal, side by side in one X.

    A latent ``Z`` of shape ``(n_samples, n_latent)`` is drawn from a
    standard normal. View ``v`` is ``h_v(Z) @ W_v + noise * E_v`` with a
    random loading ``W_v`` (``n_latent × view_dims[v]``, entries
    ``N(0, 1/n_latent)``) and standard normal noise ``E_v``. ``h_v`` is the
    identity for every view, or, with ``nonlinear=True``, for view 0 only:
    views 1, 2, … use ``z² − 1``, ``sin(2z)``, ``|z| − E|z|`` in turn:
    the first and third have no linear correlation with ``z``, the second a
    weak one (about 0.38).

    Parameters
    ----------
    n_samples : int, default=100
        Number of rows.
    view_dims : sequence of int, default=(10, 10)
        Width of each view; pass ``blocks=list(view_dims)`` to estimators.
    n_latent : int, default=2
        Dimension of the shared latent.
    noise : float, default=0.1
        Standard deviation of the independent noise added to each view.
    nonlinear : bool, default=False
        Make views 1, 2, … nonlinear functions of the latent.
    random_state : int, RandomState instance or None, default=None
        Seed for reproducible data.

    Returns
    -------
    X : ndarray of shape (n_samples, sum(view_dims))
        The views side by side, in order.
    latent : ndarray of shape (n_samples, n_latent)
        The shared latent ``Z``.

    Examples
    --------
    >>> from mmfuse.datasets import make_multiview
    >>> X, Z = make_multiview(50, view_dims=[4, 6], n_latent=2, random_state=0)
    >>> X.shape, Z.shape
    ((50, 10), (50, 2))
    """
    if not _positive_int(n_samples):
        raise ValueError(f"n_samples={n_samples!r} must be a positive int.")
    if not _positive_int(n_latent):
        raise ValueError(f"n_latent={n_latent!r} must be a positive int.")
    dims = list(view_dims)
    if not dims or not all(map(_positive_int, dims)):
        raise ValueError(
            f"view_dims={view_dims!r} must be a non-empty list of positive ints."
        )
    if (
        isinstance(noise, bool)
        or not isinstance(noise, Real)
        or not 0 <= noise < np.inf
    ):
        raise ValueError(f"noise={noise!r} must be a finite float >= 0.")
    rng = check_random_state(random_state)
    latent = rng.standard_normal((n_samples, n_latent))
    views = []
    for v, dim in enumerate(dims):
        signal = latent
        if nonlinear and v > 0:
            signal = _NONLINEAR_MAPS[(v - 1) % len(_NONLINEAR_MAPS)](latent)
        loading = rng.standard_normal((n_latent, dim)) / np.sqrt(n_latent)
        views.append(signal @ loading + noise * rng.standard_normal((n_samples, dim)))
    return np.hstack(views), latent


def _positive_int(value) -> bool:
    """Tell whether ``value`` is an int >= 1 (a bool is not)."""
    return isinstance(value, Integral) and not isinstance(value, bool) and value >= 1
