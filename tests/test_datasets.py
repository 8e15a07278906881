import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from mmfuse import resolve_blocks
from mmfuse.datasets import load_mfeat, load_nutrimouse, make_multiview


def test_mfeat_frame_has_six_auto_blocks_in_order():
    bunch = load_mfeat(as_frame=True)
    assert bunch.data.shape == (2000, 649)
    indices, names = resolve_blocks("auto", 649, bunch.data.columns)
    assert names == ["fou", "fac", "kar", "pix", "zer", "mor"]
    assert [len(i) for i in indices] == [76, 216, 64, 240, 47, 6]
    assert bunch.frame.shape == (2000, 650)
    assert bunch.data.columns[0] == "fou__0" and bunch.feature_names[-1] == "mor__5"
    assert_array_equal(np.bincount(bunch.target), np.full(10, 200))


def test_mfeat_values_match_the_shared_archive():
    X, y = load_mfeat(views=["pix", "fou"], return_X_y=True)
    assert X.shape == (2000, 316) and X.dtype == np.float64
    # pix holds 2x3 window averages of a 15x16 image, integers 0..6
    assert set(np.unique(X[:, :240])) <= set(range(7))
    assert y.tolist()[:3] == [0, 0, 0] and y[-1] == 9


def test_mfeat_blocks_work_on_the_array():
    bunch = load_mfeat(views=["zer", "mor"])
    indices, names = resolve_blocks(bunch.blocks, bunch.data.shape[1])
    assert names == ["zer", "mor"] and [len(i) for i in indices] == [47, 6]


def test_nutrimouse():
    mice = load_nutrimouse(as_frame=True)
    assert mice.data.shape == (40, 141)
    assert mice.blocks == {"gene": 120, "lipid": 21}
    indices, names = resolve_blocks("auto", 141, mice.data.columns)
    assert names == ["gene", "lipid"] and [len(i) for i in indices] == [120, 21]
    assert mice.data.columns[0] == "gene__X36b4"
    assert sorted(set(mice.target)) == ["ppar", "wt"]
    X, diet = load_nutrimouse(target="diet", return_X_y=True)
    assert len(set(diet)) == 5 and X.shape == (40, 141)
    assert "Hepatology" in mice.DESCR


@pytest.mark.parametrize(
    "views, match",
    [
        (["fou", "nope"], r"unknown: \['nope'\]"),
        ([], "non-empty"),
        (["fou", "fou"], "distinct"),
    ],
)
def test_bad_views(views, match):
    with pytest.raises(ValueError, match=match):
        load_mfeat(views=views)


def test_bad_nutrimouse_target():
    with pytest.raises(ValueError, match="target='age' must be 'genotype' or 'diet'"):
        load_nutrimouse(target="age")


def test_make_multiview_shapes_and_seed():
    X, Z = make_multiview(200, view_dims=[3, 5, 4], n_latent=2, random_state=0)
    assert X.shape == (200, 12) and Z.shape == (200, 2)
    X2, _ = make_multiview(200, view_dims=[3, 5, 4], n_latent=2, random_state=0)
    assert_array_equal(X, X2)


def test_make_multiview_linear_views_are_explained_by_the_latent():
    X, Z = make_multiview(2000, view_dims=[6, 6], n_latent=2, noise=0.1, random_state=1)
    coef, *_ = np.linalg.lstsq(Z, X, rcond=None)
    residual = X - Z @ coef
    # what is left is the noise: standard deviation 0.1 in every column
    assert_allclose(residual.std(axis=0), 0.1, rtol=0.1)


def test_make_multiview_nonlinear_view_has_no_linear_signal():
    X, Z = make_multiview(
        5000, [4, 4], n_latent=1, noise=0.0, nonlinear=True, random_state=2
    )
    # view 1 is (z^2 - 1) w: uncorrelated with z, yet a deterministic function
    assert abs(np.corrcoef(Z[:, 0], X[:, 4])[0, 1]) < 0.05
    assert_allclose(np.abs(np.corrcoef(Z[:, 0] ** 2, X[:, 4])[0, 1]), 1.0, atol=1e-8)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n_samples": 0}, "n_samples=0"),
        ({"view_dims": []}, "view_dims"),
        ({"noise": -1.0}, "noise=-1.0"),
        ({"n_latent": 0}, "n_latent=0"),
        # NaN and infinite noise gave non-finite data silently; a bool was
        # taken for 1 and failed deep in numpy.
        ({"noise": float("nan")}, "noise=nan must be a finite float >= 0"),
        ({"noise": float("inf")}, "noise=inf must be a finite float >= 0"),
        ({"n_samples": True}, "n_samples=True must be a positive int"),
        ({"view_dims": [3, False]}, r"view_dims=\[3, False\]"),
    ],
)
def test_make_multiview_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_multiview(**kwargs)
