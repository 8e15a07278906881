import tracemalloc
import warnings

import numpy as np
import pytest
import scipy.linalg as sla
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.metrics.pairwise import rbf_kernel
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from mmfuse.cca import KCCA, MCCA, _kernel_features
from mmfuse.cca._solvers import pivoted_cholesky
from mmfuse.datasets import make_multiview
from mmfuse.metrics import canonical_correlation


def _centred(K):
    return K - K.mean(axis=0) - K.mean(axis=1)[:, None] + K.mean()


def reference_kcca(kernels, regularization, n_components):
    """Dense full-spectrum solve of DESIGN.md's dual problem.

    ``C α = λ D α`` with blocks ``K_v K_w / (n − 1)`` and diagonal blocks
    ``(1 − κ) K_v² / (n − 1) + κ K_v`` of the centred kernels, restricted to
    the range of each kernel (``α_v = U_v y_v`` over every eigenvector with a
    nonzero eigenvalue: nothing is truncated) and solved by a full
    generalized ``eigh``. Returns the eigenvalues, the training variates and
    the dual coefficients.
    """
    n = kernels[0].shape[0]
    bases, centred = [], []
    for K in kernels:
        Kc = _centred(K)
        s, U = np.linalg.eigh(Kc)
        bases.append(U[:, s > 1e-12 * s.max()])
        centred.append(Kc)
    widths = [U.shape[1] for U in bases]
    starts = np.cumsum([0, *widths])
    C = np.zeros((starts[-1], starts[-1]))
    D = np.zeros_like(C)
    for v, (Kv, Uv, r) in enumerate(zip(centred, bases, regularization, strict=True)):
        sv = slice(starts[v], starts[v + 1])
        for w, (Kw, Uw) in enumerate(zip(centred, bases, strict=True)):
            sw = slice(starts[w], starts[w + 1])
            C[sv, sw] = Uv.T @ Kv @ Kw @ Uw / (n - 1)
        D[sv, sv] = Uv.T @ ((1 - r) * Kv @ Kv / (n - 1) + r * Kv) @ Uv
        C[sv, sv] = D[sv, sv]
    values, vectors = sla.eigh(C, D)
    values, vectors = values[::-1][:n_components], vectors[:, ::-1][:, :n_components]
    duals = [U @ vectors[starts[v] : starts[v + 1]] for v, U in enumerate(bases)]
    variates = [Kc @ a for Kc, a in zip(centred, duals, strict=True)]
    return values, variates, duals


def _align(A, B):
    """Flip the columns of A to B's signs."""
    return A * np.sign(np.sum(A * B, axis=0))


@pytest.fixture(scope="module")
def nonlinear():
    X, _ = make_multiview(
        150,
        view_dims=[4, 3, 5],
        n_latent=2,
        noise=0.3,
        nonlinear=True,
        random_state=0,
    )
    return X


@pytest.mark.parametrize("solver", ["dense", "iterative"])
def test_exact_matches_full_spectrum_reference(nonlinear, solver):
    X = nonlinear
    blocks = [4, 3, 5]
    kcca = KCCA(
        3,
        blocks=blocks,
        regularization=[0.1, 0.05, 0.2],
        solver=solver,
        random_state=0,
    ).fit(X)
    views = np.split(X, np.cumsum(blocks)[:-1], axis=1)
    kernels = [rbf_kernel(V, gamma=1 / V.shape[1]) for V in views]
    values, variates, _ = reference_kcca(kernels, [0.1, 0.05, 0.2], 3)
    # The rbf kernels have full rank: nothing is truncated, and the fit is
    # exact to rounding (issue 18: 1e-10 in ρ).
    assert [len(s) for s in kcca.support_] == [150] * 3
    np.testing.assert_allclose(kcca.eigenvalues_, values, atol=1e-10)
    np.testing.assert_allclose(
        kcca.canonical_correlations_, canonical_correlation(variates), atol=1e-10
    )
    ours = kcca.transform_views(X)
    for mine, theirs in zip(ours, variates, strict=True):
        theirs = theirs / theirs.std(axis=0, ddof=1)
        np.testing.assert_allclose(_align(mine, theirs), theirs, atol=1e-5)


def test_exact_fit_peak_memory_is_six_n_by_n_arrays_for_three_views():
    # Full rank: three n × n factors and three n × n whitening factors are
    # the floor of the exact fit; each whitening block is factored in its
    # own memory, and nothing else of size n × n is alive at the peak.
    X, _ = make_multiview(
        600, view_dims=[10] * 3, n_latent=2, noise=0.5, nonlinear=True, random_state=0
    )
    tracemalloc.start()
    try:
        kcca = KCCA(3, blocks=3, random_state=0).fit(X)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [len(s) for s in kcca.support_] == [600] * 3
    assert peak < 6.5 * 600**2 * 8


def test_truncated_factor_stays_within_tolerance_of_full_spectrum():
    # A wide rbf kernel on 2-D data has a fast decaying spectrum: the pivoted
    # Cholesky stops well before n, yet correlations stay within 1e-6.
    X, _ = make_multiview(
        300,
        view_dims=[2, 2],
        n_latent=1,
        noise=0.05,
        nonlinear=True,
        random_state=1,
    )
    kcca = KCCA(2, blocks=2, gamma=0.1, regularization=0.05).fit(X)
    assert max(len(s) for s in kcca.support_) < 150
    kernels = [rbf_kernel(V, gamma=0.1) for V in np.split(X, 2, axis=1)]
    values, variates, _ = reference_kcca(kernels, [0.05, 0.05], 2)
    np.testing.assert_allclose(kcca.eigenvalues_, values, atol=1e-6)
    np.testing.assert_allclose(
        kcca.canonical_correlations_, canonical_correlation(variates), atol=1e-6
    )


def test_linear_kernel_on_standardized_columns_is_mcca(nonlinear):
    X = (nonlinear - nonlinear.mean(axis=0)) / nonlinear.std(axis=0, ddof=1)
    r = [0.3, 0.1, 0.5]
    kcca = KCCA(3, blocks=[4, 3, 5], kernel="linear", regularization=r).fit(X)
    mcca = MCCA(3, blocks=[4, 3, 5], regularization=r).fit(X)
    np.testing.assert_allclose(kcca.eigenvalues_, mcca.eigenvalues_, rtol=1e-10)
    np.testing.assert_allclose(
        kcca.canonical_correlations_, mcca.canonical_correlations_, rtol=1e-10
    )
    X_new = X[:20] + 0.1
    ours, theirs = kcca.transform(X_new), mcca.transform(X_new)
    np.testing.assert_allclose(_align(ours, theirs), theirs, atol=1e-10)
    # The factor of a rank-d linear kernel has d columns: d kernel columns.
    assert [len(s) for s in kcca.support_] == [4, 3, 5]


@pytest.mark.parametrize("relation", ["quadratic", "sine"])
def test_rbf_finds_nonlinear_relation_that_mcca_misses(relation):
    rng = np.random.RandomState(0)
    t = rng.uniform(-2, 2, (400, 1))
    other = t**2 if relation == "quadratic" else np.sin(3 * t)
    X = np.hstack([t, other + 0.05 * rng.standard_normal((400, 1))])
    X_train, X_test = train_test_split(X, random_state=0)
    kcca = KCCA(1, blocks=2, gamma=1.0, regularization=0.05).fit(X_train)
    mcca = MCCA(1, blocks=2).fit(X_train)
    assert kcca.canonical_correlations_[0] > 0.95
    held_out = canonical_correlation(kcca.transform_views(X_test))
    assert held_out[0] > 0.95
    assert abs(canonical_correlation(mcca.transform_views(X_test))[0]) < 0.5


def test_out_of_sample_centring_uses_training_statistics(nonlinear):
    X_train, X_test = nonlinear[:120], nonlinear[120:]
    kcca = KCCA(2, blocks=[4, 3, 5], regularization=0.1).fit(X_train)
    for v, block in enumerate(kcca.blocks_):
        A, B = X_train[:, block], X_test[:, block]
        gamma = 1 / len(block)
        K_train, K_new = rbf_kernel(A, gamma=gamma), rbf_kernel(B, A, gamma=gamma)
        # Textbook centring of new kernel rows with the training statistics.
        K_new_c = (
            K_new
            - K_new.mean(axis=1, keepdims=True)
            - K_train.mean(axis=0)
            + K_train.mean()
        )
        alpha = np.zeros((120, 2))
        alpha[kcca.support_[v]] = kcca.dual_coef_[v]
        # The dual coefficients lie in the centred span (they sum to 0).
        np.testing.assert_allclose(alpha.sum(axis=0), 0, atol=1e-8)
        expected = K_new_c @ alpha
        np.testing.assert_allclose(kcca.transform_views(X_test)[v], expected, atol=1e-8)
    # One row at a time gives the batch's rows.
    batch = kcca.transform(X_test)
    np.testing.assert_allclose(kcca.transform(X_test[3:4]), batch[3:4], atol=1e-12)


def test_training_variates_have_unit_variance(nonlinear):
    kcca = KCCA(2, blocks=[4, 3, 5]).fit(nonlinear)
    for variates in kcca.transform_views(nonlinear):
        np.testing.assert_allclose(variates.mean(axis=0), 0, atol=1e-10)
        np.testing.assert_allclose(variates.std(axis=0, ddof=1), 1, rtol=1e-8)


@pytest.mark.parametrize("n_landmarks", [150, 1000])
def test_nystroem_with_every_row_a_landmark_is_exact(nonlinear, n_landmarks):
    # More landmarks than rows (the default 100 on a small CV fold) takes
    # every row, with a warning; it was an error.
    exact = KCCA(3, blocks=[4, 3, 5]).fit(nonlinear)
    nystroem = KCCA(
        3,
        blocks=[4, 3, 5],
        approximation="nystroem",
        n_landmarks=n_landmarks,
        random_state=0,
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        nystroem.fit(nonlinear)
    messages = [str(w.message) for w in caught]
    if n_landmarks > 150:
        assert messages == [
            "n_landmarks=1000 exceeds the 150 rows of the fit, so all 150 rows are "
            "landmarks: the exact kernel's fit, at its cost. Set n_landmarks <= "
            "150, or approximation=None, to silence this."
        ]
        assert caught[0].filename == __file__  # the user's line
    else:
        assert messages == []
    np.testing.assert_allclose(nystroem.eigenvalues_, exact.eigenvalues_, atol=1e-9)
    X_new = nonlinear[:10] * 1.1
    np.testing.assert_allclose(
        nystroem.transform(X_new), exact.transform(X_new), atol=1e-7
    )


def test_nystroem_approaches_exact_and_never_forms_n_by_n():
    X, _ = make_multiview(
        600,
        view_dims=[3, 3],
        n_latent=1,
        noise=0.1,
        nonlinear=True,
        random_state=0,
    )
    exact = KCCA(2, blocks=2, regularization=0.1).fit(X)
    approx = KCCA(
        2,
        blocks=2,
        regularization=0.1,
        approximation="nystroem",
        n_landmarks=150,
        random_state=0,
    ).fit(X)
    # The landmarks' kernel is factored to the same tolerance: dependent
    # landmarks are dropped, the rest are the support rows.
    assert all(50 < len(s) <= 150 for s in approx.support_)
    assert [d.shape for d in approx.dual_coef_] == [
        (len(s), 2) for s in approx.support_
    ]
    np.testing.assert_allclose(
        approx.canonical_correlations_, exact.canonical_correlations_, atol=0.01
    )
    # Same seed, same landmarks, same fit.
    again = clone(approx).fit(X)
    np.testing.assert_array_equal(again.transform(X[:5]), approx.transform(X[:5]))


def test_precomputed_kernels_equal_the_kernel_they_hold(nonlinear):
    X_train, X_test = nonlinear[:100], nonlinear[100:]
    blocks = [slice(0, 4), slice(4, 7), slice(7, 12)]
    gammas = [0.5, 0.2, 1.0]

    def stacked(A):
        return np.hstack(
            [
                rbf_kernel(A[:, b], X_train[:, b], gamma=g)
                for b, g in zip(blocks, gammas, strict=True)
            ]
        )

    direct = KCCA(2, blocks=[4, 3, 5], gamma=gammas).fit(X_train)
    pre = KCCA(2, blocks=3, kernel="precomputed").fit(stacked(X_train))
    assert pre.__sklearn_tags__().input_tags.pairwise
    assert not direct.__sklearn_tags__().input_tags.pairwise
    np.testing.assert_allclose(pre.eigenvalues_, direct.eigenvalues_, atol=1e-9)
    np.testing.assert_allclose(
        pre.transform(stacked(X_test)), direct.transform(X_test), atol=1e-7
    )


def test_per_modality_kernels():
    X, _ = make_multiview(
        200,
        view_dims=[3, 3],
        n_latent=1,
        noise=0.05,
        nonlinear=True,
        random_state=0,
    )
    # View 1 is linear in z² − 1, so a degree-2 kernel on view 0 (which
    # holds z) and a linear one on view 1 recover it.
    mixed = KCCA(
        1, blocks=2, kernel=["poly", "linear"], degree=[2, 3], coef0=[1, 0]
    ).fit(X)
    linear = KCCA(1, blocks=2, kernel="linear").fit(X)
    assert mixed.canonical_correlations_[0] > 0.9
    assert linear.canonical_correlations_[0] < 0.5

    def squared_distance_kernel(a, b, scale):
        return np.exp(-np.sum((a - b) ** 2) / scale)

    custom = KCCA(
        1,
        blocks=2,
        kernel=squared_distance_kernel,
        kernel_params={"scale": 3.0},
    ).fit(X[:60])
    rbf = KCCA(1, blocks=2, kernel="rbf", gamma=1 / 3.0).fit(X[:60])
    np.testing.assert_allclose(custom.eigenvalues_, rbf.eigenvalues_, atol=1e-9)


def test_pivoted_cholesky_evaluates_only_needed_columns():
    rng = np.random.RandomState(0)
    A = rng.standard_normal((500, 7))
    K = A @ A.T
    asked = []

    def columns(rows, idx):
        asked.append(len(idx))
        return K[np.ix_(rows, idx)]

    G, pivots = pivoted_cholesky(columns, np.diag(K).copy(), tol=1e-12)
    assert G.shape == (500, 7)
    assert len(set(pivots)) == 7
    assert sum(asked) <= 128
    np.testing.assert_allclose(G @ G.T, K, atol=1e-9 * np.trace(K))
    np.testing.assert_allclose(np.triu(G[pivots], 1), 0)


def test_pivoted_cholesky_residual_trace_below_tolerance():
    X = np.random.RandomState(0).standard_normal((400, 2))
    K = rbf_kernel(X, gamma=0.5)
    for tol in (1e-4, 1e-8, 1e-12):
        G, _ = pivoted_cholesky(
            lambda rows, idx: K[np.ix_(rows, idx)], np.ones(400), tol=tol
        )
        residual = K - G @ G.T
        assert np.trace(residual) <= tol * 400 * (1 + 1e-6)
        assert np.linalg.eigvalsh(residual).min() > -1e-10


def test_pipeline_set_output_and_grid_search(nonlinear):
    pipe = make_pipeline(StandardScaler(), KCCA(2, blocks=[4, 3, 5]))
    pipe.set_output(transform="pandas")
    frame = pipe.fit_transform(nonlinear)
    assert list(frame.columns[:2]) == ["block0__kcca0", "block0__kcca1"]
    search = GridSearchCV(
        KCCA(1, blocks=[4, 3, 5]), {"regularization": [0.01, 0.3]}, cv=3
    ).fit(nonlinear)
    assert search.best_params_["regularization"] in (0.01, 0.3)
    mean = KCCA(2, blocks=[4, 3, 5], output="mean").fit(nonlinear)
    assert mean.get_feature_names_out().tolist() == ["kcca0", "kcca1"]
    assert mean.transform(nonlinear).shape == (150, 2)


def test_missing_modality_rows_with_mean_output(nonlinear):
    kcca = KCCA(2, blocks=[4, 3, 5], output="mean").fit(nonlinear)
    X = nonlinear[:5].copy()
    X[0, 4:7] = np.nan
    views = kcca.transform_views(X)
    expected = (views[0][0] + views[2][0]) / 2
    np.testing.assert_allclose(kcca.transform(X)[0], expected)
    # When no row has a modality (one new row, say), its kernel cannot be
    # evaluated on zero rows: it raised "Found array with 0 sample(s)".
    for kernel, rows in [
        ("linear", X[:1]),
        ("rbf", X[:1]),
        ("rbf", sp.csr_array(X[:1])),  # NaN stored explicitly
    ]:
        fitted = clone(kcca).set_params(kernel=kernel).fit(nonlinear)
        views = fitted.transform_views(rows)
        assert np.isnan(views[1]).all()
        np.testing.assert_allclose(
            fitted.transform(rows)[0], (views[0][0] + views[2][0]) / 2
        )


@pytest.mark.parametrize(
    ("regularization", "match"),
    [
        (0.0, r"regularization=0.0 must be a float in the range \(0.0, 1.0\]"),
        (
            [0.1, 0.0, 0.1],
            r"regularization=\[0.1, 0.0, 0.1\] gives 0.0 for modality 'block1', "
            r"but each value must be a float in the range \(0.0, 1.0\]",
        ),
        (np.array([0.1, 1.5, 0.1]), r"gives 1.5 for modality 'block1'"),
    ],
)
def test_regularization_must_be_positive(nonlinear, regularization, match):
    with pytest.raises(ValueError, match=match + ".*every canonical correlation"):
        KCCA(blocks=[4, 3, 5], regularization=regularization).fit(nonlinear)


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"gamma": [0.1, 0.2]}, r"gamma=\[0.1, 0.2\] has 2 entries but there are 3"),
        (
            {"kernel": ["rbf", "nope", "rbf"]},
            r"kernel=\['rbf', 'nope', 'rbf'\] gives 'nope' for modality 'block1', "
            r"but each value must be one of \['additive_chi2', .*\] or a callable",
        ),
        ({"n_components": 150}, "n_components=150 exceeds n_samples - 1 = 149"),
        (
            {"n_components": 4, "kernel": "linear"},
            "n_components=4 exceeds the numerical rank 3 of the kernel of "
            "modality 'block1'",
        ),
    ],
)
def test_errors(nonlinear, params, match):
    with pytest.raises(ValueError, match=match):
        KCCA(blocks=[4, 3, 5], **params).fit(nonlinear)


def test_precomputed_block_must_be_square(nonlinear):
    with pytest.raises(ValueError, match="precomputed kernel of 6 columns but X has"):
        KCCA(blocks=2, kernel="precomputed").fit(nonlinear)


def test_nystroem_solvers_agree_with_ill_conditioned_landmarks():
    # 3-D data: the landmarks' rbf kernel is numerically rank-deficient, so
    # L_S is ill-conditioned; the features must stay accurate either way.
    X, _ = make_multiview(
        700, view_dims=[3, 3], n_latent=1, noise=0.1, nonlinear=True, random_state=1
    )
    exact = KCCA(2, blocks=2).fit(X)
    fits = [
        KCCA(
            2,
            blocks=2,
            approximation="nystroem",
            n_landmarks=300,
            solver=solver,
            random_state=0,
        ).fit(X)
        for solver in ("dense", "iterative")
    ]
    assert min(len(s) for s in fits[0].support_) < 300
    np.testing.assert_allclose(fits[0].eigenvalues_, fits[1].eigenvalues_, atol=1e-8)
    np.testing.assert_allclose(
        fits[0].canonical_correlations_, exact.canonical_correlations_, atol=5e-3
    )


def test_nystroem_features_streamed_when_too_large_to_store(nonlinear, monkeypatch):
    # Beyond _STORED_VALUES the features are recomputed chunk by chunk at
    # each pass; the fit must not depend on which way they were obtained.
    params = dict(blocks=[4, 3, 5], approximation="nystroem", n_landmarks=60)
    stored = KCCA(3, random_state=0, **params).fit(nonlinear)
    monkeypatch.setattr(_kernel_features, "_STORED_VALUES", 0)
    monkeypatch.setattr(_kernel_features, "_CHUNK_VALUES", 60 * 7)
    streamed = KCCA(3, random_state=0, **params).fit(nonlinear)
    np.testing.assert_allclose(
        streamed.canonical_correlations_, stored.canonical_correlations_, atol=1e-12
    )
    np.testing.assert_allclose(
        streamed.transform(nonlinear), stored.transform(nonlinear), atol=1e-10
    )


def test_nystroem_float32_products_match_float64(nonlinear, monkeypatch):
    # Large Nyström fits store and multiply their features in float32; the
    # canonical correlations and variates stay within rounding of float64.
    params = dict(blocks=[4, 3, 5], approximation="nystroem", n_landmarks=60)
    weights = np.arange(len(nonlinear)) % 3 + 0.5
    double = KCCA(3, random_state=0, **params).fit(nonlinear, sample_weight=weights)
    monkeypatch.setattr(_kernel_features, "_FLOAT32_VALUES", 0)
    assert _kernel_features.products_dtype(150, 180, [0.1, 0.1, 0.1]) == np.float32
    single = KCCA(3, random_state=0, **params).fit(nonlinear, sample_weight=weights)
    np.testing.assert_allclose(
        single.canonical_correlations_, double.canonical_correlations_, atol=1e-6
    )
    np.testing.assert_allclose(
        single.transform(nonlinear), double.transform(nonlinear), atol=1e-4
    )
    # A ridge too small to absorb float32 rounding keeps float64.
    assert _kernel_features.products_dtype(150, 180, [0.1, 1e-4, 0.1]) == np.float64


@pytest.mark.parametrize("gamma", [None, 0.3])
def test_fused_rbf_equals_scikit_learn(nonlinear, gamma):
    kernel = _kernel_features.ViewKernel(
        "rbf", {} if gamma is None else {"gamma": gamma}, "block0"
    )
    out = np.full((150, 40), np.nan)
    assert kernel(nonlinear, nonlinear[:40], out) is out
    np.testing.assert_allclose(
        out, rbf_kernel(nonlinear, nonlinear[:40], gamma=gamma), rtol=1e-13, atol=1e-15
    )


def test_nystroem_fit_does_not_depend_on_the_thread_count(nonlinear):
    # Kernel chunks are evaluated on as many threads as BLAS may use.
    params = dict(blocks=[4, 3, 5], approximation="nystroem", n_landmarks=60)
    with threadpool_limits(1):
        one = KCCA(3, random_state=0, **params).fit(nonlinear)
    with threadpool_limits(2):
        two = KCCA(3, random_state=0, **params).fit(nonlinear)
    np.testing.assert_allclose(
        one.canonical_correlations_, two.canonical_correlations_, atol=1e-12
    )
    np.testing.assert_allclose(
        one.transform(nonlinear), two.transform(nonlinear), atol=1e-10
    )


@pytest.mark.parametrize(
    ("params", "match"),
    [
        (
            {"gamma": [0.1, -5, 0.1]},
            r"gamma=\[0.1, -5, 0.1\] gives -5 for modality 'block1', but each value "
            r"must be a float in the range \(0.0, inf\) or None\. Change that entry\.",
        ),
        (
            {"kernel": "poly", "degree": [2, -3, 2]},
            r"degree=\[2, -3, 2\] gives -3 for modality 'block1', but each value "
            r"must be a float in the range \[0.0, inf\)",
        ),
        (
            {"kernel": "poly", "coef0": [1, np.nan, 1]},
            r"coef0=\[1, nan, 1\] gives nan for modality 'block1'",
        ),
        (
            {"kernel_params": [{}, 3, {}]},
            r"kernel_params=\[\{\}, 3, \{\}\] gives 3 for modality 'block1', but "
            r"each value must be a dict or None",
        ),
        (
            {"regularization": np.array([0.1, 0.2])},
            r"regularization=array\(\[0.1, 0.2\]\) has 2 entries but there are 3 "
            r"modalities",
        ),
    ],
)
def test_per_modality_values_are_range_checked(nonlinear, params, match):
    with pytest.raises(ValueError, match=match):
        KCCA(blocks=[4, 3, 5], **params).fit(nonlinear)


def test_regularization_array_as_list(nonlinear):
    as_array = KCCA(2, blocks=[4, 3, 5], regularization=np.array([0.1, 0.2, 0.3]))
    as_list = KCCA(2, blocks=[4, 3, 5], regularization=[0.1, 0.2, 0.3])
    np.testing.assert_allclose(
        as_array.fit(nonlinear).eigenvalues_,
        as_list.fit(nonlinear).eigenvalues_,
        rtol=1e-12,
    )


def test_kernel_returning_nan_is_named(nonlinear):
    def nan_beyond(a, b, limit):
        return (
            np.nan if np.abs(a).max() > limit else float(np.exp(-np.sum((a - b) ** 2)))
        )

    params = {"limit": 10.0}
    kcca = KCCA(1, blocks=[4, 3, 5], kernel=nan_beyond, kernel_params=params)
    kcca.fit(nonlinear[:40])
    # A kernel that fails only on new rows fails transform, not silently.
    with pytest.raises(
        ValueError,
        match=r"the kernel of modality 'block0' \(nan_beyond, kernel_params="
        r"\{'limit': 10.0\}\) returned NaN or inf\. A callable kernel must return a "
        r"finite value",
    ):
        kcca.transform(nonlinear[:3] * 100)
    with pytest.raises(ValueError, match="returned NaN or inf"):
        kcca.set_params(kernel_params={"limit": 0.0}).fit(nonlinear[:40])


@pytest.mark.parametrize(
    ("kernel", "shown"),
    [("rbf", "'rbf'"), ("poly", "'poly', degree=3, coef0=1"), ("linear", "'linear'")],
)
def test_overflow_says_rescale_without_numpy_warnings(nonlinear, kernel, shown):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(
            ValueError,
            match=rf"the kernel of modality 'block0' \({shown}\) returned NaN or inf\. "
            r"With valid parameters this means that its values overflow float64: "
            r"rescale the columns, e\.g\. with sklearn.preprocessing.StandardScaler",
        ):
            KCCA(blocks=[4, 3, 5], kernel=kernel).fit(nonlinear * 1e200)


def test_a_fractional_poly_degree_is_named_not_an_overflow(nonlinear):
    # Negative bases to a fractional power are NaN: "rescale the columns"
    # misled.
    with pytest.raises(ValueError, match=r"A non-integer degree \(2.5\) raises"):
        KCCA(blocks=[4, 3, 5], kernel="poly", degree=2.5, coef0=0).fit(nonlinear)


@pytest.mark.parametrize(
    "params",
    [{}, {"gamma": [0.1, 0.1, 1e-300]}, {"kernel": ["rbf", "rbf", "additive_chi2"]}],
)
def test_kernel_of_rank_zero_is_refused(nonlinear, params):
    # A constant modality, a kernel made constant by its gamma, and a kernel
    # that is not positive semi-definite (zero diagonal): no feature space.
    X = np.abs(nonlinear)
    if not params:
        X[:, 7:] = 2.5
    with pytest.raises(
        ValueError,
        match=r"the kernel of modality 'block2' has numerical rank 0 over the 150 "
        r"training rows: it is constant there, or not positive semi-definite .*"
        r"whatever the regularization\. Change its kernel or kernel parameters",
    ):
        KCCA(blocks=[4, 3, 5], regularization=0.5, **params).fit(X)


@pytest.mark.parametrize(
    "params",
    [{"kernel": "linear"}, {"approximation": "nystroem", "random_state": 0}],
)
def test_a_constant_modality_is_refused_whatever_its_value(nonlinear, params):
    # LAPACK's pstrf compares its first pivot with 0, not with the floor: a
    # constant 5.0 left a centred Gram of 4e-15 (floor 2e-14) read as rank 1,
    # and a variate of zero variance, canonical correlation 0, no word.
    X = nonlinear.copy()
    X[:, 7:] = 5.0
    with pytest.raises(ValueError, match="'block2' has numerical rank 0"):
        KCCA(1, blocks=[4, 3, 5], **params).fit(X)


def test_centred_rank_of_the_kernel_bounds_n_components(nonlinear):
    X = nonlinear.copy()
    X[:, 6] = 4.0  # 'block1' (3 columns, one constant): 2 directions once centred
    with pytest.raises(
        ValueError,
        match=r"n_components=3 exceeds the numerical rank 2 of the kernel of "
        r"modality 'block1': its centred kernel features span 2 direction\(s\)",
    ):
        KCCA(3, blocks=[4, 3, 5], kernel="linear").fit(X)
    kcca = KCCA(2, blocks=[4, 3, 5], kernel="linear").fit(X)
    for Z in kcca.transform_views(X):
        np.testing.assert_allclose(Z.std(axis=0, ddof=1), 1.0, rtol=1e-8)


@pytest.mark.parametrize(
    "params",
    [
        {"solver": "dense"},
        {"solver": "iterative", "random_state": 0},
        {"kernel": "linear"},
        {"kernel": "poly", "degree": [2, 3, 2]},
    ],
)
def test_integer_weights_equal_repeated_rows(nonlinear, params):
    counts = np.random.RandomState(1).randint(0, 4, len(nonlinear))
    X = nonlinear.copy()
    X[counts == 0, 5] = np.nan  # dropped rows may hold anything
    weighted = KCCA(3, blocks=[4, 3, 5], **params).fit(X, sample_weight=counts)
    repeated = KCCA(3, blocks=[4, 3, 5], **params).fit(
        np.repeat(nonlinear, counts, axis=0)
    )
    np.testing.assert_allclose(
        weighted.canonical_correlations_, repeated.canonical_correlations_, atol=1e-10
    )
    X_new = nonlinear[:20] * 1.1
    np.testing.assert_allclose(
        weighted.transform(X_new), repeated.transform(X_new), atol=1e-8
    )
    # The support rows are rows of the X given to fit.
    assert all(counts[s].min() > 0 for s in weighted.support_)


def test_weighted_nystroem_with_every_kept_row_a_landmark_is_exact(nonlinear):
    counts = np.random.RandomState(2).randint(0, 3, len(nonlinear))
    nystroem = KCCA(
        2,
        blocks=[4, 3, 5],
        approximation="nystroem",
        n_landmarks=int(np.count_nonzero(counts)),
        random_state=0,
    ).fit(nonlinear, sample_weight=counts)
    repeated = KCCA(2, blocks=[4, 3, 5]).fit(np.repeat(nonlinear, counts, axis=0))
    np.testing.assert_allclose(nystroem.eigenvalues_, repeated.eigenvalues_, atol=1e-9)
    np.testing.assert_allclose(
        nystroem.transform(nonlinear), repeated.transform(nonlinear), atol=1e-7
    )


def test_weighted_precomputed_kernel_drops_the_columns_of_dropped_rows(nonlinear):
    counts = np.random.RandomState(3).randint(0, 3, len(nonlinear))
    blocks = [slice(0, 4), slice(4, 7), slice(7, 12)]

    def stacked(A, B):
        return np.hstack([rbf_kernel(A[:, b], B[:, b], gamma=0.5) for b in blocks])

    pre = KCCA(2, blocks=3, kernel="precomputed").fit(
        stacked(nonlinear, nonlinear), sample_weight=counts
    )
    repeated = KCCA(2, blocks=[4, 3, 5], gamma=0.5).fit(
        np.repeat(nonlinear, counts, axis=0)
    )
    np.testing.assert_allclose(pre.eigenvalues_, repeated.eigenvalues_, atol=1e-9)
    X_new = nonlinear[:10] + 0.1
    np.testing.assert_allclose(
        pre.transform(stacked(X_new, nonlinear)), repeated.transform(X_new), atol=1e-7
    )


def test_sample_weight_sum_must_exceed_one(nonlinear):
    with pytest.raises(
        ValueError, match=r"sample_weight sums to 0.75, but KCCA reads the weights"
    ):
        KCCA(blocks=[4, 3, 5]).fit(nonlinear, sample_weight=np.full(150, 0.005))


@pytest.mark.parametrize("kernel", ["chi2", "additive_chi2"])
def test_histogram_kernels_on_negative_columns_name_the_modality(kernel):
    X = np.abs(np.random.RandomState(0).standard_normal((40, 6)))
    X[5, 4] = -1.0
    message = (
        rf"the kernel of modality 'block1' \('{kernel}'\) failed: X contains "
        rf"negative values\. The {kernel} kernel compares histograms: it needs "
        r"non-negative columns"
    )
    with pytest.raises(ValueError, match=message):
        KCCA(1, blocks=[3, 3], kernel=["rbf", kernel]).fit(X)
    if kernel == "chi2":  # positive semi-definite: it fits, then refuses
        kcca = KCCA(1, blocks=[3, 3], kernel=["rbf", kernel]).fit(np.abs(X))
        with pytest.raises(ValueError, match=message):
            kcca.transform(X)
