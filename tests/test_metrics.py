"""Tests of mmfuse.metrics: known answers, invariances, errors."""

import re

import numpy as np
import pytest
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import top_k_accuracy_score

from mmfuse.cca import MCCA
from mmfuse.datasets import make_multiview
from mmfuse.deep import MultimodalVAE
from mmfuse.metrics import (
    canonical_correlation,
    canonical_correlation_from_covariance,
    canonical_correlation_score,
    coherence,
    mean_average_precision_score,
    mean_reciprocal_rank_score,
    recall_at_k_score,
    retrieve,
)


def _views(n=60, n_views=3, k=2, seed=0):
    """Views sharing a signal of decreasing strength, component by component."""
    rng = np.random.default_rng(seed)
    shared = rng.standard_normal((n, k))
    return [
        shared + rng.standard_normal((n, k)) * [0.5, 2.0][:k] for _ in range(n_views)
    ]


def test_canonical_correlation_known_values():
    rng = np.random.default_rng(0)
    a, b, c = (rng.standard_normal((50, 3)) for _ in range(3))
    b = b + a
    two = canonical_correlation([a, b])
    expected = [np.corrcoef(a[:, j], b[:, j])[0, 1] for j in range(3)]
    np.testing.assert_allclose(two, expected, rtol=1e-12)
    three = canonical_correlation([a, b, c])
    pairs = [
        [np.corrcoef(x[:, j], y[:, j])[0, 1] for j in range(3)]
        for x, y in ((a, b), (a, c), (b, c))
    ]
    np.testing.assert_allclose(three, np.mean(pairs, axis=0), rtol=1e-12)
    constant = np.ones_like(a)
    np.testing.assert_array_equal(canonical_correlation([a, constant]), 0.0)


def test_canonical_correlation_errors():
    a = np.ones((5, 2))
    with pytest.raises(ValueError, match="at least two views; got 1"):
        canonical_correlation([a])
    with pytest.raises(
        ValueError, match=r"one shape .* got shapes \[\(5, 2\), \(4, 2\)"
    ):
        canonical_correlation([a, a[:4]])
    with pytest.raises(ValueError, match="at least 2 rows; got 1"):
        canonical_correlation([a[:1], a[:1]])


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_canonical_correlation_refuses_rows_lacking_a_modality(bad):
    # A NaN row (an aligner's or MCCA's view of a missing modality) read as
    # a constant variate: that component scored 0, without a word.
    a, b = _views()[:2]
    a = a.copy()
    a[[3, 7], 0] = bad
    with pytest.raises(
        ValueError,
        match=r"view 0 has NaN or infinite values in 2 row\(s\), the first at row 3",
    ):
        canonical_correlation([a, b])
    with pytest.raises(ValueError, match="view 1 has NaN"):
        canonical_correlation_score([b, a])


def test_perfect_and_opposite_correlation():
    t = np.linspace(-1.0, 2.0, 20)[:, None]
    np.testing.assert_allclose(canonical_correlation([t, 3 * t + 1]), [1.0])
    np.testing.assert_allclose(canonical_correlation([t, -t]), [-1.0])
    # Three views: the pairs correlate 1, -1 and -1.
    np.testing.assert_allclose(canonical_correlation([t, t, -t]), [-1 / 3])


def test_invariant_to_affine_maps_row_order_and_input_type():
    views = _views()
    reference = canonical_correlation(views)
    rng = np.random.default_rng(1)
    scaled = [
        v * rng.uniform(0.5, 3.0, v.shape[1]) + rng.normal(size=v.shape[1])
        for v in views
    ]
    np.testing.assert_allclose(canonical_correlation(scaled), reference, rtol=1e-12)
    order = rng.permutation(len(views[0]))
    np.testing.assert_allclose(
        canonical_correlation([v[order] for v in views]), reference, rtol=1e-12
    )
    np.testing.assert_allclose(
        canonical_correlation([v.astype(np.float32).tolist() for v in views]),
        canonical_correlation([v.astype(np.float32) for v in views]),
    )
    # A negative scale of one view's component flips that pair's sign.
    flipped = [views[0] * [-1.0, 1.0], views[1]]
    two = canonical_correlation(views[:2])
    np.testing.assert_allclose(
        canonical_correlation(flipped), two * [-1.0, 1.0], rtol=1e-12
    )


def test_components_are_scored_apart():
    views = _views()
    swapped = [v[:, ::-1] for v in views]
    np.testing.assert_allclose(
        canonical_correlation(swapped), canonical_correlation(views)[::-1]
    )
    # Population values 1 / (1 + 0.5²) = 0.8 and 1 / (1 + 2²) = 0.2.
    rho = canonical_correlation(views)
    assert abs(rho[0] - 0.8) < 0.1
    assert abs(rho[1] - 0.2) < 0.2


def test_from_covariance_equals_from_variates():
    views = _views(k=2)
    stacked = np.stack(views)  # (view, row, component)
    centred = stacked - stacked.mean(axis=1, keepdims=True)
    cross = np.einsum("vnk,wnk->vwk", centred, centred) / (len(views[0]) - 1)
    np.testing.assert_allclose(
        canonical_correlation_from_covariance(cross),
        canonical_correlation(views),
        rtol=1e-12,
    )
    # Any one positive scale of all covariances gives the same correlations.
    np.testing.assert_allclose(
        canonical_correlation_from_covariance(7.5 * cross),
        canonical_correlation(views),
        rtol=1e-12,
    )


def test_from_covariance_known_answers():
    # Two views, variances 4 and 9, covariance -3: correlation -0.5.
    cross = np.array([[[4.0], [-3.0]], [[-3.0], [9.0]]])
    np.testing.assert_allclose(canonical_correlation_from_covariance(cross), [-0.5])
    # A variate of zero variance correlates 0, never NaN.
    cross = np.array([[[0.0], [0.0]], [[0.0], [1.0]]])
    np.testing.assert_array_equal(canonical_correlation_from_covariance(cross), [0.0])
    # Rounding that pushes a correlation past 1 is clipped.
    cross = np.array([[[1.0], [1.0 + 1e-12]], [[1.0 + 1e-12], [1.0]]])
    np.testing.assert_array_equal(canonical_correlation_from_covariance(cross), [1.0])


@pytest.mark.parametrize("shape", [(2, 2), (2, 3, 1), (1, 1, 2), (2, 2, 1, 1)], ids=str)
def test_from_covariance_shape_errors(shape):
    with pytest.raises(
        ValueError,
        match=(
            r"shape \(n_views, n_views, n_components\) with at least two views.*"
            f"got shape {re.escape(str(shape))}"
        ),
    ):
        canonical_correlation_from_covariance(np.ones(shape))


def test_score_known_answer_and_threshold():
    views = _views(n=101, n_views=3, k=2)
    rho = canonical_correlation(views)
    threshold = 2 / np.sqrt(3 * 100)  # 3 pairs of views, n - 1 = 100
    score = canonical_correlation_score(views)
    assert isinstance(score, float)
    assert score == pytest.approx(np.sum(rho - threshold), rel=1e-12)
    assert score == canonical_correlation_score(views)
    # At most n_components * (1 - t), reached by identical views.
    same = [views[0]] * 3
    assert canonical_correlation_score(same) == pytest.approx(2 * (1 - threshold))


def test_score_peaks_at_the_shared_components():
    # One shared component, then noise: on new rows the noise component
    # costs about the threshold, so one component scores higher than two.
    rng = np.random.default_rng(3)
    shared = rng.standard_normal((400, 1))
    a = np.hstack(
        [shared + 0.3 * rng.standard_normal((400, 1)), rng.standard_normal((400, 1))]
    )
    b = np.hstack(
        [shared + 0.3 * rng.standard_normal((400, 1)), rng.standard_normal((400, 1))]
    )
    assert canonical_correlation_score([a[:, :1], b[:, :1]]) > (
        canonical_correlation_score([a, b])
    )


def test_score_takes_any_iterable_of_views():
    views = _views()
    expected = canonical_correlation_score(views)
    assert canonical_correlation_score(iter(views)) == expected  # len() failed


def test_score_errors_as_canonical_correlation():
    a = np.ones((5, 2))
    with pytest.raises(ValueError, match="at least two views; got 1"):
        canonical_correlation_score([a])
    with pytest.raises(ValueError, match="at least 2 rows; got 1"):
        canonical_correlation_score([a[:1], a[:1]])


def test_one_dimensional_variates_are_refused():
    with pytest.raises(ValueError, match=r"2-D of one shape.*got shapes \[\(5,\)"):
        canonical_correlation([np.ones(5), np.ones(5)])


# Cross-modal retrieval ------------------------------------------------------


def _cosine(a, b):
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return a @ b.T


def _pair(n=30, d=4, noise=0.5, seed=0):
    """Queries and items: one latent per row seen twice through noise."""
    rng = np.random.default_rng(seed)
    latent = rng.standard_normal((n, d))
    return (
        latent + noise * rng.standard_normal((n, d)),
        latent + noise * rng.standard_normal((n, d)),
    )


def test_retrieve_matches_a_direct_ranking():
    queries, items = _pair(n=12)
    items = items[:9]
    similarity = _cosine(queries, items)
    indices, similarities = retrieve(queries, items, k=4)
    assert indices.shape == similarities.shape == (12, 4)
    expected = np.argsort(-similarity, axis=1)[:, :4]
    np.testing.assert_array_equal(indices, expected)
    np.testing.assert_allclose(
        similarities, np.take_along_axis(similarity, expected, axis=1), rtol=1e-12
    )
    assert np.all(np.diff(similarities, axis=1) <= 0)
    # k=None ranks every item: each row is a permutation of the items.
    all_indices, _ = retrieve(queries, items)
    np.testing.assert_array_equal(np.sort(all_indices, axis=1), [np.arange(9)] * 12)
    np.testing.assert_array_equal(all_indices[:, :4], indices)


def test_retrieve_other_metrics_and_ties():
    queries = np.array([[1.0, 0.0]])
    items = np.array([[3.0, 0.0], [1.0, 0.0], [1.0, 1.0], [1.0, 0.0]])
    # Cosine ignores length: items 0, 1 and 3 tie and keep their order.
    indices, similarities = retrieve(queries, items)
    np.testing.assert_array_equal(indices, [[0, 1, 3, 2]])
    np.testing.assert_allclose(similarities, [[1, 1, 1, np.sqrt(0.5)]])
    indices, similarities = retrieve(queries, items, metric="dot")
    np.testing.assert_array_equal(indices, [[0, 1, 2, 3]])
    np.testing.assert_allclose(similarities, [[3, 1, 1, 1]])
    indices, similarities = retrieve(queries, items, metric="euclidean")
    np.testing.assert_array_equal(indices, [[1, 3, 2, 0]])
    np.testing.assert_allclose(similarities, [[0, 0, -1, -2]], atol=1e-12)


def test_recall_and_mrr_against_direct_formulas():
    queries, items = _pair(n=40, noise=1.0)
    similarity = _cosine(queries, items)
    # Rank of each query's own item, from 1 (no ties in continuous data).
    ranks = 1 + (similarity > np.diagonal(similarity)[:, None]).sum(axis=1)
    for k in (1, 3):
        assert recall_at_k_score(queries, items, k=k) == pytest.approx(
            np.mean(ranks <= k)
        )
        # scikit-learn's top-k accuracy with one class an item agrees.
        assert recall_at_k_score(queries, items, k=k) == pytest.approx(
            top_k_accuracy_score(np.arange(40), similarity, k=k, labels=np.arange(40))
        )
    assert mean_reciprocal_rank_score(queries, items) == pytest.approx(
        np.mean(1 / ranks)
    )
    assert recall_at_k_score(queries, items, k=40) == 1.0
    # Directions differ: the similarity matrix transposes, ranks do not.
    assert recall_at_k_score(items, queries, k=1) == pytest.approx(
        np.mean(1 + (similarity.T > np.diagonal(similarity)[:, None]).sum(1) <= 1)
    )


def test_recall_and_mrr_hand_computed():
    # Query 0 ranks items 0, 1, 2; query 1 ranks 0, 2, 1 (own item third);
    # query 2 ranks 2 first.
    queries = np.array([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0]])
    items = np.array([[1.0, 0.0], [-1.0, 0.2], [0.3, 1.0]])
    assert recall_at_k_score(queries, items) == pytest.approx(2 / 3)
    assert recall_at_k_score(queries, items, k=2) == pytest.approx(2 / 3)
    assert recall_at_k_score(queries, items, k=3) == 1.0
    assert mean_reciprocal_rank_score(queries, items) == pytest.approx(
        (1 + 1 / 3 + 1) / 3
    )


def test_ties_count_against_the_query():
    # A collapsed embedding (every row the same point) is chance, not perfect.
    same = np.ones((5, 3))
    assert recall_at_k_score(same, same, k=1) == 0.0
    assert recall_at_k_score(same, same, k=5) == 1.0
    assert mean_reciprocal_rank_score(same, same) == pytest.approx(1 / 5)
    labels = [0, 0, 1, 1, 1]
    # Every item at rank 5: precision 2/5 for class 0, 3/5 for class 1.
    assert mean_average_precision_score(same, same, labels) == pytest.approx(
        (2 * 0.4 + 3 * 0.6) / 5
    )


def test_recall_is_invariant_to_scaling_rows_under_cosine():
    queries, items = _pair(n=25, noise=1.0)
    scale = np.random.default_rng(2).uniform(0.1, 10.0, (25, 1))
    assert recall_at_k_score(queries * scale, items, k=2) == recall_at_k_score(
        queries, items, k=2
    )
    assert mean_reciprocal_rank_score(queries, items / scale) == pytest.approx(
        mean_reciprocal_rank_score(queries, items)
    )


def _average_precision(similarity_row, relevant_row):
    """Mean over relevant items of the precision of the list that ends there."""
    order = np.argsort(-similarity_row)
    hits = relevant_row[order]
    precision = np.cumsum(hits) / np.arange(1, hits.size + 1)
    return precision[hits].mean()


def test_mean_average_precision_against_direct_formula():
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 3, 30)
    centres = rng.standard_normal((3, 5))
    queries = centres[labels] + rng.standard_normal((30, 5))
    item_labels = rng.permutation(np.repeat([0, 1, 2], 7))
    items = centres[item_labels] + rng.standard_normal((21, 5))
    similarity = _cosine(queries, items)
    relevant = labels[:, None] == item_labels[None, :]
    expected = np.mean(
        [_average_precision(s, r) for s, r in zip(similarity, relevant, strict=True)]
    )
    score = mean_average_precision_score(queries, items, labels, item_labels)
    assert score == pytest.approx(expected, rel=1e-12)
    # Paired rows share the labels: item_labels may be left out.
    paired = centres[labels] + rng.standard_normal((30, 5))
    assert mean_average_precision_score(queries, paired, labels) == (
        mean_average_precision_score(queries, paired, labels, labels)
    )
    # Labels of any type.
    names = np.array(["zero", "one", "two"])
    assert mean_average_precision_score(
        queries, items, names[labels], names[item_labels].tolist()
    ) == pytest.approx(expected, rel=1e-12)


def test_mean_average_precision_extremes():
    labels = np.repeat([0, 1, 2], 4)
    # Each class its own direction: every query ranks its class first.
    separated = np.eye(3)[labels] + 0.01 * np.arange(12)[:, None]
    assert mean_average_precision_score(separated, separated, labels) == 1.0
    # One class only: every item relevant, precision 1 throughout.
    one = np.random.default_rng(0).standard_normal((6, 2))
    assert mean_average_precision_score(one, one, np.zeros(6)) == 1.0


def test_shared_latent_retrieves_and_independent_views_do_not():
    X, _ = make_multiview(
        n_samples=400, view_dims=(8, 8), n_latent=4, noise=0.3, random_state=0
    )
    train, test = X[:300], X[300:]
    a, b = MCCA(n_components=4, blocks=[8, 8]).fit(train).transform_views(test)
    chance = 1 / 100
    assert recall_at_k_score(a, b) > 20 * chance
    assert recall_at_k_score(b, a) > 20 * chance
    rng = np.random.default_rng(0)
    noise_a, noise_b = rng.standard_normal((2, 100, 4))
    assert recall_at_k_score(noise_a, noise_b, k=10) < 0.25  # chance 0.1
    assert mean_reciprocal_rank_score(noise_a, noise_b) < 0.15  # chance ~0.05


@pytest.mark.parametrize(
    "call",
    [
        lambda q, i: retrieve(q, i),
        lambda q, i: recall_at_k_score(q, i),
        lambda q, i: mean_reciprocal_rank_score(q, i),
        lambda q, i: mean_average_precision_score(q, i, np.zeros(len(q))),
    ],
    ids=["retrieve", "recall", "mrr", "map"],
)
def test_retrieval_input_errors(call):
    queries, items = np.ones((4, 3)), np.ones((4, 3))
    with pytest.raises(
        ValueError, match=r"queries have 3 columns but items have 2: .*one width"
    ):
        call(queries, items[:, :2])
    missing = items.copy()
    missing[2:] = np.nan
    with pytest.raises(
        ValueError,
        match=r"items has NaN or infinite values in 2 row\(s\), the "
        r"first at row 2: a row whose modality is missing",
    ):
        call(queries, missing)
    with pytest.raises(ValueError, match="Expected 2D array"):
        call(np.ones(3), items)


def test_retrieval_parameter_errors():
    queries, items = _pair(n=5)
    with pytest.raises(ValueError, match=r"k=0 is out of range: use 1 <= k <= 5"):
        retrieve(queries, items, k=0)
    with pytest.raises(ValueError, match=r"k=6 is out of range: use 1 <= k <= 5"):
        recall_at_k_score(queries, items, k=6)
    with pytest.raises(TypeError, match=r"k must be an integer; got 1.5 \(float\)"):
        recall_at_k_score(queries, items, k=1.5)
    with pytest.raises(TypeError, match=r"k must be an integer; got True"):
        retrieve(queries, items, k=True)
    assert retrieve(queries, items, k=np.int64(2))[0].shape == (5, 2)
    with pytest.raises(
        ValueError, match=r"metric='manhattan' is not supported; use one of 'cosine'"
    ):
        retrieve(queries, items, metric="manhattan")
    with pytest.raises(
        ValueError,
        match=r"pairs query row i with item row i .* got 5 queries and 4 items",
    ):
        recall_at_k_score(queries, items[:4])
    with pytest.raises(ValueError, match=r"got 5 queries and 4 items"):
        mean_reciprocal_rank_score(queries, items[:4])


def test_mean_average_precision_label_errors():
    queries, items = _pair(n=5)
    with pytest.raises(
        ValueError, match=r"labels has 4 entries but queries have 5 rows"
    ):
        mean_average_precision_score(queries, items, [0, 0, 1, 1])
    with pytest.raises(
        ValueError, match=r"item_labels has 5 entries but items have 4 rows"
    ):
        mean_average_precision_score(queries, items[:4], [0] * 5, [0] * 5)
    with pytest.raises(
        ValueError,
        match=r"item_labels is needed .* got 5 queries and 4 items; pass one label",
    ):
        mean_average_precision_score(queries, items[:4], [0] * 5)
    with pytest.raises(
        ValueError,
        match=r"1 query\(ies\) have a class with no item, e.g. query 4 of class 2",
    ):
        mean_average_precision_score(
            queries, items[:4], [0, 0, 1, 1, 2], item_labels=[0, 1, 0, 1]
        )


# ------------------------------------------------------------------ coherence
class _CopyGenerator(BaseEstimator):
    """Generates every block as a copy of the first given one (known answers)."""

    def __init__(self):
        self.blocks_ = [np.array([0, 1]), np.array([2, 3])]
        self.modality_names_ = ["a", "b"]

    def fit(self, X, y=None):
        return self

    def reconstruct(self, X, given=None):
        X = np.asarray(X, dtype=float)
        source = self.blocks_[self.modality_names_.index(given[0])]
        return np.hstack([X[:, source], X[:, source]])


class _SignOfFirstColumn:
    def predict(self, X):
        return (np.asarray(X)[:, 0] > 0).astype(int)


def test_coherence_known_values():
    X = np.array([[1.0, 0, -1, 0], [-1, 0, -1, 0], [2, 0, 3, 0], [-2, 0, 1, 0]])
    y = np.array([1, 1, 1, 0])
    reader = _SignOfFirstColumn()
    # b generated from a copies a: labels 1, 0, 1, 0 against 1, 1, 1, 0
    assert coherence(_CopyGenerator(), X, y, {"b": reader}, given=["a"]) == {"b": 0.75}
    # from b (the classifier by position): 0, 0, 1, 1 against 1, 1, 1, 0
    scores = coherence(_CopyGenerator(), X, y, {0: reader, "b": reader}, ["b"])
    assert scores == {"a": 0.25, "b": 0.25}


def test_coherence_of_a_vae_is_what_the_benchmark_computes():
    X, latent = make_multiview(150, [4, 3], n_latent=1, noise=0.1, random_state=0)
    y = (latent[:, 0] > 0).astype(int)
    vae = MultimodalVAE(
        blocks={"a": 4, "b": 3},
        latent_dim=1,
        hidden=(32,),
        max_epochs=60,
        batch_size=32,
        lr=3e-3,
        random_state=0,
    ).fit(X)
    reader = LogisticRegression().fit(X[:, 4:], y)
    by_hand = np.mean(reader.predict(vae.reconstruct(X, given=["a"])[:, 4:]) == y)
    scores = coherence(vae, X, y, {"b": reader}, given=["a"])
    assert scores == {"b": pytest.approx(by_hand)}
    assert scores["b"] > 0.9  # the shared latent carries the label across


def test_coherence_errors():
    X, y = np.ones((3, 4)), np.array([0, 1, 0])
    reader = _SignOfFirstColumn()
    with pytest.raises(TypeError, match="reconstruct.*got LogisticRegression"):
        coherence(LogisticRegression(), X, y, {"b": reader}, ["a"])
    with pytest.raises(NotFittedError):
        coherence(MultimodalVAE(), X, y, {"b": reader}, ["a"])
    with pytest.raises(TypeError, match=r"classifiers must be a dict .* got list"):
        coherence(_CopyGenerator(), X, y, [reader], ["a"])
    with pytest.raises(ValueError, match="classifiers is empty"):
        coherence(_CopyGenerator(), X, y, {}, ["a"])
    with pytest.raises(ValueError, match=r"classifiers' key 'c' is not one of"):
        coherence(_CopyGenerator(), X, y, {"c": reader}, ["a"])
    with pytest.raises(ValueError, match="y has 2 labels but X has 3 rows"):
        coherence(_CopyGenerator(), X, y[:2], {"b": reader}, ["a"])
    # One target named twice kept the last classifier; labels of another type
    # than the classifier's classes scored 0 silently.
    with pytest.raises(ValueError, match="classifiers names a modality twice"):
        coherence(_CopyGenerator(), X, y, {"b": reader, 1: reader}, ["a"])
    fitted = LogisticRegression().fit(X[:, 2:] + np.arange(3)[:, None], y)
    with pytest.raises(ValueError, match=r"none of y's labels \(e.g. 'no'\) is a"):
        coherence(
            _CopyGenerator(), X, np.array(["no", "yes", "no"]), {"b": fitted}, "a"
        )


def test_mean_average_precision_needs_labels():
    queries, items = _pair(n=5)
    with pytest.raises(ValueError, match="labels is None: class-level retrieval"):
        mean_average_precision_score(queries, items, None)
