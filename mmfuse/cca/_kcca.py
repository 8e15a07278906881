"""Kernel multiset CCA: exact (full spectrum) and Nyström.

KCCA is MCCA in each modality's kernel feature space (DESIGN.md). With
centred kernel matrices ``K_v`` and dual coefficients ``α_v`` it solves the
generalized symmetric eigenproblem ``C α = λ D α`` whose off-diagonal
blocks are ``K_v K_w / (n − 1)`` and whose diagonal blocks (in ``C`` and in
``D``) carry the absolute ridge ``(1 − κ_v) K_v² / (n − 1) + κ_v K_v``
(Bach and Jordan 2002; Hardoon, Szedmak and Shawe-Taylor 2004).

Both paths go through explicit feature maps (:mod:`mmfuse.cca._kernel_features`):
a factor ``G_v = K(·, X_S) L_S⁻ᵀ`` on support rows ``S`` (``G_v G_vᵀ = K_v``
before centring) turns the problem into linear MCCA on the centred columns
of ``G_v``, with the ridge ``κ_v I`` on the covariance, solved and
post-processed by the shared core (:mod:`mmfuse.cca._base`). So every
fitted variate is a kernel expansion on the support rows:
``(k(x, X_S) − k̄_S) β``, where ``k̄_S`` holds the training means of the
kernel columns (the out-of-sample centring) and ``β = L_S⁻ᵀ a`` the dual
coefficients.

Sample weights are repetition counts throughout: weighted feature means,
weighted cross-products divided by the weight sum minus 1, and a pivoted
Cholesky whose stopping trace counts each row as often as its weight.
"""

from numbers import Integral, Real

import numpy as np
import scipy.linalg as sla
from sklearn.utils import check_random_state

from mmfuse._blocks import (
    BLOCKS_CONSTRAINT,
    check_complete,
    fit_blocks,
    per_modality,
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
from mmfuse.cca._kernel_features import (
    KERNELS,
    ViewKernel,
    centred_rank,
    exact_features,
    fits_in_memory,
    landmark_count,
    nystroem_features,
    products_dtype,
    stored_covariance,
    streamed_covariance,
    sumcor_operator,
)
from mmfuse.cca._solvers import sumcor_matrix
from mmfuse.metrics import canonical_correlation_from_covariance
from mmfuse.utils._compat import Interval, StrOptions, _fit_context
from mmfuse.utils._dask import is_dask_collection

__all__ = ["KCCA"]


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
        all modalities or a list with one a modality. scikit-learn's
        cross-validation cannot split precomputed kernels side by side (it
        splits one square kernel: "X should be a square kernel matrix"); to
        cross-validate or grid-search, give the kernel by name or as a
        callable, so that each fold computes its own. Nyström fits compute
        the features of chunks of rows in as many threads as BLAS may use
        (``threadpoolctl.threadpool_limits`` bounds them; BLAS runs on one
        thread meanwhile), so a callable may run in several threads at once.
        Kernel values that are NaN or infinite, on training or new rows, are
        an error naming the modality.
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
        Nyström map; a fit on fewer rows takes them all (the exact fit, with
        a warning).
    cholesky_tol : float, default=1e-12
        Relative trace of the residual at which the pivoted Cholesky stops
        (of the whole kernel when exact, of the landmark kernel for
        Nyström).
    output : {"concat", "mean"}, default="concat"
        What ``transform`` returns: the modalities' variates side by side,
        or their mean (over the modalities a row has).
    solver : {"auto", "dense", "iterative"}, default="auto"
        Eigensolver. ``"dense"`` forms the cross-covariance of the features
        (streamed by rows) and calls a subset :func:`scipy.linalg.eigh`;
        ``"iterative"`` runs Lanczos (:func:`scipy.sparse.linalg.eigsh`) on
        the operator built from the stored features. ``"auto"`` takes the
        one that costs fewer operations by a rough count (Lanczos products
        are bound by memory traffic): the iterative solver for exact fits on
        more than a few hundred rows, the dense one for Nyström maps on many
        rows.
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
    The exact fit stores, per modality, an ``n × rank`` factor and the
    packed Cholesky factor of its ``rank × rank`` whitening block while it
    solves (``rank`` is typically ``n`` for an rbf kernel at the default
    tolerance): at full rank ``1.5 V n²`` float64 values, plus one
    ``n × n`` block while it is factored (three modalities at
    ``n = 10⁴``: a peak of 4.1 GiB of arrays), time ``O(V n³)``. The Nyström fit
    needs ``O(n m² V²)`` time and ``O(n m V)`` memory for ``m`` landmarks;
    when ``n · m V >= 2**24`` and every ridge is at least ``1e-3``, its
    features are stored and multiplied in float32 (sums in float64), which
    moves the canonical correlations by about ``1e-7``, far less than the
    Nyström approximation itself.

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
            StrOptions(KERNELS),
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

    _regularization_range = Interval(Real, 0, 1, closed="right")
    _regularization_why = (
        "without a ridge, a kernel feature space as wide as the number of rows "
        "fits any variate exactly, so every canonical correlation would be 1"
    )

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
            per_modality("kernel", self.kernel, names, StrOptions(KERNELS), callable),
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
            kernels.append(ViewKernel(kernel, kernel_params, name))
        return kernels

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
        if is_dask_collection(X):
            from mmfuse.cca._dask import fit_kcca

            return fit_kcca(self, X, sample_weight)
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
        check_complete(
            X,
            self.blocks_,
            self.modality_names_,
            type(self).__name__,
            columns=getattr(self, "feature_names_in_", None),
        )
        n = X.shape[0]
        if weights is not None:
            self._check_weight_sum(weights.sum())
        n_landmarks = (
            landmark_count(self.n_landmarks, n) if self.approximation else None
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
            self._factor(view, kernel, weights, rng, n_landmarks)
            for view, kernel in zip(views, kernels, strict=True)
        ]
        self._check_n_components(n, self._ranks(factors), kernel=True)
        self._kernels = kernels
        self._set_n_features_out()
        self._solve(views, factors, regularization, rng)
        if kept is not None:
            self.support_ = [kept[support] for support in self.support_]
        return self

    def _factor(self, X_view, kernel, weights, rng, n_landmarks):
        """Factor one modality's kernel: exact, or Nyström on ``n_landmarks``."""
        if self.approximation is None:
            return exact_features(X_view, kernel, weights, tol=self.cholesky_tol)
        n = X_view.shape[0]
        landmarks = np.sort(rng.choice(n, size=n_landmarks, replace=False))
        return nystroem_features(
            X_view, kernel, weights, landmarks, tol=self.cholesky_tol
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
            ranks.append(centred_rank(f.gram() / f.total, f.mean, f.n))
        return ranks

    def _solve(self, views, factors, regularization, rng):
        n, row_weights, total = factors[0].n, factors[0].weights, factors[0].total
        slices = stacked_slices(len(f.support) for f in factors)
        width = slices[-1].stop
        stored = self.approximation is None or fits_in_memory(n, width)
        solver = choose_solver(self.solver, self.n_components, width, n_rows=n)
        if self.solver == "auto" and not stored:
            # Lanczos would recompute the features at every product.
            solver = "dense"
        if solver == "iterative":
            for features in factors:
                features.store()
            A, D = sumcor_operator(factors, slices, regularization)
        else:
            if self.approximation is None:
                C = streamed_covariance(factors, slices)
            else:
                dtype = products_dtype(n, width, regularization)
                C = (stored_covariance if stored else streamed_covariance)(
                    factors, slices, dtype=dtype
                )
            D = [
                regularized_block(C[s, s], r, relative=False)
                for s, r in zip(slices, regularization, strict=True)
            ]
            A = sumcor_matrix(C, D)
        eigenvalues, weights = solve_top(
            A,
            D,
            self.n_components,
            slices,
            solver=solver,
            random_state=rng,
            tol=self.tol,
        )
        variates = np.stack(
            [f.variates(W) for f, W in zip(factors, weights, strict=True)]
        )
        # (Co)variances over the rows (axis n), weighted by repetition counts.
        counts = np.ones(n) if row_weights is None else row_weights
        variances = np.einsum("vnk,n,vnk->vk", variates, counts, variates)
        variances /= total - 1
        # The sign rule reads the training variates: unlike dual
        # coefficients, they do not depend on the support rows, so the sign
        # is the same for any row order, exact or Nyström.
        scale = unit_variance_signs(variances, variates)
        variates *= scale[:, None, :]
        cross = np.einsum("vnk,n,wnk->vwk", variates, counts, variates)
        self.dual_coef_ = [
            sla.solve_triangular(
                f.lower, W * s, lower=True, trans="T", check_finite=False
            )
            for f, W, s in zip(factors, weights, scale, strict=True)
        ]
        self.kernel_means_ = [f.lower @ f.mean for f in factors]
        self.support_ = [f.support for f in factors]
        self.X_fit_ = [
            None if kernel.kernel == "precomputed" else view[f.support]
            for view, kernel, f in zip(views, self._kernels, factors, strict=True)
        ]
        self.eigenvalues_ = eigenvalues
        self.canonical_correlations_ = canonical_correlation_from_covariance(cross)

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
