"""The shared core of the CCA family: blocks, solver rule, post-processing."""

import numpy as np

from mmfuse.cca._base import (
    choose_solver,
    regularized_block,
    stacked_slices,
    unit_variance_signs,
)


def test_stacked_slices():
    assert stacked_slices([2, 3, 1]) == [slice(0, 2), slice(2, 5), slice(5, 6)]
    assert stacked_slices(np.array([4])) == [slice(0, 4)]


def test_regularized_block_relative_and_absolute():
    C = np.array([[4.0, 1.0], [1.0, 2.0]])  # trace / width = 3
    np.testing.assert_allclose(
        regularized_block(C, 0.5, relative=True), [[3.5, 0.5], [0.5, 2.5]]
    )
    np.testing.assert_allclose(
        regularized_block(C, 0.5, relative=False), [[2.5, 0.5], [0.5, 1.5]]
    )
    np.testing.assert_array_equal(
        regularized_block(C, 1.0, relative=True), 3 * np.eye(2)
    )
    np.testing.assert_array_equal(C, [[4.0, 1.0], [1.0, 2.0]])
    out = regularized_block(C, 0.5, relative=False, overwrite=True)
    assert out is C
    np.testing.assert_allclose(C, [[2.5, 0.5], [0.5, 1.5]])


def test_regularized_block_keeps_float32_covariance_in_float64():
    # The ridge is a float64 number: the block is float64, as it always was.
    C = np.eye(3, dtype=np.float32)
    assert regularized_block(C, np.float64(0.1), relative=True).dtype == np.float64


def test_auto_solver_rule():
    assert choose_solver("dense", 1, 10**6) == "dense"
    assert choose_solver("iterative", 5, 10) == "iterative"
    # On a formed matrix: Lanczos beyond 5000 columns, for few components.
    assert choose_solver("auto", 10, 5000) == "dense"
    assert choose_solver("auto", 10, 5001) == "iterative"
    assert choose_solver("auto", 501, 5001) == "dense"
    # On stored features: by the rough count of operations.
    assert choose_solver("auto", 3, 6000, n_rows=2000) == "iterative"
    assert choose_solver("auto", 3, 1500, n_rows=10**5) == "dense"
    assert choose_solver("auto", 3, 20, n_rows=10**5) == "dense"


def test_unit_variance_and_one_sign_rule():
    variances = np.array([[4.0, 0.25, 0.0], [1.0, 4.0, 9.0]])
    basis = [np.array([[1.0, -1.0, 5.0]]), np.array([[-3.0, 1.0, 1.0]])]
    scale = unit_variance_signs(variances, basis)
    # Scaled basis stacked: [[0.5, -2, 0], [-3, 0.5, 1/3]]; the entry of
    # largest magnitude of each column becomes positive; variance 0 gives 0.
    np.testing.assert_allclose(scale, [[-0.5, -2.0, 0.0], [-1.0, -0.5, 1 / 3]])
