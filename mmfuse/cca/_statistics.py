"""Sufficient statistics of the CCA family: the weighted centred scatter.

Every closed-form fit of :mod:`mmfuse.cca` depends on its rows only through
their weight sum ``W = Σ w_i``, the mean ``μ`` of the stacked columns (or
kernel features) and their centred scatter ``S = Σ_i w_i (x_i − μ)(x_i − μ)ᵀ``;
the covariance is ``S / (W − 1)``, the weights read as repetition counts.
:class:`Scatter` holds them. They come from dense rows streamed chunk by
chunk (:func:`scatter_of_chunks`, shifted for accuracy), from an array's
columns (:func:`scatter_of`, a sparse matrix centred implicitly), and two of
them merge exactly (:meth:`Scatter.merge`). So ``fit``, ``partial_fit``, the
streamed Nyström features of KCCA and a reduction over the partitions of
the rows all end in the same statistics.
"""

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

__all__ = ["Scatter", "scatter_of", "scatter_of_chunks"]

# Rows per chunk of an array's scatter: about 2**21 values (16 MiB in
# float64) but at least 1024 rows, so that each BLAS call stays efficient
# and the memory above the input small.
_CHUNK_VALUES = 2**21


@dataclass(frozen=True)
class Scatter:
    """Row count, weight sum, mean and centred scatter of some rows.

    Parameters
    ----------
    n_rows : int
        Number of rows (of positive weight) summed.
    weight_sum : float
        Sum of their weights (``n_rows`` without weights).
    mean : ndarray of shape (p,)
        Weighted mean of each column.
    scatter : ndarray of shape (p, p)
        Weighted centred cross-products, float64.
    """

    n_rows: int
    weight_sum: float
    mean: NDArray
    scatter: NDArray

    def merge(self, other: "Scatter") -> "Scatter":
        """Statistics of the rows of both, in float64.

        The pairwise update of Chan, Golub and LeVeque (1979): exact, so
        any split of the rows, merged in any order, gives the statistics of
        all of them, to rounding.

        Parameters
        ----------
        other : Scatter
            Statistics of other rows, of the same columns.

        Returns
        -------
        merged : Scatter
            Statistics of the rows of ``self`` and ``other`` together.
        """
        total = self.weight_sum + other.weight_sum
        delta = other.mean - self.mean
        scatter = self.scatter + other.scatter
        scatter += np.outer(delta, delta) * (self.weight_sum * other.weight_sum / total)
        return Scatter(
            self.n_rows + other.n_rows,
            total,
            self.mean + delta * (other.weight_sum / total),
            scatter,
        )

    def covariance(self) -> NDArray:
        """Return the covariance ``S / (W − 1)``, in float64."""
        return self.scatter / (self.weight_sum - 1)


def scatter_of_chunks(
    chunks: Iterable[tuple[NDArray, NDArray | None]], *, dtype=np.float64
) -> Scatter:
    """Statistics of dense rows given chunk by chunk, in one pass.

    Each chunk is shifted by the first chunk's mean ``s`` before its
    cross-products are summed:
    ``S = Σ w (x − s)(x − s)ᵀ − W (μ − s)(μ − s)ᵀ``. With ``s`` close to
    ``μ`` the correction is tiny, so this is as accurate as two passes
    (Chan, Golub and LeVeque 1983, "shifted data"), even when a column's
    mean dwarfs its spread.

    Parameters
    ----------
    chunks : iterable of (ndarray of shape (m, p), ndarray of shape (m,) or None)
        Rows, and their positive weights (None: every row weighs 1; give
        weights for all chunks or for none), at least one chunk.
    dtype : {np.float64, np.float32}, default=np.float64
        Precision of the products; sums are accumulated in float64.

    Returns
    -------
    statistics : Scatter
        The mean is float64 (the shift in ``dtype`` plus a float64 offset).
    """
    shift = None
    for chunk, weights in chunks:
        if shift is None:
            shift = chunk.mean(axis=0, dtype=np.float64).astype(dtype)
            n_rows, total = 0, 0.0
            sums = np.zeros(chunk.shape[1])
            scatter = np.zeros((chunk.shape[1], chunk.shape[1]))
        shifted = np.subtract(chunk, shift, dtype=dtype)
        n_rows += chunk.shape[0]
        if weights is None:
            total += chunk.shape[0]
            sums += shifted.sum(axis=0, dtype=np.float64)
            scatter += shifted.T @ shifted
            continue
        total += weights.sum()
        sums += weights @ shifted
        scatter += (shifted * weights[:, None].astype(dtype)).T @ shifted
    offset = sums / total
    scatter -= total * np.outer(offset, offset)
    return Scatter(n_rows, float(total), shift + offset, scatter)


def scatter_of(X, columns: NDArray, *, dtype=np.float64, weights=None) -> Scatter:
    """Statistics of the columns ``columns`` of the rows of ``X``.

    Dense ``X`` is read in chunks of rows (:func:`scatter_of_chunks`), never
    copied whole. Sparse ``X`` is centred implicitly,
    ``Xᵀ diag(w) X − W μμᵀ``, so it is never densified.

    Parameters
    ----------
    X : ndarray or sparse matrix of shape (n, n_features)
        The rows, at least one.
    columns : ndarray of intp of shape (p,)
        Columns to keep, in order.
    dtype : {np.float64, np.float32}, default=np.float64
        Precision of the products of dense rows.
    weights : ndarray of shape (n,), default=None
        Positive weight of each row, a repetition count.

    Returns
    -------
    statistics : Scatter
        Their statistics, the scatter in float64.
    """
    n = X.shape[0]
    if sp.issparse(X):
        total = float(n) if weights is None else float(weights.sum())
        sub = sp.csc_array(X[:, columns], dtype=np.float64)
        weighted = sub if weights is None else sp.diags_array(weights) @ sub
        mean = np.asarray(weighted.sum(axis=0)).ravel() / total
        scatter = (sub.T @ weighted).toarray()
        scatter -= total * np.outer(mean, mean)
        return Scatter(n, total, mean, scatter)
    whole = np.array_equal(columns, np.arange(X.shape[1]))
    step = max(1024, _CHUNK_VALUES // len(columns))
    chunks = (
        (
            X[start : start + step] if whole else X[start : start + step, columns],
            None if weights is None else weights[start : start + step],
        )
        for start in range(0, n, step)
    )
    return scatter_of_chunks(chunks, dtype=dtype)
