"""The default fusion strategies that :func:`compare_fusion` cross-validates."""

from collections.abc import Mapping

import numpy as np
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer, TransformedTargetRegressor
from sklearn.impute import SimpleImputer
from sklearn.kernel_approximation import Nystroem
from sklearn.kernel_ridge import KernelRidge
from sklearn.linear_model import LogisticRegression, Ridge, RidgeCV
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
from sklearn.pipeline import FeatureUnion, Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from sklearn.svm import SVC
from sklearn.utils.validation import check_array

from mmfuse._blocks import ModalitySelector, modality_mask
from mmfuse.cca import GCCA, MCCA
from mmfuse.fusion._early import make_early_fusion
from mmfuse.fusion._late import LateFusionClassifier, LateFusionRegressor
from mmfuse.utils._optional import import_optional

__all__ = ["default_strategies"]


# Rows up to which the regressor is exact kernel ridge: its n x n kernel
# then takes at most 800 MB (and a copy); beyond, Nystroem features.
EXACT_KERNEL_ROWS = 10_000
NYSTROEM_COMPONENTS = 1_000


def _kernel(task: str, random_state, n_samples, decision="ovr"):
    """Return an RBF kernel machine.

    The classifier is an SVC whose ``decision_function`` has the shape
    ``decision``: one-vs-rest, a score a class, for a strategy's own final
    estimator (what scikit-learn's scorers read: with three classes its
    three one-vs-one scores would be read as per-class ones); one-vs-one for
    a stack's member (they keep more for the stacker than their one-vs-rest
    summary). The regressor is kernel ridge regression on the standardized
    target: RBF kernels fit no intercept and their penalty is not
    scale-invariant, so an unscaled target (diabetes: 25 to 346) is shrunk
    towards 0 and scores far below what the features allow. Kernel ridge
    rather than an SVR because it draws no random number (an SVR draws one
    from numpy's global generator at each fit, and cannot be seeded).
    Past ``EXACT_KERNEL_ROWS`` rows (``n_samples``, None: unknown) its
    ``n × n`` kernel would fill the memory, so the same ridge is fitted on
    Nyström features of the same kernel instead.
    """
    if task == "classification":
        return SVC(C=10.0, decision_function_shape=decision, random_state=random_state)
    regressor = KernelRidge(kernel="rbf")
    if n_samples is not None and n_samples > EXACT_KERNEL_ROWS:
        # The same model on NYSTROEM_COMPONENTS landmarks' features (a
        # ridge without intercept on features whose products approximate
        # the kernel), in memory linear in the rows.
        regressor = make_pipeline(
            Nystroem(n_components=NYSTROEM_COMPONENTS, random_state=random_state),
            Ridge(fit_intercept=False),
        )
    return TransformedTargetRegressor(regressor, transformer=StandardScaler())


def _probabilistic(task: str, random_state, n_samples):
    """Return a late-fusion member: a calibrated SVC, or the kernel regressor.

    The SVC's probabilities come from temperature scaling of its 3-fold
    out-of-fold scores (one parameter for all classes; as accurate as a
    sigmoid a class here, and several times cheaper to fit).
    """
    if task == "classification":
        svc = CalibratedClassifierCV(
            SVC(C=10.0, random_state=random_state),
            method="temperature",
            cv=3,
            ensemble=False,
        )
        return make_pipeline(StandardScaler(), svc)
    return make_pipeline(StandardScaler(), _kernel(task, random_state, n_samples))


def _neighbours(task: str):
    """Return a cheap member unlike the kernel machine: weighted 10-NN."""
    if task == "classification":
        return make_pipeline(
            StandardScaler(), KNeighborsClassifier(10, weights="distance")
        )
    return make_pipeline(StandardScaler(), KNeighborsRegressor(10, weights="distance"))


def _stacker(task: str):
    """Return the final estimator of the default stacks.

    For classification, a logistic regression on standardized member
    outputs (one-vs-one scores and probabilities differ in scale), with a
    strong penalty against the many correlated columns; for regression, the
    late-fusion default (:class:`~sklearn.linear_model.RidgeCV`).
    """
    if task == "classification":
        return make_pipeline(StandardScaler(), _linear(task, 0.1))
    return None


def _linear(task: str, C: float = 1.0):
    """Return a linear model; ``C`` is the logistic regression's inverse penalty."""
    if task == "classification":
        return LogisticRegression(C=C, max_iter=2000)
    return RidgeCV(alphas=np.logspace(-3, 3, 13))


def _absent(X, blocks):
    """One column a modality: 1.0 where the row lacks it (its block all NaN)."""
    X = check_array(X, accept_sparse="csr", ensure_all_finite="allow-nan")
    return (~modality_mask(X, list(blocks.values()))).astype(float)


def _absent_names(transformer, input_features):
    """Names of the missing indicators: ``absent_<modality>``."""
    return np.asarray([f"absent_{name}" for name in transformer.kw_args["blocks"]])


def _fill_missing(blocks):
    """Return the transformer of the missing-modality rule.

    Its output is one missing indicator a modality (``blocks``: each
    modality's column positions in its input, by name), then every input
    column with NaN replaced by the column's training mean (0 for a column
    with no value in training).
    """
    indicator = FunctionTransformer(
        _absent,
        kw_args={"blocks": {name: np.asarray(b) for name, b in blocks.items()}},
        feature_names_out=_absent_names,
    )
    imputer = SimpleImputer(strategy="mean", keep_empty_features=True)
    return FeatureUnion([("absent", indicator), ("values", imputer)])


def _fresh_name(name: str, taken) -> str:
    """``name``, with underscores appended until it is not in ``taken``."""
    while name in taken:
        name += "_"
    return name


def _single(blocks, name, task, random_state, n_samples):
    """One modality alone: its columns, the rule's imputation, a kernel machine."""
    width = len(blocks[name])
    return make_pipeline(
        ModalitySelector(blocks=blocks, modality=name),
        _fill_missing({name: np.arange(width)}),
        StandardScaler(),
        _kernel(task, random_state, n_samples),
    )


def _early(blocks, estimator):
    """Early fusion with the missing indicators as one more block."""
    m = len(blocks)
    # The indicators come first, so each modality moves m columns right.
    shifted = {name: np.asarray(cols) + m for name, cols in blocks.items()}
    shifted[_fresh_name("missing", blocks)] = np.arange(m)
    early = make_early_fusion(estimator, shifted, block_scaling=True)
    return Pipeline([("missing", _fill_missing(blocks)), *early.steps])


def default_strategies(
    blocks, task="classification", *, random_state=None, n_samples=None
):
    """List the default fusion strategies as ``(name, family, estimator)``.

    Names are ``"<family>:<variant>"`` (``"single:<modality>"`` for each
    modality alone). The deep strategy (the MLP fusion head) appears when
    the ``deep`` extra (torch and skorch) is installed.

    The kernel machines are RBF SVCs (C=10) for classification and kernel
    ridge regressions on the standardized target for regression (on 1,000
    Nyström components of the same kernel past 10,000 rows, where the
    exact kernel would fill the memory); the
    linear baseline ``early:linear`` is a logistic regression or a
    :class:`~sklearn.linear_model.RidgeCV` on all modalities.

    **Missing modalities.** Every strategy fits and predicts rows that lack
    some modality (its block all NaN there), so that
    :func:`compare_fusion` scores all of them on the same rows:

    - late fusion, stacking, hierarchical and the deep head handle them
      themselves (a row is predicted from the members, or encoders, of the
      modalities it has);
    - single-modality and early fusion replace each missing value by its
      column's training mean and add one missing indicator a modality (1
      where the row lacks it); early fusion treats the indicators as one
      more block;
    - the subspace strategies mean-impute likewise before MCCA/GCCA, whose
      fit needs every modality in every row, so an absent modality's
      canonical variates are 0 (their training mean); the indicators join
      the variates before the classifier. With few incomplete rows the
      weights are close to those fitted on the complete rows (the imputed
      rows add nothing to the centred cross-products, they only shrink the
      covariances a little).

    On complete data the indicators are constant zero and change nothing.

    Parameters
    ----------
    blocks : dict of {str: list of int}
        Each modality's column positions in ``X`` (:func:`compare_fusion`
        resolves any form of ``blocks`` into this).
    task : {"classification", "regression"}, default="classification"
        What the strategies predict.
    random_state : int, RandomState instance or None, default=None
        Seed of every strategy that draws random numbers (the SVCs, MCCA and
        GCCA, the deep head); with an int none of them draws from numpy's
        global generator.
    n_samples : int, default=None
        Number of rows the strategies will fit (at most); the regressors
        switch to Nyström features past 10,000. None: exact kernels.

    Returns
    -------
    strategies : list of (str, str, estimator) tuples
        Name, family and an unfitted estimator.

    Raises
    ------
    TypeError
        When ``blocks`` is not a dict.

    Examples
    --------
    >>> from mmfuse.fusion import default_strategies
    >>> blocks = {"a": [0, 1], "b": [2, 3, 4]}
    >>> names = [name for name, _, _ in default_strategies(blocks)]
    >>> names[:5]
    ['single:a', 'single:b', 'early:linear', 'early:kernel', 'late:soft']
    """
    if not isinstance(blocks, Mapping):
        raise TypeError(
            f"blocks must be a dict of each modality's column positions, e.g. "
            f"{{'a': [0, 1], 'b': [2, 3, 4]}}; got {type(blocks).__name__}. "
            f"compare_fusion takes every form of blocks and resolves it."
        )
    classify = task == "classification"
    modalities = list(blocks)
    # A member over several modalities sees their columns side by side.
    widths = {name: len(columns) for name, columns in blocks.items()}
    late = LateFusionClassifier if classify else LateFusionRegressor
    strategies = [
        (
            f"single:{name}",
            "single",
            _single(blocks, name, task, random_state, n_samples),
        )
        for name in modalities
    ]
    strategies += [
        ("early:linear", "early", _early(blocks, _linear(task))),
        (
            "early:kernel",
            "early",
            _early(blocks, _kernel(task, random_state, n_samples)),
        ),
        (
            "late:soft" if classify else "late:mean",
            "late",
            late(
                [
                    (name, _probabilistic(task, random_state, n_samples), name)
                    for name in modalities
                ],
                blocks=blocks,
            ),
        ),
    ]
    # A kernel machine a modality, stacked with a neighbours member a
    # modality (stacking) or with an early-fusion member (hierarchical). The
    # stacker learns from 3-fold out-of-fold outputs: on mfeat as accurate as
    # 5-fold for stacking, and much cheaper with these many members.
    kernels = [
        (
            name,
            make_pipeline(
                StandardScaler(), _kernel(task, random_state, n_samples, "ovo")
            ),
            name,
        )
        for name in modalities
    ]
    neighbours = [(f"{name}_nn", _neighbours(task), name) for name in modalities]
    early = make_early_fusion(
        _kernel(task, random_state, n_samples, "ovo"), widths, block_scaling=True
    )
    stack = {
        "blocks": blocks,
        "voting": "stack",
        "final_estimator": _stacker(task),
        "cv": 3,
    }
    strategies += [
        ("stacking", "stacking", late([*kernels, *neighbours], **stack)),
        (
            "hierarchical",
            "hierarchical",
            late([*kernels, ("early", early, modalities)], **stack),
        ),
    ]
    strategies += _subspace_strategies(blocks, task, random_state, n_samples)
    strategies += _deep_strategies(blocks, task, random_state)
    return strategies


def _subspace_strategies(blocks, task, random_state, n_samples):
    """Return MCCA/GCCA variates then a kernel machine."""
    strategies = []
    m = len(blocks)
    # Components up to the narrowest modality's width, at most 10 a modality.
    n_components = min(10, *(len(columns) for columns in blocks.values()))
    for subspace in (MCCA, GCCA):
        model = subspace(
            n_components=n_components,
            blocks=blocks,
            regularization=0.1,
            random_state=random_state,
        )
        # After _fill_missing: m indicators, then the imputed input columns.
        parts = ColumnTransformer(
            [
                ("absent", "passthrough", np.arange(m)),
                ("variates", make_pipeline(StandardScaler(), model), slice(m, None)),
            ]
        )
        pipeline = make_pipeline(
            _fill_missing(blocks),
            parts,
            StandardScaler(),
            _kernel(task, random_state, n_samples),
        )
        name = f"subspace:{subspace.__name__.lower()}"
        strategies.append((name, "subspace", pipeline))
    return strategies


def _deep_strategies(blocks, task, random_state):
    """Return the MLP fusion head, cheap enough for a quick comparison."""
    name = "MLPFusionClassifier" if task == "classification" else "MLPFusionRegressor"
    head = import_optional("mmfuse.deep", name)
    if head is None:
        return []
    # No internal validation split: the comparison reads no validation loss,
    # so the head trains on every training row (and no split ignores groups).
    model = head(
        blocks=blocks,
        max_epochs=20,
        train_split=None,
        random_state=random_state,
        verbose=0,
    )
    return [("deep:mlp", "deep", model)]
