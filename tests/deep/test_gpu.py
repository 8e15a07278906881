"""The deep estimators on a CUDA device: what the CPU suite cannot check.

Every test here needs a CUDA GPU and is skipped without one (run them with
``python -m pytest -m gpu tests/deep``, which also runs the CUDA cases of
tests elsewhere, such as FusedMLP's in ``test_layers.py``).
"""

import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression

from mmfuse.datasets import make_multiview
from mmfuse.deep import (
    ContrastiveAligner,
    MLPFusionClassifier,
    MLPFusionRegressor,
    MultimodalVAE,
)
from mmfuse.metrics import coherence, mean_average_precision_score

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

WIDTHS = [5, 4, 3]
KINDS = ["classifier", "regressor", "vae", "mmvae+", "aligner", "dcca"]


@pytest.fixture(scope="module")
def data():
    X, latent = make_multiview(240, WIDTHS, n_latent=2, noise=0.5, random_state=0)
    return X, (latent[:, 0] > 0) * 1, latent[:, 0]


def make(kind, **given):
    """A small net of each kind; no dropout, so CPU and CUDA fits can agree."""
    params = {"blocks": WIDTHS, "max_epochs": 4, "random_state": 0, "dropout": 0.0}
    if kind in ("vae", "mmvae+"):
        params.update(latent_dim=2, hidden=(16,))
        if kind == "mmvae+":
            params.update(aggregation="moe", private_dim=1, n_importance_samples=3)
        return MultimodalVAE(**{**params, **given})
    if kind in ("aligner", "dcca"):
        # The mean over present modalities: finite where a modality is missing.
        loss = "infonce" if kind == "aligner" else "dcca"
        params.update(loss=loss, embedding_dim=2, hidden=(16,), output="mean")
        return ContrastiveAligner(**{**params, **given})
    cls = MLPFusionClassifier if kind == "classifier" else MLPFusionRegressor
    return cls(**{**params, "d_model": 16, "verbose": 0, **given})


def fit(net, kind, data, X=None, **fit_params):
    X_fit, y, t = data
    target = {"classifier": y, "regressor": t}.get(kind)
    return net.fit(X_fit if X is None else X, target, **fit_params)


def outputs(net, kind, X):
    if kind not in ("classifier", "regressor"):
        return net.transform(X)
    return net.predict_proba(X) if kind == "classifier" else net.predict(X)


def with_missing(X):
    X = X.copy()
    X[:30, :5] = np.nan  # 30 rows lack the first modality
    X[30:50, 9:] = np.nan  # 20 rows lack the last
    return X


@pytest.mark.parametrize("kind", ["classifier", "regressor", "aligner"])
def test_cuda_fit_matches_the_cpu_fit(kind, data):
    # Same seed, same batches (the sampler draws on the CPU), same initial
    # weights, no dropout: the two devices differ only by float32 rounding.
    cpu = fit(make(kind), kind, data)
    gpu = fit(make(kind, device="cuda"), kind, data)
    assert next(gpu.module_.parameters()).is_cuda
    X = with_missing(data[0])
    np.testing.assert_allclose(outputs(gpu, kind, X), outputs(cpu, kind, X), atol=2e-3)


def test_cuda_vae_learns_the_cpu_vae_latent(data):
    # The VAE's training noise is drawn by the device's own generator, so the
    # two fits differ by more than rounding; they still find the same latent.
    cpu = fit(make("vae"), "vae", data)
    gpu = fit(make("vae", device="cuda"), "vae", data)
    X = with_missing(data[0])
    Z_cpu, Z_gpu = outputs(cpu, "vae", X), outputs(gpu, "vae", X)
    for j in range(Z_cpu.shape[1]):
        assert np.corrcoef(Z_cpu[:, j], Z_gpu[:, j])[0, 1] > 0.99


@pytest.mark.parametrize("kind", KINDS)
def test_cuda_takes_missing_modalities_and_sample_weight(kind, data):
    X = with_missing(data[0])
    weights = np.tile([0.0, 1.0, 2.0], len(X) // 3)
    net = fit(make(kind, device="cuda"), kind, data, X=X, sample_weight=weights)
    out = outputs(net, kind, X)
    assert out.shape[0] == len(X) and np.isfinite(out).all()
    loaded = pickle.loads(pickle.dumps(net))
    np.testing.assert_allclose(outputs(loaded, kind, X), out, rtol=1e-6)


@pytest.mark.parametrize("kind", ["classifier", "regressor", "vae", "mmvae+"])
def test_a_diverging_cuda_fit_stops_with_an_error(kind, data):
    net = make(kind, device="cuda", lr=1e9, optimizer=torch.optim.SGD, max_epochs=3)
    with pytest.raises(ValueError, match=r"Training diverged: the .* loss became"):
        fit(net, kind, data)


@pytest.mark.parametrize("kind", KINDS)
def test_cuda_inference_leaves_global_random_states_alone(kind, data):
    net = fit(make(kind, device="cuda", dropout=0.1), kind, data)
    torch.manual_seed(7)
    states = torch.random.get_rng_state(), torch.cuda.get_rng_state()
    outputs(net, kind, data[0])
    if kind in ("vae", "mmvae+"):
        net.score(data[0])
        net.impute(with_missing(data[0]))
    assert torch.equal(torch.random.get_rng_state(), states[0])
    assert torch.equal(torch.cuda.get_rng_state(), states[1])


def test_a_cuda_index_beyond_the_devices_is_named(data):
    beyond = torch.cuda.device_count()
    with pytest.raises(ValueError, match=rf"asks for cuda device {beyond}, but there"):
        fit(make("classifier", device=f"cuda:{beyond}"), "classifier", data)


def test_cuda_nets_refit_after_clone_on_the_same_device(data):
    net = fit(make("classifier", device="cuda"), "classifier", data)
    again = fit(clone(net), "classifier", data)
    np.testing.assert_allclose(
        again.predict_proba(data[0]), net.predict_proba(data[0]), rtol=1e-5
    )


@pytest.mark.parametrize(
    "params",
    [
        {"likelihood": "laplace"},
        {"likelihood": "bernoulli"},
        {"aggregation": "mopoe", "hidden": (32, 32), "beta": 0.5},
    ],
)
def test_cuda_vae_generates_imputes_and_scores(params, data):
    X = data[0]
    if params.get("likelihood") == "bernoulli":
        X = (X > 0) * 1.0
    vae = fit(make("vae", device="cuda", **params), "vae", data, X=with_missing(X))
    for out in (
        vae.impute(with_missing(X)),
        vae.reconstruct(X),
        vae.sample(10, random_state=0),
    ):
        assert out.shape[1] == X.shape[1] and np.isfinite(out).all()
    assert np.isfinite(vae.score(X))
    model = vae.set_params(n_importance_samples=4)
    assert np.isfinite(model.score(X))


def test_cuda_mmvae_plus_private_latents_and_coherence(data):
    X, y, _ = data
    vae = fit(make("mmvae+", device="cuda"), "mmvae+", data)
    assert vae.transform(X).shape == (len(X), 2)
    assert vae.set_params(output="all").transform(X).shape == (len(X), 2 + 3 * 1)
    vae.set_params(output="shared")
    readers = {"block2": LogisticRegression().fit(X[:, 9:], y)}
    share = coherence(vae, X, y, readers, given=["block0"])
    assert 0.0 <= share["block2"] <= 1.0


@pytest.mark.parametrize("loss", ["infonce", "dcca"])
def test_cuda_aligner_supervised_and_adversarial(loss, data):
    X, y, _ = data
    net = make("aligner", device="cuda", loss=loss, adversarial=0.5, max_epochs=20).fit(
        with_missing(X), y
    )
    Z = net.set_params(output="concat").transform(with_missing(X))
    assert Z.shape == (len(X), 3 * 2) and np.isfinite(Z[~np.isnan(Z)]).all()
    assert np.isfinite(net.score(X))
    first, second, _ = net.transform_views(X)
    # Same-label items rank first more often than chance (0.5): it learned.
    assert mean_average_precision_score(first, second, y, y) > 0.55
    loaded = pickle.loads(pickle.dumps(net))
    np.testing.assert_allclose(loaded.transform(X), net.transform(X), rtol=1e-6)
