"""MLPFusionClassifier and MLPFusionRegressor: skorch fusion heads."""

from abc import abstractmethod
from numbers import Integral, Real

import numpy as np
import torch
from scipy.special import softmax
from sklearn.base import ClassifierMixin, RegressorMixin
from sklearn.metrics import r2_score
from sklearn.preprocessing import LabelEncoder
from sklearn.utils.multiclass import check_classification_targets
from skorch.dataset import ValidSplit

from mmfuse._blocks import numeric_target, per_modality
from mmfuse.deep._base import BaseMultimodalNet, check_widths, cosine_schedule
from mmfuse.deep._data import column_statistics, standardize, unstandardize
from mmfuse.deep._fusion_module import FUSIONS, FusionNet
from mmfuse.utils._compat import Interval, StrOptions

__all__ = ["MLPFusionClassifier", "MLPFusionRegressor"]

# Default internal validation splits (skorch's defaults), shared and stateless.
_SPLIT = ValidSplit(5)
_STRATIFIED_SPLIT = ValidSplit(5, stratified=True)


class _BaseFusionNet(BaseMultimodalNet):
    """What the fusion classifier and regressor share."""

    _parameter_constraints: dict = {
        **BaseMultimodalNet._parameter_constraints,
        "fusion": [StrOptions(FUSIONS.keys())],  # read when validated
        "d_model": [Interval(Integral, 1, None, closed="left")],
        "n_tokens": [Interval(Integral, 1, None, closed="left")],
        "n_heads": [Interval(Integral, 1, None, closed="left")],
        "n_layers": [Interval(Integral, 1, None, closed="left")],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "modality_dropout": [Interval(Real, 0, 1, closed="left")],
    }

    def get_default_callbacks(self):
        """Return the default callbacks: skorch's, and a cosine ``"lr_scheduler"``.

        The learning rate falls from ``lr`` towards 0 on a cosine over the
        ``max_epochs`` epochs of ``fit``, and again over those of each
        ``partial_fit`` call (a warm restart);
        ``set_params(callbacks__lr_scheduler=None)`` keeps it constant.
        """
        return [*super().get_default_callbacks(), cosine_schedule(self.max_epochs)]

    @abstractmethod
    def _n_outputs(self):
        """Width of the module's output."""

    def _criterion_params(self):
        """Return the criterion's arguments that estimator parameters set."""
        return {}

    def initialize_criterion(self):
        """Build ``criterion_``, one loss a row (skorch extension point).

        The criterion is built with ``reduction="none"``: the net averages
        the rows' losses itself, weighted by ``sample_weight``.

        Returns
        -------
        self : _BaseFusionNet
            The net, with ``criterion_`` set.
        """
        params = self.get_params_for("criterion")
        if "reduction" in params:
            raise ValueError(
                f"criterion__reduction={params['reduction']!r} cannot be set: the "
                f"net averages the rows' losses itself (weighted by "
                f"sample_weight); remove it."
            )
        params = self._module_kwargs(
            self._criterion_params(), params, self.criterion, prefix="criterion"
        )
        self.criterion_ = self.criterion(**params, reduction="none")
        return self

    def _build_module(self, **module_params):
        for name in ("encoder_hidden", "head_hidden"):
            if name in module_params:
                check_widths(f"module__{name}", module_params[name])
        if FUSIONS[self.fusion].attends and self.d_model % self.n_heads:
            raise ValueError(
                f"d_model={self.d_model} is not divisible by n_heads="
                f"{self.n_heads}, which fusion={self.fusion!r} needs; use a "
                f"d_model that is a multiple of n_heads."
            )
        encoders = per_modality(
            "module__encoder",
            module_params.pop("encoder", None),
            self.modality_names_,
            callable,
            None,
            default=None,
        )
        explicit = {
            "blocks": self.blocks_,
            "n_outputs": self._n_outputs(),
            "fusion": self.fusion,
            "d_model": self.d_model,
            "n_tokens": self.n_tokens,
            "n_heads": self.n_heads,
            "n_layers": self.n_layers,
            "dropout": self.dropout,
            "modality_dropout": self.modality_dropout,
            "encoders": encoders,
        }
        return FusionNet(**self._module_kwargs(explicit, module_params, FusionNet))

    def modality_weights(self, X):
        """How much each modality contributed to each row's prediction.

        Attention fusions: the attention the readout (the present modality
        tokens, or the CLS token with ``module__cls_token=True``) pays to
        each modality's tokens in the last attention block, averaged over
        heads; ``"gated"``: the gates; ``"late"``: equal shares of the
        modalities present. ``"concat"`` has no per-row weights.

        Parameters
        ----------
        X : {array-like, DataFrame} of shape (n_samples, n_features)
            Multimodal data; all-NaN blocks are missing modalities.

        Returns
        -------
        weights : ndarray of shape (n_samples, n_modalities)
            Rows sum to 1; missing modalities get 0. Columns follow
            ``modality_names_``.
        """
        return self._module_method(X, "modality_weights")


class MLPFusionClassifier(ClassifierMixin, _BaseFusionNet):
    """Multimodal classifier: encoders, fusion, MLP head.

    A skorch net whose torch module is built in ``fit`` from the resolved
    ``blocks``, so it is a plain scikit-learn classifier (``Pipeline``,
    ``clone``, ``GridSearchCV`` over ``fusion`` or ``module__…``,
    ``cross_validate``, pickle). Any label type.

    Parameters
    ----------
    blocks : "auto", int, list, tuple or dict, default="auto"
        The modality blocks, in any form :func:`~mmfuse.resolve_blocks`
        accepts.
    fusion : {"concat", "attention", "cross_attention", "co_attention", \
"gated", "late"}, default="late"
        How the modality encodings are fused:

        - ``"concat"``: early fusion, the tokens side by side into the head;
        - ``"attention"``: self-attention over all modality tokens;
        - ``"cross_attention"``: each modality's tokens attend to the other
          modalities' tokens;
        - ``"co_attention"``: self-attention within each modality, then
          cross-attention between modalities;
        - ``"gated"``: a learned softmax gate per row over the modality
          summaries;
        - ``"late"``: one head per modality (on its tokens through a ReLU),
          outputs averaged over the modalities present.
    d_model : int, default=32
        Token width.
    n_tokens : int, default=4
        Tokens each modality is encoded into.
    n_heads : int, default=4
        Attention heads; must divide ``d_model`` for the attention fusions.
    n_layers : int, default=1
        Attention layers.
    dropout : float, default=0.2
        Dropout in the encoders, attention blocks and heads.
    modality_dropout : float, default=0.0
        In training, the probability of dropping each modality of a row (a
        row keeps at least one): trains the net to predict from a subset.
    optimizer : callable, default=torch.optim.AdamW
        The torch optimizer class; set its parameters with
        ``set_params(optimizer__weight_decay=...)``. Adam and AdamW use
        torch's fused implementation unless ``optimizer__fused`` or
        ``optimizer__foreach`` is set.
    lr : float, default=4e-3
        Initial learning rate, annealed towards 0 on a cosine over the
        ``max_epochs`` epochs of each ``fit`` or ``partial_fit`` call (the
        default callback ``"lr_scheduler"``;
        ``set_params(callbacks__lr_scheduler=None)`` keeps it constant).
    max_epochs : int, default=60
        Training epochs.
    batch_size : int, default=128
        Mini-batch size; -1 for the whole data set. Predictions do not
        depend on it.
    train_split : callable or None, default=ValidSplit(5, stratified=True)
        skorch's internal validation split, for ``valid_loss`` and early
        stopping; None trains on all the data.
    callbacks : list of (str, Callback), "disable" or None, default=None
        skorch callbacks, e.g. ``[("stop", EarlyStopping(patience=5))]``.
    verbose : int, default=1
        1 prints a line per epoch; 0 is silent.
    device : str or torch.device, default="cpu"
        Where the net is trained and run, e.g. ``"cuda"``.
    random_state : int, RandomState instance or None, default=None
        Seeds the weights, shuffling and dropouts: the same seed gives the
        same predictions on CPU; torch's global random state is left as it
        was. None draws from torch's global generator.
    label_smoothing : float, default=0.1
        Label smoothing of the cross-entropy loss
        (:class:`torch.nn.CrossEntropyLoss`): the training target puts
        ``1 - label_smoothing`` on the true class and spreads the rest over
        all classes; 0 trains on the labels as they are. Smoothing tempers
        the outputs' confidence, and ``"gated"`` nets may then learn gates
        that also lean on uninformative modalities: use 0 to read the gates
        (:meth:`modality_weights`) as how informative each modality is.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The class labels.
    blocks_ : list of ndarray of intp
        Column positions of each modality.
    modality_names_ : list of str
        Name of each modality.
    mean_ : ndarray of shape (n_features_in_,)
        Mean of each column's observed training values.
    scale_ : ndarray of shape (n_features_in_,)
        Standard deviation of each column's observed training values.
    module_ : torch.nn.Module
        The trained torch module: the encoders, the fusion and the head(s).
    history_ : skorch.history.History
        Per-epoch losses and timings.
    n_features_in_ : int
        Number of columns seen in ``fit``.
    feature_names_in_ : ndarray of str of shape (n_features_in_,)
        Column names seen in ``fit``, when ``X`` had string column names.

    See Also
    --------
    MLPFusionRegressor : The same net for regression.
    mmfuse.fusion.LateFusionClassifier : Late fusion of any classifiers.

    Notes
    -----
    Each modality (block) goes through its own encoder (a multilayer
    perceptron by default) into ``n_tokens`` tokens of width ``d_model``
    (plus a learned modality-type embedding for the attention fusions); the
    fusion step combines them and an MLP head (one a modality for
    ``"late"``) predicts. Training batches are shuffled and the learning
    rate decays on a cosine (the ``"lr_scheduler"`` callback). Columns are
    standardized inside the net with the mean and standard deviation of
    their observed training values, so pass raw features.

    A row whose block is entirely NaN lacks that modality: it is masked out
    of attention, gates and late averages, and never makes the output NaN;
    other NaN entries count as the column mean. A row lacking every modality
    is an error, in ``fit`` as in prediction.

    ``fit(X, y, sample_weight=w)`` weighs each row's loss: a batch's loss is
    ``sum(w * loss) / sum(w)`` over its rows, so integer weights act as
    repetition counts in expectation (not exactly: repeated rows would change
    the shuffled batches and the number of steps). A fit whose loss becomes
    non-finite stops with an error that says in which epoch.

    Module options go through skorch's ``module__`` prefix, with
    ``set_params``:

    - ``module__encoder``: the encoder of every modality, a list of one a
      modality, or a dict ``{modality: encoder}`` (the others keep the
      default); an encoder is a class or callable ``(in_features,
      out_features)`` returning a torch module from ``(batch, in_features)``
      to ``(batch, out_features)``, or None for the default;
    - ``module__encoder_hidden``: hidden widths of the default encoders,
      ``(128,)`` by default;
    - ``module__head_hidden``: hidden widths of the head(s), ``(64,)`` by
      default;
    - ``module__cls_token``: for the attention fusions, read the fused
      representation from a learned CLS token's output instead of averaging
      the present modalities' tokens (False by default). The CLS output of
      the last block sees that block's input tokens only: with
      ``n_layers=1``, ``"cross_attention"`` then reads as ``"attention"``.

    Other skorch prefixes (``optimizer__``, ``callbacks__``,
    ``iterator_train__``) work as in skorch, through ``set_params``.

    Examples
    --------
    >>> import numpy as np
    >>> from mmfuse.datasets import make_multiview
    >>> from mmfuse.deep import MLPFusionClassifier
    >>> X, latent = make_multiview(200, [6, 4], n_latent=2, random_state=0)
    >>> y = (latent[:, 0] > 0).astype(int)
    >>> clf = MLPFusionClassifier(blocks=[6, 4], d_model=16, max_epochs=20,
    ...                           verbose=0, random_state=0).fit(X, y)
    >>> clf.score(X, y) > 0.8
    True
    >>> X_missing = X.copy()
    >>> X_missing[:5, 6:] = np.nan  # the second modality is missing
    >>> clf.predict_proba(X_missing).shape
    (200, 2)
    >>> clf.modality_weights(X_missing)[:2].round(2)
    array([[1., 0.],
           [1., 0.]])
    """

    criterion = torch.nn.CrossEntropyLoss

    _parameter_constraints: dict = {
        **_BaseFusionNet._parameter_constraints,
        "label_smoothing": [Interval(Real, 0, 1, closed="both")],
    }

    def __init__(
        self,
        blocks="auto",
        *,
        fusion="late",
        d_model=32,
        n_tokens=4,
        n_heads=4,
        n_layers=1,
        dropout=0.2,
        modality_dropout=0.0,
        optimizer=torch.optim.AdamW,
        lr=4e-3,
        max_epochs=60,
        batch_size=128,
        train_split=_STRATIFIED_SPLIT,
        callbacks=None,
        verbose=1,
        device="cpu",
        random_state=None,
        label_smoothing=0.1,
    ):
        super().__init__(
            blocks=blocks,
            optimizer=optimizer,
            lr=lr,
            max_epochs=max_epochs,
            batch_size=batch_size,
            train_split=train_split,
            callbacks=callbacks,
            verbose=verbose,
            device=device,
            random_state=random_state,
        )
        self.fusion = fusion
        self.d_model = d_model
        self.n_tokens = n_tokens
        self.n_heads = n_heads
        self.n_layers = n_layers
        self.dropout = dropout
        self.modality_dropout = modality_dropout
        self.label_smoothing = label_smoothing

    def _criterion_params(self):
        return {"label_smoothing": self.label_smoothing}

    def _encode_target(self, y, *, reset, classes=None, sample_weight=None):
        check_classification_targets(y)
        if reset:
            self._label_encoder = LabelEncoder().fit(y if classes is None else classes)
            self.classes_ = self._label_encoder.classes_
        return self._label_encoder.transform(y).astype(np.int64)

    def _n_outputs(self):
        return len(self.classes_)

    def predict_proba(self, X):
        """Class probabilities.

        Parameters
        ----------
        X : {array-like, DataFrame} of shape (n_samples, n_features)
            Multimodal data; all-NaN blocks are missing modalities.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Probabilities in the order of ``classes_``.
        """
        return softmax(self._module_method(X, "forward"), axis=1)

    def predict(self, X):
        """Predicted class labels.

        Parameters
        ----------
        X : {array-like, DataFrame} of shape (n_samples, n_features)
            Multimodal data; all-NaN blocks are missing modalities.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
            Labels from ``classes_``.
        """
        scores = self._module_method(X, "forward")
        return self.classes_[scores.argmax(axis=1)]


class MLPFusionRegressor(RegressorMixin, _BaseFusionNet):
    """Multimodal regressor: encoders, fusion, MLP head.

    A skorch net whose torch module is built in ``fit`` from the resolved
    ``blocks``, so it is a plain scikit-learn regressor (``Pipeline``,
    ``clone``, ``GridSearchCV``, ``cross_validate``, pickle). Single and
    multi-output; targets are standardized inside the net.

    Parameters
    ----------
    blocks : "auto", int, list, tuple or dict, default="auto"
        The modality blocks, in any form :func:`~mmfuse.resolve_blocks`
        accepts.
    fusion : {"concat", "attention", "cross_attention", "co_attention", \
"gated", "late"}, default="late"
        How the modality encodings are fused:

        - ``"concat"``: early fusion, the tokens side by side into the head;
        - ``"attention"``: self-attention over all modality tokens;
        - ``"cross_attention"``: each modality's tokens attend to the other
          modalities' tokens;
        - ``"co_attention"``: self-attention within each modality, then
          cross-attention between modalities;
        - ``"gated"``: a learned softmax gate per row over the modality
          summaries;
        - ``"late"``: one head per modality (on its tokens through a ReLU),
          outputs averaged over the modalities present.
    d_model : int, default=32
        Token width.
    n_tokens : int, default=4
        Tokens each modality is encoded into.
    n_heads : int, default=4
        Attention heads; must divide ``d_model`` for the attention fusions.
    n_layers : int, default=1
        Attention layers.
    dropout : float, default=0.2
        Dropout in the encoders, attention blocks and heads.
    modality_dropout : float, default=0.0
        In training, the probability of dropping each modality of a row (a
        row keeps at least one): trains the net to predict from a subset.
    optimizer : callable, default=torch.optim.AdamW
        The torch optimizer class; set its parameters with
        ``set_params(optimizer__weight_decay=...)``. Adam and AdamW use
        torch's fused implementation unless ``optimizer__fused`` or
        ``optimizer__foreach`` is set.
    lr : float, default=4e-3
        Initial learning rate, annealed towards 0 on a cosine over the
        ``max_epochs`` epochs of each ``fit`` or ``partial_fit`` call (the
        default callback ``"lr_scheduler"``;
        ``set_params(callbacks__lr_scheduler=None)`` keeps it constant).
    max_epochs : int, default=60
        Training epochs.
    batch_size : int, default=128
        Mini-batch size; -1 for the whole data set. Predictions do not
        depend on it.
    train_split : callable or None, default=ValidSplit(5)
        skorch's internal validation split, for ``valid_loss`` and early
        stopping; None trains on all the data.
    callbacks : list of (str, Callback), "disable" or None, default=None
        skorch callbacks, e.g. ``[("stop", EarlyStopping(patience=5))]``.
    verbose : int, default=1
        1 prints a line per epoch; 0 is silent.
    device : str or torch.device, default="cpu"
        Where the net is trained and run, e.g. ``"cuda"``.
    random_state : int, RandomState instance or None, default=None
        Seeds the weights, shuffling and dropouts: the same seed gives the
        same predictions on CPU; torch's global random state is left as it
        was. None draws from torch's global generator.

    Attributes
    ----------
    y_mean_ : ndarray of shape (n_targets,)
        Mean of each training target.
    y_scale_ : ndarray of shape (n_targets,)
        Standard deviation of each training target.
    blocks_ : list of ndarray of intp
        Column positions of each modality.
    modality_names_ : list of str
        Name of each modality.
    mean_ : ndarray of shape (n_features_in_,)
        Mean of each column's observed training values.
    scale_ : ndarray of shape (n_features_in_,)
        Standard deviation of each column's observed training values.
    module_ : torch.nn.Module
        The trained torch module: the encoders, the fusion and the head(s).
    history_ : skorch.history.History
        Per-epoch losses and timings.
    n_features_in_ : int
        Number of columns seen in ``fit``.
    feature_names_in_ : ndarray of str of shape (n_features_in_,)
        Column names seen in ``fit``, when ``X`` had string column names.

    See Also
    --------
    MLPFusionClassifier : The same net for classification.

    Notes
    -----
    Each modality (block) goes through its own encoder (a multilayer
    perceptron by default) into ``n_tokens`` tokens of width ``d_model``
    (plus a learned modality-type embedding for the attention fusions); the
    fusion step combines them and an MLP head (one a modality for
    ``"late"``) predicts. Training batches are shuffled and the learning
    rate decays on a cosine (the ``"lr_scheduler"`` callback). Columns are
    standardized inside the net with the mean and standard deviation of
    their observed training values, so pass raw features.

    A row whose block is entirely NaN lacks that modality: it is masked out
    of attention, gates and late averages, and never makes the output NaN;
    other NaN entries count as the column mean. A row lacking every modality
    is an error, in ``fit`` as in prediction.

    ``fit(X, y, sample_weight=w)`` weighs each row's loss: a batch's loss is
    ``sum(w * loss) / sum(w)`` over its rows, so integer weights act as
    repetition counts in expectation (not exactly: repeated rows would change
    the shuffled batches and the number of steps). A fit whose loss becomes
    non-finite stops with an error that says in which epoch.

    Module options go through skorch's ``module__`` prefix, with
    ``set_params``:

    - ``module__encoder``: the encoder of every modality, a list of one a
      modality, or a dict ``{modality: encoder}`` (the others keep the
      default); an encoder is a class or callable ``(in_features,
      out_features)`` returning a torch module from ``(batch, in_features)``
      to ``(batch, out_features)``, or None for the default;
    - ``module__encoder_hidden``: hidden widths of the default encoders,
      ``(128,)`` by default;
    - ``module__head_hidden``: hidden widths of the head(s), ``(64,)`` by
      default;
    - ``module__cls_token``: for the attention fusions, read the fused
      representation from a learned CLS token's output instead of averaging
      the present modalities' tokens (False by default). The CLS output of
      the last block sees that block's input tokens only: with
      ``n_layers=1``, ``"cross_attention"`` then reads as ``"attention"``.

    Other skorch prefixes (``optimizer__``, ``callbacks__``,
    ``iterator_train__``) work as in skorch, through ``set_params``.

    Examples
    --------
    >>> from mmfuse.datasets import make_multiview
    >>> from mmfuse.deep import MLPFusionRegressor
    >>> X, latent = make_multiview(200, [6, 4], n_latent=2, random_state=0)
    >>> reg = MLPFusionRegressor(blocks=[6, 4], fusion="gated", d_model=16,
    ...                          max_epochs=20, verbose=0, random_state=0)
    >>> reg.fit(X, latent).predict(X).shape
    (200, 2)
    >>> reg.score(X, latent) > 0.5
    True
    """

    criterion = torch.nn.MSELoss
    _target_check_params = {"multi_output": True, "y_numeric": True}

    def __init__(
        self,
        blocks="auto",
        *,
        fusion="late",
        d_model=32,
        n_tokens=4,
        n_heads=4,
        n_layers=1,
        dropout=0.2,
        modality_dropout=0.0,
        optimizer=torch.optim.AdamW,
        lr=4e-3,
        max_epochs=60,
        batch_size=128,
        train_split=_SPLIT,
        callbacks=None,
        verbose=1,
        device="cpu",
        random_state=None,
    ):
        super().__init__(
            blocks=blocks,
            optimizer=optimizer,
            lr=lr,
            max_epochs=max_epochs,
            batch_size=batch_size,
            train_split=train_split,
            callbacks=callbacks,
            verbose=verbose,
            device=device,
            random_state=random_state,
        )
        self.fusion = fusion
        self.d_model = d_model
        self.n_tokens = n_tokens
        self.n_heads = n_heads
        self.n_layers = n_layers
        self.dropout = dropout
        self.modality_dropout = modality_dropout

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def _validate_training_data(self, X, y, sample_weight, **kwargs):
        if y is not None:  # a label that is no number is named, with its row
            y = numeric_target(y, "MLPFusionRegressor", "MLPFusionClassifier")
        return super()._validate_training_data(X, y, sample_weight, **kwargs)

    def _encode_target(self, y, *, reset, classes=None, sample_weight=None):
        y = np.asarray(y, dtype=np.float64)
        columns = y.reshape(len(y), -1)
        if reset:
            self._y_ndim = y.ndim
            self.y_mean_, self.y_scale_ = column_statistics(columns, sample_weight)
        return standardize(columns, self.y_mean_, self.y_scale_, name="y")

    def _n_outputs(self):
        return len(self.y_mean_)

    def predict(self, X):
        """Predicted targets.

        Parameters
        ----------
        X : {array-like, DataFrame} of shape (n_samples, n_features)
            Multimodal data; all-NaN blocks are missing modalities.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,) or (n_samples, n_targets)
            Float64 predictions, shaped like the ``y`` seen in ``fit``.
        """
        y = unstandardize(
            self._module_method(X, "forward"),
            self.y_mean_,
            self.y_scale_,
            "predictions",
        )
        return y.ravel() if self._y_ndim == 1 else y

    def score(self, X, y, sample_weight=None):
        """R² of the predictions, on the target's training scale.

        R² does not change when a target column is divided by a constant;
        dividing by its training scale first keeps targets near float64's
        limits (``y * 1e200``) from overflowing the sums of squares.

        Parameters
        ----------
        X : {array-like, DataFrame} of shape (n_samples, n_features)
            Multimodal data; all-NaN blocks are missing modalities.
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
            True targets.
        sample_weight : array-like of shape (n_samples,), default=None
            Row weights.

        Returns
        -------
        score : float
            :func:`~sklearn.metrics.r2_score` (averaged over targets).
        """
        y_pred = self.predict(X).reshape(len(X), -1)
        y = numeric_target(y, "MLPFusionRegressor", "MLPFusionClassifier")
        scale = self.y_scale_
        return r2_score(
            y.reshape(len(y), -1) / scale, y_pred / scale, sample_weight=sample_weight
        )
