"""MCCA, GCCA and Nystroem KCCA on Dask arrays: the in-memory model, lazily."""

import dask
import dask.array as da
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest
from sklearn import config_context
from sklearn.base import clone

from mmfuse.cca import GCCA, KCCA, MCCA
from mmfuse.datasets import make_multiview

WIDTHS = [5, 6, 4]
ESTIMATORS = [
    MCCA(2, blocks=WIDTHS, regularization=0.1),
    GCCA(2, blocks=WIDTHS, output="mean"),
    KCCA(2, blocks=WIDTHS, approximation="nystroem", n_landmarks=40, random_state=0),
]


@pytest.fixture(scope="module")
def data():
    X, _ = make_multiview(1000, view_dims=WIDTHS, n_latent=2, noise=1.0, random_state=0)
    return X


def _coefficients(estimator):
    return getattr(estimator, "weights_", None) or estimator.dual_coef_


def _assert_same_model(memory, distributed):
    np.testing.assert_allclose(
        distributed.canonical_correlations_,
        memory.canonical_correlations_,
        rtol=0,
        atol=1e-10,
    )
    np.testing.assert_allclose(
        distributed.eigenvalues_, memory.eigenvalues_, rtol=0, atol=1e-10
    )
    for W_d, W_m in zip(_coefficients(distributed), _coefficients(memory), strict=True):
        np.testing.assert_allclose(W_d, W_m, rtol=1e-10, atol=1e-10)
    for name in ("support_", "means_", "kernel_means_"):
        for a, b in zip(
            getattr(distributed, name, []), getattr(memory, name, []), strict=True
        ):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=lambda e: type(e).__name__)
def test_dask_fit_is_the_in_memory_fit_and_transform_is_lazy(client, data, estimator):
    memory = clone(estimator).fit(data)
    X = da.from_array(data, chunks=(150, -1))  # uneven: the last chunk is 100
    distributed = clone(estimator).fit(X)
    _assert_same_model(memory, distributed)
    out = distributed.transform(X)
    assert isinstance(out, da.Array)
    assert out.chunks == (X.chunks[0], (memory._n_features_out,))
    np.testing.assert_allclose(out.compute(), memory.transform(data), atol=1e-10)


def test_rows_of_unknown_count(client, data):
    X = da.from_array(data, chunks=(300, -1))
    X = X[X[:, 0] > -1]  # a boolean mask: chunk sizes unknown
    kept = data[data[:, 0] > -1]
    for estimator in ESTIMATORS:
        _assert_same_model(clone(estimator).fit(kept), clone(estimator).fit(X))


def test_column_chunks_and_float32_statistics(client, data):
    X32 = data.astype(np.float32)
    memory = MCCA(2, blocks=WIDTHS, dtype=None).fit(X32)
    distributed = MCCA(2, blocks=WIDTHS, dtype=None).fit(
        da.from_array(X32, chunks=(300, 7))
    )
    assert distributed.weights_[0].dtype == np.float32
    np.testing.assert_allclose(
        distributed.canonical_correlations_, memory.canonical_correlations_, atol=1e-5
    )
    assert distributed.transform(da.from_array(X32, chunks=300)).dtype == np.float32


def test_dask_dataframe_with_blocks_auto(client, data):
    names = [f"{v}__{j}" for v, w in zip("abc", WIDTHS, strict=True) for j in range(w)]
    frame = pd.DataFrame(data, columns=names)
    memory = MCCA(2).fit(frame)
    distributed = MCCA(2).fit(dd.from_pandas(frame, npartitions=4))
    assert distributed.modality_names_ == ["a", "b", "c"]
    assert list(distributed.feature_names_in_) == names
    _assert_same_model(memory, distributed)
    out = distributed.transform(dd.from_pandas(frame, npartitions=4))
    assert isinstance(out, da.Array)
    np.testing.assert_allclose(out.compute(), memory.transform(frame), atol=1e-10)


def test_dataframe_output_is_refused_and_default_output_stays_lazy(data):
    # A DataFrame output would be built in memory by scikit-learn, computing
    # every row on the client; the per-chunk transform raised AttributeError.
    X = da.from_array(data, chunks=(250, -1))
    memory = MCCA(2, blocks=WIDTHS).fit(data)
    fitted = MCCA(2, blocks=WIDTHS).fit(X).set_output(transform="pandas")
    with pytest.raises(
        ValueError, match=r"set to 'pandas'.*set_output\(transform='def"
    ):
        fitted.transform(X)
    fitted.set_output(transform="default")
    with config_context(transform_output="pandas"):
        out = fitted.transform(X)
        assert isinstance(out, da.Array)
        with dask.config.set(scheduler="synchronous"):  # chunks under the context
            np.testing.assert_allclose(out.compute(), memory.transform(data))
        with pytest.raises(ValueError, match="sklearn.set_config"):
            MCCA(2, blocks=WIDTHS).fit(X).transform(X)  # the global setting


@pytest.mark.parametrize(
    "estimator", [ESTIMATORS[0], ESTIMATORS[2]], ids=lambda e: type(e).__name__
)
def test_sample_weight_as_a_dask_array(client, data, estimator):
    weights = np.random.default_rng(0).integers(0, 3, len(data)).astype(float)
    weights[:200] = 0  # a whole chunk of weight 0
    X = data.copy()
    X[np.flatnonzero(weights == 0)[:3]] = np.nan  # weight 0: the row is dropped
    memory = clone(estimator).fit(X, sample_weight=weights)
    distributed = clone(estimator).fit(
        da.from_array(X, chunks=(200, -1)),
        sample_weight=da.from_array(weights, chunks=333),
    )
    _assert_same_model(memory, distributed)


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=lambda e: type(e).__name__)
def test_missing_modalities_as_in_memory(client, data, estimator):
    X = data.copy()
    X[[5, 700], :5] = np.nan  # two rows lack modality block0, in two chunks
    X[9, 5:7] = np.nan  # NaN in part of block1
    with pytest.raises(ValueError) as in_memory:
        clone(estimator).fit(X)
    with pytest.raises(ValueError, match="2 row\\(s\\) lack modality 'block0'") as on:
        clone(estimator).fit(da.from_array(X, chunks=(200, -1)))
    assert str(on.value) == str(in_memory.value)
    # output="mean": a row averages the modalities it has
    fitted = clone(estimator).set_params(output="mean").fit(data)
    X[9, 5:7] = 0.0
    out = fitted.transform(da.from_array(X, chunks=(200, -1))).compute()
    np.testing.assert_allclose(out, fitted.transform(X), atol=1e-10)


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=lambda e: type(e).__name__)
def test_infinity_as_in_memory(client, data, estimator):
    # MCCA and GCCA read an infinite value as an overflow of the statistics
    # ("rescale the columns"), beside a NaN row lacking a modality too.
    X = data.copy()
    X[[5, 700], :5] = np.nan
    X[705, 6] = np.inf
    with pytest.raises(ValueError) as in_memory:
        clone(estimator).fit(X)
    with pytest.raises(ValueError, match="Input X contains infinity") as on:
        clone(estimator).fit(da.from_array(X, chunks=(200, -1)))
    assert str(on.value) == str(in_memory.value)


@pytest.mark.parametrize(
    "estimator, message",
    [
        (KCCA(blocks=WIDTHS), "only with approximation='nystroem'"),
        (
            KCCA(blocks=WIDTHS, approximation="nystroem", solver="iterative"),
            "use solver='dense' or 'auto'",
        ),
        (
            KCCA(blocks=[20, 20], kernel="precomputed", approximation="nystroem"),
            "cannot take a precomputed kernel as a Dask collection",
        ),
    ],
)
def test_kcca_refuses_what_a_cluster_cannot_do(data, estimator, message):
    if estimator.kernel == "precomputed":  # two 20 x 20 kernels side by side
        K = data[:20, :5] @ data[:20, :5].T
        data = np.hstack([K, K])
    with pytest.raises(ValueError, match=message):
        estimator.fit(da.from_array(data))


def test_sample_weight_of_the_wrong_length(data):
    with pytest.raises(ValueError, match=r"sample_weight has shape \(10,\), but X"):
        MCCA(blocks=WIDTHS).fit(da.from_array(data), sample_weight=np.ones(10))


def test_a_constant_modality_as_in_memory(client, data):
    X = data.copy()
    X[:, 11:] = 5.0  # block2 constant
    with pytest.raises(ValueError) as in_memory:
        clone(ESTIMATORS[2]).fit(X)
    with pytest.raises(ValueError, match="'block2' has numerical rank 0") as on:
        clone(ESTIMATORS[2]).fit(da.from_array(X, chunks=(300, -1)))
    assert str(on.value) == str(in_memory.value)


def test_more_landmarks_than_rows_as_in_memory(client, data):
    estimator = clone(ESTIMATORS[2]).set_params(n_landmarks=len(data) + 1)
    with pytest.warns(UserWarning, match="all 1000 rows are landmarks") as caught:
        memory = clone(estimator).fit(data)
        distributed = clone(estimator).fit(da.from_array(data, chunks=(300, -1)))
    assert sum("landmarks" in str(w.message) for w in caught) == 2
    _assert_same_model(memory, distributed)


def test_missing_modality_in_landmark_rows_as_in_memory(client, data):
    # Half the rows lack block0: landmark rows do too, and the NaN count
    # runs before any feature map exists.
    estimator = ESTIMATORS[2]
    X = data.copy()
    X[: len(X) // 2, :5] = np.nan
    with pytest.raises(ValueError) as in_memory:
        clone(estimator).fit(X)
    with pytest.raises(ValueError, match="row\\(s\\) lack modality 'block0'") as on:
        clone(estimator).fit(da.from_array(X, chunks=(200, -1)))
    assert str(on.value) == str(in_memory.value)


@pytest.mark.parametrize("weighted_from", [0, 600], ids=["shifted", "second-pass"])
def test_means_beyond_the_spread_as_in_memory(client, data, weighted_from):
    # Means 1e4 times the spread: the chunks' products are shifted, by the
    # first rows' mean (weighted_from=0), or, when the first rows (here of
    # weight 0) do not show it, by the mean of all rows in a second pass.
    X = data + 1e4
    X[:weighted_from] = data[:weighted_from]
    weights = np.ones(len(X))
    weights[:weighted_from] = 0
    memory = MCCA(2, blocks=WIDTHS).fit(X, sample_weight=weights)
    distributed = MCCA(2, blocks=WIDTHS).fit(
        da.from_array(X, chunks=(150, -1)), sample_weight=weights
    )
    _assert_same_model(memory, distributed)


def test_kcca_of_float32_chunks_is_the_in_memory_fit(client, data):
    # The chunks stay float32 until a task makes their features in float64.
    X32 = data.astype(np.float32)
    estimator = ESTIMATORS[2]
    memory = clone(estimator).fit(X32)
    distributed = clone(estimator).fit(da.from_array(X32, chunks=(150, -1)))
    _assert_same_model(memory, distributed)


def test_a_dataframe_fit_reads_each_partition_once(data):
    # Neither the first rows nor the partitions' lengths cost a pass over
    # the data (MCCA without weights needs no lengths): the statistics read
    # each partition once; the first rows read the first one again (twice,
    # in Dask's computing of one partition).
    names = [f"{v}__{j}" for v, w in zip("abc", WIDTHS, strict=True) for j in range(w)]
    reads = []

    def partition(i):
        reads.append(i)
        return pd.DataFrame(data[i * 100 : (i + 1) * 100], columns=names)

    frame = dd.from_map(partition, range(10))
    reads.clear()  # from_map's own read of a partition, for the column types
    with dask.config.set(scheduler="synchronous"):
        distributed = MCCA(2).fit(frame)
    assert sorted(set(reads)) == list(range(10))
    assert all(reads.count(i) == 1 for i in range(1, 10))
    memory = MCCA(2).fit(pd.DataFrame(data, columns=names))
    _assert_same_model(memory, distributed)
