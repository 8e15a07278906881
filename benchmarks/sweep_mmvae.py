"""Sweep MultimodalVAE settings on two numbers of bench_mmvae.py: probe, fou>pix.

Question (issue 17): which likelihoods, widths, depths and KL weights bring
the latent probe to 97.5 % and fou->pix coherence to 0.80?

The protocol of ``bench_mmvae.py`` (mfeat pix + fou + zer, latent 20,
stratified 5-fold seed 0, ``random_state`` fold + ``seed_offset``, 100
epochs unless ``max_epochs`` is given), for the two columns only: ``probe``
(LogisticRegression on the shared latent means) and ``fou>pix``
(:func:`mmfuse.metrics.coherence` with a LogisticRegression of the real,
standardized pix as reader). Each setting is a JSON object of
MultimodalVAE parameters (prefixed ones such as
``optimizer__weight_decay`` too), plus ``decoder_hidden`` (decoders of these
hidden widths, the encoders keeping ``hidden``), ``seed_offset``,
``warmup`` (a :class:`~mmfuse.deep.KLWarmup` over that many epochs) and
``read``: ``"mixture"`` (the default: ``transform``, the mean of the joint
posterior) or ``"joint"`` (the probe reads the mean of the product of every
modality's expert instead, MoPoE's component of all modalities).

Usage::

    python benchmarks/sweep_mmvae.py '[{"aggregation": "mopoe"},
        {"aggregation": "mopoe", "likelihood": "laplace"}]' [folds, e.g. '[0, 1]']
"""

import json
import sys
from functools import partial

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from threadpoolctl import threadpool_limits

from mmfuse.datasets import load_mfeat
from mmfuse.deep import KLWarmup, MultimodalVAE
from mmfuse.deep._data import column_statistics
from mmfuse.deep._layers import FusedMLP
from mmfuse.deep._vae_module import products_of_experts
from mmfuse.metrics import coherence


def build(setting, blocks, fold):
    """MultimodalVAE of a setting, seeded fold + its seed_offset."""
    params = {"max_epochs": 100, **setting}
    params.pop("read", None)
    offset = params.pop("seed_offset", 0)
    decoder_hidden = params.pop("decoder_hidden", None)
    warmup = params.pop("warmup", None)
    if warmup is not None:
        params["callbacks"] = [("warmup", KLWarmup(n_epochs=warmup))]
    if "hidden" in params:
        params["hidden"] = tuple(params["hidden"])
    prefixed = {key: params.pop(key) for key in list(params) if "__" in key}
    vae = MultimodalVAE(
        blocks=blocks, latent_dim=20, random_state=fold + offset, **params
    ).set_params(**prefixed)
    if decoder_hidden is not None:
        vae.set_params(module__decoder=partial(FusedMLP, hidden=tuple(decoder_hidden)))
    return vae


def joint_mean(vae, X):
    """Mean of the product of every present modality's expert (shared latent)."""

    def product(module, X, mask):
        mu, logvar = module._encode(X)
        d = module.latent_dim
        every = torch.ones(1, mu.shape[0], dtype=torch.bool, device=mu.device)
        return products_of_experts(mu[..., :d], logvar[..., :d], mask, every)[0][0]

    vae.module_.joint_mean = partial(product, vae.module_)
    return vae._module_method(X, "joint_mean")


def main():
    torch.set_num_threads(1)
    threadpool_limits(1)
    settings = json.loads(sys.argv[1])
    folds = json.loads(sys.argv[2]) if len(sys.argv) > 2 else range(5)
    bunch = load_mfeat(views=["pix", "fou", "zer"])
    X, y = bunch.data, bunch.target
    pix = np.arange(bunch.blocks["pix"])  # pix is the first block
    splits = list(StratifiedKFold(5, shuffle=True, random_state=0).split(X, y))
    for setting in settings:
        probes, coherences = [], []
        for fold in folds:
            train, test = splits[fold]
            mean, scale = column_statistics(X[train])
            standardize = FunctionTransformer(
                lambda v, mean=mean[pix], scale=scale[pix]: (v - mean) / scale
            )
            reader = make_pipeline(standardize, LogisticRegression(max_iter=3000))
            reader.fit(X[train][:, pix], y[train])
            vae = build(setting, bunch.blocks, fold).fit(X[train])
            read = vae.transform
            if setting.get("read", "mixture") == "joint":
                read = partial(joint_mean, vae)
            probe = LogisticRegression(max_iter=3000).fit(read(X[train]), y[train])
            probes.append(probe.score(read(X[test]), y[test]))
            coherences.append(
                coherence(vae, X[test], y[test], {"pix": reader}, ["fou"])["pix"]
            )
            print(
                f"{setting} fold {fold}: probe {probes[-1]:.4f} "
                f"fou>pix {coherences[-1]:.4f}",
                flush=True,
            )
        print(
            f"MEAN {setting}: probe {np.mean(probes):.4f} "
            f"fou>pix {np.mean(coherences):.4f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
