"""Reliability of the deep estimators (issue 14): no silent garbage, no raw
crashes, clear messages, untouched global random states, ``sample_weight``."""

import contextlib
import copy
import pickle
import re
import warnings

import numpy as np
import pytest
import torch
from sklearn.exceptions import NotFittedError
from skorch.callbacks import Callback, EarlyStopping
from skorch.dataset import ValidSplit
from skorch.utils import to_tensor

from mmfuse.datasets import make_multiview
from mmfuse.deep import (
    ContrastiveAligner,
    MLPFusionClassifier,
    MLPFusionRegressor,
    MultimodalVAE,
)
from mmfuse.deep._data import unstandardize

TINY_FUSION = {"d_model": 8, "n_tokens": 2, "n_heads": 2, "verbose": 0}
TINY_VAE = {"latent_dim": 2, "hidden": (8,)}
NONE = "1 row\\(s\\) \\(first: \\[2\\]\\) have none of the modalities"


@pytest.fixture(scope="module")
def data():
    X, latent = make_multiview(120, [5, 4, 3], n_latent=2, noise=0.5, random_state=0)
    return X, (latent[:, 0] > 0) * 1, latent


def make(kind, **params):
    """A tiny net of each kind, on blocks [5, 4, 3]."""
    params = {"blocks": [5, 4, 3], "max_epochs": 2, "random_state": 0, **params}
    if kind == "vae":
        return MultimodalVAE(**{**TINY_VAE, **params})
    cls = MLPFusionClassifier if kind == "classifier" else MLPFusionRegressor
    return cls(**{**TINY_FUSION, **params})


def target(kind, data):
    _, y, latent = data
    return {"classifier": y, "regressor": latent[:, 0], "vae": None}[kind]


KINDS = ["classifier", "regressor", "vae"]


# --------------------------------------------------------------- divergence
@pytest.mark.parametrize("kind", KINDS)
def test_a_diverging_fit_stops_with_an_error(kind, data):
    X = data[0]
    net = make(kind, lr=1e9, optimizer=torch.optim.SGD, max_epochs=3)
    with pytest.raises(
        ValueError,
        match=r"Training diverged: the (training|validation) loss became (nan|inf) "
        r"in epoch \d \(batch 1 of 1\)\. Try a lower learning rate "
        r"\(lr=1000000000.0\)",
    ):
        net.fit(X, target(kind, data))
    # the failed fit leaves the net unfitted: it predicts nothing
    with pytest.raises(NotFittedError):
        net.transform(X) if kind == "vae" else net.predict(X)


@pytest.mark.parametrize("kind", KINDS)
def test_a_diverging_partial_fit_stops_with_an_error(kind, data):
    X, y = data[0], target(kind, data)
    net = make(kind, train_split=None).partial_fit(X, y)
    net.set_params(optimizer=torch.optim.SGD, lr=1e9, max_epochs=5)
    assert isinstance(net.optimizer_, torch.optim.SGD)  # rebuilt at once
    with pytest.raises(ValueError, match="Training diverged: the training loss"):
        net.partial_fit(X, y)
    assert not net.initialized_  # the next partial_fit starts afresh


class _SpoilWeights(Callback):
    """Make a weight NaN after the last epoch's losses were checked."""

    def on_epoch_end(self, net, **kwargs):
        next(net.module_.parameters()).data.view(-1)[0] = float("nan")


def test_non_finite_weights_after_the_last_step_are_an_error(data):
    X, y, _ = data
    net = make("classifier", max_epochs=1, callbacks=[("spoil", _SpoilWeights())])
    with pytest.raises(ValueError, match="the weights are not finite after epoch 1"):
        net.fit(X, y)


def test_non_finite_outputs_are_an_error_that_says_why(data):
    X, y, _ = data
    net = make("classifier").fit(X, y)
    for weight in net.module_.parameters():
        weight.data.fill_(1e20)  # finite, but too large for float32 products
    with pytest.raises(
        ValueError,
        match=r"outputs are not finite for 120 row\(s\) \(first: .*their inputs "
        r"reach .* largest weight is 1e\+20: either the fit diverged",
    ):
        net.predict_proba(X)
    weight.data[0] = float("nan")
    with pytest.raises(ValueError, match="weights are not finite: its fit diverged"):
        net.predict_proba(X)


def test_the_loss_check_reads_a_recorded_loss_for_every_batch(data):
    # The check reads the floats skorch records (no extra device sync): it
    # relies on skorch recording one for every training batch.
    X, y, _ = data
    net = make("classifier", batch_size=16).fit(X, y)
    losses = [
        b["train_loss"] for e in net.history_ for b in e["batches"] if "train_loss" in b
    ]
    assert len(losses) == 2 * 6 and np.isfinite(losses).all()


# ------------------------------------------------- rows lacking every modality
@pytest.mark.parametrize("kind", ["classifier", "regressor"])
def test_fusion_rows_lacking_every_modality_are_errors(kind, data):
    X, y = data[0], target(kind, data)
    empty = X.copy()
    empty[2] = np.nan
    with pytest.raises(ValueError, match=NONE + r".*Drop those rows"):
        make(kind).fit(empty, y)
    with pytest.raises(ValueError, match=NONE):
        make(kind).partial_fit(empty, y)
    net = make(kind, fusion="gated").fit(X, y)
    methods = ["predict", "modality_weights", "score"]
    if kind == "classifier":
        methods.append("predict_proba")
    for method in methods:
        args = (empty, y) if method == "score" else (empty,)
        with pytest.raises(ValueError, match=NONE + ".*" + type(net).__name__):
            getattr(net, method)(*args)


def test_vae_rows_lacking_every_modality_are_errors(data):
    X = data[0]
    empty = X.copy()
    empty[2] = np.nan
    with pytest.raises(ValueError, match=NONE):
        make("vae").fit(empty)
    vae = make("vae").fit(X)
    for method in ("transform", "score", "impute", "reconstruct"):
        with pytest.raises(ValueError, match=NONE):
            getattr(vae, method)(empty)
    # rows that have none of the modalities to generate from
    only_last = X.copy()
    only_last[2, :9] = np.nan
    with pytest.raises(
        ValueError,
        match=r"\[2\]\) have none of the modalities \['block0', 'block1'\].*"
        r"reconstruct\(given=\['block0', 1\]\)",
    ):
        vae.reconstruct(only_last, given=["block0", 1])
    assert np.isfinite(vae.reconstruct(only_last, given=["block2"])).all()


# ------------------------------------------------------------------ overflow
@pytest.mark.parametrize("factor", [2.0**1000, 2.0**-1000])
def test_columns_at_extreme_scales_fit_exactly_as_in_usual_units(factor, data):
    # Scaling by a power of two is exact: the standardized data, and so the
    # predictions, are the same bit for bit; no numpy warning on the way.
    X, y, _ = data
    expected = make("classifier").fit(X, y).predict_proba(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        net = make("classifier").fit(X * factor, y)
        np.testing.assert_array_equal(net.predict_proba(X * factor), expected)
        Z = make("vae").fit(X * factor).transform(X * factor)
    np.testing.assert_array_equal(Z, make("vae").fit(X).transform(X))


def test_x_near_float64_limits_predicts_as_usual(data):
    X, y, _ = data
    expected = make("classifier").fit(X, y).predict(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        predicted = make("classifier").fit(X * 1e300, y).predict(X * 1e300)
    assert (predicted == expected).mean() > 0.95 and len(set(predicted)) == 2


def test_huge_targets_give_finite_predictions_in_their_units(data):
    X, _, latent = data
    expected = make("regressor").fit(X, latent).predict(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scaled = make("regressor").fit(X, latent * 2.0**660).predict(X)
        huge = make("regressor").fit(X, latent * 1e200).predict(X)
    np.testing.assert_array_equal(scaled, expected * 2.0**660)
    np.testing.assert_allclose(huge, expected * 1e200, rtol=1e-4)


def test_inputs_beyond_float32_after_standardizing_are_an_error(data):
    X, y, _ = data
    net = make("classifier").fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(
            ValueError,
            match=r"X\[0, 0\] = -1.00882e\+300 standardizes to -7.\d+e\+299 .*"
            r"beyond float32's range",
        ):
            net.predict(X * 1e300)
        vae = make("vae").fit(X)
        with pytest.raises(ValueError, match="Z holds values up to 1e\\+300"):
            vae.inverse_transform(np.full((2, 2), 1e300))


def test_outputs_overflowing_float64_are_an_error():
    with pytest.raises(ValueError, match=r"predictions of 1 row\(s\) \(first: \[1\]\)"):
        unstandardize(
            np.array([[1.0], [30.0]]), np.zeros(1), np.full(1, 1e307), "predictions"
        )


# ------------------------------------------------------------- random states
@pytest.mark.parametrize("kind", KINDS)
def test_inference_leaves_global_random_states_alone(kind, data):
    X, y = data[0], target(kind, data)
    net = make(kind, fusion="attention") if kind != "vae" else make(kind)
    net.fit(X, y)
    torch.manual_seed(7)
    np.random.seed(7)
    torch_state, numpy_state = torch.random.get_rng_state(), np.random.get_state()
    if kind == "vae":
        Z = net.transform(X)
        net.score(X)
        net.impute(X)
        net.reconstruct(X, given=[0])
        net.inverse_transform(Z)
        net.sample(3, random_state=0)
    else:
        net.predict(X)
        net.modality_weights(X)
        net.score(X, y)
        if kind == "classifier":
            net.predict_proba(X)
    assert torch.equal(torch.random.get_rng_state(), torch_state)
    after = np.random.get_state()
    assert all(np.array_equal(a, b) for a, b in zip(after, numpy_state, strict=True))


@pytest.mark.parametrize("kind", KINDS)
def test_partial_fit_is_seeded_and_leaves_the_global_state_alone(kind, data):
    # Only fit was seeded: two copies of one net, given the same partial_fit,
    # differed, and torch's global generator moved.
    X, y = data[0], target(kind, data)
    net = make(kind, dropout=0.2).fit(X, y)
    a, b = copy.deepcopy(net), copy.deepcopy(net)
    state = torch.random.get_rng_state()
    a.partial_fit(X, y)
    assert torch.equal(torch.random.get_rng_state(), state)
    b.partial_fit(X, y)
    output = "transform" if kind == "vae" else "predict"
    np.testing.assert_array_equal(getattr(a, output)(X), getattr(b, output)(X))
    # Each call draws anew: a second partial_fit is not the first one again.
    a.partial_fit(X, y)
    assert not np.array_equal(getattr(a, output)(X), getattr(b, output)(X))


# ------------------------------------------------------------ hyperparameters
@pytest.mark.parametrize(
    "kind, params, match",
    [
        (
            "classifier",
            {"module__encoder_hidden": (0,)},
            r"module__encoder_hidden=\(0,\) must be a tuple of positive integers.*"
            r"0 is not one",
        ),
        (
            "regressor",
            {"module__head_hidden": (4, -2)},
            r"module__head_hidden=\(4, -2\) must be .* -2 is not one",
        ),
        ("vae", {"hidden": (-4,)}, r"hidden=\(-4,\) must be a tuple of positive"),
        ("vae", {"hidden": (8.5,)}, r"hidden=\(8.5,\) must be .* 8.5 is not one"),
        ("vae", {"device": "banana"}, r"device='banana' is not a torch device"),
        ("classifier", {"device": 3.5}, r"'device' parameter of MLPFusionClassifier"),
        (
            "regressor",
            {"criterion__reduction": "sum"},
            r"criterion__reduction='sum' cannot be set",
        ),
    ],
)
def test_bad_hyperparameters_are_clear_errors(kind, params, match, data):
    X, y = data[0], target(kind, data)
    with pytest.raises(ValueError, match=match):
        make(kind).set_params(**params).fit(X, y)


@pytest.mark.parametrize("kind", KINDS)
def test_unknown_module_parameter_is_named(kind, data):
    X, y = data[0], target(kind, data)
    module = "MultimodalVAEModule" if kind == "vae" else "FusionNet"
    with pytest.raises(TypeError, match=f"module__foo is not a parameter of {module}"):
        make(kind).set_params(module__foo=1).fit(X, y)


@pytest.mark.parametrize(
    "optimizer, match",
    [
        (len, r"optimizer=<built-in function len> could not be built .* no keyword"),
        (lambda params, lr: [], r"built a list, not a torch optimizer"),
        (dict, r"optimizer=<class 'dict'> could not be built .* dictionary update"),
    ],
)
def test_an_optimizer_that_is_not_one_is_named(optimizer, match, data):
    X, y, _ = data
    with pytest.raises(TypeError, match=match):
        make("classifier", optimizer=optimizer).fit(X, y)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_cuda_without_cuda_says_so(device, data):
    X, y, _ = data
    with pytest.raises(
        ValueError,
        match=rf"device='{device}' needs a CUDA device, which is not available.*"
        r"Use device='cpu'",
    ):
        make("classifier", device=device).fit(X, y)


def test_set_lr_on_a_fitted_net_starts_the_next_schedule(data):
    X, y, _ = data
    net = make("classifier").fit(X, y).set_params(lr=0.5)
    net.partial_fit(X, y)
    assert [g["initial_lr"] for g in net.optimizer_.param_groups] == [0.5]
    # a rebuilt optimizer (new module) resumes its schedule without error
    net.set_params(module__head_hidden=(4,)).partial_fit(X, y)
    assert net.module_.fusion.heads[-1].weight.shape[1] == 4


# ----------------------------------------------------------------- messages
def test_one_class_is_learned_and_predicted_as_the_label(data):
    X = data[0]
    net = make("classifier").fit(X, ["cat"] * len(X))
    assert list(net.classes_) == ["cat"]
    assert (net.predict(X) == "cat").all()
    np.testing.assert_array_equal(net.predict_proba(X), 1.0)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("frame", [False, True])
def test_a_non_numeric_cell_is_named_with_its_column_and_modality(kind, frame, data):
    pd = pytest.importorskip("pandas")
    X, y = data[0], target(kind, data)
    names = [
        f"{m}__{i}" for m, w in zip("abc", [5, 4, 3], strict=True) for i in range(w)
    ]
    bad = pd.DataFrame(X, columns=names) if frame else X.astype(object)
    bad = bad.astype(object)
    if frame:
        bad.iloc[7, 5] = "oops"
        where = r"X column 5 \('b__0'\) of modality 'b'"
        net = make(kind, blocks="auto")
    else:
        bad[7, 5] = "oops"
        where = "X column 5 of modality 'block1'"
        net = make(kind)
    message = where + " holds 'oops' in row 7, which is not a number"
    with pytest.raises(ValueError, match=message):
        net.fit(bad, y)
    clean = pd.DataFrame(X, columns=names) if frame else X
    net.fit(clean, y)
    method = net.transform if kind == "vae" else net.predict
    with pytest.raises(ValueError, match=message):
        method(bad)


@pytest.mark.parametrize(
    "kind, split",
    [("classifier", "ValidSplit(5, stratified=True)"), ("regressor", "ValidSplit(5)")],
)
def test_too_few_rows_for_the_validation_split_say_how_to_fix(kind, split, data):
    X, y = data[0][:4], target(kind, data)[:4]
    with pytest.raises(
        ValueError,
        match=rf"holds out a validation split \(train_split={re.escape(split)}\), "
        r"which fails "
        r"on these 4 rows: .*set train_split=None",
    ):
        make(kind).fit(X, y)
    make(kind, train_split=None).fit(X, y)


def test_a_rare_class_warning_names_the_validation_split(data):
    X, y, _ = data
    y = y.copy()
    y[:2] = 2
    with pytest.warns(
        UserWarning,
        match=r"train_split=ValidSplit\(5, stratified=True\)"
        r"\): The least populated class in y has only 2 members",
    ) as caught:
        make("classifier").fit(X, y)
    # attributed to the caller's line, not to skorch's fit loop
    assert [w.filename for w in caught] == [__file__]


# ------------------------------------------------------------ sample_weight
@pytest.mark.parametrize("kind", KINDS)
def test_integer_weights_give_the_loss_of_repeated_rows(kind, data):
    # The loss of one batch with integer weights is the loss of the batch
    # with its rows repeated, to float precision.
    X, y = data[0], target(kind, data)
    net = make(kind).fit(X, y)
    inputs = net._module_input(X)
    net.module_.eval()
    with torch.no_grad():
        if kind == "vae":  # fixed noise: the per-row ELBO terms
            eps = torch.zeros(net.module_.n_draws, len(X), 2)
            y_pred = net.module_.elbo_terms(**to_tensor(inputs, "cpu"), eps=eps)
        else:
            y_pred = net.infer(to_tensor(inputs, "cpu"))
    weights = np.random.default_rng(0).integers(0, 4, len(X))
    repeat = np.repeat(np.arange(len(X)), weights)
    y_true = None if y is None else to_tensor(net._encode_target(y, reset=False), "cpu")

    def rows(values, index):
        if values is None:
            return None
        if isinstance(values, tuple):
            return tuple(v[index] for v in values)
        return values[index]

    with torch.no_grad():
        weighted = net.get_loss(
            y_pred, y_true, X={"sample_weight": torch.as_tensor(weights / 3.0)}
        )
        repeated = net.get_loss(rows(y_pred, repeat), rows(y_true, repeat), X={})
    torch.testing.assert_close(weighted.float(), repeated.float())


@pytest.mark.parametrize("kind", ["classifier", "regressor"])
def test_full_batch_fit_with_integer_weights_is_the_fit_on_repeated_rows(kind, data):
    X, y = data[0], target(kind, data)
    weights = np.random.default_rng(0).integers(0, 4, len(X))
    repeat = np.repeat(np.arange(len(X)), weights)
    params = {"fusion": "concat", "dropout": 0.0, "batch_size": -1, "train_split": None}
    weighted = make(kind, **params).fit(X, y, sample_weight=weights)
    repeated = make(kind, **params).fit(X[repeat], y[repeat])
    np.testing.assert_allclose(weighted.mean_, repeated.mean_)
    np.testing.assert_allclose(weighted.scale_, repeated.scale_)
    method = "predict_proba" if kind == "classifier" else "predict"
    np.testing.assert_allclose(
        getattr(weighted, method)(X), getattr(repeated, method)(X), atol=1e-5
    )


def test_zero_weight_rows_do_not_change_the_fit(data):
    X, y, _ = data
    junk = np.random.default_rng(1).normal(size=(30, 12)) * 50
    params = {"fusion": "late", "dropout": 0.0, "batch_size": -1, "train_split": None}
    plain = make("classifier", **params).fit(X, y)
    padded = make("classifier", **params).fit(
        np.vstack([X, junk]),
        np.r_[y, np.ones(30, int)],
        sample_weight=np.r_[np.ones(len(X)), np.zeros(30)],
    )
    np.testing.assert_allclose(padded.mean_, plain.mean_)
    np.testing.assert_allclose(
        padded.predict_proba(X), plain.predict_proba(X), atol=1e-5
    )


@pytest.mark.parametrize("kind", KINDS)
def test_partial_fit_weights_reach_the_loss(kind, data):
    # With one full batch and no dropout, the training loss of a partial_fit
    # epoch is the weighted loss of the net as it was, computed here.
    X, y = data[0], target(kind, data)
    params = {"dropout": 0.0, "batch_size": -1, "train_split": None, "max_epochs": 1}
    net = make(kind, **params).fit(X, y)
    net.module_.train()
    inputs = to_tensor(net._module_input(X), "cpu")
    torch.manual_seed(5)  # the VAE draws its noise in the forward pass
    with torch.no_grad():
        y_pred = net.infer(inputs)
        y_true = (
            None if y is None else to_tensor(net._encode_target(y, reset=False), "cpu")
        )
        losses = net._row_losses(y_pred, y_true).numpy()
    weights = np.where(losses > np.median(losses), 10.0, 1.0)
    expected = np.average(losses, weights=weights)
    if kind == "vae":  # noise differs from the fit's draw: compare loosely
        net.partial_fit(X, sample_weight=weights)
        assert net.history_[-1, "train_loss"] == pytest.approx(expected, rel=0.1)
        return
    net.partial_fit(X, y, sample_weight=weights)
    assert net.history_[-1, "train_loss"] == pytest.approx(expected, rel=1e-5)
    assert expected != pytest.approx(losses.mean(), rel=1e-2)


@pytest.mark.parametrize("kind", KINDS)
def test_sample_weight_is_validated(kind, data):
    X, y = data[0], target(kind, data)
    with pytest.raises(ValueError, match="Negative values in data passed to"):
        make(kind).fit(X, y, sample_weight=-np.ones(len(X)))
    with pytest.raises(ValueError, match="at least one non-zero"):
        make(kind).fit(X, y, sample_weight=np.zeros(len(X)))
    with pytest.raises(ValueError, match=r"sample_weight.shape == \(3,\), expected"):
        make(kind).fit(X, y, sample_weight=np.ones(3))


# ------------------------------------------------------------------ warnings
@pytest.mark.parametrize("kind", KINDS)
def test_a_normal_session_raises_no_warning(kind, data):
    X, y = data[0], target(kind, data)
    missing = X.copy()
    missing[:10, :5] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        net = make(kind).fit(missing, y, sample_weight=np.arange(len(X)) % 3)
        if kind == "vae":
            net.impute(missing)
            net.score(missing)
            net.sample(2, random_state=0)
        else:
            net.predict(missing)
            net.modality_weights(missing)
            net.partial_fit(missing, y)


def test_a_regression_target_that_is_no_number_is_named(data):
    X, y, _ = data
    labels = np.array(["low", "high"])[y]
    with pytest.raises(
        ValueError,
        match=rf"y holds '{labels[0]}' in row 0, which is not a number; "
        r"MLPFusionRegressor needs numeric targets \(for class labels, use "
        r"MLPFusionClassifier\)",
    ):
        make("regressor").fit(X, labels)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("callbacks", [[1.0], [("stop", 1.0)], [("stop",)]])
def test_callbacks_that_are_not_callbacks_are_named(kind, callbacks, data):
    X, y = data[0], target(kind, data)
    with pytest.raises(
        ValueError,
        match=r"callbacks holds .*, which is neither a skorch Callback nor a "
        r"\(name, Callback\) pair",
    ):
        make(kind, callbacks=callbacks).fit(X, y)


@pytest.mark.parametrize(
    "kind, params, error, match",
    [
        (
            kind,
            {"module__encoder": {"block1": lambda i, o: torch.nn.Linear(i, 3)}},
            ValueError,
            r"the encoder of modality 1, built as f\(in_features=4, out_features="
            r"\d+\), gives 3 outputs a row; it must give out_features",
        )
        for kind in KINDS
    ]
    + [
        (
            "vae",
            {"module__encoder": torch.nn.Linear(5, 4)},
            TypeError,
            r"the encoder of modality 0 is given as a module instance \(Linear\); "
            r"give its class, or a factory",
        ),
        (
            "classifier",
            {"module__encoder": lambda i, o: "not a module"},
            TypeError,
            r"the encoder of modality 0: its factory returned str",
        ),
        (
            "vae",
            {"module__decoder": lambda i, o: torch.nn.Linear(i + 1, o)},
            ValueError,
            r"the decoder of modality 0, built as f\(in_features=2, out_features=5"
            r"\), fails on a batch of 2 columns",
        ),
    ],
)
def test_custom_modules_of_the_wrong_shape_are_named(kind, params, error, match, data):
    # They failed mid-training with torch's shape errors ("mat1 and mat2
    # shapes cannot be multiplied"), or a TypeError from forward().
    X, y = data[0], target(kind, data)
    with pytest.raises(error, match=match):
        make(kind).set_params(**params).fit(X, y)


@pytest.mark.parametrize("kind", KINDS)
def test_a_modality_missing_in_every_training_row_is_named(kind, data):
    # Its encoder and decoder were never trained, and predictions, imputations
    # and samples used them silently.
    X, y = data[0].copy(), target(kind, data)
    X[:, 5:9] = np.nan
    with pytest.raises(
        ValueError,
        match=r"modality 'block1' has no value in any row: all 4 of its columns "
        r"\(first: \[5, 6, 7, 8\]\) are NaN in every row, so "
        rf"{type(make(kind)).__name__} cannot learn from it",
    ):
        make(kind).fit(X, y)


@pytest.mark.parametrize("kind", KINDS)
def test_a_validation_monitor_without_a_split_is_named(kind, data):
    # skorch raised a bare KeyError ("Key 'valid_loss' was not found in
    # history") after the first epoch.
    X, y = data[0], target(kind, data)
    stop = [("stop", EarlyStopping(patience=2))]
    with pytest.raises(
        ValueError,
        match=r"callback 'stop' \(EarlyStopping\) monitors 'valid_loss', a score "
        r"of the validation split, but train_split=None holds none out",
    ):
        make(kind, callbacks=stop, train_split=None).fit(X, y)
    watching_training = [("stop", EarlyStopping(monitor="train_loss"))]
    make(kind, callbacks=watching_training, train_split=None).fit(X, y)
    make(kind, callbacks=stop, train_split=ValidSplit(4)).fit(X, y)


def test_regression_score_does_not_overflow_at_huge_targets(data):
    X, _, latent = data
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plain = make("regressor").fit(X, latent[:, 0])
        huge = make("regressor").fit(X, latent[:, 0] * 1e200)
        assert huge.score(X, latent[:, 0] * 1e200) == pytest.approx(
            plain.score(X, latent[:, 0]), rel=1e-12
        )


@pytest.mark.parametrize(
    "split, match",
    [
        (dict, r"train_split=<class 'dict'> could not split the rows: "),
        (lambda dataset, y: 3, r"returned 3, not a \(train, valid\) pair"),
    ],
)
def test_a_train_split_that_does_not_split_is_named(split, match, data):
    X, y, _ = data
    with pytest.raises(TypeError, match=match):
        make("classifier", train_split=split).fit(X, y)


@contextlib.contextmanager
def storages_saved_as_cuda():
    """Pickle tensors as torch pickles CUDA tensors: with location ``cuda:0``."""
    entry = (0, lambda storage: "cuda:0", lambda storage, location: None)
    torch.serialization._package_registry.insert(0, entry)
    try:
        yield
    finally:
        torch.serialization._package_registry.remove(entry)


def outputs(net, X):
    return net.transform(X) if hasattr(net, "transform") else net.predict(X)


@pytest.mark.skipif(torch.cuda.is_available(), reason="loads without CUDA")
@pytest.mark.parametrize("kind", ["classifier", "regressor", "vae", "aligner"])
def test_a_net_pickled_on_a_gpu_loads_on_a_machine_without_one(kind, data):
    # A net trained on a GPU (here: its tensors pickled as CUDA tensors) must
    # load where there is none, every tensor of it: the fusion nets' and the
    # aligner's learning-rate schedulers hold their optimizers.
    X = data[0]
    if kind == "aligner":
        y = None
        net = ContrastiveAligner(blocks=[5, 4, 3], max_epochs=2, random_state=0)
    else:
        y, net = target(kind, data), make(kind)
    expected = outputs(net.fit(X, y), X)
    with storages_saved_as_cuda():
        saved = pickle.dumps(net.set_params(device="cuda"))
    with pytest.warns(UserWarning) as caught:  # skorch's two device warnings
        loaded = pickle.loads(saved)
    assert "no CUDA devices are available" in " ".join(str(w.message) for w in caught)
    assert str(loaded.device) == "cpu"
    np.testing.assert_array_equal(outputs(loaded, X), expected)
    for _, callback in loaded.callbacks_:
        if hasattr(callback, "lr_scheduler_"):  # steps the net's own optimizer
            assert callback.lr_scheduler_.optimizer is loaded.optimizer_
    loaded.partial_fit(X, y)  # and trains on
