"""Cross-validate fusion strategies side by side on the same folds."""

import warnings
from collections import Counter
from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.exceptions import FitFailedWarning
from sklearn.metrics import get_scorer
from sklearn.model_selection import (
    GroupKFold,
    KFold,
    StratifiedGroupKFold,
    StratifiedKFold,
    check_cv,
    cross_validate,
)
from sklearn.pipeline import Pipeline
from sklearn.utils.parallel import Parallel, delayed

from mmfuse._blocks import (
    check_any_modality,
    check_complete,
    check_every_modality_seen,
    check_numeric,
    resolve_blocks_for,
)
from mmfuse.fusion._late import LateFusionClassifier, LateFusionRegressor
from mmfuse.fusion._strategies import default_strategies
from mmfuse.utils._optional import import_optional

__all__ = ["compare_fusion", "infer_task"]

# infer_task: integer targets with at most this many distinct values are
# class labels; with more, a quantity (regression), and when each value
# repeats at least _REPEATS times on average, possibly class codes (warned).
_MAX_CLASSES = 10
_REPEATS = 5


def _first_line(exc: BaseException) -> str:
    """``"<type>: <first line of the message>"``."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def _is_number(value) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def _numbers(y):
    """Return ``y`` as a numeric array, or None when it holds labels.

    Strings are labels even when they spell numbers; so are booleans.
    """
    y = np.asarray(y)
    if y.dtype.kind == "O" and all(_is_number(v) for v in y.ravel()):
        return y.astype(float)
    return y if y.dtype.kind in "iuf" else None


def infer_task(y):
    """Tell whether ``y`` holds class labels or a quantity to regress.

    The rule of :func:`compare_fusion` for ``task=None``:

    - labels that are not numbers (strings, booleans, categories) are
      classification;
    - numbers with a fractional part are regression;
    - integer-valued numbers (``3`` or ``3.0``) are classification when they
      take at most 10 distinct values, and regression when they take more:
      many distinct integers are counts or measurements (diabetes
      progression, 25 to 346), not classes. When they take more than 10
      values that repeat (at least 5 rows a value on average), they may be
      class codes: a warning says that regression was chosen and how to
      choose classification.

    Pass ``task=`` to :func:`compare_fusion` (``--task`` to ``mmfuse
    compare``) to override the rule.

    Parameters
    ----------
    y : array-like of shape (n_samples,)
        The target, without missing values.

    Returns
    -------
    task : {"classification", "regression"}
        The task.

    Examples
    --------
    >>> import numpy as np
    >>> from mmfuse.fusion import infer_task
    >>> infer_task(["cat", "dog", "cat"])
    'classification'
    >>> infer_task([0, 1, 2, 1, 0])
    'classification'
    >>> infer_task([0.5, 1.25, 3.0])
    'regression'
    >>> infer_task(np.arange(25.0, 347.0))
    'regression'
    """
    y = _numbers(y)
    if y is None:
        return "classification"
    if np.any(y != np.round(y)):
        return "regression"
    n_values = len(np.unique(y))
    if n_values <= _MAX_CLASSES:
        return "classification"
    if len(y) >= _REPEATS * n_values:
        warnings.warn(
            f"the target holds {n_values} distinct integers, each on "
            f"{len(y) / n_values:.0f} rows on average: they are taken as a "
            f"quantity (task='regression'). If they are class labels, pass "
            f"task='classification' (mmfuse compare: --task classification).",
            UserWarning,
            stacklevel=2,
        )
    return "regression"


def check_n_splits(n_splits, y, task, groups=None, *, name="cv"):
    """Check a number of folds against the rows, classes and groups.

    Parameters
    ----------
    n_splits : int
        The number of folds asked for.
    y : ndarray of shape (n_samples,)
        The target.
    task : {"classification", "regression"}
        Classification folds are stratified, so each class needs a row in
        each fold.
    groups : ndarray of shape (n_samples,), default=None
        Group labels; each fold needs a group of its own.
    name : str, default="cv"
        How the messages name the number (``"--cv"`` for the command line).

    Raises
    ------
    ValueError
        Naming ``name``, the value and the largest number that works.
    """
    if not isinstance(n_splits, Integral) or isinstance(n_splits, bool) or n_splits < 2:
        raise ValueError(
            f"{name}={n_splits!r} is not a number of folds: give an integer "
            f">= 2 (e.g. {name}=5)."
        )
    n_rows = len(y)
    if n_splits > n_rows:
        raise ValueError(
            f"{name}={n_splits} asks for more folds than the {n_rows} rows; "
            f"use {name} <= {n_rows}."
        )
    if groups is not None:
        n_groups = len(np.unique(groups))
        if n_splits > n_groups:
            raise ValueError(
                f"{name}={n_splits} folds need at least {n_splits} groups, but "
                f"groups holds {n_groups}; use {name} <= {n_groups}."
            )
    if task == "classification":
        classes, counts = np.unique(y, return_counts=True)
        rarest = int(np.argmin(counts))
        fewest = int(counts[rarest])
        if n_splits > fewest:
            fix = f"use {name} <= {fewest}, or " if fewest > 1 else ""
            raise ValueError(
                f"{name}={n_splits} stratified folds need at least {n_splits} "
                f"rows of each class, but class {classes.tolist()[rarest]!r} has "
                f"{fewest}; {fix}drop or merge the rarest classes."
            )


def _numeric(X, blocks, names):
    """Return ``X`` as floats (sparse stays sparse), naming a cell of text."""
    if sp.issparse(X):
        return sp.csr_array(X, dtype=float)
    check_numeric(X, "compare_fusion", blocks, names)
    if hasattr(X, "dtypes"):
        return X.to_numpy(dtype=float, na_value=np.nan)
    return np.asarray(X, dtype=float)


def _check_finite(values, labels):
    """Reject infinite entries, naming the column."""
    if sp.issparse(values):
        coo = values.tocoo()
        infinite = np.isinf(coo.data)
        rows, cols = coo.row[infinite], coo.col[infinite]
    else:
        rows, cols = np.nonzero(np.isinf(values))
    if rows.size:
        raise ValueError(
            f"column {labels[cols[0]]!r} holds an infinite value (row "
            f"{rows[0]}); replace it: NaN marks only a whole missing modality."
        )


def _missing(values):
    """Flag the missing entries (NaN or None) of a 1-D array."""
    if values.dtype.kind == "f":
        return np.isnan(values)
    if values.dtype.kind == "O":
        return np.array([v is None or v != v for v in values], dtype=bool)
    return np.zeros(len(values), dtype=bool)


def _one_column(values, n_rows, what):
    """Return ``values`` as a 1-D array of ``n_rows`` entries, none missing."""
    array = np.asarray(values)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array.ravel()
    if array.ndim != 1:
        raise ValueError(
            f"{what} must be one column of shape (n_samples,); got shape {array.shape}."
        )
    if len(array) != n_rows:
        raise ValueError(f"X has {n_rows} rows but {what} has {len(array)}.")
    missing = np.flatnonzero(_missing(array))
    if missing.size:
        raise ValueError(
            f"{what} is missing (NaN) in {missing.size} row(s) (first: "
            f"{missing[:5].tolist()}); drop those rows or fill them in."
        )
    if array.dtype.kind == "f" and np.isinf(array).any():
        raise ValueError(
            f"{what} is infinite in row {np.flatnonzero(np.isinf(array))[0]}."
        )
    return array


def check_data(X, y, blocks="auto", groups=None):
    """Validate the data of :func:`compare_fusion`.

    Parameters
    ----------
    X : {array-like, sparse matrix, DataFrame} of shape (n_samples, n_features)
        The modalities side by side.
    y : array-like of shape (n_samples,)
        The target; a pandas Series' name is used in the messages.
    blocks : "auto", int, list, tuple or dict, default="auto"
        The modality blocks.
    groups : array-like of shape (n_samples,), default=None
        Group labels of the rows.

    Returns
    -------
    X : {ndarray, sparse matrix, DataFrame}
        ``X`` reduced to the columns of the blocks (in their order in
        ``X``), as floats; a DataFrame keeps its column names and index.
    y : ndarray of shape (n_samples,)
        The target.
    groups : ndarray of shape (n_samples,) or None
        The group labels.
    blocks : dict of {str: list of int}
        Each modality's column positions in the returned ``X``.
    ignored : list
        The columns of ``X`` outside every block (names, or positions).

    Raises
    ------
    ValueError
        For a non-numeric, infinite or empty (all-NaN) column (named), a
        column name used twice, a target or group label missing in some rows
        (which), NaN in part of a modality, a modality missing in every row,
        or rows lacking every modality.
    """
    if not hasattr(X, "shape"):
        X = np.asarray(X)
    if len(X.shape) != 2:
        raise ValueError(f"X must be 2-D; got shape {X.shape}.")
    n_rows, n_features = X.shape
    if n_rows == 0:
        raise ValueError("X has no rows.")
    columns = getattr(X, "columns", None)
    labels = list(range(n_features)) if columns is None else list(columns)
    counts = Counter(labels)  # any frame's column labels, not pandas' only
    if len(counts) < len(labels):
        repeated = [label for label, count in counts.items() if count > 1]
        where = [j for j, label in enumerate(labels) if counts[label] > 1]
        raise ValueError(
            f"X has {len(repeated)} column name(s) used more than once "
            f"({repeated[:5]}, at positions {where[:10]}): a column must be "
            f"named once to be told apart; rename or drop the copies."
        )
    indices, names = resolve_blocks_for(blocks, X)
    used = np.sort(np.concatenate(indices))
    ignored = [labels[j] for j in np.setdiff1d(np.arange(n_features), used)]
    if ignored:
        X = X.iloc[:, used] if hasattr(X, "iloc") else X[:, used]
        labels = [labels[j] for j in used]
        indices = [np.searchsorted(used, block) for block in indices]
    values = _numeric(X, indices, names)
    _check_finite(values, labels)
    if hasattr(X, "iloc"):
        X = type(X)(values, index=X.index, columns=X.columns)
    else:
        X = values
    name = getattr(y, "name", None)
    y = _one_column(y, n_rows, "y" if name is None else f"the target {name!r}")
    if groups is not None:
        groups = _one_column(groups, n_rows, "groups")
    present = check_complete(
        values, indices, names, "compare_fusion", allow_missing=True, columns=labels
    )
    check_any_modality(present, names, "compare_fusion")
    check_every_modality_seen(
        present, indices, names, "compare_fusion's strategies", labels
    )
    blocks = {name: block.tolist() for name, block in zip(names, indices, strict=True)}
    return X, y, groups, blocks, ignored


def _family(estimator) -> str:
    """Tell the family of a strategy passed as an estimator."""
    if isinstance(estimator, LateFusionClassifier | LateFusionRegressor):
        return "stacking" if estimator.voting == "stack" else "late"
    if isinstance(estimator, Pipeline) and isinstance(estimator[0], ColumnTransformer):
        return "early"
    return "custom"


def _select_strategies(strategies, defaults):
    """Resolve ``strategies`` into a list of ``(name, family, estimator)``."""
    if isinstance(strategies, str):
        strategies = [strategies]
    if isinstance(strategies, dict):
        strategies = list(strategies.items())
    known = {name: (name, family, est) for name, family, est in defaults}
    families = {family for _, family, _ in defaults}
    chosen = []
    for item in strategies:
        if isinstance(item, str):
            if item == "default":
                chosen.extend(defaults)
            elif item in known:
                chosen.append(known[item])
            elif item in families:
                chosen.extend(s for s in defaults if s[1] == item)
            else:
                raise ValueError(
                    f"unknown strategy {item!r}; the named strategies here are "
                    f"{sorted(known)}, the families {sorted(families)}, or "
                    f"'default' for all of them."
                )
        elif hasattr(item, "fit"):
            chosen.append((type(item).__name__, _family(item), item))
        elif (
            isinstance(item, tuple | list)
            and len(item) == 2
            and isinstance(item[0], str)
            and hasattr(item[1], "fit")
        ):
            chosen.append((item[0], _family(item[1]), item[1]))
        else:
            raise ValueError(
                f"strategy {item!r} is not understood: give a strategy name, "
                f"an estimator, or a (name, estimator) pair."
            )
    names = [name for name, _, _ in chosen]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"strategy names must be unique; {repeated} repeat.")
    if not chosen:
        raise ValueError("strategies is empty; give at least one strategy.")
    return chosen


def _metric_keys(scoring, task):
    """Return the table's score names, each with its key in ``cross_validate``.

    One scorer (None, a name or a callable) is ``test_score``; a list or dict
    of them, even of one, is ``test_<name>``. Scorer names are checked first.
    """
    if scoring is None:
        return {"accuracy" if task == "classification" else "r2": "test_score"}
    if callable(scoring):
        return {"score": "test_score"}
    if isinstance(scoring, str):
        get_scorer(scoring)
        return {scoring: "test_score"}
    names = list(scoring)
    if not isinstance(scoring, dict):
        for name in names:
            get_scorer(name)
    return {name: f"test_{name}" for name in names}


def _run_fold(name, fold, estimator, X, y, train, test, scoring):
    """Fit and score one strategy on one fold; a failure is returned, not raised."""
    try:
        result = cross_validate(
            estimator, X, y, cv=[(train, test)], scoring=scoring, error_score="raise"
        )
    except Exception as exc:  # noqa: BLE001 - any failure becomes a table row
        return name, fold, _first_line(exc)
    return name, fold, {key: float(value[0]) for key, value in result.items()}


def _grouped_inner_folds(estimator, y, groups, task, random_state):
    """Give a stack's inner folds the outer folds' grouping.

    A stacking :class:`~mmfuse.fusion.LateFusionClassifier` (or regressor)
    learns from out-of-fold outputs of its members over ``cv`` inner folds
    of its training rows. With ``groups``, a group on both sides of an inner
    fold lets a member look better out of fold than it is on new groups, and
    the stacker trusts it too much; so an integer ``cv`` becomes that many
    folds of the training rows split as the outer ones (no group on both
    sides), given as index pairs. Other estimators, and a stack whose ``cv``
    is a splitter of the user's, are returned unchanged; so is a stack when
    the training rows hold fewer groups than its folds.
    """
    stack = isinstance(estimator, (LateFusionClassifier, LateFusionRegressor))
    if not (
        stack and estimator.voting == "stack" and isinstance(estimator.cv, Integral)
    ):
        return estimator
    k = estimator.cv
    if len(np.unique(groups)) < k:
        return estimator
    splitter = _splitter(k, task, groups, random_state)
    folds = list(splitter.split(np.zeros((len(y), 1)), y, groups))
    return estimator.set_params(cv=folds)


def _progress_bar(total, show):
    tqdm = import_optional("tqdm.auto", "tqdm") if show else None
    if tqdm is None:
        return None
    return tqdm(total=total, unit="fit", desc="compare_fusion")


def _splitter(cv, task, groups, random_state):
    """``cv`` folds, shuffled and seeded, stratified and grouped as fits."""
    if groups is None:
        kind = StratifiedKFold if task == "classification" else KFold
    else:
        kind = StratifiedGroupKFold if task == "classification" else GroupKFold
    return kind(cv, shuffle=True, random_state=random_state)


def _record(name, family, folds, metrics, n_folds):
    """Return a row of the table and its error from ``(fold, result)`` pairs.

    A result is a dict of scores and times, or the failure as a string;
    ``metrics`` maps each score name to its key in a result (see
    :func:`_metric_keys`). The error is the first fold's failure, or None.
    """
    results = [result for _, result in sorted(folds, key=lambda pair: pair[0])]
    errors = [result for result in results if isinstance(result, str)]
    record = {"strategy": name, "family": family}
    for metric, key in metrics.items():
        values = np.array([np.nan] if errors else [r[key] for r in results])
        record[f"mean_{metric}"] = float(values.mean())
        record[f"std_{metric}"] = float(values.std())
    for key in ("fit_time", "score_time"):
        record[key] = np.nan if errors else float(np.mean([r[key] for r in results]))
    if errors:
        warnings.warn(
            f"strategy {name!r} failed on {len(errors)} of {n_folds} folds "
            f"({errors[0]}); it is ranked last, with NaN scores.",
            FitFailedWarning,
            stacklevel=3,
        )
    return record, errors[0] if errors else None


def compare_fusion(
    X,
    y,
    blocks="auto",
    strategies="default",
    cv=5,
    scoring=None,
    n_jobs=None,
    random_state=None,
    *,
    task=None,
    groups=None,
    progress=False,
):
    """Cross-validate fusion strategies side by side on the same folds.

    A strategy that fails on a fold does not stop the others: its row has
    NaN scores and the failure in ``error``, it ranks last, and a
    :class:`~sklearn.exceptions.FitFailedWarning` names it.

    Parameters
    ----------
    X : {array-like, sparse matrix, DataFrame} of shape (n_samples, n_features)
        The modalities side by side, numbers only (dense for the default
        strategies, which centre each modality). A row lacks a modality
        where its block is all NaN: every default strategy takes such rows
        (see :func:`default_strategies`); NaN in part of a block, or in
        every block of a row, is an error. Columns outside every block are
        ignored: the strategies see ``X`` without them (so give a custom
        strategy its blocks by column name, or by position among the
        modality columns).
    y : array-like of shape (n_samples,)
        Class labels or continuous targets, none missing.
    blocks : "auto", int, list, tuple or dict, default="auto"
        The modality blocks, in any form :func:`mmfuse.resolve_blocks` accepts.
    strategies : "default", str, list or dict, default="default"
        What to compare: ``"default"`` (every strategy of
        :func:`default_strategies` that is available), or a list whose items
        are a default strategy's name (``"late:soft"``), a family name
        (``"single"`` gives every modality alone), an estimator, or a
        ``(name, estimator)`` pair; or a dict from name to estimator.
    cv : int, cross-validation generator or iterable, default=5
        An int ``k`` is ``k`` shuffled folds seeded by ``random_state``:
        :class:`~sklearn.model_selection.StratifiedKFold` for classification
        and :class:`~sklearn.model_selection.KFold` for regression, or with
        ``groups`` :class:`~sklearn.model_selection.StratifiedGroupKFold` and
        :class:`~sklearn.model_selection.GroupKFold` (no group on both sides
        of a fold). ``k`` must be at least 2 and at most the number of rows,
        of groups and, for classification, of rows of the rarest class.
        Otherwise as :func:`~sklearn.model_selection.cross_validate` takes
        it. Every strategy is scored on the same folds.
    scoring : str, callable, list or dict, default=None
        As :func:`~sklearn.model_selection.cross_validate` takes it; accuracy
        for classification and R² for regression when None. The table is
        ranked by the first score.
    n_jobs : int, default=None
        Parallel jobs over the (strategy, fold) fits, through joblib: under
        ``joblib.parallel_config(backend="dask")`` with a
        ``dask.distributed.Client`` they run on that Dask cluster, with the
        same table (``mmfuse compare --scheduler``).
    random_state : int, RandomState instance or None, default=None
        Seed of the folds and of the default strategies that draw random
        numbers; with an int, numpy's global generator is left untouched.
    task : {"classification", "regression"}, default=None
        Inferred from ``y`` when None, by the rule of :func:`infer_task`
        (which warns when the choice is a guess).
    groups : array-like of shape (n_samples,), default=None
        Group labels of the rows (patients, sessions, subjects), passed to
        the splitter's ``split``; see ``cv``. The inner folds of a stacking
        strategy (a stacking ``LateFusion*`` whose ``cv`` is an int) are
        grouped too, within each training fold, so that its members'
        out-of-fold outputs, which the stacker learns from, come from groups
        they did not see.
    progress : bool, default=False
        Show a progress bar (needs tqdm; without it there is no bar).

    Returns
    -------
    table : DataFrame or list of dict
        One row a strategy, best first: ``rank``, ``strategy``, ``family``,
        ``mean_<score>`` and ``std_<score>`` over the folds for each score,
        ``fit_time`` and ``score_time`` (mean seconds a fold), ``task``
        (``"classification"`` or ``"regression"``, the same in every row)
        and ``error``: the first failure of the strategy, as its exception
        type and the first line of its message, or missing (None in
        records, NaN in a DataFrame) where it ran. A pandas DataFrame when pandas is
        installed, else a list of records.

    Raises
    ------
    ValueError
        Before any fit, for bad data (a non-numeric column, a missing
        target, rows lacking every modality: see ``X`` and ``y``), bad
        blocks, an unknown strategy or scorer, or a ``cv`` out of range.

    See Also
    --------
    default_strategies : The strategies compared by default.
    infer_task : The rule that tells classification from regression.

    Examples
    --------
    >>> from mmfuse.datasets import load_mfeat
    >>> from mmfuse.fusion import compare_fusion
    >>> bunch = load_mfeat(views=["kar", "zer"])
    >>> table = compare_fusion(
    ...     bunch.data[::4], bunch.target[::4], bunch.blocks,
    ...     strategies=["single", "late:soft"], cv=3, random_state=0,
    ... )
    >>> table[["strategy", "family", "mean_accuracy"]].round(3)
         strategy  family  mean_accuracy
    0   late:soft    late          0.944
    1  single:kar  single          0.940
    2  single:zer  single          0.804
    """
    X, y, groups, resolved, _ = check_data(X, y, blocks, groups)
    if task is None:
        task = infer_task(y)
    elif task not in ("classification", "regression"):
        raise ValueError(
            f"task={task!r} must be 'classification', 'regression' or None."
        )
    if task == "regression":
        if _numbers(y) is None:
            raise ValueError(
                f"task='regression' needs numbers in y, but it holds labels "
                f"such as {y[0]!r}; use task='classification' or None."
            )
        y = _numbers(y)
    if task == "classification" and len(np.unique(y)) < 2:
        raise ValueError(
            f"y has a single class ({np.unique(y).tolist()}); classification "
            f"needs at least two."
        )
    metrics = _metric_keys(scoring, task)
    defaults = default_strategies(
        resolved, task, random_state=random_state, n_samples=X.shape[0]
    )
    chosen = _select_strategies(strategies, defaults)
    if sp.issparse(X) and any(strategy in defaults for strategy in chosen):
        raise ValueError(
            "X is sparse, but the default strategies standardize (centre) each "
            "modality, which needs dense data: pass X.toarray(), or only "
            "strategies of your own."
        )
    if isinstance(cv, Integral) and not isinstance(cv, bool):
        check_n_splits(cv, y, task, groups)
        cv = _splitter(cv, task, groups, random_state)
    cv = check_cv(cv, y, classifier=task == "classification")
    splits = list(cv.split(X, y, groups))
    scorer = next(iter(metrics)) if scoring is None else scoring
    jobs = [
        delayed(_run_fold)(
            name,
            fold,
            clone(estimator)
            if groups is None
            else _grouped_inner_folds(
                clone(estimator), y[train], groups[train], task, random_state
            ),
            X,
            y,
            train,
            test,
            scorer,
        )
        for name, _, estimator in chosen
        for fold, (train, test) in enumerate(splits)
    ]
    bar = _progress_bar(len(jobs), progress)
    results = {name: [] for name, _, _ in chosen}
    parallel = Parallel(n_jobs=n_jobs, return_as="generator_unordered")
    for name, fold, result in parallel(jobs):
        results[name].append((fold, result))
        if bar is not None:
            bar.set_postfix_str(name)
            bar.update()
    if bar is not None:
        bar.close()
    rows = []
    for name, family, _ in chosen:  # a loop: the warnings' stacklevel is the caller
        rows.append(_record(name, family, results[name], metrics, len(splits)))
    first = f"mean_{next(iter(metrics))}"
    # Failed strategies last; then best first (a NaN score after the others).
    rows.sort(
        key=lambda row: (row[1] is not None, np.isnan(row[0][first]), -row[0][first])
    )
    records = [
        {"rank": rank, **record, "task": task, "error": error}
        for rank, (record, error) in enumerate(rows, 1)
    ]
    frame = import_optional("pandas", "DataFrame")
    return records if frame is None else frame.from_records(records)
