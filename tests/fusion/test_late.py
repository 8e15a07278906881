import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn import config_context
from sklearn.base import clone
from sklearn.exceptions import UnsetMetadataPassedError
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.model_selection import (
    GridSearchCV,
    PredefinedSplit,
    StratifiedKFold,
    cross_val_score,
)
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeClassifier

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
    with pytest.raises(
        ValueError, match="member 'pix': modality 'pix' is not one.*'fou'"
    ):
        _late(["fou", "pix"]).fit(X, y)
    with pytest.raises(ValueError, match="member 'svc' \\(SVC\\) has none"):
        LateFusionClassifier([("svc", SVC(), "kar")], blocks=VIEWS).fit(X, y)
    with pytest.raises(ValueError, match=r"weights=\[1, 2\] must be 3 numbers"):
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
    # Only their ratios count: weights near float64's largest overflowed the
    # sums of the vote, and every probability came out 0.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        huge = _late(weights=[1.5e308, 1e308, 1.5e308]).fit(X, y)
        np.testing.assert_allclose(
            huge.predict_proba(X_test),
            _late(weights=[3, 2, 3]).fit(X, y).predict_proba(X_test),
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


# The setup: three small blocks, a binary target.
BLOCKS = [5, 4, 3]


@pytest.fixture(scope="module")
def small():
    X, latent = make_multiview(120, BLOCKS, n_latent=2, noise=0.5, random_state=0)
    return X, (latent[:, 0] > 0) * 1


def _members(estimator, n=3):
    return [(f"m{i}", clone(estimator), f"block{i}") for i in range(n)]


class _Duck:
    """Has predict but neither fit nor get_params."""

    def predict(self, X):
        return X[:, 0]


@pytest.mark.parametrize(
    "model, match",
    [
        (
            LateFusionClassifier(
                [("a", LogisticRegression(), 0), ("r", Ridge(), 1)], voting="hard"
            ),
            r"needs classifiers, but member 'r' \(Ridge\) is a regressor",
        ),
        (
            LateFusionClassifier(
                [("p", make_pipeline(StandardScaler(), LinearRegression()), 0)]
            ),
            r"member 'p' \(Pipeline\) is a regressor; give a classifier",
        ),
        (
            LateFusionClassifier(
                _members(LogisticRegression()), voting="stack"
            ).set_params(final_estimator=Ridge()),
            r"final_estimator \(Ridge\) is a regressor",
        ),
        (
            LateFusionRegressor([("c", LogisticRegression(), 0)]),
            r"needs regressors, but member 'c' \(LogisticRegression\) is a "
            r"classifier",
        ),
        (
            LateFusionRegressor([("s", StandardScaler(), 0)], voting="stack"),
            r"member 's' \(StandardScaler\) declares no estimator type",
        ),
    ],
)
def test_members_of_the_wrong_kind_are_rejected(small, model, match):
    X, y = small
    with pytest.raises(ValueError, match=match):
        model.set_params(blocks=BLOCKS).fit(X, y)


def test_search_and_pipeline_members_are_of_their_estimators_kind(small):
    X, y = small
    search = GridSearchCV(LogisticRegression(), {"C": [0.1, 1.0]}, cv=2)
    members = [
        ("search", search, 0),
        ("pipe", make_pipeline(StandardScaler(), LogisticRegression()), 1),
    ]
    model = LateFusionClassifier(members, blocks=BLOCKS, voting="stack", cv=3)
    assert model.fit(X, y).score(X, y) > 0.9
    assert model.named_estimators_["search"].best_params_["C"] in (0.1, 1.0)
    reg = LateFusionRegressor(
        [("search", GridSearchCV(Ridge(), {"alpha": [1.0]}, cv=2), 0)],
        blocks=BLOCKS,
    )
    assert reg.fit(X, y).predict(X).shape == (len(X),)


@pytest.mark.parametrize(
    "member, match",
    [
        ("svc", r"member 'bad' is 'svc' \(str\), not an estimator; give an "),
        (_Duck(), r"member 'bad' is <.*> \(_Duck\), not an estimator; give an "),
        (LogisticRegression, r"member 'bad' is the class LogisticRegression, "),
    ],
)
def test_non_estimator_members_raise_a_type_error(small, member, match):
    X, y = small
    model = LateFusionClassifier(
        [("a", LogisticRegression(), 0), ("bad", member, 1)], blocks=BLOCKS
    )
    with pytest.raises(TypeError, match=match):
        model.fit(X, y)
    with pytest.raises(TypeError, match="final_estimator is the class"):
        LateFusionClassifier(
            _members(LogisticRegression()),
            blocks=BLOCKS,
            voting="stack",
            final_estimator=LogisticRegression,
        ).fit(X, y)


@pytest.mark.parametrize(
    "params, error, match",
    [
        ({"estimators": []}, ValueError, "estimators is empty"),
        ({"estimators": ["abc"]}, ValueError, r"tuple; got 'abc'"),
        (
            {"estimators": [("a", LogisticRegression(), 0, "x")]},
            ValueError,
            r"\(name, estimator, modalities\) tuple",
        ),
        (
            {"estimators": [("a", LogisticRegression(), "img")]},
            ValueError,
            r"member 'a': modality 'img' is not one of the modalities",
        ),
        (
            {"estimators": [("a", LogisticRegression(), [0, 0])]},
            ValueError,
            r"member 'a' lists a modality twice",
        ),
        (
            {"estimators": _members(LogisticRegression(), 2)[:1] * 2},
            ValueError,
            r"member names must be unique, but \['m0'\]",
        ),
        (
            {"estimators": [("a__b", LogisticRegression(), 0)]},
            ValueError,
            r"member name 'a__b' contains '__'",
        ),
        (
            {"estimators": [(3, LogisticRegression(), 0)]},
            TypeError,
            r"member names must be strings; got 3 \(int\)",
        ),
        (
            {"estimators": [("cv", LogisticRegression(), 0)]},
            ValueError,
            r"member names \['cv'\] are parameters of LateFusionClassifier",
        ),
        ({"weights": [1, 2]}, ValueError, r"weights=\[1, 2\] must be 3 numbers"),
        ({"weights": [[1, 1, 1]]}, ValueError, r"must be 3 numbers"),
        ({"weights": ["a", 1, 1]}, ValueError, r"must be 3 numbers"),
        ({"weights": [1, -1, 1]}, ValueError, "must be finite and non-negative"),
        ({"weights": [0, 0, 0]}, ValueError, "with a positive sum"),
        ({"weights": [np.nan, 1, 1]}, ValueError, "must be finite"),
        (
            {"weights": [1, 1, 1], "voting": "stack"},
            ValueError,
            r"weights=\[1, 1, 1\] are not used by voting='stack'",
        ),
    ],
)
def test_bad_members_and_weights(small, params, error, match):
    X, y = small
    model = LateFusionClassifier(_members(LogisticRegression()), blocks=BLOCKS)
    with pytest.raises(error, match=match):
        model.set_params(**params).fit(X, y)


def test_hostile_data_gets_clear_errors(small):
    X, y = small
    model = LateFusionClassifier(_members(LogisticRegression()), blocks=BLOCKS)
    with pytest.raises(ValueError, match="y holds one class only, 'cat'"):
        clone(model).fit(X, ["cat"] * len(X))
    X_text = pd.DataFrame(X, columns=[f"c{j}" for j in range(12)])
    X_text["c3"] = X_text["c3"].astype(object)
    X_text.loc[7, "c3"] = "seven"
    with pytest.raises(
        ValueError,
        match=r"X column \d \('c3'\) .*holds 'seven' in row 7, which is not a",
    ):
        clone(model).fit(X_text, y)
    # A categorical of strings passed validation as objects: a bare TypeError.
    X_text["c3"] = pd.Categorical(np.where(np.arange(len(X)) % 2, "odd", "even"))
    with pytest.raises(ValueError, match=r"\('c3'\) .*holds 'even' in row 0"):
        clone(model).fit(X_text, y)
    with pytest.raises(ValueError, match="y holds 'b' in row 0, which is not a number"):
        LateFusionRegressor([("r", Ridge(), 0)], blocks=BLOCKS).fit(
            X, np.array(["a", "b"])[y]
        )
    X_lacking = X.copy()
    X_lacking[:, 5:9] = np.nan
    with pytest.raises(ValueError, match="member 'm1' has no training row"):
        clone(model).fit(X_lacking, y)
    X_none = X.copy()
    X_none[:4, :9] = np.nan
    two = LateFusionClassifier(_members(LogisticRegression(), 2), blocks=BLOCKS)
    with pytest.raises(ValueError, match=r"4 row\(s\) \(first: \[0, 1, 2, 3\]\) "):
        two.fit(X_none, y)
    # A member whose rows hold one class fails with its context.
    X_one = X.copy()
    X_one[y == 0, :5] = np.nan
    with pytest.raises(
        ValueError,
        match=r"member 'm0' \(LogisticRegression\) failed to fit on 57 row\(s\) "
        r"\(the rows with its modalities \['block0'\]; they hold only the "
        r"classes \[1\] of \[0, 1\]",
    ):
        clone(model).fit(X_one, y)


def test_stacker_learns_from_rows_that_lack_a_modality(small):
    # Class 0 is seen only in rows that lack block0: the stacker must still
    # learn it. Member m0 sees class 1 only, so its outputs carry nothing and
    # the stack equals one without m0.
    X, y = small
    X_missing = X.copy()
    X_missing[y == 0, :5] = np.nan
    members = _members(KNeighborsClassifier())
    stack = LateFusionClassifier(members, blocks=BLOCKS, voting="stack")
    stack.fit(X_missing, y)
    without = LateFusionClassifier(members[1:], blocks=BLOCKS, voting="stack")
    without.fit(X_missing, y)
    assert set(stack.predict(X)) == {0, 1}
    np.testing.assert_allclose(
        stack.predict_proba(X), without.predict_proba(X), atol=1e-3
    )
    assert stack.score(X, y) == without.score(X, y) > 0.9


def test_partial_nan_reaches_the_member_with_a_clear_error(small):
    X, y = small
    X_nan = X.copy()
    X_nan[[3, 8], 0] = np.nan
    X_nan[8, 6] = np.nan
    model = LateFusionClassifier(_members(LogisticRegression()), blocks=BLOCKS)
    with pytest.raises(
        ValueError,
        match=r"member 'm0' \(LogisticRegression\) failed to fit on rows with NaN "
        r"in part of a modality \(rows: 2 in 'block0'\). mmfuse reads only a "
        r"whole-NaN block as a missing modality.*\(e.g. make_pipeline\(SimpleImputer"
        r"\(\), LogisticRegression\(...\)\)\)",
    ) as info:
        clone(model).fit(X_nan, y)
    assert "Input X contains NaN" in str(info.value.__cause__)
    fitted = clone(model).fit(X, y)
    with pytest.raises(ValueError, match=r"member 'm1' .* failed to predict_proba"):
        fitted.predict(np.where(np.arange(12) == 6, np.nan, X))
    pipes = LateFusionClassifier(
        _members(make_pipeline(StandardScaler(), LogisticRegression())),
        blocks=BLOCKS,
    )
    with pytest.raises(ValueError, match=r"put a SimpleImputer\(\) first in its"):
        pipes.fit(X_nan, y)
    imputing = LateFusionClassifier(
        _members(make_pipeline(SimpleImputer(), LogisticRegression())),
        blocks=BLOCKS,
        voting="stack",
    )
    assert imputing.fit(X_nan, y).score(X_nan, y) > 0.9
    # A tree takes NaN itself.
    native = LateFusionClassifier(
        _members(DecisionTreeClassifier(max_depth=3)), blocks=BLOCKS
    )
    assert native.fit(X_nan, y).predict(X_nan).shape == (len(X),)


def _weights_and_repeats(X, y, n_lacking=20):
    """Integer weights (some 0) and the rows repeated that many times."""
    X = X.copy()
    X[:n_lacking, :5] = np.nan  # some rows lack block0
    w = np.random.default_rng(0).integers(0, 4, len(X))
    return X, y, w, np.repeat(X, w, axis=0), np.repeat(y, w)


def _assert_same_model(weighted, repeated, X):
    for method in ("predict_proba", "predict", "transform"):
        if hasattr(weighted, method):
            np.testing.assert_allclose(
                getattr(weighted, method)(X),
                getattr(repeated, method)(X),
                rtol=1e-5,
                atol=1e-6,
            )


@pytest.mark.parametrize("voting", ["soft", "hard", "stack"])
def test_integer_weights_equal_repeated_rows(small, voting):
    X, y, w, X_rep, y_rep = _weights_and_repeats(*small)
    model = LateFusionClassifier(
        _members(LogisticRegression()), blocks=BLOCKS, voting=voting
    )
    # Stacking matches when the copies of a row share a fold.
    folds = np.arange(len(X)) % 3
    weighted = clone(model).set_params(cv=PredefinedSplit(folds))
    weighted.fit(X, y, sample_weight=w)
    repeated = clone(model).set_params(cv=PredefinedSplit(np.repeat(folds, w)))
    repeated.fit(X_rep, y_rep)
    X_test = X.copy()
    X_test[::4, 5:9] = np.nan  # and some lack block1 at predict time
    _assert_same_model(weighted, repeated, X_test)
    unweighted = clone(model).set_params(cv=PredefinedSplit(folds)).fit(X, y)
    assert not np.allclose(unweighted.transform(X), weighted.transform(X))


@pytest.mark.parametrize("voting", ["mean", "stack"])
def test_regressor_integer_weights_equal_repeated_rows(small, voting):
    X, _, w, X_rep, _ = _weights_and_repeats(*small)
    y = X[:, 5] - np.nan_to_num(X[:, 0]) + np.arange(len(X)) % 3
    # The stacker is a Ridge: RidgeCV, the default, picks its penalty by
    # leave-one-out, in which the copies of a row are apart.
    model = LateFusionRegressor(
        _members(Ridge()), blocks=BLOCKS, voting=voting, final_estimator=Ridge()
    )
    folds = np.arange(len(X)) % 3
    weighted = clone(model).set_params(cv=PredefinedSplit(folds))
    weighted.fit(X, y, sample_weight=w)
    repeated = clone(model).set_params(cv=PredefinedSplit(np.repeat(folds, w)))
    repeated.fit(X_rep, np.repeat(y, w))
    _assert_same_model(weighted, repeated, X)


def test_pipeline_member_gets_weights_on_its_last_step_or_by_routing(small):
    X, y, w, X_rep, y_rep = _weights_and_repeats(*small)
    pipe = make_pipeline(StandardScaler(), LogisticRegression())
    model = LateFusionClassifier(_members(pipe), blocks=BLOCKS)
    weighted = clone(model).fit(X, y, sample_weight=w)
    # Without routing the scaler is fitted unweighted, the classifier weighted.
    rows = ~np.isnan(X[:, 0])
    scaler = StandardScaler().fit(X[rows, :5])
    alone = LogisticRegression().fit(
        scaler.transform(X[rows, :5]), y[rows], sample_weight=w[rows]
    )
    np.testing.assert_allclose(
        weighted.named_estimators_["m0"][-1].coef_, alone.coef_, rtol=1e-6
    )
    # With routing, every step that requests the weights gets them: the
    # repeated-rows model.
    with config_context(enable_metadata_routing=True):
        routed = make_pipeline(
            StandardScaler().set_fit_request(sample_weight=True),
            LogisticRegression().set_fit_request(sample_weight=True),
        )
        model = LateFusionClassifier(_members(routed), blocks=BLOCKS)
        weighted = clone(model).fit(X, y, sample_weight=w)
        repeated = clone(model).fit(X_rep, y_rep)
        _assert_same_model(weighted, repeated, X)


class _WeightSpy(LogisticRegression):
    """Says whether its fit got weights."""

    def fit(self, X, y, sample_weight=None):
        self.weighted_ = sample_weight is not None
        return super().fit(X, y, sample_weight=sample_weight)


def test_routing_weights_only_the_fits_that_request_them(small):
    # Members got the weights whatever their request, and a member whose fit
    # takes none failed the fit: the routing the docstring promised.
    X, y, w, _, _ = _weights_and_repeats(*small)
    rows = ~np.isnan(X[:, 0])
    unweighted = LogisticRegression().fit(X[rows, :5], y[rows])
    weighted = LogisticRegression().fit(X[rows, :5], y[rows], sample_weight=w[rows])
    with config_context(enable_metadata_routing=True):
        members = [
            ("no", LogisticRegression().set_fit_request(sample_weight=False), 0),
            ("yes", LogisticRegression().set_fit_request(sample_weight=True), 0),
            ("knn", KNeighborsClassifier(), 1),
        ]
        for voting, request in [("soft", None), ("stack", True), ("stack", False)]:
            final = None
            if request is not None:
                final = _WeightSpy().set_fit_request(sample_weight=request)
            model = LateFusionClassifier(
                members, blocks=BLOCKS, voting=voting, final_estimator=final
            ).fit(X, y, sample_weight=w)
            np.testing.assert_allclose(
                model.named_estimators_["no"].coef_, unweighted.coef_
            )
            np.testing.assert_allclose(
                model.named_estimators_["yes"].coef_, weighted.coef_
            )
            if final is not None:
                assert model.final_estimator_.weighted_ is request
        # The default stacker requests them: it got them without routing.
        stack = LateFusionClassifier(members, blocks=BLOCKS, voting="stack")
        stack.fit(X, y, sample_weight=w)
        routing = stack.get_metadata_routing()
        assert {"no", "yes", "knn", "final_estimator"} <= set(routing._route_mappings)
        unset = [("m", LogisticRegression(), 0), ("knn", KNeighborsClassifier(), 1)]
        with pytest.raises(UnsetMetadataPassedError, match="LogisticRegression.fit"):
            LateFusionClassifier(unset, blocks=BLOCKS).fit(X, y, sample_weight=w)


def test_estimators_without_sample_weight_are_named(small):
    X, y = small
    w = np.ones(len(X))
    members = [*_members(LogisticRegression(), 2), ("knn", KNeighborsClassifier(), 2)]
    model = LateFusionClassifier(members, blocks=BLOCKS)
    with pytest.raises(
        TypeError,
        match=r"member 'knn' \(KNeighborsClassifier\) takes no sample_weight in fit",
    ):
        model.fit(X, y, sample_weight=w)
    model.fit(X, y)  # fine without weights
    stack = LateFusionClassifier(
        _members(LogisticRegression()),
        blocks=BLOCKS,
        voting="stack",
        final_estimator=make_pipeline(StandardScaler(), KNeighborsClassifier()),
    )
    with pytest.raises(
        TypeError, match=r"final_estimator \(Pipeline\) takes no sample_weight"
    ):
        stack.fit(X, y, sample_weight=w)
    reg = LateFusionRegressor([("knn", KNeighborsRegressor(), 0)], blocks=BLOCKS)
    with pytest.raises(TypeError, match="member 'knn' .* takes no sample_weight"):
        reg.fit(X, y, sample_weight=w)
    zero = np.where(np.arange(len(X)) < 60, 0.0, 1.0)
    X_half = X.copy()
    X_half[60:, :5] = np.nan
    with pytest.raises(ValueError, match="'m0' has no training row: .* or has "):
        clone(model).set_params(estimators=_members(LogisticRegression())).fit(
            X_half, y, sample_weight=zero
        )
    with pytest.raises(ValueError, match="sample_weight: Negative values in data"):
        model.fit(X, y, sample_weight=-w)
    with pytest.raises(ValueError, match="sample_weight: could not convert string"):
        model.fit(X, y, sample_weight=["a"] * len(X))


def test_values_whose_squares_overflow_are_refused_with_where(small):
    X, y = small
    target = X[:, 0] + X[:, 5]
    members = [(f"r{i}", Ridge(), i) for i in range(3)]
    huge = r"is beyond ±1e\+150: members square and sum their inputs"
    with pytest.raises(ValueError, match=r"y\[0\] = .*e\+200 " + huge):
        LateFusionRegressor(members, blocks=BLOCKS, voting="stack").fit(
            X, target * 1e200
        )
    X_huge = X.copy()
    X_huge[3, 7] = 1e300
    with pytest.raises(ValueError, match=r"X\[3, 7\] = 1e\+300 " + huge):
        LateFusionRegressor(members, blocks=BLOCKS).fit(X_huge, target)
    fitted = LateFusionRegressor(members, blocks=BLOCKS).fit(X * 1e100, target)
    assert fitted.score(X * 1e100, target) > 0.5  # large but safe: fine
    with pytest.raises(ValueError, match=r"X\[3, 7\] = 1e\+300 " + huge):
        fitted.predict(X_huge)
    with pytest.raises(ValueError, match=r"X\[3, 7\] = 1e\+300 " + huge):
        fitted.predict(sp.csr_array(X_huge))  # sparse: found without densifying


def test_transform_refuses_rows_that_no_member_can_take(small):
    X, y = small
    late = LateFusionClassifier(
        [("a", LogisticRegression(), 0), ("b", LogisticRegression(), 1)],
        blocks=BLOCKS,
    ).fit(X, y)
    X_gap = X[:4].copy()
    X_gap[1, :9] = np.nan  # row 1 lacks both members' modalities
    X_gap[2, :5] = np.nan  # row 2 lacks only member a's
    with pytest.raises(
        ValueError,
        match=r"1 row\(s\) \(first: \[1\]\) lack the modalities of every member, "
        r"so no member can transform them",
    ):
        late.transform(X_gap)
    out = late.transform(X_gap[[0, 2, 3]])
    assert np.isnan(out[1, :2]).all() and np.isfinite(out[1, 2:]).all()


def test_stacking_on_too_few_rows_for_its_folds_names_cv(small):
    X, y = small
    members = [(f"m{i}", LogisticRegression(), i) for i in range(3)]
    with pytest.raises(
        ValueError,
        match=r"voting='stack' learns from out-of-fold outputs, but cv=Stratified"
        r"KFold\(n_splits=5.*cannot split these 6 training rows: .*Use fewer "
        r"folds \(e\.g\. cv=2\), or more rows\.",
    ):
        few = np.r_[np.flatnonzero(y == 0)[:3], np.flatnonzero(y == 1)[:3]]
        LateFusionClassifier(members, blocks=BLOCKS, voting="stack").fit(X[few], y[few])
