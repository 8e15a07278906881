import numpy as np
import pytest
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from mmfuse import ModalitySelector
from mmfuse.datasets import load_mfeat, make_multiview
from mmfuse.fusion import LateFusionClassifier, LateFusionRegressor, make_early_fusion

VIEWS = {"fou": 76, "kar": 64, "zer": 47}


def _member():
    return make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=300))


def _late(names=tuple(VIEWS), **params):
    members = [(name, _member(), name) for name in names]
    return LateFusionClassifier(members, blocks=VIEWS, **params)


@pytest.fixture(scope="module")
def mfeat():
    X, y = load_mfeat(views=list(VIEWS), return_X_y=True)
    return X[::2], y[::2]


@pytest.fixture(scope="module")
def split(mfeat):
    X, y = mfeat
    return X[::2], y[::2], X[1::2], y[1::2]


def test_late_fusion_beats_every_member_on_mfeat(mfeat):
    X, y = mfeat
    cv = StratifiedKFold(3, shuffle=True, random_state=0)
    fused = cross_val_score(_late(), X, y, cv=cv).mean()
    members = [
        cross_val_score(
            make_pipeline(ModalitySelector(VIEWS, modality=name), _member()),
            X,
            y,
            cv=cv,
        ).mean()
        for name in VIEWS
    ]
    assert fused > max(members) + 0.01, (fused, members)


@pytest.mark.parametrize("voting", ["soft", "hard"])
def test_missing_modality_equals_model_without_it(split, voting):
    X, y, X_test, _ = split
    full = _late(voting=voting).fit(X, y)
    without = _late(["fou", "kar"], voting=voting).fit(X, y)
    X_missing = X_test.copy()
    X_missing[::3, 140:] = np.nan  # zer is columns 140-186
    lacking = np.isnan(X_missing[:, 140])
    np.testing.assert_array_equal(
        full.predict(X_missing)[lacking], without.predict(X_test[lacking])
    )
    np.testing.assert_array_equal(
        full.predict(X_missing)[~lacking], full.predict(X_test[~lacking])
    )
    if voting == "soft":
        np.testing.assert_allclose(
            full.predict_proba(X_missing)[lacking],
            without.predict_proba(X_test[lacking]),
        )


def test_member_fitted_only_on_rows_with_its_modalities(split):
    X, y, _, _ = split
    X_train = X.copy()
    X_train[:40, :76] = np.nan
    fitted = _late().fit(X_train, y)
    alone = _member().fit(X[40:, :76], y[40:])
    np.testing.assert_allclose(
        fitted.named_estimators_["fou"][-1].coef_, alone[-1].coef_, rtol=1e-6
    )
    assert fitted.member_modalities_ == {"fou": ["fou"], "kar": ["kar"], "zer": ["zer"]}


def test_stacking_uses_out_of_fold_predictions():
    # Block "signal" predicts y a little; block "noise" is pure noise, which a
    # 1-NN member memorises. Fitted on in-sample outputs, the stacker would
    # trust the memorising member and fall to chance on new rows.
    rng = np.random.default_rng(0)
    n = 400
    y = rng.integers(0, 2, n)
    signal = y[:, None] + rng.normal(scale=1.0, size=(n, 3))
    noise = rng.normal(size=(n, 3))
    X = np.hstack([signal, noise])
    members = [
        ("signal", LogisticRegression(), "signal"),
        ("noise", KNeighborsClassifier(1), "noise"),
    ]
    stack = LateFusionClassifier(
        members, blocks={"signal": 3, "noise": 3}, voting="stack"
    ).fit(X[:300], y[:300])
    signal_only = LogisticRegression().fit(signal[:300], y[:300])
    assert (
        stack.score(X[300:], y[300:]) >= signal_only.score(signal[300:], y[300:]) - 0.03
    )
    assert stack.score(X[300:], y[300:]) > 0.75
    coef = np.abs(stack.final_estimator_.coef_.ravel())
    # columns: signal P(0), P(1), noise P(0), P(1)
    assert coef[:2].sum() > 3 * coef[2:].sum()


def test_stacking_predicts_incomplete_rows_as_a_stack_without_the_lost_member(split):
    X, y, X_test, y_test = split
    stack = _late(voting="stack", cv=3).fit(X, y)
    without = _late(["fou", "kar"], voting="stack", cv=3).fit(X, y)
    X_missing = X_test.copy()
    X_missing[:10, 140:] = np.nan  # zer is columns 140-186
    X_missing[10:20, 76:140] = np.nan  # kar is columns 76-140
    proba = stack.predict_proba(X_missing)
    np.testing.assert_allclose(proba[:10], without.predict_proba(X_test[:10]))
    np.testing.assert_allclose(proba[20:], stack.predict_proba(X_test[20:]))
    assert not np.allclose(proba[10:20], stack.predict_proba(X_test[10:20]))
    np.testing.assert_array_equal(
        stack.predict(X_missing), stack.classes_[proba.argmax(axis=1)]
    )
    assert stack.final_estimator_.n_features_in_ == 3 * 10
    assert stack.score(X_missing, y_test) > 0.9


def test_stacking_on_one_vs_one_decision_functions(split):
    X, y, X_test, y_test = split
    members = [
        (
            name,
            make_pipeline(StandardScaler(), SVC(decision_function_shape="ovo")),
            name,
        )
        for name in VIEWS
    ]
    stack = LateFusionClassifier(members, blocks=VIEWS, voting="stack", cv=3)
    stack.fit(X, y)
    # 10 classes: 45 one-vs-one scores a member.
    assert stack.stack_method_ == ["decision_function"] * 3
    assert stack.final_estimator_.n_features_in_ == 3 * 45
    names = stack.get_feature_names_out()
    assert len(names) == 135 and names[0] == "fou__decision_function0"
    assert stack.transform(X_test).shape == (len(X_test), 135)
    svc = clone(members[1][1]).fit(X[:, 76:140], y)
    assert stack.score(X_test, y_test) > svc.score(X_test[:, 76:140], y_test)
    X_missing = X_test.copy()
    X_missing[::2, :76] = np.nan
    assert stack.score(X_missing, y_test) > 0.9


def test_row_without_any_member_modality_raises(split):
    X, y, X_test, _ = split
    fitted = _late().fit(X, y)
    X_empty = X_test[:5].copy()
    X_empty[1:3] = np.nan
    with pytest.raises(ValueError, match=r"2 row\(s\) \(first: \[1, 2\]\) lack"):
        fitted.predict(X_empty)
    with pytest.raises(ValueError, match="member 'zer' needs \\['zer'\\]"):
        fitted.predict_proba(X_empty)


def test_errors_name_the_problem(split):
    X, y, _, _ = split
    with pytest.raises(ValueError, match="asks for modality 'pix'.*'fou'"):
        _late(["fou", "pix"]).fit(X, y)
    with pytest.raises(ValueError, match="member 'svc' \\(SVC\\) has none"):
        LateFusionClassifier([("svc", SVC(), "kar")], blocks=VIEWS).fit(X, y)
    with pytest.raises(ValueError, match="weights has 2 value\\(s\\) but there are 3"):
        _late(weights=[1, 2]).fit(X, y)
    with pytest.raises(ValueError, match="\\(name, estimator, modalities\\) tuple"):
        LateFusionClassifier([("a", _member())], blocks=VIEWS).fit(X, y)
    with pytest.raises(ValueError, match="no training row"):
        X_none = X.copy()
        X_none[:, :76] = np.nan
        _late().fit(X_none, y)
    assert not hasattr(_late(voting="hard"), "predict_proba")


def test_weights_shift_the_vote(split):
    X, y, X_test, y_test = split
    only_kar = _late(weights=[0, 1, 0]).fit(X, y)
    kar = _member().fit(X[:, 76:140], y)
    np.testing.assert_array_equal(
        only_kar.predict(X_test), kar.predict(X_test[:, 76:140])
    )


def test_grid_search_reaches_a_member_parameter(split):
    X, y, _, _ = split
    search = GridSearchCV(
        _late(), {"kar__logisticregression__C": [1e-4, 0.1]}, cv=2
    ).fit(X, y)
    assert search.best_params_ == {"kar__logisticregression__C": 0.1}
    assert search.best_estimator_.named_estimators_["kar"][-1].C == 0.1


def test_transform_names_and_pandas_output(split):
    X, y, X_test, _ = split
    fitted = _late().fit(X, y)
    names = fitted.get_feature_names_out()
    assert names[0] == "fou__predict_proba_0" and len(names) == 30
    frame = fitted.set_output(transform="pandas").transform(X_test)
    assert list(frame.columns) == list(names)
    np.testing.assert_allclose(frame.iloc[:, 10:20].sum(axis=1), 1.0)
    hard = _late(voting="hard").fit(X, y)
    assert list(hard.get_feature_names_out()) == [
        "fou__predict",
        "kar__predict",
        "zer__predict",
    ]


def test_hierarchical_member_over_a_group_of_modalities(split):
    X, y, X_test, y_test = split
    group = make_early_fusion(
        LogisticRegression(C=0.1, max_iter=300), {"kar": 64, "zer": 47}
    )
    model = LateFusionClassifier(
        [("fou", _member(), "fou"), ("shape", group, ["kar", "zer"])],
        blocks=VIEWS,
    ).fit(X, y)
    assert model.member_modalities_["shape"] == ["kar", "zer"]
    assert model.named_estimators_["shape"].n_features_in_ == 111
    assert model.score(X_test, y_test) > 0.9


def test_dataframe_members_see_feature_names():
    bunch = load_mfeat(views=["kar", "zer"], as_frame=True)
    X, y = bunch.data.iloc[::4], bunch.target.iloc[::4]
    model = LateFusionClassifier(
        [("kar", _member(), "kar"), ("zer", _member(), "zer")]
    ).fit(X, y)
    assert model.modality_names_ == ["kar", "zer"]
    assert model.named_estimators_["zer"].feature_names_in_[0] == "zer__0"


def test_regressor_mean_and_stack_with_missing_modality():
    X, latent = make_multiview(300, [6, 6, 6], n_latent=2, noise=0.5, random_state=0)
    y = latent[:, 0]
    members = [(f"m{i}", Ridge(), f"block{i}") for i in range(3)]
    blocks = [6, 6, 6]
    mean = LateFusionRegressor(members, blocks=blocks).fit(X[:200], y[:200])
    stack = LateFusionRegressor(members, blocks=blocks, voting="stack").fit(
        X[:200], y[:200]
    )
    single = Ridge().fit(X[:200, :6], y[:200]).score(X[200:, :6], y[200:])
    assert stack.score(X[200:], y[200:]) > single
    without = LateFusionRegressor(members[:2], blocks=blocks).fit(X[:200], y[:200])
    X_missing = X[200:].copy()
    X_missing[:, 12:] = np.nan
    np.testing.assert_allclose(mean.predict(X_missing), without.predict(X[200:]))
    stack_without = LateFusionRegressor(members[:2], blocks=blocks, voting="stack")
    stack_without.fit(X[:200], y[:200])
    np.testing.assert_allclose(stack.predict(X_missing), stack_without.predict(X[200:]))


def test_clone_keeps_members_and_modalities():
    model = _late(voting="stack")
    copy = clone(model)
    assert [m[2] for m in copy.estimators] == list(VIEWS)
    copy.set_params(fou__logisticregression__C=3.0)
    assert copy.estimators[0][1][-1].C == 3.0
    assert model.estimators[0][1][-1].C == 0.1
