"""Properties of MCCA and GCCA on small random multi-view data (hypothesis)."""

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from mmfuse.cca import GCCA, MCCA
from mmfuse.datasets import make_multiview

# Derandomized (as tests/test_contract.py): CI draws the same cases every run.
SETTINGS = settings(max_examples=20, deadline=None, derandomize=True, database=None)


@st.composite
def multiview(draw, min_views=2, max_views=4):
    n_views = draw(st.integers(min_views, max_views))
    dims = draw(st.lists(st.integers(2, 5), min_size=n_views, max_size=n_views))
    n = draw(st.integers(sum(dims) + 5, 80))
    noise = draw(st.floats(0.2, 3.0))
    seed = draw(st.integers(0, 2**16))
    X, _ = make_multiview(
        n, dims, n_latent=draw(st.integers(1, 3)), noise=noise, random_state=seed
    )
    return X, dims


def _align(Z, reference):
    """Flip each column of Z to the sign of the matching reference column."""
    return Z * np.sign(np.sum(Z * reference, axis=0))


estimators = st.sampled_from([MCCA, GCCA])


@SETTINGS
@given(data=multiview(max_views=2), Estimator=estimators)
def test_two_views_correlations_in_unit_interval_and_sorted(data, Estimator):
    X, dims = data
    rho = Estimator(min(dims), blocks=dims).fit(X).canonical_correlations_
    assert np.all((rho >= 0) & (rho <= 1 + 1e-12))
    assert np.all(np.diff(rho) <= 1e-12)


@SETTINGS
@given(data=multiview(min_views=3), Estimator=estimators)
def test_many_views_eigenvalues_sorted_correlations_bounded(data, Estimator):
    # With 3+ views the mean pairwise correlation of a component need not
    # follow its eigenvalue (the views' shares of a component differ), so
    # only the eigenvalues are sorted; the leading component correlates.
    X, dims = data
    est = Estimator(min(dims), blocks=dims).fit(X)
    rho = est.canonical_correlations_
    assert np.all(np.diff(est.eigenvalues_) <= 1e-12)
    assert np.all(np.abs(rho) <= 1 + 1e-12)
    assert 0 <= rho[0] <= 1 + 1e-12


@SETTINGS
@given(data=multiview(), Estimator=estimators, seed=st.integers(0, 2**16))
def test_invariant_to_invertible_map_of_one_view(data, Estimator, seed):
    X, dims = data
    d = dims[0]
    rng = np.random.default_rng(seed)
    # A well-conditioned invertible map: orthogonal times a positive diagonal.
    Q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    T = Q * rng.uniform(0.5, 3.0, d)
    Y = X.copy()
    Y[:, :d] = X[:, :d] @ T
    k = min(dims)
    a = Estimator(k, blocks=dims).fit(X)
    b = Estimator(k, blocks=dims).fit(Y)
    np.testing.assert_allclose(
        b.canonical_correlations_, a.canonical_correlations_, atol=1e-8
    )
    np.testing.assert_allclose(b.eigenvalues_, a.eigenvalues_, rtol=1e-8)
    gaps = np.diff(a.eigenvalues_)
    assume(gaps.size == 0 or np.min(-gaps) > 1e-4)
    for Za, Zb in zip(a.transform_views(X), b.transform_views(Y), strict=True):
        np.testing.assert_allclose(_align(Zb, Za), Za, atol=1e-6)


@SETTINGS
@given(data=multiview(), Estimator=estimators, seed=st.integers(0, 2**16))
def test_invariant_to_view_order_and_column_order(data, Estimator, seed):
    X, dims = data
    rng = np.random.default_rng(seed)
    k = min(dims)
    starts = np.cumsum([0, *dims])
    views = [np.arange(a, b) for a, b in zip(starts[:-1], starts[1:], strict=True)]
    order = rng.permutation(len(dims))
    shuffled = [rng.permutation(views[v]) for v in order]
    a = Estimator(k, blocks=dims, regularization=0.2).fit(X)
    b = Estimator(k, blocks=[len(c) for c in shuffled], regularization=0.2)
    b.fit(X[:, np.concatenate(shuffled)])
    np.testing.assert_allclose(b.eigenvalues_, a.eigenvalues_, rtol=1e-9)
    np.testing.assert_allclose(
        b.canonical_correlations_, a.canonical_correlations_, atol=1e-9
    )
    gaps = np.diff(a.eigenvalues_)
    assume(gaps.size == 0 or np.min(-gaps) > 1e-4)
    Za = a.transform_views(X)
    Zb = b.transform_views(X[:, np.concatenate(shuffled)])
    for position, v in enumerate(order):
        np.testing.assert_allclose(_align(Zb[position], Za[v]), Za[v], atol=1e-6)


@SETTINGS
@given(data=multiview(), Estimator=estimators, seed=st.integers(0, 2**16))
def test_dense_and_iterative_solvers_agree(data, Estimator, seed):
    X, dims = data
    k = min(dims)
    dense = Estimator(k, blocks=dims, solver="dense").fit(X)
    gaps = -np.diff(dense.eigenvalues_)
    assume(gaps.size == 0 or gaps.min() > 1e-4)
    iterative = Estimator(k, blocks=dims, solver="iterative", random_state=seed).fit(X)
    np.testing.assert_allclose(iterative.eigenvalues_, dense.eigenvalues_, rtol=1e-9)
    for Wi, Wd in zip(iterative.weights_, dense.weights_, strict=True):
        # Same sign rule on both: the same weights, not only up to sign.
        np.testing.assert_allclose(Wi, Wd, atol=1e-6 * np.abs(Wd).max())


@SETTINGS
@given(
    data=multiview(), Estimator=estimators, cuts=st.lists(st.floats(0, 1), max_size=4)
)
def test_partial_fit_on_any_split_equals_fit(data, Estimator, cuts):
    X, dims = data
    X = X + 10.0
    positions = sorted({int(c * len(X)) for c in cuts} - {0, len(X)})
    chunks = [c for c in np.split(X, positions) if len(c) >= 2]
    assume(sum(map(len, chunks)) == len(X))
    k = min(dims)
    full = Estimator(k, blocks=dims, regularization=0.1).fit(X)
    streamed = Estimator(k, blocks=dims, regularization=0.1)
    for chunk in chunks:
        streamed.partial_fit(chunk)
    np.testing.assert_allclose(streamed.eigenvalues_, full.eigenvalues_, rtol=1e-10)
    np.testing.assert_allclose(streamed.transform(X), full.transform(X), atol=1e-8)


@pytest.mark.parametrize("Estimator", [MCCA, GCCA])
def test_same_seed_same_iterative_fit(Estimator):
    X, _ = make_multiview(60, [4, 5, 3], n_latent=2, noise=1.0, random_state=0)
    fits = [
        Estimator(3, blocks=[4, 5, 3], solver="iterative", random_state=3).fit(X)
        for _ in range(2)
    ]
    for a, b in zip(fits[0].weights_, fits[1].weights_, strict=True):
        np.testing.assert_array_equal(a, b)


@SETTINGS
@given(
    data=multiview(),
    Estimator=estimators,
    counts=st.lists(st.integers(0, 3), min_size=80, max_size=80),
)
def test_integer_weights_equal_repeated_rows(data, Estimator, counts):
    X, dims = data
    counts = np.array(counts[: len(X)])
    assume(np.count_nonzero(counts) > sum(dims) + 2)
    k = min(dims)
    weighted = Estimator(k, blocks=dims, regularization=0.1)
    weighted.fit(X, sample_weight=counts)
    repeated = Estimator(k, blocks=dims, regularization=0.1)
    repeated.fit(np.repeat(X, counts, axis=0))
    np.testing.assert_allclose(
        weighted.eigenvalues_, repeated.eigenvalues_, rtol=1e-9, atol=1e-12
    )
    gaps = -np.diff(repeated.eigenvalues_)
    assume(gaps.size == 0 or gaps.min() > 1e-4)
    np.testing.assert_allclose(weighted.transform(X), repeated.transform(X), atol=1e-6)


@SETTINGS
@given(data=multiview(), Estimator=estimators)
def test_score_is_bounded_by_the_threshold(data, Estimator):
    # Each component adds at most 1 - t and at least -1 - t.
    X, dims = data
    k = min(dims)
    est = Estimator(k, blocks=dims, regularization=0.1).fit(X)
    pairs = len(dims) * (len(dims) - 1) / 2
    threshold = 2 / np.sqrt(pairs * (len(X) - 1))
    score = est.score(X)
    assert -k * (1 + threshold) - 1e-9 <= score <= k * (1 - threshold) + 1e-9


@SETTINGS
@given(
    n_views=st.integers(2, 4),
    width=st.integers(4, 12),
    rows=st.integers(6, 30),
    ridge=st.floats(0.01, 1.0),
    seed=st.integers(0, 2**16),
)
def test_gcca_dual_and_primal_agree(n_views, width, rows, ridge, seed):
    # Fewer rows than columns: fit solves the n x n dual, partial_fit the
    # P x P primal; eigenvalues, correlations and weights agree.
    dims = [width] * n_views
    assume(rows < sum(dims))
    X, _ = make_multiview(rows, dims, n_latent=2, noise=1.0, random_state=seed)
    k = min(2, rows - 1)
    dual = GCCA(k, blocks=dims, regularization=ridge).fit(X)
    primal = GCCA(k, blocks=dims, regularization=ridge).partial_fit(X)
    scale = max(1.0, float(dual.eigenvalues_[0]))
    np.testing.assert_allclose(
        dual.eigenvalues_, primal.eigenvalues_, rtol=1e-9, atol=1e-9 * scale
    )
    # Weights are defined up to a rotation within a repeated eigenvalue.
    gaps = np.diff(np.concatenate([primal.eigenvalues_, [0.0]]))
    assume(np.all(np.abs(gaps) > 1e-6 * scale))
    np.testing.assert_allclose(
        dual.transform(X), primal.transform(X), rtol=1e-6, atol=1e-6
    )
