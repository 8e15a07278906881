"""The CCA family on Dask arrays: statistics reduced where the rows lie.

MCCA, GCCA and Nyström KCCA depend on their rows only through sufficient
statistics (:mod:`mmfuse.cca._statistics`). Each chunk of rows gives, on
the worker that holds it, its unfinished sums
(:class:`~mmfuse.cca._statistics.ShiftedSums`: the upper triangle of its
cross-products and its column sums, shifted by one vector chosen on the
client, as in memory, from the first rows); they merge by addition in a
tree (:func:`_tree_reduce`, ``_SPLIT_EVERY`` at a time, as
``dask.array.reduction`` does), so only a ``P × P`` matrix per merge moves
and the client receives one, which it finishes once (centring, mirroring).
The solve then runs on the client as for in-memory data, so the model is
the same to rounding. ``transform`` maps each chunk with the fitted
estimator, lazily.

This module imports Dask; it is imported only when a fit or a transform
receives a Dask collection (:func:`mmfuse.utils._dask.is_dask_collection`).
"""

from functools import partial, reduce

import dask
import dask.array as da
import numpy as np
import scipy.linalg as sla
from sklearn import config_context
from sklearn.utils import check_random_state
from sklearn.utils.validation import assert_all_finite, check_is_fitted

from mmfuse._blocks import (
    fit_blocks,
    incomplete_rows,
    raise_incomplete,
    validate_numeric,
)
from mmfuse.cca._base import (
    regularized_block,
    solve_top,
    stacked_slices,
    unit_variance_signs,
)
from mmfuse.cca._kernel_features import (
    centred_rank,
    landmark_count,
    nystroem_features,
    nystroem_rows,
)
from mmfuse.cca._solvers import sumcor_matrix
from mmfuse.cca._statistics import (
    FIRST_ROWS,
    needs_shift,
    shifted_sums,
    unshifted_is_accurate,
)
from mmfuse.metrics import canonical_correlation_from_covariance
from mmfuse.utils._compat import _check_sample_weight, _get_output_config

__all__ = ["fit_kcca", "fit_multiset", "transform"]

# Partial results merged by one task of the tree reduction.
_SPLIT_EVERY = 8


def _prepared(X, *, sizes):
    """Return ``X`` as a Dask array chunked by rows, and its first rows in memory.

    The first ``FIRST_ROWS`` rows (a DataFrame's with their column names)
    are what the estimator validates, and what chooses the shift of the
    products (:func:`_shift`); the array is cast to their validated dtype.
    They are read from the first chunk alone when it has two rows or more.
    The chunks' row counts, when unknown (a DataFrame's partitions, an
    array after a boolean mask), are counted only if ``sizes``: that is a
    pass over all the data.
    """
    if hasattr(X, "to_dask_array"):
        # A head across partitions would compute every partition.
        head = X.partitions[0].compute().head(FIRST_ROWS)
        if len(head) < 2:
            head = X.head(FIRST_ROWS, npartitions=-1)
        return head, X.to_dask_array(lengths=True if sizes else None)
    if np.isnan(X.shape[0]):
        head = X.blocks[0].compute()[:FIRST_ROWS]
        if not sizes and len(head) >= 2:
            return head, X
        X = X.compute_chunk_sizes()
    return X[:FIRST_ROWS].compute(), X


def _rows(X, dtype):
    """``X`` (a Dask array) of ``dtype``, chunked by rows only."""
    return X.astype(dtype).rechunk({1: -1})


def _weights(sample_weight, X):
    """Return the weights chunked like the rows of ``X`` (Dask), or None."""
    if sample_weight is None:
        return None
    if not hasattr(sample_weight, "rechunk"):
        sample_weight = da.from_array(np.asarray(sample_weight), chunks=-1)
    if sample_weight.shape != (X.shape[0],):
        raise ValueError(
            f"sample_weight has shape {sample_weight.shape}, but X has "
            f"{X.shape[0]} rows; give one weight a row, shape ({X.shape[0]},)."
        )
    return sample_weight.astype(np.float64).rechunk((X.chunks[0],))


def _chunks(X, weights):
    """One (rows, weights or None) pair of delayed objects a chunk."""
    blocks = X.to_delayed().ravel()
    if weights is None:
        return [(block, None) for block in blocks]
    return list(zip(blocks, weights.to_delayed().ravel(), strict=True))


def _kept(chunk, weights):
    """Rows of positive weight of one chunk, and their weights (validated)."""
    if weights is None:
        return chunk, None
    if not weights.any():  # sklearn refuses all-zero weights, fine in a chunk
        return chunk[:0], weights[:0]
    weights = _check_sample_weight(
        weights, chunk, dtype=np.float64, ensure_non_negative=True
    )
    kept = weights > 0
    return chunk[kept], weights[kept]


def _combine(parts):
    """Merge partial results ``(sums or None, NaN counts or None)``."""
    sums = [s for s, _ in parts if s is not None]
    counts = [c for _, c in parts if c is not None]
    return (
        reduce(lambda a, b: a.merge(b), sums) if sums else None,
        np.sum(counts, axis=0) if counts else None,
    )


def _tree_reduce(parts):
    """Merge delayed partial results in a tree and compute the one result."""
    while len(parts) > _SPLIT_EVERY:
        parts = [
            dask.delayed(_combine)(parts[i : i + _SPLIT_EVERY])
            for i in range(0, len(parts), _SPLIT_EVERY)
        ]
    return dask.delayed(_combine)(parts).compute()


def _nan_counts(chunk, blocks):
    """Rows lacking each modality, and rows with NaN in part of one."""
    return np.array(incomplete_rows(chunk, blocks))


def _shift(first, dtype):
    """Return the one shift of every chunk's products, chosen on the first rows.

    As in memory (:func:`~mmfuse.cca._statistics.needs_shift`): zero, so
    that the products read the rows in place, when the first rows' means
    are within their spread, else their mean. Rows with NaN are left out.
    """
    first = first[np.isfinite(first).all(axis=1)]
    if not len(first) or not needs_shift(first):
        return np.zeros(first.shape[1], dtype)
    return first.mean(axis=0, dtype=np.float64).astype(dtype)


def _multiset_part(chunk, weights, *, columns, blocks, shift):
    """Unfinished statistics of one chunk's rows for MCCA and GCCA; NaN counted."""
    chunk, weights = _kept(chunk, weights)
    if not len(chunk):
        return None, None
    with np.errstate(over="ignore", invalid="ignore"):
        sums = shifted_sums(chunk, columns, shift, weights=weights)
    if np.isfinite(sums.sums).all():
        return sums, None
    # Infinity first, with scikit-learn's message, as in memory.
    assert_all_finite(chunk, allow_nan=True, input_name="X")
    counts = _nan_counts(chunk, blocks)
    # No NaN: an overflow, which the solve reports naming the modality.
    return (sums, None) if not counts.any() else (None, counts)


def _check_counts(estimator, counts):
    if counts is not None:
        raise_incomplete(*counts, estimator.modality_names_, type(estimator).__name__)


def _multiset_statistics(estimator, chunks, columns, shift):
    """Statistics of the chunks' rows: unfinished on the workers, finished here."""
    part = partial(
        _multiset_part, columns=columns, blocks=estimator.blocks_, shift=shift
    )
    sums, counts = _tree_reduce([dask.delayed(part)(c, w) for c, w in chunks])
    _check_counts(estimator, counts)
    if sums is None:
        estimator._check_weight_sum(0.0)
    return sums.statistics()


def fit_multiset(estimator, X, sample_weight=None):
    """Fit MCCA or GCCA on a Dask array or DataFrame chunked by rows.

    Parameters
    ----------
    estimator : MCCA or GCCA
        Its parameters validated.
    X : dask.array.Array or dask.dataframe.DataFrame of shape (n, n_features)
        The rows.
    sample_weight : dask.array.Array or array-like of shape (n,), default=None
        Row weights, repetition counts.

    Returns
    -------
    estimator : MCCA or GCCA
        Fitted.
    """
    # Without weights, nothing needs the chunks' row counts.
    head, X = _prepared(X, sizes=sample_weight is not None)
    head = estimator._validate(head, reset=True)
    X = _rows(X, head.dtype)
    columns = np.concatenate(estimator.blocks_)
    chunks = _chunks(X, _weights(sample_weight, X))
    shift = _shift(head[:, columns], X.dtype)
    statistics = _multiset_statistics(estimator, chunks, columns, shift)
    if not (shift.any() or unshifted_is_accurate(statistics)):
        # Means beyond the spread that the first rows did not show (as in
        # memory): a second pass, shifted by the mean of all rows.
        shift = statistics.mean.astype(X.dtype)
        statistics = _multiset_statistics(estimator, chunks, columns, shift)
    estimator._set_statistics(X, statistics)
    estimator._solved()
    return estimator


def _positive(chunk, weights):
    """Count a chunk's rows of positive weight; sum their weights."""
    _, weights = _kept(chunk, weights)
    return np.array([len(weights), weights.sum()])


def _rows_at(chunk, weights, ranks, start):
    """Rows of a chunk at ``ranks`` among those of positive weight, and where."""
    kept = np.arange(len(chunk)) if weights is None else np.flatnonzero(weights > 0)
    rows = kept[ranks]
    return chunk[rows], start + rows


def _gather(X, weights, positions, counts):
    """Rows of ``X`` at ``positions`` counted among rows of positive weight.

    Only the chunks that hold one of them are read; only these rows move.
    """
    ends = np.cumsum(counts)
    starts = np.concatenate([[0], np.cumsum(X.chunks[0])[:-1]])
    owner = np.searchsorted(ends, positions, side="right")
    tasks = [
        dask.delayed(_rows_at)(
            chunk, w, positions[owner == c] - (ends[c] - counts[c]), starts[c]
        )
        for c, (chunk, w) in enumerate(_chunks(X, weights))
        if (owner == c).any()
    ]
    found = dask.compute(*tasks)
    return np.vstack([r for r, _ in found]), np.concatenate([i for _, i in found])


def _features(chunk, maps):
    """Raw Nyström features of a chunk's rows, modalities side by side."""
    chunk = chunk.astype(np.float64, copy=False)
    return np.hstack(
        [
            nystroem_rows(chunk[:, block], kernel, support_rows, lower)
            for block, kernel, support_rows, lower in maps
        ]
    )


def _kcca_part(chunk, weights, *, maps, blocks, shift):
    """Unfinished statistics of one chunk's Nyström features; NaN counted."""
    chunk, weights = _kept(chunk, weights)
    if not len(chunk):
        return None, None
    if not np.isfinite(chunk.sum(dtype=np.float64)):
        assert_all_finite(chunk, allow_nan=True, input_name="X")  # as in memory
        return None, _nan_counts(chunk, blocks)
    if not maps:  # NaN counted only (a landmark row had NaN)
        return None, None
    features = _features(chunk, maps)
    return shifted_sums(features, np.arange(len(shift)), shift, weights=weights), None


def _largest(chunk, weights, *, maps, duals, offsets):
    """Each view's variate entry of largest magnitude (signed), a component.

    A view's centred variates ``(Φ − 1μᵀ) W`` are ``K(rows, X_S) α − μᵀW``
    with ``α = L_S⁻ᵀ W``: the kernel against the support rows times dual
    coefficients, with no triangular solve of the features.
    """
    chunk, _ = _kept(chunk, weights)
    if not len(chunk):
        return np.zeros((len(duals), duals[0].shape[1]))
    largest = []
    for (block, kernel, support_rows, _), alpha, offset in zip(
        maps, duals, offsets, strict=True
    ):
        rows = chunk[:, block].astype(np.float64, copy=False)
        variates = kernel(rows, support_rows) @ alpha - offset
        largest.append(variates[np.abs(variates).argmax(axis=0), range(alpha.shape[1])])
    return np.array(largest)


def _larger(parts):
    """Entry-wise, the part of larger magnitude."""
    parts = np.stack(parts)
    return np.take_along_axis(parts, np.abs(parts).argmax(axis=0)[None], 0)[0]


def fit_kcca(estimator, X, sample_weight=None):
    """Fit Nyström KCCA on a Dask array or DataFrame chunked by rows.

    Landmarks are drawn as in memory (the same rows for the same
    ``random_state``) and gathered to the client (reading the chunks that
    hold them); each chunk's features against them are reduced to their
    statistics on the workers, and a last pass reads the largest variates
    for the sign rule. That pass stays: the in-memory rule reads the entry
    of largest magnitude among all training variates, which no statistic
    of the rows gives, so the signs could only come from the weights by
    changing the in-memory signs too. It costs a kernel evaluation and a
    product by the dual coefficients a chunk, no triangular solve.

    Parameters
    ----------
    estimator : KCCA
        Its parameters validated.
    X : dask.array.Array or dask.dataframe.DataFrame of shape (n, n_features)
        The rows.
    sample_weight : dask.array.Array or array-like of shape (n,), default=None
        Row weights, repetition counts.

    Returns
    -------
    estimator : KCCA
        Fitted.
    """
    name = type(estimator).__name__
    if estimator.approximation != "nystroem":
        raise ValueError(
            f"{name} fits a Dask collection only with approximation='nystroem': "
            f"the exact fit needs every row's kernel against every other in one "
            f"process. Set approximation='nystroem' (and n_landmarks), or "
            f"compute X into memory first."
        )
    if estimator.solver == "iterative":
        raise ValueError(
            f"{name} with solver='iterative' multiplies by the n-row features "
            f"at every Lanczos step, which a Dask fit does not keep; use "
            f"solver='dense' or 'auto' (the dense solve of the reduced "
            f"covariance)."
        )
    head, X = _prepared(X, sizes=True)
    validate_numeric(
        estimator,
        head,
        dtype=np.float64,
        ensure_all_finite="allow-nan",
        ensure_min_samples=2,
    )
    fit_blocks(estimator, min_blocks=2)
    kernels = estimator._view_kernels()
    if any(kernel.kernel == "precomputed" for kernel in kernels):
        raise ValueError(
            f"{name} cannot take a precomputed kernel as a Dask collection (an "
            f"n x n kernel has no place on a cluster); give the modalities' "
            f"columns and a kernel name."
        )
    regularization = estimator._regularization()
    # Chunks stay in their dtype until a task makes their features (in
    # float64): no float64 copy of a chunk waits in a worker's memory, and
    # from a memory-mapped chunk the landmark rows read only their pages.
    X = _rows(X, X.dtype)
    weights = _weights(sample_weight, X)
    if weights is None:
        counts, total = np.array(X.chunks[0]), None
    else:
        positive = dask.compute(
            *[dask.delayed(_positive)(c, w) for c, w in _chunks(X, weights)]
        )
        counts = np.array([int(p[0]) for p in positive])
        total = float(sum(p[1] for p in positive))
        estimator._check_weight_sum(total)
    n = int(counts.sum())
    n_landmarks = landmark_count(estimator.n_landmarks, n)
    estimator._check_n_components(n)
    rng = check_random_state(estimator.random_state)
    landmarks = [
        np.sort(rng.choice(n, size=n_landmarks, replace=False)) for _ in kernels
    ]
    union = np.unique(np.concatenate(landmarks))
    rows, where = _gather(X, weights, union, counts)
    rows = rows.astype(np.float64)
    if not np.isfinite(rows.sum()):
        parts = [
            dask.delayed(_kcca_part)(
                c, w, maps=(), blocks=estimator.blocks_, shift=None
            )
            for c, w in _chunks(X, weights)
        ]
        _check_counts(estimator, _tree_reduce(parts)[1])
    factors, maps = [], []
    for block, kernel, chosen in zip(
        estimator.blocks_, kernels, landmarks, strict=True
    ):
        view = rows[np.searchsorted(union, chosen)][:, block]
        f = nystroem_features(
            view, kernel, None, np.arange(len(chosen)), tol=estimator.cholesky_tol
        )
        factors.append((f, where[np.searchsorted(union, chosen)]))
        maps.append((block, kernel, f.support_rows, f.lower))
    # Every chunk's features are shifted by the landmarks' mean feature.
    shift = _features(rows, maps).mean(axis=0)
    maps = dask.delayed(maps)  # one key that every task reads
    parts = [
        dask.delayed(_kcca_part)(c, w, maps=maps, blocks=estimator.blocks_, shift=shift)
        for c, w in _chunks(X, weights)
    ]
    sums, nan_counts = _tree_reduce(parts)
    _check_counts(estimator, nan_counts)
    statistics = sums.statistics()
    C = statistics.covariance()
    slices = stacked_slices(len(f.support) for f, _ in factors)
    ranks = _ranks(estimator, C, statistics, slices)
    estimator._check_n_components(n, ranks, kernel=True)  # KCCA's message
    D = [
        regularized_block(C[s, s], r, relative=False)
        for s, r in zip(slices, regularization, strict=True)
    ]
    eigenvalues, weights_ = solve_top(
        sumcor_matrix(C, D),
        D,
        estimator.n_components,
        slices,
        solver="dense",
        random_state=rng,
        tol=estimator.tol,
    )
    variances = np.array(
        [
            np.einsum("ik,ij,jk->k", W, C[s, s], W)
            for W, s in zip(weights_, slices, strict=True)
        ]
    )
    duals = [
        sla.solve_triangular(f.lower, W, lower=True, trans="T")
        for (f, _), W in zip(factors, weights_, strict=True)
    ]
    offsets = [statistics.mean[s] @ W for W, s in zip(weights_, slices, strict=True)]
    largest = dask.compute(
        *[
            dask.delayed(_largest)(c, w, maps=maps, duals=duals, offsets=offsets)
            for c, w in _chunks(X, weights)
        ]
    )
    largest = _larger(largest)
    # The sign rule reads the entry of largest magnitude of the stacked
    # training variates: each view's largest entry stands for its rows.
    scale = unit_variance_signs(variances, [m[None] for m in largest])
    weights_ = [W * s for W, s in zip(weights_, scale, strict=True)]
    cross = np.array(
        [
            [
                np.einsum("ik,ij,jk->k", W_v, C[v, w], W_w)
                for W_w, w in zip(weights_, slices, strict=True)
            ]
            for W_v, v in zip(weights_, slices, strict=True)
        ]
    )
    estimator._kernels = kernels
    estimator._set_n_features_out()
    estimator.dual_coef_ = [
        sla.solve_triangular(f.lower, W, lower=True, trans="T")
        for (f, _), W in zip(factors, weights_, strict=True)
    ]
    estimator.kernel_means_ = [
        f.lower @ statistics.mean[s] for (f, _), s in zip(factors, slices, strict=True)
    ]
    estimator.support_ = [at[f.support] for f, at in factors]
    estimator.X_fit_ = [f.support_rows for f, _ in factors]
    estimator.eigenvalues_ = eigenvalues
    estimator.canonical_correlations_ = canonical_correlation_from_covariance(cross)
    return estimator


def _ranks(estimator, C, statistics, slices):
    """Rank of each view's centred features, where it can bind (as in memory)."""
    ranks = []
    for s in slices:
        width = s.stop - s.start
        if width > estimator.n_components or width == 0:
            ranks.append(width)
            continue
        total = statistics.weight_sum
        gram = C[s, s] * (total - 1) / total
        ranks.append(centred_rank(gram, statistics.mean[s], statistics.n_rows))
    return ranks


def _transform_chunk(chunk, estimator):
    names = getattr(estimator, "feature_names_in_", None)
    if names is not None:
        import pandas as pd

        chunk = pd.DataFrame(chunk, columns=names)
    with config_context(transform_output="default"):  # whatever it is at compute
        return estimator.transform(chunk)


def transform(estimator, X):
    """Lazy ``transform`` of a Dask array or DataFrame, chunk by chunk.

    Parameters
    ----------
    estimator : MCCA, GCCA or KCCA
        Fitted.
    X : dask.array.Array or dask.dataframe.DataFrame of shape (n, n_features)
        The rows.

    Returns
    -------
    X_new : dask.array.Array of shape (n, n_features_out)
        The variates, chunked by rows like ``X``; nothing is computed.

    Raises
    ------
    ValueError
        When the estimator's output is set to a DataFrame (``set_output`` or
        scikit-learn's ``transform_output``): scikit-learn would build it in
        memory, computing every row on the client.
    """
    check_is_fitted(estimator)
    output = _get_output_config("transform", estimator)["dense"]
    if output != "default":
        name = type(estimator).__name__
        raise ValueError(
            f"{name}'s transform output is set to {output!r} (by set_output or "
            f"sklearn.set_config(transform_output=...)), which would compute "
            f"the whole Dask result into memory on the client. For a lazy Dask "
            f"array, call set_output(transform='default') on the {name}; for a "
            f"lazy Dask DataFrame, then dask.dataframe.from_dask_array("
            f"est.transform(X), columns=est.get_feature_names_out())."
        )
    if hasattr(X, "to_dask_array"):
        X = X.to_dask_array()
    X = X.rechunk({1: -1})
    n_out = estimator._n_features_out
    # One row of zeros tells the output's dtype.
    dtype = _transform_chunk(np.zeros((1, X.shape[1]), X.dtype), estimator).dtype
    return X.map_blocks(
        _transform_chunk,
        estimator,
        chunks=(X.chunks[0], (n_out,)),
        dtype=dtype,
        meta=np.empty((0, n_out), dtype),
    )
