"""Properties of KCCA on small random multi-view data (hypothesis)."""

import numpy as np
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from mmfuse.cca import KCCA
from mmfuse.datasets import make_multiview

# Derandomized (as tests/test_contract.py): CI draws the same cases every run.
SETTINGS = settings(max_examples=10, deadline=None, derandomize=True, database=None)


@st.composite
def multiview(draw):
    n_views = draw(st.integers(2, 3))
    dims = draw(st.lists(st.integers(1, 4), min_size=n_views, max_size=n_views))
    n = draw(st.integers(20, 60))
    X, _ = make_multiview(
        n,
        dims,
        n_latent=draw(st.integers(1, 2)),
        noise=draw(st.floats(0.1, 2.0)),
        nonlinear=draw(st.booleans()),
        random_state=draw(st.integers(0, 2**16)),
    )
    return X, dims


kernels = st.sampled_from(["rbf", "laplacian", "poly"])
ridges = st.floats(0.01, 1.0)


@SETTINGS
@given(data=multiview(), kernel=kernels, regularization=ridges)
def test_eigenvalues_sorted_and_correlations_bounded(data, kernel, regularization):
    X, dims = data
    kcca = KCCA(2, blocks=dims, kernel=kernel, regularization=regularization).fit(X)
    assert np.all(np.diff(kcca.eigenvalues_) <= 1e-10)
    assert np.all(np.abs(kcca.canonical_correlations_) <= 1 + 1e-12)
    # The leading component's views correlate positively.
    assert kcca.canonical_correlations_[0] >= 0


@SETTINGS
@given(data=multiview(), kernel=kernels, seed=st.integers(0, 2**16))
def test_row_order_and_column_order_within_a_block_change_nothing(data, kernel, seed):
    X, dims = data
    rng = np.random.RandomState(seed)
    rows = rng.permutation(X.shape[0])
    starts = np.cumsum([0, *dims])
    columns = np.concatenate(
        [
            a + rng.permutation(b - a)
            for a, b in zip(starts[:-1], starts[1:], strict=True)
        ]
    )
    kcca = KCCA(2, blocks=dims, kernel=kernel).fit(X)
    shuffled = KCCA(2, blocks=dims, kernel=kernel).fit(X[rows][:, columns])
    np.testing.assert_allclose(shuffled.eigenvalues_, kcca.eigenvalues_, atol=1e-8)
    X_new = X[:5] + 0.1
    np.testing.assert_allclose(
        shuffled.transform(X_new[:, columns]), kcca.transform(X_new), atol=1e-6
    )


@SETTINGS
@given(data=multiview(), seed=st.integers(0, 2**16))
def test_nystroem_same_seed_same_fit(data, seed):
    X, dims = data
    params = {"approximation": "nystroem", "n_landmarks": 15, "random_state": seed}
    first = KCCA(1, blocks=dims, **params).fit(X)
    second = KCCA(1, blocks=dims, **params).fit(X)
    np.testing.assert_array_equal(first.transform(X), second.transform(X))


@SETTINGS
@given(
    data=multiview(),
    kernel=kernels,
    counts=st.lists(st.integers(0, 3), min_size=60, max_size=60),
)
def test_integer_weights_equal_repeated_rows(data, kernel, counts):
    X, dims = data
    counts = np.array(counts[: len(X)])
    assume(np.count_nonzero(counts) >= 10)
    weighted = KCCA(1, blocks=dims, kernel=kernel).fit(X, sample_weight=counts)
    repeated = KCCA(1, blocks=dims, kernel=kernel).fit(np.repeat(X, counts, axis=0))
    np.testing.assert_allclose(
        weighted.eigenvalues_, repeated.eigenvalues_, rtol=1e-8, atol=1e-10
    )
    np.testing.assert_allclose(weighted.transform(X), repeated.transform(X), atol=1e-6)
