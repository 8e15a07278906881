"""Tests of the skorch estimator base and the MLP fusion nets (tiny, CPU)."""

import math
import pickle
import re

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, cross_validate
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from skorch.callbacks import EarlyStopping

from mmfuse.datasets import make_multiview
from mmfuse.deep import MLPFusionClassifier, MLPFusionRegressor
from mmfuse.deep._fusion_module import FUSIONS, Fusion, FusionNet
from mmfuse.deep._layers import MLP

TINY = {"d_model": 8, "n_tokens": 2, "n_heads": 2, "verbose": 0, "random_state": 0}


@pytest.fixture(scope="module")
def data():
    X, latent = make_multiview(120, [5, 4, 3], n_latent=2, random_state=0)
    y = (latent[:, 0] > 0).astype(int) + (latent[:, 1] > 0)
    return X, y, latent


def classifier(**params):
    return MLPFusionClassifier(blocks=[5, 4, 3], **{**TINY, "max_epochs": 2, **params})


# ------------------------------------------------------------------ base plumbing
def test_init_only_stores_and_prefixed_params_survive_clone():
    clf = classifier()
    assert "module__cls_token" not in clf.get_params()
    clf.set_params(module__cls_token=False, optimizer__weight_decay=0.5, lr=0.01)
    assert clf.get_params()["module__cls_token"] is False
    copy = clone(clf)
    assert copy.get_params(deep=False).keys() == clf.get_params(deep=False).keys()
    assert copy.optimizer__weight_decay == 0.5 and copy.lr == 0.01
    assert not hasattr(copy, "module_")


def test_prefixed_params_reach_module_optimizer_and_callbacks(data):
    X, y, _ = data
    clf = classifier(fusion="attention").set_params(
        module__head_hidden=(7,),
        optimizer__weight_decay=0.25,
        callbacks__print_log=None,
    )
    clf.fit(X, y)
    assert clf.module_.fusion.head[0].out_features == 7
    assert clf.optimizer_.param_groups[0]["weight_decay"] == 0.25
    assert "print_log" not in dict(clf.callbacks_)


def test_label_smoothing_reaches_the_loss(data):
    X, y, _ = data
    assert classifier().fit(X, y).criterion_.label_smoothing == 0.1
    clf = classifier(label_smoothing=0.0).fit(X, y)
    assert clf.criterion_.label_smoothing == 0.0
    with pytest.raises(ValueError, match="criterion__label_smoothing duplicates"):
        classifier().set_params(criterion__label_smoothing=0.2).fit(X, y)


def test_unknown_prefixed_param_is_reported(data):
    X, y, _ = data
    clf = classifier().set_params(modul__d_model=3)
    with pytest.raises(ValueError, match="unexpected argument.*modul__d_model"):
        clf.fit(X, y)


def test_module_param_duplicating_an_estimator_param_is_rejected(data):
    X, y, _ = data
    with pytest.raises(ValueError, match="module__d_model duplicates.*set d_model"):
        classifier().set_params(module__d_model=16).fit(X, y)


def test_same_seed_same_predictions_and_global_rng_untouched(data):
    X, y, _ = data
    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    fitted = classifier(modality_dropout=0.3).fit(X, y)
    assert torch.equal(torch.rand(3), before)
    first = fitted.predict_proba(X)
    second = classifier(modality_dropout=0.3).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(first, second)
    other = classifier(random_state=1).fit(X, y).predict_proba(X)
    assert np.abs(first - other).max() > 1e-4


def test_columns_are_standardized_inside(data):
    # An affine change of the columns changes nothing: the net standardizes.
    X, y, _ = data
    scaled = X * np.linspace(1, 1000, X.shape[1]) + 50
    np.testing.assert_allclose(
        classifier().fit(X, y).predict_proba(X),
        classifier().fit(scaled, y).predict_proba(scaled),
        atol=1e-5,
    )


def test_pickle_round_trip(data):
    X, y, _ = data
    clf = classifier().fit(X, y)
    loaded = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    assert loaded.history[-1, "epoch"] == 2


def test_predictions_do_not_depend_on_batch_size(data):
    X, y, _ = data
    clf = classifier(fusion="co_attention").fit(X, y)
    full = clf.predict_proba(X)
    clf.set_params(batch_size=7)
    np.testing.assert_allclose(clf.predict_proba(X), full, atol=1e-6)


def test_early_stopping_with_default_validation_split(data):
    X, y, _ = data
    clf = classifier(
        max_epochs=60, lr=0.05, callbacks=[("stop", EarlyStopping(patience=2))]
    ).fit(X, y)
    n_epochs = len(clf.history)
    assert 3 <= n_epochs < 60
    assert np.isfinite(clf.history[:, "valid_loss"]).all()


def test_training_batches_are_shuffled_and_read_whole(data):
    X, y, _ = data
    clf = classifier(batch_size=50).fit(X, y)
    dataset = clf.get_dataset(clf._module_input(X), y)
    batches = [batch for batch, _ in clf.get_iterator(dataset, training=True)]
    assert [len(batch["X"]) for batch in batches] == [50, 50, 20]
    rows = torch.cat([batch["X"] for batch in batches]).numpy()
    expected = dataset.X["X"]
    assert not np.array_equal(rows, expected)  # shuffled, not in order
    np.testing.assert_array_equal(np.sort(rows, axis=0), np.sort(expected, axis=0))
    in_order = classifier().set_params(iterator_train__shuffle=False).fit(X, y)
    batch, _ = next(iter(in_order.get_iterator(dataset, training=True)))
    np.testing.assert_array_equal(batch["X"].numpy(), expected[: in_order.batch_size])


def test_learning_rate_decays_on_a_cosine_and_restarts(data):
    X, y, _ = data
    clf = classifier(max_epochs=4, lr=0.01).fit(X, y)
    expected = [0.01 * (1 + np.cos(np.pi * t / 4)) / 2 for t in range(4)]
    np.testing.assert_allclose(clf.history[:, "event_lr"], expected)
    clf.partial_fit(X, y)  # a warm restart: the same decay again
    np.testing.assert_allclose(clf.history[:, "event_lr"], expected * 2)
    constant = classifier(lr=0.01).set_params(callbacks__lr_scheduler=None).fit(X, y)
    assert "event_lr" not in constant.history[-1]
    assert constant.optimizer_.param_groups[0]["lr"] == 0.01


def test_verbose_prints_epochs_and_zero_is_silent(data, capsys):
    X, y, _ = data
    classifier(verbose=0).fit(X, y)
    assert capsys.readouterr().out == ""
    classifier(verbose=1).fit(X, y)
    out = capsys.readouterr().out
    assert "train_loss" in out and "valid_loss" in out
    assert len([line for line in out.splitlines() if line.strip()[:1] == "2"]) == 1


def test_partial_fit_continues_training(data):
    X, y, _ = data
    clf = classifier(fusion="concat", max_epochs=1).partial_fit(X, y)
    weights = clf.module_.fusion.head[-1].weight.detach().clone()
    clf.partial_fit(X, y)
    assert len(clf.history) == 2
    assert not torch.equal(weights, clf.module_.fusion.head[-1].weight)
    with pytest.raises(ValueError, match="X has 11 features"):
        clf.partial_fit(X[:, :-1], y)


def test_pipeline_grid_search_and_cross_validate(data):
    X, y, _ = data
    pipe = make_pipeline(FunctionTransformer(), classifier())
    search = GridSearchCV(
        pipe,
        {
            "mlpfusionclassifier__fusion": ["gated", "late"],
            "mlpfusionclassifier__module__cls_token": [True],
        },
        cv=2,
    ).fit(X, y)
    assert search.best_params_["mlpfusionclassifier__fusion"] in {"gated", "late"}
    scores = cross_validate(classifier(), X, y, cv=3)["test_score"]
    assert scores.shape == (3,) and (scores > 0.2).all()


# ---------------------------------------------------------------- fusion nets
@pytest.mark.parametrize("fusion", FUSIONS)
def test_every_fusion_learns_and_handles_missing_modalities(data, fusion):
    X, y, _ = data
    clf = classifier(fusion=fusion, max_epochs=15, lr=0.01, train_split=None)
    clf.fit(X, y)
    assert clf.score(X, y) > 0.75
    missing = X.copy()
    missing[::3, :5] = np.nan  # modality 0 missing in a third of the rows
    missing[1::3, 5:] = np.nan  # modalities 1 and 2 missing in another third
    proba = clf.predict_proba(missing)
    assert np.isfinite(proba).all()
    np.testing.assert_allclose(proba.sum(1), 1)
    if fusion == "concat":
        with pytest.raises(ValueError, match="fusion='concat' has no per-row"):
            clf.modality_weights(missing)
        return
    weights = clf.modality_weights(missing)
    assert weights.shape == (len(X), 3)
    assert (weights[::3, 0] == 0).all() and (weights[1::3, 1:] == 0).all()
    np.testing.assert_allclose(weights.sum(1), 1, atol=1e-5)


def test_attention_weights_follow_the_informative_modality():
    # Only modality "b" carries the label: attention and gates should favour it
    # (trained on the plain labels: with label smoothing, a gate may lean on the
    # noise modality to soften the outputs).
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 6))
    y = (X[:, 3] + X[:, 4] > 0).astype(int)
    for fusion in ["attention", "gated"]:
        clf = MLPFusionClassifier(
            blocks={"a": [0, 1, 2], "b": [3, 4, 5]},
            fusion=fusion,
            **{**TINY, "max_epochs": 30, "lr": 0.01, "batch_size": 64},
            train_split=None,
            label_smoothing=0.0,
        ).fit(X, y)
        assert clf.modality_names_ == ["a", "b"]
        assert clf.modality_weights(X)[:, 1].mean() > 0.55


def test_modality_dropout_improves_predictions_without_a_modality(data):
    X, y, _ = data
    test = X.copy()
    test[:, :5] = np.nan
    params = {"fusion": "concat", "max_epochs": 25, "lr": 0.01, "train_split": None}
    # Mean over three seeds: one tiny net's score swings by a few rows.
    plain, robust = (
        np.mean(
            [
                classifier(**params, modality_dropout=p, random_state=seed)
                .fit(X, y)
                .score(test, y)
                for seed in range(3)
            ]
        )
        for p in (0.0, 0.5)
    )
    assert robust > plain + 0.03


def test_string_labels_and_classes(data):
    X, y, _ = data
    labels = np.array(["cat", "dog", "eel"])[y]
    clf = classifier(fusion="gated").fit(X, labels)
    assert list(clf.classes_) == ["cat", "dog", "eel"]
    assert set(clf.predict(X)) <= set(clf.classes_)
    with pytest.raises(ValueError, match="previously unseen labels"):
        clf.partial_fit(X[:3], ["cat", "dog", "fox"])


def test_regressor_single_and_multi_output(data):
    X, _, latent = data
    params = {**TINY, "max_epochs": 20, "lr": 0.01, "train_split": None}
    reg = MLPFusionRegressor(blocks=[5, 4, 3], **params).fit(X, latent * 100 + 7)
    prediction = reg.predict(X)
    assert prediction.shape == (len(X), 2) and prediction.dtype == np.float64
    assert reg.score(X, latent * 100 + 7) > 0.6
    single = MLPFusionRegressor(blocks=[5, 4, 3], **params).fit(X, latent[:, 0])
    assert single.predict(X).shape == (len(X),)
    assert single.score(X, latent[:, 0]) > 0.6


def test_custom_encoder_per_modality(data):
    X, y, _ = data

    class Linear(torch.nn.Linear):
        pass

    clf = classifier().set_params(module__encoder={"block1": Linear}).fit(X, y)
    kinds = [type(encoder).__name__ for encoder in clf.module_.encoders]
    assert kinds == ["MLP", "Linear", "MLP"]
    with pytest.raises(ValueError, match=r"unknown modalities \['text'\]"):
        classifier().set_params(module__encoder={"text": Linear}).fit(X, y)
    # A list gives one a modality, as every per-modality parameter of mmfuse.
    clf = classifier().set_params(module__encoder=[Linear, None, Linear]).fit(X, y)
    kinds = [type(encoder).__name__ for encoder in clf.module_.encoders]
    assert kinds == ["Linear", "MLP", "Linear"]
    with pytest.raises(ValueError, match=r"module__encoder=5 must be a callable"):
        classifier().set_params(module__encoder=5).fit(X, y)
    with pytest.raises(ValueError, match=r"has 2 entries but there are 3 modalities"):
        classifier().set_params(module__encoder=[Linear, Linear]).fit(X, y)


def test_parameter_errors(data):
    X, y, _ = data
    with pytest.raises(ValueError, match="d_model=10 is not divisible by n_heads=4"):
        classifier(fusion="attention", d_model=10, n_heads=4).fit(X, y)
    classifier(fusion="gated", d_model=10, n_heads=4).fit(X, y)  # no attention
    with pytest.raises(ValueError, match="'fusion' parameter of MLPFusionClassifier"):
        classifier(fusion="sum").fit(X, y)


def test_dataframe_blocks_auto():
    pd = pytest.importorskip("pandas")
    from mmfuse.datasets import load_mfeat

    frame = load_mfeat(views=["fou", "zer"], as_frame=True)
    X, y = frame.data.iloc[::10], frame.target[::10]
    clf = MLPFusionClassifier(**{**TINY, "max_epochs": 1}).fit(X, y)
    assert clf.modality_names_ == ["fou", "zer"]
    assert isinstance(X, pd.DataFrame) and clf.predict(X).shape == (len(X),)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu_and_pickles(data):
    X, y, _ = data
    gpu = classifier(device="cuda", train_split=None).fit(X, y)
    assert next(gpu.module_.parameters()).is_cuda
    loaded = pickle.loads(pickle.dumps(gpu))
    np.testing.assert_allclose(loaded.predict_proba(X), gpu.predict_proba(X))
    assert gpu.score(X, y) > 0.3


@pytest.mark.parametrize("fusion", ["attention", "cross_attention"])
def test_cls_token_readout(data, fusion):
    X, y, _ = data
    clf = classifier(fusion=fusion).set_params(module__cls_token=True).fit(X, y)
    missing = X.copy()
    missing[:10, 5:] = np.nan
    weights = clf.modality_weights(missing)
    np.testing.assert_allclose(weights.sum(1), 1, atol=1e-5)
    assert (weights[:10] == [1, 0, 0]).all()
    assert np.isfinite(clf.predict_proba(missing)).all()


def test_the_fusion_docs_list_the_registered_fusions():
    assert list(FUSIONS) == [
        "concat",
        "attention",
        "cross_attention",
        "co_attention",
        "gated",
        "late",
    ]
    for estimator in (MLPFusionClassifier, MLPFusionRegressor):
        listed = re.search(r"fusion : \{(.*?)\}", estimator.__doc__, re.S).group(1)
        assert re.findall(r'"(\w+)"', listed) == list(FUSIONS)
        for name in FUSIONS:
            assert f'- ``"{name}"``: ' in estimator.__doc__


@pytest.fixture
def restore_fusions():
    saved = dict(FUSIONS)
    yield
    FUSIONS.clear()
    FUSIONS.update(saved)


def test_a_new_fusion_is_one_class(data, restore_fusions):
    class MaxFusion(Fusion, name="max"):
        """The head on the largest value of each token coordinate."""

        def __init__(self, n_modalities, n_outputs, **settings):
            super().__init__(n_modalities, n_outputs, **settings)
            self.head = MLP(self.d_model, n_outputs, self.head_hidden)

        def forward(self, tokens, mask):
            absent = ~mask.T[:, :, None, None]
            return self.head(tokens.masked_fill(absent, -math.inf).amax((0, 2)))

    assert FUSIONS["max"] is MaxFusion and MaxFusion.name == "max"
    X, y, _ = data
    missing = X.copy()
    missing[::2, :5] = np.nan
    clf = classifier(fusion="max").fit(missing, y)
    assert isinstance(clf.module_.fusion, MaxFusion)
    assert np.isfinite(clf.predict_proba(missing)).all()
    with pytest.raises(
        ValueError,
        match="fusion='max' has no per-row modality weights; use 'attention', "
        "'cross_attention', 'co_attention', 'gated' or 'late'",
    ):
        clf.modality_weights(X)
    with pytest.raises(ValueError, match="'fusion' parameter .* among .*'max'"):
        classifier(fusion="min").fit(X, y)


def test_cross_attention_differs_from_self_attention():
    X = torch.randn(5, 12)
    mask = torch.ones(5, 3, dtype=torch.bool)
    outputs = []
    for fusion in ["attention", "cross_attention"]:
        torch.manual_seed(0)
        net = FusionNet([range(5), range(5, 9), range(9, 12)], 3, fusion=fusion)
        outputs.append(net.eval()(X, mask))
    assert (outputs[0] - outputs[1]).abs().max() > 1e-4


def test_late_weights_are_equal_shares(data):
    X, y, _ = data
    clf = classifier(fusion="late").fit(X, y)
    missing = X.copy()
    missing[0, :5] = np.nan
    np.testing.assert_allclose(
        clf.modality_weights(missing[:2]), [[0, 0.5, 0.5], [1 / 3] * 3]
    )
