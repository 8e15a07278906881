"""Tests of mmfuse.metrics: known answers, invariances, errors."""

import re

import numpy as np
import pytest
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression

from mmfuse.datasets import make_multiview
from mmfuse.deep import MultimodalVAE
from mmfuse.metrics import (
    canonical_correlation,
    canonical_correlation_from_covariance,
    canonical_correlation_score,
    coherence,
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


def test_score_errors_as_canonical_correlation():
    a = np.ones((5, 2))
    with pytest.raises(ValueError, match="at least two views; got 1"):
        canonical_correlation_score([a])
    with pytest.raises(ValueError, match="at least 2 rows; got 1"):
        canonical_correlation_score([a[:1], a[:1]])


def test_one_dimensional_variates_are_refused():
    with pytest.raises(ValueError, match=r"2-D of one shape.*got shapes \[\(5,\)"):
        canonical_correlation([np.ones(5), np.ones(5)])


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
