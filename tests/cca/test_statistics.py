"""The sufficient statistics that every closed-form CCA fit is built on."""

import numpy as np
import pytest
import scipy.sparse as sp

from mmfuse.cca import _statistics
from mmfuse.cca._statistics import Scatter, scatter_of, scatter_of_chunks


def _data(n=300, p=5, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p)) @ rng.standard_normal((p, p)) + 3.0
    weights = rng.integers(1, 4, n).astype(float)
    return X, weights


def _assert_equal(a, b, rtol=1e-12):
    assert (a.n_rows, a.weight_sum) == (b.n_rows, pytest.approx(b.weight_sum))
    np.testing.assert_allclose(a.mean, b.mean, rtol=rtol)
    np.testing.assert_allclose(a.scatter, b.scatter, rtol=rtol, atol=1e-10)


def test_matches_numpy_with_and_without_weights():
    X, weights = _data()
    columns = np.array([4, 0, 2])
    plain = scatter_of(X, columns)
    assert (plain.n_rows, plain.weight_sum) == (300, 300.0)
    np.testing.assert_allclose(plain.mean, X[:, columns].mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(plain.covariance(), np.cov(X[:, columns].T), rtol=1e-12)
    weighted = scatter_of(X, columns, weights=weights)
    assert weighted.weight_sum == weights.sum()
    np.testing.assert_allclose(
        weighted.covariance(),
        np.cov(X[:, columns].T, fweights=weights.astype(int)),
        rtol=1e-12,
    )


def test_integer_weights_equal_repeated_rows():
    X, weights = _data()
    columns = np.arange(X.shape[1])
    repeated = scatter_of(np.repeat(X, weights.astype(int), axis=0), columns)
    weighted = scatter_of(X, columns, weights=weights)
    np.testing.assert_allclose(weighted.mean, repeated.mean, rtol=1e-12)
    np.testing.assert_allclose(weighted.scatter, repeated.scatter, rtol=1e-11)


def test_chunks_and_merges_equal_one_pass(monkeypatch):
    X, weights = _data(n=3000)
    columns = np.arange(X.shape[1])
    whole = scatter_of(X, columns, weights=weights)
    monkeypatch.setattr(_statistics, "_CACHE_VALUES", 1)  # pieces of 512 rows
    _assert_equal(scatter_of(X, columns, weights=weights), whole)
    parts = [
        scatter_of(X[rows], columns, weights=weights[rows])
        for rows in np.array_split(np.arange(3000), [7, 1500, 2990])
    ]
    left = parts[0].merge(parts[1]).merge(parts[2]).merge(parts[3])
    tree = parts[0].merge(parts[1]).merge(parts[2].merge(parts[3]))
    _assert_equal(left, whole)
    _assert_equal(tree, whole)


def test_shifted_sums_keep_a_small_spread_under_a_large_mean():
    # A one-pass XᵀX − n μμᵀ loses all digits here (1e16 against 1);
    # shifting by the first chunk's mean keeps them.
    rng = np.random.default_rng(1)
    X = 1e8 + rng.standard_normal((500, 2))
    chunks = [(X[:100], None), (X[100:], None)]
    covariance = scatter_of_chunks(chunks).covariance()
    np.testing.assert_allclose(covariance, np.cov((X - 1e8).T), rtol=1e-6)


@pytest.mark.parametrize("fmt", ["csr", "csc"])
def test_sparse_equals_dense(fmt):
    X, weights = _data()
    X[np.abs(X) < 3] = 0.0
    columns = np.array([1, 3, 4])
    for w in (None, weights):
        sparse = scatter_of(sp.csr_matrix(X).asformat(fmt), columns, weights=w)
        _assert_equal(sparse, scatter_of(X, columns, weights=w), rtol=1e-11)


def test_float32_products_float64_sums():
    X, _ = _data()
    columns = np.arange(X.shape[1])
    single = scatter_of(X.astype(np.float32), columns, dtype=np.float32)
    assert single.scatter.dtype == single.mean.dtype == np.float64
    np.testing.assert_allclose(
        single.covariance(), np.cov(X.astype(np.float32).T), rtol=1e-5
    )


def test_merge_is_exact_for_two_single_rows():
    a = Scatter(1, 2.0, np.array([0.0]), np.zeros((1, 1)))
    b = Scatter(1, 1.0, np.array([3.0]), np.zeros((1, 1)))
    merged = a.merge(b)
    # Rows 0, 0, 3: mean 1, scatter 1 + 1 + 4 = 6.
    assert (merged.n_rows, merged.weight_sum) == (2, 3.0)
    np.testing.assert_allclose(merged.mean, [1.0])
    np.testing.assert_allclose(merged.scatter, [[6.0]])
    np.testing.assert_allclose(merged.covariance(), [[3.0]])


def test_centred_columns_are_read_in_place_and_others_shifted():
    rng = np.random.default_rng(2)
    centred = rng.standard_normal((3000, 4))
    columns = np.arange(4)
    # Standardized columns: no shift, the rows are read in place.
    assert _statistics._unshifted(centred, np.float64, None) is not None
    # A mean that dwarfs the spread, from the first rows on or only later
    # (the first rows looked centred): the shifted pass, accurate either way.
    late = centred.copy()
    late[1000:] += 1e6
    for X in (centred + 1e6, late):
        assert _statistics._unshifted(X, np.float64, None) is None
        statistics = scatter_of(X, columns)
        np.testing.assert_allclose(statistics.mean, X.mean(axis=0), rtol=1e-14)
        np.testing.assert_allclose(statistics.covariance(), np.cov(X.T), rtol=1e-9)
    # Weights always take the shifted pass.
    assert _statistics._unshifted(centred, np.float64, np.ones(3000)) is None


@pytest.mark.parametrize("weighted", [False, True])
def test_float32_sums_over_many_rows_stay_accurate(monkeypatch, weighted):
    # float32 products are summed in float32 over at most _FLUSH_ROWS rows,
    # then in float64: 40 flushes here, as accurate as a float64 sum of the
    # float32 products.
    monkeypatch.setattr(_statistics, "_FLUSH_ROWS", 1000)
    rng = np.random.default_rng(3)
    X = (rng.standard_normal((40_000, 6)) + [0, 0, 0, 5, 50, 500]).astype(np.float32)
    weights = rng.integers(1, 4, len(X)).astype(float) if weighted else None
    single = scatter_of(X, np.arange(6), dtype=np.float32, weights=weights)
    double = scatter_of(X.astype(np.float64), np.arange(6), weights=weights)
    # Within float32 rounding of the unit spread and of the means.
    np.testing.assert_allclose(single.mean, double.mean, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(single.scatter, double.scatter, rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("weighted", [False, True])
def test_unfinished_sums_of_chunks_add_up_to_the_statistics(weighted):
    # What the Dask workers do: each chunk's sums, one shift for all, merged
    # by addition and finished once.
    X, weights = _data(n=400)
    weights = weights if weighted else None
    columns = np.array([4, 0, 2])
    shift = X[:50, columns].mean(axis=0)
    parts = [
        _statistics.shifted_sums(
            X[start : start + 90],
            columns,
            shift,
            weights=None if weights is None else weights[start : start + 90],
        )
        for start in range(0, 400, 90)
    ]
    assert np.all(np.tril(parts[0].products, -1) == 0)  # the upper triangle only
    merged = parts[0]
    for part in parts[1:]:
        merged = merged.merge(part)
    _assert_equal(merged.statistics(), scatter_of(X, columns, weights=weights))
