"""Late fusion: one estimator a modality (or group), combined by vote or stack.

Each member is a ``(name, estimator, modalities)`` triple. The member is fitted
on the columns of its modalities (a list of modalities is early fusion of that
group inside the member, so members nest into hierarchical fusion) and on the
rows that have them. The members' outputs are combined by a weighted vote or
by a final estimator fitted on their out-of-fold predictions (stacking).
"""

from numbers import Integral

import numpy as np
from sklearn.base import (
    ClassifierMixin,
    RegressorMixin,
    TransformerMixin,
    clone,
    is_classifier,
)
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.model_selection import check_cv, cross_val_predict
from sklearn.preprocessing import LabelEncoder
from sklearn.utils import Bunch, get_tags
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.parallel import Parallel, delayed
from sklearn.utils.validation import check_is_fitted, validate_data

from mmfuse._blocks import (
    BLOCKS_CONSTRAINT,
    fit_blocks,
    modality_mask,
    modality_position,
)
from mmfuse.utils._compat import (
    HasMethods,
    StrOptions,
    _BaseComposition,
    _check_feature_names_in,
    _fit_context,
    _safe_indexing,
)

__all__ = ["LateFusionClassifier", "LateFusionRegressor"]


def _fit_member(estimator, X, y):
    return estimator.fit(X, y)


def _select(data, columns, rows):
    """Columns ``columns`` of the rows where ``rows`` is True."""
    part = _safe_indexing(data, columns, axis=1)
    if rows.all():
        return part
    return _safe_indexing(part, np.flatnonzero(rows), axis=0)


class _BaseLateFusion(TransformerMixin, _BaseComposition):
    """Members, their modalities, fitting, and the combination of outputs."""

    _parameter_constraints: dict = {
        "estimators": [list],
        "blocks": BLOCKS_CONSTRAINT,
        "weights": ["array-like", None],
        "final_estimator": [None, HasMethods("fit")],
        "cv": ["cv_object"],
        "n_jobs": [None, Integral],
    }

    # get_params / set_params see the members as (name, estimator) pairs, so
    # that ``<member>__<param>`` reaches a member's parameters.
    @property
    def _estimators(self):
        try:
            return [(name, estimator) for name, estimator, _ in self.estimators]
        except (TypeError, ValueError):
            return self.estimators

    @_estimators.setter
    def _estimators(self, value):
        try:
            self.estimators = [
                (name, estimator, modalities)
                for (name, estimator), (_, _, modalities) in zip(
                    value, self.estimators, strict=True
                )
            ]
        except (TypeError, ValueError):
            self.estimators = value

    def get_params(self, deep=True):
        """Get the parameters, the members' ones as ``<member>__<param>``.

        Parameters
        ----------
        deep : bool, default=True
            Also return the members and their parameters.

        Returns
        -------
        params : dict
            Parameter names mapped to their values.
        """
        return self._get_params("_estimators", deep=deep)

    def set_params(self, **params):
        """Set parameters, a member's ones as ``<member>__<param>``.

        Parameters
        ----------
        **params : dict
            Parameters of this estimator, or of a member (``<member>__C``), or
            a whole member replaced by its name.

        Returns
        -------
        self : estimator
            This estimator.
        """
        self._set_params("_estimators", **params)
        return self

    def _validate_members(self):
        """Check ``estimators`` and resolve each member's modality positions."""
        if not self.estimators:
            raise ValueError(
                "estimators is empty; give a list of (name, estimator, "
                "modalities) members, e.g. [('img', SVC(), 'image')]."
            )
        for member in self.estimators:
            if not isinstance(member, tuple | list) or len(member) != 3:
                raise ValueError(
                    f"each member must be a (name, estimator, modalities) "
                    f"tuple; got {member!r}."
                )
        names = [name for name, _, _ in self.estimators]
        self._validate_names(names)
        positions = []
        for name, estimator, modalities in self.estimators:
            if not hasattr(estimator, "fit"):
                raise TypeError(
                    f"member {name!r} is {estimator!r}, which has no fit method;"
                    f" give an estimator instance."
                )
            if self.voting == "soft" and not hasattr(estimator, "predict_proba"):
                raise ValueError(
                    f"voting='soft' needs members with predict_proba, but "
                    f"member {name!r} ({type(estimator).__name__}) has none; "
                    f"use voting='hard' or 'stack', or a probabilistic "
                    f"classifier (e.g. wrap it in CalibratedClassifierCV)."
                )
            positions.append(self._modality_positions(name, modalities))
        return names, positions

    def _modality_positions(self, name, modalities):
        wanted = modalities if isinstance(modalities, list | tuple) else [modalities]
        if not wanted:
            raise ValueError(f"member {name!r} lists no modality; give at least one.")
        what = f"member {name!r} asks for modality"
        positions = [modality_position(m, self.modality_names_, what) for m in wanted]
        if len(set(positions)) != len(positions):
            raise ValueError(f"member {name!r} lists a modality twice: {modalities!r}.")
        return positions

    def _validate_weights(self, n_members):
        if self.weights is None:
            return np.ones(n_members)
        weights = np.asarray(self.weights, dtype=float)
        if weights.shape != (n_members,):
            raise ValueError(
                f"weights has {weights.size} value(s) but there are {n_members} "
                f"members; give one weight a member."
            )
        if (weights < 0).any() or not weights.sum() > 0:
            raise ValueError(
                f"weights={self.weights!r} must be non-negative with a positive sum."
            )
        return weights

    def _fit(self, X, y_fit):
        """Fit the members and, for stacking, the final estimator.

        ``X`` is the caller's data, ``self._X_checked`` its validated array.
        """
        names, positions = self._validate_members()
        self._weights = self._validate_weights(len(names))
        present = modality_mask(self._X_checked, self.blocks_)
        data = X if hasattr(X, "iloc") else self._X_checked
        self._member_positions = positions
        self._member_columns = [
            np.concatenate([self.blocks_[p] for p in pos]) for pos in positions
        ]
        self.member_modalities_ = {
            name: [self.modality_names_[p] for p in pos]
            for name, pos in zip(names, positions, strict=True)
        }
        rows = [present[:, pos].all(axis=1) for pos in positions]
        for name, has in zip(names, rows, strict=True):
            if not has.any():
                raise ValueError(
                    f"member {name!r} has no training row: every row lacks one "
                    f"of its modalities {self.member_modalities_[name]}."
                )
        members = [estimator for _, estimator, _ in self.estimators]
        self.estimators_ = Parallel(n_jobs=self.n_jobs)(
            delayed(_fit_member)(clone(estimator), _select(data, cols, has), y_fit[has])
            for estimator, cols, has in zip(
                members, self._member_columns, rows, strict=True
            )
        )
        self.named_estimators_ = Bunch(
            **dict(zip(names, self.estimators_, strict=True))
        )
        self.stack_method_ = [self._output_method(e) for e in self.estimators_]
        self._output_widths = [self._output_width(m) for m in self.stack_method_]
        if self.voting == "stack":
            self._fit_final(data, y_fit, members, rows)
        del self._X_checked
        return self

    def _fit_final(self, data, y_fit, members, rows):
        """Fit the final estimator on out-of-fold member outputs.

        The out-of-fold outputs are kept, so that a stacker over a subset of
        the members can be fitted for rows that lack the others.
        """
        self._oof_outputs = []
        for i, (estimator, fitted, cols, has, method) in enumerate(
            zip(
                members,
                self.estimators_,
                self._member_columns,
                rows,
                self.stack_method_,
                strict=True,
            )
        ):
            cv = check_cv(self.cv, y_fit[has], classifier=is_classifier(self))
            oof = cross_val_predict(
                clone(estimator),
                _select(data, cols, has),
                y_fit[has],
                cv=cv,
                method=method,
                n_jobs=self.n_jobs,
            )
            oof = self._expand(fitted, oof, method)
            self._output_widths[i] = oof.shape[1]
            output = np.full((len(has), oof.shape[1]), np.nan)
            output[has] = oof
            self._oof_outputs.append(output)
        self._oof_rows = rows
        self._oof_target = y_fit
        self.final_estimator_ = self._fit_stacker(np.arange(len(members)))

    def _fit_stacker(self, members):
        """Fit a clone of the final estimator on the members ``members``.

        It is fitted on the out-of-fold outputs of those members, on the
        training rows that have all their modalities.
        """
        rows = np.logical_and.reduce([self._oof_rows[i] for i in members])
        if not rows.any():
            names = [self.estimators[i][0] for i in members]
            raise ValueError(
                f"voting='stack' fits final_estimator on the training rows that "
                f"have the modalities of the members {names}, but no training "
                f"row has them all; use voting='soft' (or 'mean'), or fewer "
                f"members."
            )
        final = self.final_estimator
        if final is None:
            final = self._default_final_estimator()
        features = np.hstack([self._oof_outputs[i][rows] for i in members])
        return clone(final).fit(features, self._oof_target[rows])

    def _member_outputs(self, X):
        """Each member's output on ``X`` (NaN where it lacks its modalities).

        Returns the list of row masks (rows a member can predict) and the list
        of outputs (of ``stack_method_``), one ``(n_samples, width)`` array a
        member.
        """
        check_is_fitted(self)
        X_checked = validate_data(
            self,
            X,
            accept_sparse=["csr", "csc"],
            ensure_all_finite="allow-nan",
            reset=False,
        )
        present = modality_mask(X_checked, self.blocks_)
        data = X if hasattr(X, "iloc") else X_checked
        masks, outputs = [], []
        for estimator, pos, cols, method, width in zip(
            self.estimators_,
            self._member_positions,
            self._member_columns,
            self.stack_method_,
            self._output_widths,
            strict=True,
        ):
            has = present[:, pos].all(axis=1)
            output = np.full((len(has), width), np.nan)
            if has.any():
                raw = getattr(estimator, method)(_select(data, cols, has))
                output[has] = self._expand(estimator, raw, method)
            masks.append(has)
            outputs.append(output)
        return masks, outputs

    def _vote(self, masks, outputs):
        """Weighted mean of the outputs over the members a row has."""
        total = np.zeros_like(outputs[0])
        weight = np.zeros(len(masks[0]))
        for w, has, output in zip(self._weights, masks, outputs, strict=True):
            total[has] += w * output[has]
            weight[has] += w
        self._check_covered(weight > 0)
        return total / weight[:, None]

    def _stack(self, masks, outputs, combine):
        """Stack the member outputs, each row over the members it has.

        Rows with every member go to ``final_estimator_``; rows with a subset
        of the members go to a stacker fitted on that subset's out-of-fold
        outputs. ``combine(stacker, features)`` returns the rows' result.
        """
        present = np.column_stack(masks)
        self._check_covered(present.any(axis=1))
        patterns, inverse = np.unique(present, axis=0, return_inverse=True)
        inverse = inverse.reshape(-1)
        result = None
        for k, pattern in enumerate(patterns):
            rows = inverse == k
            members = np.flatnonzero(pattern)
            if pattern.all():
                stacker = self.final_estimator_
            else:
                stacker = self._fit_stacker(members)
            part = combine(stacker, np.hstack([outputs[i][rows] for i in members]))
            if result is None:
                result = np.empty((len(rows), *part.shape[1:]))
            result[rows] = part
        return result

    def _check_covered(self, covered):
        uncovered = np.flatnonzero(~covered)
        if uncovered.size:
            needs = "; ".join(
                f"member {name!r} needs {modalities}"
                for name, modalities in self.member_modalities_.items()
            )
            raise ValueError(
                f"{uncovered.size} row(s) (first: {uncovered[:5].tolist()}) "
                f"lack the modalities of every member with a positive weight, "
                f"so no member can predict them ({needs}). Give each row all "
                f"modalities of at least one member."
            )

    def transform(self, X):
        """Return the members' outputs side by side.

        Parameters
        ----------
        X : {array-like, sparse matrix, DataFrame} of shape (n_samples, n_features)
            Multimodal data; a modality's block all NaN where a row lacks it.

        Returns
        -------
        outputs : ndarray of shape (n_samples, n_outputs)
            Each member's output (see ``get_feature_names_out``), NaN in the
            rows that lack one of its modalities.
        """
        return np.hstack(self._member_outputs(X)[1])

    def get_feature_names_out(self, input_features=None):
        """Names of the columns of ``transform``: ``<member>__<output>``.

        Parameters
        ----------
        input_features : array-like of str, default=None
            Checked against the names seen in ``fit``; not used otherwise.

        Returns
        -------
        names : ndarray of str
            One name a column of ``transform``.
        """
        check_is_fitted(self)
        _check_feature_names_in(self, input_features)
        names = []
        for name, method, width in zip(
            self.named_estimators_,
            self.stack_method_,
            self._output_widths,
            strict=True,
        ):
            if width == 1:
                names.append(f"{name}__{method}")
            elif width == len(self.classes_):
                names.extend(f"{name}__{method}_{c}" for c in self.classes_)
            else:
                names.extend(f"{name}__{method}{j}" for j in range(width))
        return np.asarray(names, dtype=object)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        try:
            tags.input_tags.sparse = all(
                get_tags(estimator).input_tags.sparse
                for _, estimator, _ in self.estimators
            )
        except (TypeError, ValueError):
            tags.input_tags.sparse = False
        return tags


class LateFusionClassifier(ClassifierMixin, _BaseLateFusion):
    """Classify each modality (or group) apart, then vote or stack.

    Each member is fitted on its modalities' columns, on the rows that have
    them, and with the labels encoded as ``0 … n_classes - 1``. The members are
    combined by a weighted soft vote (mean of ``predict_proba``), a weighted
    hard vote (majority of ``predict``), or stacking: ``final_estimator`` is
    fitted on the members' out-of-fold outputs (``predict_proba``, else
    ``decision_function``, of any width: one-vs-one scores work), so it learns
    how far to trust each member.

    **Missing modalities.** A row lacks a modality when its block is all NaN.
    At fit, a member is trained on the rows that have all its modalities. At
    predict time, a vote is taken over the members whose modalities the row
    has, with their weights renormalised. With ``voting="stack"``,
    ``final_estimator_`` is fitted on the rows that have every member's
    modalities and predicts those rows; a row that lacks some members'
    modalities is predicted by a clone of ``final_estimator`` fitted, at
    predict time, on the kept out-of-fold outputs of the members it has (on
    the training rows that have them): the stacker one would have fitted
    without the other members. A row with none of any member's modalities
    raises an error.

    Parameters
    ----------
    estimators : list of (str, estimator, str, int or list) tuples
        The members: a name (no ``"__"``), a classifier, and the modality (a
        name or position among the blocks) or list of modalities it sees. A
        member given several modalities gets their columns side by side, in
        the order listed (for instance a :func:`make_early_fusion` pipeline or
        a nested ``LateFusionClassifier`` over that group). A member's
        parameters are ``<name>__<param>`` for ``set_params`` and grid search.
    blocks : "auto", int, list, tuple or dict, default="auto"
        The modality blocks, in any form :func:`mmfuse.resolve_blocks` accepts.
    voting : {"soft", "hard", "stack"}, default="soft"
        How the members are combined.
    weights : array-like of shape (n_members,), default=None
        Each member's weight in the votes (not used by ``voting="stack"``);
        equal when None.
    final_estimator : estimator, default=None
        The stacker for ``voting="stack"``; a
        :class:`~sklearn.linear_model.LogisticRegression` when None.
    cv : int, cross-validation generator or iterable, default=None
        The folds of the out-of-fold predictions for ``voting="stack"``, as
        :func:`~sklearn.model_selection.cross_val_predict` takes them;
        stratified 5-fold when None.
    n_jobs : int, default=None
        Parallel jobs to fit the members and their out-of-fold predictions.

    Attributes
    ----------
    estimators_ : list of estimators
        The fitted members.
    named_estimators_ : Bunch
        The fitted members by name.
    member_modalities_ : dict of {str: list of str}
        The modalities each member sees.
    final_estimator_ : estimator
        The fitted stacker (``voting="stack"`` only).
    stack_method_ : list of str
        The method whose output each member gives the stacker.
    classes_ : ndarray of shape (n_classes,)
        The class labels.
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
    LateFusionRegressor : The same for regression.
    make_early_fusion : Concatenate preprocessed modalities for one estimator.
    sklearn.ensemble.VotingClassifier : Votes of classifiers on the same columns.
    sklearn.ensemble.StackingClassifier : Stacking on the same columns.

    References
    ----------
    .. [1] J. Kittler, M. Hatef, R. P. W. Duin, J. Matas, "On combining
       classifiers", IEEE TPAMI 20(3):226-239, 1998.
    .. [2] D. H. Wolpert, "Stacked generalization", Neural Networks
       5(2):241-259, 1992.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from mmfuse.datasets import load_mfeat
    >>> from mmfuse.fusion import LateFusionClassifier
    >>> X, y = load_mfeat(views=["kar", "zer"], return_X_y=True)
    >>> def member():
    ...     return make_pipeline(StandardScaler(), LogisticRegression())
    >>> clf = LateFusionClassifier(
    ...     [("kar", member(), "kar"), ("zer", member(), "zer")],
    ...     blocks={"kar": 64, "zer": 47},
    ... ).fit(X[::2], y[::2])
    >>> print(f"{clf.score(X[1::2], y[1::2]):.3f}")
    0.963
    >>> X_test = X[1::2].copy()
    >>> X_test[:100, :64] = np.nan  # 100 rows lack the kar modality
    >>> print(f"{clf.score(X_test, y[1::2]):.3f}")
    0.962
    """

    _parameter_constraints: dict = {
        **_BaseLateFusion._parameter_constraints,
        "voting": [StrOptions({"soft", "hard", "stack"})],
    }

    def __init__(
        self,
        estimators,
        *,
        blocks="auto",
        voting="soft",
        weights=None,
        final_estimator=None,
        cv=None,
        n_jobs=None,
    ):
        self.estimators = estimators
        self.blocks = blocks
        self.voting = voting
        self.weights = weights
        self.final_estimator = final_estimator
        self.cv = cv
        self.n_jobs = n_jobs

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y):
        """Fit the members and, for stacking, the final estimator.

        Parameters
        ----------
        X : {array-like, sparse matrix, DataFrame} of shape (n_samples, n_features)
            Multimodal data; a modality's block all NaN where a row lacks it.
        y : array-like of shape (n_samples,)
            Class labels.

        Returns
        -------
        self : LateFusionClassifier
            The fitted estimator.
        """
        self._X_checked, y = validate_data(
            self,
            X,
            y,
            accept_sparse=["csr", "csc"],
            ensure_all_finite="allow-nan",
        )
        check_classification_targets(y)
        fit_blocks(self)
        self._encoder = LabelEncoder().fit(y)
        self.classes_ = self._encoder.classes_
        return self._fit(X, self._encoder.transform(y))

    def _default_final_estimator(self):
        return LogisticRegression(max_iter=1000)

    def _output_method(self, estimator):
        if self.voting == "hard":
            return "predict"
        for method in ("predict_proba", "decision_function"):
            if hasattr(estimator, method):
                return method
        return "predict"

    def _output_width(self, method):
        n_classes = len(self.classes_)
        if method == "predict" or (method == "decision_function" and n_classes == 2):
            return 1
        return n_classes

    def _expand(self, estimator, raw, method):
        """Map a member's output onto all the classes (it may see fewer)."""
        raw = np.asarray(raw, dtype=float)
        if method == "predict":
            return raw.reshape(-1, 1)
        seen = estimator.classes_
        if len(seen) == len(self.classes_):
            return raw.reshape(len(raw), -1)
        if method == "decision_function":
            raise ValueError(
                f"a member saw only the classes {self.classes_[seen].tolist()} "
                f"of {self.classes_.tolist()} (the rows with its modalities "
                f"hold no other class), so its decision_function cannot be "
                f"aligned with the others; give it predict_proba or rows of "
                f"every class."
            )
        full = np.zeros((len(raw), len(self.classes_)))
        full[:, seen] = raw
        return full

    def _hard_vote(self, masks, labels):
        """Weighted majority vote: a one-hot mean over the present members."""
        one_hot = []
        for has, label in zip(masks, labels, strict=True):
            votes = np.zeros((len(has), len(self.classes_)))
            votes[has, label[has, 0].astype(np.intp)] = 1.0
            one_hot.append(votes)
        return self._vote(masks, one_hot)

    def _scores(self, X, proba):
        """Per-class scores whose argmax is the prediction."""
        if self.voting == "soft":
            return self._vote(*self._member_outputs(X))
        if self.voting == "hard":
            return self._hard_vote(*self._member_outputs(X))
        masks, outputs = self._member_outputs(X)
        return self._stack(masks, outputs, self._stacker_scores(proba))

    def _stacker_scores(self, proba):
        """Per-class scores of a stacker: probabilities, or a one-hot label."""
        n_classes = len(self.classes_)

        def scores(stacker, features):
            out = np.zeros((len(features), n_classes))
            if proba:
                out[:, stacker.classes_] = stacker.predict_proba(features)
            else:
                labels = np.asarray(stacker.predict(features), dtype=np.intp)
                out[np.arange(len(out)), labels] = 1.0
            return out

        return scores

    def predict(self, X):
        """Predict class labels.

        Parameters
        ----------
        X : {array-like, sparse matrix, DataFrame} of shape (n_samples, n_features)
            Multimodal data; a modality's block all NaN where a row lacks it.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
            Predicted class labels.
        """
        scores = self._scores(X, proba=False)
        return self.classes_[scores.argmax(axis=1)]

    def _proba_available(self):
        if self.voting == "stack":
            final = self.final_estimator or self._default_final_estimator()
            return hasattr(final, "predict_proba")
        return self.voting == "soft"

    @available_if(_proba_available)
    def predict_proba(self, X):
        """Predict class probabilities (``voting="soft"`` or ``"stack"``).

        Parameters
        ----------
        X : {array-like, sparse matrix, DataFrame} of shape (n_samples, n_features)
            Multimodal data; a modality's block all NaN where a row lacks it.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Class probabilities, columns in the order of ``classes_``.
        """
        return self._scores(X, proba=True)


class LateFusionRegressor(RegressorMixin, _BaseLateFusion):
    """Regress on each modality (or group) apart, then average or stack.

    Each member is fitted on its modalities' columns, on the rows that have
    them. The members are combined by a weighted mean of their predictions,
    or stacked: ``final_estimator`` is fitted on the members' out-of-fold
    predictions.

    **Missing modalities.** A row lacks a modality when its block is all NaN.
    At fit, a member is trained on the rows that have all its modalities; at
    predict time, the mean is taken over the members whose modalities the row
    has, with their weights renormalised. With ``voting="stack"``,
    ``final_estimator_`` is fitted on, and predicts, the rows that have every
    member's modalities; a row that lacks some members' modalities is
    predicted by a clone of ``final_estimator`` fitted, at predict time, on
    the kept out-of-fold predictions of the members it has. A row with none
    of any member's modalities raises an error.

    Parameters
    ----------
    estimators : list of (str, estimator, str, int or list) tuples
        The members: a name (no ``"__"``), a regressor, and the modality (a
        name or position among the blocks) or list of modalities it sees,
        given side by side in the order listed.
    blocks : "auto", int, list, tuple or dict, default="auto"
        The modality blocks, in any form :func:`mmfuse.resolve_blocks` accepts.
    voting : {"mean", "stack"}, default="mean"
        How the members are combined.
    weights : array-like of shape (n_members,), default=None
        Each member's weight in the mean (not used by ``voting="stack"``);
        equal when None.
    final_estimator : estimator, default=None
        The stacker for ``voting="stack"``; a
        :class:`~sklearn.linear_model.RidgeCV` when None.
    cv : int, cross-validation generator or iterable, default=None
        The folds of the out-of-fold predictions for ``voting="stack"``;
        5-fold when None.
    n_jobs : int, default=None
        Parallel jobs to fit the members and their out-of-fold predictions.

    Attributes
    ----------
    estimators_ : list of estimators
        The fitted members.
    named_estimators_ : Bunch
        The fitted members by name.
    member_modalities_ : dict of {str: list of str}
        The modalities each member sees.
    final_estimator_ : estimator
        The fitted stacker (``voting="stack"`` only).
    stack_method_ : list of str
        The method whose output each member gives the stacker (``predict``).
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
    LateFusionClassifier : The same for classification.
    sklearn.ensemble.StackingRegressor : Stacking on the same columns.

    Examples
    --------
    >>> from sklearn.linear_model import Ridge
    >>> from mmfuse.datasets import make_multiview
    >>> from mmfuse.fusion import LateFusionRegressor
    >>> X, latent = make_multiview(200, [5, 8], n_latent=2, random_state=0)
    >>> y = latent[:, 0]
    >>> reg = LateFusionRegressor(
    ...     [("a", Ridge(), "block0"), ("b", Ridge(), "block1")],
    ...     blocks=[5, 8], voting="stack",
    ... ).fit(X[:150], y[:150])
    >>> reg.predict(X[150:]).shape
    (50,)
    """

    _parameter_constraints: dict = {
        **_BaseLateFusion._parameter_constraints,
        "voting": [StrOptions({"mean", "stack"})],
    }

    def __init__(
        self,
        estimators,
        *,
        blocks="auto",
        voting="mean",
        weights=None,
        final_estimator=None,
        cv=None,
        n_jobs=None,
    ):
        self.estimators = estimators
        self.blocks = blocks
        self.voting = voting
        self.weights = weights
        self.final_estimator = final_estimator
        self.cv = cv
        self.n_jobs = n_jobs

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y):
        """Fit the members and, for stacking, the final estimator.

        Parameters
        ----------
        X : {array-like, sparse matrix, DataFrame} of shape (n_samples, n_features)
            Multimodal data; a modality's block all NaN where a row lacks it.
        y : array-like of shape (n_samples,)
            Targets.

        Returns
        -------
        self : LateFusionRegressor
            The fitted estimator.
        """
        self._X_checked, y = validate_data(
            self,
            X,
            y,
            accept_sparse=["csr", "csc"],
            ensure_all_finite="allow-nan",
            y_numeric=True,
        )
        fit_blocks(self)
        return self._fit(X, y)

    def _default_final_estimator(self):
        return RidgeCV()

    def _output_method(self, estimator):
        return "predict"

    def _output_width(self, method):
        return 1

    def _expand(self, estimator, raw, method):
        return np.asarray(raw, dtype=float).reshape(-1, 1)

    def predict(self, X):
        """Predict targets.

        Parameters
        ----------
        X : {array-like, sparse matrix, DataFrame} of shape (n_samples, n_features)
            Multimodal data; a modality's block all NaN where a row lacks it.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
            Predicted targets.
        """
        masks, outputs = self._member_outputs(X)
        if self.voting == "mean":
            return self._vote(masks, outputs)[:, 0]
        return self._stack(
            masks, outputs, lambda stacker, features: stacker.predict(features)
        )
