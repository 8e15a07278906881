"""Early fusion: preprocess each modality, concatenate, fit one estimator."""

import numpy as np
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from mmfuse._blocks import modality_names, per_modality, resolve_blocks_for

__all__ = ["make_early_fusion"]


class _ModalityColumns:
    """Column selector for ``ColumnTransformer``: the columns of one modality.

    Resolves ``blocks`` against the ``X`` it is given, so that an int ``k`` or
    name prefixes work whatever the width and column names of ``X``.
    """

    def __init__(self, blocks, name):
        self.blocks = blocks
        self.name = name

    def __call__(self, X):
        indices, modalities = resolve_blocks_for(self.blocks, X)
        return indices[modalities.index(self.name)]

    def __repr__(self):
        # Shown in the repr of the ColumnTransformer (an address otherwise).
        return f"ModalityColumns(name={self.name!r})"


def check_estimator(estimator, what: str) -> None:
    """Raise a TypeError unless ``estimator`` is an estimator instance.

    Parameters
    ----------
    estimator : object
        The value given as an estimator.
    what : str
        What the value is, for the message (e.g. ``"member 'img'"``).

    Raises
    ------
    TypeError
        Naming the value, what it is, and what to give instead.
    """
    if isinstance(estimator, type):
        raise TypeError(
            f"{what} is the class {estimator.__name__}, not an estimator; give "
            f"an instance, {estimator.__name__}()."
        )
    if not (hasattr(estimator, "fit") and hasattr(estimator, "get_params")):
        raise TypeError(
            f"{what} is {estimator!r} ({type(estimator).__name__}), not an "
            f"estimator; give an instance with fit and get_params, such as "
            f"LogisticRegression()."
        )


def _divide_by_sqrt_width(Z):
    """Scale a modality by ``1 / sqrt(width)`` (block scaling)."""
    return Z / np.sqrt(Z.shape[1])


def _preprocessor(preprocess, name):
    """Return the transformer of one modality from its ``preprocess`` entry."""
    if preprocess == "standard":
        return StandardScaler()
    if preprocess in ("passthrough", "drop"):
        return preprocess
    if not hasattr(preprocess, "fit") or not hasattr(preprocess, "transform"):
        raise ValueError(
            f"preprocess for modality {name!r} is {preprocess!r}; give a "
            f"transformer, 'standard', 'passthrough' or 'drop'."
        )
    return clone(preprocess)


def make_early_fusion(
    estimator,
    blocks,
    *,
    preprocess="standard",
    block_scaling=False,
    n_jobs=None,
):
    """Build an early-fusion pipeline: preprocess each modality, concatenate.

    The result is a plain :class:`~sklearn.pipeline.Pipeline` of a
    :class:`~sklearn.compose.ColumnTransformer` (one transformer a modality,
    named after it, so the fused features are named ``<modality>__<feature>``)
    and ``estimator``. Columns outside every block are dropped. Early fusion
    needs every modality in every row: impute missing ones first, or use
    :class:`LateFusionClassifier`.

    **Sample weights** reach the pipeline's steps as in any Pipeline: the
    final estimator's by its step name,
    ``fit(X, y, <step>__sample_weight=w)`` (e.g.
    ``logisticregression__sample_weight``; the modalities' preprocessing is
    then fitted unweighted), or, with metadata routing enabled
    (``sklearn.set_config(enable_metadata_routing=True)``), ``fit(X, y,
    sample_weight=w)`` to every step that requests them: call
    ``set_fit_request(sample_weight=True)`` on ``estimator`` and on
    ``preprocess`` (each modality's copy keeps the request). With every step
    weighted, integer weights give the model fitted on the rows repeated.

    Parameters
    ----------
    estimator : estimator
        The estimator fitted on the fused features (cloned).
    blocks : int, list, tuple or dict
        The modality blocks, in any form :func:`mmfuse.resolve_blocks`
        accepts except ``"auto"`` (the pipeline is built before it sees
        ``X``: give the names as a list of prefixes instead).
    preprocess : "standard", "passthrough", transformer, list or dict, \
default="standard"
        Each modality's preprocessing: ``"standard"`` a
        :class:`~sklearn.preprocessing.StandardScaler`, ``"passthrough"``
        none, a transformer (cloned for each modality), a list of these or
        ``"drop"``, one a modality, or a dict from modality name to any of
        these (modalities it omits pass through).
    block_scaling : bool, default=False
        Divide each preprocessed modality by the square root of its width, so
        that after standardization every modality has the same total variance
        and a wide modality does not outweigh a narrow one in distances and
        penalties (block scaling of multiblock analysis).
    n_jobs : int, default=None
        Parallel jobs of the ``ColumnTransformer``.

    Returns
    -------
    pipeline : Pipeline
        Steps ``"columntransformer"`` and the estimator's lowercase class
        name, as :func:`~sklearn.pipeline.make_pipeline` names them; a
        modality's preprocessing parameters are
        ``columntransformer__<modality>__<param>``; with ``block_scaling``
        each modality is a Pipeline of its preprocessing and the scaling, so
        they are ``columntransformer__<modality>__<step>__<param>`` (e.g.
        ``columntransformer__kar__standardscaler__with_mean``).

    See Also
    --------
    LateFusionClassifier : One estimator a modality, then vote or stack.
    mmfuse.ModalitySelector : Keep one modality in a pipeline.

    References
    ----------
    .. [1] J. A. Westerhuis, T. Kourti, J. F. MacGregor, "Analysis of
       multiblock and hierarchical PCA and PLS models", Journal of
       Chemometrics 12(5):301-321, 1998 (block scaling).

    Examples
    --------
    >>> from sklearn.linear_model import LogisticRegression
    >>> from mmfuse.datasets import load_mfeat
    >>> from mmfuse.fusion import make_early_fusion
    >>> X, y = load_mfeat(views=["kar", "zer"], return_X_y=True)
    >>> model = make_early_fusion(
    ...     LogisticRegression(), {"kar": 64, "zer": 47}, block_scaling=True
    ... ).fit(X[::2], y[::2])
    >>> print(f"{model.score(X[1::2], y[1::2]):.3f}")
    0.961
    >>> model[:-1].get_feature_names_out()[[0, 64]].tolist()
    ['kar__x0', 'zer__x64']

    Weights for the final estimator go by its step name:

    >>> import numpy as np
    >>> w = np.where(y[::2] == 3, 5.0, 1.0)  # each 3 counts five times
    >>> model = model.fit(X[::2], y[::2], logisticregression__sample_weight=w)
    >>> print(f"{model.score(X[1::2], y[1::2]):.3f}")
    0.958
    """
    check_estimator(estimator, "estimator")
    names = modality_names(blocks)
    if not names:
        raise ValueError(
            f"make_early_fusion needs the modalities before it sees X, so "
            f"blocks={blocks!r} is not accepted here: give an int, a list of "
            f"widths or column selections, a list of name prefixes such as "
            f"['image', 'text'], or a dict of named blocks."
        )
    entries = per_modality("preprocess", preprocess, names, default="passthrough")
    steps = [
        _preprocessor(entry, name) for entry, name in zip(entries, names, strict=True)
    ]
    if all(step == "drop" for step in steps):
        raise ValueError(
            f"preprocess drops every modality ({preprocess!r}), which leaves "
            f"the estimator no feature; keep at least one modality."
        )
    transformers = []
    for name, step in zip(names, steps, strict=True):
        if block_scaling and step != "drop":
            scale = FunctionTransformer(
                _divide_by_sqrt_width, feature_names_out="one-to-one"
            )
            if step == "passthrough":
                step = scale
            else:
                # The preprocessing hands the scaling NumPy: a pipeline in a
                # ColumnTransformer whose later step saw the first step's
                # DataFrame (names x0, x1, ... of its own) fails under pandas
                # output on NumPy input, as it is asked for the names of
                # the modality's columns in X (a scikit-learn limitation).
                if hasattr(step, "set_output"):
                    step.set_output(transform="default")
                step = make_pipeline(step, scale)
        transformers.append((name, step, _ModalityColumns(blocks, name)))
    columns = ColumnTransformer(transformers, remainder="drop", n_jobs=n_jobs)
    return Pipeline(
        [
            ("columntransformer", columns),
            (type(estimator).__name__.lower(), clone(estimator)),
        ]
    )
