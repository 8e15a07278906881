import pickle

import numpy as np
import pytest
from sklearn import config_context
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from mmfuse.datasets import load_mfeat
from mmfuse.fusion import make_early_fusion


@pytest.fixture(scope="module")
def data():
    X, y = load_mfeat(views=["kar", "zer", "mor"], return_X_y=True)
    return X[::4], y[::4]


BLOCKS = {"kar": 64, "zer": 47, "mor": 6}


def test_pipeline_names_features_by_modality(data):
    X, y = data
    model = make_early_fusion(LogisticRegression(max_iter=500), BLOCKS).fit(X, y)
    assert "ModalityColumns(name='zer')" in repr(model)  # not an address
    assert isinstance(model, Pipeline)
    assert list(model.named_steps) == ["columntransformer", "logisticregression"]
    names = model[:-1].get_feature_names_out()
    assert (
        names[0] == "kar__x0" and names[64] == "zer__x64" and names[-1] == "mor__x116"
    )
    Z = model[:-1].transform(X)
    np.testing.assert_allclose(Z.mean(axis=0), 0, atol=1e-10)


def test_block_scaling_gives_every_modality_the_same_total_variance(data):
    X, y = data
    fused = make_early_fusion(
        LogisticRegression(max_iter=500), BLOCKS, block_scaling=True
    ).fit(X, y)[:-1]
    Z = fused.transform(X)
    totals = [Z[:, :64].var(axis=0).sum(), Z[:, 64:111].var(axis=0).sum()]
    totals.append(Z[:, 111:].var(axis=0).sum())
    np.testing.assert_allclose(totals, 1.0, rtol=1e-10)
    # A modality that passes through is divided too (it once was not).
    kept = make_early_fusion(
        LogisticRegression(max_iter=500),
        BLOCKS,
        preprocess={"kar": "standard"},
        block_scaling=True,
    ).fit(X, y)[:-1]
    Z = kept.transform(X)
    np.testing.assert_allclose(Z[:, 64:111], X[:, 64:111] / np.sqrt(47))
    np.testing.assert_allclose(Z[:, 111:], X[:, 111:] / np.sqrt(6))


@pytest.mark.parametrize("preprocess", ["standard", PCA(5)], ids=["standard", "pca"])
def test_block_scaling_under_global_pandas_output(data, preprocess):
    # A preprocessing step then the scaling, in a ColumnTransformer on NumPy
    # X, failed under transform_output="pandas" for every modality but the
    # first ("input_features is not equal to feature_names_in_").
    X, y = data
    model = make_early_fusion(
        LogisticRegression(max_iter=500),
        BLOCKS,
        preprocess=preprocess,
        block_scaling=True,
    )
    expected = model.fit(X, y)[:-1].transform(X)
    with config_context(transform_output="pandas"):
        Z = model.fit(X, y)[:-1].transform(X)
    np.testing.assert_allclose(Z.to_numpy(), expected)
    assert Z.columns[0].startswith("kar__") and Z.columns[-1].startswith("mor__")


def test_preprocess_per_modality_and_drop(data):
    X, y = data
    model = make_early_fusion(
        KNeighborsClassifier(),
        BLOCKS,
        preprocess={"kar": PCA(5), "mor": "drop"},
    ).fit(X, y)
    Z = model[:-1].transform(X)
    assert Z.shape == (len(X), 5 + 47)
    # zer passes through untouched when the dict omits it
    np.testing.assert_allclose(Z[:, 5:], X[:, 64:111])


def test_preprocess_list_gives_one_entry_a_modality(data):
    X, y = data
    model = make_early_fusion(
        KNeighborsClassifier(), BLOCKS, preprocess=[PCA(5), "passthrough", "drop"]
    ).fit(X, y)
    Z = model[:-1].transform(X)
    assert Z.shape == (len(X), 5 + 47)
    np.testing.assert_allclose(Z[:, 5:], X[:, 64:111])
    with pytest.raises(ValueError, match=r"preprocess=\['drop'\] has 1 entries but"):
        make_early_fusion(KNeighborsClassifier(), BLOCKS, preprocess=["drop"])


def test_int_blocks_and_prefixes_resolve_at_fit():
    bunch = load_mfeat(views=["kar", "zer"], as_frame=True)
    X, y = bunch.data.iloc[::5], bunch.target.iloc[::5]
    by_prefix = make_early_fusion(LogisticRegression(max_iter=500), ["zer", "kar"])
    names = by_prefix.fit(X, y)[:-1].get_feature_names_out()
    assert names[0] == "zer__zer__0" and len(names) == 111
    by_count = make_early_fusion(LogisticRegression(max_iter=500), 2).fit(X, y)
    assert by_count[:-1].get_feature_names_out()[-1] == "block1__zer__46"


def test_grid_search_and_pickle(data):
    X, y = data
    model = make_early_fusion(LogisticRegression(max_iter=500), BLOCKS)
    search = GridSearchCV(
        model,
        {
            "columntransformer__kar__with_std": [True, False],
            "logisticregression__C": [0.1],
        },
        cv=2,
    ).fit(X, y)
    assert set(search.best_params_) == {
        "columntransformer__kar__with_std",
        "logisticregression__C",
    }
    again = pickle.loads(pickle.dumps(search.best_estimator_))
    np.testing.assert_array_equal(again.predict(X), search.predict(X))


def test_errors():
    with pytest.raises(ValueError, match="blocks='auto' is not accepted here"):
        make_early_fusion(LogisticRegression(), "auto")
    with pytest.raises(ValueError, match=r"unknown modalities \['pix'\]"):
        make_early_fusion(LogisticRegression(), BLOCKS, preprocess={"pix": PCA()})
    with pytest.raises(ValueError, match="preprocess for modality 'kar' is 3"):
        make_early_fusion(LogisticRegression(), BLOCKS, preprocess=3)
    with pytest.raises(ValueError, match="blocks={} is not accepted here"):
        make_early_fusion(LogisticRegression(), {})
    with pytest.raises(ValueError, match="blocks=None is not accepted here"):
        make_early_fusion(LogisticRegression(), None)
    with pytest.raises(ValueError, match="blocks=0 is not accepted here"):
        make_early_fusion(LogisticRegression(), 0)
    with pytest.raises(ValueError, match="keys must be non-empty modality names"):
        make_early_fusion(LogisticRegression(), {1: 64})
    with pytest.raises(ValueError, match="preprocess drops every modality"):
        make_early_fusion(LogisticRegression(), {"kar": 64}, preprocess={"kar": "drop"})
    with pytest.raises(TypeError, match=r"estimator is 'svc' \(str\), not an "):
        make_early_fusion("svc", BLOCKS)
    with pytest.raises(TypeError, match="estimator is the class LogisticRegression"):
        make_early_fusion(LogisticRegression, BLOCKS)


def test_sample_weight_reaches_the_final_step_by_name(data):
    X, y = data
    w = np.arange(len(X)) % 4
    model = make_early_fusion(LogisticRegression(max_iter=500), BLOCKS)
    model.fit(X, y, logisticregression__sample_weight=w)
    alone = LogisticRegression(max_iter=500).fit(
        model[:-1].transform(X), y, sample_weight=w
    )
    np.testing.assert_allclose(model[-1].coef_, alone.coef_)
    with pytest.raises(ValueError, match="logisticregression__sample_weight"):
        model.fit(X, y, sample_weight=w)


def test_sample_weight_with_routing_equals_repeated_rows(data):
    X, y = data
    w = np.arange(len(X)) % 4
    with config_context(enable_metadata_routing=True):
        model = make_early_fusion(
            LogisticRegression(max_iter=500).set_fit_request(sample_weight=True),
            BLOCKS,
            preprocess=StandardScaler().set_fit_request(sample_weight=True),
            block_scaling=True,
        )
        weighted = model.fit(X, y, sample_weight=w).predict_proba(X)
        repeated = model.fit(X.repeat(w, axis=0), y.repeat(w)).predict_proba(X)
    np.testing.assert_allclose(weighted, repeated, atol=1e-6)
