"""Out of core on Dask: MCCA and Nyström KCCA beyond the workers' memory.

Do they fit data larger than the memory of the workers, and as fast per
core as a single-process fit in memory?

It writes a seeded multiview data set (``--views`` views of ``--width``
float32 columns, ``--latent`` shared latent factors plus noise) to disk as
``.npy`` chunks of ``--chunk`` rows (``dask.array.to_npy_stack``, generated
chunk by chunk on the workers), larger than the memory given to the
workers (``--workers`` processes, one thread each, ``--memory-limit``
each, Dask's statistical profiler off unless ``--dask-profiler``). It then
fits, on a ``LocalCluster`` of those workers reading the
chunks (memory-mapped by default, so that a chunk is read from the page
cache once, by the statistics themselves; ``--reader load`` reads each
into the worker's memory first), MCCA (``dtype=None``: float32 products,
float64 statistics) and Nyström KCCA (rbf, ``--landmarks`` landmarks a
view, float64), and reports wall time, the peak resident memory of the
busiest worker (``VmHWM``, reset before each fit; it counts the mapped
pages of the chunks being read), rows per second, rows per second per
core, and the CPU seconds of all the processes of the run (workers and
their nannies, the scheduler and this client).

Side by side, in the same run, it fits the same estimators in this single
process (one BLAS thread) on the first ``--in-memory`` rows loaded into
memory (the reference: the per-row ratio is rows/s per core over its
rows/s); on those rows in this process through Dask's synchronous
scheduler (one thread, no reading, no other process: the cost of the
chunking alone, least sensitive to a busy machine); and on the cluster.
For MCCA it also fits the in-memory rows in ``--workers`` separate
processes at once, without Dask: what the machine's cores give per core
when all are busy (on two cores shared with other jobs, or two
hyperthreads, this is below 1 whatever Dask does). The agreement is the
largest difference of the canonical correlations and of the weights (dual
coefficients for KCCA) between the in-memory fit and the Dask fit of the
same rows. For each out-of-core fit, the workers' task stream gives where
the time went: reading (a task of its own only with ``--reader load``),
the chunks' statistics, the landmark rows and the sign pass (KCCA), the
merges, the transfers between workers, and the rest of the workers' wall
time (waiting on the scheduler, idle); and the rows/s per core of the
statistics tasks alone. The data files are deleted at the end.

Run (12 GB on disk, about 10-20 minutes on 2 cores)::

    PYTHONPATH=. python benchmarks/bench_dask.py --rows 10000000 --chunk 500000
    PYTHONPATH=. python benchmarks/bench_dask.py --quick   # 1 GB, a minute
"""

import argparse
import os
import pickle
import resource
import shutil
import tempfile
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

os.environ.setdefault("OMP_NUM_THREADS", "1")  # this process: one BLAS thread
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import dask  # noqa: E402
import dask.array as da  # noqa: E402
import numpy as np  # noqa: E402
from distributed import Client, LocalCluster, get_task_stream  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from mmfuse.cca import KCCA, MCCA  # noqa: E402
from mmfuse.cca._statistics import shifted_sums  # noqa: E402

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


def _cpu_seconds(client):
    """CPU seconds so far of the workers (nannies included) and of the rest.

    The rest is this process, and the scheduler's when it runs elsewhere
    (a ``LocalCluster`` runs its scheduler in this process).
    """
    workers = sum(client.run(time.process_time).values())
    workers += sum(client.run(time.process_time, nanny=True).values())
    rest = time.process_time()
    if client.run_on_scheduler(os.getpid) != os.getpid():
        rest += client.run_on_scheduler(time.process_time)
    return np.array([workers, rest])


# Task names (key prefixes) of each kind of work on the workers.
_KINDS = {
    "from-npy-stack": "read",
    "load": "read",
    "_multiset_part": "statistics",
    "_kcca_part": "statistics",
    "_rows_at": "landmarks",
    "_positive": "landmarks",
    "_largest": "signs",
    "_combine": "merges",
}


def _breakdown(tasks, workers, seconds):
    """Workers' seconds by kind of task, transfers, and the rest of their time."""
    spent = defaultdict(float)
    for task in tasks:
        key = task["key"][0] if isinstance(task["key"], tuple) else task["key"]
        kind = next((k for p, k in _KINDS.items() if key.startswith(p)), "other")
        for span in task["startstops"]:
            what = kind if span["action"] == "compute" else span["action"]
            spent[what] += span["stop"] - span["start"]
    spent["idle/scheduling"] = workers * seconds - sum(spent.values())
    return dict(spent)


def best_of(repeats, fit, *args):
    """Return the run of least wall time of ``repeats`` (fewer past 20 s)."""
    runs, spent = [], 0.0
    while len(runs) < repeats and spent < 20:
        runs.append(fit(*args))
        spent += runs[-1][1]
    return min(runs, key=lambda run: run[1])


def fit_on_cluster(client, make, X):
    client.run(_reset_peak)
    cpu = _cpu_seconds(client)
    with get_task_stream(client) as tasks:
        start = time.perf_counter()
        estimator = make().fit(X)
        seconds = time.perf_counter() - start
    cpu = _cpu_seconds(client) - cpu
    peak = max(client.run(_peak).values())
    workers = len(client.scheduler_info()["workers"])
    spent = _breakdown(tasks.data, workers, seconds)
    names = ["cpu: workers", "cpu: client and scheduler"]
    spent.update(zip(names, cpu, strict=True))
    return estimator, seconds, peak, cpu.sum(), spent


def fit_in_memory(make, X):
    cpu = time.process_time()
    start = time.perf_counter()
    with threadpool_limits(1):
        estimator = make().fit(X)
    return estimator, time.perf_counter() - start, time.process_time() - cpu


def fit_in_process(make, X, chunk):
    """Fit the in-memory rows through Dask in this process, one thread."""
    X = da.from_array(X, chunks=(chunk, -1), name=False)  # no hashing of X
    cpu = time.process_time()
    start = time.perf_counter()
    with threadpool_limits(1), dask.config.set(scheduler="synchronous"):
        estimator = make().fit(X)
    return estimator, time.perf_counter() - start, time.process_time() - cpu


def load_rows(path, n_rows, chunk):
    """Return the first ``n_rows`` rows of the data set, in memory."""
    files = range(-(-n_rows // chunk))
    X = np.concatenate([np.load(os.path.join(path, f"{i}.npy")) for i in files])
    return X[:n_rows]


def _fit_at(path, args, start_at):
    """In a separate process: load the rows, wait for ``start_at``, time a fit."""
    X = load_rows(path, args.in_memory, args.chunk)
    time.sleep(max(0.0, start_at - time.time()))
    seconds = []
    with threadpool_limits(1):
        for _ in range(args.repeats):
            start = time.perf_counter()
            MCCA(N_COMPONENTS, blocks=args.views, dtype=None).fit(X)
            seconds.append(time.perf_counter() - start)
    return min(seconds)


def per_chunk_costs(path, args, repeats=5):
    """Milliseconds a chunk of MCCA's pass, in this process on one thread.

    The median over the first chunks and ``repeats`` runs of: reading a
    chunk into memory (``np.load``), its unfinished statistics from memory
    and from a memory map (which pays the reading in page faults), merging
    two chunks' statistics, and their serialization to and from bytes (what
    a transfer between processes costs besides the network).
    """
    files = [
        os.path.join(path, f"{i}.npy") for i in range(min(4, args.rows // args.chunk))
    ]
    columns = np.arange(args.views * args.width)
    times = defaultdict(list)

    def timed(what, task, *task_args):
        start = time.perf_counter()
        result = task(*task_args)
        times[what].append(1e3 * (time.perf_counter() - start))
        return result

    def round_trip(sums):
        return pickle.loads(pickle.dumps(sums))

    with threadpool_limits(1):
        shift = np.zeros(len(columns), np.float32)
        for _ in range(repeats):
            for file in files:
                chunk = timed("read", np.load, file)
                sums = timed("statistics", shifted_sums, chunk, columns, shift)
                mapped = np.load(file, mmap_mode="r")
                timed("statistics, memory-mapped", shifted_sums, mapped, columns, shift)
                timed("merge", sums.merge, sums)
                timed("serialize", round_trip, sums)
    return {what: float(np.median(ms)) for what, ms in times.items()}


def fit_in_parallel_processes(path, args):
    """Median over processes of their fastest in-memory MCCA fit, all at once."""
    with ProcessPoolExecutor(args.workers, mp_context=get_context("spawn")) as pool:
        start_at = time.time() + 10 + 5 * args.in_memory / 1e6  # all loaded by then
        futures = [
            pool.submit(_fit_at, path, args, start_at) for _ in range(args.workers)
        ]
        return float(np.median([f.result() for f in futures]))


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
    parser.add_argument(
        "--estimators", nargs="+", choices=["mcca", "kcca"], default=["mcca", "kcca"]
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="runs of each fit (the fastest kept)"
    )
    parser.add_argument(
        "--reader",
        choices=["mmap", "load"],
        default="mmap",
        help="how the workers read a chunk: memory-mapped, or np.load into memory "
        "(MCCA is also fitted with the other reader)",
    )
    parser.add_argument(
        "--dask-profiler",
        action="store_true",
        help="keep Dask's statistical profiler on in the workers (off by default)",
    )
    parser.add_argument("--quick", action="store_true", help="1 GB of data")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.in_memory, args.memory_limit = 1_000_000, 200_000, "400MiB"
    path = tempfile.mkdtemp(prefix="mmfuse_dask_", dir=args.dir)
    size = args.rows * args.views * args.width * 4
    # Dask's statistical profiler samples every worker thread's stack every
    # 10 ms, on the worker's own core: 3-4 % of a fit's time here. The
    # nannies hand this setting to the worker processes.
    with dask.config.set({"distributed.worker.profile.enabled": args.dask_profiler}):
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
        readers = {"mmap": "r", "load": None}
        other = next(r for r in readers if r != args.reader)
        X = da.from_npy_stack(path, mmap_mode=readers[args.reader])
        X_small = load_rows(path, args.in_memory, args.chunk)
        X_small_dask = X[: args.in_memory]
        header = (
            f"{'estimator':<14} {'run':<30} {'rows':>11} {'wall s':>7} "
            f"{'peak GiB':>8} {'rows/s':>10} {'rows/s/core':>11} {'per-row':>7} "
            f"{'cpu s':>6} {'rows/cpu-s':>10} {'per-row':>7}"
        )
        table, notes = [header, "-" * len(header)], []
        for name, make in _estimators(args).items():
            if name.split()[-1].lower() not in args.estimators:
                continue
            memory, t_memory, cpu_memory = best_of(
                args.repeats, fit_in_memory, make, X_small
            )
            peak_memory = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
            n = args.in_memory
            # (run, rows, seconds, peak bytes, cores, CPU seconds)
            runs = [("in memory, 1 process", n, t_memory, peak_memory, 1, cpu_memory)]
            if name == "MCCA":
                t_par = fit_in_parallel_processes(path, args)
                run = f"in memory, {args.workers} processes at once"
                runs.append((run, n, t_par, None, 1, None))
            _, t_local, cpu_local = best_of(
                args.repeats, fit_in_process, make, X_small, args.chunk
            )
            runs.append(("Dask in process, 1 thread", n, t_local, None, 1, cpu_local))
            same, t_same, peak_same, cpu_same, _ = best_of(
                args.repeats, fit_on_cluster, client, make, X_small_dask
            )
            runs.append(
                ("Dask, same rows", n, t_same, peak_same, args.workers, cpu_same)
            )
            out_of_core = [(args.reader, X)]
            if name == "MCCA":
                out_of_core.append(
                    (other, da.from_npy_stack(path, mmap_mode=readers[other]))
                )
            for reader, X_reader in out_of_core:
                big, t_big, peak_big, cpu_big, spent = best_of(
                    args.repeats, fit_on_cluster, client, make, X_reader
                )
                run = f"Dask, out of core ({reader})"
                runs.append((run, args.rows, t_big, peak_big, args.workers, cpu_big))
                alone = args.rows / spent.get("statistics", np.nan)
                notes.append(
                    f"{name}, {run}: seconds (workers' wall by task, CPU by process): "
                    + ", ".join(f"{k} {v:.1f}" for k, v in sorted(spent.items()))
                    + f"; the statistics tasks alone: {alone:,.0f} rows/s per core "
                    f"(per-row {alone * t_memory / args.in_memory:.2f})"
                )
            per_core = args.in_memory / t_memory
            per_cpu = args.in_memory / cpu_memory
            for run, n, seconds, peak, cores, cpu in runs:
                rate = n / seconds
                peak = "-" if peak is None else f"{peak / 2**30:.2f}"
                cpu_columns = (
                    f"{'-':>6} {'-':>10} {'-':>7}"
                    if cpu is None
                    else f"{cpu:>6.1f} {n / cpu:>10,.0f} {n / cpu / per_cpu:>7.2f}"
                )
                table.append(
                    f"{name:<14} {run:<30} {n:>11,} {seconds:>7.1f} {peak:>8} "
                    f"{rate:>10,.0f} {rate / cores:>11,.0f} "
                    f"{rate / cores / per_core:>7.2f} {cpu_columns}"
                )
            d_rho, d_w = _agreement(memory, same)
            rho_big = np.round(big.canonical_correlations_, 4)
            rho_mem = np.round(memory.canonical_correlations_, 4)
            notes.append(
                f"{name}: Dask vs in memory on the same {args.in_memory:,} rows: "
                f"max |d rho| = {d_rho:.1e}, max |d weight| = {d_w:.1e}; "
                f"rho out of core {rho_big} vs in memory {rho_mem}"
            )
        print("\n".join(table))
        print(
            "per-row: rows/s per core (or rows per CPU second) over the in-memory "
            "fit's; peak: VmHWM of the busiest worker (in memory: this process, data "
            "included); cpu s: CPU seconds of the workers and their nannies, the "
            "scheduler and this process"
        )
        print("\n".join(notes))
        costs = per_chunk_costs(path, args)
        print(
            f"MCCA, a chunk of {args.chunk:,} rows in this process, one thread (ms): "
            + ", ".join(f"{what} {ms:.1f}" for what, ms in costs.items())
        )
    finally:
        client.close()
        cluster.close()
        shutil.rmtree(path, ignore_errors=True)
        print(f"deleted {path}")


if __name__ == "__main__":
    main()
