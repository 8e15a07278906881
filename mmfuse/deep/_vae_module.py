"""The torch module of the multimodal VAE: posteriors, likelihoods, ELBO."""

import math
from itertools import combinations

import torch
from torch import nn
from torch.nn import functional as F

from mmfuse.deep._layers import MLP, equal_shares, modality_encoders

# Encoders' log-variances and likelihoods' log-scales are clipped to these
# ranges so that exp() stays finite in float32.
LOGVAR_RANGE = (-12.0, 8.0)
LOG_SCALE_MIN = math.log(1e-2)


def kl_standard_normal(mu, logvar):
    """KL of ``N(mu, exp(logvar))`` from ``N(0, I)``, summed on the last axis."""
    return 0.5 * (mu.square() + logvar.exp() - 1.0 - logvar).sum(-1)


def products_of_experts(mu, logvar, mask, subsets):
    """Products of Gaussian experts over subsets, each with the prior ``N(0, I)``.

    Precision-weighted: the experts' precisions (and precision-weighted
    means) are summed over every subset in one matrix product, after shifting
    the log precisions by their largest (or the prior's 0) in each row and latent
    coordinate, so that very confident or very vague experts neither
    overflow nor underflow (exactly so for a product of all the experts, and
    for subsets while the log variances are within about 80 of each other:
    the module clamps them to ``LOGVAR_RANGE``).

    Parameters
    ----------
    mu, logvar : Tensor of shape (n_experts, batch, latent)
        The experts' means and log variances.
    mask : Tensor of bool, shape (batch, n_experts)
        False where a row lacks an expert (it then has no weight).
    subsets : Tensor of bool, shape (n_products, n_experts)
        The experts of each product; a product with no present expert is the
        prior.

    Returns
    -------
    mu, logvar : Tensor of shape (n_products, batch, latent)
        The product of each subset.
    """
    n_experts, batch, latent = mu.shape
    present = mask.T.unsqueeze(-1)
    log_precision = -logvar
    shift = log_precision.detach().masked_fill(~present, 0.0).amax(0).clamp(min=0.0)
    precision = torch.exp((log_precision - shift).masked_fill(~present, -math.inf))
    weights = subsets.to(mu.dtype)

    def summed(values):  # sum over each subset's experts, (n_products, batch, latent)
        return (weights @ values.reshape(n_experts, -1)).view(-1, batch, latent)

    total = summed(precision) + torch.exp(-shift)
    return summed(precision * mu) / total, -(torch.log(total) + shift)


class GaussianLikelihood(nn.Module):
    """Gaussian ``p(x | z)`` with the decoder's output as mean.

    Parameters
    ----------
    width : int
        Number of features.
    scale : "learn" or float, default="learn"
        A fixed standard deviation, or ``"learn"`` for one learned per
        feature (bounded below by 0.01).
    """

    def __init__(self, width, scale="learn"):
        super().__init__()
        if scale == "learn":
            self.log_scale = nn.Parameter(torch.zeros(width))
        else:
            self.register_buffer("log_scale", torch.full((width,), math.log(scale)))

    def _log_scale(self):
        return self.log_scale.clamp(min=LOG_SCALE_MIN)

    def log_prob(self, x, output):
        """Log-likelihood of ``x`` summed over features, one value a row."""
        log_scale = self._log_scale()
        z = (x - output) * torch.exp(-log_scale)
        return (-0.5 * z.square() - log_scale - 0.5 * math.log(2 * math.pi)).sum(-1)

    def mean(self, output):
        """Return the mean of ``p(x | z)``."""
        return output


class LaplaceLikelihood(GaussianLikelihood):
    """Laplace ``p(x | z)`` with the decoder's output as location.

    Parameters
    ----------
    width : int
        Number of features.
    scale : "learn" or float, default="learn"
        A fixed scale, or ``"learn"`` for one learned per feature (bounded
        below by 0.01).
    """

    def log_prob(self, x, output):
        """Log-likelihood of ``x`` summed over features, one value a row."""
        log_scale = self._log_scale()
        z = (x - output).abs() * torch.exp(-log_scale)
        return (-z - log_scale - math.log(2)).sum(-1)


class BernoulliLikelihood(nn.Module):
    """Bernoulli ``p(x | z)`` with the decoder's output as logits; ``x`` in [0, 1].

    Parameters
    ----------
    width : int
        Number of features (unused; for a uniform signature).
    scale : ignored
        For a uniform signature with the other likelihoods.
    """

    def __init__(self, width, scale=None):
        super().__init__()

    def log_prob(self, x, output):
        """Log-likelihood of ``x`` summed over features, one value a row."""
        x = x.expand_as(output)
        return -F.binary_cross_entropy_with_logits(output, x, reduction="none").sum(-1)

    def mean(self, output):
        """Return the mean of ``p(x | z)``: the probabilities."""
        return torch.sigmoid(output)


LIKELIHOODS = {
    "gaussian": GaussianLikelihood,
    "laplace": LaplaceLikelihood,
    "bernoulli": BernoulliLikelihood,
}


class MultimodalVAEModule(nn.Module):
    """A multimodal VAE: one encoder and decoder a modality, one latent space.

    Takes the standardized ``X`` (all columns) and a boolean ``mask`` saying
    which modalities each row has; modality ``m`` is ``X[:, blocks[m]]``.
    ``forward`` returns the per-row reconstruction log-likelihood and KL
    terms of the training objective; the other methods serve inference.

    Parameters
    ----------
    blocks : list of array-like of int
        Column positions of each modality.
    latent_dim : int, default=20
        Size of the latent space.
    hidden : sequence of int, default=(256,)
        Hidden widths of the default MLP encoders (decoders use them
        reversed).
    aggregation : {"poe", "moe", "mopoe"}, default="mopoe"
        Joint posterior: product of experts (trained with the joint ELBO and
        each present modality's own ELBO, which reconstructs that modality
        only, as in MVAE), mixture of experts (stratified: every present
        modality's expert is sampled and decodes every modality), or mixture
        of products of experts over the subsets of the present modalities
        (one subset drawn a row).
    likelihoods : list of str, default=None
        One of ``"gaussian"``, ``"laplace"``, ``"bernoulli"`` per modality;
        None for Gaussian everywhere.
    scales : list of ("learn" or float), default=None
        Scale of each modality's Gaussian or Laplace likelihood; None for
        ``"learn"`` everywhere.
    encoders, decoders : list of (callable or None), default=None
        Per modality, a class or factory ``f(in_features, out_features)``
        returning an ``nn.Module``, or None for the default :class:`MLP`.
        Encoders output ``2 * latent_dim`` values (means, then log
        variances). With no encoder given, the default encoders are one
        :class:`GroupedMLP` (the MLP head's), else :class:`ModalityEncoders`.
    dropout : float, default=0.0
        Dropout of the default MLPs.
    """

    def __init__(
        self,
        blocks,
        latent_dim=20,
        hidden=(256,),
        aggregation="mopoe",
        likelihoods=None,
        scales=None,
        encoders=None,
        decoders=None,
        dropout=0.0,
    ):
        super().__init__()
        n = len(blocks)
        self.widths = [len(block) for block in blocks]
        self.aggregation = aggregation
        hidden = tuple(hidden)
        self.register_buffer(
            "columns", torch.as_tensor([int(c) for block in blocks for c in block])
        )
        self.encoders = modality_encoders(
            blocks, 2 * latent_dim, encoders, hidden, dropout
        )
        self.decoders = nn.ModuleList(
            (f or _default_mlp(hidden[::-1], dropout))(latent_dim, w)
            for w, f in zip(self.widths, decoders or [None] * n, strict=True)
        )
        self.likelihoods = nn.ModuleList(
            LIKELIHOODS[kind](w, s)
            for w, kind, s in zip(
                self.widths,
                likelihoods or ["gaussian"] * n,
                scales or ["learn"] * n,
                strict=True,
            )
        )
        # Experts of each product: all of them (the joint posterior of "poe"),
        # then each alone (its single-modality terms), and for "mopoe" every
        # non-empty subset.
        eye = torch.eye(n, dtype=torch.bool)
        self.register_buffer("poe_terms", torch.cat([torch.ones(1, n).bool(), eye]))
        subsets = [
            [m in subset for m in range(n)]
            for k in range(1, n + 1)
            for subset in combinations(range(n), k)
        ]
        self.register_buffer("subsets", torch.tensor(subsets, dtype=torch.bool))
        # Posterior samples a row of the ELBO without single-modality terms:
        # one a present expert for "moe", else one.
        self.n_draws = n if aggregation == "moe" else 1

    def _split(self, X):
        return torch.split(X.index_select(-1, self.columns), self.widths, dim=-1)

    def _encode(self, X):
        """Encode each modality: means, log variances ``(modality, batch, latent)``."""
        out = self.encoders(X)
        mu, logvar = out.chunk(2, dim=-1)
        return mu, logvar.clamp(*LOGVAR_RANGE)

    def _subset_posteriors(self, mu, logvar, mask):
        """MoPoE components ``(subset, batch, latent)``, weights ``(subset, batch)``."""
        sub_mu, sub_logvar = products_of_experts(mu, logvar, mask, self.subsets)
        outside = self.subsets.to(mu.dtype) @ (~mask).T.to(mu.dtype)
        return sub_mu, sub_logvar, equal_shares(outside == 0, dim=0)

    def posterior_mean(self, X, mask):
        """Mean of the joint posterior from the modalities each row has."""
        mu, logvar = self._encode(X)
        if self.aggregation == "poe":
            return products_of_experts(mu, logvar, mask, self.poe_terms[:1])[0][0]
        if self.aggregation == "moe":
            weights = equal_shares(mask.T, dim=0)
        else:
            mu, _, weights = self._subset_posteriors(mu, logvar, mask)
        return (weights.unsqueeze(-1) * mu).sum(0)

    def decode(self, z):
        """Decode ``z`` into the mean of every modality, blocks side by side."""
        return torch.cat(
            [
                lik.mean(dec(z))
                for dec, lik in zip(self.decoders, self.likelihoods, strict=True)
            ],
            dim=-1,
        )

    def _log_likelihood(self, X, mask, z):
        """``sum_m mask_m log p(x_m | z)`` for ``z`` of shape (..., batch, latent)."""
        total = 0.0
        for xm, present, dec, lik in zip(
            self._split(X), mask.T, self.decoders, self.likelihoods, strict=True
        ):
            total = total + lik.log_prob(xm, dec(z)) * present
        return total

    def _poe_log_likelihood(self, X, mask, z):
        """Reconstruction terms of the PoE objective, summed, one value a row.

        ``z[0]``, drawn from the joint posterior, reconstructs every present
        modality; ``z[1 + m]``, when given, drawn from modality ``m``'s own
        posterior (its expert times the prior), reconstructs modality ``m``
        only: its ELBO is that of ``x_m`` alone, as in MVAE.
        """
        total = 0.0
        for m, (xm, present, dec, lik) in enumerate(
            zip(self._split(X), mask.T, self.decoders, self.likelihoods, strict=True)
        ):
            terms = [0, 1 + m] if len(z) > 1 else [0]
            total = total + (lik.log_prob(xm, dec(z[terms])) * present).sum(0)
        return total

    @staticmethod
    def _sample(mu, logvar, eps=None):
        if eps is None:
            eps = torch.randn(mu.shape, device=mu.device)
        return mu + eps * torch.exp(0.5 * logvar)

    @staticmethod
    def _pick(weights, u=None):
        """One mixture component a row (batch,), drawn with ``weights``.

        ``weights`` (components, batch); ``u`` (batch,) uniform on [0, 1),
        drawn when None. A row whose weights are all 0 draws uniformly.
        """
        draw = torch.where(weights.sum(0) > 0, weights, 1.0)
        cdf = draw.cumsum(0)
        if u is None:
            u = torch.rand(cdf.shape[1], device=cdf.device)
        below = (cdf <= u * cdf[-1]).sum(0)
        return below.clamp(max=len(cdf) - 1)

    def forward(self, X, mask):
        """Per-row reconstruction log-likelihood and KL of the training objective."""
        return self.elbo_terms(X, mask, unimodal=self.aggregation == "poe")

    def elbo(self, X, mask, eps, u):
        """ELBO of each row (β = 1) with the given noise.

        ``eps`` (batch, ``n_draws``, latent) standard normal and ``u`` (batch,)
        uniform: given per row, so that the ELBO of a row does not depend on
        the batch it is computed in.
        """
        log_likelihood, kl = self.elbo_terms(X, mask, eps=eps.transpose(0, 1), u=u)
        return log_likelihood - kl

    def elbo_terms(self, X, mask, unimodal=False, eps=None, u=None):
        """Reconstruction log-likelihood and KL, one value a row each.

        Parameters
        ----------
        X : Tensor of shape (batch, n_features)
            Standardized data.
        mask : Tensor of bool, shape (batch, n_modalities)
            True where a row has a modality; absent modalities are left out
            of the posterior and of the reconstruction term.
        unimodal : bool, default=False
            For ``"poe"``, add each present modality's own ELBO (which
            reconstructs that modality only) to the joint one, so that
            single-modality experts are trained too (MVAE).
        eps : Tensor of shape (n_terms, batch, latent), default=None
            Standard normal reparametrization noise, one draw a posterior
            sampled: ``n_draws`` of them (``1 + n_modalities`` for
            ``"poe"`` with ``unimodal``); None draws it from torch's
            generator.
        u : Tensor of shape (batch,), default=None
            Uniform noise that picks ``"mopoe"``'s mixture component; None
            draws it.

        Returns
        -------
        log_likelihood, kl : Tensor of shape (batch,)
        """
        mu, logvar = self._encode(X)
        if self.aggregation == "poe":
            terms = self.poe_terms if unimodal else self.poe_terms[:1]
            post_mu, post_logvar = products_of_experts(mu, logvar, mask, terms)
            weights = (terms.to(X.dtype) @ mask.T.to(X.dtype) > 0).to(X.dtype)
        elif self.aggregation == "moe":
            post_mu, post_logvar, weights = mu, logvar, equal_shares(mask.T, dim=0)
        else:
            post_mu, post_logvar, weights = self._subset_posteriors(mu, logvar, mask)
        kl = (weights * kl_standard_normal(post_mu, post_logvar)).sum(0)
        if self.aggregation == "mopoe":
            # One mixture component a row, drawn with the mixture weights.
            pick = self._pick(weights, u)
            rows = torch.arange(X.shape[0], device=X.device)
            post_mu, post_logvar = (
                post_mu[pick, rows][None],
                post_logvar[pick, rows][None],
            )
        z = self._sample(post_mu, post_logvar, eps)
        if self.aggregation == "poe":
            return self._poe_log_likelihood(X, mask, z), kl
        if self.aggregation == "mopoe":
            return self._log_likelihood(X, mask, z[0]), kl
        log_likelihood = (weights * self._log_likelihood(X, mask, z)).sum(0)
        return log_likelihood, kl


class NegativeELBO(nn.Module):
    """Training loss of each row: ``-(log-likelihood - beta * kl_weight * KL)``.

    Parameters
    ----------
    beta : float, default=1.0
        Weight of the KL term (β-VAE).

    Attributes
    ----------
    kl_weight : float
        Extra factor on the KL term, 1 unless a warm-up changes it.
    """

    def __init__(self, beta=1.0):
        super().__init__()
        self.beta = beta
        self.kl_weight = 1.0

    def forward(self, terms):
        """Loss of each row, from the ``(log_likelihood, kl)`` of the module."""
        log_likelihood, kl = terms
        return -(log_likelihood - self.beta * self.kl_weight * kl)


def _default_mlp(hidden, dropout):
    def build(in_features, out_features):
        return MLP(in_features, out_features, hidden=hidden, dropout=dropout)

    return build
