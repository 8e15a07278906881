"""Benchmark MultimodalVAE on mfeat (pix + fou + zer): quality and speed.

Question: how good and how fast is MultimodalVAE, per aggregation, and with
private latents (MMVAE+) beside multivae's MMVAE+?

Protocol (issues 7 and 17): columns standardized on the training fold
(inside the estimator), latent 20, stratified 5-fold CV with seed 0. Models:
PoE, MoE, MoPoE, and ``mmvae+`` (``aggregation="moe"``, ``private_dim``
10, trained on the importance-weighted bound with ``n_importance_samples``
4; ``--private-dim``, ``--k``). On the held-out rows it reports:

- ``probe``: accuracy of LogisticRegression trained on the latent means of the
  training rows, applied to those of the held-out rows (``probe all``: on the
  shared and private latents, ``output="all"``); PCA to 20 components and to
  the width of ``output="all"`` (50) beside them;
- ``fou latent``: the same probe on the shared latent of fou alone (the
  other modalities missing), what the latent that ``fou>pix`` decodes tells
  a linear reader;
- cross-modal coherence (:func:`mmfuse.metrics.coherence`): pix generated
  from fou alone (``fou>pix``), from zer alone, from fou + zer, and fou
  generated from pix, classified by a LogisticRegression trained on the real
  (standardized) target modality;
- imputation: held-out rows lose pix, ``impute`` fills it; MSE against the
  real pix (standardized units) and coherence of the imputed pix;
- ``fou>pix SVC``: fou>pix coherence read by an RBF SVC trained on real pix
  instead (the reader matters: LogisticRegression tends to read blurry
  generated digits as 8 or 3); ``fou>pix own``: read by a LogisticRegression
  fitted to the pix generated from fou of the training rows, standardized
  as real pix (how much of the digit generated pix hold, whatever they look
  like);
- seconds per epoch (median over epochs, from the skorch history).

Baselines in the same run: LogisticRegression on the concatenated views
(probe), Ridge from fou / fou + zer to pix (coherence, imputation MSE), and
the digit read from fou alone by LogisticRegression and an RBF SVC (in the
``fou>pix`` columns): ``fou>pix`` is itself a classifier of fou, so these
show how much fou tells, the ceiling of the coherence
(``benchmarks/fou_bound.py`` tunes more classifiers); the share of that
ceiling each model reaches is printed below the table.

multivae's MMVAE+ (a peer run in its own virtualenv, which needs
torchvision) is trained on each fold's training rows in the same
standardized units, with the same latent sizes and importance samples,
Gaussian posteriors and likelihoods, its MLP encoder with a private head
(512) and an MLP decoder of 512 with a linear output (its default decoder
ends in a sigmoid, which standardized columns cannot fit); its fou>pix
coherence is read from the decoded pix of the shared posterior mean of fou
with pix's private latent at its prior mean, as ``reconstruct`` does.

Speed against multivae: both train on the first training fold with the same
architecture (MMVAE+: MLP encoders 512, decoders 512, private 10, K
importance samples; MoPoE when ``mmvae+`` is not run: encoders 512-512,
decoders 512), batch 64, in turn, twice; the table gives the median seconds
per epoch of each (the better of the two runs) and their ratio, and the
seconds of the decoders' forward and backward passes alone, the matrix
products that any implementation of the objective does. The peer is
skipped (and says why) when its interpreter is missing. With a CUDA device,
mmfuse's epoch on it is timed too.

BLAS and torch are pinned to one thread (threadpoolctl and
``torch.set_num_threads``), in this process and in the peer's.

Usage::

    python benchmarks/bench_mmvae.py --quick      # 2 folds, 30 epochs
    python benchmarks/bench_mmvae.py              # 5 folds, 100 epochs
    python benchmarks/bench_mmvae.py --multivae /work/venvs/multivae/bin/python
    python benchmarks/bench_mmvae.py --models mopoe mmvae+ --seed 1  # other seeds
    python benchmarks/bench_mmvae.py --folds 0 --models mmvae+  # speed only
"""

import argparse
import json
import os
import subprocess
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np

PEER_EPOCHS = 3
SPEED_REPEATS = 2


def run_multivae(data_path, epochs, model_name, k, private_dim, seed):
    """Peer mode, run by multivae's interpreter: train, time, generate pix from fou.

    ``seed`` seeds torch before the model is built (its initial weights)
    and multivae's trainer (the batches and the samples).

    Prints the median seconds per epoch and, with held-out rows in the data
    file, writes pix generated from their fou (the mean of the shared
    posterior of fou, pix's private latent at its prior mean, the decoded
    mean) beside it.
    """
    import torch
    from multivae.data.datasets.base import MultimodalBaseDataset
    from multivae.models import MMVAEPlus, MMVAEPlusConfig, MoPoE, MoPoEConfig
    from multivae.models.base.base_config import BaseAEConfig
    from multivae.models.nn.default_architectures import (
        Decoder_AE_MLP,
        Encoder_VAE_MLP,
        Encoder_VAE_MLP_Style,
    )
    from multivae.trainers import BaseTrainer, BaseTrainerConfig
    from multivae.trainers.base.callbacks import TrainingCallback
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn import BaseDecoder

    class LinearDecoder(BaseDecoder):
        """multivae's MLP decoder (512) with a linear output: standardized data."""

        def __init__(self, latent_dim, width):
            BaseDecoder.__init__(self)
            self.net = torch.nn.Sequential(
                torch.nn.Linear(latent_dim, 512),
                torch.nn.ReLU(),
                torch.nn.Linear(512, width),
            )

        def forward(self, z, **kwargs):
            return ModelOutput(reconstruction=self.net(z))

    torch.set_num_threads(1)
    arrays = np.load(data_path)
    names = [n for n in arrays.files if not n.startswith("test_")]
    data = {name: torch.tensor(arrays[name]) for name in names}
    dims = {name: (value.shape[1],) for name, value in data.items()}
    torch.manual_seed(seed)
    common = {
        "n_modalities": len(data),
        "latent_dim": 20,
        "input_dims": dims,
        "decoders_dist": {name: "normal" for name in data},
    }
    if model_name == "mopoe":
        encoders = {
            n: Encoder_VAE_MLP(BaseAEConfig(input_dim=d, latent_dim=20))
            for n, d in dims.items()
        }
        decoders = {
            n: Decoder_AE_MLP(BaseAEConfig(input_dim=d, latent_dim=20))
            for n, d in dims.items()
        }
        model = MoPoE(MoPoEConfig(**common), encoders=encoders, decoders=decoders)
    else:
        config = MMVAEPlusConfig(
            **common,
            K=k,
            modalities_specific_dim=private_dim,
            prior_and_posterior_dist="normal",
        )
        encoders = {
            n: Encoder_VAE_MLP_Style(
                BaseAEConfig(input_dim=d, latent_dim=20, style_dim=private_dim)
            )
            for n, d in dims.items()
        }
        decoders = {n: LinearDecoder(20 + private_dim, d[0]) for n, d in dims.items()}
        model = MMVAEPlus(config, encoders=encoders, decoders=decoders)

    class EpochTimer(TrainingCallback):
        """Record the wall time of each epoch."""

        def __init__(self):
            self.durations = []

        def on_epoch_begin(self, training_config, **kwargs):
            self.start = time.perf_counter()

        def on_epoch_end(self, training_config, **kwargs):
            self.durations.append(time.perf_counter() - self.start)

    timer = EpochTimer()
    with tempfile.TemporaryDirectory() as out:
        trainer = BaseTrainer(
            model,
            train_dataset=MultimodalBaseDataset(data),
            training_config=BaseTrainerConfig(
                num_epochs=epochs,
                learning_rate=1e-3,
                per_device_train_batch_size=64,
                output_dir=out,
                no_cuda=True,
                steps_predict=None,
                seed=seed,
            ),
            callbacks=[timer],
        )
        trainer.train()
    if "test_fou" in arrays.files:
        model.eval()
        with torch.no_grad():
            fou = model.encoders["fou"](torch.tensor(arrays["test_fou"]))
            shared = fou.embedding
            private = torch.zeros(len(shared), private_dim)
            pix = model.decoders["pix"](torch.cat([shared, private], dim=-1))
        np.save(data_path + ".pix.npy", pix.reconstruction.numpy())
    print(json.dumps({"seconds_per_epoch": float(np.median(timer.durations))}))


def run_peer(python, arrays, epochs, model_name, k=1, private_dim=0, seed=0):
    """Run the multivae peer in its interpreter.

    Returns (seconds per epoch, generated pix or None, None) or (None, None,
    why it failed).
    """
    if not Path(python).exists():
        return None, None, f"no interpreter at {python}"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "train.npz"
        np.savez(path, **{k: v.astype(np.float32) for k, v in arrays.items()})
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        done = subprocess.run(
            [
                python,
                __file__,
                "--peer-data",
                str(path),
                "--epochs",
                str(epochs),
                "--peer-model",
                model_name,
                "--k",
                str(k),
                "--private-dim",
                str(private_dim),
                "--seed",
                str(seed),
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=7200,
        )
        if done.returncode != 0:
            return None, None, done.stderr.strip().splitlines()[-1]
        generated = Path(str(path) + ".pix.npy")
        pix = np.load(generated) if generated.exists() else None
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return result["seconds_per_epoch"], pix, None


def decoder_floor(vae, n_rows, n_draws, k, batch_size=64, repeats=3):
    """Seconds an epoch of the decoders' forward and backward passes alone.

    The matrix products every implementation of the objective must do: each
    of the ``n_draws`` posterior samples (times ``k`` importance samples) of
    each row is decoded into every modality, forward and backward, in
    batches of ``batch_size`` rows. Best of ``repeats`` epochs.
    """
    import torch

    module = vae.module_
    inputs = torch.randn(k, n_draws, batch_size, module.latent_dim + vae.private_dim)
    steps = -(-n_rows // batch_size)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            total = sum(decoder(inputs).sum() for decoder in module.decoders)
            total.backward()
        times.append(time.perf_counter() - start)
    return min(times)


COLUMNS = [
    "probe",
    "probe all",
    "fou latent",
    "fou>pix",
    "fou>pix own",
    "zer>pix",
    "fou+zer>pix",
    "pix>fou",
    "impute MSE",
    "impute acc",
    "fou>pix SVC",
    "s/epoch",
]


def print_table(rows, models):
    """Print the mean of each column over the folds, then each model's share."""
    header = f"{'model':<20}" + "".join(f"{c:>12}" for c in COLUMNS)
    print(header)
    print("-" * len(header))
    for name, values in rows.items():
        cells = [
            f"{np.mean(values[c]):12.4f}" if c in values else f"{'':>12}"
            for c in COLUMNS
        ]
        print(f"{name:<20}" + "".join(cells))
    ceiling = np.mean(rows["fou alone (LR, SVC)"]["fou>pix SVC"])
    for name in models:
        share = np.mean(rows[name]["fou>pix"]) / ceiling
        print(f"{name}: fou>pix is {share:.1%} of fou alone (SVC, {ceiling:.4f})")


# MoPoE variants (lead's sweep, issue 17): Laplace likelihoods keep more of
# the digit in the latent (probe); deeper, wider MLPs with a lighter KL
# term decode more of it (coherence).
VARIANTS = {
    "mopoe-laplace": {"likelihood": "laplace"},
    "mopoe-laplace-deep": {
        "likelihood": "laplace",
        "hidden": (1024, 1024),
        "beta": 0.5,
    },
}


def model_params(name, args):
    """MultimodalVAE's parameters for a model of the table."""
    if name == "mmvae+":
        return {
            "aggregation": "moe",
            "private_dim": args.private_dim,
            "n_importance_samples": args.k,
        }
    return {"aggregation": name.split("-")[0], **VARIANTS.get(name, {})}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 folds, 30 epochs")
    parser.add_argument("--folds", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument(
        "--models",
        "--aggregations",
        nargs="+",
        default=["poe", "moe", "mopoe", "mmvae+"],
        choices=["poe", "moe", "mopoe", "mmvae+", *VARIANTS],
    )
    parser.add_argument(
        "--no-speed", action="store_true", help="skip the speed comparison"
    )
    parser.add_argument(
        "--k", type=int, default=4, help="importance samples of MMVAE+ (both)"
    )
    parser.add_argument(
        "--private-dim", type=int, default=10, help="private latent of MMVAE+ (both)"
    )
    parser.add_argument(
        "--peer-epochs",
        type=int,
        default=None,
        help="epochs of multivae's MMVAE+ on each fold (default: --epochs)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="the models' random_state is seed + fold"
    )
    parser.add_argument(
        "--multivae",
        default="/work/venvs/multivae/bin/python",
        help="python of a virtualenv with multivae (skipped when missing)",
    )
    parser.add_argument("--peer-data", help=argparse.SUPPRESS)
    parser.add_argument("--peer-model", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peer_data:
        run_multivae(
            args.peer_data,
            args.epochs,
            args.peer_model,
            args.k,
            args.private_dim,
            args.seed,
        )
        return

    import torch
    from sklearn.base import clone
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer
    from sklearn.svm import SVC
    from threadpoolctl import threadpool_limits

    from mmfuse.datasets import load_mfeat
    from mmfuse.deep import MultimodalVAE
    from mmfuse.deep._data import column_statistics
    from mmfuse.deep._layers import FusedMLP
    from mmfuse.metrics import coherence

    torch.set_num_threads(1)
    threadpool_limits(1)
    n_folds = args.folds if args.folds is not None else (2 if args.quick else 5)
    epochs = args.epochs or (30 if args.quick else 100)
    peer_epochs = args.peer_epochs or epochs

    bunch = load_mfeat(views=["pix", "fou", "zer"])
    X, y = bunch.data, bunch.target
    bounds = np.cumsum([0, *bunch.blocks.values()])
    cols = {
        name: np.arange(a, b)
        for name, a, b in zip(bunch.blocks, bounds[:-1], bounds[1:], strict=True)
    }
    splits = list(StratifiedKFold(5, shuffle=True, random_state=0).split(X, y))
    print(
        f"mfeat pix+fou+zer, {len(X)} rows; stratified 5-fold seed 0, "
        f"{n_folds} fold(s) run; {epochs} epochs (multivae {peer_epochs}); "
        f"latent 20; MMVAE+ private {args.private_dim}, K={args.k}; models "
        f"seeded {args.seed} + fold; 1 thread"
    )

    rows = {}
    latent_all = 20 + len(cols) * args.private_dim

    def record(name, **values):
        for key, value in values.items():
            rows.setdefault(name, {}).setdefault(key, []).append(value)

    for fold, (train, test) in enumerate(splits[:n_folds]):
        mean, scale = column_statistics(X[train])
        Xs = (X - mean) / scale

        def reader(block, mean=mean, scale=scale, Xs=Xs, train=train):
            """LogisticRegression on a block, standardized as the training fold."""
            c = cols[block]
            standardize = FunctionTransformer(lambda v: (v - mean[c]) / scale[c])
            lr = LogisticRegression(max_iter=3000).fit(Xs[train][:, c], y[train])
            return make_pipeline(standardize, lr)

        readers = {block: reader(block) for block in ("pix", "fou")}
        svc = SVC().fit(Xs[train][:, cols["pix"]], y[train])
        concat = LogisticRegression(max_iter=3000).fit(Xs[train], y[train])
        record("concat views (LR)", probe=concat.score(Xs[test], y[test]))
        # Linear baselines of the latent's size: 20 (shared), and 50 (shared
        # + private of MMVAE+, output="all").
        for n_components in (20, latent_all):
            pca = make_pipeline(
                PCA(n_components), LogisticRegression(max_iter=3000)
            ).fit(Xs[train], y[train])
            record(f"PCA-{n_components} (LR)", probe=pca.score(Xs[test], y[test]))
        # fou>pix reads the digit from fou alone: so do these two classifiers.
        fou_train, fou_test = Xs[train][:, cols["fou"]], Xs[test][:, cols["fou"]]
        record(
            "fou alone (LR, SVC)",
            **{
                "fou>pix": readers["fou"][-1].score(fou_test, y[test]),
                "fou>pix SVC": SVC().fit(fou_train, y[train]).score(fou_test, y[test]),
            },
        )
        real_pix = Xs[test][:, cols["pix"]]

        fou, fou_zer = cols["fou"], np.concatenate([cols["fou"], cols["zer"]])
        from_fou = Ridge().fit(Xs[train][:, fou], Xs[train][:, cols["pix"]])
        from_fou = from_fou.predict(Xs[test][:, fou])
        from_both = Ridge().fit(Xs[train][:, fou_zer], Xs[train][:, cols["pix"]])
        from_both = from_both.predict(Xs[test][:, fou_zer])
        pix_reader = readers["pix"][-1]
        record(
            "Ridge to pix",
            **{
                "fou>pix": pix_reader.score(from_fou, y[test]),
                "fou+zer>pix": pix_reader.score(from_both, y[test]),
                "impute MSE": ((from_both - real_pix) ** 2).mean(),
                "fou>pix SVC": svc.score(from_fou, y[test]),
            },
        )
        X_missing = X[test].copy()
        X_missing[:, cols["pix"]] = np.nan
        for name in args.models:
            vae = MultimodalVAE(
                blocks=bunch.blocks,
                latent_dim=20,
                max_epochs=epochs,
                random_state=args.seed + fold,
                **model_params(name, args),
            ).fit(X[train])

            def coh(given, target, vae=vae, test=test, readers=readers):
                """Coherence of ``target`` generated from ``given``."""
                return coherence(vae, X[test], y[test], readers, given)[target]

            Z_train, Z_test = vae.transform(X[train]), vae.transform(X[test])
            probe = LogisticRegression(max_iter=3000).fit(Z_train, y[train])
            values = {"probe": probe.score(Z_test, y[test])}
            if vae.private_dim:
                vae.set_params(output="all")
                Z_train, Z_test = vae.transform(X[train]), vae.transform(X[test])
                probe = LogisticRegression(max_iter=3000).fit(Z_train, y[train])
                values["probe all"] = probe.score(Z_test, y[test])
                vae.set_params(output="shared")
            # What the shared latent of fou alone tells a linear reader.
            only_fou = np.isin(np.arange(X.shape[1]), cols["fou"])
            Z_train = vae.transform(np.where(only_fou, X[train], np.nan))
            Z_test = vae.transform(np.where(only_fou, X[test], np.nan))
            probe = LogisticRegression(max_iter=3000).fit(Z_train, y[train])
            values["fou latent"] = probe.score(Z_test, y[test])
            imputed = vae.impute(X_missing)[:, cols["pix"]]
            fou_pix = vae.reconstruct(X[test], given=["fou"])[:, cols["pix"]]
            fou_pix = (fou_pix - mean[cols["pix"]]) / scale[cols["pix"]]
            # A reader fitted to generated pix (of the training rows) instead
            # of real pix: how much of the digit the generated pix still hold.
            own = vae.reconstruct(X[train], given=["fou"])[:, cols["pix"]]
            own = (own - mean[cols["pix"]]) / scale[cols["pix"]]
            own = LogisticRegression(max_iter=3000).fit(own, y[train])
            values["fou>pix own"] = own.score(fou_pix, y[test])
            record(
                name,
                **values,
                **{
                    "fou>pix": coh(["fou"], "pix"),
                    "zer>pix": coh(["zer"], "pix"),
                    "fou+zer>pix": coh(["fou", "zer"], "pix"),
                    "pix>fou": coh(["pix"], "fou"),
                    "impute MSE": (
                        ((imputed - X[test][:, cols["pix"]]) / scale[cols["pix"]]) ** 2
                    ).mean(),
                    "impute acc": readers["pix"].score(imputed, y[test]),
                    "fou>pix SVC": svc.score(fou_pix, y[test]),
                    "s/epoch": float(np.median(vae.history_[:, "dur"])),
                },
            )
        if "mmvae+" in args.models:
            arrays = {b: Xs[train][:, c] for b, c in cols.items()}
            arrays["test_fou"] = Xs[test][:, cols["fou"]]
            seconds, pix, why = run_peer(
                args.multivae,
                arrays,
                peer_epochs,
                "mmvaeplus",
                args.k,
                args.private_dim,
                args.seed + fold,
            )
            if seconds is None:
                print(f"multivae MMVAE+ skipped: {why}")
            else:
                record(
                    "multivae MMVAE+",
                    **{
                        "fou>pix": pix_reader.score(pix, y[test]),
                        "fou>pix SVC": svc.score(pix, y[test]),
                        "s/epoch": seconds,
                    },
                )
        print(f"fold {fold} done", flush=True)

    if args.no_speed:
        if rows:
            print_table(rows, args.models)
        return
    # Speed at one architecture (multivae's default MLPs) on the first
    # training fold, the two libraries in turn.
    speed_model = "mmvae+" if "mmvae+" in args.models else "mopoe"
    if speed_model == "mmvae+":
        # Encoders 512 with a shared and a private head, decoders 512.
        arch = {"hidden": (512,), **model_params("mmvae+", args)}
        described = (
            f"MMVAE+ (encoders 512, decoders 512, private {args.private_dim}, "
            f"K={args.k}, batch 64)"
        )
    else:
        arch = {"hidden": (512, 512), "aggregation": "mopoe"}
        described = "MoPoE (encoders 512-512, decoders 512, batch 64)"
    same = MultimodalVAE(
        blocks=bunch.blocks,
        latent_dim=20,
        batch_size=64,
        max_epochs=PEER_EPOCHS,
        random_state=0,
        **arch,
    ).set_params(module__decoder=partial(FusedMLP, hidden=(512,)))
    train0 = splits[0][0]
    mean, scale = column_statistics(X[train0])
    peer_blocks = {b: ((X[train0] - mean) / scale)[:, c] for b, c in cols.items()}
    peer_name = "mmvaeplus" if speed_model == "mmvae+" else "mopoe"
    ours_runs, peer_runs, why = [], [], None
    for _ in range(SPEED_REPEATS):
        fitted = clone(same).fit(X[train0])
        ours_runs.append(float(np.median(fitted.history_[:, "dur"])))
        seconds, _, why = run_peer(
            args.multivae,
            peer_blocks,
            PEER_EPOCHS,
            peer_name,
            args.k,
            args.private_dim,
            args.seed,
        )
        if seconds is not None:
            peer_runs.append(seconds)
    same_seconds = min(ours_runs)
    n_draws = len(cols) if speed_model == "mmvae+" else 1
    k = args.k if speed_model == "mmvae+" else 1
    floor = decoder_floor(fitted, len(train0), n_draws, k)
    peer = min(peer_runs) if peer_runs else None
    cuda_seconds = None
    if torch.cuda.is_available():
        on_gpu = clone(same).set_params(device="cuda").fit(X[train0])
        cuda_seconds = float(np.median(on_gpu.history_[:, "dur"]))
    if rows:
        print_table(rows, args.models)
    print(
        f"\nseconds per epoch of {described} with the same architecture in both "
        f"(median over epochs, better of {SPEED_REPEATS} runs in turn with "
        f"multivae): mmfuse {same_seconds:.3f}"
    )
    if peer is None:
        print(f"multivae: skipped ({why})")
    else:
        print(f"multivae 1.0.3: {peer:.3f}; ratio {same_seconds / peer:.2f}")
    ratio = "" if peer is None else f", {floor / peer:.2f} of multivae's"
    print(
        f"the decoders' forward and backward alone (matrix-product floor): "
        f"{floor:.3f} s an epoch{ratio}"
    )
    if cuda_seconds is not None:
        print(f"mmfuse, the same architecture, device='cuda': {cuda_seconds:.3f}")


if __name__ == "__main__":
    main()
