"""Benchmark: accuracy and speed of MLPFusionClassifier's fusions on mfeat.

mfeat (2000 handwritten digits, 6 feature views), stratified 5-fold CV with
seed 0. For each ``fusion`` setting the script prints the mean test accuracy
and the seconds per training epoch, and the accuracy of the same net when the
``pix`` view is missing (all NaN) in 30 % of the test rows: every net is
trained with modality dropout (``--modality-dropout``, 0.3). The reference is
a plain skorch MLP of similar size (parameter count of the attention net) on
the concatenated, standardized views, trained in the same run with the same
optimizer, epochs and batch size.

Seconds per epoch are the median over a fit's epochs (skorch's ``dur``), then
the minimum over folds; ratios divide by the plain MLP's. Torch and BLAS run
on ``--threads`` threads (1 by default), set explicitly.

    python benchmarks/bench_deep_fusion.py            # 5 folds
    python benchmarks/bench_deep_fusion.py --quick    # 1 fold, fewer epochs
    python benchmarks/bench_deep_fusion.py --device cuda
"""

import argparse
import time

import numpy as np
import torch
from sklearn.model_selection import StratifiedKFold
from sklearn.preprocessing import StandardScaler
from skorch import NeuralNetClassifier
from threadpoolctl import threadpool_limits

from mmfuse import resolve_blocks
from mmfuse.datasets import load_mfeat
from mmfuse.deep import MLPFusionClassifier
from mmfuse.deep._modules import FUSIONS, MLP


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 fold, 20 epochs")
    parser.add_argument("--folds", type=int, default=None, help="folds to run (of 5)")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--d-model", type=int, default=32)
    parser.add_argument("--n-tokens", type=int, default=4)
    parser.add_argument("--dropout", type=float, default=0.2)
    parser.add_argument("--modality-dropout", type=float, default=0.3)
    parser.add_argument("--fusions", default=",".join(FUSIONS))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    return parser.parse_args()


def epoch_seconds(net):
    return float(np.median(net.history[:, "dur"]))


def plain_mlp(n_params, n_features, n_classes, common):
    """Return a skorch MLP for the concatenated views, about ``n_params`` weights."""
    hidden = max(16, round((n_params - n_classes) / (n_features + n_classes + 1)))
    return NeuralNetClassifier(
        MLP,
        module__in_features=n_features,
        module__out_features=n_classes,
        module__hidden=(hidden,),
        module__dropout=0.1,
        criterion=torch.nn.CrossEntropyLoss,
        **common,
    )


def main(args):
    n_folds = args.folds or (1 if args.quick else 5)
    epochs = args.epochs or (20 if args.quick else 40)
    fusions = args.fusions.split(",")
    torch.set_num_threads(args.threads)
    data = load_mfeat()
    X, y = data.data, data.target
    columns, names = resolve_blocks(data.blocks, X.shape[1])
    pix_columns = columns[names.index("pix")]
    common = {
        "optimizer": torch.optim.AdamW,
        "lr": args.lr,
        "max_epochs": epochs,
        "batch_size": args.batch_size,
        "train_split": None,
        "verbose": 0,
        "device": args.device,
    }
    net_params = {
        "d_model": args.d_model,
        "n_tokens": args.n_tokens,
        "dropout": args.dropout,
        "modality_dropout": args.modality_dropout,
    }
    folds = StratifiedKFold(5, shuffle=True, random_state=0).split(X, y)
    rows = {}

    def record(name, accuracy, accuracy_missing, seconds, n_params):
        row = rows.setdefault(name, {"acc": [], "miss": [], "sec": []})
        row["acc"].append(accuracy)
        row["miss"].append(accuracy_missing)
        row["sec"].append(seconds)
        row["params"] = n_params

    start = time.perf_counter()
    for fold, (train, test) in zip(range(n_folds), folds, strict=False):
        # pix missing (all NaN) in 30 % of the test rows.
        rng = np.random.default_rng(fold)
        X_missing = X[test].copy()
        missing = rng.choice(len(test), size=int(0.3 * len(test)), replace=False)
        X_missing[np.ix_(missing, pix_columns)] = np.nan
        sizes = {}
        for fusion in fusions:
            clf = MLPFusionClassifier(
                blocks=data.blocks, fusion=fusion, random_state=fold, **net_params
            ).set_params(**common)
            clf.fit(X[train], y[train])
            sizes[fusion] = sum(p.numel() for p in clf.module_.parameters())
            record(
                fusion,
                clf.score(X[test], y[test]),
                clf.score(X_missing, y[test]),
                epoch_seconds(clf),
                sizes[fusion],
            )
        # The reference: a plain MLP the size of the default (attention) net.
        scaler = StandardScaler().fit(X[train])
        torch.manual_seed(fold)
        mlp = plain_mlp(sizes.get("attention", 3e5), X.shape[1], 10, common)
        mlp.fit(scaler.transform(X[train]).astype(np.float32), y[train])
        Z_test = scaler.transform(X[test]).astype(np.float32)
        record(
            "plain skorch MLP (concatenated views)",
            mlp.score(Z_test, y[test]),
            np.nan,  # cannot take NaN input
            epoch_seconds(mlp),
            sum(p.numel() for p in mlp.module_.parameters()),
        )
        print(f"fold {fold} done, {time.perf_counter() - start:.0f} s", flush=True)

    base = min(rows["plain skorch MLP (concatenated views)"]["sec"])
    print()
    print(
        f"mfeat, 6 views, stratified 5-fold (seed 0), {n_folds} fold(s) run; "
        f"{epochs} epochs, batch {args.batch_size}, AdamW lr {args.lr}, "
        f"d_model {args.d_model}, n_tokens {args.n_tokens}, dropout "
        f"{args.dropout}, modality_dropout {args.modality_dropout}; device "
        f"{args.device}, {args.threads} thread(s)"
    )
    header = (
        f"{'setting':<38} {'accuracy %':>13} {'pix missing 30%':>16} "
        f"{'s/epoch':>8} {'ratio':>6} {'params':>7}"
    )
    print(header)
    print("-" * len(header))
    for name, row in rows.items():
        acc, miss = np.array(row["acc"]) * 100, np.array(row["miss"]) * 100
        sec = min(row["sec"])
        missing_text = "-" if np.isnan(miss).all() else f"{miss.mean():.2f}"
        print(
            f"{name:<38} {acc.mean():>6.2f} ± {acc.std():4.2f} {missing_text:>16} "
            f"{sec:>8.3f} {sec / base:>6.2f} {row['params']:>7d}"
        )


if __name__ == "__main__":
    arguments = parse_args()
    with threadpool_limits(limits=arguments.threads):
        main(arguments)
