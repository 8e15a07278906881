r"""Does data-parallel training with Accelerate give the single-process model.

Run it under ``accelerate launch``; on this machine's CPU, 2 processes
(gloo)::

    ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes 2 \
        benchmarks/accelerate_fit.py --out fusion.pkl

(``accelerate launch --cpu --num_processes 2`` starts one process unless
given ``--mpirun_hostfile``: accelerate 1.15 starts several CPU processes
through MPI, or through torchrun as above.) On GPUs: ``accelerate launch
--multi_gpu --num_processes <gpus> benchmarks/accelerate_fit.py --out
fusion.pkl``.

Every process builds the same seeded data (``make_data``: 3 modalities of
``mmfuse.datasets.make_multiview``, a label from the shared latent) and
fits the same ``MLPFusionClassifier`` (``make_estimator``) with
``accelerator=Accelerator()`` and a batch of ``--batch-size`` / (number of
processes) rows a process: each step, the processes take consecutive
batches and average their gradients, so that they train one model on the
batches of ``--batch-size`` rows a single process would. The main process
pickles the fitted net to ``--out`` (the pickle holds no accelerator: load
and predict it anywhere), then fits the same estimator without
accelerator, in that one process, and prints the largest difference of the
two models' ``predict_proba``, their label agreement and accuracies, and
the wall time of each fit (after a warm-up fit, on each process).

By default shuffling and dropout are off, so that both fits see the same
batches and the same masks: the probabilities then agree to float rounding
(well under 1e-4). With ``--shuffle`` and ``--dropout 0.2`` the data-parallel
fit draws other batches and masks than the single process: a model as good,
not the same one. torch runs on one thread a process (``--threads``).

    python benchmarks/accelerate_fit.py --out fusion.pkl   # one process
"""

import argparse
import pickle
import time

import numpy as np
import torch

from mmfuse.datasets import make_multiview
from mmfuse.deep import MLPFusionClassifier

BLOCKS = [12, 8, 6]


def make_data(n_samples=512, random_state=0):
    """Return the seeded data: ``X`` with 3 modalities, a binary label ``y``."""
    X, latent = make_multiview(n_samples, BLOCKS, n_latent=3, random_state=random_state)
    y = (latent[:, 0] + 0.5 * latent[:, 1] > 0).astype(int)
    return X, y


def make_estimator(*, shuffle=False, dropout=0.0, batch_size=64, max_epochs=10):
    """Return the classifier that both fits train (no accelerator set)."""
    net = MLPFusionClassifier(
        blocks=BLOCKS,
        fusion="attention",
        dropout=dropout,
        batch_size=batch_size,
        max_epochs=max_epochs,
        train_split=None,
        verbose=0,
        random_state=0,
    )
    return net.set_params(iterator_train__shuffle=shuffle)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="where to pickle the net")
    parser.add_argument("--shuffle", action="store_true", help="shuffle batches")
    parser.add_argument("--dropout", type=float, default=0.0)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    return parser.parse_args()


def main():
    from accelerate import Accelerator

    args = parse_args()
    torch.set_num_threads(args.threads)
    accelerator = Accelerator()
    n = accelerator.num_processes
    if args.batch_size % n:
        raise SystemExit(f"--batch-size {args.batch_size} is not a multiple of {n}")
    X, y = make_data()
    settings = dict(shuffle=args.shuffle, dropout=args.dropout, max_epochs=args.epochs)
    make_estimator(max_epochs=1).fit(X, y)  # warm-up: a first fit pays start-up
    net = make_estimator(batch_size=args.batch_size // n, **settings).set_params(
        accelerator=accelerator, device=accelerator.device.type
    )
    start = time.perf_counter()
    net.fit(X, y)
    parallel_time = time.perf_counter() - start
    if accelerator.is_main_process:
        with open(args.out, "wb") as file:
            pickle.dump(net, file)
        start = time.perf_counter()
        single = make_estimator(batch_size=args.batch_size, **settings).fit(X, y)
        single_time = time.perf_counter() - start
        proba, single_proba = net.predict_proba(X), single.predict_proba(X)
        agreement = np.mean(net.predict(X) == single.predict(X))
        print(f"processes               {n} ({accelerator.device})")
        print(f"fit, {n} processes [s]    {parallel_time:.2f}")
        print(f"fit, 1 process [s]      {single_time:.2f}")
        print(f"max |proba difference|  {np.abs(proba - single_proba).max():.2e}")
        print(f"label agreement         {agreement:.4f}")
        accuracy = f"{net.score(X, y):.4f} / {single.score(X, y):.4f}"
        print(f"accuracy ({n} / 1)        {accuracy}")
        print(f"saved                   {args.out}")
    accelerator.wait_for_everyone()
    accelerator.end_training()


if __name__ == "__main__":
    main()
