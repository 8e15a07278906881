"""Kernel features of KCCA: kernel evaluation, exact and Nyström maps.

KCCA is linear MCCA on explicit kernel features (DESIGN.md). A factor
``G_v`` with ``G_v G_vᵀ = K_v`` (before centring) turns each modality's
kernel into features whose centred columns are those of ``G_v``:

- exact (:func:`exact_features`): ``G_v`` is a pivoted Cholesky factor of
  the whole kernel that stops only when the trace of the residual falls
  below ``tol · trace(K_v)``; it evaluates only the kernel columns it
  pivots on, and keeps the full spectrum (no eigenvalue is dropped) up to
  that tolerance;
- Nyström (:func:`nystroem_features`): ``G_v`` is the Nyström map on given
  landmark rows (``K_v ≈ K_{·L} K_{LL}⁻¹ K_{L·}``); with every row a
  landmark it is the exact factor.

In both, a factor is ``K(·, X_S) L_S⁻ᵀ`` for a set ``S`` of support rows and
the lower triangular ``L_S`` (``L_S L_Sᵀ = K_SS``). Both backends give the
products KCCA's solvers need, ``Φ a``, ``Φᵀ y`` and the Gram matrix
``Φᵀ diag(w) Φ`` of the centred features ``Φ``, and the covariance of all
modalities' features together: from stored features
(:func:`stored_covariance`), streamed by rows into the shared sufficient
statistics (:func:`streamed_covariance`), or as a linear operator
(:func:`sumcor_operator`). Sample weights are repetition counts throughout.
"""

from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp
from numpy.typing import NDArray
from scipy.linalg.blas import dger, dsyrk, dtrmv
from scipy.linalg.lapack import dlauum
from scipy.sparse.linalg import LinearOperator
from sklearn.metrics.pairwise import (
    KERNEL_PARAMS,
    PAIRWISE_KERNEL_FUNCTIONS,
    pairwise_kernels,
)
from threadpoolctl import threadpool_info, threadpool_limits

from mmfuse.cca._base import regularized_block
from mmfuse.cca._solvers import numerical_rank, pivoted_cholesky
from mmfuse.cca._statistics import relative_rounding, scatter_of_chunks
from mmfuse.utils._warnings import warn_user

__all__ = [
    "KERNELS",
    "ExactFeatures",
    "NystroemFeatures",
    "ViewKernel",
    "exact_features",
    "fits_in_memory",
    "nystroem_features",
    "nystroem_rows",
    "products_dtype",
    "stored_covariance",
    "streamed_covariance",
    "sumcor_operator",
]

# Kernel names KCCA accepts, for each modality.
KERNELS = set(PAIRWISE_KERNEL_FUNCTIONS) | {"precomputed"}

# Values (rows x columns) per chunk when kernel rows are evaluated against
# the support rows: about 2**22 float64 values, 32 MiB.
_CHUNK_VALUES = 2**22

# From this many n × width values on, Nyström features are stored and
# multiplied in float32 (if every ridge is at least _FLOAT32_RIDGE): see
# products_dtype.
_FLOAT32_VALUES = 2**24
_FLOAT32_RIDGE = 1e-3

# Values per block of the fused rbf kernel: 2**15 float64, 256 KiB, so that
# its passes over the block stay in the core's cache.
_CACHE_VALUES = 2**15

# Largest n × width of Nyström features kept in memory (2 GiB), computed
# once; beyond, each pass over the rows recomputes them chunk by chunk, and
# the covariance is streamed and solved densely.
_STORED_VALUES = 2**28


def centred_rank(gram: NDArray, mean: NDArray, n_rows: int) -> int:
    """Numerical rank of a modality's centred kernel features.

    ``gram`` is their weighted covariance times ``(W - 1) / W`` (their
    centred second moments), ``mean`` their mean. Features whose variances
    are all within the rounding of sums over ``n_rows`` rows of their second
    moments are constant (the rule of MCCA's constant test): rank 0, which a
    Gram matrix formed as ``ΦᵀΦ - n μμᵀ`` would otherwise leave a few ulps
    above zero (a constant kernel of 5.0, 150 rows: 9e-14 against 125).
    """
    second_moment = np.diag(gram) + mean**2
    scale = float(second_moment.max(initial=0.0))
    if np.all(np.diag(gram) <= relative_rounding(n_rows, np.float64) * scale):
        return 0
    return numerical_rank(gram, scale=scale)


def landmark_count(n_landmarks: int, n: int) -> int:
    """Return how many Nyström landmarks a fit on ``n`` rows draws: at most ``n``.

    Past ``n`` every row is a landmark, which makes the exact kernel's fit at
    its cost, with a warning (as scikit-learn's ``Nystroem`` does), so that
    the default works on small data and small cross-validation folds.
    """
    if n_landmarks <= n:
        return n_landmarks
    warn_user(
        f"n_landmarks={n_landmarks} exceeds the {n} rows of the fit, so all {n} "
        f"rows are landmarks: the exact kernel's fit, at its cost. Set "
        f"n_landmarks <= {n}, or approximation=None, to silence this."
    )
    return n


def products_dtype(n: int, width: int, regularization: NDArray) -> type:
    """Precision of the Nyström features' products: float32 where it is safe.

    float32 halves the time of the ``n × width²`` scatter, which dominates a
    large Nyström fit, and the memory of the stored features. It is taken
    for many values (``n · width >= _FLOAT32_VALUES``, where the scatter
    dominates; smaller fits stay float64 to the last digit) and only when
    every ridge ``κ_v >= _FLOAT32_RIDGE``: rounding the features to float32
    perturbs each covariance block by about ``2⁻²⁴`` of its largest
    variance, and the ridge bounds how much the whitened problem amplifies
    that (the features' variances are at most the kernel's diagonal, ``1``
    for rbf), so canonical correlations move by about 1e-7, far below the
    Nyström approximation itself.
    """
    large = n * width >= _FLOAT32_VALUES
    return np.float32 if large and min(regularization) >= _FLOAT32_RIDGE else np.float64


def fits_in_memory(n: int, width: int) -> bool:
    """Whether ``n × width`` features may be stored (else they are streamed)."""
    return n * width <= _STORED_VALUES


def _blas_threads():
    """Return how many threads BLAS may use (``threadpool_limits`` binds it)."""
    counts = [
        info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"
    ]
    return max(counts, default=1)


# What a kernel of sklearn.metrics.pairwise needs of its modality's columns,
# said when it refuses them.
_KERNEL_NEEDS = {
    name: (
        f"The {name} kernel compares histograms: it needs non-negative columns "
        f"(counts, frequencies). Use another kernel for this modality, or map "
        f"its columns to [0, 1] first (e.g. sklearn.preprocessing.MinMaxScaler)."
    )
    for name in ("chi2", "additive_chi2")
}


class ViewKernel:
    """The kernel of one modality and the rows it is evaluated against."""

    def __init__(self, kernel, params, name):
        self.kernel = kernel
        self.params = params
        self.name = name

    def __call__(self, A, B, out=None):
        """``k(A, B)``, written into ``out`` when given.

        For a precomputed kernel ``A`` holds its columns and ``B`` indexes
        them.
        """
        if self.kernel == "precomputed":
            K = np.asarray(A[:, B].toarray() if sp.issparse(A) else A[:, B])
            if out is None:
                return K
            out[...] = K
            return out
        # Overflow is reported below, with the modality, not as a warning.
        with np.errstate(over="ignore", invalid="ignore"):
            try:
                if self.kernel == "rbf" and not (sp.issparse(A) or sp.issparse(B)):
                    K = _rbf(A, B, self.params.get("gamma"), out)
                else:
                    K = pairwise_kernels(
                        A, B, metric=self.kernel, filter_params=True, **self.params
                    )
                    if out is not None:
                        out[...] = K
                        K = out
            except ValueError as exc:
                raise ValueError(
                    f"the kernel of modality {self.name!r} ({self._describe()}) "
                    f"failed: {exc} {_KERNEL_NEEDS.get(self.kernel, '')}".rstrip()
                ) from exc
            finite = np.isfinite(K.sum())
        if not finite:
            self._raise_non_finite()
        return K

    def _describe(self):
        """Describe the kernel and the parameters it uses, for messages."""
        if callable(self.kernel):
            name = getattr(self.kernel, "__name__", repr(self.kernel))
            return f"{name}, kernel_params={self.params!r}"
        used = KERNEL_PARAMS.get(self.kernel, ())
        return ", ".join(
            [repr(self.kernel)]
            + [f"{key}={value!r}" for key, value in self.params.items() if key in used]
        )

    def _raise_non_finite(self):
        degree = self.params.get("degree")
        if callable(self.kernel):
            fix = (
                "A callable kernel must return a finite value for every pair of "
                "rows: fix the function or its kernel_params."
            )
        elif self.kernel == "poly" and degree is not None and degree % 1:
            fix = (
                f"A non-integer degree ({degree!r}) raises the negative values "
                f"of gamma <x, y> + coef0 to a fractional power, which is NaN: "
                f"give an integer degree."
            )
        else:
            fix = (
                "With valid parameters this means that its values overflow "
                "float64: rescale the columns, e.g. with "
                "sklearn.preprocessing.StandardScaler before KCCA, or lower "
                "gamma or degree."
            )
        raise ValueError(
            f"the kernel of modality {self.name!r} ({self._describe()}) returned "
            f"NaN or inf. {fix}"
        )

    def diagonal(self, X):
        """``k(x_i, x_i)`` for every row, in chunks (any kernel)."""
        if self.kernel == "precomputed":
            return np.asarray(X.diagonal()).ravel()
        step = 256
        return np.concatenate(
            [
                np.diag(self(X[i : i + step], X[i : i + step]))
                for i in range(0, X.shape[0], step)
            ]
        )

    def block(self, X, rows, idx):
        """``K[np.ix_(rows, idx)]`` on the training rows ``X``."""
        return self(X[rows], idx if self.kernel == "precomputed" else X[idx])


def _rbf(A, B, gamma, out=None):
    """``exp(−γ‖a − b‖²)`` as ``exp(2γ a·b − γ‖a‖² − γ‖b‖²)``, in one buffer.

    scikit-learn's ``rbf_kernel`` makes the same expansion, but through
    several full-size temporaries and passes; here the product is written
    into ``out`` and everything else is done in place on it, a few rows at
    a time so that each pass stays in cache.
    """
    gamma = 1.0 / A.shape[1] if gamma is None else gamma
    out = np.empty((A.shape[0], B.shape[0])) if out is None else out
    scaled = (2 * gamma) * B.T
    column_terms = gamma * np.einsum("ij,ij->i", B, B)
    row_terms = gamma * np.einsum("ij,ij->i", A, A)
    step = max(1, _CACHE_VALUES // max(1, B.shape[0]))
    for start in range(0, A.shape[0], step):
        K = out[start : start + step]
        np.matmul(A[start : start + step], scaled, out=K)
        K -= row_terms[start : start + step, None]
        K -= column_terms
        # A squared distance is never negative, whatever the rounding.
        np.minimum(K, 0.0, out=K)
        np.exp(K, out=K)
    return out


def _rows_per_chunk(width):
    """Rows of a chunk of ``width`` features: about ``_CHUNK_VALUES`` values."""
    return max(1, _CHUNK_VALUES // max(1, width))


def _on_threads(task, starts):
    """Run ``task(start)`` for every chunk, on as many threads as BLAS may use.

    Computing a chunk of features is mostly single-threaded NumPy (kernel
    values, exp) and small BLAS calls, which release the GIL: chunks run on
    threads, each calling BLAS on one thread (the pool has the threads BLAS
    had), and BLAS gets its threads back after.
    """
    threads = _blas_threads()
    if threads == 1:
        for start in starts:
            task(start)
        return
    with threadpool_limits(1, user_api="blas"), ThreadPoolExecutor(threads) as pool:
        list(pool.map(task, starts))


def _weighted(Y, weights):
    """Rows of ``Y`` times their weights (``Y`` itself without weights)."""
    return Y if weights is None else Y * weights.reshape(-1, *[1] * (Y.ndim - 1))


class ExactFeatures:
    """Centred features ``Φ = G − 1 ḡᵀ`` of an exactly factored kernel.

    The pivoted Cholesky factor ``G`` (``G Gᵀ ≈ K``) is kept as its support
    rows ``G[S] = L_S`` (lower triangular) and its other rows ``rest``, so
    that products with ``Φ`` use the triangle (half the memory traffic of a
    full matrix) and its Gram matrix costs a ``lauum``. With row weights
    ``w`` (repetition counts) the mean is weighted and the Gram matrix is
    ``Φᵀ diag(w) Φ``.
    """

    def __init__(self, factor, pivots, weights):
        self.n = factor.shape[0]
        self.weights = weights
        self.total = self.n if weights is None else weights.sum()
        self.support = pivots
        self.lower = factor[pivots]
        others = np.ones(self.n, dtype=bool)
        others[pivots] = False
        self.rest_rows = np.flatnonzero(others)
        self.rest = factor[self.rest_rows]
        self.mean = (
            self._rows_weighted(self.lower, self.support).sum(axis=0)
            + self._rows_weighted(self.rest, self.rest_rows).sum(axis=0)
        ) / self.total

    def _rows_weighted(self, part, rows, power=1.0):
        """``part``, the factor's rows ``rows``, times their weights**power."""
        if self.weights is None:
            return part
        return _weighted(part, self.weights[rows] ** power)

    def store(self):
        """Nothing to do: the factor is stored."""

    def rows(self, start, stop):
        """Rows ``G[start:stop]`` (uncentred)."""
        where = np.empty(self.n, dtype=np.intp)
        where[self.support] = np.arange(len(self.support))
        where[self.rest_rows] = len(self.support) + np.arange(len(self.rest_rows))
        where = where[start:stop]
        out = np.empty((stop - start, len(self.support)))
        on_support = where < len(self.support)
        out[on_support] = self.lower[where[on_support]]
        out[~on_support] = self.rest[where[~on_support] - len(self.support)]
        return out

    def dot(self, a):
        """``Φ a`` for a vector or a matrix ``a``."""
        out = np.empty((self.n, *a.shape[1:]))
        if a.ndim == 1:
            out[self.support] = dtrmv(self.lower.T, a, lower=0, trans=1)
        else:
            out[self.support] = self.lower @ a
        out[self.rest_rows] = self.rest @ a
        out -= self.mean @ a
        return out

    def variates(self, W):
        """Centred training variates ``Φ W``."""
        return self.dot(W)

    def tdot(self, y):
        """``Φᵀ y`` for a vector ``y``."""
        out = dtrmv(self.lower.T, y[self.support], lower=0, trans=0)
        out += self.rest.T @ y[self.rest_rows]
        out -= self.mean * y.sum()
        return out

    def gram(self):
        """``ΦᵀΦ``: the triangle by LAPACK's ``lauum``, the rest by ``syrk``."""
        # lauum writes LᵀL in the upper triangle of a copy of Lᵀ (zero
        # below); the lower triangle is mirrored in place, block by block,
        # and the centring is a rank-one update in place: no other
        # rank × rank array is made. Weights scale the rows by their square
        # roots, which keeps the triangle triangular.
        lower = self._rows_weighted(self.lower, self.support, 0.5)
        gram, _ = dlauum(lower.T, lower=0)
        if len(self.rest_rows):
            # restᵀ rest added to the upper triangle in place by syrk.
            rest = self._rows_weighted(self.rest, self.rest_rows, 0.5)
            gram = dsyrk(1.0, rest.T, beta=1.0, c=gram, overwrite_c=1)
        # Small blocks: the mirror's temporaries stay negligible.
        step = 128
        for j in range(0, gram.shape[0], step):
            block = gram[j : j + step, j : j + step]
            block[...] = np.triu(block) + np.triu(block, 1).T
            gram[j + step :, j : j + step] = gram[j : j + step, j + step :].T
        return dger(-self.total, self.mean, self.mean, a=gram, overwrite_a=1)


class NystroemFeatures:
    """Centred Nyström features ``Φ = K(·, X_S) L_S⁻ᵀ − 1 ḡᵀ``.

    The features of a row are its kernel values against the support rows
    through a triangular solve (backward stable even when ``L_S`` is
    ill-conditioned, unlike whitening a Gram matrix of kernel columns).
    :meth:`rows` gives those of a chunk of rows, from which every pass
    over the data is made: stored once (:meth:`store`, or all modalities
    side by side by :func:`stored_covariance`) when they fit in memory,
    else recomputed chunk by chunk at each pass.
    """

    def __init__(self, X_view, support, support_rows, lower, kernel, weights):
        self.n = X_view.shape[0]
        self.weights = weights
        self.total = self.n if weights is None else weights.sum()
        self.support = support
        self.support_rows = support_rows
        self.lower = lower
        self.kernel = kernel
        self._X_view = X_view
        self.centred = None
        self.mean = None

    def rows(self, start, stop):
        """Features ``G[start:stop]`` (uncentred, float64): :func:`nystroem_rows`."""
        return nystroem_rows(
            self._X_view[start:stop],
            self.kernel,
            self.support_rows,
            self.lower,
            out=np.empty((stop - start, len(self.support))),
        )

    def store(self):
        """Compute and keep the centred features of every row, and their mean."""
        if self.centred is not None and self.centred.dtype == np.float64:
            return
        features = np.empty((self.n, len(self.support)))
        step = _rows_per_chunk(len(self.support))

        def fill(start):
            stop = min(self.n, start + step)
            features[start:stop] = self.rows(start, stop)

        _on_threads(fill, range(0, self.n, step))
        self.mean = _weighted(features, self.weights).sum(axis=0) / self.total
        features -= self.mean
        self.centred = features

    def dot(self, a):
        """``Φ a`` for a vector or a matrix ``a``."""
        return self.centred @ a

    def variates(self, W):
        """Centred training variates ``Φ W`` (float64), by chunks of rows."""
        step = _rows_per_chunk(len(self.support))
        if self.centred is not None:
            # Products in the precision of the stored features.
            W = W.astype(self.centred.dtype)
            return np.vstack(
                [
                    self.centred[start : start + step] @ W
                    for start in range(0, self.n, step)
                ],
                dtype=np.float64,
            )
        return np.vstack(
            [
                self.rows(start, min(self.n, start + step)) @ W
                for start in range(0, self.n, step)
            ]
        ) - (self.mean @ W)

    def tdot(self, y):
        """``Φᵀ y`` for a vector ``y``."""
        return self.centred.T @ y

    def gram(self):
        """``Φᵀ diag(w) Φ``."""
        return _weighted(self.centred, self.weights).T @ self.centred


def exact_features(
    X_view, kernel: ViewKernel, weights: NDArray | None, *, tol: float
) -> ExactFeatures:
    """Exact features of one modality: a pivoted Cholesky factor of its kernel.

    Parameters
    ----------
    X_view : ndarray or sparse matrix of shape (n, d_v)
        The modality's training columns (its kernel columns when
        precomputed).
    kernel : ViewKernel
        The modality's kernel.
    weights : ndarray of shape (n,) or None
        Positive row weights, repetition counts.
    tol : float
        Relative trace of the residual at which the factorization stops.

    Returns
    -------
    features : ExactFeatures
    """
    factor, pivots = pivoted_cholesky(
        lambda rows, idx: kernel.block(X_view, rows, idx),
        kernel.diagonal(X_view),
        tol=tol,
        weights=weights,
    )
    return ExactFeatures(factor, pivots, weights)


def nystroem_features(
    X_view,
    kernel: ViewKernel,
    weights: NDArray | None,
    landmarks: NDArray,
    *,
    tol: float,
) -> NystroemFeatures:
    """Nyström features of one modality on the given landmark rows.

    The landmarks' kernel is factored by a pivoted Cholesky (stopping at
    ``tol``), and the landmarks it pivots on are the support rows.

    Parameters
    ----------
    X_view : ndarray or sparse matrix of shape (n, d_v)
        The modality's training columns (its kernel columns when
        precomputed).
    kernel : ViewKernel
        The modality's kernel.
    weights : ndarray of shape (n,) or None
        Positive row weights, repetition counts.
    landmarks : ndarray of intp of shape (m,)
        Landmark rows, sorted.
    tol : float
        Relative trace of the residual at which the factorization of the
        landmarks' kernel stops.

    Returns
    -------
    features : NystroemFeatures
    """
    K_LL = kernel.block(X_view, landmarks, landmarks)
    factor, pivots = pivoted_cholesky(
        lambda rows, idx: K_LL[np.ix_(rows, idx)], np.diag(K_LL).copy(), tol=tol
    )
    support = landmarks[pivots]
    return NystroemFeatures(
        X_view,
        support,
        support if kernel.kernel == "precomputed" else X_view[support],
        factor[pivots],
        kernel,
        weights,
    )


def nystroem_rows(X_rows, kernel: ViewKernel, support_rows, lower, *, out=None):
    """Nyström features of some rows: ``K(rows, X_S) L_S⁻ᵀ``, uncentred.

    The kernel values are written into one buffer and solved in place by
    the triangle (every pass over the data, in memory or on Dask workers,
    makes the features of its rows here).

    Parameters
    ----------
    X_rows : ndarray or sparse matrix of shape (m, d_v)
        The rows' columns of the modality (their kernel columns when
        precomputed).
    kernel : ViewKernel
        The modality's kernel.
    support_rows : ndarray
        The support rows (their indices when precomputed).
    lower : ndarray of shape (r, r)
        ``L_S``, lower triangular, ``L_S L_Sᵀ = K_SS``.
    out : ndarray of shape (m, r), default=None
        Where to write the features.

    Returns
    -------
    features : ndarray of shape (m, r)
        Float64.
    """
    K = kernel(X_rows, support_rows, out)
    sla.solve_triangular(lower, K.T, lower=True, overwrite_b=True, check_finite=False)
    return K


def stored_covariance(
    features: Sequence[NystroemFeatures], slices: Sequence[slice], *, dtype=np.float64
) -> NDArray:
    """Covariance of the modalities' Nyström features, computed once and kept.

    The features of every modality are computed once, a chunk of rows at a
    time (:meth:`NystroemFeatures.rows`, chunks on threads), shifted by the
    first chunk's mean and stored side by side in one ``n × width`` array
    of ``dtype``; their scatter is then summed chunk by chunk into the
    shared sufficient statistics
    (:func:`mmfuse.cca._statistics.scatter_of_chunks`: the products in
    ``dtype``, the sums in float64), and the stored features are centred.
    Shifting before storing keeps float32 accurate when a feature's mean
    dwarfs its spread. Sets each modality's ``centred`` (a view of the
    array) and ``mean``.

    Parameters
    ----------
    features : list of NystroemFeatures
        Each modality's features.
    slices : list of slice
        Position of each modality's features.
    dtype : {np.float64, np.float32}, default=np.float64
        Precision of the stored features and of their products.

    Returns
    -------
    covariance : ndarray of shape (width, width)
        Float64.
    """
    n, weights = features[0].n, features[0].weights
    stored = np.empty((n, slices[-1].stop), dtype=dtype)
    step = _rows_per_chunk(slices[-1].stop)
    first = [f.rows(0, min(n, step)) for f in features]
    shift = np.concatenate([values.mean(axis=0) for values in first])

    def fill(start, given=None):
        stop = min(n, start + step)
        for v, (f, s) in enumerate(zip(features, slices, strict=True)):
            values = f.rows(start, stop) if given is None else given[v]
            np.subtract(values, shift[s], out=stored[start:stop, s], casting="unsafe")

    fill(0, first)
    del first
    _on_threads(fill, range(step, n, step))
    starts = range(0, n, step)
    statistics = scatter_of_chunks(
        (
            (
                stored[start : start + step],
                None if weights is None else weights[start : start + step],
            )
            for start in starts
        ),
        dtype=dtype,
    )
    for start in starts:
        stored[start : start + step] -= statistics.mean.astype(dtype)
    for f, s in zip(features, slices, strict=True):
        f.centred = stored[:, s]
        f.mean = shift[s] + statistics.mean[s]
    return statistics.covariance()


def streamed_covariance(
    features: Sequence, slices: Sequence[slice], *, dtype=np.float64
) -> NDArray:
    """Covariance of the modalities' features, streamed by rows.

    The raw features of a chunk of rows, all modalities side by side, feed
    the shared sufficient statistics
    (:func:`mmfuse.cca._statistics.scatter_of_chunks`, shifted, which keeps
    the centring accurate when a feature's mean dwarfs its spread, as for
    a wide rbf kernel; products in ``dtype``). Sets each modality's feature
    mean.
    """
    n, weights = features[0].n, features[0].weights
    step = _rows_per_chunk(slices[-1].stop)
    chunks = (
        (
            np.hstack([f.rows(start, min(n, start + step)) for f in features]),
            None if weights is None else weights[start : start + step],
        )
        for start in range(0, n, step)
    )
    statistics = scatter_of_chunks(chunks, dtype=dtype)
    for f, s in zip(features, slices, strict=True):
        f.mean = statistics.mean[s]
    return statistics.covariance()


def sumcor_operator(
    features: Sequence, slices: Sequence[slice], regularization: NDArray
) -> tuple[LinearOperator, Iterator[NDArray]]:
    """SUMCOR's left-hand side as a linear operator on stored features, and ``D``.

    Parameters
    ----------
    features : list of ExactFeatures or NystroemFeatures
        Each modality's features, stored.
    slices : list of slice
        Position of each modality's features.
    regularization : ndarray of shape (n_modalities,)
        Ridge of each modality.

    Returns
    -------
    A : LinearOperator
        ``(A a)_v = [Φ_vᵀ W (Σ_w Φ_w a_w − κ_v Φ_v a_v)] / (Σ w − 1) + κ_v a_v``:
        the cross-covariances, the regularized blocks on the diagonal.
    D : generator of ndarray
        The regularized diagonal blocks, made one at a time as they are
        used, so that only one rank × rank block is alive beside the
        factors.
    """
    row_weights, total = features[0].weights, features[0].total
    width = slices[-1].stop

    def blocks_of_D():
        for f, r in zip(features, regularization, strict=True):
            C_vv = f.gram()
            C_vv /= total - 1
            yield regularized_block(C_vv, r, relative=False, overwrite=True)
            # The consumer factors the block in place: let it go before the
            # next one is made.
            del C_vv

    def matvec(x):
        x = np.ravel(x)
        images = [f.dot(x[s]) for f, s in zip(features, slices, strict=True)]
        summed = np.sum(images, axis=0)
        out = np.empty(width)
        for f, s, image, r in zip(
            features, slices, images, regularization, strict=True
        ):
            image = _weighted(summed - r * image, row_weights)
            out[s] = f.tdot(image) / (total - 1) + r * x[s]
        return out

    operator = LinearOperator((width, width), matvec=matvec, dtype=np.float64)
    return operator, blocks_of_D()
