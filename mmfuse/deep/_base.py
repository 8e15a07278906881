"""The skorch plumbing shared by mmfuse's deep estimators.

:class:`BaseMultimodalNet` turns a skorch :class:`~skorch.NeuralNet` into a
plain scikit-learn estimator over one multimodal ``X``:

- ``__init__`` only stores its explicit parameters (skorch's does more);
  skorch's prefixed parameters (``module__…``, ``optimizer__…``,
  ``criterion__…``, ``callbacks__…``, ``iterator_train__…``) are set with
  ``set_params`` and survive ``get_params``, ``clone`` and pickling;
- ``fit`` validates ``X``, resolves ``blocks``, learns per-column statistics,
  seeds torch from ``random_state`` and builds the torch module from the
  resolved blocks in :meth:`~BaseMultimodalNet.initialize_module`;
- the module receives ``X`` standardized in float32 (NaN set to 0) and the
  boolean modality mask: ``module(X=..., mask=...)``.
- training batches are shuffled (skorch's ``NeuralNet`` does not shuffle),
  and every batch is read from the data set in one indexing instead of row
  by row (:meth:`~BaseMultimodalNet.get_iterator`).

The training loop, callbacks, history, devices and pickling are skorch's.
"""

from abc import ABCMeta, abstractmethod
from contextlib import contextmanager, nullcontext
from numbers import Integral, Real
from types import MappingProxyType

import numpy as np
import torch
from sklearn.base import BaseEstimator, clone
from sklearn.utils import get_tags
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted, validate_data
from skorch import NeuralNet
from skorch.dataset import Dataset, unpack_data
from skorch.utils import to_numpy, to_tensor
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    RandomSampler,
    SequentialSampler,
)

from mmfuse._blocks import BLOCKS_CONSTRAINT, fit_blocks, modality_mask
from mmfuse.deep._data import column_statistics, seed_torch, standardize
from mmfuse.utils._compat import Interval, Options, StrOptions, _fit_context

__all__ = ["BaseMultimodalNet"]


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


class BaseMultimodalNet(NeuralNet, metaclass=ABCMeta):
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
        the same model on CPU. torch's global random state is restored after
        ``fit``. None draws from torch's global generator.
    """

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

    # skorch options that mmfuse fixes: not parameters, but their prefixed
    # settings (iterator_train__num_workers=2, ...) still apply.
    iterator_train = DataLoader
    iterator_valid = DataLoader
    dataset = _BatchDataset
    predict_nonlinearity = None
    warm_start = False
    compile = False
    use_caching = "auto"
    torch_load_kwargs = None

    # What skorch's __init__ would set, as class-level "not fitted" defaults,
    # so that __init__ only stores parameters.
    initialized_ = False
    history_ = None
    virtual_params_ = MappingProxyType({})

    # Every mmfuse net has one module, one criterion and one optimizer;
    # declaring them lets their prefixed parameters be checked before fit.
    prefixes_ = [*NeuralNet.prefixes_, "module", "criterion", "optimizer"]
    cuda_dependent_attributes_ = ["module_", "criterion_", "optimizer_"]
    _modules = ["module"]
    _criteria = ["criterion"]
    _optimizers = ["optimizer"]

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

    __repr__ = BaseEstimator.__repr__

    # skorch's predict and predict_proba take module inputs, not X: hidden
    # here, so that only subclasses that predict (from X) have them.
    predict = available_if(lambda self: False)(NeuralNet.predict)
    predict_proba = available_if(lambda self: False)(NeuralNet.predict_proba)

    # ----------------------------------------------------------------- params
    def _prefixed_param_names(self):
        """Names of the skorch prefixed parameters set on this net."""
        return sorted(
            name
            for name in vars(self)
            if "__" in name and not name.startswith("_") and not name.endswith("_")
        )

    @property
    def _params_to_validate(self):
        # skorch checks these names against its prefixes in _validate_params.
        return set(self._prefixed_param_names())

    def _get_param_names(self):
        explicit = super(NeuralNet, type(self))._get_param_names()
        return sorted([*explicit, *self._prefixed_param_names()])

    def set_params(self, **params):
        """Set the parameters of this net, including skorch's prefixed ones.

        Before ``fit``, values are only stored (skorch applies them when it
        initializes); on a fitted net, skorch's rules apply (e.g.
        ``module__…`` re-initializes the module).

        Parameters
        ----------
        **params : dict
            Parameter names and values, e.g. ``lr=0.01``,
            ``module__cls_token=False``, ``optimizer__weight_decay=1e-4``,
            ``callbacks__print_log=None``.

        Returns
        -------
        self : BaseMultimodalNet
            The net.
        """
        if self.initialized_:
            return super().set_params(**params)
        prefixed = {name: value for name, value in params.items() if "__" in name}
        BaseEstimator.set_params(
            self, **{n: v for n, v in params.items() if n not in prefixed}
        )
        vars(self).update(prefixed)
        return self

    def _validate_params(self):
        # Called by @_fit_context (scikit-learn's constraints) and by skorch
        # (prefixed parameters): check both.
        BaseEstimator._validate_params(self)
        NeuralNet._validate_params(self)

    def __sklearn_clone__(self):
        # __init__ takes the explicit parameters; the prefixed ones are
        # stored as set_params stores them.
        params = {
            name: clone(value, safe=False)
            for name, value in self.get_params(deep=False).items()
        }
        prefixed = {name: params.pop(name) for name in self._prefixed_param_names()}
        new = type(self)(**params)
        vars(new).update(prefixed)
        for name in ("_metadata_request", "_sklearn_output_config"):
            if hasattr(self, name):
                setattr(new, name, clone(getattr(self, name), safe=False))
        return new

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags

    # ------------------------------------------------------------------ data
    def _encode_target(self, y, *, reset, classes=None):
        """Turn the validated target into what the criterion expects.

        The default, for nets trained without a target, ignores ``y``.
        Subclasses that learn ``y`` override it (encode labels, scale values)
        and store what they learn when ``reset`` is True.
        """
        return None

    _target_check_params: dict = {}
    """Extra ``validate_data`` arguments for ``y`` (e.g. ``multi_output``)."""

    def _validate_training_data(self, X, y, *, reset, classes=None):
        """Validate ``X`` (and ``y``); on reset resolve blocks and statistics."""
        common = {
            "dtype": ("float64", "float32"),
            "ensure_all_finite": "allow-nan",
            "reset": reset,
        }
        if get_tags(self).target_tags.required:
            X, y = validate_data(self, X, y, **common, **self._target_check_params)
        else:
            X = validate_data(self, X, **common)
        if reset:
            fit_blocks(self)
            self.mean_, self.scale_ = column_statistics(X)
        return X, self._encode_target(y, reset=reset, classes=classes)

    def _module_input(self, X):
        """Return the module's inputs: standardized float32 X and the mask."""
        return {
            "X": standardize(X, self.mean_, self.scale_),
            "mask": modality_mask(X, self.blocks_),
        }

    def _validate_input(self, X):
        """Check a fitted net and turn new ``X`` into the module's inputs."""
        check_is_fitted(self)
        X = validate_data(
            self,
            X,
            dtype=("float64", "float32"),
            ensure_all_finite="allow-nan",
            reset=False,
        )
        return self._module_input(X)

    @contextmanager
    def _seeded(self):
        """Seed torch from ``random_state``, restoring its global state after."""
        if self.random_state is None:
            yield
            return
        device = torch.device(self.device)
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            seed_torch(self.random_state)
            yield

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

        Two changes from skorch's: training batches are shuffled (skorch's
        ``NeuralNet`` keeps the rows in order, so data sorted by class would
        give one-class batches; ``iterator_train__shuffle=False`` keeps the
        order), and each batch is read from the data set in one indexing
        rather than row by row and then collated, which is faster for the
        same batches. ``iterator_train__…``/``iterator_valid__…`` settings
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
        iterator = self.iterator_train if training else self.iterator_valid
        return iterator(dataset, batch_size=None, sampler=batches, **kwargs)

    # ---------------------------------------------------------------- module
    @abstractmethod
    def _build_module(self, **module_params):
        """Return the torch module for the resolved ``blocks_``.

        ``module_params`` are the ``module__<name>`` parameters.
        """

    def _module_kwargs(self, explicit, module_params, prefix="module"):
        """Merge explicit arguments with ``<prefix>__`` ones (module by default)."""
        duplicated = sorted(explicit.keys() & module_params.keys())
        if duplicated:
            name = duplicated[0]
            raise ValueError(
                f"{prefix}__{name} duplicates the estimator parameter {name!r}; "
                f"set {name}=... instead of {prefix}__{name}=..."
            )
        return {**explicit, **module_params}

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
    def _train(self, X, y, *, reset, classes, fit_params):
        X, y = self._validate_training_data(X, y, reset=reset, classes=classes)
        with self._seeded() if reset else nullcontext():
            if reset:
                self.initialize()
            NeuralNet.partial_fit(
                self,
                self._module_input(X),
                y,
                _routing_method="fit" if reset else "partial_fit",
                **fit_params,
            )
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None, **fit_params):
        """Build the module from the blocks of ``X`` and train it.

        Parameters
        ----------
        X : {array-like, DataFrame} of shape (n_samples, n_features)
            Multimodal data; a row whose block is all NaN lacks that
            modality. Columns are standardized inside the net.
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
            The target, for supervised nets; ignored otherwise.
        **fit_params : dict
            Passed to skorch (the module's forward and ``train_split``).

        Returns
        -------
        self : BaseMultimodalNet
            The fitted net.
        """
        return self._train(X, y, reset=True, classes=None, fit_params=fit_params)

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y=None, classes=None, **fit_params):
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
        **fit_params : dict
            Passed to skorch (the module's forward and ``train_split``).

        Returns
        -------
        self : BaseMultimodalNet
            The trained net.
        """
        reset = not self.initialized_
        return self._train(X, y, reset=reset, classes=classes, fit_params=fit_params)

    # ------------------------------------------------------------ prediction
    def _forward_numpy(self, X):
        """Return the module's outputs for new ``X`` as a numpy array."""
        return to_numpy(self.forward(self._validate_input(X)))

    def _module_method(self, X, method):
        """Call ``module_.<method>(X=..., mask=...)`` on new ``X``, batch by batch."""
        return self._run_module(self._validate_input(X), method)

    def _run_module(self, inputs, method):
        """Call ``module_.<method>(**inputs)`` batch by batch, in eval mode."""
        dataset = self.get_dataset(inputs)
        self._set_training(False)
        outputs = []
        with torch.no_grad():
            for batch in self.get_iterator(dataset, training=False):
                inputs, _ = unpack_data(batch)
                inputs = to_tensor(inputs, device=self.device)
                outputs.append(to_numpy(getattr(self.module_, method)(**inputs)))
        return outputs
