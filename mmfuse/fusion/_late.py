"""Late fusion: one estimator a modality (or group), combined by vote or stack.

Each member is a ``(name, estimator, modalities)`` triple. The member is fitted
on the columns of its modalities (a list of modalities is early fusion of that
group inside the member, so members nest into hierarchical fusion) and on the
rows that have them. The members' outputs are combined by a weighted vote or
by a final estimator fitted on their out-of-fold predictions (stacking).
"""

from numbers import Integral

import numpy as np
import scipy.sparse as sp
from sklearn import get_config
from sklearn.base import (
    ClassifierMixin,
    RegressorMixin,
    TransformerMixin,
    clone,
    is_classifier,
)
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.model_selection import check_cv, cross_val_predict
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import LabelEncoder
from sklearn.utils import Bunch, get_tags
from sklearn.utils.metadata_routing import (
    MetadataRouter,
    MethodMapping,
    process_routing,
)
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.parallel import Parallel, delayed
from sklearn.utils.validation import check_is_fitted

from mmfuse._blocks import (
    BLOCKS_CONSTRAINT,
    fit_blocks,
    modality_mask,
    modality_position,
    numeric_target,
    validate_numeric,
)
from mmfuse.fusion._early import check_estimator
from mmfuse.utils._compat import (
    HasMethods,
    StrOptions,
    _BaseComposition,
    _check_feature_names_in,
    _check_sample_weight,
    _fit_context,
    _safe_indexing,
)

__all__ = ["LateFusionClassifier", "LateFusionRegressor"]


def _fit_params(estimator, sample_weight):
    """Fit parameters that give ``estimator`` the weights ``sample_weight``.

    A Pipeline takes them as ``<last step>__sample_weight`` unless metadata
    routing is enabled, in which case it routes ``sample_weight`` to the steps
    that request it.
    """
    if sample_weight is None:
        return {}
    if isinstance(estimator, Pipeline) and not get_config()["enable_metadata_routing"]:
        return {f"{estimator.steps[-1][0]}__sample_weight": sample_weight}
    return {"sample_weight": sample_weight}


def _fit_or_error(estimator, X, y, params):
    """Fit ``estimator``, or return the error it raised for the caller to explain.

    Member fits run in joblib workers; the caller, which knows the member's
    name, modalities and rows, turns a returned error into a message.
    """
    try:
        return estimator.fit(X, y, **params)
    except (ValueError, TypeError) as exc:
        return exc


def _estimator_type(estimator):
    """Return the ``estimator_type`` tag; None when the estimator has no tags."""
    try:
        return get_tags(estimator).estimator_type
    except AttributeError:
        return None


def _select(data, columns, rows):
    """Columns ``columns`` of the rows where ``rows`` is True."""
    part = _safe_indexing(data, columns, axis=1)
    if rows.all():
        return part
    return _safe_indexing(part, np.flatnonzero(rows), axis=0)


def _take(sample_weight, rows):
    """Return the weights of the rows where ``rows`` is True (None stays None)."""
    return None if sample_weight is None else sample_weight[rows]


def _restrict(splits, rows):
    """Restrict ``(train, test)`` splits to the rows where ``rows`` is True.

    The positions are renumbered among those rows; splits whose test part
    holds none of them are left out.
    """
    position = np.cumsum(rows) - 1
    return [
        (position[train[rows[train]]], position[test[rows[test]]])
        for train, test in splits
        if rows[test].any()
    ]


def _partial_nan_rows(X, block) -> int:
    """Count the rows of ``X`` with NaN in part, but not all, of ``block``.

    Only called to explain a member's failure, so a sparse block is made
    dense here.
    """
    part = X[:, block]
    counts = np.isnan(part.toarray() if sp.issparse(part) else part).sum(axis=1)
    return int(((counts > 0) & (counts < len(block))).sum())


# Largest magnitude late fusion hands on: members and stackers square and sum
# their inputs (least squares, kernels, standardizing), and the squares of
# larger values overflow float64 once summed over the rows.
_LARGEST = 1e150


def _check_magnitude(values, what):
    """Refuse entries of ``values`` beyond ``±_LARGEST``, naming the first.

    ``what`` is ``"X"`` (2-D, dense or sparse) or ``"y"``. NaN passes. Two
    reductions, no copy: a sparse matrix is never densified.
    """
    coo = sp.coo_array(values) if sp.issparse(values) else None
    data = np.asarray(values if coo is None else coo.data).ravel()
    if data.dtype.kind != "f" or float(np.finfo(data.dtype).max) <= _LARGEST:
        return  # float32 (and integers) cannot reach it
    if data.size == 0 or not (
        np.fmax.reduce(data) > _LARGEST or np.fmin.reduce(data) < -_LARGEST
    ):
        return  # fmax/fmin skip NaN
    with np.errstate(invalid="ignore"):
        first = int(np.flatnonzero(np.abs(data) > _LARGEST)[0])
    if coo is not None:
        index = (int(coo.coords[0][first]), int(coo.coords[1][first]))
    else:
        index = np.unravel_index(first, np.shape(values))
    where = f"{what}[{', '.join(str(int(k)) for k in index)}]"
    raise ValueError(
        f"{where} = {data[first]:g} is beyond ±{_LARGEST:g}: members square and "
        f"sum their inputs, which overflows float64 at this scale. Rescale "
        f"{what}, e.g. divide it by a power of ten."
    )


def _explain(who, exc, doing, n_rows, sample_weight, note=""):
    """Return the error ``exc`` of ``who`` restated with its context.

    A TypeError about ``sample_weight`` (while weights were given) says that
    ``who`` takes no weights; any other error keeps its kind and text after
    what ``who`` was doing, on how many rows.
    """
    if (
        sample_weight is not None
        and isinstance(exc, TypeError)
        and "sample_weight" in str(exc)
    ):
        return TypeError(
            f"{who} takes no sample_weight in fit (a Pipeline gets it on its "
            f"last step); give estimators whose fit takes sample_weight, or "
            f"fit without it. It raised: {exc}"
        )
    kind = TypeError if not isinstance(exc, ValueError) else ValueError
    return kind(f"{who} failed to {doing} on {n_rows} row(s){note}: {exc}")


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

    def _validate_fit_data(self, X, y, **kwargs):
        """``validate_data`` for fit; a non-number or a huge value is named."""
        X, y = validate_numeric(
            self,
            X,
            y,
            accept_sparse=["csr", "csc"],
            ensure_all_finite="allow-nan",
            **kwargs,
        )
        _check_magnitude(X, "X")
        if kwargs.get("y_numeric"):
            _check_magnitude(y, "y")
        return X, y

    def _check_members(self):
        """Check the members' form, names and kinds, before looking at X.

        Runs first in ``fit``: validating X reads the members' tags, which
        a member that is no estimator lacks.
        """
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
        self._check_names([name for name, _, _ in self.estimators])
        kind = self._member_kind
        for name, estimator, _ in self.estimators:
            check_estimator(estimator, f"member {name!r}")
            self._check_kind(estimator, f"member {name!r}")
            if self.voting == "soft" and not hasattr(estimator, "predict_proba"):
                raise ValueError(
                    f"voting='soft' needs members with predict_proba, but "
                    f"member {name!r} ({type(estimator).__name__}) has none; "
                    f"use voting='hard' or 'stack', or a probabilistic "
                    f"{kind} (e.g. wrap it in CalibratedClassifierCV)."
                )
        if self.voting == "stack" and self.final_estimator is not None:
            check_estimator(self.final_estimator, "final_estimator")
            self._check_kind(self.final_estimator, "final_estimator")

    def _check_kind(self, estimator, who):
        """Reject an estimator that is not of ``_member_kind``."""
        kind = _estimator_type(estimator)
        if kind != self._member_kind:
            what = f"is a {kind}" if kind else "declares no estimator type"
            raise ValueError(
                f"{type(self).__name__} needs {self._member_kind}s, but {who} "
                f"({type(estimator).__name__}) {what}; give a "
                f"{self._member_kind} (a Pipeline is of the type of its last "
                f"step, a search such as GridSearchCV of its estimator's)."
            )

    def _check_names(self, names):
        for name in names:
            if not isinstance(name, str):
                raise TypeError(
                    f"member names must be strings; got {name!r} "
                    f"({type(name).__name__})."
                )
            if "__" in name:
                raise ValueError(
                    f"member name {name!r} contains '__', which set_params "
                    f"reads as <member>__<parameter>; rename the member."
                )
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(
                f"member names must be unique, but {repeated} name more than "
                f"one member; rename them."
            )
        clash = sorted(set(names) & set(self.get_params(deep=False)))
        if clash:
            raise ValueError(
                f"member names {clash} are parameters of {type(self).__name__};"
                f" rename those members."
            )

    def _modality_positions(self, name, modalities):
        wanted = modalities if isinstance(modalities, list | tuple) else [modalities]
        if not wanted:
            raise ValueError(f"member {name!r} lists no modality; give at least one.")
        what = f"member {name!r}: modality"
        positions = [modality_position(m, self.modality_names_, what) for m in wanted]
        if len(set(positions)) != len(positions):
            raise ValueError(f"member {name!r} lists a modality twice: {modalities!r}.")
        return positions

    def _validate_weights(self, n_members):
        if self.weights is None:
            return np.ones(n_members)
        if self.voting == "stack":
            raise ValueError(
                f"weights={self.weights!r} are not used by voting='stack', "
                f"whose final estimator learns how far to trust each member; "
                f"leave weights=None, or vote."
            )
        try:
            weights = np.asarray(self.weights, dtype=float)
        except (TypeError, ValueError):
            weights = None
        if weights is None or weights.shape != (n_members,):
            raise ValueError(
                f"weights={self.weights!r} must be {n_members} numbers, one a "
                f"member in the order of estimators."
            )
        if not np.isfinite(weights).all() or (weights < 0).any() or weights.max() <= 0:
            raise ValueError(
                f"weights={self.weights!r} must be finite and non-negative, "
                f"with a positive sum."
            )
        # The votes are weighted means, whatever the scale: scaled to a
        # largest weight of 1, weights near float64's largest do not overflow.
        return weights / weights.max()

    def _fit(self, X, y_fit, sample_weight):
        """Fit the members and, for stacking, the final estimator.

        ``X`` is the caller's data, ``self._X_checked`` its validated array.
        """
        names = [name for name, _, _ in self.estimators]
        positions = [
            self._modality_positions(name, modalities)
            for name, _, modalities in self.estimators
        ]
        self._weights = self._validate_weights(len(names))
        if sample_weight is not None:
            try:
                sample_weight = _check_sample_weight(
                    sample_weight, self._X_checked, ensure_non_negative=True
                )
            except ValueError as exc:
                raise ValueError(
                    f"sample_weight: {str(exc).rstrip('.!')}. Give one finite, "
                    f"non-negative number a row of X, not all zero."
                ) from exc
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
            weighted = has if sample_weight is None else has & (sample_weight > 0)
            if not weighted.any():
                raise ValueError(
                    f"member {name!r} has no training row: every row lacks one "
                    f"of its modalities {self.member_modalities_[name]}"
                    f"{' or has sample_weight 0' if has.any() else ''}. Give it "
                    f"rows with those modalities, or drop the member."
                )
        self._check_covered(np.logical_or.reduce(rows), "learn from")
        members = [estimator for _, estimator, _ in self.estimators]
        self._weighted = self._weighted_fits(sample_weight)
        fitted = Parallel(n_jobs=self.n_jobs)(
            delayed(_fit_or_error)(
                clone(estimator),
                _select(data, cols, has),
                y_fit[has],
                _fit_params(estimator, self._member_weights(name, sample_weight, has)),
            )
            for name, estimator, cols, has in zip(
                names, members, self._member_columns, rows, strict=True
            )
        )
        for i, result in enumerate(fitted):
            if isinstance(result, Exception):
                raise self._member_error(
                    i, result, "fit", self._X_checked, rows[i], y_fit, sample_weight
                ) from result
        self.estimators_ = fitted
        self.named_estimators_ = Bunch(
            **dict(zip(names, self.estimators_, strict=True))
        )
        self.stack_method_ = [self._output_method(e) for e in self.estimators_]
        self._output_widths = [self._output_width(m) for m in self.stack_method_]
        if self.voting == "stack":
            self._fit_final(data, y_fit, sample_weight, members, rows)
        del self._X_checked
        return self

    def get_metadata_routing(self):
        """Get the metadata routing of this object: to each member's ``fit``.

        With ``sklearn.set_config(enable_metadata_routing=True)``, ``fit``'s
        ``sample_weight`` reaches a member (and, for stacking, the final
        estimator) only where it requests them
        (``set_fit_request(sample_weight=True)``, on the member or on the
        steps of a Pipeline member). The estimator itself uses the weights
        too (its checks, and the stand-in outputs of stacking).

        Returns
        -------
        routing : MetadataRouter
            A :class:`~sklearn.utils.metadata_routing.MetadataRouter`.
        """
        router = MetadataRouter(owner=type(self).__name__).add_self_request(self)
        fit = MethodMapping().add(caller="fit", callee="fit")
        for name, estimator, _ in self.estimators:
            router.add(**{name: estimator}, method_mapping=fit)
        if self.voting == "stack":
            router.add(final_estimator=self._final(), method_mapping=fit)
        return router

    def _weighted_fits(self, sample_weight):
        """Which fits get ``sample_weight``: the members' by name, the stacker's.

        Every one without metadata routing; with it, those that request them.
        """
        fits = [name for name, _, _ in self.estimators] + ["final_estimator"]
        if sample_weight is None or not get_config()["enable_metadata_routing"]:
            return dict.fromkeys(fits, sample_weight is not None)
        routed = process_routing(self, "fit", sample_weight=sample_weight)
        return {
            name: name in routed and "sample_weight" in routed[name].fit
            for name in fits
        }

    def _member_weights(self, name, sample_weight, rows):
        """Return the weights of ``rows`` for the fit ``name`` (None: it gets none)."""
        return _take(sample_weight, rows) if self._weighted[name] else None

    def _member_error(self, i, exc, doing, X, rows, y=None, sample_weight=None):
        """Restate member ``i``'s error ``exc`` with the member's context.

        ``rows`` are the rows of the validated ``X`` it was given; ``y`` (at
        fit) the encoded targets of all rows.
        """
        name, estimator, _ = self.estimators[i]
        who = f"member {name!r} ({type(estimator).__name__})"
        modalities = self.member_modalities_[name]
        X_rows = X[np.flatnonzero(rows)]
        partial = {
            modality: _partial_nan_rows(X_rows, self.blocks_[p])
            for modality, p in zip(modalities, self._member_positions[i], strict=True)
        }
        partial = {modality: n for modality, n in partial.items() if n}
        if partial and isinstance(exc, ValueError):
            where = ", ".join(f"{n} in {m!r}" for m, n in partial.items())
            if isinstance(estimator, Pipeline):
                impute = "put a SimpleImputer() first in its pipeline"
            else:
                cls = type(estimator).__name__
                impute = f"e.g. make_pipeline(SimpleImputer(), {cls}(...))"
            return ValueError(
                f"{who} failed to {doing} on rows with NaN in part of a modality "
                f"(rows: {where}). mmfuse reads only a whole-NaN block as a "
                f"missing modality, whose rows are left out of the member; NaN "
                f"in part of a block reaches the member, which must handle it: "
                f"impute inside the member ({impute}), or use a member that "
                f"takes NaN. It raised: {exc}"
            )
        note = f" (the rows with its modalities {modalities}{self._rows_note(y, rows)})"
        return _explain(who, exc, doing, int(rows.sum()), sample_weight, note)

    def _rows_note(self, y, rows):
        """More about the training rows ``rows`` of an error (none here)."""
        return ""

    def _fit_final(self, data, y_fit, sample_weight, members, rows):
        """Fit the final estimator on out-of-fold member outputs.

        The folds are drawn once, on all training rows, and each member uses
        them restricted to its rows. The out-of-fold outputs are kept, so
        that a stacker over a subset of the members can be fitted for rows
        that lack the others. Where a row lacks a member's modalities, its
        output is the member's (weighted) mean out-of-fold output.
        """
        cv = check_cv(self.cv, y_fit, classifier=is_classifier(self))
        try:
            splits = list(cv.split(self._X_checked, y_fit))
        except ValueError as exc:
            raise ValueError(
                f"voting='stack' learns from out-of-fold outputs, but cv={cv!r} "
                f"cannot split these {len(y_fit)} training rows: {exc} Use "
                f"fewer folds (e.g. cv=2), or more rows."
            ) from exc
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
            try:
                oof = cross_val_predict(
                    clone(estimator),
                    _select(data, cols, has),
                    y_fit[has],
                    cv=_restrict(splits, has),
                    method=method,
                    n_jobs=self.n_jobs,
                    params=_fit_params(
                        estimator,
                        self._member_weights(self.estimators[i][0], sample_weight, has),
                    ),
                )
            except (ValueError, TypeError) as exc:
                doing = f"give out-of-fold {method} (voting='stack', cv={cv})"
                raise self._member_error(
                    i, exc, doing, self._X_checked, has, y_fit, sample_weight
                ) from exc
            oof = self._expand(fitted, oof, method)
            self._output_widths[i] = oof.shape[1]
            mean = np.average(oof, axis=0, weights=_take(sample_weight, has))
            output = np.tile(mean, (len(has), 1))
            output[has] = oof
            self._oof_outputs.append(output)
        self._oof_rows = rows
        self._oof_target = y_fit
        self._oof_weight = sample_weight
        self.final_estimator_ = self._fit_stacker(np.arange(len(members)))

    def _final(self):
        """Return the unfitted final estimator: the parameter, or the default.

        Under metadata routing the default requests ``sample_weight``, as it
        gets them without routing (nobody else could request them for it).
        """
        if self.final_estimator is not None:
            return self.final_estimator
        default = self._default_final_estimator()
        if get_config()["enable_metadata_routing"]:
            default.set_fit_request(sample_weight=True)
        return default

    def _fit_stacker(self, members):
        """Fit a clone of the final estimator on the members ``members``.

        It learns from every training row that has at least one of those
        members, from their out-of-fold outputs (a member's mean output
        where the row lacks its modalities).
        """
        rows = np.logical_or.reduce([self._oof_rows[i] for i in members])
        final = clone(self._final())
        features = np.hstack([self._oof_outputs[i][rows] for i in members])
        sample_weight = self._member_weights("final_estimator", self._oof_weight, rows)
        try:
            return final.fit(
                features,
                self._oof_target[rows],
                **_fit_params(final, sample_weight),
            )
        except (ValueError, TypeError) as exc:
            names = [self.estimators[i][0] for i in members]
            who = f"final_estimator ({type(final).__name__})"
            doing = f"fit on the out-of-fold outputs of the members {names}"
            note = self._rows_note(self._oof_target, rows)
            note = f" (the training rows with any of them{note})"
            raise _explain(
                who, exc, doing, int(rows.sum()), sample_weight, note
            ) from exc

    def _member_outputs(self, X):
        """Each member's output on ``X`` (NaN where it lacks its modalities).

        Returns the list of row masks (rows a member can predict) and the list
        of outputs (of ``stack_method_``), one ``(n_samples, width)`` array a
        member.
        """
        check_is_fitted(self)
        X_checked = validate_numeric(
            self,
            X,
            accept_sparse=["csr", "csc"],
            ensure_all_finite="allow-nan",
            reset=False,
        )
        _check_magnitude(X_checked, "X")
        present = modality_mask(X_checked, self.blocks_)
        data = X if hasattr(X, "iloc") else X_checked
        masks, outputs = [], []
        for i, (estimator, pos, cols, method, width) in enumerate(
            zip(
                self.estimators_,
                self._member_positions,
                self._member_columns,
                self.stack_method_,
                self._output_widths,
                strict=True,
            )
        ):
            has = present[:, pos].all(axis=1)
            output = np.full((len(has), width), np.nan)
            if has.any():
                try:
                    raw = getattr(estimator, method)(_select(data, cols, has))
                except (ValueError, TypeError) as exc:
                    raise self._member_error(i, exc, method, X_checked, has) from exc
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

    def _check_covered(self, covered, use="predict"):
        """Reject rows that have the modalities of no member (of weight > 0)."""
        uncovered = np.flatnonzero(~covered)
        if uncovered.size:
            needs = "; ".join(
                f"member {name!r} needs {modalities}"
                for name, modalities in self.member_modalities_.items()
            )
            weighted = use == "predict" and self.voting != "stack"
            if weighted and (self._weights == 0).any():
                needs += "; members of weight 0 do not count"
            raise ValueError(
                f"{uncovered.size} row(s) (first: {uncovered[:5].tolist()}) "
                f"lack the modalities of every member, so no member can {use} "
                f"them ({needs}). Give each row all modalities of at least one "
                f"member, or drop those rows."
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
            rows that lack one of its modalities. A row that no member can
            take is an error, as in ``predict``.
        """
        masks, outputs = self._member_outputs(X)
        self._check_covered(np.logical_or.reduce(masks), "transform")
        return np.hstack(outputs)

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
        except (AttributeError, TypeError, ValueError):
            # Not a list of estimator triples: fit says what is wrong.
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
    NaN in part of a block is not a missing modality: it reaches the members,
    which must handle it (impute inside the member, e.g.
    ``make_pipeline(SimpleImputer(), LogisticRegression())``, or use a member
    that takes NaN); a member that fails on it raises an error that names the
    member, the modality and the number of rows. At fit, a member is trained
    on the rows that have all its modalities. At predict time, a vote is taken
    over the members whose modalities the row has, with their weights
    renormalised. With ``voting="stack"``, the stacker over a set of members
    learns from every training row that has at least one of them: its input
    is their out-of-fold outputs, where the member's mean out-of-fold output
    stands in for a member whose modalities the row lacks.
    ``final_estimator_`` is that stacker over all members, and predicts the
    rows that have every member's modalities; a row that lacks some members'
    modalities is predicted by the stacker over the members it has, fitted in
    the same way at predict time (the stacker one would have fitted without
    the other members). So a class seen only in training rows that lack a
    modality is still learnt by ``final_estimator_``. A row with none of any
    member's modalities raises an error, in fit and in predict.

    **Sample weights.** ``fit(X, y, sample_weight=w)`` fits each member with
    the weights of the rows it is fitted on (each fold of its out-of-fold
    outputs with the weights of the fold's rows), and the stacker with the
    weights of its training rows (its stand-in means weighted too). Integer
    weights therefore give the model fitted on rows repeated that many times
    wherever the members and the stacker have that property, except for the
    folds of stacking: repeated rows fall in different folds where a weighted
    row stays in one, so the out-of-fold outputs differ unless ``cv`` keeps
    the copies of a row in one fold (an iterable of splits). Each member, and
    the stacker, must take ``sample_weight`` in fit, or a TypeError names it.
    A :class:`~sklearn.pipeline.Pipeline` gets the weights on its last step,
    as ``fit(X, y, <last step>__sample_weight=w)`` (its transformers are
    fitted unweighted); with metadata routing enabled
    (``sklearn.set_config(enable_metadata_routing=True)``) a member, and the
    stacker, get ``sample_weight`` only if they request it (see
    :meth:`get_metadata_routing`): request it on each member, or on the
    steps of a Pipeline member, with ``set_fit_request(sample_weight=True)``,
    or refuse it with ``False`` (a member whose fit takes no weights needs
    neither).

    Parameters
    ----------
    estimators : list of (str, estimator, str, int or list) tuples
        The members: a name (no ``"__"``), a classifier (a Pipeline whose
        last step is one, or a search such as ``GridSearchCV`` over one), and
        the modality (a name or position among the blocks) or list of
        modalities it sees. A member given several modalities gets their
        columns side by side, in the order listed (for instance a
        :func:`make_early_fusion` pipeline or a nested
        ``LateFusionClassifier`` over that group). A member's
        parameters are ``<name>__<param>`` for ``set_params`` and grid search.
    blocks : "auto", int, list, tuple or dict, default="auto"
        The modality blocks, in any form :func:`mmfuse.resolve_blocks` accepts.
    voting : {"soft", "hard", "stack"}, default="soft"
        How the members are combined.
    weights : array-like of shape (n_members,), default=None
        Each member's weight in the votes (not with ``voting="stack"``, where
        giving weights is an error); equal when None.
    final_estimator : estimator, default=None
        The stacker for ``voting="stack"``; a
        :class:`~sklearn.linear_model.LogisticRegression` when None.
    cv : int, cross-validation generator or iterable, default=None
        The folds of the out-of-fold predictions for ``voting="stack"``, as
        :func:`~sklearn.model_selection.cross_val_predict` takes them;
        stratified 5-fold when None. They are drawn once on all training rows
        (an iterable of splits indexes them), and each member uses them
        restricted to the rows it is fitted on.
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
    _member_kind = "classifier"

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
    def fit(self, X, y, sample_weight=None):
        """Fit the members and, for stacking, the final estimator.

        Parameters
        ----------
        X : {array-like, sparse matrix, DataFrame} of shape (n_samples, n_features)
            Multimodal data; a modality's block all NaN where a row lacks it.
        y : array-like of shape (n_samples,)
            Class labels.
        sample_weight : array-like of shape (n_samples,), default=None
            Row weights, given to each member on the rows it fits and to the
            stacker (see the class description); every member, and the
            stacker, must take ``sample_weight`` in fit.

        Returns
        -------
        self : LateFusionClassifier
            The fitted estimator.
        """
        self._check_members()
        self._X_checked, y = self._validate_fit_data(X, y)
        check_classification_targets(y)
        self._encoder = LabelEncoder().fit(y)
        self.classes_ = self._encoder.classes_
        if len(self.classes_) < 2:
            raise ValueError(
                f"y holds one class only, {self.classes_.tolist()[0]!r}; "
                f"LateFusionClassifier needs at least two classes."
            )
        fit_blocks(self)
        return self._fit(X, self._encoder.transform(y), sample_weight)

    def _default_final_estimator(self):
        return LogisticRegression(max_iter=1000)

    def _rows_note(self, y, rows):
        """Name the classes that training rows ``rows`` lack, if any."""
        if y is None:
            return ""
        seen = np.unique(y[rows])
        if len(seen) == len(self.classes_):
            return ""
        return (
            f"; they hold only the classes {self.classes_[seen].tolist()} of "
            f"{self.classes_.tolist()}, coded 0 to {len(self.classes_) - 1} for "
            f"the members"
        )

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
            return hasattr(self._final(), "predict_proba")
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

    **Missing modalities.** A row lacks a modality when its block is all NaN;
    NaN in part of a block reaches the members, which must handle it (see
    :class:`LateFusionClassifier`). At fit, a member is trained on the rows
    that have all its modalities; at predict time, the mean is taken over the
    members whose modalities the row has, with their weights renormalised.
    With ``voting="stack"``, the stacker over a set of members learns from
    every training row that has at least one of them, a member's mean
    out-of-fold prediction standing in where the row lacks its modalities;
    ``final_estimator_`` is the stacker over all members and predicts the
    rows that have every member's modalities, and a row that lacks some is
    predicted by the stacker over the members it has, fitted in the same way
    at predict time. A row with none of any member's modalities raises an
    error.

    **Sample weights.** As in :class:`LateFusionClassifier`: each member gets
    the weights of the rows it is fitted on, the stacker those of its
    training rows, a Pipeline member on its last step; integer weights equal
    repeated rows where the members do, the out-of-fold outputs of stacking
    only when ``cv`` keeps the copies of a row in one fold.

    Parameters
    ----------
    estimators : list of (str, estimator, str, int or list) tuples
        The members: a name (no ``"__"``), a regressor (a Pipeline whose last
        step is one, or a search over one), and the modality (a name or
        position among the blocks) or list of modalities it sees, given side
        by side in the order listed.
    blocks : "auto", int, list, tuple or dict, default="auto"
        The modality blocks, in any form :func:`mmfuse.resolve_blocks` accepts.
    voting : {"mean", "stack"}, default="mean"
        How the members are combined.
    weights : array-like of shape (n_members,), default=None
        Each member's weight in the mean (not with ``voting="stack"``, where
        giving weights is an error); equal when None.
    final_estimator : estimator, default=None
        The stacker for ``voting="stack"``; a
        :class:`~sklearn.linear_model.RidgeCV` when None.
    cv : int, cross-validation generator or iterable, default=None
        The folds of the out-of-fold predictions for ``voting="stack"``;
        5-fold when None. Drawn once on all training rows, and restricted to
        each member's rows.
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
    _member_kind = "regressor"

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
    def fit(self, X, y, sample_weight=None):
        """Fit the members and, for stacking, the final estimator.

        Parameters
        ----------
        X : {array-like, sparse matrix, DataFrame} of shape (n_samples, n_features)
            Multimodal data; a modality's block all NaN where a row lacks it.
        y : array-like of shape (n_samples,)
            Targets.
        sample_weight : array-like of shape (n_samples,), default=None
            Row weights, given to each member on the rows it fits and to the
            stacker (see the class description); every member, and the
            stacker, must take ``sample_weight`` in fit.

        Returns
        -------
        self : LateFusionRegressor
            The fitted estimator.
        """
        self._check_members()
        y = numeric_target(y, "LateFusionRegressor", "LateFusionClassifier")
        self._X_checked, y = self._validate_fit_data(X, y, y_numeric=True)
        fit_blocks(self)
        return self._fit(X, y, sample_weight)

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
