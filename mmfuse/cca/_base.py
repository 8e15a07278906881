"""What every CCA-family transformer shares: variates, transform, score.

A subclass fits per-view projections and implements one method,
``_transform_view(X_view, view)``, that maps the columns of one view (rows
that have it) to ``n_components`` canonical variates. Everything the user
calls after ``fit`` lives here.
"""

import numpy as np
import scipy.sparse as sp
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
)
from sklearn.utils.validation import check_is_fitted, validate_data

from mmfuse._blocks import SEPARATOR, check_any_modality, check_complete
from mmfuse.metrics import canonical_correlation
from mmfuse.utils._compat import _check_feature_names_in

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

    def _set_n_features_out(self):
        """Set ``_n_features_out`` from ``n_components`` and ``output``."""
        width = len(self.blocks_) if self.output == "concat" else 1
        self._n_features_out = self.n_components * width

    def _validate_for_transform(self, X):
        check_is_fitted(self)
        return validate_data(
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
        """Mean canonical correlation of the fitted components on ``X``.

        Held-out data gives an honest measure of the shared structure found,
        so that :class:`~sklearn.model_selection.GridSearchCV` can tune the
        estimator with no ``y``.

        Parameters
        ----------
        X : {array-like, sparse matrix, DataFrame} of shape (n_samples, n_features)
            Multimodal data, every modality in every row.
        y : None
            Ignored.

        Returns
        -------
        score : float
            Mean over components of :func:`mmfuse.metrics.canonical_correlation`.
        """
        X = self._validate_for_transform(X)
        return float(
            canonical_correlation(
                self._views(X, self._present(X, allow_missing=False))
            ).mean()
        )

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
