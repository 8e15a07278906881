"""The shared core of the CCA family: the solve and all that follows it.

MCCA, GCCA and KCCA fit the same kind of problem: a generalized symmetric
eigenproblem ``A a = λ D a`` over views stacked side by side
(:func:`stacked_slices`), whose block-diagonal ``D`` holds each view's
covariance shrunk towards a multiple of the identity
(:func:`regularized_block`), solved top-k (:func:`solve_top`, with the one
rule for ``solver="auto"``, :func:`choose_solver`), and whose weights are
then scaled to unit-variance variates with one sign rule
(:func:`unit_variance_signs`); the training canonical correlations follow
from the variates' covariances
(:func:`mmfuse.metrics.canonical_correlation_from_covariance`). The data
enter through their sufficient statistics (:mod:`mmfuse.cca._statistics`)
or, for KCCA, through kernel features.

A subclass of :class:`_BaseCCA` fits per-view projections and implements
one method, ``_transform_view(X_view, view)``, that maps the columns of one
view (rows that have it) to ``n_components`` canonical variates.
Everything the user calls after ``fit`` lives there, with the rules every
fit applies: sample weights as repetition counts
(:meth:`_BaseCCA._weighted_rows`), the regularization of each modality
(:meth:`_BaseCCA._regularization`) and the one rank rule for
``n_components`` (:meth:`_BaseCCA._check_n_components`).
"""

from collections.abc import Iterable, Sequence
from numbers import Real

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
)
from sklearn.utils.validation import check_is_fitted

from mmfuse._blocks import (
    check_any_modality,
    check_complete,
    per_modality,
    shared_space_names,
    validate_numeric,
)
from mmfuse.cca._solvers import column_signs, eigh_top
from mmfuse.metrics import canonical_correlation_score
from mmfuse.utils._compat import (
    Interval,
    _check_feature_names_in,
    _check_sample_weight,
)
from mmfuse.utils._dask import is_dask_collection

__all__ = [
    "_BaseCCA",
    "choose_solver",
    "regularized_block",
    "solve_top",
    "stacked_slices",
    "unit_variance_signs",
]

# solver="auto" on a formed width x width matrix (MCCA, GCCA) takes Lanczos
# above this total width (when n_components is at most a tenth of it). At
# 3 x 1000 columns and 10 components a dense solve was still faster than
# Lanczos (whose restarts are slow when the trailing components sit in the
# noise bulk); the dense cost grows as the cube of the width.
_ITERATIVE_WIDTH = 5000

# solver="auto" on n x width stored features (KCCA) compares rough costs, in
# compute-bound multiply-adds. Dense: the covariance of the features
# (n · width² / 2) and a subset eigh (about 4/3 · width³). Iterative: some
# _LANCZOS_PASSES passes over the features (two a Lanczos product), each
# bound by memory traffic, about _PASS_COST times slower per value than a
# multiply-add. So the exact fit at n = 2000 with three full-rank views
# (width 6000) runs Lanczos, and Nyström at n = 10⁵ with three maps of 500
# (width 1500) the dense solve.
_LANCZOS_PASSES = 100
_PASS_COST = 10


def stacked_slices(widths: Iterable[int]) -> list[slice]:
    """Position of each view when the views are stacked side by side.

    Parameters
    ----------
    widths : iterable of int
        Width of each view, in order.

    Returns
    -------
    slices : list of slice
        ``slices[v]`` selects view ``v`` in the stacked columns.

    Examples
    --------
    >>> from mmfuse.cca._base import stacked_slices
    >>> stacked_slices([2, 3])
    [slice(0, 2, None), slice(2, 5, None)]
    """
    slices, start = [], 0
    for width in widths:
        slices.append(slice(start, start + int(width)))
        start += int(width)
    return slices


def regularized_block(
    C_vv: NDArray, r: float, *, relative: bool, overwrite: bool = False
) -> NDArray:
    """Shrink a view's covariance towards a multiple of the identity.

    ``(1 − r) C_vv + r t I`` with ``t = tr(C_vv) / d_v`` when ``relative``
    (MCCA and GCCA: scale invariant, ``I`` on standardized columns), else
    ``t = 1``, the absolute ridge of KCCA's feature spaces.

    Parameters
    ----------
    C_vv : ndarray of shape (d_v, d_v)
        Covariance of the view's columns (or features).
    r : float
        Regularization in [0, 1].
    relative : bool
        Whether the target is ``tr(C_vv) / d_v · I`` rather than ``I``.
    overwrite : bool, default=False
        Write the result over ``C_vv`` (which must then be contiguous and
        of the result's dtype) rather than into a new array.

    Returns
    -------
    D_v : ndarray of shape (d_v, d_v)
        The regularized block.
    """
    width = C_vv.shape[0]
    ridge = r * np.trace(C_vv) / width if relative else r
    D_v = np.multiply(C_vv, 1 - r, out=C_vv if overwrite else None)
    D_v.flat[:: width + 1] += ridge
    return D_v


def choose_solver(
    solver: str, n_components: int, width: int, *, n_rows: int | None = None
) -> str:
    """Resolve ``solver="auto"`` into the eigensolver to run; others as given.

    Lanczos pays only for few components of a wide problem
    (``n_components`` at most a tenth of ``width``). Beyond that, what it
    multiplies by decides. On a formed ``width × width`` matrix
    (``n_rows=None``: MCCA, GCCA) it takes the iterative solver when the
    width exceeds 5000. On ``n_rows × width`` stored features (KCCA) it
    takes the solver of fewer operations by a rough count, Lanczos products
    being bound by memory traffic.

    Parameters
    ----------
    solver : {"auto", "dense", "iterative"}
        The estimator's parameter.
    n_components : int
        Number of eigenpairs wanted.
    width : int
        Size of the eigenproblem (the views' total width).
    n_rows : int, default=None
        Rows of the features that Lanczos multiplies by; None when it
        multiplies by the formed matrix.

    Returns
    -------
    solver : {"dense", "iterative"}
        The solver to run.
    """
    if solver != "auto":
        return solver
    if n_components * 10 > width:
        return "dense"
    if n_rows is None:
        return "iterative" if width > _ITERATIVE_WIDTH else "dense"
    dense = n_rows * width**2 / 2 + 4 / 3 * width**3
    iterative = _LANCZOS_PASSES * _PASS_COST * n_rows * width
    return "iterative" if iterative < dense else "dense"


def solve_top(
    A,
    D: Sequence[NDArray] | Iterable[NDArray],
    n_components: int,
    slices: Sequence[slice],
    *,
    solver: str,
    random_state=None,
    tol: float = 0.0,
) -> tuple[NDArray, list[NDArray]]:
    """Top ``n_components`` pairs of ``A a = λ D a``, split into views.

    Parameters
    ----------
    A : ndarray of shape (p, p) or LinearOperator
        Symmetric left-hand side (an operator only for the iterative
        solver).
    D : sequence or iterable of ndarray of shape (d_v, d_v)
        The regularized diagonal blocks, in order (a generator lets the
        whitening hold one block at a time).
    n_components : int
        Number of pairs.
    slices : sequence of slice
        Position of each view (:func:`stacked_slices`).
    solver : {"dense", "iterative"}
        As :func:`mmfuse.cca._solvers.eigh_top`.
    random_state : int, RandomState instance or None, default=None
        Seeds the iterative solver.
    tol : float, default=0.0
        Relative accuracy of the iterative solver.

    Returns
    -------
    eigenvalues : ndarray of shape (n_components,)
        Decreasing, float64.
    weights : list of ndarray of shape (d_v, n_components)
        Each view's rows of the ``D``-orthonormal eigenvectors.

    Raises
    ------
    SingularBlockError
        When a block of ``D`` is singular.
    """
    eigenvalues, vectors = eigh_top(
        A, n_components, B=D, solver=solver, random_state=random_state, tol=tol
    )
    return np.asarray(eigenvalues, dtype=np.float64), [vectors[s] for s in slices]


def unit_variance_signs(variances: NDArray, basis: Sequence[NDArray]) -> NDArray:
    """Scale of each view's component for unit variance, with one sign rule.

    A component of zero variance gets scale 0. The sign of each component
    is that of the entry of largest magnitude of the views' ``basis``
    scaled and stacked (:func:`mmfuse.cca._solvers.column_signs`): the
    weights for MCCA and GCCA, the training variates for KCCA (which,
    unlike dual coefficients, do not depend on the support rows).

    Parameters
    ----------
    variances : ndarray of shape (n_views, n_components)
        Variance of each view's raw variates.
    basis : sequence of ndarray of shape (m_v, n_components)
        What the sign rule reads, one array a view, unscaled.

    Returns
    -------
    scale : ndarray of shape (n_views, n_components)
        Factor of each view's weights (or variates), signs included; the
        dtype of ``variances``.
    """
    scale = np.where(variances > 0, 1 / np.sqrt(np.maximum(variances, 1e-300)), 0)
    scale *= column_signs(np.vstack([B * s for B, s in zip(basis, scale, strict=True)]))
    return scale


def _has_nan(X):
    """Whether validated ``X`` (no inf) holds a NaN, in one reduction."""
    values = X.data if sp.issparse(X) else X
    return not np.isfinite(values.sum())


class _BaseCCA(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Base class for transformers that map each view to canonical variates.

    Subclasses have the parameters ``n_components`` and ``output``
    (``"concat"`` or ``"mean"``), set ``blocks_``, ``modality_names_`` (by
    :func:`~mmfuse._blocks.fit_blocks`) and ``n_features_in_`` in ``fit``,
    call :meth:`_set_n_features_out` there, and implement
    ``_transform_view(X_view, view)``: the ``(n_rows, n_components)``
    variates of view number ``view`` from its columns ``X_view`` (ndarray
    or sparse, rows complete).
    """

    # Range of each modality's regularization, and why it is that (added to
    # the message of a value outside it).
    _regularization_range = Interval(Real, 0, 1, closed="both")
    _regularization_why = ""

    def _transform_view(self, X_view, view):
        raise NotImplementedError

    def _regularization(self):
        """Return the regularization of each modality, range-checked."""
        return np.asarray(
            per_modality(
                "regularization",
                self.regularization,
                self.modality_names_,
                self._regularization_range,
                why=self._regularization_why,
            ),
            dtype=float,
        )

    def _weighted_rows(self, X, sample_weight):
        """Validate ``sample_weight``; drop the rows of ``X`` it gives weight 0.

        Weights are repetition counts: a weight of 0 drops its row, so such
        a row may hold anything, NaN included. Returns ``X``, the weights of
        its rows (None when none are given) and the positions of the rows
        kept (None when all are).
        """
        if sample_weight is None:
            return X, None, None
        weights = _check_sample_weight(
            sample_weight, X, dtype=np.float64, ensure_non_negative=True
        )
        if np.all(weights > 0):
            return X, weights, None
        kept = np.flatnonzero(weights)
        return X[kept], weights[kept], kept

    def _check_weight_sum(self, total):
        """Covariances divide by the weight sum minus 1: it must exceed 1."""
        if not total > 1:
            raise ValueError(
                f"sample_weight sums to {total:g}, but {type(self).__name__} "
                f"reads the weights as repetition counts (covariances divide by "
                f"their sum minus 1), so they must sum to more than 1. Scale "
                f"them, e.g. sample_weight * n_samples / sample_weight.sum()."
            )

    def _check_n_components(self, n_rows, ranks=None, *, kernel=False):
        """Refuse components the data do not span: the rank rule of the family.

        A component needs a variate in every modality. Centred, ``n_rows``
        rows span at most ``n_rows - 1`` directions, and a modality's
        centred columns (its centred kernel features, for KCCA) span their
        numerical rank ``ranks[v]``: beyond it the modality has no variate
        left, so a further component would have a constant output column and
        a meaningless correlation. Rank 0 means the modality is constant
        over the rows, which no regularization can change.
        """
        k = self.n_components
        if k > n_rows - 1:
            fix = (
                f"Use n_components <= {n_rows - 1}, or fit on more rows."
                if n_rows > 1
                else "Fit on at least 2 rows with a positive sample_weight."
            )
            raise ValueError(
                f"n_components={k} exceeds n_samples - 1 = {n_rows - 1}: "
                f"centred, {n_rows} row(s) span at most {n_rows - 1} "
                f"direction(s) in any modality, so further components would not "
                f"exist. {fix}"
            )
        if ranks is None:
            return
        v = int(np.argmin(ranks))
        rank, name = ranks[v], self.modality_names_[v]
        space = f"the kernel of modality {name!r}" if kernel else f"modality {name!r}"
        if rank == 0 and kernel:
            raise ValueError(
                f"{space} has numerical rank 0 over the {n_rows} training rows: "
                f"it is constant there, or not positive semi-definite (such as "
                f"'additive_chi2', whose k(x, x) is 0), so its feature space is "
                f"empty and shares nothing with the other modalities, whatever "
                f"the regularization. Change its kernel or kernel parameters, "
                f"drop it from blocks, or give it variance."
            )
        if rank == 0:
            raise ValueError(
                f"{space} is constant over the {n_rows} training rows (zero "
                f"variance, numerical rank 0): it shares nothing with the other "
                f"modalities, and no regularization can change that. Drop it "
                f"from blocks, or give it variance."
            )
        if k > rank:
            columns = "kernel features" if kernel else "columns"
            raise ValueError(
                f"n_components={k} exceeds the numerical rank {rank} of {space}: "
                f"its centred {columns} span {rank} direction(s) (constant or "
                f"duplicate {columns} add none), so beyond {rank} component(s) it "
                f"has no variate left. Use n_components <= {rank}."
            )

    def _set_n_features_out(self):
        """Set ``_n_features_out`` from ``n_components`` and ``output``."""
        width = len(self.blocks_) if self.output == "concat" else 1
        self._n_features_out = self.n_components * width

    def _validate_for_transform(self, X):
        check_is_fitted(self)
        return validate_numeric(
            self,
            X,
            accept_sparse=("csr", "csc"),
            dtype=[np.float64, np.float32],
            ensure_all_finite="allow-nan",
            reset=False,
        )

    def _views(self, X, present):
        """Variates of each view; NaN rows where the view is absent."""
        views = []
        for v, block in enumerate(self.blocks_):
            rows = present[:, v]
            if rows.all():
                views.append(self._transform_view(X[:, block], v))
            elif rows.any():  # (a kernel cannot be evaluated on no row)
                variates = self._transform_view(X[rows][:, block], v)
                full = np.full((len(rows), variates.shape[1]), np.nan, variates.dtype)
                full[rows] = variates
                views.append(full)
            else:
                views.append(None)
        # A view no row has: NaN, in the dtype of the others (every row has one).
        dtype = np.result_type(*(view.dtype for view in views if view is not None))
        shape = (X.shape[0], self.n_components)
        return [
            np.full(shape, np.nan, dtype) if view is None else view for view in views
        ]

    def _present(self, X, *, allow_missing=True):
        """Which rows have each view; error on NaN that is not a whole view."""
        if not _has_nan(X):
            return np.ones((X.shape[0], len(self.blocks_)), dtype=bool)
        return check_complete(
            X,
            self.blocks_,
            self.modality_names_,
            type(self).__name__,
            allow_missing=allow_missing,
            columns=getattr(self, "feature_names_in_", None),
        )

    def transform_views(self, X):
        """Canonical variates of each view, kept apart.

        Parameters
        ----------
        X : {array-like, sparse matrix, DataFrame} of shape (n_samples, n_features)
            Multimodal data with the columns seen in ``fit``. A row may lack
            a modality (its block all NaN): that view's variates are NaN in
            that row.

        Returns
        -------
        variates : list of ndarray of shape (n_samples, n_components)
            One array a modality, in the order of ``modality_names_``.
        """
        X = self._validate_for_transform(X)
        return self._views(X, self._present(X))

    def transform(self, X):
        """Project the views onto their canonical variates.

        Parameters
        ----------
        X : {array-like, sparse matrix, DataFrame} of shape (n_samples, n_features)
            Multimodal data with the columns seen in ``fit``. With
            ``output="mean"`` a row may lack modalities (block all NaN): its
            representation is the mean over the modalities it has. With
            ``output="concat"`` every row needs every modality.

        Returns
        -------
        X_new : ndarray of shape (n_samples, n_components * n_modalities) or \
(n_samples, n_components)
            The views' variates side by side (``"concat"``, view by view),
            or their mean (``"mean"``).
        """
        if is_dask_collection(X):
            from mmfuse.cca._dask import transform

            return transform(self, X)
        X = self._validate_for_transform(X)
        if self.output == "concat":
            return np.hstack(self._views(X, self._present(X, allow_missing=False)))
        present = self._present(X)
        check_any_modality(present, self.modality_names_, type(self).__name__)
        views = np.stack(self._views(X, present))
        if present.all():
            return views.mean(axis=0)
        return (
            np.nansum(views, axis=0) / present.sum(axis=1, dtype=views.dtype)[:, None]
        )

    def score(self, X, y=None):
        """Shared structure found on ``X``: penalized sum of canonical correlations.

        The sum over components of each component's canonical correlation
        on ``X`` minus a significance threshold,
        ``Σ_j (ρ_j − 2 / sqrt(P (n − 1)))`` with ``n`` the rows of ``X`` and
        ``P`` the number of pairs of modalities (see
        :func:`mmfuse.metrics.canonical_correlation_score`). On held-out rows
        a component that the modalities really share keeps a correlation
        above the threshold and raises the score; a component fitted to
        noise correlates about 0 there, so it lowers the score by about the
        threshold, twice the standard error of the correlation of
        independent variates. The score therefore peaks at the number of
        shared components, and
        :class:`~sklearn.model_selection.GridSearchCV` can tune
        ``n_components`` as well as the regularization with no ``y``. (The
        mean over components would always favour one component; the plain
        sum would gain from noise components as often as it loses.) It is
        deterministic, and for a fixed ``n_components`` it orders fits as
        the mean correlation does.

        Parameters
        ----------
        X : {array-like, sparse matrix, DataFrame} of shape (n_samples, n_features)
            Multimodal data, every modality in every row, best rows not seen
            in ``fit``.
        y : None
            Ignored.

        Returns
        -------
        score : float
            :func:`mmfuse.metrics.canonical_correlation_score` of the
            variates of ``X``.
        """
        X = self._validate_for_transform(X)
        views = self._views(X, self._present(X, allow_missing=False))
        return canonical_correlation_score(views)

    def get_feature_names_out(self, input_features=None):
        """Names of the output columns.

        Parameters
        ----------
        input_features : array-like of str, default=None
            Only checked against ``feature_names_in_``.

        Returns
        -------
        names : ndarray of str
            ``"<modality>__<class><j>"`` for ``output="concat"`` (so that a
            following estimator with ``blocks="auto"`` finds the views), and
            ``"<class><j>"`` for ``output="mean"``.
        """
        check_is_fitted(self)
        _check_feature_names_in(self, input_features, generate_names=False)
        prefix = type(self).__name__.lower()
        components = [f"{prefix}{j}" for j in range(self.n_components)]
        return shared_space_names(self.modality_names_, components, self.output)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags
