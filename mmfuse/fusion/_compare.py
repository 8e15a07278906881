"""Cross-validate fusion strategies side by side on the same folds."""

import importlib

import numpy as np
from sklearn.base import clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.model_selection import KFold, StratifiedKFold, check_cv, cross_validate
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC, SVR
from sklearn.utils.multiclass import type_of_target
from sklearn.utils.parallel import Parallel, delayed

from mmfuse._blocks import ModalitySelector, resolve_blocks
from mmfuse.fusion._early import make_early_fusion
from mmfuse.fusion._late import LateFusionClassifier, LateFusionRegressor

__all__ = ["compare_fusion", "default_strategies"]


def _optional(module: str, name: str):
    """``module.name`` when it imports (a later piece, an optional extra)."""
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return None


def _kernel(task: str):
    """Return an RBF kernel machine (targets standardized for regression).

    The classifier's ``decision_function`` gives its one-vs-one scores, which
    keep more for a stacker than their one-vs-rest summary.
    """
    if task == "classification":
        return SVC(C=10.0, decision_function_shape="ovo")
    return make_pipeline(StandardScaler(), SVR())


def _probabilistic(task: str):
    """Return a member for a soft vote: a calibrated kernel machine.

    The SVC's probabilities come from temperature scaling of its 3-fold
    out-of-fold scores (one parameter for all classes; as accurate as a
    sigmoid a class here, and several times cheaper to fit). Regression has
    no probabilities: a linear model.
    """
    if task == "classification":
        svc = CalibratedClassifierCV(
            SVC(C=10.0), method="temperature", cv=3, ensemble=False
        )
        return make_pipeline(StandardScaler(), svc)
    return make_pipeline(StandardScaler(), _linear(task))


def _neighbours(task: str):
    """Return a cheap member unlike the kernel machine: weighted 10-NN."""
    if task == "classification":
        return make_pipeline(
            StandardScaler(), KNeighborsClassifier(10, weights="distance")
        )
    return make_pipeline(StandardScaler(), KNeighborsRegressor(10, weights="distance"))


def _stacker(task: str):
    """Return the final estimator of the default stacks.

    For classification, a logistic regression on standardized member
    outputs (one-vs-one scores and probabilities differ in scale), with a
    strong penalty against the many correlated columns; for regression, the
    late-fusion default (:class:`~sklearn.linear_model.RidgeCV`).
    """
    if task == "classification":
        return make_pipeline(StandardScaler(), _linear(task, 0.1))
    return None


def _linear(task: str, C: float = 1.0):
    """Return a linear model; ``C`` is the logistic regression's inverse penalty."""
    if task == "classification":
        return LogisticRegression(C=C, max_iter=2000)
    return RidgeCV(alphas=np.logspace(-3, 3, 13))


def default_strategies(blocks, task="classification", *, random_state=None):
    """List the default fusion strategies as ``(name, family, estimator)``.

    Names are ``"<family>:<variant>"`` (``"single:<modality>"`` for each
    modality alone). Subspace strategies appear when :mod:`mmfuse.cca`
    provides ``MCCA``/``GCCA``, the deep one when :mod:`mmfuse.deep` provides
    ``MLPFusionClassifier``/``MLPFusionRegressor`` (the ``deep`` extra).

    Parameters
    ----------
    blocks : dict of {str: list of int}
        Each modality's column positions in ``X`` (:func:`compare_fusion`
        resolves any form of ``blocks`` into this).
    task : {"classification", "regression"}, default="classification"
        What the strategies predict.
    random_state : int, RandomState instance or None, default=None
        Seed of the strategies that draw random numbers.

    Returns
    -------
    strategies : list of (str, str, estimator) tuples
        Name, family and an unfitted estimator.

    Examples
    --------
    >>> from mmfuse.fusion import default_strategies
    >>> blocks = {"a": [0, 1], "b": [2, 3, 4]}
    >>> names = [name for name, _, _ in default_strategies(blocks)]
    >>> names[:5]
    ['single:a', 'single:b', 'early:linear', 'early:kernel', 'late:soft']
    """
    classify = task == "classification"
    modalities = list(blocks)
    # A member over several modalities sees their columns side by side.
    widths = {name: len(columns) for name, columns in blocks.items()}
    late = LateFusionClassifier if classify else LateFusionRegressor
    strategies = [
        (
            f"single:{name}",
            "single",
            make_pipeline(
                ModalitySelector(blocks=blocks, modality=name),
                StandardScaler(),
                _kernel(task),
            ),
        )
        for name in modalities
    ]
    strategies += [
        (
            "early:linear",
            "early",
            make_early_fusion(_linear(task), blocks, block_scaling=True),
        ),
        (
            "early:kernel",
            "early",
            make_early_fusion(_kernel(task), blocks, block_scaling=True),
        ),
        (
            "late:soft" if classify else "late:mean",
            "late",
            late(
                [(name, _probabilistic(task), name) for name in modalities],
                blocks=blocks,
            ),
        ),
    ]
    # A kernel machine a modality, stacked with a neighbours member a
    # modality (stacking) or with an early-fusion member (hierarchical). The
    # stacker learns from 3-fold out-of-fold outputs: on mfeat as accurate as
    # 5-fold for stacking, and much cheaper with these many members.
    kernels = [
        (name, make_pipeline(StandardScaler(), _kernel(task)), name)
        for name in modalities
    ]
    neighbours = [(f"{name}_nn", _neighbours(task), name) for name in modalities]
    early = make_early_fusion(_kernel(task), widths, block_scaling=True)
    stack = {
        "blocks": blocks,
        "voting": "stack",
        "final_estimator": _stacker(task),
        "cv": 3,
    }
    strategies += [
        ("stacking", "stacking", late([*kernels, *neighbours], **stack)),
        (
            "hierarchical",
            "hierarchical",
            late([*kernels, ("early", early, modalities)], **stack),
        ),
    ]
    strategies += _subspace_strategies(blocks, task)
    strategies += _deep_strategies(blocks, task, random_state)
    return strategies


def _subspace_strategies(blocks, task):
    """Return MCCA/GCCA variates then a kernel machine, when mmfuse.cca has them."""
    strategies = []
    # Components up to the narrowest modality's width, at most 10 a modality.
    n_components = min(10, *(len(columns) for columns in blocks.values()))
    for name in ("MCCA", "GCCA"):
        subspace = _optional("mmfuse.cca", name)
        if subspace is not None:
            model = subspace(
                n_components=n_components, blocks=blocks, regularization=0.1
            )
            strategies.append(
                (
                    f"subspace:{name.lower()}",
                    "subspace",
                    make_pipeline(
                        StandardScaler(), model, StandardScaler(), _kernel(task)
                    ),
                )
            )
    return strategies


def _deep_strategies(blocks, task, random_state):
    """Return the MLP fusion head, cheap enough for a quick comparison."""
    name = "MLPFusionClassifier" if task == "classification" else "MLPFusionRegressor"
    head = _optional("mmfuse.deep", name)
    if head is None:
        return []
    model = head(blocks=blocks, max_epochs=20, random_state=random_state, verbose=0)
    return [("deep:mlp", "deep", model)]


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


def _task(y, task):
    if task is not None:
        if task not in ("classification", "regression"):
            raise ValueError(
                f"task={task!r} must be 'classification', 'regression' or None."
            )
        return task
    kind = type_of_target(y)
    if kind in ("binary", "multiclass"):
        return "classification"
    if kind == "continuous":
        return "regression"
    raise ValueError(
        f"y is of type {kind!r}; compare_fusion handles one column of class "
        f"labels or of continuous targets."
    )


def _metric_names(scoring, task):
    if scoring is None:
        return {"accuracy" if task == "classification" else "r2": None}
    if isinstance(scoring, str):
        return {scoring: None}
    if callable(scoring):
        return {"score": None}
    if isinstance(scoring, dict):
        return dict.fromkeys(scoring)
    return dict.fromkeys(scoring)


def _run_fold(name, estimator, X, y, train, test, scoring):
    result = cross_validate(
        estimator, X, y, cv=[(train, test)], scoring=scoring, error_score="raise"
    )
    return name, {key: float(value[0]) for key, value in result.items()}


def _progress_bar(total, show):
    if not show:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit="fit", desc="compare_fusion")


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
    progress=False,
):
    """Cross-validate fusion strategies side by side on the same folds.

    Parameters
    ----------
    X : {array-like, DataFrame} of shape (n_samples, n_features)
        The modalities side by side.
    y : array-like of shape (n_samples,)
        Class labels or continuous targets.
    blocks : "auto", int, list, tuple or dict, default="auto"
        The modality blocks, in any form :func:`mmfuse.resolve_blocks` accepts.
    strategies : "default", str, list or dict, default="default"
        What to compare: ``"default"`` (every strategy of
        :func:`default_strategies` that is available), or a list whose items
        are a default strategy's name (``"late:soft"``), a family name
        (``"single"`` gives every modality alone), an estimator, or a
        ``(name, estimator)`` pair; or a dict from name to estimator.
    cv : int, cross-validation generator or iterable, default=5
        An int ``k`` is ``k`` shuffled folds (stratified for classification)
        seeded by ``random_state``; otherwise as
        :func:`~sklearn.model_selection.cross_validate` takes it. Every
        strategy is scored on the same folds.
    scoring : str, callable, list or dict, default=None
        As :func:`~sklearn.model_selection.cross_validate` takes it; accuracy
        for classification and R² for regression when None. The table is
        ranked by the first score.
    n_jobs : int, default=None
        Parallel jobs over the (strategy, fold) fits.
    random_state : int, RandomState instance or None, default=None
        Seed of the folds and of the default strategies that draw random
        numbers.
    task : {"classification", "regression"}, default=None
        Inferred from ``y`` when None (continuous targets are regression).
    progress : bool, default=False
        Show a progress bar (needs tqdm; without it there is no bar).

    Returns
    -------
    table : DataFrame or list of dict
        One row a strategy, best first: ``rank``, ``strategy``, ``family``,
        ``mean_<score>`` and ``std_<score>`` over the folds for each score,
        ``fit_time`` and ``score_time`` (mean seconds a fold). A pandas
        DataFrame when pandas is installed, else a list of records.

    See Also
    --------
    default_strategies : The strategies compared by default.

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
    if not hasattr(X, "shape"):
        X = np.asarray(X)
    names = getattr(X, "columns", None)
    indices, modalities = resolve_blocks(
        blocks, X.shape[1], None if names is None else [str(c) for c in names]
    )
    resolved = {
        name: columns.tolist()
        for name, columns in zip(modalities, indices, strict=True)
    }
    task = _task(y, task)
    if task == "classification" and len(np.unique(np.asarray(y))) < 2:
        raise ValueError(
            f"y has a single class ({np.unique(np.asarray(y)).tolist()}); "
            f"classification needs at least two."
        )
    chosen = _select_strategies(
        strategies, default_strategies(resolved, task, random_state=random_state)
    )
    if isinstance(cv, int):
        splitter = StratifiedKFold if task == "classification" else KFold
        cv = splitter(cv, shuffle=True, random_state=random_state)
    splits = list(check_cv(cv, y, classifier=task == "classification").split(X, y))
    metrics = _metric_names(scoring, task)
    scorer = list(metrics)[0] if scoring is None else scoring
    jobs = [
        delayed(_run_fold)(name, clone(estimator), X, y, train, test, scorer)
        for name, _, estimator in chosen
        for train, test in splits
    ]
    bar = _progress_bar(len(jobs), progress)
    results = {name: [] for name, _, _ in chosen}
    for name, result in Parallel(n_jobs=n_jobs, return_as="generator_unordered")(jobs):
        results[name].append(result)
        if bar is not None:
            bar.set_postfix_str(name)
            bar.update()
    if bar is not None:
        bar.close()
    records = []
    for name, family, _ in chosen:
        folds = results[name]
        record = {"strategy": name, "family": family}
        for metric in metrics:
            key = "test_score" if len(metrics) == 1 else f"test_{metric}"
            values = np.array([fold[key] for fold in folds])
            record[f"mean_{metric}"] = float(values.mean())
            record[f"std_{metric}"] = float(values.std())
        record["fit_time"] = float(np.mean([fold["fit_time"] for fold in folds]))
        record["score_time"] = float(np.mean([fold["score_time"] for fold in folds]))
        records.append(record)
    first = f"mean_{list(metrics)[0]}"
    records.sort(key=lambda record: -record[first])
    records = [{"rank": rank, **record} for rank, record in enumerate(records, 1)]
    frame = _optional("pandas", "DataFrame")
    return records if frame is None else frame.from_records(records)
