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
from scipy.linalg.blas import dsyr, get_blas_funcs

__all__ = [
    "FIRST_ROWS",
    "Scatter",
    "ShiftedSums",
    "needs_shift",
    "relative_rounding",
    "scatter_of",
    "scatter_of_chunks",
    "shifted_sums",
    "unshifted_is_accurate",
]

# Rows per piece of the shifted products: about 2**18 values (2 MiB in
# float64), so that a piece shifted into its buffer is still in cache when
# syrk reads it, but at least 512 rows, so that each syrk call stays
# efficient. An array's columns are gathered in pieces of the same size.
_CACHE_VALUES = 2**18
_MIN_ROWS = 512
# Rows whose mean is the shift of the products (and which tell whether
# one is needed).
FIRST_ROWS = 512
# float32 products are summed in float32 over this many rows at most.
_FLUSH_ROWS = 4096
# Columns mirrored at a time when the scatter is made symmetric.
_MIRROR_BLOCK = 256


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


def relative_rounding(n_rows: int, dtype) -> float:
    """Relative rounding error of the sums of ``n_rows`` rows' products.

    float64 products are summed over all the rows, ``n_rows · ε₆₄``;
    float32 ones in float32 over fewer than ``2 · _FLUSH_ROWS`` rows at a
    time, then in float64: ``min(n_rows, 2 · _FLUSH_ROWS) · ε₃₂ + n_rows ·
    ε₆₄``. (Bounding them by ``n_rows · ε₃₂`` exceeds 1 from 8.4 million
    rows, where every column would read as constant.)

    Parameters
    ----------
    n_rows : int
        Number of rows summed.
    dtype : dtype
        Precision of the products.

    Returns
    -------
    rounding : float
        The bound, relative to the sums.
    """
    bound = n_rows * np.finfo(np.float64).eps
    if np.dtype(dtype) != np.float64:
        bound += min(n_rows, 2 * _FLUSH_ROWS) * np.finfo(dtype).eps
    return bound


class _ShiftedProducts:
    """``Σ w (x − s)(x − s)ᵀ`` and ``Σ w (x − s)`` of rows added piece by piece.

    Each piece of rows is shifted by ``s`` (and scaled by ``√w``) into one
    buffer small enough to stay in cache, where one BLAS ``syrk`` (upper
    triangle only) adds its products and one ``gemv`` its sums: one pass
    over the rows. With ``s = 0`` and no weights the rows themselves are
    read, no buffer. float64 products go straight into the float64 sums;
    float32 products into a float32 partial sum, added to the float64 sums
    every ``_FLUSH_ROWS`` rows (so float32 sums run over few rows, as in a
    chunked matrix product).
    """

    def __init__(self, shift: NDArray, dtype):
        width = shift.shape[0]
        self.dtype = np.dtype(dtype)
        self.shift = shift.astype(dtype)
        self.raw = not self.shift.any()
        self.step = max(_MIN_ROWS, _CACHE_VALUES // width)
        if self.dtype != np.float64:  # float32 sums run over < 2 flushes of rows
            self.step = min(self.step, _FLUSH_ROWS)
        self.buffer = np.empty((self.step, width), dtype)
        self.ones = np.ones(self.step, dtype)
        self.products = np.zeros((width, width), order="F")
        self.partial = (
            self.products
            if self.dtype == np.float64
            else np.zeros_like(self.products, dtype=dtype, order="F")
        )
        self.syrk = get_blas_funcs("syrk", dtype=self.dtype)
        self.sums = np.zeros(width)
        self.n_rows, self.total, self.pending = 0, 0.0, 0

    def add(self, rows: NDArray, weights: NDArray | None) -> None:
        self.n_rows += rows.shape[0]
        self.total += rows.shape[0] if weights is None else float(weights.sum())
        for start in range(0, rows.shape[0], self.step):
            piece = rows[start : start + self.step]
            m = piece.shape[0]
            scale = self.ones[:m]
            if weights is not None:
                scale = np.sqrt(weights[start : start + m]).astype(self.dtype)
            if not (self.raw and weights is None and piece.flags.c_contiguous):
                piece = np.subtract(piece, self.shift, out=self.buffer[:m])
                if weights is not None:
                    piece *= scale[:, None]
            # piece.T is Fortran-ordered: syrk reads it without a copy and
            # adds its products to the Fortran-ordered partial sum in place.
            self.partial = self.syrk(
                1.0, piece.T, beta=1.0, c=self.partial, overwrite_c=1
            )
            self.sums += scale @ piece
            self.pending += m
            if self.pending >= _FLUSH_ROWS:
                self._flush()

    def _flush(self) -> None:
        if self.partial is not self.products:
            self.products += self.partial
            self.partial[...] = 0
        self.pending = 0

    def unfinished(self) -> "ShiftedSums":
        """Return the sums so far, unfinished (they merge by addition)."""
        self._flush()
        return ShiftedSums(
            self.shift, self.n_rows, float(self.total), self.sums, self.products
        )

    def statistics(self) -> Scatter:
        """Return the statistics; the mean is the shift plus a float64 offset."""
        return self.unfinished().statistics()


@dataclass
class ShiftedSums:
    """Unfinished statistics: sums of rows shifted by a common ``s``.

    ``Σ w (x − s)`` and the upper triangle of ``Σ w (x − s)(x − s)ᵀ`` (the
    lower one zero), in float64. Sums of other rows with the same shift
    merge by addition (:meth:`merge`), so many chunks' sums are reduced at
    the cost of adding them, and finished once (:meth:`statistics`).

    Parameters
    ----------
    shift : ndarray of shape (p,)
        The shift ``s``, in the precision of the products.
    n_rows : int
        Number of rows (of positive weight) summed.
    weight_sum : float
        Sum of their weights.
    sums : ndarray of shape (p,)
        ``Σ w (x − s)``, float64.
    products : ndarray of shape (p, p)
        ``Σ w (x − s)(x − s)ᵀ`` on and above the diagonal, zero below,
        float64, Fortran-ordered.
    """

    shift: NDArray
    n_rows: int
    weight_sum: float
    sums: NDArray
    products: NDArray

    def merge(self, other: "ShiftedSums") -> "ShiftedSums":
        """Return the sums of the rows of both (same shift), in new arrays."""
        return ShiftedSums(
            self.shift,
            self.n_rows + other.n_rows,
            self.weight_sum + other.weight_sum,
            self.sums + other.sums,
            self.products + other.products,
        )

    def statistics(self) -> Scatter:
        """Finish: centre, mirror the triangle. ``products`` becomes the scatter.

        The mean is the shift plus a float64 offset. The products are
        finished in place (no temporary of their size): these sums are
        spent.
        """
        offset = self.sums / self.weight_sum
        # The correction W (μ − s)(μ − s)ᵀ, on the upper triangle in place;
        # the lower one is still zero, so adding the transpose fills it.
        scatter = dsyr(-self.weight_sum, offset, a=self.products, overwrite_a=1)
        # Mirror the upper triangle into the lower one, a block of columns at
        # a time (cache-friendly, no temporary of the whole matrix).
        width = scatter.shape[0]
        for start in range(0, width, _MIRROR_BLOCK):
            stop = min(start + _MIRROR_BLOCK, width)
            scatter[start:stop, :start] = scatter[:start, start:stop].T
            diagonal = scatter[start:stop, start:stop]
            diagonal[...] = np.triu(diagonal) + np.triu(diagonal, 1).T
        # Symmetric and Fortran-ordered: its transpose is the same matrix,
        # C-ordered.
        return Scatter(self.n_rows, self.weight_sum, self.shift + offset, scatter.T)


def scatter_of_chunks(
    chunks: Iterable[tuple[NDArray, NDArray | None]], *, dtype=np.float64
) -> Scatter:
    """Statistics of dense rows given chunk by chunk, in one pass.

    Each row is shifted by the mean ``s`` of the first rows before its
    cross-products are summed:
    ``S = Σ w (x − s)(x − s)ᵀ − W (μ − s)(μ − s)ᵀ``. With ``s`` close to
    ``μ`` the correction is tiny, so this is as accurate as two passes
    (Chan, Golub and LeVeque 1983, "shifted data"), even when a column's
    mean dwarfs its spread. The rows are read once: each piece of them is
    shifted into a buffer that stays in cache and summed there by BLAS.

    Parameters
    ----------
    chunks : iterable of (ndarray of shape (m, p), ndarray of shape (m,) or None)
        Rows, and their positive weights (None: every row weighs 1; give
        weights for all chunks or for none), at least one chunk.
    dtype : {np.float64, np.float32}, default=np.float64
        Precision of the products; sums over more than a few thousand rows
        are accumulated in float64.

    Returns
    -------
    statistics : Scatter
        The mean is float64 (the shift in ``dtype`` plus a float64 offset).
    """
    products = None
    for chunk, weights in chunks:
        if products is None:
            shift = chunk[:FIRST_ROWS].mean(axis=0, dtype=np.float64)
            products = _ShiftedProducts(shift, dtype)
        products.add(chunk, weights)
    return products.statistics()


def needs_shift(X: NDArray) -> bool:
    """Whether the products of the rows ``X`` need a shift to be accurate.

    Columns whose mean is within their spread (standardized data) need no
    shift: the cancellation in ``XᵀX − W μμᵀ`` then costs at most a factor
    ``1 + μ²/σ² ≤ 2`` in relative accuracy. Read on the first
    ``FIRST_ROWS`` rows: a shift is needed unless their means are within
    half their spread.
    """
    first = X[:FIRST_ROWS]
    mean = first.mean(axis=0, dtype=np.float64)
    return bool(np.any(4 * mean**2 > first.var(axis=0, dtype=np.float64)))


def unshifted_is_accurate(statistics: Scatter) -> bool:
    """Whether statistics summed without a shift are accurate.

    They are when every column's mean is within its spread (see
    :func:`needs_shift`).
    """
    return not np.any(
        statistics.weight_sum * statistics.mean**2 > np.diag(statistics.scatter)
    )


def _unshifted(X: NDArray, dtype, weights: NDArray | None) -> Scatter | None:
    """Statistics of all of ``X`` without a shift, when that is accurate.

    Then the products read the rows of ``X`` in place, with no pass that
    writes shifted copies. Tried when the first rows need no shift
    (:func:`needs_shift`); None (the shifted pass is needed) when the first
    rows or all rows (:func:`unshifted_is_accurate`) say otherwise.
    """
    if weights is not None or not X.flags.c_contiguous or needs_shift(X):
        return None
    products = _ShiftedProducts(np.zeros(X.shape[1]), dtype)
    products.add(X, None)
    statistics = products.statistics()
    return statistics if unshifted_is_accurate(statistics) else None


def _pieces(X: NDArray, columns: NDArray, weights: NDArray | None):
    """Yield the columns ``columns`` of ``X`` and the weights, in pieces of rows.

    All of ``X`` in one piece when it keeps every column; else gathered a
    piece of rows at a time (small enough to stay in cache).
    """
    if np.array_equal(columns, np.arange(X.shape[1])):
        yield X, weights
        return
    step = max(_MIN_ROWS, _CACHE_VALUES // len(columns))
    for start in range(0, X.shape[0], step):
        yield (
            X[start : start + step, columns],
            None if weights is None else weights[start : start + step],
        )


def shifted_sums(
    X: NDArray, columns: NDArray, shift: NDArray, *, weights=None
) -> ShiftedSums:
    """Unfinished statistics of the columns ``columns`` of dense rows, shifted.

    Parameters
    ----------
    X : ndarray of shape (n, n_features)
        The rows, at least one.
    columns : ndarray of intp of shape (p,)
        Columns to keep, in order.
    shift : ndarray of shape (p,)
        The shift, of the products' dtype (float64 or float32); zeros read
        the rows in place.
    weights : ndarray of shape (n,), default=None
        Positive weight of each row, a repetition count.

    Returns
    -------
    sums : ShiftedSums
        To merge with other rows' sums of the same shift, and finish.
    """
    products = _ShiftedProducts(shift, shift.dtype)
    for rows, piece_weights in _pieces(X, columns, weights):
        products.add(rows, piece_weights)
    return products.unfinished()


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
    statistics = None
    if np.array_equal(columns, np.arange(X.shape[1])):
        statistics = _unshifted(X, dtype, weights)
    if statistics is None:
        statistics = scatter_of_chunks(_pieces(X, columns, weights), dtype=dtype)
    return statistics
