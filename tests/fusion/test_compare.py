import importlib
import warnings
from importlib.util import find_spec

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn import config_context
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.datasets import (
    load_breast_cancer,
    load_diabetes,
    load_digits,
    load_iris,
    load_wine,
)
from sklearn.exceptions import FitFailedWarning
from sklearn.kernel_approximation import Nystroem
from sklearn.kernel_ridge import KernelRidge
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import make_scorer, top_k_accuracy_score
from sklearn.model_selection import (
    GroupKFold,
    StratifiedGroupKFold,
    StratifiedKFold,
    cross_val_score,
)
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from mmfuse import ModalitySelector
from mmfuse.datasets import load_mfeat, make_multiview
from mmfuse.fusion import (
    LateFusionClassifier,
    compare_fusion,
    default_strategies,
    infer_task,
)


@pytest.fixture(scope="module")
def mfeat():
    bunch = load_mfeat(views=["kar", "zer", "mor"])
    return bunch.data[::4], bunch.target[::4], bunch.blocks


@pytest.fixture(scope="module")
def cancer():
    """Breast cancer as three modalities; 'error' missing in 50 rows."""
    X, y = load_breast_cancer(return_X_y=True)
    X[np.random.default_rng(0).choice(len(X), 50, replace=False), 10:20] = np.nan
    return X, y, {"mean": slice(0, 10), "error": slice(10, 20), "worst": slice(20, 30)}


@pytest.fixture(scope="module")
def diabetes():
    X, y = load_diabetes(return_X_y=True, scaled=False)
    return X, y, {"demo": [0, 1, 2, 3], "serum": list(range(4, 10))}


def test_table_ranks_strategies_on_the_same_folds(mfeat):
    X, y, blocks = mfeat
    mine = make_pipeline(StandardScaler(), LogisticRegression(max_iter=300))
    table = compare_fusion(
        X,
        y,
        blocks,
        strategies=["single", "late:soft", ("mine", mine)],
        cv=3,
        random_state=0,
    )
    assert list(table.columns) == [
        "rank",
        "strategy",
        "family",
        "mean_accuracy",
        "std_accuracy",
        "fit_time",
        "score_time",
        "task",
        "error",
    ]
    assert list(table["rank"]) == [1, 2, 3, 4, 5]
    assert table["mean_accuracy"].is_monotonic_decreasing
    assert (table["task"] == "classification").all()
    assert table["error"].isna().all()
    families = dict(zip(table["strategy"], table["family"], strict=True))
    assert families == {
        "single:kar": "single",
        "single:zer": "single",
        "single:mor": "single",
        "late:soft": "late",
        "mine": "custom",
    }
    # the same folds as a plain cross_val_score with StratifiedKFold(seed 0);
    # on complete data the missing-modality rule changes nothing
    cv = StratifiedKFold(3, shuffle=True, random_state=0)
    kar = make_pipeline(
        ModalitySelector(blocks, modality="kar"), StandardScaler(), SVC(C=10.0)
    )
    expected = cross_val_score(kar, X, y, cv=cv)
    row = table[table["strategy"] == "single:kar"].iloc[0]
    assert row["mean_accuracy"] == pytest.approx(expected.mean())
    assert row["std_accuracy"] == pytest.approx(expected.std())
    # late fusion of the three modalities beats the weakest two alone
    scores = dict(zip(table["strategy"], table["mean_accuracy"], strict=True))
    assert scores["late:soft"] > max(scores["single:zer"], scores["single:mor"])


def test_regression_and_several_scores():
    X, latent = make_multiview(120, [4, 5], n_latent=2, noise=0.3, random_state=0)
    table = compare_fusion(
        X,
        latent[:, 0],
        [4, 5],
        strategies=["late", "early:linear"],
        cv=3,
        scoring=["r2", "neg_mean_absolute_error"],
        random_state=0,
    )
    assert set(table["strategy"]) == {"late:mean", "early:linear"}
    assert {"mean_r2", "std_neg_mean_absolute_error"} <= set(table.columns)
    assert (table["mean_r2"] > 0.5).all()
    assert (table["task"] == "regression").all()


@pytest.mark.parametrize(
    "scoring", [["accuracy"], {"acc": "accuracy"}, ("accuracy",)], ids=repr
)
def test_one_score_in_a_list_or_dict_is_named_as_given(scoring):
    # cross_validate names a list's or dict's one score test_<name>, not
    # test_score: reading the latter raised KeyError.
    X, y = load_iris(return_X_y=True)
    table = compare_fusion(
        X, y, [2, 2], strategies=["single"], cv=3, scoring=scoring, random_state=0
    )
    name = "acc" if isinstance(scoring, dict) else "accuracy"
    alone = compare_fusion(X, y, [2, 2], strategies=["single"], cv=3, random_state=0)
    np.testing.assert_array_equal(table[f"mean_{name}"], alone["mean_accuracy"])


def test_default_strategies_under_global_pandas_output():
    # Four default strategies failed under transform_output="pandas", the
    # others warned (the missing indicators had no feature names).
    X, y = load_wine(return_X_y=True)
    X[::5, :6] = np.nan  # some rows lack a modality
    blocks = {"chem": list(range(6)), "phys": list(range(6, 13))}
    expected = compare_fusion(X, y, blocks, cv=3, random_state=0)
    with config_context(transform_output="pandas"), warnings.catch_warnings():
        warnings.simplefilter("error")
        table = compare_fusion(X, y, blocks, cv=3, random_state=0)
    assert table["error"].isna().all()
    pd.testing.assert_frame_equal(
        table[["strategy", "mean_accuracy"]], expected[["strategy", "mean_accuracy"]]
    )


def test_decision_scores_are_one_a_class():
    # The SVC strategies gave one-vs-one scores, which scorers read as
    # per-class scores with three classes: top-1 accuracy from the scores
    # came out near 0.3 beside an accuracy near 0.97.
    X, y = load_wine(return_X_y=True)
    top1 = make_scorer(
        top_k_accuracy_score,
        k=1,
        response_method=("decision_function", "predict_proba"),
    )
    table = compare_fusion(
        X,
        y,
        [5, 8],
        strategies=["single", "early:kernel", "subspace"],
        cv=3,
        scoring={"acc": "accuracy", "top1": top1},
        random_state=0,
    )
    np.testing.assert_allclose(table["mean_top1"], table["mean_acc"])


def test_regression_targets_are_standardized(diabetes):
    # An RBF machine on the raw target (25 to 346) scored R^2 0.146 for
    # demo; on the standardized target it reaches the linear model's level.
    X, y, blocks = diabetes
    table = compare_fusion(
        X, y, blocks, strategies=["single", "early"], cv=5, random_state=0
    )
    scores = dict(zip(table["strategy"], table["mean_r2"], strict=True))
    assert scores["single:demo"] > 0.32
    assert scores["single:serum"] > 0.25
    assert scores["early:kernel"] > 0.45 and scores["early:linear"] > 0.45


def test_regression_kernels_past_10000_rows_use_nystroem_features():
    # Exact kernel ridge holds an n x n kernel: 20 GB at 50,000 rows, so
    # compare_fusion on a large regression table died out of memory.
    X, latent = make_multiview(12_000, [4, 5], n_latent=2, noise=0.3, random_state=0)
    y = np.sin(latent[:, 0]) + latent[:, 1]
    exact = default_strategies({"a": [0]}, "regression", n_samples=10_000)
    large = default_strategies({"a": [0]}, "regression", n_samples=10_001)
    assert isinstance(exact[0][2][-1].regressor, KernelRidge)
    assert isinstance(large[0][2][-1].regressor[0], Nystroem)
    table = compare_fusion(
        X, y, [4, 5], strategies=["early:kernel"], cv=2, random_state=0
    )
    nystroem = table["mean_r2"].iloc[0]
    # Beside exact kernel ridge on rows it can hold: the same model.
    rows = slice(0, 3000)
    small = compare_fusion(
        X[rows], y[rows], [4, 5], strategies=["early:kernel"], cv=2, random_state=0
    )["mean_r2"].iloc[0]
    assert nystroem > 0.9 and abs(nystroem - small) < 0.03


@pytest.mark.parametrize(
    ("y", "task"),
    [
        (load_diabetes().target, "regression"),  # integers 25..346 as floats
        (load_iris().target, "classification"),
        (load_digits().target, "classification"),
        (load_breast_cancer().target, "classification"),
        (np.array(["benign", "malignant"] * 10), "classification"),
        (np.array([0.5, 1.0, 2.0, 0.5]), "regression"),
        (pd.Series([1, 2, 3, 1], dtype="category"), "classification"),
    ],
)
def test_infer_task(y, task):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert infer_task(y) == task


def test_infer_task_says_when_it_guesses():
    # 20 integer codes, 10 rows each: class codes or a score out of 20
    y = np.repeat(np.arange(20), 10)
    with pytest.warns(UserWarning, match=r"task='regression'.*task='classification'"):
        assert infer_task(y) == "regression"


class _FailsOnBigFolds(ClassifierMixin, BaseEstimator):
    """A classifier that fails when trained on more than ``limit`` rows."""

    def __init__(self, limit=100):
        self.limit = limit

    def fit(self, X, y):
        if len(X) > self.limit:
            raise RuntimeError(f"too many rows: {len(X)}\nsecond line")
        self.classes_ = np.unique(y)
        return self

    def predict(self, X):
        return np.full(len(X), self.classes_[0])


def test_a_failing_strategy_is_a_row_ranked_last(mfeat):
    X, y, blocks = mfeat
    with pytest.warns(FitFailedWarning, match=r"strategy 'fragile' failed on 3 of 3"):
        table = compare_fusion(
            X,
            y,
            blocks,
            strategies=[("fragile", _FailsOnBigFolds()), "single:mor"],
            cv=3,
            random_state=0,
        )
    assert list(table["strategy"]) == ["single:mor", "fragile"]
    assert list(table["rank"]) == [1, 2]
    failed = table.iloc[1]
    assert failed["error"] == "RuntimeError: too many rows: 333"
    assert np.isnan(failed["mean_accuracy"]) and np.isnan(failed["std_accuracy"])
    assert table.iloc[0]["mean_accuracy"] > 0.6


def test_every_default_strategy_takes_missing_modalities(cancer):
    # The whole default set, once: each strategy scores rows that lack
    # 'error' (50 of 569), and a seeded run leaves numpy's global RNG alone.
    X, y, blocks = cancer
    state = np.random.get_state()
    with warnings.catch_warnings():
        warnings.simplefilter("error", FitFailedWarning)
        table = compare_fusion(X, y, blocks, cv=3, random_state=0)
    after = np.random.get_state()
    assert after[0] == state[0] and np.array_equal(after[1], state[1])
    assert after[2:] == state[2:]
    names = {name for name, _, _ in default_strategies(dict.fromkeys(blocks, [0]))}
    assert set(table["strategy"]) == names
    assert table["error"].isna().all()
    scores = dict(zip(table["strategy"], table["mean_accuracy"], strict=True))
    assert all(np.isfinite(s) and s > 0.75 for s in scores.values()), scores
    best_single = max(scores["single:mean"], scores["single:worst"])
    assert scores["late:soft"] > best_single - 0.02


def test_subspace_handles_missing_modalities_by_imputation(cancer):
    X, y, blocks = cancer
    table = compare_fusion(
        X, y, blocks, strategies=["subspace:mcca"], cv=3, random_state=0
    )
    assert table.iloc[0]["mean_accuracy"] > 0.9


def test_a_constant_modality_fails_the_subspace_strategies_only():
    X, y = load_iris(return_X_y=True)
    X = np.column_stack([X, np.ones(len(X))])
    blocks = {"sepal": [0, 1], "petal": [2, 3], "const": [4]}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table = compare_fusion(
            X, y, blocks, strategies=["single", "subspace"], cv=3, random_state=0
        )
    failures = [w for w in caught if w.category is FitFailedWarning]
    assert [str(w.message)[:48] for w in failures] == [
        "strategy 'subspace:mcca' failed on 3 of 3 folds ",
        "strategy 'subspace:gcca' failed on 3 of 3 folds ",
    ]
    assert failures[0].filename == __file__  # points at the caller
    failed = table[table["error"].notna()]
    assert set(failed["strategy"]) == {"subspace:mcca", "subspace:gcca"}
    assert failed["error"].str.contains("modality 'const'").all()
    assert list(table["rank"].iloc[-2:]) == [4, 5]
    scores = dict(zip(table["strategy"], table["mean_accuracy"], strict=True))
    assert scores["single:petal"] > 0.9


def test_groups_keep_each_group_in_one_fold(diabetes):
    X, y, blocks = diabetes
    groups = np.arange(len(y)) % 40  # e.g. 40 patients
    selector = make_pipeline(
        ModalitySelector(blocks, modality="demo"), StandardScaler(), SVC(C=10.0)
    )
    cv = GroupKFold(4)
    table = compare_fusion(
        X,
        y > 140,
        blocks,
        strategies=[("svc", selector)],
        cv=cv,
        groups=groups,
    )
    expected = cross_val_score(selector, X, y > 140, cv=cv, groups=groups)
    assert table.iloc[0]["mean_accuracy"] == pytest.approx(expected.mean())
    # an int cv with groups: stratified, grouped, shuffled by random_state
    table = compare_fusion(
        X,
        y > 140,
        blocks,
        strategies=[("svc", selector)],
        cv=4,
        groups=groups,
        random_state=0,
    )
    folds = StratifiedGroupKFold(4, shuffle=True, random_state=0)
    expected = cross_val_score(selector, X, y > 140, cv=folds, groups=groups)
    assert table.iloc[0]["mean_accuracy"] == pytest.approx(expected.mean())
    with pytest.raises(ValueError, match=r"cv=5 folds need at least 5 groups.*4"):
        compare_fusion(X, y, blocks, strategies="single", groups=np.arange(442) % 4)


class _GroupSpy(ClassifierMixin, BaseEstimator):
    """Fails to predict rows of a group it was fitted on (column 0: the group)."""

    def fit(self, X, y):
        self.seen_ = set(np.asarray(X)[:, 0])
        self.model_ = make_pipeline(StandardScaler(), LogisticRegression())
        self.model_.fit(X[:, 1:], y)
        self.classes_ = self.model_.classes_
        return self

    def predict_proba(self, X):
        leaked = self.seen_ & set(np.asarray(X)[:, 0])
        if leaked:
            raise AssertionError(f"predicted groups it saw: {sorted(leaked)[:3]}")
        return self.model_.predict_proba(X[:, 1:])

    def predict(self, X):
        return self.classes_[self.predict_proba(X).argmax(1)]


def test_groups_also_split_the_inner_folds_of_a_stack(diabetes):
    X, y, _ = diabetes
    groups = np.arange(len(y)) % 40
    X = np.column_stack([groups, X[:, :4], groups, X[:, 4:]])  # a group column each
    blocks = {"demo": [0, 1, 2, 3, 4], "serum": [5, 6, 7, 8, 9, 10, 11]}
    stack = LateFusionClassifier(
        [("d", _GroupSpy(), "demo"), ("s", _GroupSpy(), "serum")],
        blocks=blocks,
        voting="stack",
        cv=3,
    )
    strategies = [
        ("stack", stack),
        (
            "late:soft",
            LateFusionClassifier(
                [("d", _GroupSpy(), "demo"), ("s", _GroupSpy(), "serum")], blocks=blocks
            ),
        ),
    ]
    kwargs = {"strategies": strategies, "cv": 4, "random_state": 0}
    table = compare_fusion(X, y > 140, blocks, groups=groups, **kwargs)
    assert table["error"].isna().all(), table["error"].tolist()
    assert (table["mean_accuracy"] > 0.6).all()
    # without groups, the stack's inner folds (and the outer ones) share groups
    with pytest.warns(FitFailedWarning):
        table = compare_fusion(X, y > 140, blocks, **kwargs)
    assert table["error"].str.contains("predicted groups it saw").all()
    # a splitter of the user's is kept: here one that mixes the groups
    stack.set_params(cv=StratifiedKFold(3))
    with pytest.warns(FitFailedWarning):
        table = compare_fusion(X, y > 140, blocks, groups=groups, **kwargs)
    errors = dict(zip(table["strategy"], table["error"], strict=True))
    assert "predicted groups it saw" in errors["stack"]
    assert pd.isna(errors["late:soft"])


def test_columns_outside_the_blocks_are_ignored():
    bunch = load_iris(as_frame=True)
    X = bunch.data.set_axis(["s__l", "s__w", "p__l", "p__w"], axis=1)
    X.insert(0, "id", [f"P{i}" for i in range(len(X))])  # text, no prefix
    table = compare_fusion(X, bunch.target, strategies="single", cv=3)
    assert set(table["strategy"]) == {"single:s", "single:p"}
    assert table["mean_accuracy"].min() > 0.7


def test_records_without_pandas(mfeat, monkeypatch):
    X, y, blocks = mfeat
    import_module = importlib.import_module

    def without_pandas(name, *args):
        if name == "pandas":
            raise ImportError("No module named 'pandas'")
        return import_module(name, *args)

    monkeypatch.setattr(importlib, "import_module", without_pandas)
    table = compare_fusion(X, y, blocks, strategies="single:kar", cv=2)
    assert isinstance(table, list) and table[0]["strategy"] == "single:kar"
    assert 0.8 < table[0]["mean_accuracy"] <= 1
    assert table[0]["error"] is None and table[0]["task"] == "classification"


def test_default_set_follows_what_is_installed():
    names = [name for name, _, _ in default_strategies({"a": [0, 1], "b": [2, 3]})]
    assert names[:7] == [
        "single:a",
        "single:b",
        "early:linear",
        "early:kernel",
        "late:soft",
        "stacking",
        "hierarchical",
    ]
    assert names[7:9] == ["subspace:mcca", "subspace:gcca"]  # cca is always there
    has_deep = find_spec("torch") is not None and (
        find_spec("mmfuse.deep._fusion_net") is not None
    )
    assert ("deep:mlp" in names) == has_deep


def test_the_deep_head_trains_on_every_training_row():
    # compare_fusion reads no validation loss: a validation split would only
    # take a fifth of the rows away (and ignore the groups).
    pytest.importorskip("torch")
    strategies = dict(
        (name, estimator)
        for name, _, estimator in default_strategies(
            {"a": [0, 1], "b": [2, 3]}, random_state=0
        )
    )
    X = np.random.default_rng(0).normal(size=(40, 4))
    y = np.arange(40) % 2
    head = strategies["deep:mlp"].set_params(max_epochs=1).fit(X, y)
    assert head.get_params()["train_split"] is None
    assert "valid_loss" not in head.history_[-1]
    with pytest.raises(TypeError, match=r"blocks must be a dict .* got list"):
        default_strategies([2, 2])


def test_errors(mfeat):
    X, y, blocks = mfeat
    with pytest.raises(ValueError, match="unknown strategy 'nope'.*'late:soft'"):
        compare_fusion(X, y, blocks, strategies=["nope"])
    with pytest.raises(ValueError, match=r"y has a single class \(\[3\]\)"):
        compare_fusion(X, np.full(len(X), 3), blocks, strategies="single")
    with pytest.raises(ValueError, match=r"\['single:kar'\] repeat"):
        compare_fusion(X, y, blocks, strategies=["single:kar", "single"])
    with pytest.raises(ValueError, match="strategy 3 is not understood"):
        compare_fusion(X, y, blocks, strategies=[3])
    with pytest.raises(ValueError, match="'accurcy' is not a valid scoring value"):
        compare_fusion(X, y, blocks, strategies="single", scoring="accurcy")
    with pytest.raises(ValueError, match="task='auto' must be"):
        compare_fusion(X, y, blocks, strategies="single", task="auto")
    with pytest.raises(ValueError, match="task='regression' needs numbers in y"):
        compare_fusion(X, y.astype(str), blocks, task="regression")


def test_data_errors_name_the_column_and_the_rows(mfeat):
    X, y, blocks = mfeat
    frame = pd.DataFrame(X[:, :70]).set_axis(
        [f"kar__{i}" for i in range(64)] + [f"zer__{i}" for i in range(6)], axis=1
    )
    text = frame.astype({"zer__2": object})
    text.loc[7, "zer__2"] = "right"
    with pytest.raises(
        ValueError,
        match=r"X column 66 \('zer__2'\) of modality 'zer' holds 'right' in row 7",
    ):
        compare_fusion(text, y, strategies="single")
    target = pd.Series(y.astype(float), name="digit")
    target[[3, 9]] = np.nan
    with pytest.raises(
        ValueError, match=r"the target 'digit' is missing \(NaN\) in 2 .*\[3, 9\]"
    ):
        compare_fusion(frame, target, strategies="single")
    lost = X.copy()
    lost[[4, 8], :] = np.nan
    with pytest.raises(ValueError, match=r"2 row\(s\) \(first: \[4, 8\]\) have none"):
        compare_fusion(lost, y, blocks, strategies="single")
    partial = X.copy()
    partial[5, 0] = np.nan
    with pytest.raises(ValueError, match="NaN in part of modality 'kar'"):
        compare_fusion(partial, y, blocks, strategies="single")
    empty = frame.copy()
    empty["zer__2"] = np.nan  # an empty column of a CSV, say
    with pytest.raises(
        ValueError,
        match=r"1 column\(s\) of modality 'zer' are NaN in every row .*\['zer__2'\]",
    ):
        compare_fusion(empty, y, strategies="single")
    never = frame.copy()
    never.iloc[:, 64:] = np.nan  # a modality lost in a join: chance, silently
    with pytest.raises(
        ValueError,
        match=r"modality 'zer' has no value in any row: all 6 of its columns "
        r"\(first: \['zer__0', 'zer__1',",
    ):
        compare_fusion(never, y, strategies="default")
    twice = pd.concat([frame, frame[["kar__3"]]], axis=1)
    with pytest.raises(
        ValueError,
        match=r"1 column name\(s\) used more than once \(\['kar__3'\], at "
        r"positions \[3, 70\]\)",
    ):
        compare_fusion(twice, y, strategies="single")
    infinite = X.copy()
    infinite[2, 70] = np.inf
    with pytest.raises(ValueError, match=r"column 70 holds an infinite value \(row 2"):
        compare_fusion(infinite, y, blocks, strategies="single")
    with pytest.raises(ValueError, match="X is sparse, but the default strategies"):
        compare_fusion(sp.csr_matrix(X), y, blocks, strategies="single")
    with pytest.raises(ValueError, match="X has 500 rows but y has 499"):
        compare_fusion(X, y[1:], blocks, strategies="single")


@pytest.mark.parametrize(
    ("cv", "message"),
    [
        (0, r"cv=0 is not a number of folds: give an integer >= 2"),
        (-3, r"cv=-3 is not a number of folds"),
        (1000, r"cv=1000 asks for more folds than the 500 rows; use cv <= 500"),
        (60, r"cv=60 stratified folds need at least 60 rows of each class, but "),
    ],
)
def test_cv_out_of_range(mfeat, cv, message):
    X, y, blocks = mfeat
    with pytest.raises(ValueError, match=message):
        compare_fusion(X, y, blocks, strategies="single", cv=cv)
