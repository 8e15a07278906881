import pickle

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, cross_val_score

from mmfuse.datasets import make_multiview
from mmfuse.deep import ContrastiveAligner
from mmfuse.deep._aligner_module import (
    AlignerModule,
    AlignmentLoss,
    canonical_correlation_sum,
    canonical_directions,
    info_nce,
    reverse_gradient,
    supervised_contrastive,
)
from mmfuse.metrics import mean_average_precision_score, mean_reciprocal_rank_score

# Toy data: little dropout (the default suits a few thousand rows).
TINY = {"embedding_dim": 4, "hidden": (16,), "max_epochs": 3, "random_state": 0}
TOY = {"embedding_dim": 4, "dropout": 0.1}


def recall_at_1(Za, Zb):
    """Share of rows of ``Za`` whose most cosine-similar row of ``Zb`` is their own."""
    Za = Za / np.linalg.norm(Za, axis=1, keepdims=True)
    Zb = Zb / np.linalg.norm(Zb, axis=1, keepdims=True)
    return float(((Za @ Zb.T).argmax(1) == np.arange(len(Za))).mean())


# ------------------------------------------------------------ objectives
def _log_softmax_rows(S):
    return S - np.log(np.exp(S).sum(1, keepdims=True))


def test_info_nce_matches_the_formula():
    gen = torch.Generator().manual_seed(0)
    za = torch.nn.functional.normalize(torch.randn(5, 3, generator=gen), dim=1)
    zb = torch.nn.functional.normalize(torch.randn(5, 3, generator=gen), dim=1)
    scale = torch.tensor(7.0)
    S = 7.0 * za.numpy() @ zb.numpy().T
    # Row i picks itself among the other modality's rows, both directions.
    expected = -(np.diag(_log_softmax_rows(S)) + np.diag(_log_softmax_rows(S.T))) / 2
    np.testing.assert_allclose(info_nce(za, zb, scale).numpy(), expected, rtol=1e-5)

    # With labels, mixed with SupCon over the 10 embeddings together: each
    # one's mean log-probability, among the 9 others, of those of its label
    # (its own row's in the other modality and same-label rows of both).
    labels = torch.tensor([0, 1, 0, 2, 1])
    Z = np.vstack([za.numpy(), zb.numpy()])
    L = np.r_[labels.numpy(), labels.numpy()]
    supervised = np.empty(10)
    for i in range(10):
        others = np.arange(10) != i
        log_p = _log_softmax_rows(7.0 * Z[i : i + 1] @ Z[others].T)[0]
        supervised[i] = -log_p[L[others] == L[i]].mean()
    supervised = (supervised[:5] + supervised[5:]) / 2
    np.testing.assert_allclose(
        supervised_contrastive(za, zb, scale, labels).numpy(), supervised, rtol=1e-5
    )
    for weight in (0.0, 0.5, 0.8, 1.0):
        np.testing.assert_allclose(
            info_nce(za, zb, scale, labels, supervised_weight=weight).numpy(),
            (1 - weight) * expected + weight * supervised,
            rtol=1e-5,
        )
    # The default: 0.65 of the supervised term.
    np.testing.assert_allclose(
        info_nce(za, zb, scale, labels).numpy(),
        0.35 * expected + 0.65 * supervised,
        rtol=1e-5,
    )


def test_supervised_positives_include_same_label_rows():
    # Row 0's "b" embedding sits on row 1's "a" (same label) or on row 2's
    # (another label): the same loss without labels, a lower one with them
    # when it sits on its own label.
    za = torch.eye(3)
    on_same = torch.stack([za[1], za[1], za[2]])
    on_other = torch.stack([za[2], za[1], za[2]])
    scale = torch.tensor(10.0)
    unsupervised = [info_nce(za, zb, scale).sum() for zb in (on_same, on_other)]
    torch.testing.assert_close(*unsupervised)
    labels = torch.tensor([0, 0, 2])
    supervised = [info_nce(za, zb, scale, labels).sum() for zb in (on_same, on_other)]
    assert supervised[0] < supervised[1] - 1
    # Same label, same direction: the gradient pulls same-label rows together.
    zb = on_other.clone().requires_grad_(True)
    info_nce(za, zb, scale, labels).sum().backward()
    assert zb.grad[1, 0] < 0  # row 1's "b" moves towards row 0's "a"


def test_supervised_positives_include_same_modality_rows():
    # Modality "b" puts every row on e3, so only modality "a"'s own rows
    # give row 1's "a" embedding (e1) a pull or push along e0 (row 0's "a"):
    # towards it when the two rows share a label, away from it otherwise.
    za = torch.eye(4)[:3].requires_grad_(True)
    zb = torch.eye(4)[[3, 3, 3]]
    scale = torch.tensor(5.0)
    supervised_contrastive(za, zb, scale, torch.tensor([0, 0, 1])).sum().backward()
    assert za.grad[1, 0] < -0.01  # descent moves it towards row 0's "a"
    za.grad = None
    supervised_contrastive(za, zb, scale, torch.tensor([0, 1, 2])).sum().backward()
    assert za.grad[1, 0] > 0.01


def _canonical_correlations(ha, hb):
    qa = np.linalg.qr(ha - ha.mean(0))[0]
    qb = np.linalg.qr(hb - hb.mean(0))[0]
    return np.linalg.svd(qa.T @ qb, compute_uv=False)


def test_canonical_correlation_sum_matches_cca():
    rng = np.random.default_rng(0)
    shared = rng.standard_normal((200, 2))
    ha = shared @ rng.standard_normal((2, 3)) + 0.5 * rng.standard_normal((200, 3))
    hb = shared @ rng.standard_normal((2, 3)) + 0.5 * rng.standard_normal((200, 3))
    weight = torch.full((200,), 1 / 200, dtype=torch.float64)
    total = canonical_correlation_sum(
        torch.as_tensor(ha), torch.as_tensor(hb), weight, regularization=0.0
    )
    assert total.item() == pytest.approx(_canonical_correlations(ha, hb).sum(), 1e-4)
    # Integer weights count as repeated rows.
    counts = rng.integers(1, 4, 200)
    weight = torch.as_tensor(counts / counts.sum())
    total = canonical_correlation_sum(
        torch.as_tensor(ha), torch.as_tensor(hb), weight, regularization=0.0
    )
    repeated = _canonical_correlations(
        np.repeat(ha, counts, 0), np.repeat(hb, counts, 0)
    )
    assert total.item() == pytest.approx(repeated.sum(), 1e-4)


def test_gradient_reversal_flips_the_sign():
    x = torch.randn(4, 3, requires_grad=True)
    upstream = torch.randn(4, 3)
    (reverse_gradient(x, 0.5) * upstream).sum().backward()
    torch.testing.assert_close(x.grad, -0.5 * upstream)


def test_discriminator_gradient_reaches_the_towers_reversed():
    torch.manual_seed(0)
    module = AlignerModule(
        [range(3), range(3, 5)], 4, (8,), 0.0, [None, None], True, 0.1, 0.5
    )
    X, mask = torch.randn(6, 5), torch.ones(6, 2, dtype=torch.bool)
    modality = torch.arange(2)[:, None].expand(2, 6)
    towers = list(module.towers.parameters())

    def grads(logits, parameters):
        loss = torch.nn.functional.cross_entropy(
            logits.flatten(0, 1), modality.flatten()
        )
        return torch.autograd.grad(loss, parameters, retain_graph=True)

    plain = grads(module.discriminator(module.embeddings(X)), towers)  # no reversal
    _, _, _, logits = module(X, mask)
    reversed_ = grads(logits, towers)
    for g_plain, g_reversed in zip(plain, reversed_, strict=True):
        torch.testing.assert_close(g_reversed, -0.5 * g_plain)
    # The discriminator's own gradient is not reversed: it learns to tell
    # the modalities apart.
    disc = list(module.discriminator.parameters())
    with_reversal, without = (
        grads(logits, disc),
        grads(module.discriminator(module.embeddings(X)), disc),
    )
    for g_reversal, g_plain in zip(with_reversal, without, strict=True):
        torch.testing.assert_close(g_reversal, g_plain)


def test_loss_uses_only_rows_with_both_modalities():
    gen = torch.Generator().manual_seed(0)
    Z = torch.nn.functional.normalize(torch.randn(2, 6, 3, generator=gen), dim=-1)
    mask = torch.ones(6, 2, dtype=torch.bool)
    mask[0, 1] = mask[3, 0] = False
    weight = torch.ones(6)
    weight[5] = 0.0  # a row of weight 0 takes no part
    loss = AlignmentLoss("infonce")((Z, mask, torch.tensor(5.0), None), None, weight)
    rows = torch.tensor([1, 2, 4])
    expected = info_nce(Z[0][rows], Z[1][rows], torch.tensor(5.0)).mean()
    torch.testing.assert_close(loss, expected)


@pytest.mark.parametrize("loss", ["infonce", "dcca"])
@pytest.mark.parametrize("supervised", [False, True])
@pytest.mark.parametrize("adversarial", [False, True])
def test_complete_batches_give_the_loss_of_the_masked_path(
    loss, supervised, adversarial
):
    # A batch with every modality skips the boolean indexing; adding a row
    # that takes no part (weight 0) sends the same rows down the indexed
    # path: the two losses and their gradients must be the same.
    gen = torch.Generator().manual_seed(0)
    Z = torch.nn.functional.normalize(torch.randn(3, 9, 4, generator=gen), dim=-1)
    logits = torch.randn(3, 9, 3, generator=gen) if adversarial else None
    labels = torch.arange(9) % 3 if supervised else None
    weight = torch.rand(9, generator=gen) + 0.5
    weight[8] = 0.0
    mask = torch.ones(9, 3, dtype=torch.bool)
    results = []
    for rows in (slice(None), slice(0, 8)):  # indexed path, complete path
        z = Z[:, rows].clone().requires_grad_(True)
        logit = None if logits is None else logits[:, rows].clone()
        value = AlignmentLoss(loss)(
            (z, mask[rows], torch.tensor(5.0), logit),
            None if labels is None else labels[rows],
            weight[rows],
        )
        value.backward()
        results.append((value, z.grad[:, :8]))
    torch.testing.assert_close(results[1][0], results[0][0])
    torch.testing.assert_close(results[1][1], results[0][1])


# ------------------------------------------------------------ estimator
@pytest.fixture(scope="module")
def shared_latent():
    X, _ = make_multiview(400, [6, 5], n_latent=4, noise=0.1, random_state=0)
    return X[:300], X[300:]


@pytest.mark.parametrize("loss", ["infonce", "dcca"])
def test_aligns_modalities_that_share_a_latent(shared_latent, loss):
    train, test = shared_latent
    aligner = ContrastiveAligner(
        blocks=[6, 5], loss=loss, max_epochs=30, random_state=0, **TOY
    ).fit(train)
    Za, Zb = aligner.transform_views(test)
    assert recall_at_1(Za, Zb) > 0.3  # chance: 0.01


def test_does_not_align_independent_modalities(shared_latent):
    train, test = shared_latent
    rng = np.random.default_rng(0)
    # The second modality of other rows: no shared item any more.
    shuffle = lambda X: np.c_[X[:, :6], X[rng.permutation(len(X)), 6:]]  # noqa: E731
    aligner = ContrastiveAligner(
        blocks=[6, 5], max_epochs=30, random_state=0, **TOY
    ).fit(shuffle(train))
    Za, Zb = aligner.transform_views(shuffle(test))
    assert recall_at_1(Za, Zb) < 0.05


def test_labels_make_same_class_rows_neighbours():
    X, latent = make_multiview(400, [6, 5], n_latent=3, noise=0.3, random_state=1)
    y = (latent[:, 0] > 0) * 2 + (latent[:, 1] > 0)  # four classes
    kwargs = {"blocks": [6, 5], "max_epochs": 40, **TOY}

    def class_map(labels, **params):
        aligner = ContrastiveAligner(**kwargs, **params, random_state=0)
        aligner.fit(X[:300], labels)
        return mean_average_precision_score(*aligner.transform_views(X[300:]), y[300:])

    unsupervised = class_map(None)
    assert class_map(y[:300]) > unsupervised + 0.03
    # A larger share of the supervised term groups the classes more.
    more, less = (class_map(y[:300], supervised_weight=w) for w in (0.9, 0.3))
    assert more > less + 0.01


def test_supervised_weight_zero_ignores_the_labels(shared_latent):
    train, test = shared_latent
    y = (train[:, 0] > 0).astype(int)
    kwargs = {"blocks": [6, 5], **TINY, "max_epochs": 5}
    plain = ContrastiveAligner(**kwargs).fit(train)
    ignored = ContrastiveAligner(**kwargs, supervised_weight=0.0).fit(train, y)
    used = ContrastiveAligner(**kwargs, supervised_weight=0.5).fit(train, y)
    np.testing.assert_allclose(ignored.transform(test), plain.transform(test))
    assert not np.allclose(used.transform(test), plain.transform(test))


def test_supervised_weight_out_of_range_is_an_error(shared_latent):
    train, _ = shared_latent
    aligner = ContrastiveAligner(blocks=[6, 5], supervised_weight=1.5, **TINY)
    with pytest.raises(ValueError, match="'supervised_weight' parameter .* 1.5"):
        aligner.fit(train)


def test_adversarial_hides_the_modality(shared_latent):
    train, test = shared_latent

    def probe(adversarial):
        aligner = ContrastiveAligner(
            blocks=[6, 5], max_epochs=5, adversarial=adversarial, random_state=0, **TOY
        ).fit(train)
        Za, Zb = aligner.transform_views(test)
        Z, modality = np.r_[Za, Zb], np.repeat([0, 1], len(test))
        return cross_val_score(LogisticRegression(), Z, modality, cv=5).mean()

    # Five epochs leave a modality gap that the discriminator closes.
    assert probe(1.0) < probe(0.0) - 0.03


def test_huge_adversarial_weight_that_diverges_names_it(shared_latent):
    train, _ = shared_latent
    aligner = ContrastiveAligner(blocks=[6, 5], adversarial=1e300, **TINY)
    with pytest.raises(
        ValueError, match=r"Training diverged: .*\(adversarial=1e\+300\)"
    ):
        aligner.fit(train)


def test_deep_cca_that_diverges_says_so(shared_latent):
    train, _ = shared_latent
    aligner = ContrastiveAligner(blocks=[6, 5], loss="dcca", lr=1e300, **TINY)
    with pytest.raises(ValueError, match=r"Training diverged: .*\(lr=1e\+300\)"):
        aligner.fit(train)


def test_discriminator_is_linear_unless_asked(shared_latent):
    # Linear, as the modality probe it must defeat (benchmarks/README.md:
    # an MLP discriminator let a linear probe find the modality on mfeat).
    train, _ = shared_latent
    aligner = ContrastiveAligner(blocks=[6, 5], adversarial=1.0, **TINY).fit(train)
    layers = list(aligner.module_.discriminator.children())
    assert len(layers) == 1 and isinstance(layers[0], torch.nn.Linear)
    aligner.set_params(module__discriminator_hidden=(8,)).fit(train)
    assert len(aligner.module_.discriminator) == 4  # Linear, ReLU, Dropout, Linear


def test_transform_with_missing_modalities():
    X, _ = make_multiview(120, [5, 4, 3], n_latent=2, random_state=0)
    X[:10, :5] = np.nan
    X[10:20, 9:] = np.nan
    X[20, :5] = X[20, 9:] = np.nan  # only the second modality
    aligner = ContrastiveAligner(blocks=[5, 4, 3], **TINY).fit(X)
    Z = aligner.transform(X)
    assert Z.shape == (120, 12)
    missing = np.isnan(Z).reshape(120, 3, 4)
    assert missing[:10, 0].all() and missing[10:20, 2].all()
    assert missing[20, [0, 2]].all() and not missing[20, 1].any()
    assert not missing[21:].any() and not missing[:10, 1:].any()
    mean = aligner.set_params(output="mean").transform(X)
    assert mean.shape == (120, 4) and np.isfinite(mean).all()
    np.testing.assert_allclose(mean[20], Z[20, 4:8])
    np.testing.assert_allclose(mean[:10], np.nanmean(Z[:10].reshape(10, 3, 4), 1))
    with pytest.raises(ValueError, match="row"):
        X[0] = np.nan
        aligner.transform(X)


def test_embeddings_have_unit_length_for_infonce():
    X, _ = make_multiview(60, [5, 4], n_latent=2, random_state=0)
    Za, Zb = ContrastiveAligner(blocks=[5, 4], **TINY).fit(X).transform_views(X)
    np.testing.assert_allclose(np.linalg.norm(Za, axis=1), 1, rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(Zb, axis=1), 1, rtol=1e-5)


def test_feature_names_and_pandas_output():
    X, _ = make_multiview(60, [5, 4], n_latent=2, random_state=0)
    columns = [f"img__c{j}" for j in range(5)] + [f"txt__c{j}" for j in range(4)]
    df = pd.DataFrame(X, columns=columns)
    aligner = ContrastiveAligner(**TINY).set_output(transform="pandas").fit(df)
    out = aligner.transform(df)
    assert list(out.columns[:5]) == [
        "img__emb0",
        "img__emb1",
        "img__emb2",
        "img__emb3",
        "txt__emb0",
    ]
    aligner.set_params(output="mean")
    assert list(aligner.get_feature_names_out()) == ["emb0", "emb1", "emb2", "emb3"]


def test_same_seed_same_model_clone_and_pickle():
    X, _ = make_multiview(60, [5, 4], n_latent=2, random_state=0)
    first = ContrastiveAligner(blocks=[5, 4], adversarial=0.5, **TINY).fit(X)
    again = clone(first).fit(X)
    np.testing.assert_array_equal(first.transform(X), again.transform(X))
    restored = pickle.loads(pickle.dumps(first))
    np.testing.assert_array_equal(first.transform(X), restored.transform(X))


def test_continuous_y_is_an_error():
    X, latent = make_multiview(60, [5, 4], n_latent=2, random_state=0)
    with pytest.raises(ValueError, match="y is a 'continuous' target.*class labels"):
        ContrastiveAligner(blocks=[5, 4], **TINY).fit(X, latent[:, 0])


def test_score_is_held_out_retrieval_for_grid_search(shared_latent):
    train, test = shared_latent
    aligner = ContrastiveAligner(blocks=[6, 5], max_epochs=10, **TOY)
    aligner.set_params(random_state=0).fit(train)
    Za, Zb = aligner.transform_views(test)
    expected = (
        mean_reciprocal_rank_score(Za, Zb) + mean_reciprocal_rank_score(Zb, Za)
    ) / 2
    assert aligner.score(test) == pytest.approx(expected)
    search = GridSearchCV(aligner, {"max_epochs": [1, 10]}, cv=2).fit(train)
    assert search.best_params_ == {"max_epochs": 10}


def test_dcca_with_a_missing_modality_and_weights():
    X, _ = make_multiview(200, [5, 4, 3], n_latent=2, noise=0.1, random_state=0)
    X[:20, :5] = np.nan
    weight = np.ones(200)
    weight[20:40] = 0
    aligner = ContrastiveAligner(blocks=[5, 4, 3], loss="dcca", **TINY)
    aligner.fit(X, sample_weight=weight)
    views = aligner.transform_views(X)
    assert np.isnan(views[0][:20]).all() and np.isfinite(views[0][20:]).all()
    assert aligner.canonical_directions_.shape == (3, 4, 4)
    with pytest.raises(ValueError, match="loss='dcca'.*1 sample"):
        aligner.fit(X[19:41], sample_weight=weight[19:41])


def test_infonce_without_a_pair_is_an_error():
    # No row had two modalities: the loss was 0 and the towers stayed as
    # initialized, without a word.
    X, y = make_multiview(120, [6, 4], n_latent=2, random_state=0)
    X[:60, 6:] = np.nan
    X[60:, :6] = np.nan
    aligner = ContrastiveAligner(blocks=[6, 4], **TINY)
    with pytest.raises(ValueError, match="no training row has two modalities"):
        aligner.fit(X)
    aligner.fit(X, (y[:, 0] > 0).astype(int))  # same-label rows are positives


def test_y_of_the_wrong_length_is_an_error():
    X, _ = make_multiview(60, [5, 4], n_latent=2, random_state=0)
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        ContrastiveAligner(blocks=[5, 4], **TINY).fit(X, np.zeros(59, dtype=int))


def test_canonical_directions_give_the_canonical_variates():
    rng = np.random.default_rng(0)
    shared = rng.standard_normal((200, 2))
    ha = shared @ rng.standard_normal((2, 3)) + 0.5 * rng.standard_normal((200, 3))
    hb = shared @ rng.standard_normal((2, 3)) + 0.5 * rng.standard_normal((200, 3))
    weight = torch.full((200,), 1 / 200, dtype=torch.float64)
    means, directions = canonical_directions(
        torch.as_tensor(np.stack([ha, hb])), weight, regularization=0.0
    )
    va = (ha - means[0].numpy()) @ directions[0].numpy()
    vb = (hb - means[1].numpy()) @ directions[1].numpy()
    np.testing.assert_allclose(va.std(0), 1, rtol=1e-6)  # unit variance
    correlations = [np.corrcoef(va[:, j], vb[:, j])[0, 1] for j in range(3)]
    np.testing.assert_allclose(correlations, _canonical_correlations(ha, hb), rtol=1e-5)
    np.testing.assert_allclose(np.corrcoef(va.T), np.eye(3), atol=1e-6)


def test_one_modality_has_nothing_to_align():
    X = np.random.default_rng(0).standard_normal((20, 4))
    with pytest.raises(ValueError, match="needs at least 2 modality blocks"):
        ContrastiveAligner(blocks=1, max_epochs=1).fit(X)
