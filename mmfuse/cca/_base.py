"""What every CCA-family transformer shares: variates, transform, score.

A subclass fits per-view projections and implements one method,
``_transform_view(X_view, view)``, that maps the columns of one view (rows
that have it) to ``n_components`` canonical variates. Everything the user
calls after ``fit`` lives here, with the rules every fit applies: sample
weights as repetition counts (:meth:`_BaseCCA._weighted_rows`) and the one
rank rule for ``n_components`` (:meth:`_BaseCCA._check_n_components`).
"""

import numpy as np
import scipy.sparse as sp
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
)
from sklearn.utils.validation import check_is_fitted

from mmfuse._blocks import (
    SEPARATOR,
    check_any_modality,
    check_complete,
    validate_numeric,
)
from mmfuse.metrics import canonical_correlation_score
from mmfuse.utils._compat import _check_feature_names_in, _check_sample_weight

__all__ = ["_BaseCCA"]


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

    def _transform_view(self, X_view, view):
        raise NotImplementedError

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
                continue
            variates = self._transform_view(X[rows][:, block], v)
            full = np.full((X.shape[0], variates.shape[1]), np.nan, variates.dtype)
            full[rows] = variates
            views.append(full)
        return views

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
        X = self._validate_for_transform(X)
        if self.output == "concat":
            return np.hstack(self._views(X, self._present(X, allow_missing=False)))
        present = self._present(X)
        check_any_modality(present, self.modality_names_, type(self).__name__)
        views = np.stack(self._views(X, present))
        if present.all():
            return views.mean(axis=0)
        return np.nansum(views, axis=0) / present.sum(axis=1)[:, None]

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
        if self.output == "mean":
            return np.asarray(components, dtype=object)
        return np.asarray(
            [
                f"{name}{SEPARATOR}{component}"
                for name in self.modality_names_
                for component in components
            ],
            dtype=object,
        )

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags
