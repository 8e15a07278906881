"""``score``: a held-out criterion that tunes ``n_components`` with no ``y``.

The data: ``make_multiview`` with 3 latent factors shared by 3 views of 8,
10 and 6 columns, noise as large as the signal (``noise=1.0``), 300 rows,
5-fold cross-validation (60 held-out rows a fold). There, over seeds 0-4,
the 3 shared components keep mean held-out correlations of 0.74-0.80,
0.41-0.67 and 0.23-0.51, above the threshold 2 / sqrt(3 · 59) = 0.15, and
further components -0.06 to 0.11: the answer is clear.
"""

import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV, KFold

from mmfuse.cca import GCCA, KCCA, MCCA
from mmfuse.datasets import make_multiview
from mmfuse.metrics import canonical_correlation, canonical_correlation_score

DIMS = [8, 10, 6]
SEEDS = range(5)


def _search(Estimator, X, seed, grid=None, **params):
    grid = grid or {"n_components": list(range(1, 7))}
    return GridSearchCV(
        Estimator(blocks=DIMS, **params),
        grid,
        cv=KFold(5, shuffle=True, random_state=seed),
    ).fit(X)


def _shared(seed, n=300):
    X, _ = make_multiview(n, DIMS, n_latent=3, noise=1.0, random_state=seed)
    return X


@pytest.mark.parametrize(
    ("Estimator", "params"),
    [
        (MCCA, {}),
        (MCCA, {"regularization": 0.1}),
        (GCCA, {"regularization": 0.1}),
        (KCCA, {"kernel": "linear"}),
    ],
)
def test_grid_search_picks_the_number_of_shared_components(Estimator, params):
    for seed in SEEDS:
        search = _search(Estimator, _shared(seed), seed, **params)
        scores = search.cv_results_["mean_test_score"]
        assert search.best_params_["n_components"] == 3, (seed, scores)
        # Each shared component raises the score, each noise one lowers it.
        assert np.all(np.diff(scores[:3]) > 0), (seed, scores)
        assert np.all(np.diff(scores[2:]) < 0), (seed, scores)


@pytest.mark.parametrize("Estimator", [MCCA, GCCA])
def test_noise_components_cost_on_views_that_share_nothing(Estimator):
    for seed in SEEDS:
        X = np.random.RandomState(seed).standard_normal((300, sum(DIMS)))
        search = _search(Estimator, X, seed, regularization=0.1)
        scores = search.cv_results_["mean_test_score"]
        assert search.best_params_["n_components"] == 1, (seed, scores)
        assert np.all(scores < 0), (seed, scores)


def test_the_mean_correlation_would_pick_one_component():
    # Why score is not the mean over components: on the same folds, the
    # mean held-out correlation falls as soon as a weaker, real component
    # is added.
    X = _shared(0)
    means = {k: [] for k in (1, 3)}
    for train, test in KFold(5, shuffle=True, random_state=0).split(X):
        for k in means:
            mcca = MCCA(k, blocks=DIMS).fit(X[train])
            means[k].append(canonical_correlation(mcca.transform_views(X[test])).mean())
    assert np.mean(means[1]) > np.mean(means[3])


def test_joint_grid_over_regularization_and_components():
    # Wide views, few rows: regularization matters, and so does the number
    # of components (2 shared factors).
    X, _ = make_multiview(120, [30, 30], n_latent=2, noise=1.0, random_state=0)
    search = GridSearchCV(
        MCCA(blocks=[30, 30]),
        {"regularization": [0.0, 0.1, 0.5, 0.9], "n_components": [1, 2, 3, 4]},
        cv=KFold(5, shuffle=True, random_state=0),
    ).fit(X)
    assert search.best_params_["n_components"] == 2
    assert search.best_params_["regularization"] > 0


def test_readme_grid_picks_three_components():
    X3, _ = make_multiview(
        500, view_dims=[20, 30, 10], n_latent=3, noise=1.0, random_state=0
    )
    search = GridSearchCV(
        MCCA(blocks=[20, 30, 10]),
        {"regularization": [0.01, 0.1, 0.5], "n_components": [1, 3]},
    ).fit(X3)
    assert search.best_params_["n_components"] == 3


@pytest.mark.parametrize("n_views", [2, 3, 4])
def test_threshold_is_two_standard_errors_of_independent_variates(n_views):
    # For independent variates a component exceeds the threshold about
    # 2.3 % of the time, whatever the number of views.
    rng = np.random.RandomState(n_views)
    n, k = 50, 2000
    views = [rng.standard_normal((n, k)) for _ in range(n_views)]
    pairs = n_views * (n_views - 1) / 2
    threshold = 2 / np.sqrt(pairs * (n - 1))
    rho = canonical_correlation(views)
    assert 0.01 < np.mean(rho > threshold) < 0.04
    score = canonical_correlation_score(views)
    assert score == pytest.approx(np.sum(rho - threshold), rel=1e-12)


def test_score_is_deterministic_and_matches_the_metric():
    X = _shared(0)
    train, test = X[:200], X[200:]
    for est in (
        MCCA(3, blocks=DIMS).fit(train),
        GCCA(3, blocks=DIMS, regularization=0.1).fit(train),
        KCCA(3, blocks=DIMS, kernel="linear").fit(train),
    ):
        expected = canonical_correlation_score(est.transform_views(test))
        assert est.score(test) == expected == est.score(test)
