"""Modality blocks: which columns of one 2-D ``X`` form each modality.

Every multimodal estimator of mmfuse takes one ``X`` with the modalities side
by side and a ``blocks`` parameter. :func:`resolve_blocks` is the one resolver
that turns any accepted form of ``blocks`` into integer column indices and
modality names; estimators call it in ``fit`` through :func:`fit_blocks`.
"""

from collections.abc import Mapping
from numbers import Integral

import numpy as np
import scipy.sparse as sp
from numpy.typing import ArrayLike, NDArray
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from mmfuse.utils._compat import (
    Interval,
    StrOptions,
    _check_feature_names_in,
    _fit_context,
)

# What the other modules of mmfuse import from here (tests/test_package.py
# checks that the two agree); the public ones are re-exported by mmfuse.
__all__ = [
    "BLOCKS_CONSTRAINT",
    "SEPARATOR",
    "shared_space_names",
    "ModalitySelector",
    "check_any_modality",
    "check_complete",
    "check_every_modality_seen",
    "check_numeric",
    "fit_blocks",
    "incomplete_rows",
    "modality_mask",
    "modality_names",
    "modality_position",
    "numeric_target",
    "per_modality",
    "present_modalities",
    "raise_incomplete",
    "resolve_blocks",
    "resolve_blocks_for",
    "stack_modalities",
    "validate_numeric",
]

# The separator ColumnTransformer writes between a transformer's name and a
# feature name; ``blocks="auto"`` splits feature names on it.
SEPARATOR = "__"

BLOCKS_CONSTRAINT = [
    StrOptions({"auto"}),
    Interval(Integral, 1, None, closed="left"),
    list,
    tuple,
    dict,
]


def resolve_blocks(
    blocks,
    n_features: int,
    feature_names: ArrayLike | None = None,
    *,
    min_blocks: int = 1,
) -> tuple[list[NDArray[np.intp]], list[str]]:
    """Resolve a ``blocks`` specification into column indices and names.

    Columns that belong to no block are ignored by the estimators.

    Parameters
    ----------
    blocks : "auto", int, list, tuple or dict
        Which columns form each modality:

        - ``"auto"``: from feature names of the form ``"<modality>__<feature>"``
          (as :class:`~sklearn.compose.ColumnTransformer` writes them), in
          order of first appearance; columns without ``"__"`` are ignored.
        - an int ``k``: ``k`` consecutive blocks of near-equal width.
        - a list of ints: consecutive blocks of these widths, from column 0.
        - a list of slices, integer index lists or boolean masks: explicit
          column positions, one entry a block.
        - a list of strings: name prefixes; block ``"img"`` holds the columns
          whose name starts with ``"img__"`` or, if there is none, with
          ``"img"``.
        - a dict ``{name: spec}``: any of the above, named; a spec is a slice,
          a list of positions, a boolean mask, a list of column names or a
          prefix string; a dict whose values are all ints gives widths.
    n_features : int
        Number of columns of ``X``.
    feature_names : array-like of str, default=None
        Column names of ``X``, needed by ``"auto"``, prefixes and names.
    min_blocks : int, default=1
        Fewest blocks the caller accepts.

    Returns
    -------
    blocks : list of ndarray of intp
        The column positions of each block, in the order given.
    names : list of str
        The modality names (``"block0"``, ``"block1"``… when unnamed).

    Raises
    ------
    ValueError
        When a block is empty, out of range, overlaps another, names an
        unknown column or prefix, or when there are fewer than ``min_blocks``.

    Examples
    --------
    >>> from mmfuse import resolve_blocks
    >>> idx, names = resolve_blocks([2, 3], n_features=5)
    >>> [i.tolist() for i in idx], names
    ([[0, 1], [2, 3, 4]], ['block0', 'block1'])
    >>> idx, names = resolve_blocks("auto", 3, ["img__a", "img__b", "txt__a"])
    >>> [i.tolist() for i in idx], names
    ([[0, 1], [2]], ['img', 'txt'])
    """
    if feature_names is not None:
        feature_names = np.asarray(feature_names, dtype=object)
    if isinstance(blocks, str):
        if blocks != "auto":
            raise ValueError(
                f"blocks={blocks!r} is not understood: the only string accepted "
                f"is 'auto'; to select the columns prefixed {blocks!r}, pass "
                f"blocks=[{blocks!r}, ...] with one prefix a modality."
            )
        indices, names = _blocks_from_feature_names(feature_names)
    elif isinstance(blocks, Integral) and not isinstance(blocks, bool):
        indices = _equal_blocks(int(blocks), n_features)  # before k names are made
        names = modality_names(blocks)
    elif isinstance(blocks, Mapping | list | tuple):
        names = modality_names(blocks)
        specs = list(blocks.values() if isinstance(blocks, Mapping) else blocks)
        indices = _blocks_from_specs(specs, names, n_features, feature_names)
    else:
        raise ValueError(
            f"blocks={blocks!r} of type {type(blocks).__name__} is not "
            f"understood; pass 'auto', an int, a list of widths, a list of "
            f"column selections or a dict of named blocks."
        )
    _check_blocks(indices, names, n_features, min_blocks)
    return indices, names


def resolve_blocks_for(
    blocks, X, *, min_blocks: int = 1
) -> tuple[list[NDArray[np.intp]], list[str]]:
    """Resolve ``blocks`` against a raw ``X``: its width and column names.

    For the code that meets ``X`` before any estimator has validated it (a
    column selector, a data check): a DataFrame's column names are read as
    strings, as ``validate_data`` would record them.

    Parameters
    ----------
    blocks : "auto", int, list, tuple or dict
        The modality blocks, in any form :func:`resolve_blocks` accepts.
    X : {array-like, sparse matrix, DataFrame} of shape (n_samples, n_features)
        The data, modalities side by side.
    min_blocks : int, default=1
        Fewest blocks the caller accepts.

    Returns
    -------
    blocks : list of ndarray of intp
        The column positions of each block, in the order given.
    names : list of str
        The modality names.

    Examples
    --------
    >>> import pandas as pd
    >>> from mmfuse._blocks import resolve_blocks_for
    >>> X = pd.DataFrame([[1.0, 2.0, 3.0]], columns=["img__a", "img__b", "txt__a"])
    >>> idx, names = resolve_blocks_for("auto", X)
    >>> [i.tolist() for i in idx], names
    ([[0, 1], [2]], ['img', 'txt'])
    """
    columns = getattr(X, "columns", None)
    return resolve_blocks(
        blocks,
        np.shape(X)[1],
        None if columns is None else [str(c) for c in columns],
        min_blocks=min_blocks,
    )


def modality_names(blocks) -> list[str] | None:
    """Name the modalities of ``blocks`` before ``X`` is seen.

    The names :func:`resolve_blocks` gives: a dict's keys, a list of
    prefixes itself, else ``"block0"``, ``"block1"``… one a block.

    Parameters
    ----------
    blocks : object
        A ``blocks`` specification, as given.

    Returns
    -------
    names : list of str or None
        The names (empty for an empty list or dict, or an int below 1), or
        None where ``X`` is needed to tell them (``"auto"``) or the form is
        not one :func:`resolve_blocks` accepts.

    Raises
    ------
    ValueError
        When ``blocks`` is a dict with a key that is not a non-empty string.

    Examples
    --------
    >>> from mmfuse._blocks import modality_names
    >>> modality_names(2), modality_names(["img", "txt"]), modality_names("auto")
    (['block0', 'block1'], ['img', 'txt'], None)
    """
    if isinstance(blocks, Integral) and not isinstance(blocks, bool):
        return [f"block{i}" for i in range(blocks)]
    if isinstance(blocks, Mapping):
        for name in blocks:
            if not isinstance(name, str) or not name:
                raise ValueError(
                    f"blocks is a dict whose keys must be non-empty modality "
                    f"names (str); got the key {name!r}."
                )
        return list(blocks)
    if isinstance(blocks, list | tuple):
        if blocks and all(isinstance(spec, str) for spec in blocks):
            return list(blocks)
        return [f"block{i}" for i in range(len(blocks))]
    return None


def _equal_blocks(k: int, n_features: int) -> list[NDArray[np.intp]]:
    if k < 1:
        raise ValueError(f"blocks={k} must be a positive number of blocks.")
    if k > n_features:
        raise ValueError(
            f"blocks={k} asks for {k} blocks but X has n_features={n_features}"
            f" ({n_features} feature(s)); use blocks <= {n_features}."
        )
    return np.array_split(np.arange(n_features, dtype=np.intp), k)


def _blocks_from_feature_names(feature_names):
    if feature_names is None:
        raise ValueError(
            "blocks='auto' needs feature names of the form "
            "'<modality>__<feature>' (a DataFrame such as "
            "load_mfeat(as_frame=True).data, or a ColumnTransformer's output "
            "as a DataFrame, by set_output(transform='pandas')), but X has no "
            "feature names. Pass blocks explicitly: an int k, a list of widths "
            "such as [76, 216], or a dict of column positions (a sparse "
            "output, e.g. of a TfidfVectorizer, is never a DataFrame: give "
            "the widths of its parts)."
        )
    groups: dict[str, list[int]] = {}
    for position, name in enumerate(feature_names):
        prefix, separator, _ = str(name).partition(SEPARATOR)
        if separator and prefix:
            groups.setdefault(prefix, []).append(position)
    if not groups:
        shown = ", ".join(repr(str(n)) for n in feature_names[:3])
        raise ValueError(
            f"blocks='auto' found no feature name of the form "
            f"'<modality>__<feature>' (X's columns start {shown}). Rename the "
            f"columns with a modality prefix, or pass blocks explicitly, e.g. "
            f"a dict of column names."
        )
    return [np.asarray(v, dtype=np.intp) for v in groups.values()], list(groups)


def _blocks_from_specs(specs, names, n_features, feature_names):
    if not specs:
        raise ValueError("blocks is empty; give at least one block.")
    widths = [isinstance(s, Integral) and not isinstance(s, bool) for s in specs]
    if all(widths):
        return _blocks_from_widths([int(s) for s in specs], names, n_features)
    if any(widths):
        name = names[widths.index(True)]
        raise ValueError(
            f"block {name!r} is an int while other blocks are column "
            f"selections; give every block as a width, or block {name!r} as a "
            f"list of positions such as [{specs[widths.index(True)]}]."
        )
    return [
        _one_block(spec, name, n_features, feature_names)
        for spec, name in zip(specs, names, strict=True)
    ]


def _blocks_from_widths(widths, names, n_features):
    for width, name in zip(widths, names, strict=True):
        if width < 1:
            raise ValueError(
                f"block {name!r} has width {width}; every width must be >= 1."
            )
    total = sum(widths)
    if total > n_features:
        raise ValueError(
            f"blocks widths {widths} add up to {total} columns but X has only "
            f"{n_features}: block {names[-1]!r} is out of range."
        )
    bounds = np.cumsum([0, *widths])
    return [
        np.arange(a, b, dtype=np.intp)
        for a, b in zip(bounds[:-1], bounds[1:], strict=True)
    ]


def _one_block(spec, name, n_features, feature_names):
    if isinstance(spec, slice):
        return _block_from_slice(spec, name, n_features)
    if isinstance(spec, str):
        return _block_from_prefix(spec, name, feature_names)
    try:
        values = np.asarray(spec)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"block {name!r} = {spec!r} is not understood.") from exc
    if values.ndim != 1:
        raise ValueError(
            f"block {name!r} must be a slice, a prefix or a 1-D list of "
            f"columns; got {spec!r}."
        )
    if values.size == 0:
        raise ValueError(f"block {name!r} is empty; give it at least one column.")
    if values.dtype == bool:
        if values.size != n_features:
            raise ValueError(
                f"block {name!r} is a boolean mask of length {values.size} but "
                f"X has {n_features} columns."
            )
        if not values.any():
            raise ValueError(
                f"block {name!r} is a boolean mask that selects no column; "
                f"give it at least one True."
            )
        return np.flatnonzero(values).astype(np.intp)
    if values.dtype.kind in "iu":
        return _block_from_positions(values, name, n_features)
    if values.dtype.kind in "UO" and all(isinstance(v, str) for v in values):
        return _block_from_names(values, name, feature_names)
    raise ValueError(
        f"block {name!r} = {spec!r} is not understood: give column positions "
        f"(ints), a boolean mask, column names (str) or a slice."
    )


def _block_from_slice(spec, name, n_features):
    for bound in (spec.start, spec.stop):
        if bound is not None and not isinstance(bound, Integral):
            raise ValueError(
                f"block {name!r} = {spec!r} must be a slice of column positions."
            )
        if bound is not None and not -n_features <= bound <= n_features:
            raise ValueError(
                f"block {name!r} = {spec!r} is out of range: X has "
                f"{n_features} columns."
            )
    if spec.step is not None and not isinstance(spec.step, Integral):
        raise ValueError(f"block {name!r} = {spec!r} must have an integer step.")
    if spec.step == 0:
        raise ValueError(f"block {name!r} = {spec!r} has step 0.")
    indices = np.arange(n_features, dtype=np.intp)[spec]
    if indices.size == 0:
        raise ValueError(
            f"block {name!r} = {spec!r} selects no column of the {n_features}."
        )
    return indices


def _block_from_positions(values, name, n_features):
    bad = values[(values < 0) | (values >= n_features)]
    if bad.size:
        raise ValueError(
            f"block {name!r} has column index {bad[0]} out of range: X has "
            f"{n_features} columns (valid positions 0 to {n_features - 1})."
        )
    unique, counts = np.unique(values, return_counts=True)
    if (counts > 1).any():
        raise ValueError(
            f"block {name!r} lists column {unique[counts > 1][0]} more than once."
        )
    return values.astype(np.intp)


def _require_names(feature_names, name, what):
    if feature_names is None:
        raise ValueError(
            f"block {name!r} is given by {what}, but X has no feature names; "
            f"pass a DataFrame with string column names, or give the block as "
            f"column positions."
        )


def _block_from_names(values, name, feature_names):
    _require_names(feature_names, name, "column names")
    position = {str(f): i for i, f in enumerate(feature_names)}
    unknown = [str(v) for v in values if v not in position]
    if unknown:
        raise ValueError(
            f"block {name!r} names unknown column(s) {unknown[:5]}; X's "
            f"columns are {list(feature_names[:5])}..."
        )
    return _block_from_positions(
        np.asarray([position[v] for v in values]), name, len(feature_names)
    )


def _block_from_prefix(prefix, name, feature_names):
    _require_names(feature_names, name, f"the prefix {prefix!r}")
    as_str = [str(f) for f in feature_names]
    for start in (prefix + SEPARATOR, prefix):
        found = [i for i, f in enumerate(as_str) if f.startswith(start)]
        if found:
            return np.asarray(found, dtype=np.intp)
    raise ValueError(
        f"block {name!r}: no column name starts with the prefix {prefix!r}; "
        f"X's columns start {as_str[:3]}."
    )


def _check_blocks(indices, names, n_features, min_blocks):
    if len(set(names)) != len(names):
        duplicated = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"modality names must be unique; {duplicated} repeat.")
    if len(indices) < min_blocks:
        raise ValueError(
            f"this estimator needs at least {min_blocks} modality blocks but "
            f"blocks resolved to {len(indices)} ({names}); pass more blocks, "
            f"e.g. blocks={min_blocks} or a list of {min_blocks} widths."
        )
    owner = np.full(n_features, -1)
    for b, block in enumerate(indices):
        taken = owner[block] >= 0
        if taken.any():
            other = names[owner[block][taken][0]]
            cols = block[taken][:5].tolist()
            raise ValueError(
                f"blocks {other!r} and {names[b]!r} overlap at column(s) {cols}; "
                f"each column may belong to one block only."
            )
        owner[block] = b


def fit_blocks(estimator: BaseEstimator, *, min_blocks: int = 1) -> None:
    """Resolve ``estimator.blocks`` after ``validate_data`` in ``fit``.

    Sets ``estimator.blocks_`` and ``estimator.modality_names_`` from
    ``n_features_in_`` and, when present, ``feature_names_in_``.

    Parameters
    ----------
    estimator : estimator with a ``blocks`` parameter
        Its ``fit`` has just run ``validate_data``.
    min_blocks : int, default=1
        Fewest blocks the estimator accepts.
    """
    estimator.blocks_, estimator.modality_names_ = resolve_blocks(
        estimator.blocks,
        estimator.n_features_in_,
        getattr(estimator, "feature_names_in_", None),
        min_blocks=min_blocks,
    )


def validate_numeric(estimator: BaseEstimator, X, y="no_validation", **params):
    """Call ``validate_data``; a cell of ``X`` that is not a number is named.

    scikit-learn's own message (``could not convert string to float: 'a'``)
    names neither the column nor the modality; this one says which row,
    column and modality hold the value (:func:`check_numeric`).

    Parameters
    ----------
    estimator : estimator
        Passed to :func:`~sklearn.utils.validation.validate_data`; its
        ``blocks_`` (or ``blocks``) name the modality in the message.
    X : {array-like, sparse matrix, DataFrame}
        The data.
    y : array-like or "no_validation", default="no_validation"
        As :func:`~sklearn.utils.validation.validate_data` takes it.
    **params : dict
        Passed to :func:`~sklearn.utils.validation.validate_data`.

    Returns
    -------
    validated : ndarray, sparse matrix or tuple
        What :func:`~sklearn.utils.validation.validate_data` returns.
    """
    try:
        validated = validate_data(estimator, X, y, **params)
    except ValueError as exc:
        _check_numeric_for(estimator, X, cause=exc)
        raise
    X_valid = validated[0] if isinstance(validated, tuple) else validated
    if getattr(getattr(X_valid, "dtype", None), "kind", None) == "O":
        # A pandas categorical of strings passes validate_data as objects.
        _check_numeric_for(estimator, X)
    return validated


def _check_numeric_for(estimator, X, cause=None):
    """:func:`check_numeric` with the estimator's blocks to name the modality."""
    blocks = getattr(estimator, "blocks_", None)
    names = getattr(estimator, "modality_names_", None)
    if blocks is None and hasattr(estimator, "blocks"):
        try:
            blocks, names = resolve_blocks_for(estimator.blocks, X)
        except (TypeError, ValueError, IndexError):
            blocks = names = None
    check_numeric(X, type(estimator).__name__, blocks, names, cause=cause)


def check_numeric(X, who: str, blocks=None, names=None, *, cause=None) -> None:
    """Raise a ValueError naming the first cell of ``X`` that is not a number.

    Missing values (NaN, None, pandas' NA) count as numbers: NaN marks a
    missing modality. Complex numbers are left to scikit-learn's message.

    Parameters
    ----------
    X : {array-like, sparse matrix, DataFrame}
        The data.
    who : str
        What needs numbers (an estimator's name), for the message.
    blocks : list of ndarray of intp, default=None
        Resolved blocks, to name the modality of the column.
    names : list of str, default=None
        Their modality names.
    cause : Exception, default=None
        The error this one explains (chained as its cause).

    Raises
    ------
    ValueError
        Naming the row, the column (and its name) and the modality.

    Examples
    --------
    >>> import numpy as np
    >>> from mmfuse._blocks import check_numeric
    >>> X = np.array([[1.0, 2.0], [3.0, "left"]], dtype=object)
    >>> check_numeric(X, "MCCA", [np.array([0]), np.array([1])], ["a", "b"])
    Traceback (most recent call last):
    ...
    ValueError: X column 1 of modality 'b' holds 'left' in row 1, which is not ...
    """
    found = _first_non_numeric(X)
    if found is None:
        return
    row, column, value = found
    where = f"X column {column}"
    columns = getattr(X, "columns", None)
    if columns is not None:
        where += f" ({columns[column]!r})"
    owners = [
        name
        for name, block in zip(names or [], blocks or [], strict=True)
        if column in block
    ]
    if owners:
        where += f" of modality {owners[0]!r}"
    raise ValueError(
        f"{where} holds {value!r} in row {row}, which is not a number; {who} "
        f"takes numbers only (NaN marks a missing modality). Encode that column "
        f"as numbers first (e.g. with OneHotEncoder in a ColumnTransformer, "
        f"named with its modality's prefix), or leave it out of X."
    ) from cause


def numeric_target(y, who: str, classifier: str) -> NDArray[np.float64]:
    """Return a regression target as float64; a value that is no number is named.

    Parameters
    ----------
    y : array-like of shape (n_samples,) or (n_samples, n_outputs)
        The target.
    who : str
        The regressor, for the message.
    classifier : str
        The classifier to suggest for class labels.

    Returns
    -------
    y : ndarray of float64
        The target as numbers (complex input is returned as it is, for
        scikit-learn's validation to reject).

    Raises
    ------
    ValueError
        Naming the first value that is not a number, and its row.
    """
    values = np.asarray(y)
    if values.dtype.kind == "c":
        return values  # scikit-learn's validation rejects complex data
    try:
        return values.astype(np.float64)
    except (TypeError, ValueError) as exc:
        values = np.asarray(y, dtype=object)
        found = _first_non_numeric(values.reshape(len(values), -1))
        if found is None:
            raise
        row, _, value = found
        raise ValueError(
            f"y holds {value!r} in row {row}, which is not a number; {who} needs "
            f"numeric targets (for class labels, use {classifier})."
        ) from exc


def _first_non_numeric(X):
    """``(row, column, value)`` of X's first cell that is no number, or None."""
    if sp.issparse(X) or np.ndim(X) != 2:
        return None
    if hasattr(X, "columns"):
        from pandas import isna

        values = X.to_numpy(dtype=object)
    else:
        values, isna = np.asarray(X), _is_none
        if values.dtype.kind in "biufc":
            return None
    for column in range(values.shape[1]):
        try:
            values[:, column].astype(np.float64)
        except (TypeError, ValueError):
            for row, value in enumerate(values[:, column]):
                if not (isna(value) or _converts(value)):
                    return row, column, value
    return None


def _is_none(value) -> bool:
    return value is None


def _converts(value) -> bool:
    """Whether ``value`` is a number: it converts to float, or is complex."""
    try:
        float(value)
    except (TypeError, ValueError):
        return isinstance(value, complex | np.complexfloating)
    return True


def modality_position(modality, names: list[str], what: str) -> int:
    """Position of a modality given by name or by position among ``names``.

    Parameters
    ----------
    modality : str or int
        A modality name, or a position from 0 to ``len(names) - 1``.
    names : list of str
        The resolved modality names (``modality_names_``).
    what : str
        What the value is, for the error (e.g. ``"modality"``).

    Returns
    -------
    position : int
        The modality's position.

    Raises
    ------
    ValueError
        Naming the value, the modalities and what to give instead.
    """
    if isinstance(modality, str) and modality in names:
        return names.index(modality)
    if (
        isinstance(modality, Integral)
        and not isinstance(modality, bool)
        and 0 <= modality < len(names)
    ):
        return int(modality)
    raise ValueError(
        f"{what} {modality!r} is not one of the modalities {names}; give a "
        f"name or a position from 0 to {len(names) - 1}."
    )


def _nan_counts(X, block: NDArray[np.intp]) -> NDArray[np.intp]:
    """Count the NaN entries of each row of ``X[:, block]``."""
    sub = X[:, block]
    if sp.issparse(sub):
        sub = sp.csr_array(sub)
        nan = sp.csr_array((np.isnan(sub.data), sub.indices, sub.indptr), sub.shape)
        return np.asarray(nan.sum(axis=1)).ravel()
    return np.isnan(sub).sum(axis=1)


def modality_mask(X, blocks: list[NDArray[np.intp]]) -> NDArray[np.bool_]:
    """Boolean ``(n_samples, n_blocks)``: True where a row has the modality.

    A row lacks a modality when its block is entirely NaN.
    """
    return np.column_stack([_nan_counts(X, block) < len(block) for block in blocks])


def present_modalities(X: ArrayLike, blocks="auto") -> NDArray[np.bool_]:
    """Tell which modalities each row has.

    A row *lacks* a modality when every column of that modality's block is
    NaN in that row. Estimators that cope with missing modalities (late
    fusion, the deep models) use this rule; the others reject such rows.

    Parameters
    ----------
    X : {array-like, sparse matrix, DataFrame} of shape (n_samples, n_features)
        The data, modalities side by side.
    blocks : "auto", int, list, tuple or dict, default="auto"
        The modality blocks, in any form :func:`resolve_blocks` accepts.

    Returns
    -------
    present : ndarray of bool, shape (n_samples, n_modalities)
        ``present[i, m]`` is True when row ``i`` has modality ``m``.

    Examples
    --------
    >>> import numpy as np
    >>> from mmfuse import present_modalities
    >>> X = np.array([[1.0, 2.0, 3.0], [np.nan, np.nan, 3.0]])
    >>> present_modalities(X, blocks=[2, 1])
    array([[ True,  True],
           [False,  True]])
    """
    values = _as_2d_float(X)
    indices, _ = resolve_blocks_for(blocks, X)
    return modality_mask(values, indices)


def _as_2d_float(X):
    if sp.issparse(X):
        return sp.csr_array(X, dtype=float)
    if hasattr(X, "to_numpy"):  # pandas: its NA (nullable dtypes) becomes NaN
        X = X.to_numpy(dtype=float, na_value=np.nan)
    X = np.asarray(X, dtype=float)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D; got an array of shape {X.shape}.")
    return X


def check_complete(
    X,
    blocks: list[NDArray[np.intp]],
    names: list[str],
    estimator_name: str,
    *,
    allow_missing: bool = False,
    columns=None,
) -> NDArray[np.bool_]:
    """Check that NaN in ``X`` only marks whole missing modalities.

    For the estimators that take no partial missing values (the CCA family):
    a row's modality must be complete, or, with ``allow_missing``, entirely
    NaN (missing).

    Parameters
    ----------
    X : {ndarray, sparse matrix} of shape (n_samples, n_features)
        Validated data that may contain NaN.
    blocks : list of ndarray
        Resolved blocks (``blocks_``).
    names : list of str
        Modality names (``modality_names_``).
    estimator_name : str
        Used in the message.
    allow_missing : bool, default=False
        Accept rows that lack a modality; when False every row needs every
        modality.
    columns : sequence, default=None
        The column names of ``X``, for the message (positions when None).

    Returns
    -------
    present : ndarray of bool, shape (n_samples, n_modalities)
        True where a row has the modality (all True unless ``allow_missing``).

    Raises
    ------
    ValueError
        Naming the modality, how many rows are at fault, and what to do;
        naming the columns NaN in every row of a modality whose other
        columns have values (an empty column of a table, say).
    """
    missing, partial = incomplete_rows(X, blocks)
    if any(partial) and not sp.issparse(X):
        empty = np.isnan(X).all(axis=0)
        for block, name in zip(blocks, names, strict=True):
            if empty[block].any() and not empty[block].all():
                at = block[empty[block]]
                labels = (
                    at if columns is None else np.asarray(columns, dtype=object)[at]
                )
                labels = labels.tolist()
                raise ValueError(
                    f"{len(labels)} column(s) of modality {name!r} are NaN in "
                    f"every row while its other columns have values: "
                    f"{labels[:5]}. {estimator_name} takes NaN only as a whole "
                    f"missing modality: drop empty columns, or impute them."
                )
    raise_incomplete(
        missing, partial, names, estimator_name, allow_missing=allow_missing
    )
    return modality_mask(X, blocks)


def incomplete_rows(X, blocks: list[NDArray[np.intp]]) -> tuple[NDArray, NDArray]:
    """Count, for each modality, the rows that lack it and the rows with NaN in part.

    Parameters
    ----------
    X : {ndarray, sparse matrix} of shape (n_samples, n_features)
        Validated data that may contain NaN.
    blocks : list of ndarray
        Resolved blocks (``blocks_``).

    Returns
    -------
    missing : ndarray of int of shape (n_modalities,)
        Rows whose block is all NaN.
    partial : ndarray of int of shape (n_modalities,)
        Rows whose block is NaN in part.
    """
    counts = [_nan_counts(X, block) for block in blocks]
    missing = [int((c == len(b)).sum()) for c, b in zip(counts, blocks, strict=True)]
    partial = [
        int(((c > 0) & (c < len(b))).sum()) for c, b in zip(counts, blocks, strict=True)
    ]
    return np.array(missing), np.array(partial)


def raise_incomplete(
    missing: NDArray,
    partial: NDArray,
    names: list[str],
    estimator_name: str,
    *,
    allow_missing: bool = False,
) -> None:
    """Raise the error of :func:`check_complete` from counts of rows.

    For statistics gathered by parts (the chunks of a Dask array), whose
    counts are summed before one message is given.

    Parameters
    ----------
    missing, partial : ndarray of int of shape (n_modalities,)
        As :func:`incomplete_rows` returns them.
    names : list of str
        Modality names (``modality_names_``).
    estimator_name : str
        Used in the message.
    allow_missing : bool, default=False
        Accept rows that lack a modality.

    Raises
    ------
    ValueError
        Naming the modality, how many rows are at fault, and what to do.
    """
    for n_missing, n_partial, name in zip(missing, partial, names, strict=True):
        if n_missing and not allow_missing:
            raise ValueError(
                f"{int(n_missing)} row(s) lack modality {name!r} (its block "
                f"is all NaN there): {estimator_name} needs every modality in "
                f"every row. Drop or impute those rows (e.g. "
                f"MultimodalVAE.impute), or use an estimator that handles "
                f"missing modalities, such as LateFusionClassifier."
            )
        if n_partial:
            raise ValueError(
                f"{int(n_partial)} row(s) have NaN in part of modality {name!r}: "
                f"{estimator_name} takes NaN only as a whole missing modality "
                f"(its block all NaN). Impute the other missing values (e.g. "
                f"sklearn.impute.SimpleImputer) first."
            )


def check_every_modality_seen(
    present: NDArray[np.bool_], blocks, names: list[str], who: str, columns=None
) -> None:
    """Reject a modality that no row has: nothing can learn from it.

    A failed join or a wrong block leaves a modality all NaN; a model would
    then score chance on it, or keep an untrained part for it, silently.

    Parameters
    ----------
    present : ndarray of bool, shape (n_samples, n_modalities)
        True where a row has the modality (:func:`modality_mask`).
    blocks : list of ndarray of int
        Each modality's column positions.
    names : list of str
        Modality names.
    who : str
        What needs the modality, for the message.
    columns : sequence, default=None
        Column labels of ``X`` (positions when None), to name the columns.

    Raises
    ------
    ValueError
        Naming the modality, its width and first columns, and what to do.
    """
    for name, block, seen in zip(names, blocks, present.any(axis=0), strict=True):
        if not seen:
            shown = [int(j) if columns is None else columns[j] for j in block[:5]]
            raise ValueError(
                f"modality {name!r} has no value in any row: all {len(block)} of "
                f"its columns (first: {shown}) are NaN in every row, so {who} "
                f"cannot learn from it (a failed join or a wrong block does "
                f"this). Fix the data, or leave the modality out of blocks."
            )


def check_any_modality(
    present: NDArray[np.bool_], names: list[str], estimator_name: str
) -> None:
    """Reject rows that lack every modality: no estimator can represent them.

    The one rule of mmfuse for such rows, shared by every estimator that
    takes rows with missing modalities.

    Parameters
    ----------
    present : ndarray of bool, shape (n_samples, n_modalities)
        True where a row has the modality (:func:`modality_mask`).
    names : list of str
        Modality names (``modality_names_``).
    estimator_name : str
        Used in the message.

    Raises
    ------
    ValueError
        Saying how many rows, which (the first five) and what to do.

    Examples
    --------
    >>> import numpy as np
    >>> from mmfuse._blocks import check_any_modality
    >>> check_any_modality(np.array([[True, False]]), ["a", "b"], "MCCA")
    >>> check_any_modality(np.array([[False, False]]), ["a", "b"], "MCCA")
    Traceback (most recent call last):
    ...
    ValueError: 1 row(s) (first: [0]) have none of the modalities ['a', 'b'] ...
    """
    empty = np.flatnonzero(~present.any(axis=1))
    if empty.size:
        raise ValueError(
            f"{empty.size} row(s) (first: {empty[:5].tolist()}) have none of the "
            f"modalities {names} (every block is all NaN there): "
            f"{estimator_name} cannot represent them. Drop those rows."
        )


def stack_modalities(mapping: Mapping | None = None, /, **arrays):
    """Put modalities side by side in one ``X`` and say where each lies.

    Parameters
    ----------
    mapping : dict of {str: array-like}, default=None
        Modality name to its 2-D data. Use either this or keyword arguments.
    **arrays : array-like of shape (n_samples, n_features_m)
        The modalities as keyword arguments, in order.

    Returns
    -------
    X : ndarray, sparse matrix or DataFrame of shape (n_samples, n_features)
        The modalities side by side, in the order given: a CSR matrix if any
        modality is sparse, a DataFrame with columns ``"<modality>__<column>"``
        if any is a DataFrame, else a float ndarray.
    blocks : dict of {str: int}
        Modality name to width, ready for any estimator's ``blocks``.

    Examples
    --------
    >>> import numpy as np
    >>> from mmfuse import stack_modalities
    >>> X, blocks = stack_modalities(image=np.ones((4, 3)), text=np.zeros((4, 2)))
    >>> X.shape, blocks
    ((4, 5), {'image': 3, 'text': 2})
    """
    if mapping is not None and arrays:
        raise ValueError(
            "stack_modalities takes a dict or keyword arguments, not both."
        )
    modalities = dict(mapping if mapping is not None else arrays)
    if not modalities:
        raise ValueError("stack_modalities needs at least one modality.")
    n_rows = None
    for name, data in modalities.items():
        shape = getattr(data, "shape", None) or np.shape(data)
        if len(shape) != 2:
            raise ValueError(
                f"modality {name!r} has shape {tuple(shape)}; each modality must "
                f"be 2-D (a single feature: reshape it with .reshape(-1, 1))."
            )
        if n_rows is None:
            first, n_rows = name, shape[0]
        elif shape[0] != n_rows:
            raise ValueError(
                f"modality {name!r} has {shape[0]} rows but {first!r} has "
                f"{n_rows}; all modalities must describe the same samples."
            )
    blocks = {name: int(np.shape(data)[1]) for name, data in modalities.items()}
    values = list(modalities.values())
    if any(sp.issparse(v) for v in values):
        return sp.hstack(values, format="csr", dtype=float), blocks
    if any(hasattr(v, "columns") for v in values):
        import pandas as pd

        frames = []
        for name, data in modalities.items():
            if not hasattr(data, "columns"):
                data = pd.DataFrame(np.asarray(data, dtype=float))
            columns = [f"{name}{SEPARATOR}{c}" for c in data.columns]
            frames.append(data.set_axis(columns, axis=1).reset_index(drop=True))
        return pd.concat(frames, axis=1), blocks
    return np.hstack([np.asarray(v, dtype=float) for v in values]), blocks


class ModalitySelector(TransformerMixin, BaseEstimator):
    """Keep the columns of one modality.

    A transformer for per-modality pipelines: put it first in a
    :class:`~sklearn.pipeline.Pipeline` to fit the following steps on one
    modality of a multimodal ``X``. NaN (missing modalities) and sparse
    input pass through unchanged.

    Parameters
    ----------
    blocks : "auto", int, list, tuple or dict, default="auto"
        The modality blocks, in any form :func:`resolve_blocks` accepts.
    modality : str or int, default=0
        The modality to keep: its name, or its position among the blocks.

    Attributes
    ----------
    blocks_ : list of ndarray of intp
        Column positions of each modality.
    modality_names_ : list of str
        Name of each modality.
    columns_ : ndarray of intp
        Column positions kept.
    n_features_in_ : int
        Number of columns seen in ``fit``.
    feature_names_in_ : ndarray of str of shape (n_features_in_,)
        Column names seen in ``fit``, when ``X`` had string column names.

    See Also
    --------
    stack_modalities : Build ``X`` and ``blocks`` from separate modalities.
    sklearn.compose.ColumnTransformer : Apply transformers to column subsets.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from mmfuse import ModalitySelector
    >>> X = np.arange(12.0).reshape(3, 4)
    >>> ModalitySelector(blocks={"a": 1, "b": 3}, modality="b").fit_transform(X)
    array([[ 1.,  2.,  3.],
           [ 5.,  6.,  7.],
           [ 9., 10., 11.]])
    >>> pipe = make_pipeline(ModalitySelector(blocks=2, modality=1), StandardScaler())
    >>> pipe.fit_transform(X).shape
    (3, 2)
    """

    _parameter_constraints: dict = {
        "blocks": BLOCKS_CONSTRAINT,
        "modality": [str, Interval(Integral, 0, None, closed="left")],
    }

    def __init__(self, blocks="auto", modality=0):
        self.blocks = blocks
        self.modality = modality

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Resolve the blocks and the modality to keep.

        Parameters
        ----------
        X : {array-like, sparse matrix, DataFrame} of shape (n_samples, n_features)
            Multimodal data.
        y : None
            Ignored.

        Returns
        -------
        self : ModalitySelector
            The fitted selector.
        """
        validate_numeric(self, X, accept_sparse=True, ensure_all_finite="allow-nan")
        fit_blocks(self)
        position = modality_position(self.modality, self.modality_names_, "modality")
        self.columns_ = self.blocks_[position]
        return self

    def transform(self, X):
        """Return the columns of the selected modality.

        Parameters
        ----------
        X : {array-like, sparse matrix, DataFrame} of shape (n_samples, n_features)
            Multimodal data with the columns seen in ``fit``.

        Returns
        -------
        X_modality : {ndarray, sparse matrix} of shape (n_samples, n_columns)
            The selected modality.
        """
        check_is_fitted(self)
        X = validate_numeric(
            self, X, accept_sparse=True, ensure_all_finite="allow-nan", reset=False
        )
        return X[:, self.columns_]

    def get_feature_names_out(self, input_features=None):
        """Names of the kept columns.

        Parameters
        ----------
        input_features : array-like of str, default=None
            Input column names; defaults to ``feature_names_in_`` or
            ``x0, x1, …``.

        Returns
        -------
        names : ndarray of str
            Names of the selected columns.
        """
        check_is_fitted(self)
        return _check_feature_names_in(self, input_features)[self.columns_]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.input_tags.sparse = True
        return tags


# ``per_modality`` called without ``default``: a dict is one value for all.
_NO_DEFAULT = object()


def shared_space_names(modality_names, components, output):
    """Output column names of an estimator that embeds modalities in one space.

    Parameters
    ----------
    modality_names : list of str
        The modalities, in the order of ``blocks_``.
    components : list of str
        The names of the shared space's dimensions.
    output : {"concat", "mean"}
        ``"concat"``: each modality's dimensions side by side, named
        ``"<modality>__<component>"`` (so that a following estimator with
        ``blocks="auto"`` finds the modalities); ``"mean"``: the components.

    Returns
    -------
    names : ndarray of str
    """
    if output == "mean":
        return np.asarray(components, dtype=object)
    return np.asarray(
        [f"{name}{SEPARATOR}{c}" for name in modality_names for c in components],
        dtype=object,
    )


def per_modality(
    name: str,
    value,
    names: list[str],
    *allowed,
    why: str = "",
    default=_NO_DEFAULT,
) -> list:
    """Resolve a per-modality parameter into one value a modality, checked.

    The one home of mmfuse's per-modality parameters (a ridge, a kernel, its
    coefficients, a likelihood, a module): a list, tuple or 1-D array gives
    one value a modality, in the order of ``names``; with ``default``, a
    dict ``{modality: value}`` gives the values of the modalities it names
    and ``default`` those of the others; anything else (a number, a string,
    a callable, None, a dict when there is no ``default``) is repeated for
    every modality. Each value is then checked against ``allowed``, so that a
    bad entry is reported with its modality before any computation uses it.

    Parameters
    ----------
    name : str
        Name of the parameter, for the messages.
    value : object
        The parameter as the user gave it.
    names : list of str
        Modality names (``modality_names_``).
    *allowed : object
        What each value may be, in the vocabulary of
        ``_parameter_constraints``: a constraint of scikit-learn's parameter
        validation (``Interval``, ``StrOptions``…), a type, the builtin
        ``callable`` or ``None``. A value must meet one of them; none given
        accepts anything.
    why : str, default=""
        Why the allowed range is what it is; added to the message of a value
        outside it.
    default : object, optional
        The value of the modalities a dict does not name. When it is given, a
        dict (any mapping) is read as ``{modality: value}``; when it is not, a
        dict is one value like any other (as KCCA's ``kernel_params``).

    Returns
    -------
    values : list
        One value a modality, in the order of ``names``.

    Raises
    ------
    ValueError
        When a list has not one entry a modality, when a dict names a
        modality that does not exist, or when a value is not allowed: the
        message names the parameter, the modality and the value.

    Examples
    --------
    >>> from numbers import Real
    >>> from mmfuse._blocks import per_modality
    >>> from mmfuse.utils._compat import Interval
    >>> positive = Interval(Real, 0, None, closed="neither")
    >>> per_modality("gamma", 0.5, ["a", "b"], positive, None)
    [0.5, 0.5]
    >>> per_modality("gamma", [0.5, -1], ["a", "b"], positive, None)
    Traceback (most recent call last):
    ...
    ValueError: gamma=[0.5, -1] gives -1 for modality 'b', but each value ...
    >>> per_modality("gamma", {"b": 2.0}, ["a", "b"], positive, None, default=None)
    [None, 2.0]
    >>> per_modality("gamma", {"c": 2.0}, ["a", "b"], positive, default=1.0)
    Traceback (most recent call last):
    ...
    ValueError: gamma names unknown modalities ['c']; the modalities are ['a', 'b'].
    """
    given = value.tolist() if isinstance(value, np.ndarray) else value
    by_name = default is not _NO_DEFAULT and isinstance(given, Mapping)
    one_each = by_name or isinstance(given, list | tuple)
    if by_name:
        unknown = sorted(set(given) - set(names), key=str)
        if unknown:
            raise ValueError(
                f"{name} names unknown modalities {unknown}; the modalities "
                f"are {names}."
            )
        values = [given.get(modality, default) for modality in names]
    elif one_each:
        if len(given) != len(names):
            raise ValueError(
                f"{name}={value!r} has {len(given)} entries but there are "
                f"{len(names)} modalities {names}; give one value for all, or "
                f"one a modality."
            )
        values = list(given)
    else:
        values = [given] * len(names)
    reason = f": {why}" if why else ""
    for modality, entry in zip(names, values, strict=True):
        if not allowed or any(_allows(c, entry) for c in allowed):
            continue
        expected = " or ".join(_describe(constraint) for constraint in allowed)
        if not one_each:
            raise ValueError(f"{name}={value!r} must be {expected}{reason}.")
        raise ValueError(
            f"{name}={value!r} gives {entry!r} for modality {modality!r}, but "
            f"each value must be {expected}{reason}. Change that entry."
        )
    return values


def _allows(constraint, value) -> bool:
    """Whether ``value`` meets one constraint of :func:`per_modality`."""
    if constraint is None:
        return value is None
    if constraint is callable:
        return callable(value)
    if isinstance(constraint, type):
        return isinstance(value, constraint)
    return constraint.is_satisfied_by(value)


def _describe(constraint) -> str:
    """Say in words what a constraint of :func:`per_modality` allows."""
    if constraint is None:
        return "None"
    if constraint is callable:
        return "a callable"
    if isinstance(constraint, type):
        return f"a {constraint.__name__}"
    if isinstance(constraint, StrOptions):
        return f"one of {sorted(constraint.options)}"
    return str(constraint)
