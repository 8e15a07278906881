"""Seconds per epoch of the deep models on a CUDA GPU and on the CPU.

Question: what does ``device="cuda"`` buy on data of mfeat's size, at the
default batch sizes and at a large batch?

mfeat pix + fou + zer (2,000 rows). Each model trains 5 epochs on the GPU,
then on the CPU with all its cores (``--threads``); the table gives the
median seconds per epoch after the first (which holds CUDA's start-up).
Models: MultimodalVAE as MMVAE+ at bench_mmvae.py's speed architecture
(encoders 512, decoders 512, private 10, K=4) with batch 64 and 1024,
ContrastiveAligner and MLPFusionClassifier at their defaults. Last, the
Laplace VAE (the README's setting) trains to its 100 epochs on the GPU and a
LogisticRegression probe reads its latent on a stratified 80/20 split.

Run on a machine with a CUDA device, from the repository root::

    PYTHONPATH=. python benchmarks/bench_gpu.py --threads 16
"""

import argparse
import time
from functools import partial

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

from mmfuse.datasets import load_mfeat
from mmfuse.deep import ContrastiveAligner, MLPFusionClassifier, MultimodalVAE
from mmfuse.deep._layers import FusedMLP


def seconds_per_epoch(estimator, *data):
    """Median seconds of the epochs after the first."""
    estimator.fit(*data)
    return float(np.median(estimator.history_[1:, "dur"]))


def models(blocks, device):
    """Yield (name, estimator, whether it fits on y) for each model to time."""
    common = {"blocks": blocks, "max_epochs": 5, "random_state": 0, "device": device}
    for batch in (64, 1024):
        vae = MultimodalVAE(
            latent_dim=20,
            hidden=(512,),
            aggregation="moe",
            private_dim=10,
            n_importance_samples=4,
            batch_size=batch,
            **common,
        ).set_params(module__decoder=partial(FusedMLP, hidden=(512,)))
        yield f"MMVAE+ 512, batch {batch}", vae, False
    yield "ContrastiveAligner (defaults)", ContrastiveAligner(**common), True
    classifier = MLPFusionClassifier(verbose=0, **common)
    yield "MLPFusionClassifier (defaults)", classifier, True


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device: this benchmark compares one with the CPU")
    bunch = load_mfeat(views=["pix", "fou", "zer"])
    X, y = bunch.data, bunch.target
    print(f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}; {X.shape}")
    seconds = {}
    for device in ("cuda", "cpu"):
        torch.set_num_threads(args.threads if device == "cpu" else 1)
        for name, model, supervised in models(bunch.blocks, device):
            data = (X, y) if supervised else (X,)
            seconds[name, device] = seconds_per_epoch(model, *data)
    print(f"\n{'model':32} {'cuda s':>8} {'cpu s':>8} {'cpu/cuda':>9}")
    for name, *_ in models(bunch.blocks, "cpu"):
        gpu, cpu = seconds[name, "cuda"], seconds[name, "cpu"]
        print(f"{name:32} {gpu:8.4f} {cpu:8.4f} {cpu / gpu:9.2f}")
    print(f"(CPU: {args.threads} threads)")

    train, test = train_test_split(
        np.arange(len(X)), test_size=0.2, stratify=y, random_state=0
    )
    start = time.perf_counter()
    vae = MultimodalVAE(
        blocks=bunch.blocks,
        latent_dim=20,
        likelihood="laplace",
        random_state=0,
        device="cuda",
    ).fit(X[train])
    took = time.perf_counter() - start
    Z = vae.transform(X)
    probe = LogisticRegression(max_iter=2000).fit(Z[train], y[train])
    print(
        f"\nLaplace VAE on cuda, {len(vae.history_)} epochs in {took:.1f} s: "
        f"probe {probe.score(Z[test], y[test]):.4f}"
    )


if __name__ == "__main__":
    main()
