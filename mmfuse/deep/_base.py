"""The skorch plumbing shared by mmfuse's deep estimators.

:class:`BaseMultimodalNet` turns a skorch :class:`~skorch.NeuralNet` into a
plain scikit-learn estimator over one multimodal ``X``:

- ``__init__`` only stores its explicit parameters; skorch's prefixed
  parameters follow scikit-learn's rules (:mod:`mmfuse.deep._params`, the
  one module that relies on skorch's internals);
- ``fit`` validates ``X``, resolves ``blocks``, learns per-column statistics,
  seeds torch from ``random_state`` and builds the torch module from the
  resolved blocks in :meth:`~BaseMultimodalNet.initialize_module`;
- the module receives ``X`` standardized in float32 (NaN set to 0) and the
  boolean modality mask: ``module(X=..., mask=...)``;
- training batches are shuffled (skorch's ``NeuralNet`` does not shuffle),
  and every batch is read from the data set in one indexing instead of row
  by row (:meth:`~BaseMultimodalNet.get_iterator`);
- ``fit(X, y, sample_weight=...)`` weighs each row's loss;
- a fit whose loss or weights become non-finite stops with an error, and
  no prediction is ever non-finite without an error saying why;
- inference leaves torch's and numpy's global random states alone.

The training loop, callbacks, history, devices and pickling are skorch's.
"""

import math
import warnings
from abc import abstractmethod
from contextlib import contextmanager
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.utils import get_tags
from sklearn.utils.validation import check_is_fitted
from skorch.callbacks import LRScheduler
from skorch.dataset import Dataset, ValidSplit, unpack_data
from skorch.utils import to_numpy, to_tensor
from torch.optim.lr_scheduler import CosineAnnealingWarmRestarts
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    RandomSampler,
    SequentialSampler,
)

from mmfuse._blocks import (
    BLOCKS_CONSTRAINT,
    check_any_modality,
    check_every_modality_seen,
    fit_blocks,
    modality_mask,
    validate_numeric,
)
from mmfuse.deep._data import column_statistics, seed_torch, standardize
from mmfuse.deep._params import ParamsNet
from mmfuse.utils._compat import (
    Interval,
    Options,
    StrOptions,
    _check_sample_weight,
    _fit_context,
)
from mmfuse.utils._warnings import warn_user

__all__ = ["BaseMultimodalNet", "check_widths", "cosine_schedule"]


def cosine_schedule(max_epochs):
    """Return the ``"lr_scheduler"`` callback: a cosine from ``lr`` towards 0.

    Over the ``max_epochs`` epochs of ``fit``, and again over those of each
    ``partial_fit`` call (a warm restart).
    """
    return "lr_scheduler", LRScheduler(CosineAnnealingWarmRestarts, T_0=max_epochs)


def check_widths(name, widths):
    """Check hidden layer widths: a sequence of positive integers.

    Parameters
    ----------
    name : str
        The parameter, for the message (e.g. ``"hidden"``).
    widths : sequence of int
        The widths; empty for no hidden layer.

    Raises
    ------
    ValueError
        Naming the first width that is not a positive integer.
    """
    values = list(widths) if isinstance(widths, (tuple, list)) else [widths]
    for width in values:
        if not isinstance(width, Integral) or isinstance(width, bool) or width < 1:
            raise ValueError(
                f"{name}={widths!r} must be a tuple of positive integers, the "
                f"widths of the hidden layers; {width!r} is not one. Use e.g. "
                f"{name}=(64,), or () for no hidden layer."
            )


class _BatchDataset(Dataset):
    """skorch's :class:`~skorch.dataset.Dataset`, read a batch at a time.

    ``dataset[rows]`` indexes every array of the module's inputs (a dict) and
    the target at once with the row positions, skipping skorch's per-call
    checks of the index (which look at every position of a list).
    """

    def __getitem__(self, rows):
        rows = np.asarray(rows)
        X = {name: value[rows] for name, value in self.X.items()}
        return self.transform(X, None if self.y is None else self.y[rows])


class BaseMultimodalNet(ParamsNet):
    """Base class of mmfuse's skorch estimators (not for direct use).

    A subclass implements :meth:`_build_module` (return the torch module for
    the resolved ``blocks_``; its ``forward`` takes ``X`` and ``mask``), sets
    the class attribute ``criterion`` (a torch loss class) and, when it
    learns from a target, overrides :meth:`_encode_target` and adds
    ``ClassifierMixin``/``RegressorMixin`` first among its bases. Its
    ``__init__`` lists all its parameters, passes the shared ones to
    ``super().__init__`` and stores the others; its ``_parameter_constraints``
    extend this class's. The parameters below are keyword-only here, without
    defaults: each subclass sets its own.

    Parameters
    ----------
    blocks : "auto", int, list, tuple or dict
        The modality blocks, in any form :func:`~mmfuse.resolve_blocks`
        accepts.
    optimizer : callable
        The torch optimizer class; its parameters are set with
        ``set_params(optimizer__<name>=...)``.
    lr : float
        Learning rate.
    max_epochs : int
        Number of epochs of ``fit`` (and of each ``partial_fit`` call).
    batch_size : int
        Mini-batch size; -1 for the whole data set.
    train_split : callable or None
        skorch's internal validation split (``valid_loss`` in the history,
        early stopping); None trains on all the data.
    callbacks : list of (str, Callback), "disable" or None
        skorch callbacks added to the defaults (``epoch_timer``,
        ``train_loss``, ``valid_loss``, ``print_log``).
    verbose : int
        1 prints a line per epoch; 0 is silent.
    device : str or torch.device
        Where the module is trained and run, e.g. ``"cuda"``.
    random_state : int, RandomState instance or None
        Seeds the initial weights, shuffling and dropout: the same seed gives
        the same model on CPU, through ``fit`` and ``partial_fit`` alike.
        torch's global random state is restored after each. None draws from
        torch's global generator.
    """

    # Fewest modalities the model accepts (an aligner needs two).
    _min_blocks = 1

    _parameter_constraints: dict = {
        "blocks": BLOCKS_CONSTRAINT,
        "optimizer": [callable],
        "lr": [Interval(Real, 0, None, closed="neither")],
        "max_epochs": [Interval(Integral, 1, None, closed="left")],
        "batch_size": [
            Interval(Integral, 1, None, closed="left"),
            Options(Integral, {-1}),
        ],
        "train_split": [callable, None],
        "callbacks": [list, StrOptions({"disable"}), None],
        "verbose": ["verbose"],
        "device": [str, torch.device],
        "random_state": ["random_state"],
    }

    # How batches are read (see get_iterator): fixed, but their prefixed
    # settings (iterator_train__num_workers=2, ...) still apply.
    iterator_train = DataLoader
    iterator_valid = DataLoader
    dataset = _BatchDataset

    def __init__(
        self,
        *,
        blocks,
        optimizer,
        lr,
        max_epochs,
        batch_size,
        train_split,
        callbacks,
        verbose,
        device,
        random_state,
    ):
        self.blocks = blocks
        self.optimizer = optimizer
        self.lr = lr
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.train_split = train_split
        self.callbacks = callbacks
        self.verbose = verbose
        self.device = device
        self.random_state = random_state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags

    # ------------------------------------------------------------------ data
    def _encode_target(self, y, *, reset, classes=None, sample_weight=None):
        """Turn the validated target into what the criterion expects.

        The default, for nets trained without a target, ignores ``y``.
        Subclasses that learn ``y`` override it (encode labels, scale values)
        and store what they learn when ``reset`` is True.
        """
        return None

    _target_check_params: dict = {}
    """Extra ``validate_data`` arguments for ``y`` (e.g. ``multi_output``)."""

    def _validate_data(self, X, y="no_validation", *, reset, **params):
        """``validate_data`` for float X with NaN; a non-numeric cell is named."""
        return validate_numeric(
            self,
            X,
            y,
            dtype=("float64", "float32"),
            ensure_all_finite="allow-nan",
            reset=reset,
            **params,
        )

    def _validate_training_data(self, X, y, sample_weight, *, reset, classes=None):
        """Validate ``X``, ``y`` and ``sample_weight``.

        On reset, also resolve the blocks and learn the column statistics.
        Returns the validated ``X``, the encoded target and the weights.
        """
        if get_tags(self).target_tags.required:
            X, y = self._validate_data(X, y, reset=reset, **self._target_check_params)
        else:
            X = self._validate_data(X, reset=reset)
        if sample_weight is not None:
            sample_weight = _check_sample_weight(
                sample_weight, X, dtype=np.float64, ensure_non_negative=True
            )
        if reset:
            fit_blocks(self, min_blocks=self._min_blocks)
            check_every_modality_seen(
                modality_mask(X, self.blocks_),
                self.blocks_,
                self.modality_names_,
                type(self).__name__,
                getattr(self, "feature_names_in_", None),
            )
            self.mean_, self.scale_ = column_statistics(X, sample_weight)
        y = self._encode_target(
            y, reset=reset, classes=classes, sample_weight=sample_weight
        )
        return X, y, sample_weight

    def _module_input(self, X):
        """Return the module's inputs: standardized float32 X and the mask.

        A row that lacks every modality is an error (mmfuse's one rule).
        """
        mask = modality_mask(X, self.blocks_)
        check_any_modality(mask, self.modality_names_, type(self).__name__)
        return {"X": standardize(X, self.mean_, self.scale_), "mask": mask}

    def _validate_new(self, X):
        """Check that the net is fitted and validate new ``X`` against fit's."""
        check_is_fitted(self)
        return self._validate_data(X, reset=False)

    def _validate_input(self, X):
        """Validate new ``X`` and turn it into the module's inputs."""
        return self._module_input(self._validate_new(X))

    @contextmanager
    def _seeded(self, offset=0):
        """Seed torch by :func:`seed_torch`, restoring its global state after."""
        if self.random_state is None:
            yield
            return
        device = torch.device(self.device)
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            seed_torch(self.random_state, offset)
            yield

    def initialize_optimizer(self, triggered_directly=None):
        """Build ``optimizer_`` (skorch extension point).

        Its learning rates are also recorded as the base of the learning-rate
        schedule (``initial_lr``, which torch's schedulers read), so that a
        schedule resumed by :meth:`partial_fit` after the optimizer was
        rebuilt (e.g. by ``set_params(module__…)``) starts from them.

        Parameters
        ----------
        triggered_directly : None
            Deprecated by skorch; unused.

        Returns
        -------
        self : BaseMultimodalNet
            The net, with ``optimizer_`` set.

        Raises
        ------
        TypeError
            When ``optimizer`` does not build a torch optimizer.
        """
        try:
            super().initialize_optimizer(triggered_directly)
        except (TypeError, ValueError) as exc:
            raise TypeError(
                f"optimizer={self.optimizer!r} could not be built from the "
                f"module's parameters and lr: {exc}. Pass a torch optimizer "
                f"class, e.g. torch.optim.AdamW, and its settings as "
                f"optimizer__<name>=..."
            ) from exc
        if not isinstance(self.optimizer_, torch.optim.Optimizer):
            raise TypeError(
                f"optimizer={self.optimizer!r} built a "
                f"{type(self.optimizer_).__name__}, not a torch optimizer; pass "
                f"a torch optimizer class, e.g. torch.optim.AdamW."
            )
        self._restart_lr_schedule()
        return self

    def get_params_for_optimizer(self, prefix, named_parameters):
        """Optimizer arguments; Adam and AdamW run fused (skorch hook).

        torch's fused Adam/AdamW kernels update all parameters at once, several
        times faster than the per-tensor loop on CPU. They are used unless
        ``optimizer__fused`` or ``optimizer__foreach`` is set, or the device
        is neither CPU nor CUDA.

        Parameters
        ----------
        prefix : str
            The optimizer's name, ``"optimizer"``.
        named_parameters : iterable of (str, Parameter)
            The parameters to optimize.

        Returns
        -------
        args : tuple
            The parameter groups.
        kwargs : dict
            The optimizer's keyword arguments.
        """
        args, kwargs = super().get_params_for_optimizer(prefix, named_parameters)
        fusable = torch.device(self.device).type in ("cpu", "cuda")
        if (
            fusable
            and self.optimizer in (torch.optim.Adam, torch.optim.AdamW)
            and not {"fused", "foreach"} & kwargs.keys()
        ):
            kwargs["fused"] = True
        return args, kwargs

    def get_iterator(self, dataset, training=False):
        """Return the batch iterator (skorch extension point).

        Three changes from skorch's: training batches are shuffled (skorch's
        ``NeuralNet`` keeps the rows in order, so data sorted by class would
        give one-class batches; ``iterator_train__shuffle=False`` keeps the
        order); each batch is read from the data set in one indexing
        rather than row by row and then collated, which is faster for the
        same batches; and other iterators draw their base seed from a
        generator of their own, so that inference leaves torch's global
        random state as it was (a ``DataLoader`` draws one even when it
        does not shuffle). ``iterator_train__…``/``iterator_valid__…`` settings
        (``batch_size``, ``shuffle``, ``drop_last``, ``num_workers``, …)
        apply; a ``collate_fn`` receives whole batches.

        Parameters
        ----------
        dataset : torch Dataset
            The data to iterate over, indexable by an array of rows.
        training : bool, default=False
            Whether the batches are for training.

        Returns
        -------
        iterator : torch.utils.data.DataLoader
            The batches.
        """
        prefix = "iterator_train" if training else "iterator_valid"
        kwargs = self.get_params_for(prefix)
        batch_size = kwargs.pop("batch_size", self.batch_size)
        if batch_size == -1:
            batch_size = len(dataset)
        rows = (
            RandomSampler(dataset)
            if kwargs.pop("shuffle", training)
            else SequentialSampler(dataset)
        )
        batches = BatchSampler(rows, batch_size, kwargs.pop("drop_last", False))
        if not training:
            kwargs.setdefault("generator", torch.Generator())
        iterator = self.iterator_train if training else self.iterator_valid
        iterator = iterator(dataset, batch_size=None, sampler=batches, **kwargs)
        return self._prepare_iterator(iterator, training=training)

    # ---------------------------------------------------------------- module
    @abstractmethod
    def _build_module(self, **module_params):
        """Return the torch module for the resolved ``blocks_``.

        ``module_params`` are the ``module__<name>`` parameters.
        """

    def initialize_module(self):
        """Build ``module_`` from the resolved blocks (skorch extension point).

        Returns
        -------
        self : BaseMultimodalNet
            The net, with ``module_`` set.
        """
        self.module_ = self._build_module(**self.get_params_for("module"))
        return self

    # -------------------------------------------------------------- training
    def _train(self, X, y, sample_weight, *, reset, classes, fit_params):
        X, y, sample_weight = self._validate_training_data(
            X, y, sample_weight, reset=reset, classes=classes
        )
        inputs = self._module_input(X)
        if sample_weight is not None:
            # Scaled to a largest weight of 1 (the batch means ignore the
            # scale), so that float32 holds them.
            inputs["sample_weight"] = (sample_weight / sample_weight.max()).astype(
                np.float32
            )
        # A later partial_fit is seeded too, by the epochs trained so far.
        with self._seeded(0 if reset else len(self.history_)):
            if reset:
                self.initialize()
            self._check_monitors()
            self._fit_epochs(inputs, y, reset=reset, fit_params=fit_params)
        return self

    def _check_monitors(self):
        """Refuse a callback that monitors a validation score with no split.

        skorch would raise a bare KeyError ("Key 'valid_loss' was not found
        in history") after the first epoch.
        """
        if self.train_split:
            return
        for name, callback in self.callbacks_:
            monitor = getattr(callback, "monitor", None)
            if isinstance(monitor, str) and monitor.startswith("valid"):
                raise ValueError(
                    f"callback {name!r} ({type(callback).__name__}) monitors "
                    f"{monitor!r}, a score of the validation split, but "
                    f"train_split=None holds none out. Give a train_split "
                    f"(e.g. skorch.dataset.ValidSplit(5)), or monitor "
                    f"'train_loss'."
                )

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None, sample_weight=None, **fit_params):
        """Build the module from the blocks of ``X`` and train it.

        Parameters
        ----------
        X : {array-like, DataFrame} of shape (n_samples, n_features)
            Multimodal data; a row whose block is all NaN lacks that
            modality, and every row must have one. Columns are standardized
            inside the net.
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
            The target, for supervised nets; ignored otherwise.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative row weights. Each batch's loss is the weighted mean
            of its rows' losses (and the column statistics are weighted
            means), so integer weights act as repetition counts in
            expectation; not exactly, as repeated rows would change the
            shuffled batches and the number of steps an epoch. A row of
            weight 0 takes no part in the loss.
        **fit_params : dict
            Passed to skorch (the module's forward and ``train_split``).

        Returns
        -------
        self : BaseMultimodalNet
            The fitted net.

        Raises
        ------
        ValueError
            When the loss or the weights become non-finite (training
            diverged): the message says in which epoch and what to try.
        """
        return self._train(
            X, y, sample_weight, reset=True, classes=None, fit_params=fit_params
        )

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y=None, classes=None, sample_weight=None, **fit_params):
        """Train for ``max_epochs`` more epochs from the current weights.

        The first call (on an unfitted net) is :meth:`fit`; later calls keep
        the blocks, statistics and module.

        Parameters
        ----------
        X : {array-like, DataFrame} of shape (n_samples, n_features)
            Multimodal data with the columns seen first.
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
            The target, for supervised nets; ignored otherwise.
        classes : array-like of shape (n_classes,), default=None
            For classifiers: every label, needed on the first call when
            ``y`` lacks some. Ignored otherwise.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative row weights, as in :meth:`fit`.
        **fit_params : dict
            Passed to skorch (the module's forward and ``train_split``).

        Returns
        -------
        self : BaseMultimodalNet
            The trained net.
        """
        reset = not self.initialized_
        return self._train(
            X, y, sample_weight, reset=reset, classes=classes, fit_params=fit_params
        )

    def get_split_datasets(self, X, y=None, **fit_params):
        """Split off skorch's validation set; a failed split says why (skorch hook).

        Parameters
        ----------
        X : dict
            The module's inputs.
        y : ndarray or None
            The encoded target.
        **fit_params : dict
            Passed to ``train_split``.

        Returns
        -------
        dataset_train, dataset_valid : Dataset
            The training and validation sets (None without ``train_split``).
        """
        split = self.train_split
        if isinstance(split, ValidSplit):
            stratified = ", stratified=True" if split.stratified else ""
            split = f"ValidSplit({split.cv!r}{stratified})"
        advice = f"The net holds out a validation split (train_split={split})"
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                datasets = super().get_split_datasets(X, y, **fit_params)
        except ValueError as exc:
            if not self.train_split:
                raise
            raise ValueError(
                f"{advice}, which fails on these {len(X['X'])} rows: {exc} Pass "
                f"more rows, or set train_split=None to train on all of them."
            ) from exc
        except TypeError as exc:
            if not self.train_split:
                raise
            raise TypeError(
                f"train_split={self.train_split!r} could not split the rows: "
                f"{exc}. Give a skorch.dataset.ValidSplit (e.g. ValidSplit(5)), "
                f"a callable (dataset, y) -> (train, valid), or None."
            ) from exc
        if not (isinstance(datasets, tuple | list) and len(datasets) == 2):
            raise TypeError(
                f"train_split={self.train_split!r} returned {datasets!r}, not a "
                f"(train, valid) pair of datasets. Give a skorch.dataset."
                f"ValidSplit (e.g. ValidSplit(5)), a callable (dataset, y) -> "
                f"(train, valid), or None."
            )
        for warning in caught:
            warn_user(
                f"{advice}: {warning.message} Pass more rows, or set "
                f"train_split=None to train on all of them.",
                warning.category,
            )
        return datasets

    def infer(self, x, **fit_params):
        """Run the module on a batch; row weights are not its input (skorch hook).

        Parameters
        ----------
        x : dict
            The batch's inputs (``X``, ``mask`` and, in training with
            weights, ``sample_weight``).
        **fit_params : dict
            Passed to the module's forward.

        Returns
        -------
        y_pred : Tensor or tuple of Tensor
            The module's output.
        """
        if "sample_weight" in x:
            x = {name: value for name, value in x.items() if name != "sample_weight"}
        return super().infer(x, **fit_params)

    def _row_losses(self, y_pred, y_true):
        """Return the loss of each row of the batch, shape (batch,).

        The criterion is built with ``reduction="none"``; a loss with several
        values a row (one a target) is averaged over them.
        """
        losses = self.criterion_(y_pred, to_tensor(y_true, device=self.device))
        return losses if losses.ndim == 1 else losses.flatten(1).mean(1)

    def get_loss(self, y_pred, y_true, X=None, training=False):
        """Mean loss of the batch, weighted by ``sample_weight`` (skorch hook).

        Parameters
        ----------
        y_pred : Tensor or tuple of Tensor
            The module's output.
        y_true : Tensor or None
            The batch's encoded target.
        X : dict, default=None
            The batch's inputs, with ``sample_weight`` when ``fit`` had one.
        training : bool, default=False
            Whether the net is training (unused).

        Returns
        -------
        loss : Tensor
            ``sum(w * loss) / sum(w)`` over the batch's rows (0 for a batch
            whose weights are all 0), the plain mean without weights.
        """
        losses = self._row_losses(y_pred, y_true)
        weight = None if X is None else X.get("sample_weight")
        if weight is None:
            return losses.mean()
        weight = to_tensor(weight, device=self.device)
        return (weight * losses).sum() / weight.sum().clamp_min(1e-30)

    def _weights_are_finite(self):
        """Whether every weight of the module is finite (one device sync)."""
        return bool(
            torch.stack([p.isfinite().all() for p in self.module_.parameters()]).all()
        )

    def _diverged(self, what):
        """Leave the net unfitted; return the error for a ``what`` not finite."""
        self.initialized_ = False
        return ValueError(
            f"Training diverged: {what}. Try a lower learning rate (lr="
            f"{self.lr!r}), rescaled inputs (columns of very different "
            f"scales, extreme values), {self._divergence_hint()}or gradient "
            f"clipping (callbacks=[('clip', skorch.callbacks."
            f"GradientNormClipping(1.0))])."
        )

    def _divergence_hint(self):
        """Return a parameter of this net to lower when training diverges, or ''.

        Returns
        -------
        hint : str
            Empty, or ``"a lower <parameter> (<parameter>=<value>), "``.
        """
        return ""

    def on_epoch_end(self, net, dataset_train=None, dataset_valid=None, **kwargs):
        """Stop when a batch loss of this epoch is not finite (skorch hook).

        The losses are the floats skorch records for every batch: checking
        them costs no extra device synchronization.

        Parameters
        ----------
        net : BaseMultimodalNet
            This net.
        dataset_train, dataset_valid : Dataset
            The epoch's data (unused).
        **kwargs : dict
            Unused.

        Raises
        ------
        ValueError
            Naming the epoch and the batch whose loss is not finite.
        """
        super().on_epoch_end(net, dataset_train, dataset_valid, **kwargs)
        epoch = self.history[-1]
        for key, phase in (("train_loss", "training"), ("valid_loss", "validation")):
            losses = [batch[key] for batch in epoch["batches"] if key in batch]
            bad = [i for i, loss in enumerate(losses) if not math.isfinite(loss)]
            if bad:
                raise self._diverged(
                    f"the {phase} loss became {losses[bad[0]]} in "
                    f"epoch {epoch['epoch']} (batch {bad[0] + 1} of {len(losses)})"
                )

    def on_train_end(self, net, X=None, y=None, **kwargs):
        """Stop when the trained weights are not finite (skorch hook).

        Parameters
        ----------
        net : BaseMultimodalNet
            This net.
        X, y : dict and ndarray
            The training data (unused).
        **kwargs : dict
            Unused.

        Raises
        ------
        ValueError
            When a weight of the module is not finite.
        """
        super().on_train_end(net, X, y, **kwargs)
        if not self._weights_are_finite():
            raise self._diverged(
                f"the weights are not finite after epoch {len(self.history)}"
            )

    # ------------------------------------------------------------ prediction
    def _module_method(self, X, method):
        """``module_.<method>(X=..., mask=...)`` on new ``X``, as one float64 array."""
        return self._run_module(self._validate_input(X), method)

    def _run_module(self, inputs, method):
        """``module_.<method>(**inputs)`` batch by batch in eval mode, as float64.

        Raises
        ------
        ValueError
            When an output is not finite, saying whether the weights are.
        """
        dataset = self.get_dataset(inputs)
        self._eval()
        outputs = []
        with torch.no_grad():
            for batch in self.get_iterator(dataset, training=False):
                batch_inputs, _ = unpack_data(batch)
                batch_inputs = to_tensor(batch_inputs, device=self.device)
                output = getattr(self.module_, method)(**batch_inputs)
                outputs.append(to_numpy(output))
        outputs = np.concatenate(outputs).astype(np.float64)
        finite = np.isfinite(outputs).reshape(len(outputs), -1).all(1)
        if not finite.all():
            rows = np.flatnonzero(~finite)
            if self._weights_are_finite():
                weight = max(p.abs().max().item() for p in self.module_.parameters())
                largest = max(
                    np.abs(values[rows]).max()
                    for values in inputs.values()
                    if values.dtype.kind == "f"
                )
                cause = (
                    f"their inputs reach {largest:.3g} (standardized) and the "
                    f"net's largest weight is {weight:.3g}: either the fit "
                    f"diverged (refit with a lower lr) or these rows lie far "
                    f"outside the training data"
                )
            else:
                cause = "the net's weights are not finite: its fit diverged"
            raise ValueError(
                f"The net's outputs are not finite for {rows.size} row(s) "
                f"(first: {rows[:5].tolist()}): {cause}."
            )
        return outputs
