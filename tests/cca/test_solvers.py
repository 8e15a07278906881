import numpy as np
import pytest
import scipy.linalg as sla
from scipy.sparse.linalg import aslinearoperator

from mmfuse.cca import _solvers
from mmfuse.cca._solvers import SingularBlockError, block_cholesky, eigh_top


def _problem(p=12, seed=0):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((p, p))
    A = A + A.T
    B1 = rng.standard_normal((5, 5))
    B2 = rng.standard_normal((p - 5, p - 5))
    blocks = [B1 @ B1.T + np.eye(5), B2 @ B2.T + np.eye(p - 5)]
    return A, blocks, sla.block_diag(*blocks)


@pytest.mark.parametrize("solver", ["dense", "iterative"])
def test_eigh_top_with_blocks_from_a_generator_factors_them_in_place(solver):
    # Blocks from an iterator are factored in their own memory (and packed
    # for Lanczos); the answer is that of the same blocks given as a list.
    A, blocks, _ = _problem()
    given = [np.asfortranarray(b) for b in blocks]
    expected = eigh_top(A, 3, B=blocks, solver=solver, random_state=0)
    values, vectors = eigh_top(
        A, 3, B=(b for b in given), solver=solver, random_state=0
    )
    np.testing.assert_allclose(values, expected[0], rtol=1e-12)
    np.testing.assert_allclose(vectors, expected[1], atol=1e-10)
    # Overwritten by its lower Cholesky factor.
    np.testing.assert_allclose(np.tril(given[0]), np.linalg.cholesky(blocks[0]))


@pytest.mark.parametrize("transpose", [False, True])
def test_packed_lower_solves_like_the_full_triangle(transpose):
    rng = np.random.default_rng(1)
    L = np.tril(rng.standard_normal((7, 7))) + 5 * np.eye(7)
    Y = rng.standard_normal((7, 3))
    expected = sla.solve_triangular(L, Y, lower=True, trans="T" if transpose else "N")
    solved = _solvers.PackedLower(L).solve(Y, transpose=transpose)
    np.testing.assert_allclose(solved, expected, rtol=1e-12)


@pytest.mark.parametrize("solver", ["dense", "iterative"])
def test_eigh_top_matches_full_generalized_eigh(solver):
    A, blocks, B = _problem()
    full_values, full_vectors = sla.eigh(A, B)
    values, vectors = eigh_top(A, 3, B=blocks, solver=solver, random_state=0)
    np.testing.assert_allclose(values, full_values[::-1][:3], rtol=1e-10)
    # B-orthonormal, and the same vectors up to sign.
    np.testing.assert_allclose(vectors.T @ B @ vectors, np.eye(3), atol=1e-10)
    expected = full_vectors[:, ::-1][:, :3]
    np.testing.assert_allclose(np.abs(vectors.T @ B @ expected), np.eye(3), atol=1e-8)


def test_eigh_top_one_matrix_and_identity():
    A, blocks, B = _problem()
    by_blocks = eigh_top(A, 2, B=blocks)
    by_matrix = eigh_top(A, 2, B=B)
    np.testing.assert_allclose(by_blocks[0], by_matrix[0], rtol=1e-12)
    np.testing.assert_allclose(by_blocks[1], by_matrix[1], atol=1e-10)
    values, _ = eigh_top(A, 2)
    np.testing.assert_allclose(values, np.linalg.eigvalsh(A)[::-1][:2], rtol=1e-12)


def test_eigh_top_solvers_agree_with_signs_and_on_operators():
    A, blocks, _ = _problem(p=30, seed=1)
    dense = eigh_top(A, 4, B=blocks, solver="dense")
    iterative = eigh_top(A, 4, B=blocks, solver="iterative", random_state=3)
    on_operator = eigh_top(
        aslinearoperator(A), 4, B=blocks, solver="iterative", random_state=7
    )
    for values, vectors in (iterative, on_operator):
        np.testing.assert_allclose(values, dense[0], rtol=1e-10)
        np.testing.assert_allclose(vectors, dense[1], atol=1e-8)


def test_sign_rule_largest_entry_positive():
    A, blocks, _ = _problem()
    _, vectors = eigh_top(A, 3, B=blocks)
    largest = vectors[np.abs(vectors).argmax(axis=0), np.arange(3)]
    assert (largest > 0).all()


def test_singular_block_is_named():
    A, blocks, _ = _problem()
    blocks[1][:, 0] = blocks[1][:, 1]
    blocks[1][0, :] = blocks[1][1, :]
    with pytest.raises(SingularBlockError, match="block 1") as info:
        eigh_top(A, 2, B=blocks)
    assert info.value.block == 1
    with pytest.raises(SingularBlockError, match="block 0 is zero"):
        block_cholesky([np.zeros((2, 2))])


def test_eigh_top_argument_errors():
    A, blocks, _ = _problem()
    with pytest.raises(TypeError, match="solver='dense' needs A as an ndarray"):
        eigh_top(aslinearoperator(A), 2, solver="dense")
    with pytest.raises(ValueError, match="needs n_components < 12"):
        eigh_top(A, 12, solver="iterative")
    with pytest.raises(ValueError, match="solver='lobster' is not one of"):
        eigh_top(A, 2, solver="lobster")


def test_dense_solve_survives_a_subset_driver_that_returns_nothing(monkeypatch):
    # Some BLAS builds' syevr return no eigenpair for a subset when the top
    # eigenvalues are close (scipy issue 13913): the full solve takes over.
    rng = np.random.RandomState(0)
    M = rng.standard_normal((6, 6))
    A, B = M + M.T, np.eye(6) + 0.1 * np.diag(rng.rand(6))
    expected = eigh_top(A, 2, B=B, solver="dense")
    eigh = sla.eigh

    def subset_returns_nothing(a, *args, subset_by_index=None, **kwargs):
        if subset_by_index is not None:
            return np.empty(0), np.empty((len(a), 0))
        return eigh(a, *args, **kwargs)

    monkeypatch.setattr(_solvers.sla, "eigh", subset_returns_nothing)
    values, vectors = eigh_top(A, 2, B=B, solver="dense")
    np.testing.assert_allclose(values, expected[0], rtol=1e-12)
    np.testing.assert_allclose(vectors, expected[1], atol=1e-12)
