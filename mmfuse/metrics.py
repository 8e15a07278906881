"""Scores for multimodal representations."""

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["canonical_correlation"]


def canonical_correlation(variates: Sequence[ArrayLike]) -> NDArray[np.float64]:
    """Canonical correlation of each component across two or more views.

    For two views, component ``j`` scores the Pearson correlation between
    the views' ``j``-th variates; for more views, the mean of that
    correlation over all pairs of views (the SUMCOR criterion of multiset
    CCA, divided by the number of pairs). A variate that is constant on the
    rows given correlates 0 with everything.

    Parameters
    ----------
    variates : sequence of array-like of shape (n_samples, n_components)
        One array a view, rows aligned: e.g. ``MCCA().transform_views(X)``.

    Returns
    -------
    correlations : ndarray of shape (n_components,)
        One value a component, in [-1, 1].

    Raises
    ------
    ValueError
        With fewer than two views, views of different shapes, or fewer
        than two rows.

    See Also
    --------
    mmfuse.cca.MCCA.score : The mean of these values on held-out data.

    Examples
    --------
    >>> import numpy as np
    >>> from mmfuse.metrics import canonical_correlation
    >>> a = np.array([[1.0, 0.0], [2.0, 1.0], [3.0, 0.0]])
    >>> b = np.array([[2.0, 1.0], [4.0, 0.0], [6.5, 1.0]])
    >>> np.round(canonical_correlation([a, b]), 3)
    array([ 0.998, -1.   ])
    """
    views = [np.asarray(v, dtype=np.float64) for v in variates]
    if len(views) < 2:
        raise ValueError(
            f"canonical_correlation needs the variates of at least two views; "
            f"got {len(views)}."
        )
    shapes = {v.shape for v in views}
    if len(shapes) != 1 or views[0].ndim != 2:
        raise ValueError(
            f"every view's variates must be 2-D of one shape (n_samples, "
            f"n_components); got shapes {[v.shape for v in views]}."
        )
    if views[0].shape[0] < 2:
        raise ValueError(
            f"canonical_correlation needs at least 2 rows; got {views[0].shape[0]}."
        )
    centred = np.stack([v - v.mean(axis=0) for v in views])
    return _mean_pairwise_correlation(np.einsum("vnk,wnk->vwk", centred, centred))


def _mean_pairwise_correlation(cross: NDArray) -> NDArray[np.float64]:
    """Mean over view pairs of the correlation, from the ``(M, M, k)`` covariances.

    ``cross[v, w, j]`` is the (co)variance of the ``j``-th variates of views
    ``v`` and ``w`` (any common scale); the diagonal holds the variances.
    """
    n_views = cross.shape[0]
    variances = np.einsum("vvk->vk", cross)
    scale = np.sqrt(variances[:, None, :] * variances[None, :, :])
    safe = np.where(scale > 0, scale, 1.0)
    correlation = np.where(scale > 0, cross / safe, 0.0)
    upper = np.triu_indices(n_views, k=1)
    return np.clip(correlation[upper].mean(axis=0), -1.0, 1.0)
