"""The contract of every public estimator, as a catalogue of drawn inputs.

Used by ``tests/test_contract.py`` (the property test and its ``--report``
runner). A *case* is one estimator, its parameters and a description of the
data, drawn by hypothesis one input dimension at a time:

- :func:`shapes`: rows (1 to 60), modalities (1 to 4), widths (1 to 8);
- :func:`blocks_specs`: every form of ``blocks`` (an int, widths, slices,
  positions, masks, dicts, ``"auto"`` and prefixes over a DataFrame), valid
  or not;
- :func:`dtypes`: float64, float32, int, bool, object, object with a string;
- :func:`nan_patterns`: modalities missing in some rows, NaN in part of a
  block, rows lacking every modality, all-NaN columns, at fit and/or at
  predict time;
- :func:`scales`: 1e-300, 1e150, 1e300, inf;
- :func:`targets`: binary, string classes, one class, continuous, huge, NaN,
  wrong length;
- :func:`hyperparameters`: every string option of the estimator's
  constraints, and one parameter drawn bad (negative, zero, NaN, huge, wrong
  type, per-modality lists of the wrong length or with a bad entry);
- :func:`sample_weights`, for estimators whose ``fit`` takes
  ``sample_weight``: repetition counts, or zeros, negative, NaN, inf, wrong
  length.

Each case is plain (the small-data settings of ``tests/test_common.py``,
float64, no NaN, a valid ``y`` and weights) except in at most two *edge*
dimensions. Each
edge, and each parameter drawn away from its baseline, adds *suspects*: the
words an error may name as what is at fault.

The contract (:func:`contract_violation`): ``fit``, then each of
``predict``, ``predict_proba``, ``decision_function``, ``transform``,
``inverse_transform``, ``impute`` and ``score`` the estimator has, either

- returns the documented output: ``n`` rows (``n_classes`` columns for
  ``predict_proba``, ``len(get_feature_names_out())`` for ``transform``,
  ``n_features_in_`` for ``inverse_transform`` and ``impute``), labels among
  ``classes_``, probabilities summing to one, a float ``score``, all finite;
  NaN only where :data:`NAN_PASSES` documents it, in rows whose input has
  NaN; and no answer for rows that lack every modality (DESIGN.md: "a row
  lacking every modality is an error that says how many rows"; estimators of
  :data:`NO_MODALITY_RULE` excepted); or
- raises ``ValueError``, ``TypeError`` or ``NotFittedError`` (sklearn's
  exceptions derive from these) whose message *names a suspect*
  (:func:`names_suspect`);

and no forbidden warning (:func:`forbidden_warning`) reaches the user.

Reproduce any case from the repository root with
``PYTHONPATH=$PWD:$PWD/tests python -c "from contract_catalogue import *; ..."``
and the one-liner :meth:`Case.code` prints.
"""

import inspect
import io
import re
import warnings
from contextlib import redirect_stdout
from dataclasses import dataclass, field
from importlib.util import find_spec
from numbers import Real
from pathlib import Path

import numpy as np
from hypothesis import strategies as st
from numpy import inf, nan  # noqa: F401 (the one-liners use them)
from sklearn.base import clone, is_classifier, is_regressor
from sklearn.exceptions import NotFittedError
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline, make_pipeline  # noqa: F401 (one-liners)
from test_common import PARAMS

from mmfuse.datasets import make_multiview
from mmfuse.utils._compat import StrOptions
from mmfuse.utils.discovery import all_estimators

ESTIMATORS = dict(all_estimators())
globals().update(ESTIMATORS)  # the one-liners name the classes

# Modality names of the named forms of ``blocks``; unnamed forms give
# "block0", "block1"...
NAMES = ("img", "txt", "aud", "seq")

# Rows of a plain case: enough for every estimator's small-data settings
# (5-fold stratified splits of three classes, a kernel's rank).
PLAIN_ROWS = (20, 60)

# Parameters never drawn: ``blocks`` has its own dimension; ``n_jobs`` would
# start worker processes that outlive the test.
NOT_DRAWN = {"blocks", "n_jobs"}

# Parameters whose huge values cost time or memory instead of an error.
COSTLY = {
    "max_epochs",
    "d_model",
    "n_tokens",
    "n_heads",
    "n_layers",
    "latent_dim",
    "hidden",
    "n_landmarks",
    "max_iter",
    "verbose",
}

# Methods whose documented output holds NaN in rows whose input holds NaN:
# late fusion's members' outputs where a row lacks a member's modalities,
# ModalitySelector's columns as they are, the aligner's embedding of a
# modality a row lacks (side by side).
NAN_PASSES = {
    ("ContrastiveAligner", "transform"),
    ("LateFusionClassifier", "transform"),
    ("LateFusionRegressor", "transform"),
    ("ModalitySelector", "transform"),
}

# Estimators that do not consume modalities, so that a row lacking every
# modality is no error for them (DESIGN.md, "Missing modalities, one rule":
# for the others it is an error that says how many rows).
NO_MODALITY_RULE = {"ModalitySelector"}

# Words that name a parameter's parts: late fusion's errors name the member
# at fault ("member 'm0' ...") rather than ``estimators``.
PARAMETER_WORDS = {"estimators": {"member", "members"}}

# Warnings that must not reach the user: numpy's RuntimeWarning (overflow,
# invalid value, division by zero, empty slice...: the category itself, not
# its named subclasses such as scipy's LinAlgWarning that sklearn's Ridge
# raises about a member's data), Deprecation and FutureWarnings (the suite
# makes them errors), and any warning raised from inside numpy, scipy,
# torch, skorch or pandas. sklearn's warnings (ConvergenceWarning,
# UndefinedMetricWarning, UserWarnings about a member's data) and mmfuse's
# own (UserWarning subclasses, on purpose) are allowed.
FORBIDDEN_CATEGORIES = (DeprecationWarning, FutureWarning)
INTERNALS = ("numpy", "scipy", "torch", "skorch", "pandas")
_INTERNAL_DIRS = tuple(
    str(Path(spec.origin).parent)
    for spec in (find_spec(name) for name in INTERNALS)
    if spec is not None and spec.origin is not None
)

ALLOWED_ERRORS = (ValueError, TypeError, NotFittedError)
OUTPUT_METHODS = (
    "predict",
    "predict_proba",
    "decision_function",
    "transform",
    "inverse_transform",
    "impute",
    "score",
)

# Extreme scales in float32 saturate here (inf is drawn on purpose): nearer
# float32's largest value, sums of +-3e38 overflow inside sklearn's own
# finiteness check, which warns "invalid value encountered" for finite data.
FLOAT32_LARGEST = 1e30

ROW = {"row", "rows", "sample", "samples"}
BLOCK = {"block", "blocks", "modality", "modalities"}
COLUMN = {"column", "columns"}


def nan_kernel(x, y):
    """A kernel callable that returns NaN for every pair of rows (a broken kernel)."""
    return np.nan


def imputed_logistic():
    return make_pipeline(SimpleImputer(), LogisticRegression())


def imputed_ridge():
    return make_pipeline(SimpleImputer(), Ridge())


def one_member_a_modality(member, n_blocks):
    """Late fusion members: a clone of ``member`` a modality, by position."""
    return [(f"m{i}", clone(member), i) for i in range(n_blocks)]


def _late_fusion_values(member, plain, wrong_kind):
    """Valid and bad ``estimators`` (and ``final_estimator``) of late fusion."""

    def values(n_blocks):
        every = list(range(n_blocks))
        return {
            "valid": {
                "estimators": [
                    one_member_a_modality(member, n_blocks),
                    one_member_a_modality(plain, n_blocks),
                    [("all", member, every)],
                ]
            },
            "bad": {
                "estimators": [
                    [],
                    [("m0", "banana", 0)],
                    [("m0", wrong_kind, 0)],
                    [("m0", type(plain), 0)],
                    [("m0", plain, 0, "extra")],
                    [("m0", plain, "zzz")],
                    [("m0", plain, n_blocks)],
                    [("m0", plain, [])],
                    [("m0", plain, [0, 0])],
                    [("m__0", plain, 0)],
                    [("m0", plain, 0), ("m0", plain, 0)],
                ],
                "final_estimator": [wrong_kind, "banana"],
            },
        }

    return values


def _fusion_net_values(n_blocks):
    return {
        "valid": {},
        "bad": {"module__encoder_hidden": [(0,), (-4,)], "device": ["cuda"]},
    }


def _kcca_values(n_blocks):
    return {"valid": {}, "bad": {"kernel": [nan_kernel]}}


# Estimator-specific parameter values, by class name: a function of the
# number of modalities returning {"valid": {param: values}, "bad": {...}}
# (the first valid value is the baseline). An estimator not listed gets only
# the generic draws of :func:`hyperparameters`.
ESTIMATOR_VALUES = {
    "LateFusionClassifier": _late_fusion_values(
        imputed_logistic(), LogisticRegression(), Ridge()
    ),
    "LateFusionRegressor": _late_fusion_values(
        imputed_ridge(), Ridge(), LogisticRegression()
    ),
    "MLPFusionClassifier": _fusion_net_values,
    "MLPFusionRegressor": _fusion_net_values,
    "KCCA": _kcca_values,
}

# Overrides of test_common's PARAMS for the contract: fewer epochs, and
# landmarks for the 20 rows of the smallest plain case (KCCA rejects more
# landmarks than rows, naming n_landmarks, when approximation="nystroem").
CONTRACT_PARAMS = {
    "MLPFusionClassifier": {"max_epochs": 2},
    "MLPFusionRegressor": {"max_epochs": 2},
    "KCCA": {"n_landmarks": 10},
}


def estimator_values(name, n_blocks):
    """{"valid": {param: values}, "bad": {param: values}} of estimator ``name``."""
    if name not in ESTIMATOR_VALUES:
        return {"valid": {}, "bad": {}}
    return ESTIMATOR_VALUES[name](n_blocks)


def base_params(name, n_blocks):
    """The baseline parameters of estimator ``name`` (blocks excluded)."""
    params = {k: v for k, v in PARAMS.get(name, {}).items() if k != "blocks"}
    params.update(CONTRACT_PARAMS.get(name, {}))
    for param, values in estimator_values(name, n_blocks)["valid"].items():
        params[param] = values[0]
    return params


# --------------------------------------------------------------------- data
def make_data(
    n=30,
    widths=(3, 2),
    *,
    names=None,
    seed=0,
    dtype="float64",
    nan=None,
    nan_at="fit",
    scale=None,
    y="none",
):
    """Build ``X`` (fit), ``y`` and ``X_new`` (predict) of a case.

    Parameters
    ----------
    n : int
        Rows.
    widths : tuple of int
        Width of each modality; the values come from
        :func:`~mmfuse.datasets.make_multiview`.
    names : tuple of str or None
        Modality names: ``X`` is then a DataFrame with the columns
        ``"<name>__c<j>"``; None gives an ndarray.
    seed : int
        Seeds the values.
    dtype : {"float64", "float32", "int", "bool", "object", "object-str"}
        The dtype of ``X``: ``"int"`` rounds, ``"bool"`` is ``X > 0``,
        ``"object-str"`` is object with the string ``"a"`` in the first cell.
        Integer and boolean data with NaN become float64; float32 saturates
        at :data:`FLOAT32_LARGEST`.
    nan : tuple or None
        ``("missing", m, k)``: modality ``m`` all NaN in the first ``k``
        rows; ``("partial", m, k)``: the first column of ``m`` NaN in the
        first ``k`` rows; ``("empty", None, k)``: the first ``k`` rows all
        NaN; ``("column", m, None)``: the first column of ``m`` all NaN.
    nan_at : {"fit", "predict", "both"}
        Whether the NaN pattern is in ``X``, ``X_new`` or both.
    scale : tuple or None
        ``(factor, m)``: modality ``m`` (every modality when None) times
        ``factor``; a factor of ``inf`` or ``-inf`` sets the first cell of
        ``m`` to it instead.
    y : str
        ``"none"`` (None), ``"binary"`` (0/1), ``"classes"`` (three string
        labels), ``"one-class"`` (``"cat"`` everywhere), ``"continuous"``,
        ``"huge"`` (continuous times 1e200), ``"nan"`` (continuous, the
        first NaN), ``"short"`` (binary, one row short).

    Returns
    -------
    X, y, X_new
    """
    X, latent = make_multiview(
        n, list(widths), n_latent=2, noise=0.5, random_state=seed
    )
    starts = np.cumsum([0, *widths])
    block = [slice(starts[m], starts[m + 1]) for m in range(len(widths))]
    with np.errstate(all="ignore"):
        if scale is not None:
            factor, m = scale
            if np.isinf(factor):
                X[0, starts[m]] = factor
            else:
                X[:, slice(None) if m is None else block[m]] *= factor
        X = _as_dtype(X, dtype, with_nan=nan is not None)
    X_new = X.copy()
    if nan is not None:
        kind, m, k = nan
        if kind == "missing":
            cells = (slice(0, k), block[m])
        elif kind == "partial":
            cells = (slice(0, k), starts[m])
        elif kind == "empty":
            cells = (slice(0, k), slice(None))
        else:  # "column"
            cells = (slice(None), starts[m])
        for array, at in ((X, "fit"), (X_new, "predict")):
            if nan_at in (at, "both"):
                array[cells] = np.nan
    if names is not None:
        import pandas as pd

        columns = [
            f"{name}__c{j}"
            for name, w in zip(names, widths, strict=True)
            for j in range(w)
        ]
        X, X_new = (
            pd.DataFrame(X, columns=columns),
            pd.DataFrame(X_new, columns=columns),
        )
    return X, _target(y, latent, seed), X_new


def _as_dtype(X, dtype, with_nan):
    if dtype == "float32":
        return X.clip(-FLOAT32_LARGEST, FLOAT32_LARGEST).astype(np.float32)
    if dtype == "int":
        X = np.round(X).clip(-(2**62), 2**62).astype(np.int64)
    if dtype == "bool":
        X = X > 0
    if dtype in ("int", "bool") and with_nan:
        return X.astype(np.float64)
    if dtype in ("object", "object-str"):
        X = X.astype(object)
        if dtype == "object-str":
            X[0, 0] = "a"
    return X


def _target(kind, latent, seed):
    signal = latent[:, 0]
    continuous = signal + 0.1 * np.random.default_rng(seed).standard_normal(len(signal))
    if kind == "none":
        return None
    if kind in ("binary", "short"):
        y = (signal > 0).astype(np.int64)
        return y[:-1] if kind == "short" else y
    if kind == "classes":
        cuts = np.quantile(signal, [1 / 3, 2 / 3]) if len(signal) else [0, 0]
        return np.asarray(["cat", "dog", "emu"])[np.searchsorted(cuts, signal)]
    if kind == "one-class":
        return np.full(len(signal), "cat")
    if kind == "huge":
        return continuous * 1e200
    if kind == "nan":
        continuous[:1] = np.nan
    return continuous


def make_weights(kind, n, seed=0):
    """``sample_weight`` of a case.

    ``"counts"``: integers 1 to 3 (repetition counts); ``"zeros"``: all 0;
    ``"negative"``, ``"nan"``, ``"inf"``: counts with that first value;
    ``"short"``: counts, one row short.
    """
    weights = np.random.default_rng(seed).integers(1, 4, n).astype(np.float64)
    if kind == "zeros":
        return np.zeros(n)
    if kind == "short":
        return weights[:-1]
    if kind in ("negative", "nan", "inf"):
        weights[:1] = {"negative": -1.0, "nan": np.nan, "inf": np.inf}[kind]
    return weights


# --------------------------------------------------------------- strategies
@st.composite
def shapes(draw, edge):
    """(n, widths, kind): "plain", or at the edge "few rows" or "one block"."""
    if not edge:
        n = draw(st.integers(*PLAIN_ROWS))
        widths = draw(st.lists(st.integers(1, 8), min_size=2, max_size=4))
        return n, tuple(widths), "plain"
    if draw(st.booleans()):
        n = draw(st.integers(1, PLAIN_ROWS[0] - 1))
        widths = draw(st.lists(st.integers(1, 8), min_size=1, max_size=4))
        return n, tuple(widths), "few rows"
    return draw(st.integers(*PLAIN_ROWS)), (draw(st.integers(1, 8)),), "one block"


VALID_FORMS = (
    "widths",
    "int",
    "dict",
    "slices",
    "positions",
    "masks",
    "auto",
    "prefixes",
    "column names",
)
INVALID_FORMS = (
    "too wide",
    "zero width",
    "negative int",
    "too many",
    "float",
    "None",
    "string",
    "auto without names",
    "overlap",
    "out of range",
    "empty list",
    "empty block",
    "empty mask",
    "mixed",
    "2-D block",
    "unknown prefix",
    "int keys",
    "slice out of range",
    "duplicate names",
)


@st.composite
def blocks_specs(draw, widths, edge):
    """(blocks, widths, names, frame names, suspects) of one form of ``blocks``.

    ``names`` are the modality names the estimator will see, ``frame names``
    those of the DataFrame columns (None for an ndarray).
    """
    form = draw(st.sampled_from(INVALID_FORMS if edge else VALID_FORMS))
    if form == "int":  # k near-equal blocks: the data follow that split
        widths = tuple(len(a) for a in np.array_split(range(sum(widths)), len(widths)))
    k, total = len(widths), sum(widths)
    starts = np.cumsum([0, *widths])
    ranges = [range(starts[m], starts[m + 1]) for m in range(k)]
    named = NAMES[:k]
    unnamed = tuple(f"block{m}" for m in range(k))
    columns = [
        [f"{name}__c{j}" for j in range(w)]
        for name, w in zip(named, widths, strict=True)
    ]
    suspects = BLOCK | set(named) | set(unnamed) if edge else set()
    specs = {
        "widths": (list(widths), unnamed, None),
        "int": (k, unnamed, None),
        "dict": (dict(zip(named, widths, strict=True)), named, None),
        "slices": ([slice(r.start, r.stop) for r in ranges], unnamed, None),
        "positions": ([list(r) for r in ranges], unnamed, None),
        "masks": (
            [[j in r for j in range(total)] for r in ranges],
            unnamed,
            None,
        ),
        "auto": ("auto", named, named),
        "prefixes": (list(named), named, named),
        "column names": (dict(zip(named, columns, strict=True)), named, named),
        "too wide": ([*widths[:-1], widths[-1] + 1], unnamed, None),
        "zero width": ([0, *widths[1:]], unnamed, None),
        "negative int": (-1, unnamed, None),
        "too many": (total + 1, unnamed, None),
        "float": (float(k) + 0.5, unnamed, None),
        "None": (None, unnamed, None),
        "string": ("banana", unnamed, None),
        "auto without names": ("auto", unnamed, None),
        "overlap": ([list(ranges[0]), [ranges[0].start]], unnamed, None),
        "out of range": ([list(ranges[0]), [total]], unnamed, None),
        "empty list": ([], unnamed, None),
        "empty block": ([[], list(ranges[0])], unnamed, None),
        "empty mask": ([[False] * total, [True] * total], unnamed, None),
        "mixed": ([widths[0], list(ranges[-1])], unnamed, None),
        "2-D block": ([[list(ranges[0])], list(ranges[-1])], unnamed, None),
        "unknown prefix": ([named[0], "zzz"], named, named),
        "int keys": ({0: list(ranges[0]), 1: [total - 1]}, unnamed, None),
        "slice out of range": ([slice(0, total + 5)], unnamed, None),
        "duplicate names": ([named[0], named[0]], named, named),
    }
    blocks, names, frame = specs[form]
    return blocks, widths, names, frame, suspects


DTYPES = ("float32", "int", "bool", "object", "object-str")


@st.composite
def dtypes(draw, names, frame, edge):
    """(dtype, suspects)."""
    if not edge:
        return "float64", set()
    dtype = draw(st.sampled_from(DTYPES))
    if dtype == "object-str":
        return dtype, {"X"} | COLUMN | ({f"{frame[0]}__c0"} if frame else set())
    return dtype, {"X", "dtype"} | COLUMN | set(names)


@st.composite
def nan_patterns(draw, n, widths, names, edge):
    """(nan, nan_at, suspects): a missing-value pattern of ``make_data``."""
    if not edge:
        return None, "fit", set()
    kind = draw(st.sampled_from(["missing", "partial", "empty", "column"]))
    m = None if kind == "empty" else draw(st.integers(0, len(widths) - 1))
    k = None if kind == "column" else draw(st.integers(1, n))
    at = draw(st.sampled_from(["fit", "predict", "both"]))
    if kind == "empty":
        return (kind, m, k), at, ROW
    return (kind, m, k), at, {names[m]} | (COLUMN if kind == "column" else ROW)


@st.composite
def scales(draw, widths, names, edge):
    """(scale, suspects): a factor on one modality or all, or one inf cell."""
    if not edge:
        return None, set()
    factor = draw(st.sampled_from([1e300, 1e-300, 1e150, inf, -inf]))
    if np.isinf(factor):
        m = draw(st.integers(0, len(widths) - 1))
        return (factor, m), {"X", "inf", "infinity", names[m]}
    m = draw(st.one_of(st.none(), st.integers(0, len(widths) - 1)))
    return (factor, m), {"X", "scale", "overflow", "underflow"} | COLUMN | set(names)


@st.composite
def targets(draw, task, edge):
    """(y kind, suspects) for a task: "classifier", "regressor" or None."""
    if task is None:
        return "none", set()
    if task == "classifier":
        plain, bad = ["binary", "classes"], ["one-class", "continuous", "nan", "short"]
    else:
        plain, bad = ["continuous", "binary"], ["classes", "huge", "nan", "short"]
    if not edge:
        return draw(st.sampled_from(plain)), set()
    kind = draw(st.sampled_from(bad))
    suspects = {
        # The label itself, not its encoding (issue 14: "np.int64(0)").
        "one-class": {"cat"},
        "continuous": {"y", "label", "labels", "target", "continuous"},
        "classes": {"y", "target"},
        "huge": {"y", "target"},
        "nan": {"y"},
        # sklearn's "inconsistent numbers of samples: [n, n - 1]" counts.
        "short": {"y", "samples"},
    }[kind]
    return kind, suspects


@st.composite
def sample_weights(draw, edge):
    """(kind or None, suspects): ``sample_weight`` for estimators that take it."""
    if not edge:
        return draw(st.sampled_from([None, "counts"])), set()
    kind = draw(st.sampled_from(["zeros", "negative", "nan", "inf", "short"]))
    # sklearn's _check_sample_weight says "Sample weights must ...".
    return kind, {"sample_weight", "weight", "weights"}


def string_options(constraints):
    """{param: options} of every StrOptions constraint."""
    found = {}
    for param, allowed in constraints.items():
        for constraint in allowed:
            if isinstance(constraint, StrOptions):
                found[param] = sorted(constraint.options)
    return found


def bad_values(param, value):
    """Out-of-range and wrong-type values for a parameter, by its value's type."""
    huge = [] if param in COSTLY else [10**12]
    if isinstance(value, bool):
        return [2, "yes", None]
    if isinstance(value, int):
        return [-1, 0, 2.5, nan, "3", None, *huge]
    if isinstance(value, float):
        big = [] if param in COSTLY else [1e300]
        return [-1.0, 0.0, 1.0, 2.0, nan, inf, -inf, "0.1", None, *big]
    if isinstance(value, str):
        return ["banana", "", 3, None]
    if isinstance(value, tuple):
        return [(), (0,), (-4,), (2.5,), ("8",), (nan,), 8]
    if isinstance(value, list):
        return [[], "banana", [None]]
    if value is None:
        return ["banana", -5, 0, 1, nan, 2.5]
    return ["banana", 3, dict]


def per_modality_values(param, value, constraints, n_blocks):
    """Per-modality values of the wrong length, or with one bad entry.

    For parameters whose constraints take a list, tuple, array or dict while
    their value is one for all modalities.
    """
    allowed = constraints.get(param, [])
    if isinstance(value, list | tuple | dict):
        return []
    entry = 1.0 if value is None else value
    found = []
    if any(c in (list, tuple, "array-like") for c in allowed):
        found += [[entry] * (n_blocks + 1)]
        found += [[bad] + [entry] * (n_blocks - 1) for bad in bad_values(param, entry)]
        if isinstance(entry, int | float):
            found += [np.full(n_blocks + 1, entry)]
    if dict in allowed and value is not None:
        found += [{"zzz": entry}, {NAMES[0]: "banana"}, {"block0": -1.0}]
    return found


@st.composite
def hyperparameters(draw, name, n_blocks, edge):
    """(params, suspects): the baseline, string options drawn, maybe one bad.

    Each parameter with a string option in the estimator's constraints or a
    valid value in :data:`ESTIMATOR_VALUES` keeps its baseline value half
    the time, else takes another; with ``edge``, one parameter
    (any but :data:`NOT_DRAWN`) gets a value from :func:`bad_values`,
    :func:`per_modality_values` or :data:`ESTIMATOR_VALUES`. The parameters
    drawn away from the baseline are the suspects.
    """
    cls = ESTIMATORS[name]
    params = base_params(name, n_blocks)
    current = cls(**params).get_params(deep=False)
    constraints = getattr(cls, "_parameter_constraints", {})
    special = estimator_values(name, n_blocks)
    choices = dict(special["valid"])
    for param, options in string_options(constraints).items():
        if param not in NOT_DRAWN:
            choices[param] = [
                current[param],
                *(o for o in options if o != current[param]),
            ]
    suspects = set()
    for param, values in sorted(choices.items()):
        if len(values) > 1 and draw(st.booleans()):  # else the baseline
            params[param] = draw(st.sampled_from(values[1:]))
            suspects.add(param)
    if edge:
        candidates = sorted((set(current) | set(special["bad"])) - NOT_DRAWN)
        param = draw(st.sampled_from(candidates))
        value = current.get(param)
        values = [
            *special["bad"].get(param, []),
            *bad_values(param, value),
            *per_modality_values(param, value, constraints, n_blocks),
        ]
        params[param] = draw(st.sampled_from(values))
        suspects |= {param} | PARAMETER_WORDS.get(param, set())
    return params, suspects


DIMENSIONS = (
    "shape",
    "blocks",
    "dtype",
    "nan",
    "scale",
    "y",
    "params",
    "sample_weight",
)


@dataclass
class Case:
    """One drawn input: an estimator, its parameters and its data."""

    name: str
    params: dict
    data: dict
    suspects: set = field(default_factory=set)
    weights: str | None = None

    def estimator(self):
        init = {k: v for k, v in self.params.items() if "__" not in k}
        nested = {k: v for k, v in self.params.items() if "__" in k}
        estimator = ESTIMATORS[self.name](**init)
        return estimator.set_params(**nested) if nested else estimator

    def code(self):
        """The case as one line of code (after ``from contract_catalogue import *``)."""
        init = ", ".join(
            f"{k}={_code(v)}" for k, v in self.params.items() if "__" not in k
        )
        nested = ", ".join(
            f"{k}={_code(v)}" for k, v in self.params.items() if "__" in k
        )
        data = ", ".join(f"{k}={_code(v)}" for k, v in self.data.items())
        estimator = f"{self.name}({init})" + (
            f".set_params({nested})" if nested else ""
        )
        code = f"est = {estimator}; X, y, X_new = make_data({data})"
        if self.weights is None:
            return code
        seed = self.data.get("seed", 0)
        n = self.data["n"]
        return f"{code}; w = make_weights({self.weights!r}, {n}, {seed})"


def _code(value):
    if isinstance(value, float) and not np.isfinite(value):
        return "nan" if np.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, np.ndarray):
        return f"np.array({_code(value.tolist())})"
    if isinstance(value, list):
        return "[" + ", ".join(_code(v) for v in value) + "]"
    if isinstance(value, tuple):
        inner = ", ".join(_code(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, dict):
        return (
            "{" + ", ".join(f"{_code(k)}: {_code(v)}" for k, v in value.items()) + "}"
        )
    if isinstance(value, type) or callable(value) and hasattr(value, "__name__"):
        module = getattr(value, "__module__", "")
        if module in ("builtins", __name__) or module.startswith("mmfuse"):
            return value.__name__
        return f"{module}.{value.__qualname__}"
    return " ".join(repr(value).split())  # estimators' reprs span lines


def task_of(name):
    """ "classifier", "regressor" or None (fitted without ``y``)."""
    estimator = ESTIMATORS[name](**base_params(name, 2))
    if is_classifier(estimator):
        return "classifier"
    if is_regressor(estimator):
        return "regressor"
    return None


@st.composite
def cases(draw, name):
    """A case for estimator ``name``: plain but for at most two edge dimensions."""
    task = task_of(name)
    weighted = "sample_weight" in inspect.signature(ESTIMATORS[name].fit).parameters
    dimensions = [
        d
        for d in DIMENSIONS
        if (task or d != "y") and (weighted or d != "sample_weight")
    ]
    edges = set(draw(st.lists(st.sampled_from(dimensions), max_size=2, unique=True)))
    n, widths, shape = draw(shapes("shape" in edges))
    blocks, widths, names, frame, block_suspects = draw(
        blocks_specs(widths, "blocks" in edges)
    )
    dtype, dtype_suspects = draw(dtypes(names, frame, "dtype" in edges))
    nan_, nan_at, nan_suspects = draw(nan_patterns(n, widths, names, "nan" in edges))
    scale, scale_suspects = draw(scales(widths, names, "scale" in edges))
    y, y_suspects = draw(targets(task, "y" in edges))
    params, param_suspects = draw(hyperparameters(name, len(widths), "params" in edges))
    params = {**params, "blocks": blocks}
    weights, weight_suspects = (
        draw(sample_weights("sample_weight" in edges)) if weighted else (None, set())
    )
    # Few rows break limits set by any parameter (n_components, batch_size,
    # cv, train_split...) and may leave y one class; one block breaks those
    # of multiview estimators.
    shape_suspects = {
        "plain": set(),
        "few rows": ROW | {"y"} | set(inspect.signature(ESTIMATORS[name]).parameters),
        "one block": BLOCK | set(names),
    }[shape]
    suspects = (
        shape_suspects
        | block_suspects
        | dtype_suspects
        | nan_suspects
        | scale_suspects
        | y_suspects
        | param_suspects
        | weight_suspects
    )
    drawn = {
        "n": n,
        "widths": widths,
        "names": frame,
        "seed": draw(st.integers(0, 3)),
        "dtype": dtype,
        "nan": nan_,
        "nan_at": nan_at,
        "scale": scale,
        "y": y,
    }
    # The one-liner shows n, widths, and what differs from make_data's defaults.
    defaults = inspect.signature(make_data).parameters
    data = {
        k: v
        for k, v in drawn.items()
        if k in ("n", "widths") or v != defaults[k].default
    }
    if nan_ is not None:  # nan_at is shown whenever there is a pattern
        data["nan_at"] = nan_at
    return Case(name, params, data, suspects, weights)


# ------------------------------------------------------------------ checker
def names_suspect(message, suspects):
    """Whether an error message names one of the suspects, as a whole word.

    Words are runs of letters, digits and underscores (so ``row(s)`` holds
    ``row``, and ``n_samples`` is not ``samples``); ``X`` and ``y`` match
    case-sensitively, other words in any case. A parameter ``a__b`` also
    matches ``b``.
    """
    words = set(re.findall(r"\w+", message))
    lower = {w.lower() for w in words}
    for suspect in suspects:
        if suspect in ("X", "y"):
            if suspect in words:
                return True
        elif suspect.lower() in lower or suspect.rpartition("__")[2].lower() in lower:
            return True
    return False


def forbidden_warning(caught):
    """The first warning that must not reach the user, as text, or None."""
    for w in caught:
        internal = w.filename.startswith(_INTERNAL_DIRS)
        numpy_runtime = w.category is RuntimeWarning
        if numpy_runtime or internal or issubclass(w.category, FORBIDDEN_CATEGORIES):
            where = Path(w.filename)
            return (
                f"{w.category.__name__} from {where.parent.name}/{where.name}: "
                f"{_first_line(str(w.message))}"
            )
    return None


def _first_line(text):
    return text.strip().splitlines()[0] if text.strip() else "(empty message)"


def judge_error(method, exc, suspects):
    """What is wrong with an exception (its type, or no suspect named), or None."""
    message = str(exc)
    if not isinstance(exc, ALLOWED_ERRORS):
        return f"{method}: {type(exc).__name__}: {_first_line(message)}"
    if not names_suspect(message, suspects):
        shown = sorted(suspects)
        if len(shown) > 12:
            shown = [*shown[:12], "..."]
        return (
            f"{method}: {type(exc).__name__} names none of {shown}: "
            f"{_first_line(message)}"
        )
    return None


def _judge_output(name, method, output, estimator, X_new):
    """What is wrong with a method's output, or None."""
    n = len(X_new)
    empty = _rows_without_modality(estimator, X_new)
    if empty and method != "inverse_transform":
        return (
            f"{method}: answers {empty} row(s) that lack every modality instead "
            f"of an error that says how many"
        )
    if method == "score":
        # sklearn's R^2 is NaN (with a warning) on fewer than two rows.
        undefined = n < 2 and is_regressor(estimator)
        if not isinstance(output, Real) or not (np.isfinite(output) or undefined):
            return f"score: {output!r} is not a finite number"
        return None
    output = np.asarray(output)
    if method == "predict" and is_classifier(estimator):
        if output.shape != (n,) or not np.isin(output, estimator.classes_).all():
            return f"predict: shape {output.shape} or labels outside classes_"
        return None
    expected = _documented_shape(method, estimator, n, output)
    if output.shape != expected:
        return f"{method}: shape {output.shape}, documented {expected}"
    values = output.astype(np.float64)
    bad = ~np.isfinite(values)
    if (name, method) in NAN_PASSES:
        input_nan = _nan_mask(X_new).any(axis=1)
        bad &= ~(np.isnan(values) & input_nan.reshape(-1, *[1] * (values.ndim - 1)))
    if bad.any():
        return f"{method}: {int(bad.sum())} non-finite value(s) in the output"
    if method == "predict_proba" and not np.allclose(values.sum(axis=1), 1, atol=1e-6):
        return "predict_proba: rows do not sum to 1"
    return None


def _documented_shape(method, estimator, n, output):
    n_classes = len(getattr(estimator, "classes_", []))
    if method == "predict":
        return (n,)
    if method == "predict_proba":
        return (n, n_classes)
    if method == "decision_function":
        return (n,) if n_classes == 2 else (n, n_classes)
    if method == "transform" and hasattr(estimator, "get_feature_names_out"):
        return (n, len(estimator.get_feature_names_out()))
    if method == "transform":
        return (n, *output.shape[1:2])
    return (n, estimator.n_features_in_)  # inverse_transform, impute


def _nan_mask(X):
    """Boolean mask of the NaN cells of any ``X`` (numbers, objects, frames)."""
    values = np.asarray(X, dtype=object)
    return np.array([[v != v for v in row] for row in values], dtype=bool)


def _rows_without_modality(estimator, X):
    """How many rows of ``X`` lack every modality of the fitted estimator."""
    blocks = getattr(estimator, "blocks_", None)
    if not blocks or type(estimator).__name__ in NO_MODALITY_RULE:
        return 0
    nan = _nan_mask(X)
    return int(np.logical_and.reduce([nan[:, b].all(axis=1) for b in blocks]).sum())


def contract_violation(case):
    """Run ``fit`` and every output method of a case; say what breaks the contract.

    Returns None when the case keeps the contract, else one line: the method,
    then the wrong exception, the unnamed fault, the wrong output or the
    forbidden warning.
    """
    X, y, X_new = make_data(**case.data)
    weights = {}
    if case.weights is not None:
        seed = case.data.get("seed", 0)
        weights = {"sample_weight": make_weights(case.weights, len(X), seed)}
    estimator = case.estimator()
    with warnings.catch_warnings(record=True) as caught, redirect_stdout(io.StringIO()):
        warnings.simplefilter("always")
        try:
            fitted = estimator.fit(X, y, **weights)
        except Exception as exc:  # noqa: BLE001 (any exception is judged)
            return judge_error("fit", exc, case.suspects) or _warned("fit", caught)
        if fitted is not estimator:
            return "fit: does not return self"
        if problem := _warned("fit", caught):
            return problem
        Z = None
        for method in OUTPUT_METHODS:
            args = _arguments(estimator, method, X_new, y, Z)
            if args is None:
                continue
            caught.clear()
            try:
                output = getattr(estimator, method)(*args)
            except Exception as exc:  # noqa: BLE001
                problem = judge_error(method, exc, case.suspects)
            else:
                problem = _judge_output(case.name, method, output, estimator, X_new)
                Z = output if method == "transform" else Z
            if problem := problem or _warned(method, caught):
                return problem
    return None


def _arguments(estimator, method, X_new, y, Z):
    """The arguments of an output method, or None when there is none to call."""
    if not hasattr(estimator, method):
        return None
    if method == "inverse_transform":
        return None if Z is None else (Z,)
    if method == "score" and y is not None:
        return (X_new, y)
    return (X_new,)


def _warned(method, caught):
    found = forbidden_warning(caught)
    return f"{method}: {found}" if found else None


# -------------------------------------------------------- bad-input catalogue
# Hand-picked bad inputs, one line each, run by ``test_contract.py
# --messages`` after SETUP (the data of issue 14), with the words a good error
# names (the same rule as the property).
SETUP = """
X, L = make_multiview(120, [5, 4, 3], n_latent=2, noise=0.5, random_state=0)
y = (L[:, 0] > 0) * 1
blocks = [5, 4, 3]
FAST = dict(max_epochs=2, verbose=0, random_state=0)
members = one_member_a_modality(imputed_logistic(), 3)
logistic3 = one_member_a_modality(LogisticRegression(), 3)
ridge3 = one_member_a_modality(Ridge(), 3)
few = np.r_[np.flatnonzero(y == 0)[:3], np.flatnonzero(y == 1)[:3]]
X_str = X.astype(object); X_str[0, 0] = "a"
X_part = X.copy(); X_part[:3, 5] = nan
X_miss = X.copy(); X_miss[:5, :5] = nan
X_empty = X.copy(); X_empty[:2] = nan
X_inf = X.copy(); X_inf[0, 0] = inf
X_big = X * 1e300
y_big = L[:, 0] * 1e200
y_str = np.asarray(["a", "b"] * 60)
"""

SCALED = {"X", "scale", "overflow", "underflow", "block0", "block1", "block2"}

BAD_INPUTS = [
    # blocks
    ("MCCA(blocks=[5, 4, 4]).fit(X)", BLOCK),
    ("MCCA(blocks=[5, 0, 7]).fit(X)", BLOCK),
    ("MCCA().fit(X)", BLOCK),
    ("MCCA(blocks=2.5).fit(X)", BLOCK),
    ("MCCA(blocks=[[0, 1], [1, 2]]).fit(X)", BLOCK),
    ("MCCA(blocks=[[0, 1], [12]]).fit(X)", BLOCK),
    ("MCCA(blocks=[5]).fit(X)", BLOCK),
    ("ModalitySelector(blocks, modality=5).fit(X)", {"modality"}),
    (
        "LateFusionClassifier([('a', LogisticRegression(), 'zzz')], blocks=blocks)"
        ".fit(X, y)",
        {"zzz"},
    ),
    # few rows
    ("MCCA(1, blocks=blocks).fit(X[:1])", ROW),
    ("KCCA(blocks=blocks).fit(X[:2])", ROW | {"n_components"}),
    ("MLPFusionClassifier(blocks, **FAST).fit(X[:4], y[:4])", {"train_split"}),
    (
        "LateFusionClassifier(members, blocks=blocks, voting='stack')"
        ".fit(X[few], y[few])",
        {"cv"},
    ),
    ("MultimodalVAE(blocks, **FAST).fit(X[:1])", ROW),
    # dtypes
    ("MCCA(blocks=blocks).fit(X_str)", {"X", "column"}),
    ("KCCA(blocks=blocks).fit(X_str)", {"X", "column"}),
    ("LateFusionClassifier(members, blocks=blocks).fit(X_str, y)", {"X", "column"}),
    ("MLPFusionClassifier(blocks, **FAST).fit(X_str, y)", {"X", "column"}),
    ("MultimodalVAE(blocks, **FAST).fit(X_str)", {"X", "column"}),
    # NaN
    ("MCCA(blocks=blocks).fit(X_part)", {"block1"}),
    ("MCCA(blocks=blocks).fit(X_miss)", {"block0"}),
    ("MCCA(blocks=blocks, output='mean').fit(X).transform(X_empty)", ROW),
    ("KCCA(blocks=blocks).fit(X_part)", {"block1"}),
    ("LateFusionClassifier(logistic3, blocks=blocks).fit(X_part, y)", {"block1"}),
    ("LateFusionClassifier(members, blocks=blocks).fit(X, y).predict(X_empty)", ROW),
    ("MLPFusionClassifier(blocks, **FAST).fit(X, y).predict(X_empty)", ROW),
    ("MultimodalVAE(blocks, **FAST).fit(X).transform(X_empty)", ROW),
    ("MLPFusionClassifier(blocks, **FAST).fit(X_empty, y)", ROW),
    ("MultimodalVAE(blocks, **FAST).fit(X_empty)", ROW),
    # scales
    ("MCCA(blocks=blocks, regularization=0.1).fit(X * 1e200)", SCALED),
    ("KCCA(blocks=blocks).fit(X_big)", SCALED),
    ("MCCA(blocks=blocks).fit(X_inf)", {"X"}),
    (
        "MLPFusionClassifier(blocks, **FAST).fit(X_big, y).predict_proba(X_big)",
        SCALED,
    ),
    ("MLPFusionRegressor(blocks, **FAST).fit(X, y_big).predict(X)", {"y", "target"}),
    (
        "LateFusionRegressor(ridge3, blocks=blocks).fit(X, y_big).predict(X)",
        {"y", "target"},
    ),
    ("MultimodalVAE(blocks, **FAST).fit(X_big).transform(X_big)", SCALED),
    # targets
    ("MLPFusionClassifier(blocks, **FAST).fit(X, ['cat'] * 120)", {"cat"}),
    ("LateFusionClassifier(members, blocks=blocks).fit(X, ['cat'] * 120)", {"cat"}),
    ("LateFusionClassifier(members, blocks=blocks).fit(X, L[:, 0])", {"y", "label"}),
    ("MLPFusionClassifier(blocks, **FAST).fit(X, y[:-1])", {"y", "samples"}),
    ("MLPFusionRegressor(blocks, **FAST).fit(X, np.where(y, nan, 1.0))", {"y"}),
    ("MLPFusionRegressor(blocks, **FAST).fit(X, y_str)", {"y"}),
    ("LateFusionRegressor(ridge3, blocks=blocks).fit(X, y_str)", {"y"}),
    # hyperparameters
    ("MCCA(0, blocks=blocks).fit(X)", {"n_components"}),
    ("MCCA(blocks=blocks, regularization=-1).fit(X)", {"regularization"}),
    ("MCCA(blocks=blocks, regularization=[0.1, 0.2]).fit(X)", {"regularization"}),
    ("MCCA(blocks=blocks, regularization=[0.1, nan, 0.1]).fit(X)", {"regularization"}),
    ("GCCA(blocks=blocks, solver='banana').fit(X)", {"solver"}),
    ("KCCA(blocks=blocks, gamma=[0.1, -5, 0.1]).fit(X)", {"gamma"}),
    ("KCCA(blocks=blocks, kernel='poly', degree=[2, -3, 2]).fit(X)", {"degree"}),
    ("KCCA(blocks=blocks, kernel=nan_kernel).fit(X)", {"kernel"}),
    (
        "KCCA(blocks=blocks, regularization=np.array([0.1, 0.2])).fit(X)",
        {"regularization"},
    ),
    ("KCCA(blocks=blocks, kernel='chi2').fit(X)", {"kernel"}),
    (
        "KCCA(blocks=blocks, approximation='nystroem', n_landmarks=0).fit(X)",
        {"n_landmarks"},
    ),
    ("LateFusionClassifier([], blocks=blocks).fit(X, y)", {"estimators"}),
    (
        "LateFusionClassifier([('a', 'banana', 0)], blocks=blocks).fit(X, y)",
        {"a", "estimators"},
    ),
    (
        "LateFusionClassifier([('a', Ridge(), 0)], blocks=blocks, voting='hard')"
        ".fit(X, y)",
        {"a", "estimators"},
    ),
    (
        "LateFusionClassifier([('a', LogisticRegression, 0)], blocks=blocks).fit(X, y)",
        {"a", "estimators"},
    ),
    (
        "LateFusionClassifier(members, blocks=blocks, weights=[1, 2]).fit(X, y)",
        {"weights"},
    ),
    (
        "LateFusionClassifier(members, blocks=blocks, weights=[1, nan, 1]).fit(X, y)",
        {"weights"},
    ),
    (
        "LateFusionClassifier(members, blocks=blocks, voting='stack', cv=1).fit(X, y)",
        {"cv"},
    ),
    (
        "LateFusionRegressor(logistic3, blocks=blocks).fit(X, L[:, 0])",
        {"m0", "estimators"},
    ),
    (
        "MLPFusionClassifier(blocks, lr=1e9, optimizer=torch.optim.SGD, max_epochs=3,"
        " verbose=0).fit(X, y).predict_proba(X)",
        {"lr"},
    ),
    (
        "MLPFusionClassifier(blocks, **FAST)"
        ".set_params(module__encoder_hidden=(0,)).fit(X, y)",
        {"module__encoder_hidden"},
    ),
    ("MLPFusionClassifier(blocks, device='banana', **FAST).fit(X, y)", {"device"}),
    (
        "MLPFusionClassifier(blocks, fusion='attention', d_model=6, n_heads=4,"
        " **FAST).fit(X, y)",
        {"d_model", "n_heads"},
    ),
    ("MLPFusionClassifier(blocks, dropout=1.5, **FAST).fit(X, y)", {"dropout"}),
    ("MLPFusionClassifier(blocks, batch_size=0, **FAST).fit(X, y)", {"batch_size"}),
    ("MLPFusionClassifier(blocks, optimizer=dict, **FAST).fit(X, y)", {"optimizer"}),
    ("MultimodalVAE(blocks, hidden=(-4,), **FAST).fit(X)", {"hidden"}),
    ("MultimodalVAE(blocks, hidden=('8',), **FAST).fit(X)", {"hidden"}),
    ("MultimodalVAE(blocks, latent_dim=0, **FAST).fit(X)", {"latent_dim"}),
    ("MultimodalVAE(blocks, likelihood='bernoulli', **FAST).fit(X)", {"likelihood"}),
    (
        "MultimodalVAE(blocks, likelihood={'zzz': 'gaussian'}, **FAST).fit(X)",
        {"likelihood", "zzz"},
    ),
    ("MultimodalVAE(blocks, beta=nan, **FAST).fit(X)", {"beta"}),
    ("MultimodalVAE(blocks, lr=1e9, **FAST).fit(X).transform(X)", {"lr"}),
    ("ContrastiveAligner(blocks, **FAST).fit(X, L[:, 0])", {"y"}),
    ("ContrastiveAligner(blocks, temperature=0, **FAST).fit(X)", {"temperature"}),
    (
        "ContrastiveAligner(blocks, loss='dcca', **FAST).fit(X[:1])",
        ROW,
    ),
    ("ContrastiveAligner(blocks, **FAST).fit(X).transform(X_empty)", ROW),
]


def bad_input_outcomes():
    """Run :data:`BAD_INPUTS`; yield (code, verdict, what happened) for each.

    The verdict is "ok" (a named error), the violation (wrong exception
    type, no suspect named, non-finite output, a forbidden warning) or
    "accepted" when the input raised nothing (the output is then described).
    """
    import torch

    namespace = {**globals(), "torch": torch}
    exec(SETUP, namespace)  # noqa: S102 (the catalogue's own code)
    for code, suspects in BAD_INPUTS:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with redirect_stdout(io.StringIO()):
                try:
                    result = eval(code, namespace)  # noqa: S307
                except Exception as exc:  # noqa: BLE001
                    verdict = judge_error("raised", exc, suspects) or "ok"
                    message = " ".join(str(exc).split())
                    outcome = f"{type(exc).__name__}: {message}"
                else:
                    outcome = _describe(result)
                    finite = not outcome.endswith("non-finite") or " 0 non" in outcome
                    verdict = "accepted" if finite else "non-finite output"
        warned = forbidden_warning(caught)
        if warned:
            verdict = f"{verdict}; warns {warned}"
        yield code, verdict, outcome


def _describe(result):
    if not isinstance(result, np.ndarray):
        return f"no error: returned {type(result).__name__}"
    values = np.asarray(result, dtype=np.float64)
    bad = int((~np.isfinite(values)).sum())
    return f"no error: array of shape {values.shape}, {bad} non-finite"
