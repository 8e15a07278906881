"""The torch module of the multimodal VAE: posteriors, likelihoods, ELBO."""

import math
from itertools import combinations

import torch
from torch import nn
from torch.nn import functional as F

from mmfuse.deep._layers import (
    FusedMLP,
    build_part,
    equal_shares,
    modality_encoders,
)

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


class _GaussianLogProb(torch.autograd.Function):
    """``log N(x | output, exp(log_scale)**2)`` summed over the last axis.

    Arguments ``output`` (..., width), ``x`` broadcastable to it, and
    ``log_scale`` (width,). Three passes over the elements forward and three
    backward (autograd's composition of the same terms takes six backward):
    the standardized residual ``z`` is kept, and the terms without it
    (``log_scale`` and the constant) are summed over the features once, not
    a row.
    """

    @staticmethod
    def forward(ctx, output, x, log_scale):
        inverse_scale = torch.exp(-log_scale)
        z = (output - x).mul_(inverse_scale)
        ctx.save_for_backward(z, inverse_scale)
        ctx.shapes = output.shape, x.shape
        constant = log_scale.sum() + 0.5 * math.log(2 * math.pi) * len(log_scale)
        return -0.5 * torch.linalg.vecdot(z, z) - constant

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        z, inverse_scale = ctx.saved_tensors
        grad_z = z * grad.unsqueeze(-1).neg()  # d/dz of -z**2 / 2, times grad
        # d/dlog_scale: z**2 - 1 a feature, times grad, over the rows
        grad_log_scale = (grad_z * z).flatten(0, -2).sum(0).neg() - grad.sum()
        grad_output = grad_z.mul_(inverse_scale)
        output_shape, x_shape = ctx.shapes
        grad_x = None
        if ctx.needs_input_grad[1]:
            grad_x = grad_output.neg().sum_to_size(x_shape)
        return grad_output.sum_to_size(output_shape), grad_x, grad_log_scale


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
        return _GaussianLogProb.apply(output, x, self._log_scale())

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
        constant = log_scale.sum() + math.log(2) * len(log_scale)
        return -((output - x).abs() @ torch.exp(-log_scale)) - constant


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
    ``forward`` returns the per-row terms of the training objective (see
    :func:`evidence_bound`); the other methods serve inference.

    With ``private_dim > 0`` each modality also has a private latent ``w_m``
    beside the shared ``z`` (MMVAE+ [1]_): its encoder gives ``q(z | x_m)``
    and ``q(w_m | x_m)``, its decoder reads ``(z, w_m)``, and the prior of
    every latent is ``N(0, I)``. A shared sample drawn from a posterior
    component decodes the modalities of that component with their own
    private samples, and the other modalities with private samples from
    their prior (the auxiliary prior of MMVAE+, here the prior itself, so
    that the bound stays exact): cross-modal generation must then carry
    what is shared through ``z``.

    Parameters
    ----------
    blocks : list of array-like of int
        Column positions of each modality.
    latent_dim : int, default=20
        Size of the shared latent space.
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
        Encoders output ``2 * (latent_dim + private_dim)`` values (means,
        then log variances, shared before private); decoders take
        ``latent_dim + private_dim`` inputs. With no encoder given, the
        default encoders are one :class:`GroupedMLP` (the MLP head's), else
        :class:`ModalityEncoders`; the default decoders are
        :class:`FusedMLP` (an :class:`MLP` computed by one autograd
        function).
    dropout : float, default=0.0
        Dropout of the default MLPs.
    private_dim : int, default=0
        Size of each modality's private latent; 0 for none.
    n_importance_samples : int, default=1
        Samples a posterior component of the training objective: 1 for the
        ELBO (with analytic KL terms), more for the importance-weighted
        bound (IWAE [2]_).

    References
    ----------
    .. [1] Palumbo, E., Daunhawer, I. and Vogt, J. "MMVAE+: enhancing the
       generative quality of multimodal VAEs without compromises", ICLR 2023.
    .. [2] Burda, Y., Grosse, R. and Salakhutdinov, R. "Importance weighted
       autoencoders", ICLR 2016.
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
        private_dim=0,
        n_importance_samples=1,
    ):
        super().__init__()
        n = len(blocks)
        self.widths = [len(block) for block in blocks]
        self.aggregation = aggregation
        self.latent_dim, self.private_dim = latent_dim, private_dim
        self.n_importance_samples = n_importance_samples
        hidden = tuple(hidden)
        self.register_buffer(
            "columns", torch.as_tensor([int(c) for block in blocks for c in block])
        )
        self.encoders = modality_encoders(
            blocks, 2 * (latent_dim + private_dim), encoders, hidden, dropout
        )
        self.decoders = nn.ModuleList(
            _default_mlp(hidden[::-1], dropout)(latent_dim + private_dim, w)
            if f is None
            else build_part(
                f, latent_dim + private_dim, w, f"the decoder of modality {m}"
            )
            for m, (w, f) in enumerate(
                zip(self.widths, decoders or [None] * n, strict=True)
            )
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
        # The modalities of each posterior component: for "poe" all of them
        # (the joint posterior), then each alone (its single-modality
        # terms); for "moe" each expert; for "mopoe" every non-empty subset.
        eye = torch.eye(n, dtype=torch.bool)
        self.register_buffer("poe_terms", torch.cat([torch.ones(1, n).bool(), eye]))
        self.register_buffer("experts", eye)
        subsets = [
            [m in subset for m in range(n)]
            for k in range(1, n + 1)
            for subset in combinations(range(n), k)
        ]
        self.register_buffer("subsets", torch.tensor(subsets, dtype=torch.bool))
        # Posterior components sampled a row of the ELBO without
        # single-modality terms: one a present expert for "moe", else one.
        self.n_draws = n if aggregation == "moe" else 1

    def _split(self, X):
        return torch.split(X.index_select(-1, self.columns), self.widths, dim=-1)

    def _encode(self, X):
        """Encode each modality: means, log variances ``(modality, batch, latent)``.

        The last axis holds the shared latent, then the private one.
        """
        out = self.encoders(X)
        mu, logvar = out.chunk(2, dim=-1)
        return mu, logvar.clamp(*LOGVAR_RANGE)

    def _subset_posteriors(self, mu, logvar, mask):
        """MoPoE components ``(subset, batch, latent)``, weights ``(subset, batch)``."""
        sub_mu, sub_logvar = products_of_experts(mu, logvar, mask, self.subsets)
        outside = self.subsets.to(mu.dtype) @ (~mask).T.to(mu.dtype)
        return sub_mu, sub_logvar, equal_shares(outside == 0, dim=0)

    def _components(self, mu, logvar, mask, unimodal=False):
        """Return the shared posterior's components, weights and modalities.

        Returns the means and log variances ``(component, batch, latent_dim)``,
        the weights ``(component, batch)`` and the modalities of each
        component ``(component, n_modalities)``.
        """
        mu, logvar = mu[..., : self.latent_dim], logvar[..., : self.latent_dim]
        if self.aggregation == "poe":
            members = self.poe_terms if unimodal else self.poe_terms[:1]
            post_mu, post_logvar = products_of_experts(mu, logvar, mask, members)
            weights = (members.to(mu.dtype) @ mask.T.to(mu.dtype) > 0).to(mu.dtype)
            return post_mu, post_logvar, weights, members
        if self.aggregation == "moe":
            return mu, logvar, equal_shares(mask.T, dim=0), self.experts
        return (*self._subset_posteriors(mu, logvar, mask), self.subsets)

    def posterior_mean(self, X, mask):
        """Mean of the joint posterior, then of each modality's private latent.

        Shape ``(batch, latent_dim + n_modalities * private_dim)``; the
        private mean of a missing modality is its prior's, 0.
        """
        mu, logvar = self._encode(X)
        post_mu, _, weights, _ = self._components(mu, logvar, mask)
        if self.aggregation == "poe":
            shared = post_mu[0]
        else:
            shared = (weights.unsqueeze(-1) * post_mu).sum(0)
        private = (mu[..., self.latent_dim :] * mask.T.unsqueeze(-1)).transpose(0, 1)
        return torch.cat([shared, private.flatten(1)], dim=-1)

    def _decoded(self, m, z, w):
        """Run decoder ``m`` on shared ``z`` and private ``w`` (..., latent)."""
        return self.decoders[m](torch.cat([z, w], dim=-1) if self.private_dim else z)

    def decode(self, z):
        """Decode full latent points into the mean of every modality, side by side.

        ``z`` is ``(batch, latent_dim + n_modalities * private_dim)``: the
        shared latent, then each modality's private one.
        """
        shared, private = z[:, : self.latent_dim], z[:, self.latent_dim :]
        private = private.unflatten(-1, (len(self.widths), -1))
        return torch.cat(
            [
                lik.mean(self._decoded(m, shared, private[:, m]))
                for m, lik in enumerate(self.likelihoods)
            ],
            dim=-1,
        )

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
        """Per-row terms of the training objective (see :func:`evidence_bound`)."""
        return self.elbo_terms(
            X,
            mask,
            unimodal=self.aggregation == "poe",
            n_samples=self.n_importance_samples,
        )

    def noise_shapes(self, n_samples=1):
        """Shapes of a row's noise for :meth:`elbo`, by argument name.

        ``eps`` (shared), ``eps_own`` (each modality's private latent) and
        ``eps_prior`` (private latents drawn from the prior), without the
        batch axis; the private ones only with ``private_dim > 0``.
        """
        k, draws, n = n_samples, self.n_draws, len(self.widths)
        shapes = {"eps": (k, draws, self.latent_dim)}
        if self.private_dim:
            shapes["eps_own"] = (k, n, self.private_dim)
            shapes["eps_prior"] = (k, draws, n, self.private_dim)
        return shapes

    def elbo(self, X, mask, eps, u, eps_own=None, eps_prior=None):
        """Evidence bound of each row (β = 1) with the given noise.

        The noise is given per row, batch axis first, in the shapes of
        :meth:`noise_shapes` (its first axis, the number of samples, picks
        the ELBO for 1 and the importance-weighted bound above); ``u``
        (batch,) is uniform. So the bound of a row does not depend on the
        batch it is computed in.
        """

        def batch_second(noise):
            return None if noise is None else noise.movedim(0, -2)

        terms = self.elbo_terms(
            X,
            mask,
            n_samples=eps.shape[1],
            eps=batch_second(eps),
            u=u,
            eps_own=batch_second(eps_own),
            eps_prior=batch_second(eps_prior),
        )
        return evidence_bound(terms)

    def elbo_terms(
        self,
        X,
        mask,
        unimodal=False,
        n_samples=1,
        eps=None,
        u=None,
        eps_own=None,
        eps_prior=None,
    ):
        """Reconstruction log-likelihood and KL terms, one value a row each.

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
        n_samples : int, default=1
            Samples a posterior component: 1 for the ELBO with analytic KL
            terms, more for the importance-weighted bound.
        eps : Tensor of shape (n_samples, n_terms, batch, latent_dim), default=None
            Standard normal noise of the shared latent, one draw a posterior
            component sampled: ``n_draws`` of them (``1 + n_modalities``
            for ``"poe"`` with ``unimodal``); None draws it from torch's
            generator.
        u : Tensor of shape (batch,), default=None
            Uniform noise that picks ``"mopoe"``'s mixture component; None
            draws it.
        eps_own : Tensor, default=None
            Noise of each modality's private posterior, of shape
            (n_samples, n_modalities, batch, private_dim); None draws it.
        eps_prior : Tensor, default=None
            Private latents drawn from their prior (the standard normal), of
            shape (n_samples, n_terms, n_modalities, batch, private_dim); None
            draws them.

        Returns
        -------
        terms : tuple of Tensor
            With one sample, the log-likelihood and KL of each row, shape
            (batch,); with more, the log-likelihood and ``log q - log p``
            of each sample and component ``(n_samples, n_terms, batch)`` and
            the components' weights ``(n_terms, batch)``: see
            :func:`evidence_bound`.
        """
        mu, logvar = self._encode(X)
        post_mu, post_logvar, weights, members = self._components(
            mu, logvar, mask, unimodal
        )
        # The modalities that decode a component's shared sample with their
        # own private sample (the others draw theirs from the prior), and
        # those it reconstructs: every present one, its members for "poe".
        own = members.unsqueeze(1) & mask  # (component, batch, modality)
        reconstructed = own if self.aggregation == "poe" else mask.expand_as(own)
        if self.private_dim:
            w_mu, w_logvar = mu[..., self.latent_dim :], logvar[..., self.latent_dim :]
        # One sample: the ELBO with its analytic KL; more: the importance-
        # weighted bound, which needs log q - log p of each sample instead.
        importance = n_samples > 1
        if not importance:
            kl = kl_standard_normal(post_mu, post_logvar)
            if self.private_dim:
                kl = kl + (own * kl_standard_normal(w_mu, w_logvar).T).sum(-1)
            kl = (weights * kl).sum(0)
        if self.aggregation == "mopoe":
            # One mixture component a row, drawn with the mixture weights.
            pick = self._pick(weights, u)
            rows = torch.arange(X.shape[0], device=X.device)
            post_mu, post_logvar = (
                post_mu[pick, rows][None],
                post_logvar[pick, rows][None],
            )
            own, reconstructed = own[pick, rows][None], mask[None]
            weights = torch.ones_like(weights[:1])
        if eps is None:
            eps = torch.randn((n_samples, *post_mu.shape), device=X.device)
        z = post_mu + eps * torch.exp(0.5 * post_logvar)
        if importance:
            # log q(z) - log p(z) of each sample, for the importance weights
            log_ratio = 0.5 * (z.square() - eps.square() - post_logvar).sum(-1)
        if self.private_dim:
            if eps_own is None:
                eps_own = torch.randn((n_samples, *w_mu.shape), device=X.device)
            if eps_prior is None:
                shape = (n_samples, len(post_mu), *w_mu.shape)
                eps_prior = torch.randn(shape, device=X.device)
            w_own = w_mu + eps_own * torch.exp(0.5 * w_logvar)
            # (component, modality, batch): whose private sample is its own
            own = own.transpose(1, 2)
            if importance:
                ratio = 0.5 * (w_own.square() - eps_own.square() - w_logvar).sum(-1)
                log_ratio = log_ratio + (own * ratio.unsqueeze(1)).sum(2)
            # (sample, component, modality, batch, private_dim)
            w = torch.where(own.unsqueeze(-1), w_own.unsqueeze(1), eps_prior)
        log_likelihood = 0.0
        for m, (xm, lik) in enumerate(
            zip(self._split(X), self.likelihoods, strict=True)
        ):
            output = self._decoded(m, z, w[:, :, m] if self.private_dim else None)
            log_likelihood = (
                log_likelihood + lik.log_prob(xm, output) * (reconstructed[..., m])
            )
        if importance:
            return log_likelihood, log_ratio, weights
        return (weights * log_likelihood[0]).sum(0), kl


def evidence_bound(terms, kl_factor=1.0):
    """Evidence lower bound of each row from the module's terms.

    Parameters
    ----------
    terms : tuple of Tensor
        ``(log_likelihood, kl)`` of each row: the ELBO
        ``log_likelihood - kl_factor * kl``; or ``(log_likelihood,
        log_ratio, weights)`` of each sample, component and row with the
        components' weights: the importance-weighted bound of each
        component, ``log mean_k exp(log_likelihood_k - kl_factor *
        log_ratio_k)``, weighted by ``weights`` and summed.
    kl_factor : float, default=1.0
        Weight of the KL term (``beta``; 1 for a bound of the evidence).

    Returns
    -------
    bound : Tensor of shape (batch,)
    """
    if len(terms) == 2:
        log_likelihood, kl = terms
        return log_likelihood - kl_factor * kl
    log_likelihood, log_ratio, weights = terms
    log_weights = log_likelihood - kl_factor * log_ratio
    bound = torch.logsumexp(log_weights, 0) - math.log(len(log_weights))
    return (weights * bound).sum(0)


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
        """Loss of each row, from the module's terms (see :func:`evidence_bound`)."""
        return -evidence_bound(terms, self.beta * self.kl_weight)


def _default_mlp(hidden, dropout):
    def build(in_features, out_features):
        return FusedMLP(in_features, out_features, hidden=hidden, dropout=dropout)

    return build
