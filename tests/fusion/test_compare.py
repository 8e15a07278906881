import importlib
from importlib.util import find_spec

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from mmfuse import ModalitySelector
from mmfuse.datasets import load_mfeat, make_multiview
from mmfuse.fusion import compare_fusion, default_strategies


@pytest.fixture(scope="module")
def mfeat():
    bunch = load_mfeat(views=["kar", "zer", "mor"])
    return bunch.data[::4], bunch.target[::4], bunch.blocks


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
    ]
    assert list(table["rank"]) == [1, 2, 3, 4, 5]
    assert table["mean_accuracy"].is_monotonic_decreasing
    families = dict(zip(table["strategy"], table["family"], strict=True))
    assert families == {
        "single:kar": "single",
        "single:zer": "single",
        "single:mor": "single",
        "late:soft": "late",
        "mine": "custom",
    }
    # the same folds as a plain cross_val_score with StratifiedKFold(seed 0)
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
    has_cca = find_spec("mmfuse.cca._mcca") is not None
    assert ("subspace:mcca" in names) == has_cca
    has_deep = find_spec("torch") is not None and (
        find_spec("mmfuse.deep._fusion_net") is not None
    )
    assert ("deep:mlp" in names) == has_deep


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
