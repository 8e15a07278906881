"""How close do mmfuse's MCCA and GCCA come to the floor, in time and memory.

The floor is the least any closed-form multiset CCA must do: centre the
views, form one stacked ``XᵀX``, solve one top-k generalized ``eigh`` (see
``floor`` below, a few lines). On the same seeded data (``make_multiview``,
3 views, ``n_components=10``, columns scaled to unit variance so that every
library's ridge means the same thing, ``r = 0.1``) it times mmfuse MCCA and
GCCA (float64, and MCCA on float32 input, which it keeps in float32 by
default), cca-zoo MCCA and GCCA, mvlearn MCCA and GCCA, and, on the first 2
views without ridge, scikit-learn's CCA against mmfuse and the 2-view floor.
For each it prints the fit time (min of repeats), its ratio to the floor,
its ratio to one ``X.T @ X`` of the same data (the bound of any covariance
method; timed right after each fit in the same process, in CPU time, the
median of the pair ratios), the peak memory allocated above the input (``tracemalloc``:
numpy buffers, BLAS scratch excluded) and the largest difference of its
training canonical correlations to the floor's.

Each (library, size) runs in its own process with one BLAS thread
(``OMP/OPENBLAS/MKL_NUM_THREADS=1`` and ``threadpoolctl``) and an address
space limit of 6 GB; sizes whose data alone would need more than 5 GiB, or
known peers' blow-ups, are skipped with the reason printed.

Run (peers in their own venv, same numpy/scipy/scikit-learn as mmfuse)::

    PYTHONPATH=. /work/venvs/cca/bin/python benchmarks/bench_cca.py --quick
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import tracemalloc

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
N_VIEWS, N_COMPONENTS, RIDGE = 3, 10, 0.1
MEMORY_LIMIT = 6_000_000_000  # address space of each run, bytes
DATA_LIMIT = 5 * 2**30  # skip sizes whose data generation alone needs more
TIME_LIMIT = 180  # seconds for one run of a peer (data and repeats)

# Known blow-ups, measured before, so that they are not re-run: (lib, n, d).
KNOWN = {
    ("sklearn CCA", 100_000, 200): "over 3 min (52 s at n=10^4, linear in n)",
}


def _spans(dims):
    edges = [0]
    for d in dims:
        edges.append(edges[-1] + d)
    return list(zip(edges[:-1], edges[1:], strict=True))


def floor(X, dims, k, ridge, maxvar=False):
    """Centring, one stacked XᵀX, one top-k generalized eigh."""
    import numpy as np
    import scipy.linalg as sla

    Xc = X - X.mean(axis=0)
    C = Xc.T @ Xc / (len(X) - 1)
    spans = _spans(dims)
    blocks = [C[a:b, a:b] for a, b in spans]
    D = sla.block_diag(
        *[(1 - ridge) * C_v + ridge * np.eye(len(C_v)) for C_v in blocks]
    )
    A = C if maxvar else C - sla.block_diag(*blocks) + D  # SUMCOR: D on the diagonal
    _, V = sla.eigh(A, D, subset_by_index=[len(C) - k, len(C) - 1])
    return [V[a:b, ::-1] for a, b in spans]


def _variates(X, dims, weights):
    return [
        (X[:, a:b] - X[:, a:b].mean(axis=0)) @ W
        for (a, b), W in zip(_spans(dims), weights, strict=True)
    ]


def _views(X, dims):
    return [X[:, a:b] for a, b in _spans(dims)]


def _mvlearn_regs(ridge, n):
    # mvlearn shrinks XᵀX (not the covariance) towards I: same ridge.
    return ridge * (n - 1) / ((1 - ridge) + ridge * (n - 1))


def runners():
    """Library name -> (views used, ridge, fit(X, dims) -> variates)."""

    def mmfuse(cls, **params):
        def fit(X, dims):
            import mmfuse.cca

            model = getattr(mmfuse.cca, cls)(N_COMPONENTS, blocks=dims, **params).fit(X)
            return lambda: model.transform_views(X)

        return fit

    def floor_fit(maxvar, ridge):
        def fit(X, dims):
            weights = floor(X, dims, N_COMPONENTS, ridge, maxvar)
            return lambda: _variates(X, dims, weights)

        return fit

    def ccazoo(cls):
        def fit(X, dims):
            import cca_zoo.linear

            model = getattr(cca_zoo.linear, cls)(N_COMPONENTS, shrinkage=RIDGE)
            model.fit(_views(X, dims))
            return lambda: _variates(X, dims, model.weights_)

        return fit

    def mvlearn_mcca(X, dims):
        from mvlearn.embed import MCCA

        model = MCCA(N_COMPONENTS, regs=_mvlearn_regs(RIDGE, len(X))).fit(
            _views(X, dims)
        )
        return lambda: list(model.transform(_views(X, dims)))

    def mvlearn_gcca(X, dims):
        from mvlearn.embed import GCCA

        model = GCCA(N_COMPONENTS).fit(_views(X, dims))
        return lambda: list(model.transform(_views(X, dims)))

    def sklearn_cca(X, dims):
        from sklearn.cross_decomposition import CCA

        Xs = _views(X, dims)
        model = CCA(N_COMPONENTS).fit(Xs[0], Xs[1])
        return lambda: list(model.transform(Xs[0], Xs[1]))

    return {
        "floor MCCA": (N_VIEWS, floor_fit(False, RIDGE)),
        "mmfuse MCCA": (N_VIEWS, mmfuse("MCCA", regularization=RIDGE)),
        "mmfuse MCCA float32": (N_VIEWS, mmfuse("MCCA", regularization=RIDGE)),
        "cca-zoo MCCA": (N_VIEWS, ccazoo("MCCA")),
        "mvlearn MCCA": (N_VIEWS, mvlearn_mcca),
        "floor GCCA": (N_VIEWS, floor_fit(True, RIDGE)),
        "mmfuse GCCA": (N_VIEWS, mmfuse("GCCA", regularization=RIDGE)),
        "cca-zoo GCCA": (N_VIEWS, ccazoo("GCCA")),
        "mvlearn GCCA": (N_VIEWS, mvlearn_gcca),
        "floor 2 views": (2, floor_fit(False, 0.0)),
        "mmfuse MCCA 2 views": (2, mmfuse("MCCA")),
        "sklearn CCA": (2, sklearn_cca),
    }


# The runs that fit in 5 GiB at n=10^5, d=3x1000 (2.2 GiB of X): mmfuse
# needs no copy of X, the floor one. The others need more (cca-zoo measured
# over 8 GiB there) or, for scikit-learn's CCA, far more than 3 minutes.
LEAN = ("floor MCCA", "mmfuse MCCA", "mmfuse MCCA float32", "mmfuse GCCA")

# Which floor each library is compared with.
REFERENCE = {
    "floor MCCA": "floor MCCA",
    "mmfuse MCCA": "floor MCCA",
    "mmfuse MCCA float32": "floor MCCA",
    "cca-zoo MCCA": "floor MCCA",
    "mvlearn MCCA": "floor MCCA",
    "floor GCCA": "floor GCCA",
    "mmfuse GCCA": "floor GCCA",
    "cca-zoo GCCA": "floor GCCA",
    "mvlearn GCCA": "floor GCCA",
    "floor 2 views": "floor 2 views",
    "mmfuse MCCA 2 views": "floor 2 views",
    "sklearn CCA": "floor 2 views",
}


def _generation_bytes(n, d):
    # make_multiview holds the views and their hstack, plus two n x d
    # temporaries while it draws the last view.
    return 8 * n * d * (2 * N_VIEWS + 2)


def _data(n, d):
    """Return ``make_multiview`` data, built within DATA_LIMIT.

    When ``make_multiview`` itself would need more, X is ten noisy copies of
    a tenth of the rows, written into one array: same shape and structure.
    """
    import numpy as np

    from mmfuse.datasets import make_multiview

    def generate(rows):
        X, _ = make_multiview(
            rows, [d] * N_VIEWS, n_latent=5, noise=1.0, random_state=0
        )
        return X

    if _generation_bytes(n, d) <= DATA_LIMIT:
        return generate(n)
    part = generate(n // 10)
    X = np.empty((n, part.shape[1]))
    rng = np.random.default_rng(0)
    for start in range(0, n, len(part)):
        X[start : start + len(part)] = part
        X[start : start + len(part)] += 0.1 * rng.standard_normal(part.shape)
    return X


def worker(library, n, d, repeats):
    """Run one library on one size; print a JSON line."""
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    import numpy as np
    from threadpoolctl import threadpool_limits

    from mmfuse.metrics import canonical_correlation

    n_views, fit = runners()[library]
    with threadpool_limits(1):
        X = _data(n, d)
        if n_views < N_VIEWS:
            X = np.ascontiguousarray(X[:, : n_views * d])
        for a, b in _spans([d] * n_views):  # a view at a time: less memory
            X[:, a:b] /= X[:, a:b].std(axis=0, ddof=1)
        if library.endswith("float32"):
            X = X.astype(np.float32)
        dims = [d] * n_views
        times, ratios = [], []
        while len(times) < repeats and sum(times) < TIME_LIMIT / 4:
            start, cpu = time.perf_counter(), time.process_time()
            variates = fit(X, dims)
            times.append(time.perf_counter() - start)
            fit_cpu = time.process_time() - cpu
            # One XᵀX of the same data right after each fit, both in CPU
            # time (one thread): their ratio, taken pair by pair, is the
            # least sensitive to other jobs on the machine.
            cpu = time.process_time()
            X.T @ X
            ratios.append(fit_cpu / (time.process_time() - cpu))
        result = {
            "time": min(times),
            "xtx": float(np.median(ratios)),
            "peak": None,
            "input": X.nbytes,
            "correlations": canonical_correlation(variates()).tolist(),
        }
        print(json.dumps(result), flush=True)
        # One more fit, traced, for the peak memory allocated above the
        # input; tracemalloc slows pure-Python code, so it is not timed (and
        # when it runs out of time, the line above stands).
        tracemalloc.start()
        fit(X, dims)
        result["peak"] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        print(json.dumps(result))


def run(library, n, d, repeats, timeout):
    env = dict(os.environ, **dict.fromkeys(THREAD_VARIABLES, "1"))
    command = [
        sys.executable,
        __file__,
        "--worker",
        library,
        str(n),
        str(d),
        str(repeats),
    ]
    try:
        done = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired as exc:
        partial = (exc.stdout or b"").decode().strip().splitlines()
        return json.loads(partial[-1]) if partial else f"skipped: over {timeout} s"
    if done.returncode:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return f"failed: {last[:70]}"
    return json.loads(done.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small grid, 2 repeats")
    parser.add_argument("--only", nargs="*", help="libraries to run (default: all)")
    parser.add_argument("--n", nargs="*", type=int, help="numbers of rows")
    parser.add_argument("--d", nargs="*", type=int, help="widths of a view")
    parser.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        library, n, d, repeats = args.worker
        worker(library, int(n), int(d), int(repeats))
        return
    n_grid = args.n or ((1_000, 10_000) if args.quick else (1_000, 10_000, 100_000))
    d_grid = args.d or ((50, 200) if args.quick else (50, 200, 1000))
    sizes = [(n, d) for n in n_grid for d in d_grid]
    repeats = 2 if args.quick else 3
    libraries = args.only or list(REFERENCE)
    print(
        f"{N_VIEWS} views (2 for the 2-view rows), n_components={N_COMPONENTS}, "
        f"ridge={RIDGE} (0 for 2 views); 1 BLAS thread; min of {repeats} fits"
    )
    header = (
        f"{'n':>7} {'d/view':>6}  {'library':<20} {'fit s':>8} {'x floor':>7} "
        f"{'x XtX':>6} {'peak MB':>8} {'x input':>7} {'max |Δρ|':>9}"
    )
    print(header)
    print("-" * len(header))
    for n, d in sizes:
        lean_only = _generation_bytes(n, d) > DATA_LIMIT
        if lean_only:
            print(
                f"{n:>7} {d:>6}  (make_multiview would need "
                f"{_generation_bytes(n, d) / 2**30:.1f} GiB: X is 10 noisy copies "
                f"of make_multiview({n // 10}), {8 * n * d * N_VIEWS / 2**30:.1f} GiB)"
            )
        results = {}
        for library in libraries:
            if lean_only and library not in LEAN:
                outcome = "skipped: over 5 GiB or 3 min at this size"
            elif (library, n, d) in KNOWN:
                outcome = f"skipped: {KNOWN[library, n, d]}"
            else:
                # At the largest size one fit of 2.2 GiB takes minutes on
                # one thread, so the runs there get a longer limit.
                timeout = 4 * TIME_LIMIT if lean_only else TIME_LIMIT
                outcome = run(library, n, d, repeats, timeout)
            results[library] = outcome
            reference = results.get(REFERENCE[library])
            floor_mcca = results.get("floor MCCA")
            if lean_only and library == "mmfuse GCCA" and isinstance(floor_mcca, dict):
                # Only one floor is run at the largest size; both cost one
                # XᵀX and one eigh, but its correlations are MCCA's.
                reference = {**floor_mcca, "correlations": None}
            if isinstance(outcome, str):
                print(f"{n:>7} {d:>6}  {library:<20} {outcome}")
                continue
            ratio = difference = "n/a"
            if isinstance(reference, dict):
                ratio = f"{outcome['time'] / reference['time']:.2f}"
            if isinstance(reference, dict) and reference["correlations"]:
                diff = max(
                    abs(a - b)
                    for a, b in zip(
                        outcome["correlations"], reference["correlations"], strict=True
                    )
                )
                difference = f"{diff:.1e}"
            peak_mb = peak_ratio = "n/a"
            if outcome["peak"] is not None:
                peak_mb = f"{outcome['peak'] / 2**20:.1f}"
                peak_ratio = f"{outcome['peak'] / outcome['input']:.2f}"
            print(
                f"{n:>7} {d:>6}  {library:<20} {outcome['time']:>8.3f} {ratio:>7} "
                f"{outcome['xtx']:>6.2f} {peak_mb:>8} {peak_ratio:>7} {difference:>9}"
            )
        sys.stdout.flush()


if __name__ == "__main__":
    main()
