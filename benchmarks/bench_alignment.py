"""Benchmark cross-modal retrieval on mfeat: MCCA, KCCA, the aligner, Deep CCA.

Question: given a digit seen in one modality, how well does each shared
space find the same digit (instance) and digits of its class in another
modality, and what does an epoch of each deep objective cost?

Protocol (issue 15): mfeat, stratified 5-fold CV with seed 0, columns
standardized on the training fold. Each model is fitted on the training rows
of a pair of modalities (pix <-> fou, fac <-> zer); the test rows of each
modality are embedded separately, and the other modality's test items are
ranked by cosine similarity to each query (``mmfuse.metrics.retrieve``). The
scores average both directions and the folds:

- ``R@1``: instance recall@1, the query's own row ranked first
  (``recall_at_k_score``; chance 1/400);
- ``mAP``: class-level mean average precision, the items of the query's
  digit relevant (``mean_average_precision_score``; chance about 0.1);
- ``rho``: held-out canonical correlations, summed over 10 components.
  MCCA's and KCCA's variates are canonical already; a deep model's
  embeddings are first projected by a linear CCA (mmfuse's MCCA, no ridge,
  10 components) fitted on its training embeddings, as cca-zoo advises for
  Deep CCA. The Deep CCA rows are ranked in that projection too;
- ``probe``: accuracy of a logistic regression (on standardized
  embeddings) that tells which modality a held-out embedding came from,
  5-fold cross-validated over the 2 x 400 test embeddings (chance 0.5);
- ``fold s``: seconds a fold takes (fit, embed, score), median over folds.

Rows: MCCA (``regularization=0.1``, 10 components), KCCA (rbf, its default
gamma and ``regularization=0.1``, 10 components), the ContrastiveAligner's
objectives (unsupervised InfoNCE ``fit(X)``, supervised ``fit(X, y)``,
unsupervised with the adversarial modality discriminator, Deep CCA with a
10-dimensional output), with the aligner's defaults otherwise (among
them its cosine learning-rate schedule), and cca-zoo's DCCA with the same
towers, batch, epochs and learning rate (constant: cca-zoo has no
schedule). Every deep model has one tower a modality:
``Linear(d, 256) -> ReLU -> Dropout(0.5) -> Linear(256, dim)``. Besides:

- ``aligner infonce, inner``: unsupervised, its towers chosen on the
  training fold alone: ``GridSearchCV`` with the aligner's ``score``
  (held-out mean reciprocal rank) on one 80/20 split of the training rows,
  between the defaults and towers of width 1024 trained twice as long,
  then refitted on the whole training fold (the choice is printed);
- ``aligner + y, w=0.5`` and ``w=0.7``: supervised with
  ``supervised_weight`` 0.5 or 0.7 (the default is 0.65): less or more
  class-level, more or less instance retrieval;
- ``SVC class probs``: a reference for class mAP, not an aligner: each
  modality's test rows embedded as the class probabilities of its own
  RBF SVC (C=10, Platt-calibrated) fitted on its training rows.

Speed: on the training rows of pix <-> fou, fold 0, each objective and a
plain skorch MLP of the same size (``NeuralNetRegressor``: the same two
towers, their outputs regressing the one-hot digit with a mean squared
error, same batch, optimizer and learning rate) are fitted in turn,
``--repeats`` times, and so are mmfuse's and cca-zoo's Deep CCA; the table
gives the median seconds per epoch of each (skorch's history; a Lightning
callback for cca-zoo) and the ratio of medians.

BLAS and torch run one thread (threadpoolctl, ``torch.set_num_threads(1)``).
cca-zoo's DCCA needs cca-zoo and Lightning, which stay out of mmfuse's
Python: run the script with the benchmark venv's interpreter (it sees the
main site-packages, so mmfuse and skorch come from there); without cca-zoo
its rows say so.

Usage::

    python -m venv --system-site-packages /work/venvs/dcca
    /work/venvs/dcca/bin/pip install cca-zoo==4.0.1 lightning
    PYTHONPATH=. /work/venvs/dcca/bin/python benchmarks/bench_alignment.py
    PYTHONPATH=. python benchmarks/bench_alignment.py --quick  # 2 folds, 20 epochs

``--pairs fac-zer`` runs one pair, ``--models NAME ...`` some rows,
``--no-speed`` skips the speed table (e.g. to run the pairs in parallel),
``--no-retrieval`` the retrieval table.
"""

import argparse
import logging
import os
import time
import warnings

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_variable] = "1"

import numpy as np  # noqa: E402
from sklearn.calibration import CalibratedClassifierCV  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.model_selection import (  # noqa: E402
    GridSearchCV,
    ShuffleSplit,
    StratifiedKFold,
    cross_val_score,
)
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.svm import SVC  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from mmfuse.cca import KCCA, MCCA  # noqa: E402
from mmfuse.datasets import load_mfeat  # noqa: E402
from mmfuse.metrics import (  # noqa: E402
    canonical_correlation,
    mean_average_precision_score,
    recall_at_k_score,
)

PAIRS = (("pix", "fou"), ("fac", "zer"))
N_COMPONENTS = 10
# ContrastiveAligner's defaults, given to cca-zoo and the plain MLP too.
HIDDEN, DROPOUT, LR, BATCH = 256, 0.5, 1e-3, 256
# The towers the inner split chooses from: the defaults, or twice as wide
# (1024) and trained twice as long (400 epochs), as (hidden, epochs factor).
TOWERS = (((HIDDEN,), 1), ((1024,), 2))
# What the inner split chose, fold by fold, for the table's notes.
CHOICES = []


# ----------------------------------------------------------------- scoring
def both_ways(score, a, b, *args):
    """Mean of ``score`` from a to b and from b to a."""
    return (score(a, b, *args) + score(b, a, *args)) / 2


def modality_probe(a, b):
    """Cross-validated accuracy of telling a's embeddings from b's."""
    Z = np.vstack([a, b])
    modality = np.repeat([0, 1], [len(a), len(b)])
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    cv = StratifiedKFold(5, shuffle=True, random_state=0)
    return cross_val_score(probe, Z, modality, cv=cv).mean()


def canonical(train_views, test_views):
    """Test embeddings projected by a linear CCA fitted on the training ones."""
    widths = [v.shape[1] for v in train_views]
    cca = MCCA(N_COMPONENTS, blocks=widths).fit(np.hstack(train_views))
    return cca.transform_views(np.hstack(test_views))


def scores(test_views, y_test, retrieval_views=None):
    """R@1, mAP, rho and probe of one fold's held-out embeddings."""
    a, b = test_views if retrieval_views is None else retrieval_views
    return {
        "R@1": both_ways(recall_at_k_score, a, b),
        "mAP": both_ways(mean_average_precision_score, a, b, y_test),
        "rho": float(np.sum(canonical_correlation(test_views)[:N_COMPONENTS])),
        "probe": modality_probe(a, b),
    }


# ------------------------------------------------------------------ models
def subspace(make):
    """Fit ``make(widths)`` (MCCA, KCCA): its test variates are canonical."""

    def run(X_train, y_train, X_test, y_test, widths):
        model = make(widths).fit(X_train)
        views = model.transform_views(X_test)
        return scores(views, y_test)

    return run


def aligner(supervised=False, **params):
    """Fit a ContrastiveAligner; Deep CCA is ranked in its CCA projection."""

    def run(X_train, y_train, X_test, y_test, widths):
        from mmfuse.deep import ContrastiveAligner

        model = ContrastiveAligner(**aligner_params(widths, params))
        model.fit(X_train, y_train) if supervised else model.fit(X_train)
        train, test = model.transform_views(X_train), model.transform_views(X_test)
        projected = canonical(train, test)
        return scores(
            projected,
            y_test,
            retrieval_views=projected if params.get("loss") == "dcca" else test,
        )

    return run


def inner_split_aligner(X_train, y_train, X_test, y_test, widths):
    """Fit the unsupervised aligner with towers chosen on the training fold.

    ``GridSearchCV`` over ``TOWERS`` with the aligner's own ``score`` (held-out
    mean reciprocal rank) on one 80/20 split of the training rows, then a
    refit on all of them: what a user can do without the test rows.
    """
    from mmfuse.deep import ContrastiveAligner

    grid = [
        {"hidden": [hidden], "max_epochs": [factor * ARGS.epochs]}
        for hidden, factor in TOWERS
    ]
    search = GridSearchCV(
        ContrastiveAligner(**aligner_params(widths, {})),
        grid,
        cv=ShuffleSplit(1, test_size=0.2, random_state=0),
    ).fit(X_train)
    CHOICES.append(search.best_params_["hidden"][0])
    model = search.best_estimator_
    train, test = model.transform_views(X_train), model.transform_views(X_test)
    return scores(canonical(train, test), y_test, retrieval_views=test)


def class_probabilities(X_train, y_train, X_test, y_test, widths):
    """Embed by class probabilities, each modality by its own classifier.

    Each modality's test rows are embedded as the class probabilities of an
    RBF SVC (C=10, Platt-calibrated) fitted on that modality's training
    rows: the class-level retrieval of two good separate classifiers.
    """
    views = []
    for train, test in zip(split(X_train, widths), split(X_test, widths), strict=True):
        svc = CalibratedClassifierCV(SVC(C=10), ensemble=False).fit(train, y_train)
        views.append(svc.predict_proba(test))
    return scores(views, y_test)


def aligner_params(widths, params):
    """Return the aligner's parameters: the shared towers, batch and epochs."""
    return {
        "blocks": widths,
        "hidden": (HIDDEN,),
        "dropout": DROPOUT,
        "lr": LR,
        "batch_size": BATCH,
        "max_epochs": ARGS.epochs,
        "random_state": 0,
        **params,
    }


def tower(in_features, out_features):
    """Return the tower of every deep model here, in plain torch."""
    from torch import nn

    return nn.Sequential(
        nn.Linear(in_features, HIDDEN),
        nn.ReLU(),
        nn.Dropout(DROPOUT),
        nn.Linear(HIDDEN, out_features),
    )


def cca_zoo_dcca(X_train, widths, epochs, durations=None):
    """Train cca-zoo's DCCA; return its encoder of views and epoch seconds."""
    import lightning.pytorch as pl
    import torch
    from cca_zoo.deep import DCCA, MultiviewDataset
    from torch.utils.data import DataLoader

    class EpochTimer(pl.Callback):
        def on_train_epoch_start(self, trainer, module):
            self.start = time.perf_counter()

        def on_train_epoch_end(self, trainer, module):
            durations.append(time.perf_counter() - self.start)

    for name in list(logging.root.manager.loggerDict):
        if name.startswith("lightning"):  # its banner on every fit
            logging.getLogger(name).setLevel(logging.ERROR)
    torch.manual_seed(0)
    views = split(X_train.astype(np.float32), widths)
    model = DCCA(
        N_COMPONENTS,
        encoders=[tower(w, N_COMPONENTS) for w in widths],
        learning_rate=LR,
    )
    loader = DataLoader(
        MultiviewDataset(views),
        batch_size=BATCH,
        shuffle=True,
        generator=torch.Generator().manual_seed(0),
    )
    trainer = pl.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        callbacks=[] if durations is None else [EpochTimer()],
    )
    trainer.fit(model, loader)
    model.eval()

    def encode(X):
        with torch.no_grad():
            tensors = [torch.as_tensor(v) for v in split(X.astype(np.float32), widths)]
            return [z.numpy().astype(np.float64) for z in model(tensors)]

    return encode


def peer_dcca(X_train, y_train, X_test, y_test, widths):
    """cca-zoo's DCCA, ranked in the CCA projection of its outputs."""
    encode = cca_zoo_dcca(X_train, widths, ARGS.epochs)
    projected = canonical(encode(X_train), encode(X_test))
    return scores(projected, y_test)


def split(X, widths):
    """Split ``X`` into its column blocks."""
    return np.split(X, np.cumsum(widths)[:-1], axis=1)


MODELS = {
    "MCCA r=0.1": subspace(lambda w: MCCA(N_COMPONENTS, blocks=w, regularization=0.1)),
    "KCCA rbf": subspace(lambda w: KCCA(N_COMPONENTS, blocks=w, kernel="rbf")),
    "aligner infonce": aligner(loss="infonce"),
    "aligner infonce, inner": inner_split_aligner,
    "aligner infonce + y": aligner(supervised=True, loss="infonce"),
    "aligner + y, w=0.5": aligner(supervised=True, supervised_weight=0.5),
    "aligner + y, w=0.7": aligner(supervised=True, supervised_weight=0.7),
    "aligner adversarial": aligner(loss="infonce", adversarial=1.0),
    "aligner dcca": aligner(loss="dcca", embedding_dim=N_COMPONENTS),
    "cca-zoo DCCA": peer_dcca,
    "SVC class probs": class_probabilities,
}


def missing(name):
    """Why a model cannot run here, or None."""
    if name.startswith("aligner"):
        try:
            from mmfuse.deep import ContrastiveAligner  # noqa: F401
        except ImportError as error:
            return f"skipped: {error}"
    if name.startswith("cca-zoo"):
        try:
            import cca_zoo.deep  # noqa: F401
            import lightning  # noqa: F401
        except ImportError as error:
            return f"skipped ({error}): run with /work/venvs/dcca/bin/python"
    return None


def retrieval_table(models):
    """Score every model on every pair and fold; print the table."""
    print(
        f"{'pair':<10}{'model':<22}{'R@1':>7}{'mAP':>7}{'rho':>7}{'probe':>7}"
        f"{'fold s':>8}"
    )
    print("-" * 68)
    for pair in [p for p in PAIRS if "-".join(p) in ARGS.pairs]:
        bunch = load_mfeat(views=list(pair))
        X, y = bunch.data, bunch.target
        widths = [bunch.blocks[view] for view in pair]
        folds = list(StratifiedKFold(5, shuffle=True, random_state=0).split(X, y))
        for name in models:
            label = f"{pair[0]}<->{pair[1]}"
            reason = missing(name)
            if reason:
                print(f"{label:<10}{name:<22}{reason}")
                continue
            results, seconds = [], []
            CHOICES.clear()
            for train, test in folds[: ARGS.folds]:
                scaler = StandardScaler().fit(X[train])
                start = time.perf_counter()
                results.append(
                    MODELS[name](
                        scaler.transform(X[train]),
                        y[train],
                        scaler.transform(X[test]),
                        y[test],
                        widths,
                    )
                )
                seconds.append(time.perf_counter() - start)
            mean = {key: np.mean([r[key] for r in results]) for key in results[0]}
            print(
                f"{label:<10}{name:<22}{mean['R@1']:7.3f}{mean['mAP']:7.3f}"
                f"{mean['rho']:7.2f}{mean['probe']:7.3f}{np.median(seconds):8.1f}",
                flush=True,
            )
            if CHOICES:
                print(f"{'':<10}  (hidden chosen by fold: {CHOICES})")


# ------------------------------------------------------------------- speed
def plain_mlp(widths, dim, epochs):
    """Return a skorch MLP of an aligner's size: the same towers, an MSE head."""
    import torch
    from skorch import NeuralNetRegressor
    from torch import nn

    class Towers(nn.Module):
        def __init__(self):
            super().__init__()
            self.towers = nn.ModuleList(tower(w, dim) for w in widths)
            self.edges = np.cumsum([0, *widths]).tolist()

        def forward(self, X):
            blocks = zip(self.edges[:-1], self.edges[1:], strict=True)
            return torch.cat(
                [t(X[:, a:b]) for t, (a, b) in zip(self.towers, blocks, strict=True)],
                dim=1,
            )

    return NeuralNetRegressor(
        Towers,
        optimizer=torch.optim.AdamW,
        lr=LR,
        max_epochs=epochs,
        batch_size=BATCH,
        train_split=None,
        verbose=0,
    )


def speed_table(objectives):
    """Seconds per epoch of each objective against a plain MLP, alternately."""
    import torch

    from mmfuse.deep import ContrastiveAligner

    pair = PAIRS[0]
    bunch = load_mfeat(views=list(pair))
    X, y = bunch.data, bunch.target
    widths = [bunch.blocks[view] for view in pair]
    train, _ = next(StratifiedKFold(5, shuffle=True, random_state=0).split(X, y))
    X_train = StandardScaler().fit(X[train]).transform(X[train]).astype(np.float32)
    y_train = y[train]
    epochs = ARGS.speed_epochs

    def time_aligner(params, supervised):
        model = ContrastiveAligner(**aligner_params(widths, params))
        model.set_params(max_epochs=epochs)
        model.fit(X_train, y_train) if supervised else model.fit(X_train)
        # The first epoch builds buffers and warms caches: left out.
        return list(model.history[1:, "dur"])

    def time_mlp(dim):
        # The one-hot digit at the head of each tower's output as the target.
        target = np.zeros((len(y_train), 2 * dim), dtype=np.float32)
        target[np.arange(len(y_train)), y_train] = 1
        target[np.arange(len(y_train)), dim + y_train] = 1
        torch.manual_seed(0)
        net = plain_mlp(widths, dim, epochs).fit(X_train, target)
        return list(net.history[1:, "dur"])

    def time_peer():
        durations = []
        cca_zoo_dcca(X_train, widths, epochs, durations)
        return durations[1:]

    rows = []
    for name, (params, supervised) in objectives.items():
        dim = aligner_params(widths, params).get(
            "embedding_dim", ContrastiveAligner().embedding_dim
        )
        rows.append(
            (
                name,
                lambda p=params, s=supervised: time_aligner(p, s),
                f"skorch MLP, dim {dim}",
                lambda d=dim: time_mlp(d),
            )
        )
    reason = missing("cca-zoo DCCA")
    if "aligner dcca" in objectives and reason is None:
        params, supervised = objectives["aligner dcca"]
        rows.append(
            (
                "aligner dcca",
                lambda: time_aligner(params, supervised),
                "cca-zoo DCCA",
                time_peer,
            )
        )
    print(
        f"\nseconds per epoch, pix<->fou fold 0 ({len(train)} rows, batch {BATCH}, "
        f"median of {ARGS.repeats} x {epochs - 1} epochs)"
    )
    print(f"{'model':<22}{'s/epoch':>9}  {'against':<22}{'s/epoch':>9}{'ratio':>7}")
    print("-" * 71)
    for name, run, other, run_other in rows:
        mine, theirs = [], []
        for _ in range(ARGS.repeats):
            mine += run()
            theirs += run_other()
        ratio = np.median(mine) / np.median(theirs)
        print(
            f"{name:<22}{np.median(mine):9.4f}  {other:<22}{np.median(theirs):9.4f}"
            f"{ratio:7.2f}",
            flush=True,
        )
    if reason:
        print(f"{'cca-zoo DCCA':<22}{reason}")


SPEED_OBJECTIVES = {
    "aligner infonce": ({"loss": "infonce"}, False),
    "aligner infonce + y": ({"loss": "infonce"}, True),
    "aligner adversarial": ({"loss": "infonce", "adversarial": 1.0}, False),
    "aligner dcca": ({"loss": "dcca", "embedding_dim": N_COMPONENTS}, False),
}


def main():
    """Print the retrieval table, then the speed table."""
    import torch

    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", module="lightning")
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    with threadpool_limits(1):
        if not ARGS.no_retrieval:
            retrieval_table([m for m in MODELS if m in ARGS.models])
        if ARGS.no_speed:
            return
        if missing("aligner") is None:
            speed_table({k: v for k, v in SPEED_OBJECTIVES.items() if k in ARGS.models})
        else:
            print(f"\nspeed: {missing('aligner')}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 folds, 20 epochs")
    parser.add_argument("--folds", type=int, default=5, help="folds of the 5 to run")
    parser.add_argument("--epochs", type=int, default=200, help="training epochs")
    parser.add_argument("--speed-epochs", type=int, default=11)
    parser.add_argument("--repeats", type=int, default=3, help="speed repeats")
    parser.add_argument("--models", nargs="+", default=list(MODELS), metavar="NAME")
    pairs = ["-".join(p) for p in PAIRS]
    parser.add_argument("--pairs", nargs="+", default=pairs, choices=pairs)
    parser.add_argument("--no-speed", action="store_true", help="no speed table")
    parser.add_argument("--no-retrieval", action="store_true", help="speed only")
    ARGS = parser.parse_args()
    if ARGS.quick:  # a smoke test of the whole script
        ARGS.folds, ARGS.epochs, ARGS.repeats = 2, 20, 2
    main()
