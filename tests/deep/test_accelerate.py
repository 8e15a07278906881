"""Deep nets trained through Accelerate (the ``accelerator`` parameter)."""

import os
import pickle
import runpy
import socket
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV

import mmfuse
from mmfuse.datasets import make_multiview
from mmfuse.deep import MLPFusionClassifier, MultimodalVAE

accelerate = pytest.importorskip("accelerate")

ROOT = Path(__file__).parents[2]
SCRIPT = ROOT / "benchmarks" / "accelerate_fit.py"
WIDTHS = [5, 4]


@pytest.fixture(scope="module")
def accelerator():
    return accelerate.Accelerator(cpu=True)


@pytest.fixture(scope="module")
def data():
    X, latent = make_multiview(96, WIDTHS, n_latent=2, random_state=0)
    return X, (latent[:, 0] > 0).astype(int)


def classifier():
    return MLPFusionClassifier(
        blocks=WIDTHS, max_epochs=3, batch_size=16, verbose=0, random_state=0
    )


def vae():
    return MultimodalVAE(
        blocks=WIDTHS,
        latent_dim=2,
        hidden=(8,),
        max_epochs=3,
        batch_size=16,
        verbose=0,
        random_state=0,
    )


def output(net, X):
    if isinstance(net, MLPFusionClassifier):
        return net.predict_proba(X)
    return net.transform(X)


def assert_same_model(a, b, X):
    weights_a, weights_b = a.module_.state_dict(), b.module_.state_dict()
    assert weights_a.keys() == weights_b.keys()
    for name, value in weights_a.items():
        torch.testing.assert_close(value, weights_b[name], rtol=0, atol=1e-6)
    np.testing.assert_allclose(output(a, X), output(b, X), rtol=0, atol=1e-6)


@pytest.mark.parametrize("make", [classifier, vae], ids=["classifier", "vae"])
def test_single_process_fit_equals_plain_fit(make, data, accelerator):
    X, y = data
    plain = make().fit(X, y)
    accelerated = make().set_params(accelerator=accelerator).fit(X, y)
    assert_same_model(accelerated, plain, X)
    # trained unwrapped: plain torch objects, ready to predict and pickle
    assert type(accelerated.module_) is type(plain.module_)
    assert type(accelerated.optimizer_) is type(plain.optimizer_)
    # partial_fit prepares again and trains on as the plain net does
    torch.manual_seed(1)
    accelerated.partial_fit(X, y)
    torch.manual_seed(1)
    plain.partial_fit(X, y)
    assert_same_model(accelerated, plain, X)


def test_parameter_lives_in_get_params_clone_and_grid_search(data, accelerator):
    X, y = data
    net = classifier()
    assert "accelerator" not in net.get_params()  # the default, None, unlisted
    net.set_params(accelerator=accelerator, module__cls_token=True)
    params = net.get_params()
    assert params["accelerator"] is accelerator
    assert "accelerator=" in repr(net)
    copy = clone(net)
    assert copy.accelerator is accelerator  # shared, not deep-copied
    assert copy.get_params()["module__cls_token"] is True

    grid = {"lr": [1e-3, 1e-2]}
    searched = GridSearchCV(net, grid, cv=2).fit(X, y)
    reference = GridSearchCV(clone(net).set_params(accelerator=None), grid, cv=2)
    reference.fit(X, y)
    np.testing.assert_allclose(
        searched.cv_results_["mean_test_score"],
        reference.cv_results_["mean_test_score"],
    )
    assert searched.best_estimator_.accelerator is accelerator

    # set on a fitted net, and unset
    searched.best_estimator_.set_params(accelerator=None)
    assert searched.best_estimator_.get_params()["accelerator"] is None


def test_pickle_keeps_the_model_and_drops_the_accelerator(data, accelerator):
    X, y = data
    net = vae().set_params(accelerator=accelerator).fit(X)
    loaded = pickle.loads(pickle.dumps(net))
    assert "accelerator" not in loaded.get_params()
    np.testing.assert_array_equal(loaded.transform(X), net.transform(X))
    assert net.accelerator is accelerator  # the pickled net keeps its own


def test_fitted_nets_are_released_by_the_shared_accelerator(data):
    # clone shares the accelerator, which lists every object it prepares: a
    # grid search kept every fitted model alive through it.
    X, y = data
    accelerator = accelerate.Accelerator(cpu=True)
    users_own = accelerator.prepare(torch.nn.Linear(2, 1))
    net = classifier().set_params(accelerator=accelerator)
    for _ in range(3):
        clone(net).fit(X, y)
    assert accelerator._models == [users_own]
    assert accelerator._optimizers == []
    net.fit(X, y).partial_fit(X, y)  # prepared again, then released again
    assert accelerator._models == [users_own]


def test_a_wrapped_module_is_released_too():
    # Several processes: prepare returns a DistributedDataParallel wrapper,
    # the accelerator lists the module inside; matched by identity, every
    # fitted module stayed listed (5 after 5 fits).
    accelerator = accelerate.Accelerator(cpu=True)
    inner, users_own = torch.nn.Linear(2, 1), torch.nn.Linear(2, 1)
    accelerator._models[:] = [inner, users_own]
    net = classifier().set_params(accelerator=accelerator)
    net._prepared = [SimpleNamespace(module=inner)]
    net._release_prepared()
    assert accelerator._models == [users_own]


def test_accelerator_that_is_not_one(data):
    X, y = data
    net = classifier().set_params(accelerator="cuda")
    with pytest.raises(TypeError, match=r"accelerator='cuda' is not an accelerate"):
        net.fit(X, y)


def test_accelerator_without_accelerate_says_how_to_install(data, monkeypatch):
    X, y = data
    monkeypatch.setitem(sys.modules, "accelerate", None)  # not installed
    net = classifier().set_params(accelerator=object())
    with pytest.raises(ImportError, match=r"pip install 'mmfuse\[accelerate\]'"):
        net.fit(X, y)


def test_device_must_be_the_accelerators(data, accelerator):
    X, y = data
    net = classifier().set_params(accelerator=accelerator, device="cpu:1")
    with pytest.raises(
        ValueError, match=r"device='cpu:1' is not the accelerator's device 'cpu'"
    ):
        net.fit(X, y)


def test_deep_import_leaves_accelerate_unimported():
    code = "import sys, mmfuse.deep; print('accelerate' in sys.modules)"
    env = {**os.environ, "PYTHONPATH": str(Path(mmfuse.__file__).parents[1])}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False"]


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_two_process_launch_saves_the_single_process_model(tmp_path):
    out = tmp_path / "fusion.pkl"
    env = {
        **os.environ,
        "PYTHONPATH": str(Path(mmfuse.__file__).parents[1]),
        "ACCELERATE_USE_CPU": "1",  # what `accelerate launch --cpu` sets
    }
    # accelerate launch runs several CPU processes through torchrun with
    # --multi_gpu (its --cpu alone starts one process, or uses mpirun).
    command = [
        *(sys.executable, "-m", "accelerate.commands.launch"),
        *("--multi_gpu", "--num_processes", "2", "--num_machines", "1"),
        *("--mixed_precision", "no", "--dynamo_backend", "no"),
        *("--main_process_port", str(free_port())),
        *(str(SCRIPT), "--out", str(out), "--epochs", "6"),
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "processes               2 (cpu" in done.stdout

    script = runpy.run_path(str(SCRIPT))
    X, y = script["make_data"]()
    single = script["make_estimator"](batch_size=64, max_epochs=6).fit(X, y)
    with open(out, "rb") as file:
        parallel = pickle.load(file)
    assert parallel.get_params()["batch_size"] == 32  # a process's share
    assert "accelerator" not in parallel.get_params()
    np.testing.assert_allclose(
        parallel.predict_proba(X), single.predict_proba(X), rtol=0, atol=1e-4
    )


def test_split_batches_is_refused(data):
    from accelerate.utils import DataLoaderConfiguration

    X, y = data
    config = DataLoaderConfiguration(split_batches=True)
    splitting = accelerate.Accelerator(cpu=True, dataloader_config=config)
    net = classifier().set_params(accelerator=splitting)
    with pytest.raises(ValueError, match=r"splits batches \(split_batches=True\)"):
        net.fit(X, y)
