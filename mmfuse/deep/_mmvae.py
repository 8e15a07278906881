"""MultimodalVAE: a skorch multimodal VAE (PoE, MoE, MoPoE) as a transformer."""

from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_array, check_is_fitted
from skorch.callbacks import Callback

from mmfuse._blocks import check_any_modality, modality_position, per_modality
from mmfuse.deep._base import BaseMultimodalNet, check_widths
from mmfuse.deep._data import unstandardize
from mmfuse.deep._vae_module import LIKELIHOODS, MultimodalVAEModule, NegativeELBO
from mmfuse.utils._compat import Interval, StrOptions

__all__ = ["KLWarmup", "MultimodalVAE"]

# MoPoE mixes the 2**M - 1 subsets of M modalities: beyond this, use "moe".
_MOPOE_MAX_MODALITIES = 12

# What a likelihood's scale may be, for every modality or each of them.
_SCALE = [StrOptions({"learn"}), Interval(Real, 0, None, closed="neither")]
_SCALE_WHY = "a finite scale of the standardized columns, or 'learn'"


class KLWarmup(Callback):
    """Raise the weight of the KL term linearly from 0 to 1 over the first epochs.

    A skorch callback for :class:`MultimodalVAE`: in epoch ``e`` (counted
    from 1) the KL term is weighted by ``beta * min(1, e / n_epochs)``. The
    factor is recorded in the history as ``kl_weight``.

    Parameters
    ----------
    n_epochs : int, default=10
        Epochs of the warm-up.

    Examples
    --------
    >>> from mmfuse.deep import KLWarmup, MultimodalVAE
    >>> from mmfuse.datasets import make_multiview
    >>> X, _ = make_multiview(60, [4, 3], n_latent=2, random_state=0)
    >>> vae = MultimodalVAE(
    ...     blocks=[4, 3], latent_dim=2, hidden=(8,), max_epochs=4,
    ...     callbacks=[("warmup", KLWarmup(n_epochs=2))], random_state=0,
    ... ).fit(X)
    >>> vae.history_[:, "kl_weight"]
    [0.5, 1.0, 1.0, 1.0]
    """

    def __init__(self, n_epochs=10):
        self.n_epochs = n_epochs

    def initialize(self):
        """Check the parameter.

        Returns
        -------
        self : KLWarmup
            The callback.
        """
        if not isinstance(self.n_epochs, Integral) or self.n_epochs < 1:
            raise ValueError(
                f"KLWarmup(n_epochs={self.n_epochs!r}) needs a positive integer "
                f"number of epochs."
            )
        return self

    def on_epoch_begin(self, net, **kwargs):
        """Set the KL weight of this epoch on the net's criterion.

        Parameters
        ----------
        net : MultimodalVAE
            The net being trained.
        **kwargs : dict
            skorch's other arguments of the hook (unused).
        """
        weight = min(1.0, len(net.history) / self.n_epochs)
        net.criterion_.kl_weight = weight
        net.history.record("kl_weight", weight)


class MultimodalVAE(
    ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseMultimodalNet
):
    """Multimodal variational autoencoder over modality blocks.

    One encoder and one decoder per modality share a latent space of
    ``latent_dim``. The joint posterior of a row combines the experts of the
    modalities it has, by product of experts, mixture of experts, or mixture
    of products over subsets. The loss is the negative ELBO: the
    reconstruction log-likelihood of the present modalities minus
    ``beta`` times the KL divergence from the standard normal prior.

    With ``private_dim > 0`` each modality also has a private latent beside
    the shared one (MMVAE+ [4]_ with ``aggregation="moe"``): what only a
    modality holds need not crowd the shared space, and cross-modal
    generation draws the target's private latent from its prior, so that
    the shared latent must carry what the modalities share.
    ``n_importance_samples > 1`` trains on the importance-weighted bound
    (IWAE [5]_) instead of the ELBO, and :meth:`score` can compute that bound
    for any model.

    Missing modalities, in training and in inference: a row whose block is
    entirely NaN lacks that modality, which then takes no part in its
    posterior nor in its reconstruction loss; rows of a batch may differ in
    what they have. A row lacking every modality carries no information and
    is an error (in ``fit``, :meth:`transform`, :meth:`reconstruct`,
    :meth:`impute` and :meth:`score`). Outputs never contain NaN: a fit
    whose loss becomes non-finite stops with an error.

    Parameters
    ----------
    blocks : "auto", int, list, tuple or dict, default="auto"
        The modality blocks, in any form :func:`~mmfuse.resolve_blocks`
        accepts.
    latent_dim : int, default=20
        Size of the shared latent space (the number of output features, with
        ``output="shared"``).
    aggregation : {"poe", "moe", "mopoe"}, default="mopoe"
        The joint posterior:

        - ``"poe"``: product of the present experts and of the prior expert
          (precision-weighted, computed in log space); trained, as MVAE [1]_,
          on the joint ELBO plus each present modality's own ELBO so that
          single-modality posteriors are usable for cross-modal generation.
          A modality's own ELBO is that of the modality alone: a latent
          drawn from its expert times the prior reconstructs that modality
          only, as in MVAE's paper and code, so that each term bounds the
          likelihood of what its posterior sees (decoding every modality
          from each expert is ``"moe"``'s objective);
        - ``"moe"``: uniform mixture of the present experts (MMVAE), trained
          with stratified sampling: each present expert is sampled and
          decodes every present modality;
        - ``"mopoe"``: uniform mixture over the non-empty subsets of the
          present modalities of their product of experts (MoPoE-VAE); one
          subset is drawn a row in training. At most 12 modalities.
    likelihood : {"gaussian", "laplace", "bernoulli"} or dict, default="gaussian"
        Likelihood of every modality, or a dict ``{modality: likelihood}``
        (unlisted modalities are Gaussian). Bernoulli modalities must lie in
        [0, 1] and are not standardized.
    scale : "learn", float or dict, default="learn"
        Scale of the Gaussian and Laplace likelihoods (of the standardized
        columns): ``"learn"`` for one learned per column (at least 0.01), a
        fixed positive value, or a dict ``{modality: scale}`` (unlisted
        modalities learn theirs).
    beta : float, default=1.0
        Weight of the KL term (β-VAE); see :class:`KLWarmup` to ramp it up.
        In the importance-weighted bound it weighs ``log q - log p`` of each
        sample.
    hidden : tuple of int, default=(256,)
        Hidden widths of the default MLP encoders; decoders use them
        reversed.
    dropout : float, default=0.0
        Dropout in the default MLPs.
    private_dim : int, default=0
        Size of each modality's private latent; 0 for none (one latent space
        shared by all modalities). Each present modality's private posterior
        ``q(w_m | x_m)`` joins the posterior component it is a member of: a
        shared sample drawn from a component is decoded, for each modality,
        together with that modality's own private sample when it is a member
        of the component, or with a private sample from the prior ``N(0, I)``
        otherwise (MMVAE+'s cross-modal reconstructions, with the prior as
        auxiliary distribution); its KL term joins the component's.
    n_importance_samples : int, default=1
        Samples a posterior component in training: 1 for the ELBO with
        analytic KL terms, ``K > 1`` for the importance-weighted bound of
        each component (``log`` of the mean of ``K`` importance weights; plain
        IWAE gradients), which is tighter and trains a more expressive
        posterior at ``K`` times the cost of decoding. Also the default of
        :meth:`score`. Each mixture component is its own proposal (the
        weights use the density of the component a sample came from, not
        the mixture's as MMVAE's stratified estimator does): each term, and
        so their weighted mean, bounds the log evidence.
    output : {"shared", "all"}, default="shared"
        What :meth:`transform` returns: the shared latent, or the shared
        latent then each modality's private one (``latent_dim + n_modalities
        * private_dim`` columns; a missing modality's private part is its
        prior mean, 0).
    optimizer : callable, default=torch.optim.AdamW
        The torch optimizer class; set its parameters with
        ``set_params(optimizer__weight_decay=...)``. Adam and AdamW use
        torch's fused implementation unless ``optimizer__fused`` or
        ``optimizer__foreach`` is set.
    lr : float, default=1e-3
        Learning rate.
    max_epochs : int, default=100
        Training epochs.
    batch_size : int, default=128
        Mini-batch size; -1 for the whole data set. Training batches are
        drawn in a new random order every epoch.
    train_split : callable or None, default=None
        skorch's internal validation split (e.g. ``ValidSplit(5)``) for a
        ``valid_loss`` and early stopping; None trains on all the data.
    callbacks : list of (str, Callback), "disable" or None, default=None
        skorch callbacks, e.g. ``[("warmup", KLWarmup(10))]`` or
        ``[("stop", EarlyStopping(patience=5))]`` with a ``train_split``.
    verbose : int, default=0
        1 prints a line per epoch; 0 is silent.
    device : str or torch.device, default="cpu"
        Where the net is trained and run, e.g. ``"cuda"``.
    random_state : int, RandomState instance or None, default=None
        Seeds the weights, shuffling and reparametrization noise: the same
        seed gives the same model on CPU; torch's global random state is left
        as it was.

    Attributes
    ----------
    blocks_ : list of ndarray of intp
        Column positions of each modality.
    modality_names_ : list of str
        Name of each modality.
    likelihoods_ : list of str
        The likelihood of each modality.
    mean_ : ndarray of shape (n_features_in_,)
        Mean of each column's observed training values (0 for Bernoulli
        modalities).
    scale_ : ndarray of shape (n_features_in_,)
        Standard deviation of each column's observed training values (1 for
        Bernoulli modalities).
    module_ : torch.nn.Module
        The trained torch module: the encoders, the decoders and the
        likelihoods.
    history_ : skorch.history.History
        Per-epoch losses and timings.
    n_features_in_ : int
        Number of columns seen in ``fit``.
    feature_names_in_ : ndarray of str of shape (n_features_in_,)
        Column names seen in ``fit``, when ``X`` had string column names.

    See Also
    --------
    mmfuse.deep.MLPFusionClassifier : Supervised fusion head.
    mmfuse.cca.MCCA : Linear shared subspace of several modalities.

    Notes
    -----
    Columns of Gaussian and Laplace modalities are standardized inside the
    net with the mean and standard deviation of their observed training
    values (pass raw features; outputs are in the original units); a NaN in
    part of a present block counts as the column mean and is filled by
    :meth:`impute`. The ELBO of :meth:`score` is that of the standardized
    data.

    ``fit(X, sample_weight=w)`` weighs each row's negative ELBO: a batch's
    loss is ``sum(w * loss) / sum(w)`` over its rows, so integer weights act
    as repetition counts in expectation (not exactly: repeated rows would
    change the shuffled batches and the number of steps).

    Encoders and decoders can be replaced per modality with
    ``set_params(module__encoder=...)`` / ``module__decoder``: a class or
    callable ``(in_features, out_features)`` returning a torch module (for
    every modality), a list of one a modality, or a dict
    ``{modality: class}`` (None, or a modality the dict leaves out, keeps
    the default MLP); encoders output ``2 * (latent_dim + private_dim)``
    values (means, then log variances; shared before private), decoders
    read ``latent_dim + private_dim`` values and output the likelihood's
    mean (the logits for Bernoulli).

    References
    ----------
    .. [1] Wu, M. and Goodman, N. "Multimodal generative models for scalable
       weakly-supervised learning", NeurIPS 2018 (PoE, MVAE).
    .. [2] Shi, Y., Siddharth, N., Paige, B. and Torr, P. "Variational
       mixture-of-experts autoencoders for multi-modal deep generative
       models", NeurIPS 2019 (MoE, MMVAE).
    .. [3] Sutter, T., Daunhawer, I. and Vogt, J. "Generalized multimodal ELBO",
       ICLR 2021 (MoPoE).
    .. [4] Palumbo, E., Daunhawer, I. and Vogt, J. "MMVAE+: enhancing the
       generative quality of multimodal VAEs without compromises", ICLR 2023.
    .. [5] Burda, Y., Grosse, R. and Salakhutdinov, R. "Importance weighted
       autoencoders", ICLR 2016.

    Examples
    --------
    >>> import numpy as np
    >>> from mmfuse.deep import MultimodalVAE
    >>> from mmfuse.datasets import make_multiview
    >>> X, _ = make_multiview(200, [6, 4], n_latent=2, random_state=0)
    >>> vae = MultimodalVAE(blocks=[6, 4], latent_dim=2, hidden=(16,),
    ...                     max_epochs=5, random_state=0).fit(X)
    >>> vae.transform(X).shape
    (200, 2)
    >>> X_missing = X.copy()
    >>> X_missing[:5, 6:] = np.nan  # five rows lack the second modality
    >>> filled = vae.impute(X_missing)
    >>> bool(np.isnan(filled).any()), bool((filled[:, :6] == X[:, :6]).all())
    (False, True)
    >>> vae.sample(3, random_state=0).shape
    (3, 10)

    MMVAE+: a mixture of experts with a private latent a modality, trained
    on an importance-weighted bound; ``output="all"`` appends the private
    latents to the shared one.

    >>> plus = MultimodalVAE(blocks=[6, 4], latent_dim=2, aggregation="moe",
    ...                      private_dim=1, n_importance_samples=4, hidden=(16,),
    ...                      max_epochs=5, random_state=0).fit(X)
    >>> plus.transform(X).shape, plus.set_params(output="all").transform(X).shape
    ((200, 2), (200, 4))
    """

    criterion = NegativeELBO

    _parameter_constraints: dict = {
        **BaseMultimodalNet._parameter_constraints,
        "latent_dim": [Interval(Integral, 1, None, closed="left")],
        "aggregation": [StrOptions({"poe", "moe", "mopoe"})],
        "likelihood": [StrOptions(set(LIKELIHOODS)), dict],
        "scale": [*_SCALE, dict],
        "beta": [Interval(Real, 0, None, closed="left")],
        "hidden": [tuple, list],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "private_dim": [Interval(Integral, 0, None, closed="left")],
        "n_importance_samples": [Interval(Integral, 1, None, closed="left")],
        "output": [StrOptions({"shared", "all"})],
    }

    def __init__(
        self,
        blocks="auto",
        *,
        latent_dim=20,
        aggregation="mopoe",
        likelihood="gaussian",
        scale="learn",
        beta=1.0,
        hidden=(256,),
        dropout=0.0,
        private_dim=0,
        n_importance_samples=1,
        output="shared",
        optimizer=torch.optim.AdamW,
        lr=1e-3,
        max_epochs=100,
        batch_size=128,
        train_split=None,
        callbacks=None,
        verbose=0,
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
        self.latent_dim = latent_dim
        self.aggregation = aggregation
        self.likelihood = likelihood
        self.scale = scale
        self.beta = beta
        self.hidden = hidden
        self.dropout = dropout
        self.private_dim = private_dim
        self.n_importance_samples = n_importance_samples
        self.output = output

    # ------------------------------------------------------------- building
    def _validate_training_data(self, X, y, sample_weight, *, reset, classes=None):
        X, y, sample_weight = super()._validate_training_data(
            X, y, sample_weight, reset=reset, classes=classes
        )
        if reset:
            n_modalities = len(self.blocks_)
            if self.aggregation == "mopoe" and n_modalities > _MOPOE_MAX_MODALITIES:
                raise ValueError(
                    f"aggregation='mopoe' mixes the 2**M - 1 subsets of the "
                    f"modalities, and there are M={n_modalities}; use "
                    f"aggregation='moe' or 'poe' beyond "
                    f"{_MOPOE_MAX_MODALITIES} modalities."
                )
            self.likelihoods_ = per_modality(
                "likelihood",
                self.likelihood,
                self.modality_names_,
                StrOptions(set(LIKELIHOODS)),
                default="gaussian",
            )
            for block, kind in zip(self.blocks_, self.likelihoods_, strict=True):
                if kind == "bernoulli":
                    self.mean_[block], self.scale_[block] = 0.0, 1.0
        self._check_unit_interval(X)
        return X, y, sample_weight

    def _validate_new(self, X):
        X = super()._validate_new(X)
        self._check_unit_interval(X)  # new data too: it was checked at fit only
        return X

    def _check_unit_interval(self, X):
        """Raise unless every Bernoulli modality's values lie in [0, 1]."""
        for block, name, kind in zip(
            self.blocks_, self.modality_names_, self.likelihoods_, strict=True
        ):
            if kind != "bernoulli":
                continue
            values = X[:, block]
            low, high = np.nanmin(values, initial=0.0), np.nanmax(values, initial=0.0)
            if low < 0 or high > 1:
                raise ValueError(
                    f"modality {name!r} has a Bernoulli likelihood, which needs "
                    f"values in [0, 1], but its values span [{low:g}, {high:g}]; "
                    f"rescale them to [0, 1] or use likelihood='gaussian' for it."
                )

    def _build_module(self, **module_params):
        check_widths("hidden", self.hidden)
        names = self.modality_names_
        factories = {
            part: per_modality(
                f"module__{part}",
                module_params.pop(part, None),
                names,
                callable,
                None,
                default=None,
            )
            for part in ("encoder", "decoder")
        }
        explicit = {
            "blocks": self.blocks_,
            "latent_dim": self.latent_dim,
            "hidden": self.hidden,
            "aggregation": self.aggregation,
            "likelihoods": self.likelihoods_,
            "scales": per_modality(
                "scale", self.scale, names, *_SCALE, why=_SCALE_WHY, default="learn"
            ),
            "encoders": factories["encoder"],
            "decoders": factories["decoder"],
            "dropout": self.dropout,
            "private_dim": self.private_dim,
            "n_importance_samples": self.n_importance_samples,
        }
        return MultimodalVAEModule(
            **self._module_kwargs(explicit, module_params, MultimodalVAEModule)
        )

    def initialize_criterion(self):
        """Build ``criterion_``, the negative ELBO with ``beta`` (skorch hook).

        Returns
        -------
        self : MultimodalVAE
            The net, with ``criterion_`` set.
        """
        self.criterion_ = NegativeELBO(beta=self.beta)
        return self

    def _row_losses(self, y_pred, y_true):
        # The module's output holds each row's ELBO terms; no target.
        return self.criterion_(y_pred)

    # ------------------------------------------------------------ inference
    @property
    def _full_dim(self):
        """Width of the full latent: shared, then each modality's private one."""
        return self.latent_dim + len(self.blocks_) * self.private_dim

    @property
    def _n_features_out(self):
        return self._full_dim if self.output == "all" else self.latent_dim

    def transform(self, X):
        """Latent means of the joint posterior, from the modalities each row has.

        Parameters
        ----------
        X : {array-like, DataFrame} of shape (n_samples, n_features)
            Multimodal data; all-NaN blocks are missing modalities, and every
            row must have one.

        Returns
        -------
        Z : ndarray of shape (n_samples, n_features_out)
            Posterior means of the shared latent (``latent_dim`` columns);
            with ``output="all"``, then those of each modality's private
            latent (``private_dim`` columns a modality, 0 where the row lacks
            the modality).
        """
        return self._module_method(X, "posterior_mean")[:, : self._n_features_out]

    def inverse_transform(self, Z):
        """Decode latent points into every modality, in ``X``'s column layout.

        Parameters
        ----------
        Z : array-like of shape (n_samples, n_features_out)
            Latent points, as :meth:`transform` gives them; with
            ``output="shared"`` and ``private_dim > 0`` the private latents
            are their prior mean, 0.

        Returns
        -------
        X : ndarray of shape (n_samples, n_features_in_)
            The likelihoods' means (probabilities for Bernoulli modalities), in
            the original units; columns in no block hold their training mean.
        """
        check_is_fitted(self)
        Z = check_array(Z, dtype=("float64", "float32"))
        if Z.shape[1] != self._n_features_out:
            raise ValueError(
                f"Z has {Z.shape[1]} columns but transform gives "
                f"{self._n_features_out} (latent_dim={self.latent_dim}, "
                f"private_dim={self.private_dim}, output={self.output!r}); "
                f"pass the output of transform."
            )
        return self._decode(np.pad(Z, ((0, 0), (0, self._full_dim - Z.shape[1]))))

    def _decode(self, Z):
        """Decode full latent points (shared, then private) into ``X``'s layout."""
        if (np.abs(Z) > np.finfo(np.float32).max).any():
            raise ValueError(
                f"Z holds values up to {np.abs(Z).max():.3g}, beyond float32's "
                f"range in which the net computes; pass the output of transform."
            )
        decoded = self._run_module({"z": Z.astype(np.float32)}, "decode")
        columns = np.concatenate(self.blocks_)
        X = np.tile(self.mean_, (len(Z), 1))
        X[:, columns] = unstandardize(
            decoded, self.mean_[columns], self.scale_[columns], "decoded values"
        )
        return X

    def reconstruct(self, X, given=None):
        """Generate every modality from the chosen ones (cross-modal generation).

        Parameters
        ----------
        X : {array-like, DataFrame} of shape (n_samples, n_features)
            Multimodal data; all-NaN blocks are missing modalities.
        given : str, int or list of (str or int), default=None
            The modality or modalities (names or positions) to encode from;
            the others are ignored even when present. None uses every present
            modality.

        Returns
        -------
        X_generated : ndarray of shape (n_samples, n_features_in_)
            Every modality decoded from the posterior mean of the given ones,
            in the original units and ``X``'s column layout; with private
            latents, a given modality's is its posterior mean, another's its
            prior mean.

        Raises
        ------
        ValueError
            When a row has none of the given modalities.

        Examples
        --------
        >>> from mmfuse.deep import MultimodalVAE
        >>> from mmfuse.datasets import make_multiview
        >>> X, _ = make_multiview(100, [4, 3], n_latent=2, random_state=0)
        >>> vae = MultimodalVAE(blocks={"a": 4, "b": 3}, latent_dim=2,
        ...                     hidden=(8,), max_epochs=3, random_state=0).fit(X)
        >>> b_from_a = vae.reconstruct(X, given=["a"])[:, 4:]
        >>> b_from_a.shape
        (100, 3)
        """
        return self._reconstruct(self._validate_input(X), given)

    def _reconstruct(self, inputs, given):
        """Decode the posterior means of the module's inputs, from ``given``."""
        if isinstance(given, str | Integral):  # one modality, not its letters
            given = [given]
        if given is not None:
            names = self.modality_names_
            keep = sorted({modality_position(m, names, "given") for m in given})
            check_any_modality(
                inputs["mask"][:, keep],
                [names[m] for m in keep],
                f"{type(self).__name__}.reconstruct(given={list(given)!r})",
            )
            inputs["mask"] = inputs["mask"] & np.isin(np.arange(len(names)), keep)
        return self._decode(self._run_module(inputs, "posterior_mean"))

    def impute(self, X):
        """Fill missing modalities by cross-modal generation.

        Parameters
        ----------
        X : {array-like, DataFrame} of shape (n_samples, n_features)
            Multimodal data; all-NaN blocks are missing modalities.

        Returns
        -------
        X_imputed : ndarray of shape (n_samples, n_features_in_)
            ``X`` with every NaN replaced by its reconstruction from the
            modalities the row has; observed values are unchanged. A row
            lacking every modality is an error: nothing to impute from.
        """
        X = self._validate_new(X)
        reconstructed = self._reconstruct(self._module_input(X), None)
        X_imputed = np.array(X, dtype=np.float64)
        missing = np.isnan(X_imputed)
        X_imputed[missing] = reconstructed[missing]
        return X_imputed

    def sample(self, n_samples=1, random_state=None):
        """Generate new rows from the prior.

        Parameters
        ----------
        n_samples : int, default=1
            Number of rows.
        random_state : int, RandomState instance or None, default=None
            Draws the latent points.

        Returns
        -------
        X : ndarray of shape (n_samples, n_features_in_)
            The decoded means of latents drawn from the prior ``N(0, I)``
            (shared and private), in ``X``'s column layout.
        """
        check_is_fitted(self)
        if not isinstance(n_samples, Integral) or n_samples < 1:
            raise ValueError(f"n_samples={n_samples!r} must be a positive integer.")
        Z = check_random_state(random_state).standard_normal(
            (n_samples, self._full_dim)
        )
        return self._decode(Z)

    def score(self, X, y=None, n_importance_samples=None):
        """Mean evidence lower bound per row (β = 1): higher is better.

        With one sample, the ELBO (analytic KL terms); with ``K > 1``, the
        importance-weighted bound of ``K`` samples a posterior component,
        which never decreases with ``K`` in expectation and tends to the log
        evidence. The noise of each row is drawn from a fixed seed, once for
        all rows, so the score is deterministic and does not depend on
        ``batch_size``. Missing modalities take no part; a row lacking every
        modality is an error. Lets ``GridSearchCV`` tune ``beta``,
        ``latent_dim``, ``private_dim`` or ``aggregation`` without a target.

        Parameters
        ----------
        X : {array-like, DataFrame} of shape (n_samples, n_features)
            Multimodal data.
        y : None
            Ignored.
        n_importance_samples : int, default=None
            Samples a posterior component; None uses the estimator's
            ``n_importance_samples``. Compare models at the same value.

        Returns
        -------
        score : float
            The mean bound, in nats, of the standardized data.

        Examples
        --------
        >>> from mmfuse.deep import MultimodalVAE
        >>> from mmfuse.datasets import make_multiview
        >>> X, _ = make_multiview(100, [4, 3], n_latent=2, random_state=0)
        >>> vae = MultimodalVAE(blocks=[4, 3], latent_dim=2, hidden=(8,),
        ...                     max_epochs=3, random_state=0).fit(X)
        >>> bool(vae.score(X, n_importance_samples=50) > vae.score(X))
        True
        """
        k = n_importance_samples
        if k is None:
            k = self.n_importance_samples
        elif not isinstance(k, Integral) or isinstance(k, bool) or k < 1:
            raise ValueError(
                f"n_importance_samples={k!r} must be a positive integer (1 for "
                f"the ELBO) or None for the estimator's."
            )
        inputs = self._validate_input(X)
        rng = np.random.default_rng(0)
        n_rows = len(inputs["X"])
        shapes = self.module_.noise_shapes(k)
        inputs["eps"] = rng.standard_normal((n_rows, *shapes["eps"]), dtype=np.float32)
        inputs["u"] = rng.random(n_rows, dtype=np.float32)
        for name in ("eps_own", "eps_prior"):
            if name in shapes:
                inputs[name] = rng.standard_normal(
                    (n_rows, *shapes[name]), dtype=np.float32
                )
        return float(self._run_module(inputs, "elbo").mean())
