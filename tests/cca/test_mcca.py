import warnings

import numpy as np
import pytest
import scipy.linalg as sla
import scipy.sparse as sp
from sklearn.cross_decomposition import CCA
from sklearn.model_selection import GridSearchCV, KFold

from mmfuse.cca import GCCA, MCCA
from mmfuse.datasets import make_multiview

ESTIMATORS = [MCCA, GCCA]


def _data(n=300, dims=(6, 8, 5), noise=1.0, seed=0):
    X, _ = make_multiview(
        n, view_dims=list(dims), n_latent=3, noise=noise, random_state=seed
    )
    return X, list(dims)


def _textbook_cca(X, Y):
    """Canonical correlations from the SVD of C_xx^-1/2 C_xy C_yy^-1/2."""
    X = X - X.mean(axis=0)
    Y = Y - Y.mean(axis=0)
    inv_sqrt = [np.linalg.inv(sla.sqrtm(Z.T @ Z)) for Z in (X, Y)]
    return np.linalg.svd(inv_sqrt[0] @ X.T @ Y @ inv_sqrt[1], compute_uv=False)


@pytest.mark.parametrize("Estimator", ESTIMATORS)
@pytest.mark.parametrize("solver", ["dense", "iterative"])
def test_two_views_reproduce_textbook_cca(Estimator, solver):
    X, dims = _data(dims=(6, 8))
    est = Estimator(n_components=4, blocks=dims, solver=solver, random_state=0).fit(X)
    expected = _textbook_cca(X[:, :6], X[:, 6:])[:4]
    np.testing.assert_allclose(est.canonical_correlations_, expected, rtol=1e-10)
    if Estimator is MCCA:
        np.testing.assert_allclose(est.eigenvalues_, 1 + expected, rtol=1e-10)
    else:
        # MAXVAR with two views: λ = 1 + ρ as well (r = 0).
        np.testing.assert_allclose(est.eigenvalues_, 1 + expected, rtol=1e-10)


def test_two_views_match_sklearn_cca_at_convergence():
    X, dims = _data(dims=(6, 8))
    mcca = MCCA(n_components=3, blocks=dims).fit(X)
    cca = CCA(n_components=3, max_iter=10_000, tol=1e-14).fit(X[:, :6], X[:, 6:])
    u, v = cca.transform(X[:, :6], X[:, 6:])
    sk = [np.corrcoef(u[:, j], v[:, j])[0, 1] for j in range(3)]
    np.testing.assert_allclose(mcca.canonical_correlations_, sk, rtol=1e-8)
    ours = mcca.transform_views(X)
    for j in range(3):
        # Same variates up to sign and scale.
        assert abs(np.corrcoef(ours[0][:, j], u[:, j])[0, 1]) > 1 - 1e-8


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_variates_unit_variance_and_training_correlations(Estimator):
    X, dims = _data()
    est = Estimator(n_components=3, blocks=dims, regularization=0.2).fit(X)
    views = est.transform_views(X)
    for Z in views:
        np.testing.assert_allclose(Z.std(axis=0, ddof=1), 1.0, rtol=1e-10)
        np.testing.assert_allclose(Z.mean(axis=0), 0.0, atol=1e-10)
    pairs = [(0, 1), (0, 2), (1, 2)]
    manual = [
        np.mean([np.corrcoef(views[a][:, j], views[b][:, j])[0, 1] for a, b in pairs])
        for j in range(3)
    ]
    np.testing.assert_allclose(est.canonical_correlations_, manual, rtol=1e-10)
    # The score: each correlation minus two standard errors of the mean of
    # 3 pairwise correlations of independent variates on 300 rows.
    threshold = 2 / np.sqrt(3 * 299)
    assert est.score(X) == pytest.approx(np.sum(manual) - 3 * threshold, rel=1e-10)
    assert np.all(np.diff(est.eigenvalues_) <= 0)


def test_solvers_and_refits_give_identical_weights():
    X, dims = _data()
    fits = [
        MCCA(3, blocks=dims, solver=solver, random_state=seed).fit(X)
        for solver, seed in (
            ("dense", None),
            ("dense", None),
            ("iterative", 0),
            ("iterative", 5),
        )
    ]
    for other in fits[1:]:
        for W, W_ref in zip(other.weights_, fits[0].weights_, strict=True):
            np.testing.assert_allclose(W, W_ref, atol=1e-9)


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_partial_fit_equals_fit(Estimator):
    X, dims = _data(n=400)
    X = X + 50.0  # far from the origin: a naive XᵀX − nμμᵀ would lose digits
    full = Estimator(3, blocks=dims, regularization=[0.0, 0.1, 0.3]).fit(X)
    streamed = Estimator(3, blocks=dims, regularization=[0.0, 0.1, 0.3])
    # The first chunk has fewer rows than a view has columns: fine, the
    # solve waits until a fitted attribute is needed.
    for chunk in np.array_split(X, [4, 50, 51 + 3, 200]):
        streamed.partial_fit(chunk)
    np.testing.assert_allclose(streamed.eigenvalues_, full.eigenvalues_, rtol=1e-10)
    for a, b in zip(streamed.weights_, full.weights_, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10)
    for a, b in zip(streamed.means_, full.means_, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    np.testing.assert_allclose(streamed.transform(X), full.transform(X), atol=1e-10)


def test_partial_fit_rejects_changed_width():
    X, dims = _data()
    est = MCCA(2, blocks=dims).partial_fit(X)
    with pytest.raises(ValueError, match="X has 18 features, but MCCA is expecting 19"):
        est.partial_fit(X[:, :-1])


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_partial_fit_rejects_changed_blocks(Estimator):
    # The statistics are those of the first call's blocks: new blocks were
    # ignored, while get_params reported them.
    X, dims = _data()
    est = Estimator(2, blocks=dims).partial_fit(X[:50])
    est.set_params(blocks=tuple(dims)).partial_fit(X[50:])  # the same blocks
    np.testing.assert_allclose(
        est.eigenvalues_, Estimator(2, blocks=dims).fit(X).eigenvalues_, rtol=1e-10
    )
    moved = [dims[0] + 1, dims[1] - 1, *dims[2:]]
    with pytest.raises(
        ValueError, match=r"blocks changed between calls to partial_fit.*'block0': "
    ):
        est.set_params(blocks=moved).partial_fit(X)
    est.set_params(blocks=moved).fit(X)  # fit starts again with them
    assert [len(b) for b in est.blocks_] == moved


@pytest.mark.parametrize("Estimator", ESTIMATORS)
@pytest.mark.parametrize("fmt", ["csr", "csc"])
def test_sparse_equals_dense(Estimator, fmt):
    rng = np.random.default_rng(0)
    X, dims = _data(n=200)
    X[rng.random(X.shape) < 0.6] = 0.0
    X[:, :6] += 3.0  # a dense, shifted view: centring must be exact
    dense = Estimator(3, blocks=dims, regularization=0.1).fit(X)
    sparse = Estimator(3, blocks=dims, regularization=0.1).fit(
        sp.csr_array(X).asformat(fmt)
    )
    np.testing.assert_allclose(sparse.eigenvalues_, dense.eigenvalues_, rtol=1e-10)
    np.testing.assert_allclose(
        sparse.transform(sp.csr_array(X)), dense.transform(X), atol=1e-9
    )


def test_sparse_fit_does_not_densify(monkeypatch):
    X, dims = _data(n=100)

    toarray = sp.csr_array.toarray

    def refuse_rows(self, *args, **kwargs):
        # Only the 19 x 19 cross-products may become dense, never 100 rows.
        assert self.shape[0] != 100, "the data were densified"
        return toarray(self, *args, **kwargs)

    for cls in (sp.csr_array, sp.csc_array, sp.csr_matrix, sp.csc_matrix):
        monkeypatch.setattr(cls, "toarray", refuse_rows)
        monkeypatch.setattr(cls, "todense", refuse_rows)
    MCCA(2, blocks=dims).fit(sp.csr_array(X)).transform(sp.csr_array(X))


@pytest.mark.parametrize("Estimator", ESTIMATORS)
@pytest.mark.parametrize(
    "dtype, input_dtype, expected",
    [
        (np.float64, np.float32, np.float64),
        (np.float32, np.float64, np.float32),
        (None, np.float32, np.float32),
        (None, np.float64, np.float64),
    ],
)
def test_dtype(Estimator, dtype, input_dtype, expected):
    X, dims = _data()
    est = Estimator(2, blocks=dims, dtype=dtype).fit(X.astype(input_dtype))
    assert all(W.dtype == expected for W in est.weights_)
    assert all(m.dtype == expected for m in est.means_)
    assert est.transform(X.astype(input_dtype)).dtype == expected
    # Rows lacking a modality do not change it (their view's NaN rows were
    # in the input's dtype, the mean's division in float64).
    lacking = X.astype(input_dtype)
    lacking[[0, 5], : dims[0]] = np.nan
    for view in est.transform_views(lacking):
        assert view.dtype == expected
    assert est.set_params(output="mean").transform(lacking).dtype == expected
    reference = Estimator(2, blocks=dims).fit(X)
    np.testing.assert_allclose(
        est.canonical_correlations_, reference.canonical_correlations_, rtol=1e-4
    )


def test_gcca_is_maxvar():
    """GCCA's eigenvalues are those of Σ_v X_v D_v⁻¹ X_vᵀ / (n − 1)."""
    X, dims = _data(n=60)
    r = [0.3, 0.0, 0.6]
    gcca = GCCA(3, blocks=dims, regularization=r).fit(X)
    projections = np.zeros((60, 60))
    start = 0
    for d, r_v in zip(dims, r, strict=True):
        Xv = X[:, start : start + d] - X[:, start : start + d].mean(axis=0)
        C_vv = Xv.T @ Xv / 59
        D_v = (1 - r_v) * C_vv + r_v * np.trace(C_vv) / d * np.eye(d)
        projections += Xv @ np.linalg.solve(D_v, Xv.T) / 59
        start += d
    expected = np.linalg.eigvalsh(projections)[::-1][:3]
    np.testing.assert_allclose(gcca.eigenvalues_, expected, rtol=1e-10)
    # With regularization, MCCA solves another problem.
    mcca = MCCA(3, blocks=dims, regularization=r).fit(X)
    assert not np.allclose(mcca.eigenvalues_, expected)


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_transform_single_row_is_not_recentred(Estimator):
    X, dims = _data()
    est = Estimator(2, blocks=dims, output="mean").fit(X)
    batch = est.transform(X[:10])
    np.testing.assert_allclose(
        np.vstack([est.transform(X[i : i + 1]) for i in range(10)]), batch
    )


def test_output_mean_and_concat():
    X, dims = _data()
    est = MCCA(2, blocks=dims).fit(X)
    views = est.transform_views(X)
    np.testing.assert_allclose(est.transform(X), np.hstack(views))
    est.set_params(output="mean").fit(X)
    np.testing.assert_allclose(est.transform(X), np.mean(views, axis=0))


def test_missing_modality_mean_over_present_views():
    X, dims = _data()
    est = MCCA(2, blocks=dims, output="mean").fit(X)
    full = est.transform_views(X)
    X_missing = X.copy()
    X_missing[0, :6] = np.nan  # row 0 lacks view 0
    X_missing[1, 6:14] = np.nan  # row 1 lacks view 1
    X_missing[1, 14:] = np.nan  # and view 2
    out = est.transform(X_missing)
    np.testing.assert_allclose(out[0], (full[1][0] + full[2][0]) / 2)
    np.testing.assert_allclose(out[1], full[0][1])
    np.testing.assert_allclose(out[2:], np.mean(full, axis=0)[2:])
    views = est.transform_views(X_missing)
    assert np.isnan(views[0][0]).all() and not np.isnan(views[0][1]).any()


def test_missing_modality_errors():
    X, dims = _data()
    X_missing = X.copy()
    X_missing[3, 6:14] = np.nan
    with pytest.raises(ValueError, match=r"1 row\(s\) lack modality 'block1'"):
        MCCA(2, blocks=dims).fit(X_missing)
    est = MCCA(2, blocks=dims).fit(X)
    with pytest.raises(ValueError, match=r"lack modality 'block1'.*MCCA needs every"):
        est.transform(X_missing)
    with pytest.raises(ValueError, match=r"lack modality 'block1'"):
        est.score(X_missing)
    est.set_params(output="mean")
    X_partial = X.copy()
    X_partial[2, 7] = np.nan
    with pytest.raises(
        ValueError, match=r"1 row\(s\) have NaN in part of modality 'block1'"
    ):
        est.transform(X_partial)
    X_empty = X.copy()
    X_empty[5] = np.nan
    with pytest.raises(ValueError, match=r"1 row\(s\) \(first: \[5\]\) have none of"):
        est.transform(X_empty)


@pytest.mark.parametrize("Estimator", ESTIMATORS)
@pytest.mark.parametrize(
    "corrupt, reason",
    [
        ("wide", "it has 8 columns but only 7 rows"),
        ("constant", "it is rank-deficient"),
        ("duplicate", "it is rank-deficient"),
    ],
)
def test_singular_view_error(Estimator, corrupt, reason):
    X, dims = _data(n=40)
    if corrupt == "wide":
        X = X[:7]
    elif corrupt == "constant":
        X[:, 8] = 1.5
    else:
        X[:, 9] = X[:, 7]
    est = Estimator(2, blocks={"image": 6, "text": 8, "audio": 5})
    with pytest.raises(
        ValueError,
        match=rf"modality 'text' is singular: {reason}.*Raise the regularization",
    ):
        est.fit(X)
    est.set_params(regularization=[0.0, 0.1, 0.0]).fit(X)
    assert np.isfinite(est.canonical_correlations_).all()


def test_parameter_errors():
    X, dims = _data()
    with pytest.raises(
        ValueError,
        match=r"n_components=6 exceeds block 'block2' width 5; use n_components <= 5",
    ):
        MCCA(6, blocks=dims).fit(X)
    with pytest.raises(
        ValueError,
        match=r"regularization=\[0.1, 0.2\] has 2 entries but there are 3 "
        r"modalities \['block0', 'block1', 'block2'\]; give one value for all",
    ):
        MCCA(2, blocks=dims, regularization=[0.1, 0.2]).fit(X)
    with pytest.raises(
        ValueError,
        match=r"regularization=\[0.1, 1.2, 0.0\] gives 1.2 for modality 'block1', "
        r"but each value must be a float in the range \[0.0, 1.0\]",
    ):
        GCCA(2, blocks=dims, regularization=[0.1, 1.2, 0.0]).fit(X)
    with pytest.raises(ValueError, match=r"needs at least 2 modality blocks"):
        MCCA(1, blocks=1).fit(X)
    with pytest.raises(ValueError, match="'regularization' parameter of MCCA must be"):
        MCCA(2, blocks=dims, regularization=1.5).fit(X)


def test_grid_search_picks_regularization_without_y():
    # Few rows for wide views: no regularization overfits and scores worse
    # on held-out rows.
    X, _ = make_multiview(80, view_dims=[30, 30], n_latent=2, noise=2.0, random_state=1)
    grid = GridSearchCV(
        MCCA(blocks=[30, 30]),
        {"regularization": [0.0, 0.5, 0.9], "n_components": [1, 2]},
        cv=KFold(4, shuffle=True, random_state=0),
    ).fit(X)
    scores = grid.cv_results_["mean_test_score"]
    assert grid.best_params_["regularization"] > 0
    assert (
        scores.max()
        > scores[grid.cv_results_["param_regularization"] == 0.0].max() + 0.1
    )


def test_feature_names_and_pandas_output():
    pd = pytest.importorskip("pandas")
    X, dims = _data()
    columns = [f"img__{i}" for i in range(6)] + [f"txt__{i}" for i in range(8)]
    columns += [f"aud__{i}" for i in range(5)]
    frame = pd.DataFrame(X, columns=columns)
    est = MCCA(2).set_output(transform="pandas").fit(frame)
    out = est.transform(frame)
    assert list(out.columns) == [
        "img__mcca0",
        "img__mcca1",
        "txt__mcca0",
        "txt__mcca1",
        "aud__mcca0",
        "aud__mcca1",
    ]
    gcca = GCCA(2, output="mean").set_output(transform="pandas").fit(frame)
    assert list(gcca.transform(frame).columns) == ["gcca0", "gcca1"]
    # The concatenated output feeds a next block-aware estimator as is.
    again = MCCA(1).fit(out)
    assert again.modality_names_ == ["img", "txt", "aud"]


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_more_components_than_rows_support_are_refused(Estimator):
    # 10 rows span 9 directions once centred: a 10th component would not
    # exist (it used to get a correlation of exactly +-1 and a constant
    # output column).
    X, _ = make_multiview(10, [20, 20], random_state=0)
    with pytest.raises(
        ValueError,
        match=r"n_components=15 exceeds n_samples - 1 = 9: centred, 10 row\(s\) "
        r"span at most 9 direction\(s\).*Use n_components <= 9, or fit on more",
    ):
        Estimator(15, blocks=[20, 20], regularization=0.1).fit(X)
    est = Estimator(9, blocks=[20, 20], regularization=0.1).fit(X)
    for Z in est.transform_views(X):
        np.testing.assert_allclose(Z.std(axis=0, ddof=1), 1.0, rtol=1e-8)


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_more_components_than_a_modality_spans_are_refused(Estimator):
    X, dims = _data(n=100)
    X[:, 16] = X[:, 14] - 2 * X[:, 15]  # 'audio' spans 4 directions, not 5
    with pytest.raises(
        ValueError,
        match=r"n_components=5 exceeds the numerical rank 4 of modality 'audio': "
        r"its centred columns span 4 direction\(s\).*Use n_components <= 4\.",
    ):
        Estimator(
            5, blocks={"image": 6, "text": 8, "audio": 5}, regularization=0.1
        ).fit(X)
    # partial_fit solves on demand: the rule applies there, to all rows.
    streamed = Estimator(5, blocks=dims, regularization=0.1)
    for chunk in np.array_split(X, 4):
        streamed.partial_fit(chunk)
    with pytest.raises(ValueError, match="exceeds the numerical rank 4 of modality"):
        streamed.transform(X)
    Estimator(4, blocks=dims, regularization=0.1).fit(X)


@pytest.mark.parametrize("Estimator", ESTIMATORS)
@pytest.mark.parametrize("regularization", [0.0, 0.5, [0.1, 0.1, 1.0]])
def test_constant_modality_is_not_told_to_raise_regularization(
    Estimator, regularization
):
    X, _ = _data(n=50)
    X[:, 14:] = 3.7  # 'audio' constant
    with pytest.raises(ValueError) as error:
        Estimator(
            2,
            blocks={"image": 6, "text": 8, "audio": 5},
            regularization=regularization,
        ).fit(X)
    message = str(error.value)
    assert message.startswith(
        "modality 'audio' is constant over the 50 training rows (zero variance, "
        "numerical rank 0): it shares nothing with the other modalities, and no "
        "regularization can change that. Drop it from blocks, or give it variance."
    )


def test_float32_fit_of_millions_of_rows_is_not_read_as_constant():
    # The constant-column test bounded the rounding of float32 sums by
    # n_rows * eps32, which passes 1 at 8.4 million rows: every modality of
    # a float32 fit that large read as constant (found fitting 10**7 rows
    # out of core). The float32 sums run over a few thousand rows at a time.
    rng = np.random.default_rng(0)
    n = 9_000_000
    z = rng.standard_normal(n, dtype=np.float32)
    X = np.column_stack([z + rng.standard_normal(n, dtype=np.float32), z])
    rho = MCCA(1, blocks=[1, 1]).fit(X).canonical_correlations_
    np.testing.assert_allclose(rho, [np.sqrt(0.5)], atol=1e-3)


@pytest.mark.parametrize("Estimator", ESTIMATORS)
@pytest.mark.parametrize(
    ("scale", "dtype", "name"),
    [(1e200, np.float64, "float64"), (1e25, None, "float32")],
)
def test_overflow_says_rescale_without_numpy_warnings(Estimator, scale, dtype, name):
    X, dims = _data(n=50)
    X[:, 6:14] *= scale
    if dtype is None:
        X = X.astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(
            ValueError,
            match=rf"the values of modality 'block1' overflow {name} statistics: "
            r".*whatever the regularization\. Rescale the columns, e\.g\. with "
            r"sklearn.preprocessing.StandardScaler",
        ):
            Estimator(2, blocks=dims, regularization=0.1, dtype=dtype).fit(X)


def test_singular_advice_is_above_the_regularization_given():
    X, dims = _data(n=40)
    X[:, 9] = X[:, 7]
    # A ridge too small to whiten duplicate columns: the advice is larger.
    with pytest.raises(
        ValueError,
        match=r"cannot be whitened with regularization=1e-15\. Raise the "
        r"regularization of this modality, e\.g\. regularization=0\.1 ",
    ):
        MCCA(2, blocks=dims, regularization=1e-15).fit(X)
    MCCA(2, blocks=dims, regularization=0.1).fit(X)


@pytest.mark.parametrize("Estimator", ESTIMATORS)
@pytest.mark.parametrize("fmt", ["dense", "csr", "partial"])
def test_integer_weights_equal_repeated_rows(Estimator, fmt):
    X, dims = _data(n=120)
    X = X + 5.0
    counts = np.random.RandomState(0).randint(0, 4, len(X))
    X_weighted = X.copy()
    X_weighted[counts == 0, 2] = np.nan  # dropped rows may hold anything
    params = dict(blocks=dims, regularization=[0.0, 0.1, 0.3])
    repeated = Estimator(3, **params).fit(np.repeat(X, counts, axis=0))
    weighted = Estimator(3, **params)
    if fmt == "partial":
        for rows in np.array_split(np.arange(len(X)), [10, 50, 51 + 2]):
            weighted.partial_fit(X_weighted[rows], sample_weight=counts[rows])
    elif fmt == "csr":
        weighted.fit(sp.csr_array(X), sample_weight=counts)
    else:
        weighted.fit(X_weighted, sample_weight=counts)
    np.testing.assert_allclose(
        weighted.canonical_correlations_, repeated.canonical_correlations_, atol=1e-12
    )
    for a, b in zip(weighted.weights_, repeated.weights_, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(weighted.transform(X), repeated.transform(X), atol=1e-9)


def test_sample_weight_errors():
    X, dims = _data(n=50)
    with pytest.raises(
        ValueError,
        match=r"sample_weight sums to 0.5, but MCCA reads the weights as repetition "
        r"counts .* must sum to more than 1\. Scale them",
    ):
        MCCA(2, blocks=dims).fit(X, sample_weight=np.full(50, 0.01))
    with pytest.raises(ValueError, match="Negative values in data passed to"):
        MCCA(2, blocks=dims).fit(X, sample_weight=np.r_[-1.0, np.ones(49)])
    with pytest.raises(ValueError, match=r"sample_weight.shape == \(49,\), expected"):
        GCCA(2, blocks=dims).fit(X, sample_weight=np.ones(49))


@pytest.mark.parametrize("where", ["in a block", "outside the blocks", "weight 0"])
@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_infinity_is_refused_wherever_it_is(Estimator, where):
    # fit looks for infinity in the statistics when they read every value,
    # and checks X first when they do not: the message is scikit-learn's.
    X, dims = _data(n=50)
    weights = np.ones(len(X))
    blocks = dims
    if where == "outside the blocks":
        X = np.hstack([X, np.zeros((len(X), 1))])
        X[3, -1] = np.inf
    else:
        X[3, 7] = -np.inf
    if where == "weight 0":
        weights[3] = 0
    with pytest.raises(ValueError, match=r"Input X contains infinity"):
        Estimator(2, blocks=blocks).fit(X, sample_weight=weights)
    with pytest.raises(ValueError, match=r"Input X contains infinity"):
        Estimator(2, blocks=blocks).partial_fit(X, sample_weight=weights)


def _count_dual(monkeypatch):
    calls = []
    solve_dual = GCCA._solve_dual

    def counted(self, *args):
        calls.append(args[0].shape[0])
        return solve_dual(self, *args)

    monkeypatch.setattr(GCCA, "_solve_dual", counted)
    return calls


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("fmt", ["dense", "csr"])
@pytest.mark.parametrize(
    "regularization, weighted",
    [(0.1, False), ([0.3, 0.05, 1.0], True), ([0.2, 0.0, 0.5], True)],
)
def test_gcca_dual_equals_primal(monkeypatch, regularization, weighted, fmt, dtype):
    """With fewer rows than columns, fit solves the n x n dual: same model."""
    X, dims = _data(n=40, dims=(30, 12, 25))
    X = (X + 3.0).astype(dtype)
    weights = None
    if weighted:
        weights = np.random.RandomState(1).randint(0, 4, len(X)).astype(float)
    data = sp.csr_array(X) if fmt == "csr" else X
    calls = _count_dual(monkeypatch)
    params = dict(blocks=dims, regularization=regularization)
    dual = GCCA(4, **params).fit(data, sample_weight=weights)
    primal = GCCA(4, **params).partial_fit(data, sample_weight=weights)
    primal_weights = primal.weights_  # solved now, from the statistics
    # The dual ran once, in fit, on the rows of positive weight.
    kept = len(X) if weights is None else int(np.count_nonzero(weights))
    assert calls == [kept]
    rtol = 1e-10 if dtype == np.float64 else 2e-4
    np.testing.assert_allclose(dual.eigenvalues_, primal.eigenvalues_, rtol=rtol)
    np.testing.assert_allclose(
        dual.canonical_correlations_, primal.canonical_correlations_, rtol=rtol
    )
    for a, b in zip(dual.weights_, primal_weights, strict=True):
        assert a.dtype == dtype
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * np.abs(b).max())
    Y_dual, Y_primal = dual.transform(X), primal.transform(X)
    np.testing.assert_allclose(Y_dual, Y_primal, atol=rtol * np.abs(Y_primal).max())


def test_gcca_dual_is_maxvar(monkeypatch):
    """The dual's eigenvalues are those of Σ_v X_v D_v⁻¹ X_vᵀ / (n − 1)."""
    X, dims = _data(n=30, dims=(20, 25, 15))
    r = [0.3, 0.1, 0.6]
    calls = _count_dual(monkeypatch)
    gcca = GCCA(3, blocks=dims, regularization=r).fit(X)
    assert calls == [30]
    projections = np.zeros((30, 30))
    start = 0
    for d, r_v in zip(dims, r, strict=True):
        Xv = X[:, start : start + d] - X[:, start : start + d].mean(axis=0)
        C_vv = Xv.T @ Xv / 29
        D_v = (1 - r_v) * C_vv + r_v * np.trace(C_vv) / d * np.eye(d)
        projections += Xv @ np.linalg.solve(D_v, Xv.T) / 29
        start += d
    expected = np.linalg.eigvalsh(projections)[::-1][:3]
    np.testing.assert_allclose(gcca.eigenvalues_, expected, rtol=1e-10)
