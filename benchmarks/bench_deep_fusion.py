"""Benchmark: accuracy and speed of MLPFusionClassifier's fusions on mfeat.

mfeat (2000 handwritten digits, 6 feature views), stratified 5-fold CV with
seed 0 (``--seed``). For each ``fusion`` setting the script prints the mean
test accuracy, the accuracy when the ``pix`` view is missing (all NaN) in
30 % of the test rows (every net is trained with ``--modality-dropout``, 0.3),
and the seconds per training epoch. The nets use the estimator's defaults
(epochs, learning rate and its cosine decay, batch size, token sizes,
dropout) unless an option changes them.

Speed is timed apart from the cross-validation, on the first fold's
training rows: every net (the six fusions and the reference) is built, then
trained one epoch at a time in turn, ``--repeats`` rounds, so that all of them
meet the same load from other processes; seconds per epoch are the minimum
over the rounds of skorch's wall-clock ``dur`` and of the CPU time of the
training thread (``time.thread_time``, less disturbed by other processes on a
shared machine), and ``ratio`` divides by the reference's.

The speed reference is a plain skorch MLP on the concatenated views
(standardized beforehand), one hidden layer sized so that it has about as many
parameters as the default (``late``) fusion net, trained on the same rows
with the same optimizer, learning rate, cosine decay, batch size, shuffling
and ``train_split=None``. Both go through skorch; the fusion net reads each
batch in one indexing (its ``get_iterator``), the plain MLP row by row as
skorch does. Its accuracy is cross-validated like the fusions'. torch and
BLAS run on ``--threads`` threads (1 by default), set explicitly.

    python benchmarks/bench_deep_fusion.py            # 5 folds
    python benchmarks/bench_deep_fusion.py --quick    # 1 fold, 20 epochs
    python benchmarks/bench_deep_fusion.py --fusions late,concat --folds 2
    python benchmarks/bench_deep_fusion.py --folds 0    # speed only
    python benchmarks/bench_deep_fusion.py --device cuda
"""

import argparse
import time

import numpy as np
import torch
from sklearn.model_selection import StratifiedKFold
from sklearn.preprocessing import StandardScaler
from skorch import NeuralNetClassifier
from skorch.callbacks import Callback, LRScheduler
from threadpoolctl import threadpool_limits
from torch.optim.lr_scheduler import CosineAnnealingWarmRestarts

from mmfuse import resolve_blocks
from mmfuse.datasets import load_mfeat
from mmfuse.deep import MLPFusionClassifier
from mmfuse.deep._fusion_module import FUSIONS, FusionNet
from mmfuse.deep._layers import MLP

DEFAULTS = MLPFusionClassifier().get_params()
PLAIN = "plain skorch MLP (concatenated views)"


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 fold, 20 epochs")
    parser.add_argument("--folds", type=int, default=None, help="folds to run (of 5)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the folds")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=DEFAULTS["batch_size"])
    parser.add_argument("--lr", type=float, default=DEFAULTS["lr"])
    parser.add_argument("--d-model", type=int, default=DEFAULTS["d_model"])
    parser.add_argument("--n-tokens", type=int, default=DEFAULTS["n_tokens"])
    parser.add_argument("--dropout", type=float, default=DEFAULTS["dropout"])
    parser.add_argument("--modality-dropout", type=float, default=0.3)
    parser.add_argument("--fusions", default=",".join(FUSIONS))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=10, help="timing rounds")
    return parser.parse_args()


class ThreadTimer(Callback):
    """Record the CPU seconds of the training thread per epoch as ``cpu``."""

    def on_epoch_begin(self, net, **kwargs):
        """Start the clock."""
        self.start_ = time.thread_time()

    def on_epoch_end(self, net, **kwargs):
        """Record the epoch's CPU seconds."""
        net.history.record("cpu", time.thread_time() - self.start_)


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
        iterator_train__shuffle=True,
        # mmfuse nets run Adam/AdamW fused by default: the same kernels here
        # (and MLP's dropout is mmfuse's Dropout, as in the fusion nets), so
        # that only the architectures differ.
        optimizer__fused=True,
        callbacks=[
            ("timer", ThreadTimer()),
            (
                "lr_scheduler",
                LRScheduler(CosineAnnealingWarmRestarts, T_0=common["max_epochs"]),
            ),
        ],
        **common,
    )


def main(args):
    n_folds = args.folds if args.folds is not None else (1 if args.quick else 5)
    epochs = args.epochs or (20 if args.quick else DEFAULTS["max_epochs"])
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
        "callbacks": [("timer", ThreadTimer())],
    }
    # The reference's size: the parameter count of the default fusion's net.
    default_net = FusionNet(
        columns, 10, DEFAULTS["fusion"], d_model=args.d_model, n_tokens=args.n_tokens
    )
    n_reference = sum(p.numel() for p in default_net.parameters())
    folds = list(StratifiedKFold(5, shuffle=True, random_state=args.seed).split(X, y))

    def fusion_net(fusion, seed):
        return MLPFusionClassifier(
            blocks=data.blocks, fusion=fusion, random_state=seed, **net_params
        ).set_params(**common)

    def reference(train, seed):
        """Return the plain MLP, its scaler and standardized training rows."""
        scaler = StandardScaler().fit(X[train])
        torch.manual_seed(seed)
        mlp = plain_mlp(n_reference, X.shape[1], 10, common)
        return mlp, scaler, scaler.transform(X[train]).astype(np.float32)

    # Speed: every net trained one epoch at a time, in turn.
    train = folds[0][0]
    nets = {fusion: (fusion_net(fusion, 0), X[train]) for fusion in fusions}
    mlp, _, Z_train = reference(train, 0)
    nets[PLAIN] = (mlp, Z_train)
    speed = {name: [] for name in nets}
    for net, inputs in nets.values():
        net.set_params(max_epochs=1).fit(inputs, y[train])
    for _ in range(args.repeats):
        for name, (net, inputs) in nets.items():
            net.partial_fit(inputs, y[train])
            speed[name].append((net.history[-1, "dur"], net.history[-1, "cpu"]))
    speed = {name: np.min(times, axis=0) for name, times in speed.items()}
    params = {
        name: sum(p.numel() for p in net.module_.parameters())
        for name, (net, _) in nets.items()
    }

    # Accuracy: stratified 5-fold cross-validation.
    rows = {name: {"acc": [], "miss": []} for name in nets}
    start = time.perf_counter()
    for fold, (train, test) in enumerate(folds[:n_folds]):
        # pix missing (all NaN) in 30 % of the test rows.
        rng = np.random.default_rng(fold)
        X_missing = X[test].copy()
        missing = rng.choice(len(test), size=int(0.3 * len(test)), replace=False)
        X_missing[np.ix_(missing, pix_columns)] = np.nan
        for fusion in fusions:
            clf = fusion_net(fusion, fold).fit(X[train], y[train])
            rows[fusion]["acc"].append(clf.score(X[test], y[test]))
            rows[fusion]["miss"].append(clf.score(X_missing, y[test]))
        mlp, scaler, Z_train = reference(train, fold)
        mlp.fit(Z_train, y[train])
        rows[PLAIN]["acc"].append(
            mlp.score(scaler.transform(X[test]).astype(np.float32), y[test])
        )
        rows[PLAIN]["miss"].append(np.nan)  # cannot take NaN input
        print(f"fold {fold} done, {time.perf_counter() - start:.0f} s", flush=True)
        print_table(rows, speed, params, fold + 1, epochs, args)
    if n_folds == 0:
        print_table(rows, speed, params, 0, epochs, args)


def print_table(rows, speed, params, n_done, epochs, args):
    """Print accuracy over the folds run so far, and the timings."""
    base_wall, base_cpu = speed[PLAIN]
    print()
    print(
        f"mfeat, 6 views, stratified 5-fold (seed {args.seed}), {n_done} fold(s) "
        f"run; {epochs} epochs, batch {args.batch_size}, AdamW lr {args.lr} with "
        f"cosine decay, d_model {args.d_model}, n_tokens {args.n_tokens}, "
        f"dropout {args.dropout}, modality_dropout {args.modality_dropout}; "
        f"device {args.device}, {args.threads} thread(s); seconds per epoch: "
        f"min of {args.repeats} interleaved rounds"
    )
    header = (
        f"{'setting':<38} {'accuracy %':>13} {'pix missing 30%':>16} "
        f"{'s/epoch':>8} {'ratio':>6} {'cpu s/ep':>8} {'ratio':>6} {'params':>7}"
    )
    print(header)
    print("-" * len(header))
    for name, row in rows.items():
        wall, cpu = speed[name]
        if n_done:
            acc, miss = np.array(row["acc"]) * 100, np.array(row["miss"]) * 100
            accuracy = f"{acc.mean():>6.2f} ± {acc.std():4.2f}"
            missing = "-" if np.isnan(miss).all() else f"{miss.mean():.2f}"
        else:
            accuracy = missing = "-"
        print(
            f"{name:<38} {accuracy:>13} {missing:>16} "
            f"{wall:>8.3f} {wall / base_wall:>6.2f} {cpu:>8.3f} "
            f"{cpu / base_cpu:>6.2f} {params[name]:>7d}"
        )
    print(flush=True)


if __name__ == "__main__":
    arguments = parse_args()
    with threadpool_limits(limits=arguments.threads):
        main(arguments)
