"""Does fusion beat the best single modality on data sets other than mfeat.

Runs ``compare_fusion`` with every default strategy, 5-fold cross-validation
(shuffled, seed 0), on bundled data sets cut into their natural modality
groups, and prints each ranked table with the best single modality beside
the best fusion:

- breast cancer (scikit-learn): mean / error / worst of the 10 nucleus
  measurements, malignant or benign; once complete, once with the error
  block missing in 50 random rows (the strategies' missing-modality rules);
- diabetes (scikit-learn, regression): demographics (age, sex, bmi, bp) /
  serum (s1..s6), disease progression after a year, R²;
- nutrimouse (mmfuse): liver gene expression / hepatic lipids of 40 mice,
  genotype (2 classes) and diet (5 classes);
- digits (scikit-learn): each 8x8 image cut into its four 4x4 quadrants.

BLAS and OpenMP are pinned to one thread in this process (threadpoolctl);
``--n-jobs`` runs the (strategy, fold) fits in joblib worker processes.
Usage::

    python benchmarks/bench_user_data.py --n-jobs 2
    python benchmarks/bench_user_data.py --only diabetes nutrimouse:diet
"""

import argparse
import time

import numpy as np
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits
from threadpoolctl import threadpool_limits

from mmfuse import resolve_blocks
from mmfuse.datasets import load_nutrimouse
from mmfuse.fusion import compare_fusion


def breast_cancer(missing=False):
    X, y = load_breast_cancer(return_X_y=True)
    if missing:
        rows = np.random.default_rng(0).choice(len(X), 50, replace=False)
        X[rows, 10:20] = np.nan
    blocks = {"mean": slice(0, 10), "error": slice(10, 20), "worst": slice(20, 30)}
    return X, y, blocks


def diabetes():
    X, y = load_diabetes(return_X_y=True, scaled=False)
    return X, y, {"demo": [0, 1, 2, 3], "serum": list(range(4, 10))}


def nutrimouse(target):
    mice = load_nutrimouse(target=target)
    return mice.data, mice.target, mice.blocks


def digits():
    X, y = load_digits(return_X_y=True)
    pixels = np.arange(64).reshape(8, 8)
    blocks = {
        f"{v}{h}": pixels[rows, cols].ravel().tolist()
        for v, rows in (("top", slice(0, 4)), ("bottom", slice(4, 8)))
        for h, cols in (("_left", slice(0, 4)), ("_right", slice(4, 8)))
    }
    return X, y, blocks


DATASETS = {
    "breast_cancer": lambda: breast_cancer(),
    "breast_cancer:error_missing_50": lambda: breast_cancer(missing=True),
    "diabetes": diabetes,
    "nutrimouse:genotype": lambda: nutrimouse("genotype"),
    "nutrimouse:diet": lambda: nutrimouse("diet"),
    "digits:quadrants": digits,
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-jobs", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0, help="seed of the folds")
    parser.add_argument(
        "--only", nargs="+", choices=list(DATASETS), help="run these data sets"
    )
    args = parser.parse_args()

    summary = []
    for name in args.only or DATASETS:
        X, y, blocks = DATASETS[name]()
        with threadpool_limits(1):
            start = time.perf_counter()
            table = compare_fusion(
                X, y, blocks, cv=5, n_jobs=args.n_jobs, random_state=args.seed
            )
            elapsed = time.perf_counter() - start
        score = next(c for c in table.columns if c.startswith("mean_"))
        task = table["task"].iloc[0]
        indices, names = resolve_blocks(blocks, X.shape[1])
        modalities = ", ".join(
            f"{m} ({len(i)})" for m, i in zip(names, indices, strict=True)
        )
        print(
            f"\n## {name}: {X.shape[0]} rows, modalities {modalities}; {task}, "
            f"5-fold (seed {args.seed}); {elapsed:.0f} s wall"
        )
        shown = table.drop(columns=["task"])
        print(shown.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
        ran = table[table["error"].isna()]
        singles = ran[ran["family"] == "single"]
        fused = ran[ran["family"] != "single"]
        best_single, best_fused = singles.iloc[0], fused.iloc[0]
        summary.append(
            (
                name,
                score[5:],
                best_single["strategy"],
                best_single[score],
                best_fused["strategy"],
                best_fused[score],
            )
        )
    print("\n## best single modality beside the best fusion")
    print(
        f"{'data set':<32} {'score':<9} {'best single':<22} {'':>7}  "
        f"{'best fusion':<14} {'':>7}  gain"
    )
    for name, metric, single, s_score, fusion, f_score in summary:
        print(
            f"{name:<32} {metric:<9} {single:<22} {s_score:7.4f}  {fusion:<14} "
            f"{f_score:7.4f}  {f_score - s_score:+.4f}"
        )


if __name__ == "__main__":
    main()
