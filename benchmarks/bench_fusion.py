"""Which fusion strategy is best on mfeat, and does it survive a lost modality.

Runs ``compare_fusion`` on the bundled mfeat digits (2000 rows, 6 modalities)
with the default strategies, stratified 5-fold with shuffle and seed 0 (or
``--seed``), and prints the ranked table. Then, on the same folds, sets the
pix block to NaN in 30 % of each test fold's rows (seeded) and scores the
late-fusion strategies again: they predict those rows from the modalities
that remain (the stacks with a stacker refitted on the members they have).

Targets (issue 5): best default strategy >= 99.2 %, fusion beats the best
single modality, late fusion >= 98.5 % with pix missing in 30 % of test rows.

BLAS and OpenMP are pinned to one thread in this process (threadpoolctl);
``--n-jobs`` runs the (strategy, fold) fits in joblib worker processes, which
joblib limits to ``cpu_count // n_jobs`` threads each. Usage::

    python benchmarks/bench_fusion.py --n-jobs 2            # full run
    python benchmarks/bench_fusion.py --n-jobs 2 --seed 1   # other folds
    python benchmarks/bench_fusion.py --quick               # 2 folds, half the rows
"""

import argparse
import time

import numpy as np
from sklearn.base import clone
from sklearn.model_selection import StratifiedKFold
from threadpoolctl import threadpool_limits

from mmfuse.datasets import load_mfeat
from mmfuse.fusion import compare_fusion, default_strategies

TARGET_BEST = 0.992
TARGET_MISSING = 0.985


def missing_pix_scores(X, y, blocks, strategies, cv, rng):
    """Score each strategy when 30 % of each test fold's rows lack pix.

    ``blocks`` maps each modality to its column positions.
    """
    pix = np.asarray(blocks["pix"])
    scores = {name: [] for name, _ in strategies}
    for train, test in cv.split(X, y):
        X_test = X[test].copy()
        lacking = rng.random(len(test)) < 0.3
        X_test[np.ix_(lacking, pix)] = np.nan
        for name, estimator in strategies:
            model = clone(estimator).fit(X[train], y[train])
            scores[name].append(model.score(X_test, y[test]))
    return {name: (np.mean(s), np.std(s)) for name, s in scores.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 folds, half the rows")
    parser.add_argument("--n-jobs", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0, help="seed of the folds")
    args = parser.parse_args()

    bunch = load_mfeat()
    X, y, blocks = bunch.data, bunch.target, bunch.blocks
    n_splits = 5
    if args.quick:
        X, y, n_splits = X[::2], y[::2], 2

    with threadpool_limits(1):
        start = time.perf_counter()
        table = compare_fusion(
            X, y, blocks, cv=n_splits, n_jobs=args.n_jobs, random_state=args.seed
        )
        elapsed = time.perf_counter() - start
    print(
        f"mfeat, {n_splits}-fold stratified CV (shuffle, seed {args.seed}), "
        f"BLAS 1 thread"
    )
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print(f"compare_fusion wall time: {elapsed:.1f} s (n_jobs={args.n_jobs})")

    best = table.iloc[0]
    singles = table[table["family"] == "single"]
    best_single = singles.iloc[0]
    print()
    met = "met" if best["mean_accuracy"] >= TARGET_BEST else "NOT met"
    print(
        f"best strategy: {best['strategy']} {best['mean_accuracy']:.4f} "
        f"(target >= {TARGET_BEST}: {met})"
    )
    print(
        f"best single modality: {best_single['strategy']} "
        f"{best_single['mean_accuracy']:.4f}; fusion beats it: "
        f"{'yes' if best['family'] != 'single' else 'NO'} "
        f"(+{best['mean_accuracy'] - best_single['mean_accuracy']:.4f})"
    )

    bounds = np.cumsum([0, *blocks.values()])
    resolved = {
        name: list(range(a, b))
        for name, a, b in zip(blocks, bounds[:-1], bounds[1:], strict=True)
    }
    late = [
        (name, estimator)
        for name, family, estimator in default_strategies(
            resolved, random_state=args.seed
        )
        if family in ("late", "stacking", "hierarchical")
    ]
    cv = StratifiedKFold(n_splits, shuffle=True, random_state=args.seed)
    with threadpool_limits(1):
        missing = missing_pix_scores(
            X, y, resolved, late, cv, np.random.default_rng(args.seed)
        )
    print()
    print("pix set to NaN in 30 % of each test fold's rows (same folds):")
    print(f"{'strategy':<14} {'accuracy':>16}  target >= {TARGET_MISSING}")
    for name, (mean, std) in missing.items():
        status = "met" if mean >= TARGET_MISSING else "NOT met"
        print(f"{name:<14} {mean:.4f} ± {std:.4f}  {status}")


if __name__ == "__main__":
    main()
