"""skorch's NeuralNet with scikit-learn's parameter rules; its internals here.

skorch's ``NeuralNet.__init__`` takes every setting, keeps the prefixed ones
(``module__…``, ``optimizer__…``, ``criterion__…``, ``callbacks__…``,
``iterator_train__…``) from ``**kwargs`` and starts state; scikit-learn wants
an ``__init__`` that only stores its explicit parameters. :class:`ParamsNet`
bridges the two, for :class:`~mmfuse.deep._base.BaseMultimodalNet`:

- the skorch options that mmfuse fixes, and what skorch's ``__init__`` would
  set, are class attributes, so a subclass's ``__init__`` only stores;
- prefixed parameters are set with ``set_params`` and survive
  ``get_params``, ``clone`` and pickling;
- ``_validate_params`` checks scikit-learn's constraints, skorch's prefixes,
  the device and the callbacks, before ``fit``;
- skorch's ``predict`` and ``predict_proba``, which take the module's
  inputs rather than ``X``, are hidden;
- every net has an ``accelerator`` parameter (None, or an
  ``accelerate.Accelerator`` to train through it:
  :mod:`mmfuse.deep._accelerate`) that no subclass's ``__init__`` lists: it
  is set with ``set_params``, listed by ``get_params`` once set, and shared,
  not copied, by ``clone``.

skorch internals mmfuse relies on, beyond the documented hooks (all in this
module; should one change, only it changes): the state skorch's ``__init__``
sets (``initialized_``, ``history_``, ``virtual_params_``) and its lists
``prefixes_``, ``cuda_dependent_attributes_``, ``_modules``, ``_criteria``,
``_optimizers``; ``NeuralNet._validate_params`` with its
``_params_to_validate`` hook; ``_is_virtual_param``; ``_get_param_names``
(bypassed for scikit-learn's); partial_fit's ``_routing_method`` keyword
(:meth:`ParamsNet._fit_epochs`); ``_set_training`` (:meth:`ParamsNet._eval`).
Besides, ``_base._BatchDataset`` reads a skorch ``Dataset``'s ``X`` and
``y`` attributes, which skorch does not document.
scikit-learn internals: the ``_validate_params`` hook that ``_fit_context``
calls, ``_get_param_names``, and the ``_metadata_request`` and
``_sklearn_output_config`` attributes that ``clone`` carries over; private
scikit-learn names are imported from :mod:`mmfuse.utils._compat`.
"""

import inspect
from abc import ABCMeta, abstractmethod
from types import MappingProxyType

import torch
from sklearn.base import BaseEstimator, clone
from sklearn.utils.metaestimators import available_if
from skorch import NeuralNet
from skorch.callbacks import Callback

from mmfuse.deep._accelerate import AccelerateSupport
from mmfuse.utils._compat import validate_parameter_constraints

__all__ = ["ParamsNet"]


class ParamsNet(AccelerateSupport, NeuralNet, metaclass=ABCMeta):
    """skorch's :class:`~skorch.NeuralNet` with scikit-learn's parameter rules.

    Not for direct use: the base of
    :class:`~mmfuse.deep._base.BaseMultimodalNet`. A subclass's ``__init__``
    lists its explicit parameters and only stores them. Every net has one
    module, one criterion and one optimizer.

    Every net also has the parameter ``accelerator``, which no
    ``__init__`` lists: set it with ``set_params(accelerator=...)``.

    Parameters
    ----------
    accelerator : accelerate.Accelerator or None, default=None
        Train through Hugging Face Accelerate (skorch's
        :class:`~skorch.hf.AccelerateMixin`): data-parallel across the
        processes of ``accelerate launch`` (each process calls ``fit`` on
        the same data and trains on its share of every epoch's batches, the
        gradients averaged), with the accelerator's mixed precision and
        gradient accumulation. ``batch_size`` is each process's batch: a
        step trains on ``batch_size * num_processes`` rows (the
        accelerator's ``split_batches=True`` is not supported). ``device``
        must name the accelerator's device (``"cpu"`` under ``accelerate
        launch --cpu``, ``"cuda"`` on GPUs). A single process with
        ``Accelerator(cpu=True)`` trains the same model as None. Validation
        and prediction run whole on every process. A module with
        parameters that the loss leaves unused (e.g. a temperature that a
        Deep CCA loss ignores) needs ``Accelerator(kwargs_handlers=
        [DistributedDataParallelKwargs(find_unused_parameters=True)])`` on
        several processes. ``clone`` shares the accelerator; pickling drops
        it (a loaded net has none). Needs ``pip install
        'mmfuse[accelerate]'``.
    """

    # skorch options that mmfuse fixes: not parameters, but their prefixed
    # settings (criterion__…, ...) still apply.
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
    # Pickling stores these through torch, whose map_location lets a net
    # trained on a GPU load on a machine without one. The callbacks belong
    # here too: a learning-rate scheduler holds the optimizer and its tensors.
    cuda_dependent_attributes_ = ["module_", "criterion_", "optimizer_", "callbacks_"]
    _modules = ["module"]
    _criteria = ["criterion"]
    _optimizers = ["optimizer"]

    # Parameters of every net that no __init__ lists, stored as the
    # prefixed ones are (listed by get_params once set).
    _extra_params = ("accelerator",)

    @abstractmethod
    def __init__(self):
        """Store the explicit parameters, and nothing else."""

    __repr__ = BaseEstimator.__repr__

    # skorch's predict and predict_proba take module inputs, not X: hidden
    # here, so that only subclasses that predict (from X) have them.
    predict = available_if(lambda self: False)(NeuralNet.predict)
    predict_proba = available_if(lambda self: False)(NeuralNet.predict_proba)

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

    def _stored_param_names(self):
        """Names of the parameters set that ``__init__`` does not take."""
        extra = [name for name in self._extra_params if name in vars(self)]
        return sorted([*self._prefixed_param_names(), *extra])

    def _get_param_names(self):
        # scikit-learn's (the explicit parameters of __init__), not skorch's
        # (every attribute), and the prefixed and extra ones set.
        explicit = super(NeuralNet, type(self))._get_param_names()
        return sorted([*explicit, *self._stored_param_names()])

    def set_params(self, **params):
        """Set the parameters of this net, including skorch's prefixed ones.

        Before ``fit``, values are only stored (skorch applies them when it
        initializes); on a fitted net, skorch's rules apply (e.g.
        ``module__…`` re-initializes the module, ``lr`` changes the
        optimizer's) and a new ``optimizer`` is built at once, so that
        :meth:`partial_fit` trains with it; a new ``lr`` is also where the
        learning-rate schedule of the next :meth:`partial_fit` starts.

        Parameters
        ----------
        **params : dict
            Parameter names and values, e.g. ``lr=0.01``,
            ``module__cls_token=False``, ``optimizer__weight_decay=1e-4``,
            ``callbacks__print_log=None``, ``accelerator=Accelerator()``.

        Returns
        -------
        self : ParamsNet
            The net.
        """
        extra = {n: params.pop(n) for n in self._extra_params if n in params}
        vars(self).update(extra)
        if self.initialized_:
            # skorch would take "optimizer" for one of its prefixes and fail.
            plain = {
                name: value
                for name, value in params.items()
                if "__" not in name and not self._is_virtual_param(name)
            }
            BaseEstimator.set_params(self, **plain)
            if "optimizer" in plain:
                self.initialize_optimizer()
            other = {n: v for n, v in params.items() if n not in plain}
            if other:
                super().set_params(**other)
            if any(name == "lr" or name.endswith("__lr") for name in other):
                self._restart_lr_schedule()
            return self
        prefixed = {name: value for name, value in params.items() if "__" in name}
        BaseEstimator.set_params(
            self, **{n: v for n, v in params.items() if n not in prefixed}
        )
        vars(self).update(prefixed)
        return self

    def _restart_lr_schedule(self):
        """Make the optimizer's learning rates the base of the next schedule."""
        for group in self.optimizer_.param_groups:
            group["initial_lr"] = group["lr"]

    def _validate_params(self):
        # Called by @_fit_context (scikit-learn's constraints) and by skorch
        # (prefixed parameters): check both, and that the device exists.
        validate_parameter_constraints(
            self._parameter_constraints,
            self.get_params(deep=False),
            caller_name=type(self).__name__,
        )
        NeuralNet._validate_params(self)
        self._check_device_available()
        self._check_callbacks()
        self._check_accelerator()

    def _check_callbacks(self):
        """Check that ``callbacks`` lists skorch callbacks, named or not."""
        if not isinstance(self.callbacks, list):
            return  # None or "disable", as the constraints allow
        for entry in self.callbacks:
            named = isinstance(entry, tuple) and len(entry) == 2
            callback = entry[1] if named else entry
            is_callback = isinstance(callback, Callback) or (
                isinstance(callback, type) and issubclass(callback, Callback)
            )
            if not is_callback or (named and not isinstance(entry[0], str)):
                raise ValueError(
                    f"callbacks holds {entry!r}, which is neither a skorch "
                    f"Callback nor a (name, Callback) pair; e.g. callbacks="
                    f"[('stop', skorch.callbacks.EarlyStopping(patience=5))]."
                )

    def _check_device_available(self):
        """Check that ``device`` names a torch device this machine has."""
        try:
            device = torch.device(self.device)
        except (RuntimeError, TypeError) as exc:
            raise ValueError(
                f"device={self.device!r} is not a torch device; use 'cpu', or "
                f"'cuda' on a machine with a CUDA GPU."
            ) from exc
        if device.type == "cpu":
            return
        accelerator = torch.accelerator.current_accelerator()
        if accelerator is None or accelerator.type != device.type:
            found = "none" if accelerator is None else f"only {accelerator.type!r}"
            raise ValueError(
                f"device={self.device!r} needs a {device.type.upper()} device, "
                f"which is not available: torch {torch.__version__} finds "
                f"{found} here. Use device='cpu'."
            )
        count = torch.accelerator.device_count()
        if device.index is not None and device.index >= count:
            raise ValueError(
                f"device={self.device!r} asks for {device.type} device "
                f"{device.index}, but there are {count}; use an index below "
                f"{count}."
            )

    def _module_kwargs(self, explicit, module_params, target, prefix="module"):
        """Merge explicit arguments with ``<prefix>__`` ones for class ``target``."""
        accepted = inspect.signature(target).parameters
        unknown = sorted(module_params.keys() - accepted.keys())
        if unknown:
            raise TypeError(
                f"{prefix}__{unknown[0]} is not a parameter of "
                f"{target.__name__}; its parameters are {sorted(accepted)}."
            )
        duplicated = sorted(explicit.keys() & module_params.keys())
        if duplicated:
            name = duplicated[0]
            raise ValueError(
                f"{prefix}__{name} duplicates the estimator parameter {name!r}; "
                f"set {name}=... instead of {prefix}__{name}=..."
            )
        return {**explicit, **module_params}

    def __sklearn_clone__(self):
        # __init__ takes the explicit parameters; the prefixed and extra ones
        # are stored as set_params stores them. An accelerator is this
        # process's handle on the run: shared, not copied.
        params = {
            name: value if name in self._extra_params else clone(value, safe=False)
            for name, value in self.get_params(deep=False).items()
        }
        stored = {name: params.pop(name) for name in self._stored_param_names()}
        new = type(self)(**params)
        vars(new).update(stored)
        for name in ("_metadata_request", "_sklearn_output_config"):
            if hasattr(self, name):
                setattr(new, name, clone(getattr(self, name), safe=False))
        return new

    def __sklearn_is_fitted__(self):
        # A fit that diverged leaves the net uninitialized, hence unfitted.
        return self.initialized_ and super().__sklearn_is_fitted__()

    def _fit_epochs(self, inputs, y, *, reset, fit_params):
        """Train for ``max_epochs`` epochs: skorch's ``partial_fit`` on module inputs.

        ``reset`` says whether this is a ``fit`` (the module just
        initialized) or a ``partial_fit``, for metadata routing.
        """
        NeuralNet.partial_fit(
            self,
            inputs,
            y,
            _routing_method="fit" if reset else "partial_fit",
            **fit_params,
        )

    def _eval(self):
        """Put the module and criterion in eval mode."""
        self._set_training(False)
