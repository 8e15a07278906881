"""The deep estimators on a CUDA device: what the CPU suite cannot check.

Every test here needs a CUDA GPU and is skipped without one (run them with
``python -m pytest -m gpu tests/deep``).
"""

import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone

from mmfuse.datasets import make_multiview
from mmfuse.deep import MLPFusionClassifier, MLPFusionRegressor, MultimodalVAE

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

WIDTHS = [5, 4, 3]
KINDS = ["classifier", "regressor", "vae"]


@pytest.fixture(scope="module")
def data():
    X, latent = make_multiview(240, WIDTHS, n_latent=2, noise=0.5, random_state=0)
    return X, (latent[:, 0] > 0) * 1, latent[:, 0]


def make(kind, **given):
    """A small net of each kind; no dropout, so CPU and CUDA fits can agree."""
    params = {"blocks": WIDTHS, "max_epochs": 4, "random_state": 0, "dropout": 0.0}
    params.update(given)
    if kind == "vae":
        return MultimodalVAE(latent_dim=2, hidden=(16,), **params)
    cls = MLPFusionClassifier if kind == "classifier" else MLPFusionRegressor
    return cls(d_model=16, verbose=0, **params)


def fit(net, kind, data, X=None, **fit_params):
    X_fit, y, t = data
    target = {"classifier": y, "regressor": t, "vae": None}[kind]
    return net.fit(X_fit if X is None else X, target, **fit_params)


def outputs(net, kind, X):
    if kind == "vae":
        return net.transform(X)
    return net.predict_proba(X) if kind == "classifier" else net.predict(X)


def with_missing(X):
    X = X.copy()
    X[:30, :5] = np.nan  # 30 rows lack the first modality
    X[30:50, 9:] = np.nan  # 20 rows lack the last
    return X


@pytest.mark.parametrize("kind", ["classifier", "regressor"])
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


@pytest.mark.parametrize("kind", KINDS)
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
    if kind == "vae":
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
