"""Benchmark MultimodalVAE on mfeat (pix + fou + zer): quality and speed.

Question: how good and how fast is MultimodalVAE, per aggregation?

Protocol (issue 7): columns standardized on the training fold (inside the
estimator), latent 20, stratified 5-fold CV with seed 0. For each aggregation
(PoE, MoE, MoPoE) it reports, on the held-out rows:

- ``probe``: accuracy of LogisticRegression trained on the latent means of the
  training rows, applied to those of the held-out rows;
- cross-modal coherence: pix generated from fou alone (``fou>pix``), from zer
  alone, from fou + zer, and fou generated from pix, classified by a
  LogisticRegression trained on the real (standardized) target modality;
- imputation: held-out rows lose pix, ``impute`` fills it; MSE against the
  real pix (standardized units) and coherence of the imputed pix;
- ``fou>pix SVC``: fou>pix coherence read by an RBF SVC trained on real pix
  instead (the reader matters: LogisticRegression tends to read blurry
  generated digits as 8 or 3);
- seconds per epoch (median over epochs, from the skorch history).

Baselines in the same run: LogisticRegression on the concatenated views
(probe), Ridge from fou / fou + zer to pix (coherence, imputation MSE), and
the digit read from fou alone by LogisticRegression and an RBF SVC (in the
``fou>pix`` columns): ``fou>pix`` is itself a classifier of fou, so these
show how much fou tells (``benchmarks/fou_bound.py`` tunes more classifiers).

Speed against multivae's MoPoE (a peer run in its own virtualenv, which
needs torchvision): both train on the same training fold with the same
architecture (MLP encoders 512-512, decoders 512, latent 20, batch 64,
Gaussian likelihoods), in turn, twice; the table gives the median seconds
per epoch of each (the better of the two runs) and their ratio. The peer is
skipped (and says why) when its interpreter is missing. With a CUDA device,
mmfuse's epoch on it is timed too.

BLAS and torch are pinned to one thread (threadpoolctl and
``torch.set_num_threads``), in this process and in the peer's.

Usage::

    python benchmarks/bench_mmvae.py --quick      # 2 folds, 30 epochs
    python benchmarks/bench_mmvae.py              # 5 folds, 100 epochs
    python benchmarks/bench_mmvae.py --multivae /work/venvs/multivae/bin/python
    python benchmarks/bench_mmvae.py --aggregations mopoe --seed 1  # other seeds
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


def run_multivae(data_path, epochs):
    """Peer mode, run by multivae's interpreter: train MoPoE, print seconds/epoch."""
    import torch
    from multivae.data.datasets.base import MultimodalBaseDataset
    from multivae.models import MoPoE, MoPoEConfig
    from multivae.models.base.base_config import BaseAEConfig
    from multivae.models.nn.default_architectures import (
        Decoder_AE_MLP,
        Encoder_VAE_MLP,
    )
    from multivae.trainers import BaseTrainer, BaseTrainerConfig
    from multivae.trainers.base.callbacks import TrainingCallback

    torch.set_num_threads(1)
    arrays = np.load(data_path)
    data = {name: torch.tensor(arrays[name]) for name in arrays.files}
    dims = {name: (value.shape[1],) for name, value in data.items()}
    config = MoPoEConfig(
        n_modalities=len(data),
        latent_dim=20,
        input_dims=dims,
        decoders_dist={name: "normal" for name in data},
    )
    encoders = {
        n: Encoder_VAE_MLP(BaseAEConfig(input_dim=d, latent_dim=20))
        for n, d in dims.items()
    }
    decoders = {
        n: Decoder_AE_MLP(BaseAEConfig(input_dim=d, latent_dim=20))
        for n, d in dims.items()
    }
    model = MoPoE(config, encoders=encoders, decoders=decoders)

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
            ),
            callbacks=[timer],
        )
        trainer.train()
    print(json.dumps({"seconds_per_epoch": float(np.median(timer.durations))}))


def peer_seconds_per_epoch(python, train_blocks, epochs):
    """Run the multivae peer in its interpreter; (seconds, None) or (None, why)."""
    if not Path(python).exists():
        return None, f"no interpreter at {python}"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "train.npz"
        np.savez(path, **{k: v.astype(np.float32) for k, v in train_blocks.items()})
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        done = subprocess.run(
            [python, __file__, "--peer-data", str(path), "--epochs", str(epochs)],
            capture_output=True,
            text=True,
            env=env,
            timeout=3600,
        )
    if done.returncode != 0:
        return None, done.stderr.strip().splitlines()[-1]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return result["seconds_per_epoch"], None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 folds, 30 epochs")
    parser.add_argument("--folds", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--aggregations", nargs="+", default=["poe", "moe", "mopoe"])
    parser.add_argument(
        "--seed", type=int, default=0, help="the models' random_state is seed + fold"
    )
    parser.add_argument(
        "--multivae",
        default="/work/venvs/multivae/bin/python",
        help="python of a virtualenv with multivae (skipped when missing)",
    )
    parser.add_argument("--peer-data", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peer_data:
        run_multivae(args.peer_data, args.epochs)
        return

    import torch
    from sklearn.base import clone
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.model_selection import StratifiedKFold
    from sklearn.svm import SVC
    from threadpoolctl import threadpool_limits

    from mmfuse.datasets import load_mfeat
    from mmfuse.deep import MultimodalVAE
    from mmfuse.deep._data import column_statistics
    from mmfuse.deep._layers import MLP

    torch.set_num_threads(1)
    threadpool_limits(1)
    n_folds = args.folds or (2 if args.quick else 5)
    epochs = args.epochs or (30 if args.quick else 100)

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
        f"{n_folds} fold(s) run; {epochs} epochs; latent 20; models seeded "
        f"{args.seed} + fold; 1 thread"
    )

    rows = {}

    def record(name, **values):
        for key, value in values.items():
            rows.setdefault(name, {}).setdefault(key, []).append(value)

    peer_blocks = None
    for fold, (train, test) in enumerate(splits[:n_folds]):
        mean, scale = column_statistics(X[train])
        Xs = (X - mean) / scale
        readers = {
            block: LogisticRegression(max_iter=3000).fit(
                Xs[train][:, cols[block]], y[train]
            )
            for block in ("pix", "fou")
        }
        svc = SVC().fit(Xs[train][:, cols["pix"]], y[train])
        if peer_blocks is None:
            peer_blocks = {b: Xs[train][:, c] for b, c in cols.items()}
        concat = LogisticRegression(max_iter=3000).fit(Xs[train], y[train])
        record("concat views (LR)", probe=concat.score(Xs[test], y[test]))
        # fou>pix reads the digit from fou alone: so do these two classifiers.
        fou_train, fou_test = Xs[train][:, cols["fou"]], Xs[test][:, cols["fou"]]
        record(
            "fou alone (LR, SVC)",
            **{
                "fou>pix": readers["fou"].score(fou_test, y[test]),
                "fou>pix SVC": SVC().fit(fou_train, y[train]).score(fou_test, y[test]),
            },
        )
        real_pix = Xs[test][:, cols["pix"]]

        fou, fou_zer = cols["fou"], np.concatenate([cols["fou"], cols["zer"]])
        from_fou = Ridge().fit(Xs[train][:, fou], Xs[train][:, cols["pix"]])
        from_fou = from_fou.predict(Xs[test][:, fou])
        from_both = Ridge().fit(Xs[train][:, fou_zer], Xs[train][:, cols["pix"]])
        from_both = from_both.predict(Xs[test][:, fou_zer])
        record(
            "Ridge to pix",
            **{
                "fou>pix": readers["pix"].score(from_fou, y[test]),
                "fou+zer>pix": readers["pix"].score(from_both, y[test]),
                "impute MSE": ((from_both - real_pix) ** 2).mean(),
                "fou>pix SVC": svc.score(from_fou, y[test]),
            },
        )
        X_missing = X[test].copy()
        X_missing[:, cols["pix"]] = np.nan
        for name in args.aggregations:
            vae = MultimodalVAE(
                blocks=bunch.blocks,
                latent_dim=20,
                aggregation=name,
                max_epochs=epochs,
                random_state=args.seed + fold,
            ).fit(X[train])

            def generated(given, target, vae=vae, test=test, mean=mean, scale=scale):
                """Target modality generated from ``given``, standardized."""
                X_generated = vae.reconstruct(X[test], given=given)
                c = cols[target]
                return (X_generated[:, c] - mean[c]) / scale[c]

            Z_train, Z_test = vae.transform(X[train]), vae.transform(X[test])
            probe = LogisticRegression(max_iter=3000).fit(Z_train, y[train])
            imputed = vae.impute(X_missing)[:, cols["pix"]]
            imputed = (imputed - mean[cols["pix"]]) / scale[cols["pix"]]
            fou_pix = generated(["fou"], "pix")
            record(
                name,
                **{
                    "probe": probe.score(Z_test, y[test]),
                    "fou>pix": readers["pix"].score(fou_pix, y[test]),
                    "zer>pix": readers["pix"].score(generated(["zer"], "pix"), y[test]),
                    "fou+zer>pix": readers["pix"].score(
                        generated(["fou", "zer"], "pix"), y[test]
                    ),
                    "pix>fou": readers["fou"].score(generated(["pix"], "fou"), y[test]),
                    "impute MSE": ((imputed - real_pix) ** 2).mean(),
                    "impute acc": readers["pix"].score(imputed, y[test]),
                    "fou>pix SVC": svc.score(fou_pix, y[test]),
                    "s/epoch": float(np.median(vae.history_[:, "dur"])),
                },
            )
        print(f"fold {fold} done", flush=True)

    # Speed with multivae's default architecture (encoders 512-512, decoders
    # 512, batch 64) on the first training fold, the two libraries in turn.
    same = MultimodalVAE(
        blocks=bunch.blocks,
        latent_dim=20,
        hidden=(512, 512),
        batch_size=64,
        max_epochs=PEER_EPOCHS,
        random_state=0,
    ).set_params(module__decoder=partial(MLP, hidden=(512,)))
    ours_runs, peer_runs, why = [], [], None
    for _ in range(SPEED_REPEATS):
        fitted = clone(same).fit(X[splits[0][0]])
        ours_runs.append(float(np.median(fitted.history_[:, "dur"])))
        seconds, why = peer_seconds_per_epoch(args.multivae, peer_blocks, PEER_EPOCHS)
        if seconds is not None:
            peer_runs.append(seconds)
    same_seconds = min(ours_runs)
    peer = min(peer_runs) if peer_runs else None
    cuda_seconds = None
    if torch.cuda.is_available():
        on_gpu = clone(same).set_params(device="cuda").fit(X[splits[0][0]])
        cuda_seconds = float(np.median(on_gpu.history_[:, "dur"]))
    columns = [
        "probe",
        "fou>pix",
        "zer>pix",
        "fou+zer>pix",
        "pix>fou",
        "impute MSE",
        "impute acc",
        "fou>pix SVC",
        "s/epoch",
    ]
    header = f"{'model':<20}" + "".join(f"{c:>12}" for c in columns)
    print(header)
    print("-" * len(header))
    for name, values in rows.items():
        cells = [
            f"{np.mean(values[c]):12.4f}" if c in values else f"{'':>12}"
            for c in columns
        ]
        print(f"{name:<20}" + "".join(cells))
    print(
        f"\nseconds per epoch of MoPoE with multivae's architecture (encoders "
        f"512-512, decoders 512, batch 64; median over epochs, better of "
        f"{SPEED_REPEATS} runs in turn with multivae): mmfuse {same_seconds:.3f}"
    )
    if peer is None:
        print(f"multivae MoPoE: skipped ({why})")
    else:
        print(f"multivae 1.0.3: {peer:.3f}; ratio {same_seconds / peer:.2f}")
        if "mopoe" in rows:
            ours = np.mean(rows["mopoe"]["s/epoch"])
            print(f"mmfuse MoPoE defaults (table) / multivae: {ours / peer:.2f}")
    if cuda_seconds is not None:
        print(f"mmfuse, multivae's architecture, device='cuda': {cuda_seconds:.3f}")


if __name__ == "__main__":
    main()
