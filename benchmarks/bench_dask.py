"""Out of core on Dask: MCCA and Nyström KCCA beyond the workers' memory.

Do they fit data larger than the memory of the workers, and as fast per
core as a single-process fit in memory?

It writes a seeded multiview data set (``--views`` views of ``--width``
float32 columns, ``--latent`` shared latent factors plus noise) to disk as
``.npy`` chunks of ``--chunk`` rows (``dask.array.to_npy_stack``, generated
chunk by chunk on the workers), larger than the memory given to the
workers (``--workers`` processes, one thread each, ``--memory-limit``
each). It then fits, on a ``LocalCluster`` of those workers reading the
chunks (no memory map: each chunk is read into the worker's memory and
freed), MCCA (``dtype=None``: float32 products, float64 statistics) and
Nyström KCCA (rbf, ``--landmarks`` landmarks a view, float64), and reports
wall time, the peak resident memory of the busiest worker
(``VmHWM``, reset before each fit), rows per second and rows per second per
core.

Side by side, in the same run, it fits the same estimators in this single
process (one BLAS thread) on the first ``--in-memory`` rows loaded into
memory, and on the cluster on those same rows: the per-row ratio compares
throughput per core (cluster rows/s per worker over in-memory rows/s), and
the agreement is the largest difference of the canonical correlations and
of the weights (dual coefficients for KCCA) between the in-memory fit and
the Dask fit of the same rows (up to rounding they must be equal). The data
files are deleted at the end.

Run (12 GB on disk, about 10-20 minutes on 2 cores)::

    PYTHONPATH=. python benchmarks/bench_dask.py --rows 10000000
    PYTHONPATH=. python benchmarks/bench_dask.py --quick   # 1 GB, a minute
"""

import argparse
import os
import resource
import shutil
import tempfile
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")  # this process: one BLAS thread
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import dask.array as da  # noqa: E402
import numpy as np  # noqa: E402
from distributed import Client, LocalCluster  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from mmfuse.cca import KCCA, MCCA  # noqa: E402

N_COMPONENTS = 5


def _chunk(block_id, rows, views, width, latent, seed):
    """Rows of one chunk: shared latent factors mixed into each view, plus noise."""
    mixing = np.random.default_rng(seed).standard_normal(
        (views, latent, width), dtype=np.float32
    )
    rng = np.random.default_rng([seed, block_id[0]])
    Z = rng.standard_normal((rows, latent), dtype=np.float32)
    return np.hstack(
        [
            Z @ mixing[v] + 2 * rng.standard_normal((rows, width), dtype=np.float32)
            for v in range(views)
        ]
    )


def write_data(path, args):
    """Write the data set as .npy chunks, generated on the workers."""
    n_chunks = -(-args.rows // args.chunk)
    width = args.views * args.width
    X = da.map_blocks(
        _chunk,
        rows=args.chunk,
        views=args.views,
        width=args.width,
        latent=args.latent,
        seed=0,
        chunks=((args.chunk,) * n_chunks, (width,)),
        dtype=np.float32,
    )[: args.rows]
    da.to_npy_stack(path, X, axis=0)


def _reset_peak():
    """Reset this process's peak resident memory (Linux clear_refs 5)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def _peak():
    """Peak resident memory of this process since the last reset, bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def _coefficients(estimator):
    return getattr(estimator, "weights_", None) or estimator.dual_coef_


def _estimators(args):
    return {
        "MCCA": lambda: MCCA(N_COMPONENTS, blocks=args.views, dtype=None),
        "Nystroem KCCA": lambda: KCCA(
            N_COMPONENTS,
            blocks=args.views,
            approximation="nystroem",
            n_landmarks=args.landmarks,
            gamma=1.0 / (args.width * 4 * (args.latent + 4)),
            random_state=0,
        ),
    }


def fit_on_cluster(client, make, X):
    client.run(_reset_peak)
    start = time.perf_counter()
    estimator = make().fit(X)
    seconds = time.perf_counter() - start
    peak = max(client.run(_peak).values())
    return estimator, seconds, peak


def fit_in_memory(make, X):
    start = time.perf_counter()
    with threadpool_limits(1):
        estimator = make().fit(X)
    return estimator, time.perf_counter() - start


def _agreement(a, b):
    correlations = np.abs(a.canonical_correlations_ - b.canonical_correlations_).max()
    weights = max(
        np.abs(W_a - W_b).max()
        for W_a, W_b in zip(_coefficients(a), _coefficients(b), strict=True)
    )
    return correlations, weights


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--views", type=int, default=3)
    parser.add_argument("--width", type=int, default=100)
    parser.add_argument("--latent", type=int, default=5)
    parser.add_argument("--chunk", type=int, default=50_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--memory-limit", default="2GiB")
    parser.add_argument("--in-memory", type=int, default=2_000_000)
    parser.add_argument("--landmarks", type=int, default=100)
    parser.add_argument("--dir", default=None, help="where to write the chunks")
    parser.add_argument("--quick", action="store_true", help="1 GB of data")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.in_memory, args.memory_limit = 1_000_000, 200_000, "400MiB"
    path = tempfile.mkdtemp(prefix="mmfuse_dask_", dir=args.dir)
    size = args.rows * args.views * args.width * 4
    cluster = LocalCluster(
        n_workers=args.workers,
        threads_per_worker=1,
        processes=True,
        memory_limit=args.memory_limit,
        dashboard_address=None,
    )
    client = Client(cluster)
    limit = sum(w["memory_limit"] for w in client.scheduler_info()["workers"].values())
    try:
        start = time.perf_counter()
        write_data(path, args)
        print(
            f"data: {args.rows:,} rows x {args.views} views x {args.width} float32 "
            f"= {size / 1e9:.1f} GB on disk in {time.perf_counter() - start:.0f} s "
            f"(chunks of {args.chunk:,} rows); workers: {args.workers} x 1 thread, "
            f"memory limit {limit / 2**30:.1f} GiB in all"
        )
        assert size > limit, "the data must exceed the workers' memory"
        X = da.from_npy_stack(path, mmap_mode=None)
        n_files = -(-args.in_memory // args.chunk)
        X_small = np.concatenate(
            [np.load(os.path.join(path, f"{i}.npy")) for i in range(n_files)]
        )[: args.in_memory]
        X_small_dask = X[: args.in_memory]
        header = (
            f"{'estimator':<14} {'run':<22} {'rows':>12} {'wall s':>8} "
            f"{'peak GiB':>9} {'rows/s':>11} {'rows/s/core':>12} {'per-row':>8}"
        )
        rows_out, notes = [header, "-" * len(header)], []
        for name, make in _estimators(args).items():
            memory, t_memory = fit_in_memory(make, X_small)
            peak_memory = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
            same, t_same, peak_same = fit_on_cluster(client, make, X_small_dask)
            big, t_big, peak_big = fit_on_cluster(client, make, X)
            per_core = args.in_memory / t_memory
            for run, n, seconds, peak, cores in (
                ("in memory, 1 process", args.in_memory, t_memory, peak_memory, 1),
                ("Dask, same rows", args.in_memory, t_same, peak_same, args.workers),
                ("Dask, out of core", args.rows, t_big, peak_big, args.workers),
            ):
                rate = n / seconds
                rows_out.append(
                    f"{name:<14} {run:<22} {n:>12,} {seconds:>8.1f} "
                    f"{peak / 2**30:>9.2f} {rate:>11,.0f} {rate / cores:>12,.0f} "
                    f"{rate / cores / per_core:>8.2f}"
                )
            d_rho, d_w = _agreement(memory, same)
            rho_big = np.round(big.canonical_correlations_, 4)
            rho_mem = np.round(memory.canonical_correlations_, 4)
            notes.append(
                f"{name}: Dask vs in memory on the same {args.in_memory:,} rows: "
                f"max |d rho| = {d_rho:.1e}, max |d weight| = {d_w:.1e}; "
                f"rho out of core {rho_big} vs in memory {rho_mem}"
            )
        print("\n".join(rows_out))
        print(
            "per-row: rows/s per core over the in-memory rows/s per core; "
            "peak: VmHWM of the busiest worker (in memory: this process, data "
            "included)"
        )
        print("\n".join(notes))
    finally:
        client.close()
        cluster.close()
        shutil.rmtree(path, ignore_errors=True)
        print(f"deleted {path}")


if __name__ == "__main__":
    main()
