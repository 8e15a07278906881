"""Kernel multiset CCA: exact (full spectrum) and Nyström.

KCCA is MCCA in each modality's kernel feature space (DESIGN.md). With
centred kernel matrices ``K_v`` and dual coefficients ``α_v`` it solves the
generalized symmetric eigenproblem ``C α = λ D α`` whose off-diagonal
blocks are ``K_v K_w / (n − 1)`` and whose diagonal blocks (in ``C`` and in
``D``) carry the absolute ridge ``(1 − κ_v) K_v² / (n − 1) + κ_v K_v``
(Bach and Jordan 2002; Hardoon, Szedmak and Shawe-Taylor 2004).

Both paths go through explicit feature maps. A factor ``G_v`` with
``G_v G_vᵀ = K_v`` (before centring) turns the problem into linear MCCA on
the centred columns of ``G_v``, with the ridge ``κ_v I`` on the covariance:

- exact: ``G_v`` is a pivoted Cholesky factor of the whole kernel that stops
  only when the trace of the residual falls below ``tol · trace(K_v)``; it
  evaluates only the kernel columns it pivots on, and keeps the full
  spectrum (no eigenvalue is dropped) up to that tolerance;
- Nyström: ``G_v`` is the Nyström map on ``n_landmarks`` rows drawn at
  random (``K_v ≈ K_{·L} K_{LL}⁻¹ K_{L·}``); with every row a landmark it is
  the exact factor.

In both, a factor is ``K(·, X_S) L_S⁻ᵀ`` for a set ``S`` of support rows and
the lower triangular ``L_S`` (``L_S L_Sᵀ = K_SS``), so every fitted variate is
a kernel expansion on the support rows: ``(k(x, X_S) − k̄_S) β``, where
``k̄_S`` holds the training means of the kernel columns (the out-of-sample
centring) and ``β = L_S⁻ᵀ a`` the dual coefficients.

Sample weights are repetition counts throughout: weighted feature means,
weighted cross-products divided by the weight sum minus 1, and a pivoted
Cholesky whose stopping trace counts each row as often as its weight.
"""

from concurrent.futures import ThreadPoolExecutor
from numbers import Integral, Real

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp
from scipy.linalg.blas import dger, dtrmv
from scipy.linalg.lapack import dlauum, dpstrf
from scipy.sparse.linalg import LinearOperator
from sklearn.metrics.pairwise import (
    KERNEL_PARAMS,
    PAIRWISE_KERNEL_FUNCTIONS,
    pairwise_kernels,
)
from sklearn.utils import check_random_state
from threadpoolctl import threadpool_info

from mmfuse._blocks import (
    BLOCKS_CONSTRAINT,
    check_complete,
    fit_blocks,
    per_modality,
    validate_numeric,
)
from mmfuse.cca._base import _BaseCCA
from mmfuse.cca._solvers import eigh_top, flip_signs, numerical_rank, sumcor_matrix
from mmfuse.metrics import _mean_pairwise_correlation
from mmfuse.utils._compat import Interval, StrOptions, _fit_context

__all__ = ["KCCA"]

# Kernel names KCCA accepts, for each modality.
_KERNELS = set(PAIRWISE_KERNEL_FUNCTIONS) | {"precomputed"}

# Pivots tried per step of the pivoted Cholesky: one kernel evaluation and
# one matrix product a step keep it in level-3 BLAS.
_PIVOT_BLOCK = 128

# Values (rows x columns) per chunk when kernel rows are evaluated against
# the support rows: about 2**22 float64 values, 32 MiB.
_CHUNK_VALUES = 2**22

# solver="auto" compares rough costs, in compute-bound multiply-adds. Dense:
# the covariance of the features (n · width² / 2) and a subset eigh (about
# 4/3 · width³). Iterative: some _LANCZOS_PASSES passes over the stored
# n × width features (two a Lanczos product), each bound by memory traffic,
# about _PASS_COST times slower per value than a multiply-add. So the exact
# fit at n = 2000 with three full-rank views (width 6000) runs Lanczos, and
# Nyström at n = 10⁵ with three maps of 500 (width 1500) the dense solve.
_LANCZOS_PASSES = 100
_PASS_COST = 10


def _iterative_is_cheaper(n, width, n_components):
    """Whether Lanczos on the stored features beats the dense solve."""
    dense = n * width**2 / 2 + 4 / 3 * width**3
    iterative = _LANCZOS_PASSES * _PASS_COST * n * width
    return n_components * 10 <= width and iterative < dense


# Largest n × width of Nyström features kept in memory (2 GiB), computed
# once; beyond, each pass over the rows recomputes them chunk by chunk, and
# the covariance is streamed and solved densely.
_STORED_VALUES = 2**28


def pivoted_cholesky(
    columns, diagonal, *, tol=1e-12, block_size=_PIVOT_BLOCK, weights=None
):
    """Pivoted Cholesky factor of a PSD matrix known by its columns.

    Greedy in blocks: each step evaluates the columns of the ``block_size``
    rows with the largest residual diagonal, removes what the factor found
    so far explains, and keeps the pivots that a pivoted Cholesky of that
    block accepts. It stops when the trace of the residual
    ``K − G Gᵀ`` (positive semi-definite, so also a bound on its spectral
    norm) is at most ``tol · trace(K)``.

    Parameters
    ----------
    columns : callable
        ``columns(rows, idx)`` returns the ``(len(rows), len(idx))`` block
        ``K[np.ix_(rows, idx)]``: only the rows not pivoted on yet are asked
        for.
    diagonal : ndarray of shape (n,)
        The diagonal of ``K``.
    tol : float, default=1e-12
        Relative trace of the residual at which to stop.
    block_size : int, default=128
        Pivots tried per step.
    weights : ndarray of shape (n,), default=None
        Positive weight of each row, read as a repetition count: the traces
        that decide when to stop are weighted sums, those of the matrix with
        each row and column repeated that many times.

    Returns
    -------
    factor : ndarray of shape (n, rank)
        ``G`` with ``G Gᵀ ≈ K``; ``G[pivots]`` is lower triangular.
    pivots : ndarray of intp of shape (rank,)
        The rows pivoted on, in order.

    Examples
    --------
    >>> import numpy as np
    >>> from mmfuse.cca._kcca import pivoted_cholesky
    >>> X = np.random.RandomState(0).standard_normal((50, 3))
    >>> K = X @ X.T
    >>> G, pivots = pivoted_cholesky(lambda rows, idx: K[np.ix_(rows, idx)], np.diag(K))
    >>> G.shape, bool(np.allclose(G @ G.T, K))
    ((50, 3), True)
    """
    n = diagonal.shape[0]
    residual = np.array(diagonal, dtype=np.float64)

    def trace(values):
        return values.sum() if weights is None else values @ weights

    count = n if weights is None else weights.sum()
    stop = tol * max(float(trace(residual)), 0.0)
    # A pivot below stop / count cannot matter: count of them add up to stop.
    floor = stop / count
    factor = np.empty((n, min(n, 4 * block_size)))
    # Rows not pivoted yet: the only ones whose residual is still updated
    # (those of the pivots are zero), which makes the updates cost
    # (n − rank) · rank per column instead of n · rank.
    active = np.ones(n, dtype=bool)
    pivots = []
    rank = 0
    while rank < n and trace(residual) > stop:
        size = min(block_size, n - rank)
        candidates = np.argpartition(residual, n - size)[n - size :]
        candidates = candidates[residual[candidates] > floor]
        if candidates.size == 0:
            break
        rows = np.flatnonzero(active)
        panel = np.array(columns(rows, candidates), dtype=np.float64)
        if rank:
            panel -= factor[rows, :rank] @ factor[candidates, :rank].T
        block = panel[np.searchsorted(rows, candidates)]
        chol, order, accepted, _ = dpstrf((block + block.T) / 2, tol=floor, lower=1)
        if accepted == 0:
            break
        order = order[:accepted] - 1
        lower = np.tril(chol[:accepted, :accepted])
        chosen = candidates[order]
        if rank + accepted > factor.shape[1]:
            grown = np.empty((n, min(n, 2 * (rank + accepted))))
            grown[:, :rank] = factor[:, :rank]
            factor = grown
        new = factor[:, rank : rank + accepted]
        # Exact zeros on the earlier pivots: G[pivots] is lower triangular.
        new[~active] = 0.0
        new[rows] = sla.solve_triangular(
            lower, panel[:, order].T, lower=True, check_finite=False
        ).T
        new[chosen] = lower
        residual[rows] -= np.einsum("ij,ij->i", new[rows], new[rows])
        residual[chosen] = 0.0
        np.maximum(residual, 0.0, out=residual)
        active[chosen] = False
        pivots.append(chosen)
        rank += accepted
    pivots = np.concatenate(pivots) if pivots else np.empty(0, dtype=np.intp)
    return factor[:, :rank], pivots.astype(np.intp)


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


class _ViewKernel:
    """The kernel of one modality and the rows it is evaluated against."""

    def __init__(self, kernel, params, name):
        self.kernel = kernel
        self.params = params
        self.name = name

    def __call__(self, A, B):
        """``k(A, B)``; for a precomputed kernel ``A`` holds its columns."""
        if self.kernel == "precomputed":
            return np.asarray(A[:, B].toarray() if sp.issparse(A) else A[:, B])
        # Overflow is reported below, with the modality, not as a warning.
        with np.errstate(over="ignore", invalid="ignore"):
            try:
                K = pairwise_kernels(
                    A, B, metric=self.kernel, filter_params=True, **self.params
                )
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
        if callable(self.kernel):
            fix = (
                "A callable kernel must return a finite value for every pair of "
                "rows: fix the function or its kernel_params."
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


def _weighted(Y, weights):
    """Rows of ``Y`` times their weights (``Y`` itself without weights)."""
    return Y if weights is None else Y * weights.reshape(-1, *[1] * (Y.ndim - 1))


class _ExactFeatures:
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

    def raw_rows(self, idx):
        """Rows ``G[idx]`` (uncentred)."""
        where = np.empty(self.n, dtype=np.intp)
        where[self.support] = np.arange(len(self.support))
        where[self.rest_rows] = len(self.support) + np.arange(len(self.rest_rows))
        where = where[idx]
        out = np.empty((len(idx), len(self.support)))
        on_support = where < len(self.support)
        out[on_support] = self.lower[where[on_support]]
        out[~on_support] = self.rest[where[~on_support] - len(self.support)]
        return out

    def from_raw(self, M):
        """Map the rows of a raw-feature product to features (identity)."""
        return M

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
        step = 512
        for j in range(0, gram.shape[0], step):
            block = gram[j : j + step, j : j + step]
            block[...] = np.triu(block) + np.triu(block, 1).T
            gram[j + step :, j : j + step] = gram[j : j + step, j + step :].T
        if len(self.rest_rows):
            rest = self._rows_weighted(self.rest, self.rest_rows, 0.5)
            gram += rest.T @ rest
        return dger(-self.total, self.mean, self.mean, a=gram, overwrite_a=1)


class _NystroemFeatures:
    """Centred Nyström features ``Φ = K(·, X_S) L_S⁻ᵀ − 1 ḡᵀ``.

    The features of a row are its kernel values against the support rows
    through a triangular solve (backward stable even when ``L_S`` is
    ill-conditioned, unlike whitening a Gram matrix of kernel columns). They
    are computed once and stored when they fit in memory, else chunk by
    chunk at each pass over the rows.
    """

    def __init__(self, n, support, lower, kernel_columns, weights):
        self.n = n
        self.weights = weights
        self.total = n if weights is None else weights.sum()
        self.support = support
        self.lower = lower
        self._kernel_columns = kernel_columns
        self.centred = None
        self.mean = None

    def raw_rows(self, idx):
        """Features ``G[idx]`` (uncentred), computed from the kernel."""
        K = self._kernel_columns(idx)
        return sla.solve_triangular(self.lower, K.T, lower=True, check_finite=False).T

    def from_raw(self, M):
        """Map the rows of a feature product to features (identity)."""
        return M

    def store(self):
        """Compute and keep the centred features of every row, and their mean."""
        if self.centred is not None:
            return
        step = max(1, _CHUNK_VALUES // len(self.support))
        kernel = np.empty((self.n, len(self.support)))

        def fill(start):
            stop = min(self.n, start + step)
            kernel[start:stop] = self._kernel_columns(np.arange(start, stop))

        # Kernel chunks on threads: their evaluation is mostly single-threaded
        # NumPy (distances, exp), which releases the GIL. Then one triangular
        # solve for all rows, in place, which BLAS threads itself.
        with ThreadPoolExecutor(_blas_threads()) as pool:
            list(pool.map(fill, range(0, self.n, step)))
        features = sla.solve_triangular(
            self.lower, kernel.T, lower=True, overwrite_b=True, check_finite=False
        ).T
        self.mean = _weighted(features, self.weights).sum(axis=0) / self.total
        features -= self.mean
        self.centred = features

    def dot(self, a):
        """``Φ a`` for a vector or a matrix ``a``."""
        return self.centred @ a

    def variates(self, W):
        """Centred training variates ``Φ W``, streamed when not stored."""
        if self.centred is not None:
            return self.dot(W)
        step = max(1, _CHUNK_VALUES // len(self.support))
        return np.vstack(
            [
                self.raw_rows(np.arange(start, min(self.n, start + step))) @ W
                for start in range(0, self.n, step)
            ]
        ) - (self.mean @ W)

    def tdot(self, y):
        """``Φᵀ y`` for a vector ``y``."""
        return self.centred.T @ y

    def gram(self):
        """``Φᵀ diag(w) Φ``."""
        return _weighted(self.centred, self.weights).T @ self.centred


def _stored_covariance(factors, slices):
    """Covariance of stored centred features, block by block.

    With weights, one weighted copy of a modality's features at a time.
    """
    width = slices[-1].stop
    scatter = np.empty((width, width))
    for v, (f, s) in enumerate(zip(factors, slices, strict=True)):
        weighted = _weighted(f.centred, f.weights)
        for g, t in zip(factors[v:], slices[v:], strict=True):
            scatter[s, t] = weighted.T @ g.centred
            scatter[t, s] = scatter[s, t].T
    return scatter / (factors[0].total - 1)


def _covariance(factors, slices):
    """Covariance of the stacked features, streamed by rows.

    The raw features of each chunk are shifted by the first chunk's mean
    before their cross-products are summed, which keeps the centring
    accurate when a feature's mean dwarfs its spread (a wide rbf kernel);
    each block is then mapped to the features once. Sets each modality's
    feature mean.
    """
    n, weights, total = factors[0].n, factors[0].weights, factors[0].total
    width = slices[-1].stop
    step = max(1, _CHUNK_VALUES // width)
    shift, sums = None, np.zeros(width)
    scatter = np.zeros((width, width))
    for start in range(0, n, step):
        rows = np.arange(start, min(n, start + step))
        chunk = np.hstack([f.raw_rows(rows) for f in factors])
        if shift is None:
            shift = chunk.mean(axis=0)
        chunk -= shift
        weighted = chunk if weights is None else chunk * weights[rows, None]
        sums += weighted.sum(axis=0)
        scatter += weighted.T @ chunk
    centre = sums / total
    scatter -= total * np.outer(centre, centre)
    for f, s in zip(factors, slices, strict=True):
        scatter[s] = f.from_raw(scatter[s])
        scatter[:, s] = f.from_raw(np.ascontiguousarray(scatter[:, s].T)).T
        f.mean = f.from_raw(shift[s] + centre[s])
    return scatter / (total - 1)


class KCCA(_BaseCCA):
    """Kernel multiset canonical correlation analysis, exact or Nyström.

    MCCA (SUMCOR) in each modality's kernel feature space: with the centred
    kernel matrices ``K_v`` of the training rows it finds dual coefficients
    ``α_v`` whose variates ``K_v α_v`` are maximally correlated across
    modalities, solving the generalized symmetric eigenproblem
    ``C α = λ D α`` for its top ``n_components`` pairs. The off-diagonal
    blocks of ``C`` are ``K_v K_w / (n − 1)``; the diagonal blocks of ``C``
    and ``D`` are ``(1 − κ_v) K_v² / (n − 1) + κ_v K_v``, an absolute ridge,
    so a linear kernel on columns scaled to unit variance (``ddof=1``) gives
    exactly :class:`MCCA` with ``regularization=κ``.

    The exact fit keeps the full kernel spectrum: each kernel is factored by
    a pivoted Cholesky that evaluates only the kernel columns it pivots on
    and stops when the trace of what is left falls below
    ``cholesky_tol · trace(K_v)`` (no eigenvalue is truncated above that),
    and the eigenproblem is solved top-k by Lanczos on a linear operator
    built from the factors: the ``(V·n) × (V·n)`` matrix is never formed.
    ``approximation="nystroem"`` maps each modality with a Nyström feature
    map on ``n_landmarks`` random rows and runs the linear MCCA solve on the
    features, streaming the rows: no ``n × n`` matrix, the path to 10⁵–10⁶
    rows. With ``n_landmarks = n_samples`` it is the exact fit.

    ``transform`` evaluates the kernel of new rows against the support rows
    (the pivots or the landmarks) and centres it with the training means,
    so a single row works.

    Parameters
    ----------
    n_components : int, default=2
        Number of canonical components; at most the numerical rank of every
        modality's centred kernel features (so at most ``n_samples − 1``),
        the rule of :class:`MCCA` in feature space: a modality whose kernel
        is constant over the rows is refused.
    blocks : "auto", int, list, tuple or dict, default="auto"
        Which columns form each modality (at least two), in any form
        :func:`mmfuse.resolve_blocks` accepts. With ``kernel="precomputed"``
        each block holds one modality's ``n_samples`` kernel columns.
    kernel : str, callable or list, default="rbf"
        Kernel of each modality: a name that
        :func:`sklearn.metrics.pairwise.pairwise_kernels` accepts
        (``"linear"``, ``"rbf"``, ``"poly"``, ``"laplacian"``…), a callable
        ``k(x, y) -> float``, or ``"precomputed"`` (``X`` then holds the
        kernel values: ``k(x_i, x_j)`` of the training rows in ``fit``, of
        new rows against the training rows in ``transform``). One value for
        all modalities or a list with one a modality. Nyström fits evaluate
        the kernel on chunks of rows in as many threads as BLAS may use
        (``threadpoolctl.threadpool_limits`` bounds them), so a callable may
        run in several threads at once. Kernel values that are NaN or
        infinite, on training or new rows, are an error naming the modality.
    gamma : float, None or list, default=None
        Kernel coefficient of the rbf, laplacian, poly, sigmoid and chi2
        kernels; ``None`` uses ``1 / n_features`` of the modality. One value
        or one a modality.
    degree : float or list, default=3
        Degree of the poly kernel. One value or one a modality.
    coef0 : float or list, default=1
        Independent term of the poly and sigmoid kernels. One value or one a
        modality.
    kernel_params : dict, None or list, default=None
        Keyword arguments of a callable kernel. One dict or one a modality.
    regularization : float or array-like of shape (n_modalities,), default=0.1
        Ridge ``κ_v`` in ``(0, 1]`` of each modality (one value for all, or
        a list, tuple or 1-D array with one a modality). It must be positive:
        without it, a kernel feature space with as many dimensions as rows
        fits any variate exactly and every canonical correlation is 1.
    approximation : {None, "nystroem"}, default=None
        ``None``: the exact fit. ``"nystroem"``: Nyström feature maps.
    n_landmarks : int, default=100
        Rows drawn at random (by ``random_state``) as landmarks of each
        Nyström map; at most ``n_samples``.
    cholesky_tol : float, default=1e-12
        Relative trace of the residual at which the pivoted Cholesky stops
        (of the whole kernel when exact, of the landmark kernel for
        Nyström).
    output : {"concat", "mean"}, default="concat"
        What ``transform`` returns: the modalities' variates side by side,
        or their mean (over the modalities a row has).
    solver : {"auto", "dense", "iterative"}, default="auto"
        Eigensolver of :func:`mmfuse.cca._solvers.eigh_top`. ``"dense"``
        forms the cross-covariance of the features (streamed by rows);
        ``"iterative"`` runs Lanczos on the operator built from the stored
        features. ``"auto"`` takes the one that costs fewer operations by a
        rough count (Lanczos products are bound by memory traffic): the
        iterative solver for exact fits on more than a few hundred rows, the
        dense one for Nyström maps on many rows.
    tol : float, default=0.0
        Relative accuracy of the iterative eigensolver (0: machine
        precision).
    random_state : int, RandomState instance or None, default=None
        Draws the Nyström landmarks and seeds the iterative solver.

    Attributes
    ----------
    dual_coef_ : list of ndarray of shape (n_support_v, n_components)
        Dual coefficients of each modality on its support rows, scaled so
        that each variate has unit variance on the training data. Signs
        follow the rule of :class:`MCCA` (entry of largest magnitude
        positive, :func:`sklearn.utils.extmath.svd_flip`) applied to the
        modalities' training variates stacked, which, unlike coefficients on
        support rows, do not depend on the factorization: the exact fit, a
        Nyström fit with every row a landmark and a fit on reordered rows
        agree.
    support_ : list of ndarray of intp
        Training rows each modality's variates are expanded on: the pivots
        of the exact factorization, or the kept Nyström landmarks.
    X_fit_ : list of ndarray or sparse matrix of shape (n_support_v, d_v)
        The modality's columns of the support rows (``None`` for a
        precomputed kernel).
    kernel_means_ : list of ndarray of shape (n_support_v,)
        Training mean of each support row's kernel column: the centring of
        new kernel rows.
    canonical_correlations_ : ndarray of shape (n_components,)
        Training canonical correlation of each component (for more than two
        modalities the mean over pairs, as for :class:`MCCA`).
    eigenvalues_ : ndarray of shape (n_components,)
        Top eigenvalues of the generalized eigenproblem, decreasing.
    blocks_ : list of ndarray of intp
        Column positions of each modality.
    modality_names_ : list of str
        Name of each modality.
    n_features_in_ : int
        Number of columns seen in ``fit``.
    feature_names_in_ : ndarray of str of shape (n_features_in_,)
        Column names seen in ``fit``, when ``X`` had string column names.

    See Also
    --------
    MCCA : Linear multiset CCA.
    sklearn.kernel_approximation.Nystroem : Nyström feature map.

    Notes
    -----
    The exact fit stores, per modality, an ``n × rank`` factor while it
    solves (``rank`` is typically ``n`` for an rbf kernel at the default
    tolerance): memory ``O(V n²)``, time ``O(V n³)``. The Nyström fit
    needs ``O(n m V)`` time and ``O((m V)²)`` memory for ``m`` landmarks.

    References
    ----------
    F. R. Bach and M. I. Jordan, "Kernel independent component analysis",
    JMLR 3:1-48, 2002.

    D. R. Hardoon, S. Szedmak and J. Shawe-Taylor, "Canonical correlation
    analysis: an overview with application to learning methods", Neural
    Computation 16(12):2639-2664, 2004.

    Examples
    --------
    >>> import numpy as np
    >>> from mmfuse.cca import KCCA
    >>> from mmfuse.cca import MCCA
    >>> rng = np.random.RandomState(0)
    >>> t = rng.uniform(-2, 2, (150, 1))
    >>> X = np.hstack([t, t**2 + 0.05 * rng.standard_normal((150, 1))])
    >>> kcca = KCCA(n_components=1, blocks=2, regularization=0.1).fit(X)
    >>> np.round(kcca.canonical_correlations_, 2)
    array([0.99])
    >>> np.round(MCCA(n_components=1, blocks=2).fit(X).canonical_correlations_, 2)
    array([0.02])
    >>> kcca.transform(X[:1]).shape
    (1, 2)
    """

    _parameter_constraints: dict = {
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "blocks": BLOCKS_CONSTRAINT,
        "kernel": [
            StrOptions(_KERNELS),
            callable,
            list,
            tuple,
        ],
        "gamma": [Interval(Real, 0, None, closed="neither"), None, list, tuple],
        "degree": [Interval(Real, 0, None, closed="left"), list, tuple],
        "coef0": [Real, list, tuple],
        "kernel_params": [dict, None, list, tuple],
        "regularization": [Real, "array-like"],
        "approximation": [StrOptions({"nystroem"}), None],
        "n_landmarks": [Interval(Integral, 1, None, closed="left")],
        "cholesky_tol": [Interval(Real, 0, 1, closed="left")],
        "output": [StrOptions({"concat", "mean"})],
        "solver": [StrOptions({"auto", "dense", "iterative"})],
        "tol": [Interval(Real, 0, None, closed="left")],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        n_components=2,
        *,
        blocks="auto",
        kernel="rbf",
        gamma=None,
        degree=3,
        coef0=1,
        kernel_params=None,
        regularization=0.1,
        approximation=None,
        n_landmarks=100,
        cholesky_tol=1e-12,
        output="concat",
        solver="auto",
        tol=0.0,
        random_state=None,
    ):
        self.n_components = n_components
        self.blocks = blocks
        self.kernel = kernel
        self.gamma = gamma
        self.degree = degree
        self.coef0 = coef0
        self.kernel_params = kernel_params
        self.regularization = regularization
        self.approximation = approximation
        self.n_landmarks = n_landmarks
        self.cholesky_tol = cholesky_tol
        self.output = output
        self.solver = solver
        self.tol = tol
        self.random_state = random_state

    def _view_kernels(self):
        """Build the kernel of each modality from the (per-modality) parameters."""
        names = self.modality_names_
        settings = zip(
            per_modality("kernel", self.kernel, names, StrOptions(_KERNELS), callable),
            per_modality(
                "gamma",
                self.gamma,
                names,
                Interval(Real, 0, None, closed="neither"),
                None,
            ),
            per_modality(
                "degree", self.degree, names, Interval(Real, 0, None, closed="left")
            ),
            per_modality(
                "coef0", self.coef0, names, Interval(Real, None, None, closed="neither")
            ),
            per_modality("kernel_params", self.kernel_params, names, dict, None),
            strict=True,
        )
        kernels = []
        for name, (kernel, gamma, degree, coef0, params) in zip(
            names, settings, strict=True
        ):
            if callable(kernel):
                kernel_params = dict(params or {})
            else:
                # None leaves the kernel's own default (chi2's gamma is 1).
                given = {"gamma": gamma, "degree": degree, "coef0": coef0}
                kernel_params = {k: v for k, v in given.items() if v is not None}
            kernels.append(_ViewKernel(kernel, kernel_params, name))
        return kernels

    def _regularization(self):
        return np.asarray(
            per_modality(
                "regularization",
                self.regularization,
                self.modality_names_,
                Interval(Real, 0, 1, closed="right"),
                why=(
                    "without a ridge, a kernel feature space as wide as the number "
                    "of rows fits any variate exactly, so every canonical "
                    "correlation would be 1"
                ),
            ),
            dtype=float,
        )

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None, sample_weight=None):
        """Fit the dual coefficients on all rows of ``X``.

        Parameters
        ----------
        X : {array-like, sparse matrix, DataFrame} of shape (n_samples, n_features)
            Multimodal data, every modality in every row (with
            ``kernel="precomputed"``, each modality's training kernel).
        y : None
            Ignored.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weight of each row, read as a repetition count:
            feature means and cross-products are weighted sums, covariances
            divide by the sum of the weights minus 1, and the pivoted
            Cholesky stops on weighted traces. So integer weights give the
            model of the rows repeated that many times (to rounding; with
            ``approximation="nystroem"``, when the landmarks are the same
            rows, as when every distinct row is one), and a row of weight 0
            is dropped (with ``kernel="precomputed"``, its kernel column
            too). Nyström landmarks are drawn uniformly among the rows of
            positive weight. The weights must sum to more than 1. None:
            every row weighs 1.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        X = validate_numeric(
            self,
            X,
            accept_sparse=("csr", "csc"),
            dtype=np.float64,
            ensure_all_finite="allow-nan",
            ensure_min_samples=2,
        )
        fit_blocks(self, min_blocks=2)
        kernels = self._view_kernels()
        regularization = self._regularization()
        for kernel, block, name in zip(
            kernels, self.blocks_, self.modality_names_, strict=True
        ):
            if kernel.kernel == "precomputed" and len(block) != X.shape[0]:
                raise ValueError(
                    f"modality {name!r} has a precomputed kernel of {len(block)} "
                    f"columns but X has {X.shape[0]} rows; a precomputed kernel "
                    f"block needs one column per training row (the kernel is "
                    f"n_samples x n_samples)."
                )
        X, weights, kept = self._weighted_rows(X, sample_weight)
        check_complete(X, self.blocks_, self.modality_names_, type(self).__name__)
        n = X.shape[0]
        if weights is not None:
            self._check_weight_sum(weights.sum())
        if self.approximation == "nystroem" and self.n_landmarks > n:
            raise ValueError(
                f"n_landmarks={self.n_landmarks} exceeds n_samples={n}; use "
                f"n_landmarks <= {n} (n_landmarks = n_samples is the exact fit)."
            )
        self._check_n_components(n)
        rng = check_random_state(self.random_state)
        views = [X[:, block] for block in self.blocks_]
        if kept is not None:
            # A precomputed kernel keeps the columns of the rows kept.
            views = [
                view[:, kept] if kernel.kernel == "precomputed" else view
                for view, kernel in zip(views, kernels, strict=True)
            ]
        factors = [
            self._factor(view, kernel, weights, rng)
            for view, kernel in zip(views, kernels, strict=True)
        ]
        self._check_n_components(n, self._ranks(factors), kernel=True)
        self._kernels = kernels
        self._set_n_features_out()
        self._solve(views, factors, regularization, rng)
        if kept is not None:
            self.support_ = [kept[support] for support in self.support_]
        return self

    def _factor(self, X_view, kernel, weights, rng):
        """Factor one modality's kernel: exact or Nyström features."""
        n = X_view.shape[0]
        if self.approximation is None:
            factor, pivots = pivoted_cholesky(
                lambda rows, idx: kernel.block(X_view, rows, idx),
                kernel.diagonal(X_view),
                tol=self.cholesky_tol,
                weights=weights,
            )
            return _ExactFeatures(factor, pivots, weights)
        landmarks = np.sort(rng.choice(n, size=self.n_landmarks, replace=False))
        K_LL = kernel.block(X_view, landmarks, landmarks)
        factor, pivots = pivoted_cholesky(
            lambda rows, idx: K_LL[np.ix_(rows, idx)],
            np.diag(K_LL).copy(),
            tol=self.cholesky_tol,
        )
        support = landmarks[pivots]
        landmark_rows = support if kernel.kernel == "precomputed" else X_view[support]
        return _NystroemFeatures(
            n,
            support,
            factor[pivots],
            lambda rows: kernel(X_view[rows], landmark_rows),
            weights,
        )

    def _ranks(self, factors):
        """Numerical rank of each modality's centred kernel features.

        A factor on ``m`` support rows spans ``m`` directions and centring
        removes at most one, so only a modality with ``m <= n_components``
        needs its centred rank, from the Gram matrix of its (then few)
        centred features. A pivot counts as zero against the features'
        uncentred second moment, the scale of the kernel values and of their
        rounding: a kernel constant over the rows has rank 0.
        """
        ranks = []
        for f in factors:
            if len(f.support) > self.n_components or len(f.support) == 0:
                ranks.append(len(f.support))
                continue
            f.store()
            gram = f.gram() / f.total
            second_moment = np.diag(gram) + f.mean**2
            ranks.append(numerical_rank(gram, scale=float(second_moment.max())))
        return ranks

    def _solve(self, views, factors, regularization, rng):
        n, row_weights, total = factors[0].n, factors[0].weights, factors[0].total
        starts = np.cumsum([0, *(len(f.support) for f in factors)])
        slices = [slice(a, b) for a, b in zip(starts[:-1], starts[1:], strict=True)]
        solver = self.solver
        width = starts[-1]
        stored = self.approximation is None or n * width <= _STORED_VALUES
        if solver == "auto":
            cheaper = _iterative_is_cheaper(n, width, self.n_components)
            solver = "iterative" if cheaper and stored else "dense"
        if solver == "iterative" or stored:
            for features in factors:
                features.store()
        if solver == "iterative":
            eigenvalues, weights = self._solve_iterative(factors, regularization, rng)
        else:
            stored_features = self.approximation is not None and stored
            C = (_stored_covariance if stored_features else _covariance)(
                factors, slices
            )
            D = [
                (1 - r) * C[s, s] + r * np.eye(s.stop - s.start)
                for s, r in zip(slices, regularization, strict=True)
            ]
            eigenvalues, vectors = eigh_top(
                sumcor_matrix(C, D),
                self.n_components,
                B=D,
                solver=solver,
                random_state=rng,
                tol=self.tol,
            )
            weights = [vectors[s] for s in slices]
        variates = np.stack(
            [f.variates(W) for f, W in zip(factors, weights, strict=True)]
        )
        # (Co)variances over the rows (axis n), weighted by repetition counts.
        counts = np.ones(n) if row_weights is None else row_weights
        variances = np.einsum("vnk,n,vnk->vk", variates, counts, variates)
        variances /= total - 1
        scale = np.where(variances > 0, 1 / np.sqrt(np.maximum(variances, 1e-300)), 0)
        variates *= scale[:, None, :]
        # The sign rule on the training variates, stacked: unlike dual
        # coefficients, they do not depend on the support rows, so the sign
        # is the same for any row order, exact or Nyström.
        stacked = variates.reshape(-1, self.n_components)
        signs = np.where(
            np.sum(flip_signs(stacked.copy()) * stacked, axis=0) < 0, -1, 1
        )
        variates *= signs
        cross = np.einsum("vnk,n,wnk->vwk", variates, counts, variates)
        self.dual_coef_ = [
            sla.solve_triangular(
                f.lower, W * (s * signs), lower=True, trans="T", check_finite=False
            )
            for f, W, s in zip(factors, weights, scale, strict=True)
        ]
        self.kernel_means_ = [f.lower @ f.mean for f in factors]
        self.support_ = [f.support for f in factors]
        self.X_fit_ = [
            None if kernel.kernel == "precomputed" else view[f.support]
            for view, kernel, f in zip(views, self._kernels, factors, strict=True)
        ]
        self.eigenvalues_ = np.asarray(eigenvalues, dtype=np.float64)
        self.canonical_correlations_ = _mean_pairwise_correlation(cross)

    def _solve_iterative(self, factors, regularization, rng):
        """Top-k of ``C a = λ D a`` by Lanczos, ``C`` known by its products."""
        row_weights, total = factors[0].weights, factors[0].total
        starts = np.cumsum([0, *(len(f.support) for f in factors)])
        slices = [slice(a, b) for a, b in zip(starts[:-1], starts[1:], strict=True)]

        def blocks_of_D():
            # One block at a time: eigh_top factors each block as it comes,
            # so only one rank × rank block is alive beside the factors.
            for f, r in zip(factors, regularization, strict=True):
                D_v = f.gram()
                D_v *= (1 - r) / (total - 1)
                D_v.flat[:: D_v.shape[0] + 1] += r
                yield D_v

        def matvec(x):
            # (C a)_v = [Φ_vᵀ W (Σ_w Φ_w a_w − κ_v Φ_v a_v)] / (Σ w − 1) + κ_v a_v
            x = np.ravel(x)
            images = [f.dot(x[s]) for f, s in zip(factors, slices, strict=True)]
            summed = np.sum(images, axis=0)
            out = np.empty(starts[-1])
            for f, s, image, r in zip(
                factors, slices, images, regularization, strict=True
            ):
                image = _weighted(summed - r * image, row_weights)
                out[s] = f.tdot(image) / (total - 1) + r * x[s]
            return out

        operator = LinearOperator(
            (starts[-1], starts[-1]), matvec=matvec, dtype=np.float64
        )
        eigenvalues, vectors = eigh_top(
            operator,
            self.n_components,
            B=blocks_of_D(),
            solver="iterative",
            random_state=rng,
            tol=self.tol,
        )
        return eigenvalues, [vectors[s] for s in slices]

    def _transform_view(self, X_view, view):
        kernel = self._kernels[view]
        support = self.X_fit_[view]
        K = kernel(X_view, self.support_[view] if support is None else support)
        K = np.asarray(K, dtype=np.float64) - self.kernel_means_[view]
        return K @ self.dual_coef_[view]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.pairwise = (
            isinstance(self.kernel, str) and self.kernel == "precomputed"
        )
        return tags
