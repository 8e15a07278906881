"""Loaders for the real data sets shipped in ``mmfuse/datasets/data``.

The attribution of each data set is in ``data/README.md`` beside the files.
"""

from collections.abc import Sequence
from importlib import resources

import numpy as np
from sklearn.utils import Bunch

from mmfuse._blocks import SEPARATOR

MFEAT_VIEWS = ("fou", "fac", "kar", "pix", "zer", "mor")
NUTRIMOUSE_VIEWS = ("gene", "lipid")

MFEAT_DESCR = """\
UCI Multiple Features (handwritten digits)
------------------------------------------
2000 handwritten digits "0"-"9", 200 per class, rows in class order, described
by six views of the same digit:

- fou (76): Fourier coefficients of the character shapes
- fac (216): profile correlations
- kar (64): Karhunen-Loeve coefficients
- pix (240): pixel averages in 2x3 windows, a 15 x 16 image row by row, 0-6
- zer (47): Zernike moments
- mor (6): morphological features

Source: UCI Machine Learning Repository, "Multiple Features" (R. P. W. Duin),
licence CC BY 4.0. Reference: M. van Breukelen, R. P. W. Duin, D. M. J. Tax,
J. E. den Hartog, "Handwritten digit recognition by combined classifiers",
Kybernetika 34(4):381-386, 1998.
"""

NUTRIMOUSE_DESCR = """\
Nutrimouse (gene expression and lipids)
---------------------------------------
40 mice, two views measured on the same animals:

- gene (120): liver expression of 120 genes
- lipid (21): concentrations (%) of 21 hepatic fatty acids

Targets: genotype (wt / ppar) and diet (one of 5). Source: P. G. P. Martin et
al., "Novel aspects of PPARalpha-mediated regulation of lipid and xenobiotic
metabolism revealed through a nutrigenomic study", Hepatology 45(3):767-777,
2007; the example of regularized CCA in I. Gonzalez et al., "CCA: An R package
to extend canonical correlation analysis", J. Stat. Software 23(12), 2008.
"""


def _read(name: str) -> dict[str, np.ndarray]:
    with resources.files("mmfuse.datasets").joinpath("data", name).open("rb") as f:
        with np.load(f, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}


def _select_views(views: Sequence[str] | None, available: tuple[str, ...]):
    if views is None:
        return list(available)
    if isinstance(views, str):
        views = [views]
    views = list(views)
    unknown = [v for v in views if v not in available]
    if unknown or not views or len(set(views)) != len(views):
        raise ValueError(
            f"views={views!r} must be a non-empty list of distinct names from "
            f"{list(available)}; unknown: {unknown}."
        )
    return views


def _bunch(arrays, column_names, target, target_name, as_frame, return_X_y, descr):
    """Assemble the sklearn-style result from per-view arrays."""
    data = np.hstack([a.astype(np.float64) for a in arrays.values()])
    feature_names = [
        f"{view}{SEPARATOR}{column}"
        for view, columns in column_names.items()
        for column in columns
    ]
    blocks = {view: a.shape[1] for view, a in arrays.items()}
    frame = None
    if as_frame:
        import pandas as pd

        data = pd.DataFrame(data, columns=feature_names)
        target = pd.Series(target, name=target_name)
        frame = pd.concat([data, target], axis=1)
    if return_X_y:
        return data, target
    return Bunch(
        data=data,
        target=target,
        frame=frame,
        blocks=blocks,
        feature_names=feature_names,
        target_names=np.unique(np.asarray(target)),
        DESCR=descr,
    )


def load_mfeat(*, views=None, return_X_y=False, as_frame=False):
    """Load the UCI Multiple Features handwritten digits (6 views, 10 classes).

    ========== =========================================
    Samples    2000 (200 per digit, rows in class order)
    Features   649 in 6 views: fou 76, fac 216, kar 64,
               pix 240, zer 47, mor 6
    Classes    10 (the digits 0-9)
    ========== =========================================

    The data ship inside mmfuse (``mmfuse/datasets/data``, CC BY 4.0, with the
    attribution beside the file); nothing is downloaded.

    Parameters
    ----------
    views : list of str, default=None
        The views to load, in this order; all six when None.
    return_X_y : bool, default=False
        Return ``(data, target)`` instead of a Bunch.
    as_frame : bool, default=False
        Return ``data`` as a DataFrame (columns ``"fou__0"``, … so that
        ``blocks="auto"`` works) and ``target`` as a Series; needs pandas.

    Returns
    -------
    data : Bunch
        ``data`` (2000 × n_features float64 array or DataFrame), ``target``
        (the digit, int), ``blocks`` (dict view → width, for any estimator's
        ``blocks``), ``feature_names``, ``frame`` (data and target, when
        ``as_frame``), ``target_names``, ``DESCR``.
    (data, target) : tuple
        When ``return_X_y`` is True.

    Examples
    --------
    >>> from mmfuse.datasets import load_mfeat
    >>> bunch = load_mfeat()
    >>> bunch.data.shape, bunch.blocks["pix"]
    ((2000, 649), 240)
    >>> X, y = load_mfeat(views=["fou", "zer"], return_X_y=True)
    >>> X.shape
    (2000, 123)
    """
    views = _select_views(views, MFEAT_VIEWS)
    raw = _read("mfeat.npz")
    arrays = {view: raw[view] for view in views}
    column_names = {view: range(raw[view].shape[1]) for view in views}
    target = raw["target"].astype(np.int64)
    return _bunch(
        arrays, column_names, target, "digit", as_frame, return_X_y, MFEAT_DESCR
    )


def load_nutrimouse(*, views=None, target="genotype", return_X_y=False, as_frame=False):
    """Load Nutrimouse: liver gene expression and hepatic lipids of 40 mice.

    ========== =====================================
    Samples    40
    Features   141 in 2 views: gene 120, lipid 21
    Targets    genotype (2 classes) or diet (5)
    ========== =====================================

    Parameters
    ----------
    views : list of str, default=None
        The views to load, in this order; ``["gene", "lipid"]`` when None.
    target : {"genotype", "diet"}, default="genotype"
        Which label to return as ``target``; the Bunch holds both.
    return_X_y : bool, default=False
        Return ``(data, target)`` instead of a Bunch.
    as_frame : bool, default=False
        Return ``data`` as a DataFrame with columns ``"gene__<gene>"`` and
        ``"lipid__<lipid>"``, and ``target`` as a Series; needs pandas.

    Returns
    -------
    data : Bunch
        ``data``, ``target`` (str labels), ``genotype``, ``diet``, ``blocks``,
        ``feature_names``, ``frame`` (when ``as_frame``), ``target_names``,
        ``DESCR``.
    (data, target) : tuple
        When ``return_X_y`` is True.

    Examples
    --------
    >>> from mmfuse.datasets import load_nutrimouse
    >>> mice = load_nutrimouse()
    >>> mice.data.shape, mice.blocks
    ((40, 141), {'gene': 120, 'lipid': 21})
    >>> mice.target_names.tolist()
    ['ppar', 'wt']
    """
    if target not in ("genotype", "diet"):
        raise ValueError(f"target={target!r} must be 'genotype' or 'diet'.")
    views = _select_views(views, NUTRIMOUSE_VIEWS)
    raw = _read("nutrimouse.npz")
    arrays = {view: raw[view] for view in views}
    column_names = {view: [str(n) for n in raw[f"{view}_names"]] for view in views}
    result = _bunch(
        arrays,
        column_names,
        raw[target].astype(str),
        target,
        as_frame,
        return_X_y,
        NUTRIMOUSE_DESCR,
    )
    if not return_X_y:
        result.genotype = raw["genotype"].astype(str)
        result.diet = raw["diet"].astype(str)
    return result
