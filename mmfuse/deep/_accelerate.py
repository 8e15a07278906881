"""Training through Hugging Face Accelerate, for every mmfuse net that asks.

:class:`AccelerateSupport` is skorch's :class:`~skorch.hf.AccelerateMixin`
made optional: a net whose ``accelerator`` parameter is None trains exactly
as skorch's plain ``NeuralNet`` (each hook of the mixin is skipped), and a
net given an ``accelerate.Accelerator`` trains through the mixin: module,
criterion and optimizer prepared by the accelerator (data-parallel across
the processes of ``accelerate launch``, mixed precision, gradient
accumulation), the backward pass and the optimizer step its own.

What mmfuse changes from the mixin, and why:

- only the training batches are sharded across processes
  (:meth:`AccelerateSupport._prepare_iterator`, called by the base's
  ``get_iterator``): every process computes the same validation loss (so
  callbacks such as early stopping decide alike) and predicts every row;
- after training, the optimizer is unwrapped too (the mixin unwraps the
  module and criterion), so that the net pickles and a later ``partial_fit``
  prepares it again (:meth:`AccelerateSupport.on_train_begin`) rather than
  wrapping a wrapper;
- the net's ``device`` must name the accelerator's device (checked before
  ``fit``), instead of the mixin's ``device=None``: mmfuse places the
  prediction inputs on ``device``;
- the per-epoch log prints on the main process only, and pickling drops
  the accelerator (it holds this run's processes and everything it
  prepared);
- the accelerator keeps a reference to every object it prepares, so that
  ``clone`` sharing one accelerator over a grid search kept every fitted
  model alive: after training, the net takes back from the accelerator what
  it prepared (:meth:`AccelerateSupport._release_prepared`).

skorch internals relied on, beyond the mixin's documented use: its hooks
``_initialize_accelerator``, ``_unwrap_accelerator`` and the flag
``_wrapped_with_accelerator``; accelerate's registries ``_models``,
``_optimizers`` and ``_dataloaders`` (its ``free_memory`` would also drop
what the user prepared with the same accelerator). accelerate is imported
only when a net is given an accelerator.
"""

import torch
from skorch.hf import AccelerateMixin

__all__ = ["AccelerateSupport"]

INSTALL_HINT = "pip install 'mmfuse[accelerate]'"


def _accelerate():
    """Import accelerate, or say how to install it."""
    try:
        import accelerate
    except ImportError as exc:
        raise ImportError(
            f"Training with an accelerator needs the accelerate package, which "
            f"is not installed; install it with: {INSTALL_HINT}"
        ) from exc
    return accelerate


def print_on_main_process(*args, **kwargs):
    """``print`` on the main process of an Accelerate run only.

    The sink of the per-epoch log of an accelerated net (a module function,
    so that the net pickles). Without accelerate there is one process: it
    prints.
    """
    try:
        from accelerate import PartialState
    except ImportError:
        print(*args, **kwargs)
        return
    PartialState().print(*args, **kwargs)


def _needs_preparing(value):
    """Whether the accelerator prepares ``value``.

    It prepares an optimizer, and a module with trainable parameters.
    """
    if isinstance(value, torch.optim.Optimizer):
        return True
    return isinstance(value, torch.nn.Module) and any(
        parameter.requires_grad for parameter in value.parameters()
    )


class AccelerateSupport(AccelerateMixin):
    """skorch's :class:`~skorch.hf.AccelerateMixin`, used when ``accelerator`` is set.

    Not for direct use: a base of :class:`~mmfuse.deep._params.ParamsNet`.
    Each mixin hook checks ``self.accelerator`` and, when it is None, runs
    ``NeuralNet``'s instead (``super(AccelerateMixin, self)``).
    """

    # The parameter's default, and the mixin's state, as class attributes:
    # __init__ only stores (ParamsNet lists `accelerator` once it is set).
    accelerator = None
    unwrap_after_train = True
    _wrapped_with_accelerator = False

    def _plain(self):
        """Return the net without the mixin: ``NeuralNet``'s methods."""
        return super(AccelerateMixin, self)

    def _check_accelerator(self):
        """Check ``accelerator`` (None or an ``accelerate.Accelerator``) and ``device``.

        Raises
        ------
        ImportError
            When an accelerator is set but accelerate is not installed.
        TypeError
            When ``accelerator`` is not an ``accelerate.Accelerator``.
        ValueError
            When ``device`` is not the accelerator's device, or the
            accelerator splits batches.
        """
        if self.accelerator is None:
            return
        if not isinstance(self.accelerator, _accelerate().Accelerator):
            raise TypeError(
                f"accelerator={self.accelerator!r} is not an accelerate."
                f"Accelerator; pass accelerate.Accelerator() (configured by "
                f"`accelerate launch` or its arguments), or None to train "
                f"without accelerate."
            )
        if self.accelerator.split_batches:
            raise ValueError(
                "The accelerator splits batches (split_batches=True), which "
                "mmfuse's nets do not support (each batch is read whole); "
                "leave it False and set batch_size to each process's batch: "
                "a step trains on batch_size * num_processes rows."
            )
        wanted = self.accelerator.device
        device = torch.device(self.device)
        if device.type != wanted.type or device.index not in (None, wanted.index):
            raise ValueError(
                f"device={self.device!r} is not the accelerator's device "
                f"{str(wanted)!r}, where it trains the module; set "
                f"device={wanted.type!r} (or device=accelerator.device)."
            )

    def initialize(self):
        """Initialize the module, criterion, optimizer and callbacks (skorch's).

        With an accelerator, they are then prepared by it; new ones are
        prepared even when a fit that failed left the old ones prepared.

        Returns
        -------
        self : ParamsNet
            The initialized net.
        """
        vars(self).pop("_wrapped_with_accelerator", None)
        self._release_prepared()  # what a failed fit left prepared
        return super().initialize()

    def _prepare(self, value):
        """Prepare ``value`` with the accelerator, remembering it for release."""
        prepared = self.accelerator.prepare(value)
        vars(self).setdefault("_prepared", []).append(prepared)
        return prepared

    def _release_prepared(self):
        """Take back from the accelerator every object this net had it prepare.

        accelerate lists each prepared module, optimizer and data loader
        until ``free_memory``, which would also forget what the user prepared
        with the same accelerator; this drops this net's own only.
        """
        prepared = vars(self).pop("_prepared", [])
        if self.accelerator is None or not prepared:
            return
        # Under several processes prepare returns a DistributedDataParallel
        # wrapper, while the accelerator lists the module inside it.
        ours = {
            id(v) for value in prepared for v in (value, getattr(value, "module", None))
        }
        for registry in ("_models", "_optimizers", "_dataloaders"):
            kept = getattr(self.accelerator, registry, None)
            if kept is not None:
                kept[:] = [value for value in kept if id(value) not in ours]

    def _initialize_accelerator(self):
        # The mixin's, except that a criterion without trainable parameters
        # (e.g. CrossEntropyLoss) is left as it is: DistributedDataParallel
        # refuses a module with nothing to synchronize. (The mixin also
        # prepares LRScheduler's policy_, a class since skorch 1.0: no-op.)
        if self.accelerator is None or self._wrapped_with_accelerator:
            return self
        for kind, names in (
            ("criterion", self._criteria),
            ("module", self._modules),
            ("optimizer", self._optimizers),
        ):
            with self._current_init_context(kind):
                for name in names:
                    value = getattr(self, name + "_")
                    if _needs_preparing(value):
                        setattr(self, name + "_", self._prepare(value))
        self._wrapped_with_accelerator = True
        return self

    def _unwrap_accelerator(self):
        if not self._wrapped_with_accelerator:
            return
        super()._unwrap_accelerator()
        self._release_prepared()
        for name in self._optimizers:
            wrapper = getattr(self, name + "_")
            optimizer = getattr(wrapper, "optimizer", wrapper)
            setattr(self, name + "_", optimizer)
            # A learning-rate schedule built on the wrapper (skorch's
            # LRScheduler) follows: the wrapper does not pickle.
            for _, callback in self.callbacks_:
                schedule = getattr(callback, "lr_scheduler_", None)
                if getattr(schedule, "optimizer", None) is wrapper:
                    schedule.optimizer = optimizer

    def _initialize_callbacks(self):
        self._plain()._initialize_callbacks()
        # PrintLog calls a sink other than print whatever the verbosity.
        if (
            self.accelerator is not None
            and self.verbose
            and "callbacks__print_log__sink" not in vars(self)
        ):
            for name, callback in self.callbacks_:
                if name == "print_log":
                    callback.set_params(sink=print_on_main_process)
        return self

    def _prepare_iterator(self, iterator, *, training):
        """Shard the training batches across the processes (the base's hook).

        Parameters
        ----------
        iterator : torch.utils.data.DataLoader
            The batches, as ``get_iterator`` builds them.
        training : bool
            Whether they are training batches.

        Returns
        -------
        iterator : DataLoader
            ``iterator``, prepared by the accelerator when it runs several
            processes and the batches are for training; left whole
            otherwise.
        """
        # One process has nothing to shard (skorch places the batches on
        # `device`); besides, accelerate 1.15 cannot prepare a DataLoader
        # whose sampler yields whole batches (batch_size=None, as the base
        # reads them) in one process: "DataLoaderShard() got multiple values
        # for keyword argument 'batch_size'".
        if self.accelerator is None or not training:
            return iterator
        if self.accelerator.num_processes == 1:
            return iterator
        return self._prepare(iterator)

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        """Prepare the module and optimizer again for a ``partial_fit`` (skorch hook).

        Parameters
        ----------
        net : ParamsNet
            This net.
        X, y : dict and ndarray
            The training data (unused).
        **kwargs : dict
            Unused.
        """
        super().on_train_begin(net, X=X, y=y, **kwargs)
        self._initialize_accelerator()

    def on_train_end(self, net, X=None, y=None, **kwargs):
        """Wait for every process, then unwrap the module (skorch hook).

        Parameters
        ----------
        net : ParamsNet
            This net.
        X, y : dict and ndarray
            The training data (unused).
        **kwargs : dict
            Unused.
        """
        if self.accelerator is None:
            return self._plain().on_train_end(net, X=X, y=y, **kwargs)
        return super().on_train_end(net, X=X, y=y, **kwargs)

    def train_step(self, batch, **fit_params):
        """One optimization step, within the accelerator's accumulation.

        Parameters
        ----------
        batch : tuple
            The batch's inputs and target.
        **fit_params : dict
            Passed to the module's forward.

        Returns
        -------
        step : dict
            The batch's ``loss`` and ``y_pred``.
        """
        if self.accelerator is None:
            return self._plain().train_step(batch, **fit_params)
        return super().train_step(batch, **fit_params)

    def train_step_single(self, batch, **fit_params):
        """Forward and backward pass, under the accelerator's autocast.

        Parameters
        ----------
        batch : tuple
            The batch's inputs and target.
        **fit_params : dict
            Passed to the module's forward.

        Returns
        -------
        step : dict
            The batch's ``loss`` and ``y_pred``.
        """
        if self.accelerator is None:
            return self._plain().train_step_single(batch, **fit_params)
        return super().train_step_single(batch, **fit_params)

    def _step_optimizer(self, step_fn):
        if self.accelerator is None:
            return self._plain()._step_optimizer(step_fn)
        return super()._step_optimizer(step_fn)

    def evaluation_step(self, batch, training=False):
        """Run the module on a batch: skorch's, never gathered across processes.

        Evaluation batches are not sharded (see :meth:`_prepare_iterator`),
        so each process already has every row.

        Parameters
        ----------
        batch : tuple
            The batch's inputs and target.
        training : bool, default=False
            Whether to run the module in training mode.

        Returns
        -------
        y_pred : Tensor
            The module's output.
        """
        return self._plain().evaluation_step(batch, training=training)

    def save_params(self, *args, **kwargs):
        """Save the parameters (skorch's; on the main process only when accelerated).

        Parameters
        ----------
        *args, **kwargs
            skorch's :meth:`~skorch.net.NeuralNet.save_params` arguments.
        """
        if self.accelerator is None:
            return self._plain().save_params(*args, **kwargs)
        return super().save_params(*args, **kwargs)

    def load_params(self, *args, **kwargs):
        """Load the parameters (skorch's; unwrapped first when accelerated).

        Parameters
        ----------
        *args, **kwargs
            skorch's :meth:`~skorch.net.NeuralNet.load_params` arguments.
        """
        if self.accelerator is None:
            return self._plain().load_params(*args, **kwargs)
        return super().load_params(*args, **kwargs)

    def __getstate__(self):
        # The accelerator holds this run's processes and every object it
        # prepared: a pickled net keeps its model, not the accelerator.
        state = super().__getstate__()
        state.pop("accelerator", None)
        state.pop("_wrapped_with_accelerator", None)
        state.pop("_prepared", None)
        return state
