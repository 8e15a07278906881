import math
import pickle
import warnings
from functools import partial

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from skorch.callbacks import Checkpoint, EarlyStopping
from skorch.dataset import ValidSplit
from torch import distributions as D

from mmfuse.datasets import make_multiview
from mmfuse.deep import KLWarmup, MultimodalVAE
from mmfuse.deep._layers import MLP, GroupedMLP, ModalityEncoders
from mmfuse.deep._vae_module import (
    LIKELIHOODS,
    MultimodalVAEModule,
    NegativeELBO,
    _GaussianLogProb,
    kl_standard_normal,
    products_of_experts,
)

AGGREGATIONS = ["poe", "moe", "mopoe"]
WIDTHS = [5, 4, 3]
TINY = {"latent_dim": 2, "hidden": (8,), "max_epochs": 2, "random_state": 0}
PLUS = {**TINY, "aggregation": "moe", "private_dim": 3}  # MMVAE+


@pytest.fixture(scope="module")
def data():
    X, latent = make_multiview(120, WIDTHS, n_latent=2, noise=0.1, random_state=0)
    return X, latent


def with_missing(X):
    """Rows 0-9 lack block 0, rows 10-19 block 2, row 20 has only block 1."""
    X = X.copy()
    X[:10, :5] = np.nan
    X[10:20, 9:] = np.nan
    X[20, :5] = X[20, 9:] = np.nan
    return X


@pytest.fixture(scope="module", params=AGGREGATIONS)
def fitted(request, data):
    X, _ = data
    vae = MultimodalVAE(blocks=WIDTHS, aggregation=request.param, **TINY)
    return vae.fit(with_missing(X))


# ---------------------------------------------------------------- modules
def test_products_of_experts_match_precision_weighting():
    gen = torch.Generator().manual_seed(0)
    mu = torch.randn(3, 4, 2, generator=gen)
    logvar = torch.randn(3, 4, 2, generator=gen)
    mask = torch.tensor([[1, 1, 0, 1], [1, 0, 0, 1], [0, 1, 0, 1]], dtype=torch.bool).T
    subsets = torch.tensor([[1, 1, 1], [0, 1, 1], [1, 0, 0]], dtype=torch.bool)
    joint_mu, joint_logvar = products_of_experts(mu, logvar, mask, subsets)
    assert joint_mu.shape == joint_logvar.shape == (3, 4, 2)
    for s, subset in enumerate(subsets):
        experts = (mask & subset).T.unsqueeze(-1)
        precision = torch.exp(-logvar) * experts
        total = 1.0 + precision.sum(0)  # the prior expert has precision 1, mean 0
        torch.testing.assert_close(joint_logvar[s], -torch.log(total))
        torch.testing.assert_close(joint_mu[s], (precision * mu).sum(0) / total)
    # row 2 has no expert: the prior
    assert torch.all(joint_mu[:, 2] == 0) and torch.all(joint_logvar[:, 2] == 0)


def test_products_of_experts_are_finite_for_extreme_experts():
    mu = torch.tensor([[[1.0]], [[-1.0]]])
    logvar = torch.tensor([[[-80.0]], [[80.0]]])  # exp overflows float32 at ~88
    # an absent expert with an overflowing precision takes no part either
    mu, logvar = torch.cat([mu, mu]), torch.cat([logvar, torch.full_like(logvar, -200)])
    mask = torch.tensor([[True, True, False, False]])
    subsets = torch.tensor([[1, 1, 1, 1], [0, 1, 0, 1]], dtype=torch.bool)
    joint_mu, joint_logvar = products_of_experts(mu, logvar, mask, subsets)
    assert torch.isfinite(joint_mu).all() and torch.isfinite(joint_logvar).all()
    assert joint_mu[0].item() == pytest.approx(1.0)
    assert joint_logvar[0].item() == pytest.approx(-80.0)
    # the vague expert alone: the prior's precision dominates
    assert joint_mu[1].item() == pytest.approx(0.0, abs=1e-30)
    assert joint_logvar[1].item() == pytest.approx(0.0, abs=1e-6)


def test_kl_matches_torch_distributions():
    mu, logvar = torch.randn(6, 3), torch.randn(6, 3)
    q = D.Normal(mu, torch.exp(0.5 * logvar))
    p = D.Normal(torch.zeros(3), torch.ones(3))
    expected = D.kl_divergence(q, p).sum(-1)
    torch.testing.assert_close(kl_standard_normal(mu, logvar), expected)


@pytest.mark.parametrize(
    "kind, scale, reference",
    [
        ("gaussian", 0.5, lambda mean: D.Normal(mean, 0.5)),
        ("gaussian", "learn", lambda mean: D.Normal(mean, 1.0)),
        ("laplace", 2.0, lambda mean: D.Laplace(mean, 2.0)),
        (
            "bernoulli",
            None,
            lambda logits: D.Bernoulli(logits=logits, validate_args=False),
        ),
    ],
)
@pytest.mark.parametrize("samples", [(), (3, 2)])
def test_likelihoods_match_torch_distributions(kind, scale, reference, samples):
    # Outputs of several samples a row (leading axes) are read against one x.
    gen = torch.Generator().manual_seed(0)
    output = torch.randn(*samples, 5, 4, generator=gen)
    x = torch.rand(5, 4, generator=gen)
    likelihood = LIKELIHOODS[kind](4, scale)
    if scale == "learn":
        with torch.no_grad():
            likelihood.log_scale.copy_(torch.tensor([-1.0, 0.0, 0.5, 1.0]))
        reference = partial(D.Normal, scale=likelihood.log_scale.exp())
    expected = reference(output).log_prob(x).sum(-1)
    torch.testing.assert_close(likelihood.log_prob(x, output), expected)


@pytest.mark.parametrize("samples", [(), (3, 2)])
def test_gaussian_likelihood_gradients_match_torch_distributions(samples):
    # The log-likelihood's own backward pass (a fused autograd function)
    # against autograd through torch.distributions, a learned scale not 1.
    gen = torch.Generator().manual_seed(0)
    output = torch.randn(*samples, 5, 4, generator=gen, requires_grad=True)
    x = torch.rand(5, 4, generator=gen)
    weights = torch.rand(*samples, 5, generator=gen)
    likelihood = LIKELIHOODS["gaussian"](4, "learn")
    with torch.no_grad():
        likelihood.log_scale.copy_(torch.tensor([-5.0, 0.0, 0.5, 1.0]))  # one clamped
    grads = []
    for log_prob in (
        likelihood.log_prob,
        lambda x, output: (
            D.Normal(output, likelihood._log_scale().exp()).log_prob(x).sum(-1)
        ),
    ):
        output.grad = likelihood.log_scale.grad = None
        (weights * log_prob(x, output)).sum().backward()
        grads.append((output.grad, likelihood.log_scale.grad))
    for actual, expected in zip(*grads, strict=True):
        torch.testing.assert_close(actual, expected)
    assert likelihood.log_scale.grad[0] == 0  # below the floor: no gradient


@pytest.mark.parametrize(
    ("output_shape", "x_shape"), [((2, 3, 4), (3, 4)), ((4,), (3, 4))]
)
def test_gaussian_log_prob_function_gradients_are_exact(output_shape, x_shape):
    # Either argument may be broadcast against the other.
    gen = torch.Generator().manual_seed(0)
    output = torch.randn(output_shape, generator=gen, dtype=torch.double)
    x = torch.randn(x_shape, generator=gen, dtype=torch.double)
    log_scale = 0.3 * torch.randn(4, generator=gen, dtype=torch.double)
    inputs = [t.requires_grad_() for t in (output, x, log_scale)]
    assert torch.autograd.gradcheck(_GaussianLogProb.apply, inputs)


def test_learned_scale_is_a_parameter_and_bounded():
    likelihood = LIKELIHOODS["gaussian"](3, "learn")
    assert [n for n, _ in likelihood.named_parameters()] == ["log_scale"]
    with torch.no_grad():
        likelihood.log_scale.fill_(-50.0)
    value = likelihood.log_prob(torch.zeros(1, 3), torch.ones(1, 3))
    # scale floored at 0.01: each feature contributes -0.5 * 100**2 + log(100) - ...
    expected = 3 * (-0.5 * 100.0**2 + math.log(100.0) - 0.5 * math.log(2 * math.pi))
    assert value.item() == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("aggregation", AGGREGATIONS)
def test_missing_modality_values_do_not_affect_the_elbo(aggregation):
    blocks = [list(range(0, 5)), list(range(5, 9)), list(range(9, 12))]
    torch.manual_seed(0)
    module = MultimodalVAEModule(
        blocks, latent_dim=2, hidden=(8,), aggregation=aggregation
    )
    X = torch.randn(6, 12)
    mask = torch.tensor(
        [[1, 1, 1], [0, 1, 1], [1, 0, 0], [0, 0, 1], [1, 0, 1], [0, 0, 0]],
        dtype=torch.bool,
    )
    X_other = X.clone()
    X_other[~mask[:, 0], :5] = 100.0  # change only what is missing
    X_other[~mask[:, 1], 5:9] = -7.0
    X_other[~mask[:, 2], 9:] = 3.0
    generator = torch.Generator().manual_seed(1)
    eps = torch.randn(1, module.n_draws, 6, 2, generator=generator)
    u = torch.rand(6, generator=generator)
    terms = [module.elbo_terms(x, mask, eps=eps, u=u) for x in (X, X_other)]
    for a, b in zip(*terms, strict=True):
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(
        module.posterior_mean(X, mask), module.posterior_mean(X_other, mask)
    )
    # the row with no modality has the prior: zero KL and log-likelihood
    assert terms[0][0][-1].item() == 0.0 and terms[0][1][-1].item() == 0.0


def test_blocks_out_of_order_read_only_their_columns():
    # Blocks neither consecutive nor in column order, and column 2 in none:
    # each modality's encoder must read its own columns, and nothing else.
    torch.manual_seed(0)
    module = MultimodalVAEModule([[3, 5], [0, 1], [4]], latent_dim=2, hidden=(8,))
    X = torch.randn(4, 6)
    mask = torch.ones(4, 3, dtype=torch.bool)
    mean = module.posterior_mean(X, mask)
    X_other = X.clone()
    X_other[:, 2] = 50.0
    torch.testing.assert_close(module.posterior_mean(X_other, mask), mean)
    X_other[:, 4] += 1.0  # the third modality's only column
    assert not torch.allclose(module.posterior_mean(X_other, mask), mean)
    # the mean of modality [0, 1] alone is its own expert's (with the prior)
    alone = torch.tensor([[False, True, False]] * 4)
    moved = X.clone()
    moved[:, [2, 3, 4, 5]] = 9.0
    torch.testing.assert_close(
        module.posterior_mean(moved, alone), module.posterior_mean(X, alone)
    )


def test_moe_posterior_mean_is_mean_of_present_experts():
    torch.manual_seed(0)
    module = MultimodalVAEModule([[0, 1], [2, 3, 4]], latent_dim=3, aggregation="moe")
    X = torch.randn(4, 5)
    mask = torch.tensor([[1, 1], [1, 0], [0, 1], [1, 1]], dtype=torch.bool)
    mu, _ = module._encode(X)
    expected = torch.stack([(mu[0, 0] + mu[1, 0]) / 2, mu[0, 1], mu[1, 2]])
    torch.testing.assert_close(module.posterior_mean(X, mask)[:3], expected)


def test_mopoe_mixes_the_subsets_of_present_modalities():
    torch.manual_seed(0)
    module = MultimodalVAEModule([[0], [1], [2]], latent_dim=2, aggregation="mopoe")
    assert module.subsets.shape == (7, 3)
    X = torch.randn(2, 3)
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]], dtype=torch.bool)
    mu, logvar = module._encode(X)
    _, _, weights = module._subset_posteriors(mu, logvar, mask)
    assert weights[:, 0].gt(0).sum().item() == 3  # {0}, {1}, {0, 1}
    assert weights[:, 1].gt(0).sum().item() == 7
    torch.testing.assert_close(weights.sum(0), torch.ones(2))
    # first row: mean of the products {0}, {1}, {0, 1}, each with the prior
    subsets = torch.tensor([[1, 0, 0], [0, 1, 0], [1, 1, 0]], dtype=torch.bool)
    products = products_of_experts(mu[:, :1], logvar[:, :1], mask[:1], subsets)[0]
    expected = products.mean(0)[0]
    torch.testing.assert_close(module.posterior_mean(X, mask)[0], expected)


def test_poe_objective_is_the_joint_and_each_modality_own_elbo():
    """MVAE's objective, by hand: ELBO(x) + sum over present m of ELBO(x_m)."""
    torch.manual_seed(0)
    blocks = [[0, 1], [2, 3, 4]]
    module = MultimodalVAEModule(blocks, latent_dim=2, hidden=(3,), aggregation="poe")
    X = torch.randn(4, 5)
    mask = torch.tensor([[1, 1], [1, 0], [0, 1], [1, 1]], dtype=torch.bool)
    torch.manual_seed(1)
    loss = NegativeELBO(beta=0.5)(module(X, mask)).mean()
    torch.manual_seed(1)
    eps = torch.randn(3, 4, 2)  # the joint posterior's noise, then each expert's

    with torch.no_grad():
        mu, logvar = module._encode(X)  # the experts, (modality, row, latent)

        def posterior(experts, row):
            precision = 1.0 + sum(torch.exp(-logvar[m, row]) for m in experts)
            mean = sum(torch.exp(-logvar[m, row]) * mu[m, row] for m in experts)
            return mean / precision, 1.0 / precision

        def log_likelihood(m, z, row):
            lik = module.likelihoods[m]
            scale = torch.exp(lik.log_scale.clamp(min=math.log(1e-2)))
            mean = module.decoders[m](z)
            return D.Normal(mean, scale).log_prob(X[row, blocks[m]]).sum()

        def elbo(experts, reconstructed, noise, row):
            mean, var = posterior(experts, row)
            z = mean + noise * var.sqrt()
            kl = D.kl_divergence(D.Normal(mean, var.sqrt()), D.Normal(0.0, 1.0))
            ll = sum(log_likelihood(m, z, row) for m in reconstructed)
            return ll - 0.5 * kl.sum()

        expected = []
        for row in range(4):
            present = [m for m in range(2) if mask[row, m]]
            total = elbo(present, present, eps[0, row], row)  # the joint ELBO
            for m in present:  # each modality alone: its expert, itself only
                total = total + elbo([m], [m], eps[1 + m, row], row)
            expected.append(-total)
    torch.testing.assert_close(loss, torch.stack(expected).mean())


# -------------------------------------------------------------- estimator
def test_outputs_have_no_nan_with_missing_modalities(fitted, data):
    X, _ = data
    X_missing = with_missing(X)
    Z = fitted.transform(X_missing)
    assert Z.shape == (120, 2) and Z.dtype == np.float64
    assert np.isfinite(Z).all()
    for out in (
        fitted.inverse_transform(Z),
        fitted.impute(X_missing),
        fitted.reconstruct(X_missing, given=["block1"]),
        fitted.sample(4, random_state=0),
    ):
        assert out.shape[1] == 12 and np.isfinite(out).all()
    assert np.isfinite(fitted.score(X_missing))


def test_impute_fills_missing_and_keeps_observed(fitted, data):
    X, _ = data
    X_missing = with_missing(X)
    X_missing[30, 0] = np.nan  # one missing value in a present block
    filled = fitted.impute(X_missing)
    observed = ~np.isnan(X_missing)
    np.testing.assert_array_equal(filled[observed], X_missing[observed])
    generated = fitted.reconstruct(X_missing)
    np.testing.assert_allclose(filled[~observed], generated[~observed])


def test_impute_validates_X_once(fitted, data):
    X, _ = data
    frame = pd.DataFrame(with_missing(X), columns=[f"c{i}" for i in range(X.shape[1])])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        filled = fitted.impute(frame)
    assert [str(w.message) for w in caught] == [
        "X has feature names, but MultimodalVAE was fitted without feature names"
    ]
    np.testing.assert_array_equal(filled, fitted.impute(frame.to_numpy()))


def test_reconstruct_given_ignores_other_modalities(fitted, data):
    X, _ = data
    only_first = X.copy()
    only_first[:, 5:] = np.nan
    np.testing.assert_allclose(
        fitted.reconstruct(X, given=["block0"]), fitted.reconstruct(only_first)
    )
    np.testing.assert_allclose(
        fitted.reconstruct(X, given=[0]), fitted.reconstruct(X, given=["block0"])
    )
    with pytest.raises(ValueError, match=r"given 'pix' is not one of the modalities"):
        fitted.reconstruct(X, given=["pix"])
    # One modality alone, not as a list: a string was read letter by letter
    # ("given 'b' is not one of the modalities").
    for one in ("block0", 0):
        np.testing.assert_array_equal(
            fitted.reconstruct(X, given=one), fitted.reconstruct(X, given=["block0"])
        )
    with pytest.raises(ValueError, match=r"given 'pix' is not one of the modalities"):
        fitted.reconstruct(X, given="pix")


def test_inverse_transform_layout_and_errors(fitted, data):
    X, _ = data
    X_hat = fitted.inverse_transform(fitted.transform(X))
    assert X_hat.shape == X.shape
    # the decoded means are in the original units: same order of magnitude
    assert abs(X_hat.mean() - X.mean()) < 3 * X.std()
    with pytest.raises(ValueError, match="Z has 3 columns but .*latent_dim=2"):
        fitted.inverse_transform(np.zeros((2, 3)))


def test_sample_is_reproducible(fitted):
    a, b = fitted.sample(5, random_state=1), fitted.sample(5, random_state=1)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, fitted.sample(5, random_state=2))
    with pytest.raises(ValueError, match="n_samples=0 must be a positive integer"):
        fitted.sample(0)


def test_score_is_deterministic_and_mean_elbo(fitted, data):
    X, _ = data
    assert fitted.score(X) == fitted.score(X)
    # the mean ELBO over two halves is the mean of the halves' ELBOs
    halves = (fitted.score(X[:60]) + fitted.score(X[60:])) / 2
    assert halves == pytest.approx(fitted.score(X), rel=0.05)


def test_score_does_not_depend_on_batch_size(fitted, data):
    X = with_missing(data[0])
    vae = clone(fitted).set_params(batch_size=128).fit(X)
    scores = [vae.set_params(batch_size=b).score(X) for b in (128, 50, 7, 1)]
    assert scores == pytest.approx([scores[0]] * 4, rel=1e-6)


def test_feature_names_and_pandas_output(fitted, data):
    X, _ = data
    names = fitted.get_feature_names_out()
    assert list(names) == ["multimodalvae0", "multimodalvae1"]
    frame = clone(fitted).set_output(transform="pandas").fit(X).transform(X)
    assert list(frame.columns) == list(names)


@pytest.mark.parametrize("aggregation", AGGREGATIONS)
def test_training_learns_cross_modal_generation(aggregation, data):
    """After training, block 2 generated from block 0 beats predicting its mean."""
    X, _ = data
    vae = MultimodalVAE(
        blocks=WIDTHS,
        aggregation=aggregation,
        latent_dim=2,
        hidden=(32,),
        max_epochs=60,
        batch_size=32,
        lr=3e-3,
        random_state=0,
    ).fit(X)
    generated = vae.reconstruct(X, given=[0])[:, 9:]
    mse = ((generated - X[:, 9:]) ** 2).mean()
    baseline = X[:, 9:].var(axis=0).mean()
    assert mse < 0.5 * baseline
    losses = vae.history_[:, "train_loss"]
    assert losses[-1] < losses[0]


def test_same_seed_same_model_and_global_state_untouched(data):
    X, _ = data
    torch.manual_seed(123)
    before = torch.get_rng_state()
    first = MultimodalVAE(blocks=WIDTHS, **TINY).fit(X)
    assert torch.equal(before, torch.get_rng_state())
    second = MultimodalVAE(blocks=WIDTHS, **TINY).fit(X)
    np.testing.assert_array_equal(first.transform(X), second.transform(X))


def test_pickle_and_clone(fitted, data):
    X, _ = data
    restored = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(restored.transform(X), fitted.transform(X))
    unfitted = clone(fitted)
    assert unfitted.get_params()["aggregation"] == fitted.aggregation
    assert not hasattr(unfitted, "module_")


def test_pipeline_with_classifier_and_grid_search(data):
    X, latent = data
    y = (latent[:, 0] > np.median(latent[:, 0])).astype(int)
    pipe = make_pipeline(MultimodalVAE(blocks=WIDTHS, **TINY), LogisticRegression())
    assert 0.0 <= pipe.fit(X, y).score(X, y) <= 1.0
    search = GridSearchCV(
        MultimodalVAE(blocks=WIDTHS, **TINY), {"beta": [0.5, 1.0]}, cv=2
    ).fit(X)
    assert search.best_params_["beta"] in (0.5, 1.0)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()


def test_no_predict_on_a_transformer():
    vae = MultimodalVAE()
    assert not hasattr(vae, "predict") and not hasattr(vae, "predict_proba")


def test_bernoulli_modality(data):
    X, _ = data
    binary = (X[:, 9:] > 0).astype(float)
    X_mixed = np.hstack([X[:, :9], binary])
    vae = MultimodalVAE(
        blocks={"a": 5, "b": 4, "bits": 3}, likelihood={"bits": "bernoulli"}, **TINY
    ).fit(X_mixed)
    assert vae.likelihoods_ == ["gaussian", "gaussian", "bernoulli"]
    np.testing.assert_array_equal(vae.mean_[9:], 0.0)
    np.testing.assert_array_equal(vae.scale_[9:], 1.0)
    probabilities = vae.reconstruct(X_mixed, given=["a"])[:, 9:]
    assert ((probabilities > 0) & (probabilities < 1)).all()
    with pytest.raises(ValueError, match=r"'bits' has a Bernoulli .* span \[-"):
        clone(vae).fit(X)
    # New data too: transform, score, impute and reconstruct took any value.
    for method in ("transform", "score", "impute", "reconstruct"):
        with pytest.raises(ValueError, match=r"'bits' has a Bernoulli .* span \[-"):
            getattr(vae, method)(X)
    with pytest.raises(ValueError, match=r"'bits' has a Bernoulli .* span \[-"):
        vae.partial_fit(X)


@pytest.mark.parametrize(
    "params, match",
    [
        (
            {"likelihood": {"c": "laplace"}},
            r"likelihood names unknown modalities \['c'\]",
        ),
        (
            {"likelihood": {"a": "poisson"}},
            r"likelihood.*'poisson'.*one of \['bernoulli', 'gaussian', 'laplace'\]",
        ),
        ({"scale": {"a": -1.0}}, r"scale.*-1\.0.*one of \['learn'\] or a float"),
        ({"scale": {"a": math.inf}}, r"scale.*inf.*one of \['learn'\].*finite"),
        ({"module__encoder": {"a": 5}}, r"module__encoder.*5.*a callable or None"),
        (
            {"module__decoder": "mlp"},
            r"module__decoder='mlp' must be a callable or None",
        ),
        ({"module__encoder": {"z": MLP}}, r"module__encoder names unknown"),
    ],
)
def test_invalid_per_modality_parameters(params, match, data):
    X, _ = data
    vae = MultimodalVAE(blocks={"a": 6, "b": 6}, **TINY).set_params(**params)
    with pytest.raises(ValueError, match=match):
        vae.fit(X)


def test_mopoe_refuses_too_many_modalities():
    X = np.random.default_rng(0).normal(size=(10, 13))
    with pytest.raises(ValueError, match="M=13; use aggregation='moe'"):
        MultimodalVAE(blocks=13, **TINY).fit(X)


def test_per_modality_modules_and_scales(data):
    X, _ = data

    class Linear(torch.nn.Linear):
        pass

    vae = MultimodalVAE(
        blocks={"a": 5, "b": 4, "c": 3}, scale={"b": 0.5}, **TINY
    ).set_params(module__encoder={"a": Linear}, module__decoder=Linear)
    vae.fit(X)
    module = vae.module_
    assert isinstance(module.encoders, ModalityEncoders)
    assert isinstance(module.encoders[0], Linear)
    assert isinstance(module.encoders[1], MLP)
    assert all(isinstance(d, Linear) for d in module.decoders)
    assert module.likelihoods[1].log_scale.requires_grad is False
    np.testing.assert_allclose(module.likelihoods[1].log_scale.numpy(), np.log(0.5))
    assert module.likelihoods[0].log_scale.requires_grad


def test_kl_warmup_callback(data):
    X, _ = data
    vae = MultimodalVAE(
        blocks=WIDTHS, callbacks=[("warmup", KLWarmup(n_epochs=4))], **TINY
    ).set_params(max_epochs=3)
    vae.fit(X)
    assert vae.history_[:, "kl_weight"] == [0.25, 0.5, 0.75]
    assert vae.criterion_.kl_weight == 0.75
    with pytest.raises(ValueError, match=r"KLWarmup\(n_epochs=0\) needs a positive"):
        clone(vae).set_params(callbacks=[("warmup", KLWarmup(n_epochs=0))]).fit(X)


def test_early_stopping_and_checkpoint(data, tmp_path):
    X, _ = data
    vae = MultimodalVAE(
        blocks=WIDTHS,
        train_split=ValidSplit(4),
        callbacks=[
            ("stop", EarlyStopping(patience=1, threshold=1e9)),
            ("checkpoint", Checkpoint(dirname=str(tmp_path))),
        ],
        **TINY,
    ).set_params(max_epochs=20)
    vae.fit(X)
    # a threshold no epoch can meet stops training after patience + 1 epochs
    assert len(vae.history_) == 2
    assert np.isfinite(vae.history_[:, "valid_loss"]).all()
    assert (tmp_path / "params.pt").exists()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("params", [TINY, {**PLUS, "n_importance_samples": 2}])
def test_cuda_matches_shapes(data, params):
    X, _ = data
    vae = MultimodalVAE(blocks=WIDTHS, device="cuda", **params).fit(with_missing(X))
    assert np.isfinite(vae.transform(with_missing(X))).all()
    assert np.isfinite(vae.score(X))


def test_default_encoders_are_the_grouped_mlp_of_the_fusion_head(fitted):
    assert isinstance(fitted.module_.encoders, GroupedMLP)


def test_training_batches_are_shuffled_unless_asked_not_to(data):
    X, _ = data
    vae = MultimodalVAE(blocks=WIDTHS, batch_size=16, **TINY).fit(X)
    dataset = vae.get_dataset(vae._module_input(X))
    first = {
        training: next(iter(vae.get_iterator(dataset, training=training)))[0]["X"]
        for training in (True, False)
    }
    assert first[True].shape == first[False].shape == (16, 12)
    torch.testing.assert_close(first[False], torch.as_tensor(dataset.X["X"][:16]))
    assert not torch.equal(first[True], first[False])
    in_order = clone(vae).set_params(iterator_train__shuffle=False)
    in_order = next(iter(in_order.get_iterator(dataset, training=True)))[0]["X"]
    torch.testing.assert_close(in_order, first[False])


@pytest.mark.parametrize(
    "optimizer, params, fused",
    [
        (torch.optim.AdamW, {}, True),
        (torch.optim.Adam, {}, True),
        (torch.optim.AdamW, {"optimizer__foreach": False}, None),
        (torch.optim.SGD, {}, None),
    ],
)
def test_adam_is_fused_unless_set_otherwise(optimizer, params, fused, data):
    X, _ = data
    vae = MultimodalVAE(blocks=WIDTHS, optimizer=optimizer, **TINY)
    vae.set_params(**params).fit(X)
    assert vae.optimizer_.defaults.get("fused") is fused


# ------------------------------------------- private latents (MMVAE+), IWAE
@pytest.fixture(scope="module", params=AGGREGATIONS)
def fitted_private(request, data):
    X, _ = data
    params = {**PLUS, "aggregation": request.param, "n_importance_samples": 2}
    return MultimodalVAE(blocks=WIDTHS, **params).fit(with_missing(X))


def test_private_latents_shapes_and_outputs(fitted_private, data):
    X_missing = with_missing(data[0])
    module = fitted_private.module_
    # encoders give the shared and private means and log variances
    assert module.encoders(torch.zeros(2, 12)).shape == (3, 2, 2 * (2 + 3))
    assert module.decoders[0](torch.zeros(1, 2 + 3)).shape == (1, 5)
    Z = fitted_private.transform(X_missing)
    assert Z.shape == (120, 2)
    full = pickle.loads(pickle.dumps(fitted_private)).set_params(output="all")
    Z_all = full.transform(X_missing)
    assert Z_all.shape == (120, 2 + 3 * 3)
    np.testing.assert_allclose(Z_all[:, :2], Z)
    # a missing modality's private part is its prior mean; a present one's not
    np.testing.assert_array_equal(Z_all[:10, 2:5], 0.0)
    np.testing.assert_array_equal(Z_all[10:20, 8:], 0.0)
    assert (Z_all[30:, 2:] != 0).all()
    assert list(full.get_feature_names_out()) == [
        f"multimodalvae{i}" for i in range(11)
    ]
    for out in (
        full.inverse_transform(Z_all),
        fitted_private.inverse_transform(Z),
        fitted_private.impute(X_missing),
        fitted_private.reconstruct(X_missing, given=["block1"]),
        fitted_private.sample(4, random_state=0),
    ):
        assert out.shape == (len(out), 12) and np.isfinite(out).all()
    # with output="shared", inverse_transform decodes private parts at 0
    padded = np.hstack([Z, np.zeros((120, 9))])
    np.testing.assert_allclose(
        fitted_private.inverse_transform(Z), full.inverse_transform(padded)
    )
    with pytest.raises(ValueError, match=r"Z has 2 columns but transform gives 11"):
        full.inverse_transform(Z)


def test_reconstruct_uses_given_private_parts_only(fitted_private, data):
    X = data[0]
    # generating from block 0: the others' private parts are their prior mean
    only_first = X.copy()
    only_first[:, 5:] = np.nan
    np.testing.assert_allclose(
        fitted_private.reconstruct(X, given=["block0"]),
        fitted_private.reconstruct(only_first),
    )


def _private_module(aggregation, seed=0):
    torch.manual_seed(seed)
    return MultimodalVAEModule(
        [[0, 1], [2, 3, 4], [5]],
        latent_dim=2,
        hidden=(4,),
        aggregation=aggregation,
        private_dim=2,
    )


def test_moe_private_objective_by_hand():
    """MMVAE+'s ELBO: each expert's z decodes its own x with its own w, the
    other modalities with w drawn from the prior; KL of z and of its own w."""
    module = _private_module("moe")
    X = torch.randn(3, 6)
    mask = torch.tensor([[1, 1, 1], [1, 0, 1], [0, 1, 0]], dtype=torch.bool)
    gen = torch.Generator().manual_seed(1)
    eps = torch.randn(1, 3, 3, 2, generator=gen)
    eps_own = torch.randn(1, 3, 3, 2, generator=gen)
    eps_prior = torch.randn(1, 3, 3, 3, 2, generator=gen)
    ll, kl = module.elbo_terms(X, mask, eps=eps, eps_own=eps_own, eps_prior=eps_prior)
    blocks = [[0, 1], [2, 3, 4], [5]]
    with torch.no_grad():
        mu, logvar = module._encode(X)
        expected_ll, expected_kl = torch.zeros(3), torch.zeros(3)
        for row in range(3):
            present = [m for m in range(3) if mask[row, m]]
            for e in present:  # expert e, sampled
                std = torch.exp(0.5 * logvar[e, row])
                z = mu[e, row, :2] + eps[0, e, row] * std[:2]
                w_own = mu[e, row, 2:] + eps_own[0, e, row] * std[2:]
                for m in present:
                    w = w_own if m == e else eps_prior[0, e, m, row]
                    out = module.decoders[m](torch.cat([z, w]))
                    scale = torch.exp(module.likelihoods[m].log_scale.clamp(min=-4.6))
                    value = D.Normal(out, scale).log_prob(X[row, blocks[m]]).sum()
                    expected_ll[row] += value / len(present)
                q = D.Normal(mu[e, row], std)
                kl_e = D.kl_divergence(q, D.Normal(0.0, 1.0)).sum()
                expected_kl[row] += kl_e / len(present)
    torch.testing.assert_close(ll, expected_ll, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(kl, expected_kl)


@pytest.mark.parametrize("aggregation", AGGREGATIONS)
def test_importance_weighted_bound_by_hand(aggregation):
    """K samples: log mean exp of log p(x, z, w) - log q(z, w), the prior's own
    draws (cross-modal private latents) cancelling in the ratio."""
    module = _private_module(aggregation)
    X = torch.randn(4, 6)
    mask = torch.tensor([[1, 1, 1], [1, 0, 1], [0, 1, 0], [1, 1, 0]], dtype=torch.bool)
    gen = torch.Generator().manual_seed(2)
    shapes = module.noise_shapes(5)
    noise = {n: torch.randn(4, *s, generator=gen) for n, s in shapes.items()}
    u = torch.rand(4, generator=gen)
    bound = module.elbo(X, mask, u=u, **noise)
    # the same bound from the terms of one sample at a time
    terms = []
    for k in range(5):
        one = {n: v[:, k : k + 1].movedim(0, -2) for n, v in noise.items()}
        ll, log_ratio, weights = module.elbo_terms(
            X, mask, n_samples=2, **{n: torch.cat([v, v]) for n, v in one.items()}, u=u
        )
        terms.append((ll[0] - log_ratio[0], weights))
    log_w = torch.stack([t[0] for t in terms])
    expected = (terms[0][1] * (torch.logsumexp(log_w, 0) - math.log(5))).sum(0)
    torch.testing.assert_close(bound, expected)


def test_importance_weighted_score_tightens_with_k(fitted_private, data):
    X = data[0]
    scores = [fitted_private.score(X, n_importance_samples=k) for k in (1, 8, 64)]
    assert scores[0] < scores[1] < scores[2]
    assert fitted_private.score(X) == fitted_private.score(X, n_importance_samples=2)
    assert fitted_private.score(X, n_importance_samples=8) == scores[1]
    for bad in (0, 1.5, True):
        with pytest.raises(ValueError, match=rf"n_importance_samples={bad!r} must"):
            fitted_private.score(X, n_importance_samples=bad)


def test_private_dim_zero_and_one_sample_is_the_model_of_before(data):
    X = with_missing(data[0])
    plain = MultimodalVAE(blocks=WIDTHS, **TINY).fit(X)
    same = MultimodalVAE(
        blocks=WIDTHS, private_dim=0, n_importance_samples=1, output="all", **TINY
    ).fit(X)
    np.testing.assert_array_equal(plain.transform(X), same.transform(X))
    assert plain.score(X) == same.score(X)


def test_importance_weighted_training(data):
    X = data[0]
    vae = MultimodalVAE(
        blocks=WIDTHS, **{**PLUS, "n_importance_samples": 4, "max_epochs": 30}
    ).set_params(lr=3e-3, batch_size=32, hidden=(32,))
    vae.fit(X)
    losses = vae.history_[:, "train_loss"]
    assert losses[-1] < losses[0]
    # trained on the bound with K=4, it scores better on it than on the ELBO
    assert vae.score(X) > vae.score(X, n_importance_samples=1)


def test_private_estimator_conventions(fitted_private, data):
    X = data[0]
    restored = pickle.loads(pickle.dumps(fitted_private))
    np.testing.assert_array_equal(restored.transform(X), fitted_private.transform(X))
    assert clone(fitted_private).get_params()["private_dim"] == 3
    search = GridSearchCV(
        MultimodalVAE(blocks=WIDTHS, **PLUS), {"private_dim": [0, 2]}, cv=2
    ).fit(X)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    with pytest.raises(ValueError, match=r"'private_dim' parameter .* Got -1"):
        MultimodalVAE(blocks=WIDTHS, private_dim=-1).fit(X)
    with pytest.raises(ValueError, match=r"'output' parameter .* Got 'private'"):
        MultimodalVAE(blocks=WIDTHS, output="private").fit(X)
