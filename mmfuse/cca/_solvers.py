"""Linear algebra of the CCA family: top-k eigensolves, Cholesky factors.

Every estimator of :mod:`mmfuse.cca` ends in ``A x = λ B x`` with ``A``
symmetric and ``B`` symmetric positive definite and block-diagonal (one block
a view). :func:`eigh_top` returns the ``k`` largest eigenpairs after one
Cholesky whitening of ``B``, block by block, either with a subset
``scipy.linalg.eigh`` (``solver="dense"``) or with ARPACK's Lanczos
iteration on a linear operator (``solver="iterative"``, also for an ``A``
that is only known through its products). Eigenvector signs follow one
documented rule, :func:`flip_signs` (:func:`column_signs` says which).
:func:`numerical_rank` and :func:`pivoted_cholesky` factor positive
semi-definite matrices by diagonal pivoting, the latter one block of
columns at a time, for a matrix known only by its columns (a kernel).
"""

from collections.abc import Callable, Iterable, Sequence

import numpy as np
import scipy.linalg as sla
from numpy.typing import NDArray
from scipy.linalg.blas import dtpsv
from scipy.linalg.lapack import dpstrf
from scipy.sparse.linalg import LinearOperator, aslinearoperator, eigsh
from sklearn.utils import check_random_state
from sklearn.utils.extmath import svd_flip

__all__ = [
    "PackedLower",
    "SingularBlockError",
    "block_cholesky",
    "column_signs",
    "eigh_top",
    "flip_signs",
    "numerical_rank",
    "pivoted_cholesky",
    "sumcor_matrix",
]

# Pivots tried per step of the pivoted Cholesky: one evaluation of columns
# and one matrix product a step keep it in level-3 BLAS.
_PIVOT_BLOCK = 128


class SingularBlockError(np.linalg.LinAlgError):
    """A diagonal block of ``B`` is not (numerically) positive definite.

    Parameters
    ----------
    block : int
        Position of the offending block; estimators turn it into a message
        that names the view.
    message : str
        What was found.
    """

    def __init__(self, block: int, message: str):
        super().__init__(message)
        self.block = block


class PackedLower:
    """A lower triangular matrix in LAPACK's packed storage: half the memory.

    Kept for the solves of a Lanczos iteration, which are level-2 BLAS
    (``tpsv``) and read the same ``d (d + 1) / 2`` numbers as a full
    triangle would.

    Parameters
    ----------
    lower : ndarray of shape (d, d)
        Lower triangular (the upper triangle is not read).
    """

    def __init__(self, lower: NDArray):
        d = lower.shape[0]
        self.shape = lower.shape
        self.packed = np.empty(d * (d + 1) // 2, dtype=np.float64)
        offset = 0
        for j in range(d):
            # Column-major: column j from the diagonal down.
            self.packed[offset : offset + d - j] = lower[j:, j]
            offset += d - j

    def solve(self, Y: NDArray, *, transpose: bool) -> NDArray:
        """``L⁻¹ Y`` (or ``L⁻ᵀ Y``), column by column."""
        out = np.empty((Y.shape[0], Y.shape[1]))
        for c in range(Y.shape[1]):
            out[:, c] = dtpsv(
                self.shape[0], self.packed, Y[:, c], lower=1, trans=int(transpose)
            )
        return out


def block_cholesky(
    blocks: Iterable[NDArray], *, overwrite: bool = False, packed: bool = False
) -> list[NDArray]:
    """Lower Cholesky factor of each diagonal block.

    A block counts as singular when Cholesky fails, or when a squared pivot
    falls below ``width * eps * max(diag(block))``: exactly singular blocks
    (constant or duplicate columns, fewer samples than columns) often pass
    LAPACK with pivots at rounding level, which would make the whitening
    explode instead of failing.

    Parameters
    ----------
    blocks : iterable of ndarray of shape (d_v, d_v)
        Symmetric positive definite blocks.
    overwrite : bool, default=False
        Factor each block in place (in its own memory when it is
        Fortran-contiguous, as LAPACK needs), so that no second copy of a
        block is made: for blocks that nobody else holds.
    packed : bool, default=False
        Keep each factor as a :class:`PackedLower` (half the memory), for
        solves with few right-hand sides.

    Returns
    -------
    factors : list of ndarray of shape (d_v, d_v) or of PackedLower
        Lower triangular ``L_v`` with ``L_v L_vᵀ = blocks[v]``.

    Raises
    ------
    SingularBlockError
        With the position of the first singular block.
    """
    factors = []
    # Not enumerate: its cached result tuple would keep the previous block
    # alive while an iterator makes the next one.
    for block in blocks:
        position = len(factors)
        scale = float(np.max(np.diag(block), initial=0.0))
        if not scale > 0:
            raise SingularBlockError(position, f"block {position} is zero.")
        try:
            factor = sla.cholesky(
                block, lower=True, overwrite_a=overwrite, check_finite=False
            )
        except np.linalg.LinAlgError as exc:
            raise SingularBlockError(
                position, f"block {position} is not positive definite."
            ) from exc
        floor = block.shape[0] * np.finfo(block.dtype).eps * scale
        if np.min(np.diag(factor)) ** 2 <= floor:
            raise SingularBlockError(
                position, f"block {position} is numerically singular."
            )
        factors.append(PackedLower(factor) if packed else factor)
        # Let a block factored in place (and packed) go before the next is made.
        del block, factor
    return factors


def numerical_rank(C: NDArray, scale: float | None = None) -> int:
    """Numerical rank of a symmetric positive semi-definite matrix.

    A pivoted Cholesky factorization (LAPACK ``pstrf``) stops at the first
    squared pivot at most ``d * eps * scale``: the floor under which
    :func:`block_cholesky` calls a block singular, so a block that it
    accepts has full rank here.

    Parameters
    ----------
    C : ndarray of shape (d, d)
        Symmetric positive semi-definite, float64 or float32.
    scale : float, default=None
        Magnitude against which a pivot is negligible; the largest diagonal
        entry of ``C`` when None.

    Returns
    -------
    rank : int
        Number of pivots above the floor; 0 for a zero matrix.

    Examples
    --------
    >>> import numpy as np
    >>> from mmfuse.cca._solvers import numerical_rank
    >>> A = np.random.RandomState(0).standard_normal((5, 2))
    >>> numerical_rank(A @ A.T), numerical_rank(np.zeros((3, 3)))
    (2, 0)
    >>> numerical_rank(np.array([[1e-20]]), scale=1.0)
    0
    """
    if scale is None:
        scale = float(np.max(np.diag(C), initial=0.0))
    if not scale > 0:
        return 0
    floor = C.shape[0] * np.finfo(C.dtype).eps * scale
    if not np.max(np.diag(C), initial=0.0) > floor:
        return 0  # pstrf compares its first pivot with 0 only, not with tol
    (pstrf,) = sla.get_lapack_funcs(("pstrf",), (C,))
    _, _, rank, _ = pstrf(C, tol=floor, lower=1)
    return int(rank)


def pivoted_cholesky(
    columns: Callable[[NDArray, NDArray], NDArray],
    diagonal: NDArray,
    *,
    tol: float = 1e-12,
    block_size: int = _PIVOT_BLOCK,
    weights: NDArray | None = None,
) -> tuple[NDArray, NDArray]:
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
    >>> from mmfuse.cca._solvers import pivoted_cholesky
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


def _block_solve(factors, Y, *, transpose):
    """``L⁻¹ Y`` (or ``L⁻ᵀ Y``) for block-diagonal lower triangular ``L``."""
    out = np.empty_like(Y)
    start = 0
    for factor in factors:
        stop = start + factor.shape[0]
        if isinstance(factor, PackedLower):
            out[start:stop] = factor.solve(Y[start:stop], transpose=transpose)
        else:
            out[start:stop] = sla.solve_triangular(
                factor,
                Y[start:stop],
                lower=True,
                trans="T" if transpose else "N",
                check_finite=False,
            )
        start = stop
    return out


def sumcor_matrix(C: NDArray, D: Sequence[NDArray]) -> NDArray:
    """Left-hand side of SUMCOR multiset CCA: ``C`` with ``D`` on its diagonal.

    Parameters
    ----------
    C : ndarray of shape (p, p)
        (Cross-)covariances of the views stacked side by side.
    D : sequence of ndarray of shape (d_v, d_v)
        Regularized within-view blocks, in order (``sum(d_v) = p``).

    Returns
    -------
    A : ndarray of shape (p, p)
        A copy of ``C`` whose diagonal blocks are replaced by ``D``, so that
        ``A a = λ D a`` has ``λ - 1`` the eigenvalues of the off-diagonal part
        (``λ = 1 + ρ`` for two views; DESIGN.md).
    """
    A = C.copy()
    start = 0
    for D_v in D:
        stop = start + D_v.shape[0]
        A[start:stop, start:stop] = D_v
        start = stop
    return A


def flip_signs(V: NDArray) -> NDArray:
    """Fix the sign of each column: its entry of largest magnitude is positive.

    This is scikit-learn's :func:`~sklearn.utils.extmath.svd_flip` rule
    (``u_based_decision=True``); applied to the stacked weights of all views,
    it makes two fits on the same data, with any solver, agree.

    Parameters
    ----------
    V : ndarray of shape (n_rows, k)
        Eigenvectors as columns; changed in place.

    Returns
    -------
    V : ndarray of shape (n_rows, k)
        The same array, columns sign-flipped.

    Examples
    --------
    >>> import numpy as np
    >>> from mmfuse.cca._solvers import flip_signs
    >>> flip_signs(np.array([[0.5, 1.0], [-2.0, 0.1]]))
    array([[-0.5,  1. ],
           [ 2. ,  0.1]])
    """
    return svd_flip(V, None, u_based_decision=True)[0]


def column_signs(V: NDArray) -> NDArray:
    """Signs that :func:`flip_signs` gives the columns of ``V``.

    Parameters
    ----------
    V : ndarray of shape (n_rows, k)
        Columns to read; not changed.

    Returns
    -------
    signs : ndarray of shape (k,)
        ``-1`` where the column's entry of largest magnitude is negative,
        else ``1`` (a zero column too).

    Examples
    --------
    >>> import numpy as np
    >>> from mmfuse.cca._solvers import column_signs
    >>> column_signs(np.array([[0.5, 1.0], [-2.0, 0.1]]))
    array([-1,  1])
    """
    return np.where(np.sum(flip_signs(V.copy()) * V, axis=0) < 0, -1, 1)


def eigh_top(
    A,
    n_components: int,
    *,
    B: NDArray | Iterable[NDArray] | None = None,
    solver: str = "dense",
    random_state=None,
    tol: float = 0.0,
    max_iter: int | None = None,
) -> tuple[NDArray, NDArray]:
    """Largest eigenpairs of ``A x = λ B x``, never a full decomposition.

    ``B`` is whitened once by :func:`block_cholesky`; the standard problem
    ``L⁻¹ A L⁻ᵀ u = λ u`` is then solved for its top ``n_components`` pairs
    and ``x = L⁻ᵀ u``.

    Parameters
    ----------
    A : ndarray of shape (p, p) or LinearOperator
        Symmetric. A :class:`~scipy.sparse.linalg.LinearOperator` (only with
        ``solver="iterative"``) is used through its products alone.
    n_components : int
        Number of pairs, ``1 <= n_components <= p`` (``< p`` for the
        iterative solver).
    B : ndarray of shape (p, p), sequence or iterator of square ndarray, or None
        Symmetric positive definite right-hand side: one matrix, or the
        diagonal blocks of a block-diagonal ``B`` in order (blocks from an
        iterator, such as a generator, are factored in place). ``None``
        means the identity.
    solver : {"dense", "iterative"}, default="dense"
        ``"dense"``: form the whitened matrix and call
        :func:`scipy.linalg.eigh` with ``subset_by_index``. ``"iterative"``:
        :func:`scipy.sparse.linalg.eigsh` (implicitly restarted Lanczos) on
        the whitened operator, started from a vector drawn from
        ``random_state``.
    random_state : int, RandomState instance or None, default=None
        Seeds the iterative solver's start vector.
    tol : float, default=0.0
        Relative accuracy of the iterative solver (0: machine precision).
    max_iter : int, default=None
        Most Arnoldi iterations of the iterative solver (ARPACK's default
        when None).

    Returns
    -------
    eigenvalues : ndarray of shape (n_components,)
        In decreasing order.
    eigenvectors : ndarray of shape (p, n_components)
        ``B``-orthonormal columns (``XᵀBX = I``), signs fixed by
        :func:`flip_signs`.

    Raises
    ------
    SingularBlockError
        When a block of ``B`` is singular.

    Examples
    --------
    >>> import numpy as np
    >>> from mmfuse.cca._solvers import eigh_top
    >>> A = np.diag([1.0, 4.0, 2.0])
    >>> values, vectors = eigh_top(A, 2, B=2 * np.eye(3))
    >>> values
    array([2., 1.])
    >>> np.round(vectors, 3)
    array([[0.   , 0.   ],
           [0.707, 0.   ],
           [0.   , 0.707]])
    """
    p = A.shape[0]
    if B is None:
        factors = None
    elif isinstance(B, np.ndarray):
        factors = block_cholesky([B])
    else:
        # Blocks made one at a time by an iterator are held by nobody else:
        # each is factored in its own memory, and for Lanczos (solves with
        # one vector) kept packed.
        iterator = iter(B) is B
        factors = block_cholesky(
            B, overwrite=iterator, packed=iterator and solver == "iterative"
        )
    if solver == "dense":
        if not isinstance(A, np.ndarray):
            raise TypeError(
                f"solver='dense' needs A as an ndarray; got {type(A).__name__}. "
                f"Use solver='iterative' for a LinearOperator."
            )
        M = A if factors is None else _whiten(A, factors)
        values, vectors = sla.eigh(
            M,
            subset_by_index=[p - n_components, p - 1],
            overwrite_a=factors is not None,
            check_finite=False,
        )
        if len(values) < n_components:
            # LAPACK's subset driver (syevr) in some BLAS builds can return
            # no pair at all when the top eigenvalues are close (scipy issue
            # 13913; seen here once, in a property test): solve in full.
            M = A if factors is None else _whiten(A, factors)
            values, vectors = sla.eigh(M)
            values, vectors = values[p - n_components :], vectors[:, p - n_components :]
    elif solver == "iterative":
        if n_components >= p:
            raise ValueError(
                f"solver='iterative' needs n_components < {p} (the problem "
                f"size); got n_components={n_components}. Use solver='dense'."
            )
        operator = _whitened_operator(A, factors)
        start = check_random_state(random_state).uniform(-1.0, 1.0, p)
        values, vectors = eigsh(
            operator,
            k=n_components,
            which="LA",
            v0=start.astype(operator.dtype),
            tol=tol,
            maxiter=max_iter,
        )
    else:
        raise ValueError(f"solver={solver!r} is not one of 'dense', 'iterative'.")
    order = np.argsort(values)[::-1]
    values, vectors = values[order], vectors[:, order]
    if factors is not None:
        vectors = _block_solve(factors, vectors, transpose=True)
    return values, flip_signs(vectors)


def _whiten(A, factors):
    """``L⁻¹ A L⁻ᵀ`` for symmetric ``A`` (``= L⁻¹ (L⁻¹ A)ᵀ``)."""
    half = _block_solve(factors, A, transpose=False)
    return _block_solve(factors, np.ascontiguousarray(half.T), transpose=False)


def _whitened_operator(A, factors):
    A = aslinearoperator(A)
    if factors is None:
        return A

    def matvec(x):
        y = _block_solve(factors, np.asarray(x).reshape(-1, 1), transpose=True)
        return _block_solve(factors, A.matmat(y), transpose=False)

    return LinearOperator(A.shape, matvec=matvec, dtype=A.dtype)
