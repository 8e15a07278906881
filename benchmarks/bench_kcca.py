"""How fast and how exact is mmfuse's KCCA against the kernel CCA peers.

RBF kernel (gamma = 1 / width), ridge kappa = 0.1, 3 components, on
``make_multiview`` data (10 columns a view, a 2-d latent seen through
nonlinear maps, noise 0.5), 2 and 3 views, n in {500, 2000, 5000, 10000},
plus mmfuse Nyström (500 landmarks) at n = 10⁵. Every fit runs in its own
process (peak memory is that process's peak resident set), BLAS pinned to
``--threads`` threads (OMP/OPENBLAS/MKL env vars), under a time limit and
``prlimit --as`` (6 GiB of address space). Columns: fit time (min of
repeats), time to transform 1000 new rows, peak memory, and max |Δρ|, the
largest difference of the training
canonical correlations (mean pairwise Pearson correlation of the variates)
to the dense full-spectrum reference, solved here for n <= 2000: eigh of
each centred kernel, whitening, eigh of the (V·n)×(V·n) matrix (beyond,
marked *, Nyström's difference to mmfuse exact).

Peers run from another interpreter (``--peer-python``, default
/work/venvs/kcca/bin/python: Python 3.10, numpy 1.26, scikit-learn 1.2,
cca-zoo 2.6, mvlearn 0.5 installed with --no-deps plus seaborn, pyrcca
0.2), since mvlearn and pyrcca no longer install on the current stack.
Their ridges are mapped onto the same objective where one exists
(mvlearn ``regs`` in diag_mode A and cca-zoo ``c`` equal
``(n−1)κ / ((1−κ) + (n−1)κ)``); cca-zoo also lifts its ``B`` by up to
``eps = 1e-3`` and mvlearn drops kernel singular values below
``1e-3 · n`` by default; pyrcca solves another objective (ridge on the
dual coefficients, kernels scaled by their top eigenvalue) and has no
out-of-sample transform.

    python benchmarks/bench_kcca.py --quick          # one repeat
    python benchmarks/bench_kcca.py --repeats 3
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

KAPPA = 0.1
N_COMPONENTS = 3
N_NEW = 1000
WIDTH = 10
# Address space of each process: 6 GiB, the memory target of exact KCCA at
# n = 10⁴ with three views (its peak resident set is in the table).
MEMORY_LIMIT = 6 * 2**30

# Largest n each method is run at (time or memory beyond is out of reach on
# a 2-core, 24 GiB machine; the table says so).
LIMITS = {
    "reference": 2000,
    "mmfuse exact": 10000,
    "mmfuse nystroem": 100000,
    "cca-zoo KCCA": 2000,
    "mvlearn KMCCA": 2000,
    "pyrcca": 2000,
}

_PEER_RUNNER = r"""
import json, resource, sys, time
import numpy as np
method, path, kappa, k = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
data = np.load(path)
views = [data[f"v{i}"] for i in range(int(data["n_views"]))]
n = int(data["n_train"])
train = [v[:n] for v in views]
new = [v[n:] for v in views]
gamma = 1.0 / views[0].shape[1]
mapped = (n - 1) * kappa / ((1 - kappa) + (n - 1) * kappa)
start = time.perf_counter()
if method == "cca-zoo KCCA":
    from cca_zoo.nonparametric import KCCA
    model = KCCA(latent_dimensions=k, kernel="rbf", gamma=gamma, c=mapped).fit(train)
    fit = time.perf_counter() - start
    variates = model.transform(train)
    start = time.perf_counter()
    model.transform(new)
    transform = time.perf_counter() - start
elif method == "mvlearn KMCCA":
    from mvlearn.embed import KMCCA
    model = KMCCA(n_components=k, kernel="rbf", kernel_params={"gamma": gamma},
                  regs=mapped, diag_mode="A").fit(train)
    fit = time.perf_counter() - start
    variates = list(model.transform(train))
    start = time.perf_counter()
    model.transform(new)
    transform = time.perf_counter() - start
else:
    import rcca
    sigma = (0.5 / gamma) ** 0.5
    model = rcca.CCA(kernelcca=True, ktype="gaussian", reg=kappa, numCC=k,
                     verbose=False)
    model.gausigma = sigma
    model.train(train)
    fit = time.perf_counter() - start
    variates = [rcca.rcca._make_kernel(v, ktype="gaussian", gausigma=sigma) @ c
                for v, c in zip(train, model.comps)]
    transform = None
centred = np.stack([v - v.mean(axis=0) for v in variates])
cross = np.einsum("vnk,wnk->vwk", centred, centred)
var = np.einsum("vvk->vk", cross)
corr = cross / np.sqrt(var[:, None] * var[None, :])
upper = np.triu_indices(len(variates), 1)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"fit": fit, "transform": transform, "peak": peak,
                  "corr": corr[upper].mean(axis=0).tolist()}))
"""


def _data(n, n_views, path):
    from mmfuse.datasets import make_multiview

    X, _ = make_multiview(
        n + N_NEW,
        view_dims=[WIDTH] * n_views,
        n_latent=2,
        noise=0.5,
        nonlinear=True,
        random_state=0,
    )
    views = np.split(X, n_views, axis=1)
    np.savez(
        path, n_views=n_views, n_train=n, **{f"v{i}": v for i, v in enumerate(views)}
    )


def run_mmfuse(method, path):
    """One mmfuse fit (or the reference) in this process; print JSON."""
    from mmfuse.cca import KCCA

    data = np.load(path)
    n_views, n = int(data["n_views"]), int(data["n_train"])
    X = np.hstack([data[f"v{i}"] for i in range(n_views)])
    train, new = X[:n], X[n:]
    start = time.perf_counter()
    if method == "reference":
        corr = _reference(train, n_views)
        fit, transform = time.perf_counter() - start, None
    else:
        params = {}
        if method == "mmfuse nystroem":
            params = {"approximation": "nystroem", "n_landmarks": 500}
        model = KCCA(
            N_COMPONENTS, blocks=n_views, regularization=KAPPA, random_state=0, **params
        ).fit(train)
        fit = time.perf_counter() - start
        corr = model.canonical_correlations_.tolist()
        start = time.perf_counter()
        model.transform(new)
        transform = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"fit": fit, "transform": transform, "peak": peak, "corr": corr}))


def _reference(X, n_views):
    """Dense full-spectrum solve: no factorization, no truncation.

    With ``K_v = U s Uᵀ`` (centred), the features ``F_v = U √s`` have
    ``F_vᵀF_v = diag(s)``, so ``D_v = diag(d_v)`` with
    ``d_v = ((1 − κ) s + (n − 1) κ) / (n − 1)``; the whitened problem is the
    top of ``I + [W_vᵀ W_w]_{v≠w}``, ``W_v = F_v / √((n − 1) d_v)``.
    """
    import scipy.linalg as sla
    from sklearn.metrics.pairwise import rbf_kernel

    from mmfuse.metrics import canonical_correlation

    n = X.shape[0]
    features, scales = [], []
    for view in np.split(X, n_views, axis=1):
        K = rbf_kernel(view, gamma=1.0 / view.shape[1])
        K -= K.mean(axis=0)
        K -= K.mean(axis=1)[:, None]
        s, U = np.linalg.eigh(K)
        s = np.maximum(s, 0)
        features.append(U * np.sqrt(s))
        scales.append(np.sqrt((1 - KAPPA) * s + (n - 1) * KAPPA))
    size = n_views * n
    M = np.eye(size)
    for v in range(n_views):
        for w in range(v + 1, n_views):
            block = (features[v] / scales[v]).T @ (features[w] / scales[w])
            M[v * n : (v + 1) * n, w * n : (w + 1) * n] = block
            M[w * n : (w + 1) * n, v * n : (v + 1) * n] = block.T
    _, vectors = sla.eigh(M, subset_by_index=[size - N_COMPONENTS, size - 1])
    variates = [
        F @ (vectors[v * n : (v + 1) * n, ::-1] / scale[:, None])
        for v, (F, scale) in enumerate(zip(features, scales, strict=True))
    ]
    return canonical_correlation(variates).tolist()


def _run(method, path, timeout, peer_python, threads):
    env = dict(os.environ)
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[name] = str(threads)
    if method.startswith("mmfuse") or method == "reference":
        command = [sys.executable, __file__, "--one", method, str(path)]
        env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    else:
        command = [peer_python, "-c", _PEER_RUNNER, method, str(path)]
        command += [str(KAPPA), str(N_COMPONENTS)]
    command = ["prlimit", f"--as={MEMORY_LIMIT}", *command]
    try:
        done = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return f"time limit {timeout} s"
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["?"])[-1]
        return f"failed: {last[:60]}"
    return json.loads(done.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--timeout", type=int, default=900)
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[500, 2000, 5000, 10000]
    )
    parser.add_argument("--views", type=int, nargs="+", default=[2, 3])
    parser.add_argument("--peer-python", default="/work/venvs/kcca/bin/python")
    parser.add_argument("--one", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        run_mmfuse(*args.one)
        return
    repeats = 1 if args.quick else args.repeats
    methods = list(LIMITS)
    if not Path(args.peer_python).exists():
        print(f"peers skipped: no interpreter at {args.peer_python}")
        methods = methods[:3]
    print(
        f"BLAS threads: {args.threads}; kappa={KAPPA}, k={N_COMPONENTS}, "
        f"{WIDTH} columns a view; repeats: {repeats}"
    )
    header = (
        f"{'V':>2} {'n':>7}  {'method':<16} {'fit s':>8} {'transform s':>11} "
        f"{'peak MiB':>9} {'max |Δρ|':>9}  correlations"
    )
    print(header)
    print("-" * len(header))
    cases = [(v, n) for v in args.views for n in args.sizes]
    cases += [(3, 100000)]
    with tempfile.TemporaryDirectory() as tmp:
        for n_views, n in cases:
            path = Path(tmp) / f"data_{n_views}_{n}.npz"
            _data(n, n_views, path)
            reference, exact = None, None
            for method in methods:
                if n > LIMITS[method] or (n == 100000 and method != "mmfuse nystroem"):
                    continue
                results = [
                    _run(method, path, args.timeout, args.peer_python, args.threads)
                    for _ in range(1 if method == "reference" else repeats)
                ]
                if isinstance(results[0], str):
                    print(f"{n_views:>2} {n:>7}  {method:<16} {results[0]}")
                    continue
                best = min(results, key=lambda r: r["fit"])
                corr = np.asarray(best["corr"])
                if method == "reference":
                    reference = corr
                if method == "mmfuse exact":
                    exact = corr
                # Beyond the reference's reach, Nyström is compared to exact (*).
                if reference is not None and method != "reference":
                    diff = f"{np.abs(corr - reference).max():9.1e}"
                elif exact is not None and method == "mmfuse nystroem":
                    diff = f"{np.abs(corr - exact).max():8.1e}*"
                else:
                    diff = f"{'':>9}"
                transform = (
                    f"{best['transform']:11.3f}"
                    if best["transform"] is not None
                    else f"{'n/a':>11}"
                )
                print(
                    f"{n_views:>2} {n:>7}  {method:<16} {best['fit']:8.2f} "
                    f"{transform} {best['peak'] / 2**20:9.0f} {diff}  "
                    f"{np.round(corr, 4).tolist()}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
