"""Torch building blocks shared by the deep models (no scikit-learn logic)."""

import math
from itertools import combinations, pairwise

import torch
from torch import nn
from torch.nn import functional as F


class MLP(nn.Sequential):
    """A multilayer perceptron: ``[Linear → activation → dropout] × n → Linear``.

    Parameters
    ----------
    in_features : int
        Input width.
    out_features : int
        Output width.
    hidden : sequence of int, default=(128,)
        Widths of the hidden layers; empty for a single linear layer.
    dropout : float, default=0.0
        Dropout probability after each hidden activation.
    activation : type of nn.Module, default=nn.ReLU
        Activation class, instantiated once per hidden layer.
    """

    def __init__(
        self, in_features, out_features, hidden=(128,), dropout=0.0, activation=nn.ReLU
    ):
        layers = []
        width = in_features
        for h in hidden:
            layers += [nn.Linear(width, h), activation(), nn.Dropout(dropout)]
            width = h
        layers.append(nn.Linear(width, out_features))
        super().__init__(*layers)


def masked_softmax(logits, mask):
    """Softmax over the last axis restricted to ``mask``; all-masked rows give 0.

    Parameters
    ----------
    logits : Tensor of shape (..., n)
        Scores.
    mask : bool Tensor of shape (..., n)
        True where an entry takes part.

    Returns
    -------
    weights : Tensor of shape (..., n)
        Non-negative, summing to 1 over the masked entries of each row (0 for
        a row with none), never NaN.
    """
    lowest = torch.finfo(logits.dtype).min
    weights = torch.softmax(logits.masked_fill(~mask, lowest), dim=-1) * mask
    return weights / weights.sum(dim=-1, keepdim=True).clamp_min(1e-12)


class ModalityDropout(nn.Module):
    """Drop whole modalities at random in training (identity in eval mode).

    Each present modality of a row is dropped with probability ``p``; a row
    always keeps at least one of the modalities it had.

    Parameters
    ----------
    p : float, default=0.0
        Probability of dropping a modality.
    """

    def __init__(self, p=0.0):
        super().__init__()
        self.p = p

    def forward(self, mask):
        """Return the mask with dropped modalities set to False."""
        if not self.training or self.p == 0:
            return mask
        draw = torch.rand(mask.shape, device=mask.device).masked_fill(~mask, -1.0)
        # Keep a modality whose draw reaches p, and the present modality with
        # the highest draw: a random one in rows that would lose them all.
        return mask & ((draw >= self.p) | (draw == draw.amax(dim=1, keepdim=True)))


class BlockLinear(nn.Module):
    """One linear layer per block of input columns, computed without padding.

    Maps ``(batch, n_features)`` to ``(n_blocks, batch, out_features)``:
    block ``b`` is the product of its own columns with its own weights. The
    weights of all blocks are rows of one matrix (so the optimizer sees one
    tensor), read by views; the input columns are read by views too when
    every block is a range of consecutive columns, else gathered once.
    Initialized like :class:`torch.nn.Linear`, block by block.

    Parameters
    ----------
    blocks : list of sequence of int
        Column positions of each block in the input.
    out_features : int
        Output width, the same for every block.
    """

    def __init__(self, blocks, out_features):
        super().__init__()
        columns = [torch.as_tensor(list(block), dtype=torch.long) for block in blocks]
        self.widths = [len(c) for c in columns]
        order = torch.cat(columns)
        self.offsets = torch.cumsum(torch.tensor([0, *self.widths[:-1]]), 0).tolist()
        self.consecutive = all(
            torch.equal(c, torch.arange(c[0], c[0] + len(c))) for c in columns
        )
        if self.consecutive:  # read block b at its own first column
            self.starts = [int(c[0]) for c in columns]
            self.register_buffer("order", None)
        else:  # gather the blocks' columns side by side first
            self.starts = self.offsets
            self.register_buffer("order", order, persistent=False)
        self.weight = nn.Parameter(torch.empty(len(order), out_features))
        self.bias = nn.Parameter(torch.empty(len(columns), 1, out_features))
        for b, (offset, width) in enumerate(
            zip(self.offsets, self.widths, strict=True)
        ):
            bound = 1 / math.sqrt(width)
            nn.init.uniform_(self.weight[offset : offset + width], -bound, bound)
            nn.init.uniform_(self.bias[b], -bound, bound)

    def forward(self, x):
        """Map ``x`` (batch, n_features) to (n_blocks, batch, out_features)."""
        if self.order is not None:
            x = x.index_select(1, self.order)
        # One split of the weight (its backward is one concatenation).
        weights = self.weight.split(self.widths)
        products = [
            x.narrow(1, start, width) @ weight
            for start, width, weight in zip(
                self.starts, self.widths, weights, strict=True
            )
        ]
        return torch.stack(products) + self.bias


class GroupedLinear(nn.Module):
    """One linear layer per group, applied to all groups in one batched product.

    Maps ``(n_groups, batch, in_features)`` to ``(n_groups, batch,
    out_features)``. Initialized like :class:`torch.nn.Linear`.

    Parameters
    ----------
    n_groups : int
        Number of groups.
    in_features : int
        Input width of every group.
    out_features : int
        Output width of every group.
    """

    def __init__(self, n_groups, in_features, out_features):
        super().__init__()
        bound = 1 / math.sqrt(in_features)
        self.weight = nn.Parameter(
            torch.empty(n_groups, in_features, out_features).uniform_(-bound, bound)
        )
        self.bias = nn.Parameter(
            torch.empty(n_groups, 1, out_features).uniform_(-bound, bound)
        )

    def forward(self, x):
        """Map ``x`` (n_groups, batch, in) to (n_groups, batch, out)."""
        return torch.baddbmm(self.bias, x, self.weight)


class GroupedMLP(nn.Sequential):
    """One :class:`MLP` per group, all computed together.

    Maps ``(batch, n_features)`` (when ``blocks`` gives each group's columns)
    or ``(n_groups, batch, in_features)`` (when ``blocks`` is the number of
    groups and every group has ``in_features`` inputs) to ``(n_groups, batch,
    out_features)``.

    Parameters
    ----------
    blocks : list of sequence of int, or int
        Column positions of each group's inputs, or the number of groups.
    out_features : int
        Output width of every group.
    hidden : sequence of int, default=(128,)
        Hidden widths.
    dropout : float, default=0.0
        Dropout after each hidden activation.
    in_features : int, default=None
        Input width of every group, when ``blocks`` is an int.
    """

    def __init__(
        self, blocks, out_features, hidden=(128,), dropout=0.0, in_features=None
    ):
        widths = [*hidden, out_features]
        if isinstance(blocks, int):
            n_groups = blocks
            layers = [GroupedLinear(n_groups, in_features, widths[0])]
        else:
            n_groups = len(blocks)
            layers = [BlockLinear(blocks, widths[0])]
        for width_in, width_out in pairwise(widths):
            layers += [
                nn.ReLU(),
                nn.Dropout(dropout),
                GroupedLinear(n_groups, width_in, width_out),
            ]
        super().__init__(*layers)


class ModalityEncoders(nn.ModuleList):
    """One encoder module per modality, given by the user (default :class:`MLP`).

    Parameters
    ----------
    blocks : list of sequence of int
        Column positions of each modality in the input.
    out_features : int
        Output width of every encoder.
    encoders : list of callable or None
        One per modality, called as ``encoder(in_features, out_features)``;
        None gives an :class:`MLP` with ``hidden`` and ``dropout``.
    hidden : sequence of int, default=(128,)
        Hidden widths of the default encoders.
    dropout : float, default=0.0
        Dropout of the default encoders.
    """

    def __init__(self, blocks, out_features, encoders, hidden=(128,), dropout=0.0):
        super().__init__(
            MLP(len(block), out_features, hidden, dropout)
            if encoder is None
            else encoder(len(block), out_features)
            for block, encoder in zip(blocks, encoders, strict=True)
        )
        for m, block in enumerate(blocks):
            self.register_buffer(
                f"columns{m}",
                torch.as_tensor(block, dtype=torch.long),
                persistent=False,
            )

    def forward(self, X):
        """Encode ``X`` (batch, n_features) into (n_modalities, batch, out)."""
        return torch.stack(
            [
                encoder(X[:, getattr(self, f"columns{m}")])
                for m, encoder in enumerate(self)
            ]
        )


def modality_encoders(blocks, out_features, encoders=None, hidden=(128,), dropout=0.0):
    """Return one encoder a modality, mapping X to (n_modalities, batch, out).

    A :class:`GroupedMLP` (all modalities in a few batched products) when no
    encoder is given, else :class:`ModalityEncoders` (the given ones, the
    default :class:`MLP` for the others).

    Parameters
    ----------
    blocks : list of sequence of int
        Column positions of each modality in the input.
    out_features : int
        Output width of every encoder.
    encoders : list of callable or None, default=None
        One factory ``encoder(in_features, out_features)`` or None a
        modality.
    hidden : sequence of int, default=(128,)
        Hidden widths of the default encoders.
    dropout : float, default=0.0
        Dropout of the default encoders.
    """
    if encoders is None or all(encoder is None for encoder in encoders):
        return GroupedMLP(blocks, out_features, hidden, dropout)
    return ModalityEncoders(blocks, out_features, encoders, hidden, dropout)


class AttentionBlock(nn.Module):
    """Pre-norm transformer encoder layer (batch first) with a boolean mask.

    Parameters
    ----------
    d_model : int
        Token width.
    n_heads : int
        Attention heads; must divide ``d_model``.
    dropout : float, default=0.0
        Dropout on the residual branches.
    """

    def __init__(self, d_model, n_heads, dropout=0.0):
        super().__init__()
        self.n_heads = n_heads
        self.norm_attention = nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)
        self.norm_mlp = nn.LayerNorm(d_model)
        self.mlp = MLP(d_model, d_model, hidden=(2 * d_model,))
        self.dropout = nn.Dropout(dropout)

    def forward(self, tokens, allowed, need_weights=False):
        """Update ``tokens`` (batch, length, d_model).

        ``allowed`` (batch, 1, length, length) is True where a query may
        attend to a key; every query must have one. Returns the tokens and,
        when ``need_weights``, the head-averaged attention weights (batch,
        length, length), else None.
        """
        batch, length, width = tokens.shape
        q, k, v = (
            self.qkv(self.norm_attention(tokens))
            .view(batch, length, 3, self.n_heads, width // self.n_heads)
            .permute(2, 0, 3, 1, 4)
        )
        weights = None
        if need_weights:
            scores = q @ k.transpose(-1, -2) / math.sqrt(width // self.n_heads)
            attention = torch.softmax(scores.masked_fill(~allowed, -math.inf), -1)
            out = attention @ v
            weights = attention.mean(1)
        else:
            out = nn.functional.scaled_dot_product_attention(q, k, v, allowed)
        out = out.transpose(1, 2).reshape(batch, length, width)
        tokens = tokens + self.dropout(self.out(out))
        tokens = tokens + self.dropout(self.mlp(self.norm_mlp(tokens)))
        return tokens, weights


FUSIONS = ("concat", "attention", "cross_attention", "co_attention", "gated", "late")


class FusionNet(nn.Module):
    """Per-modality encoders into tokens, a fusion step, and an MLP head.

    Each modality is encoded into ``n_tokens`` tokens of width ``d_model``
    (plus, for the attention fusions, where tokens of all modalities mix, a
    learned modality-type embedding). A missing modality is left out: its
    tokens are zeroed (``"concat"``) or masked out of attention, gates and
    late averages. A learned CLS token joins the tokens of the
    attention fusions as a key every query may attend to, so a query always
    has one (e.g. the tokens of a lone modality in cross-attention).

    Parameters
    ----------
    blocks : list of sequence of int
        Column positions of each modality in the input.
    n_outputs : int
        Output width (classes or targets).
    fusion : {"concat", "attention", "cross_attention", "co_attention", \
"gated", "late"}, default="late"
        How the modality tokens are fused:

        - ``"concat"``: the tokens of all modalities side by side into the head;
        - ``"attention"``: self-attention over all tokens;
        - ``"cross_attention"``: each modality's tokens attend to the other
          modalities' tokens (and the CLS token);
        - ``"co_attention"``: self-attention within each modality, then
          cross-attention between modalities, per layer;
        - ``"gated"``: a softmax gate per row over the modality summaries;
        - ``"late"``: one head per modality, outputs averaged.
    d_model : int, default=32
        Token width.
    n_tokens : int, default=4
        Tokens per modality.
    n_heads : int, default=4
        Attention heads.
    n_layers : int, default=1
        Attention layers (pairs of blocks for ``"co_attention"``).
    dropout : float, default=0.2
        Dropout in the encoders, attention blocks and heads.
    modality_dropout : float, default=0.0
        Probability of dropping a modality of a row in training.
    encoders : list of callable or None, default=None
        One per modality, called as ``encoder(in_features, out_features)``
        and returning a module mapping ``(batch, in_features)`` to
        ``(batch, out_features)``; None (or a None entry) uses :class:`MLP`.
    encoder_hidden : sequence of int, default=(128,)
        Hidden widths of the default encoders.
    head_hidden : sequence of int, default=(64,)
        Hidden widths of the head(s).
    cls_token : bool, default=False
        Read the fused representation of the attention fusions from the CLS
        token's output instead of averaging the present modalities' fused
        tokens. The CLS output of the last block sees that block's input
        tokens only: with ``n_layers=1``, ``"cross_attention"`` then reads
        the same as ``"attention"``.
    """

    def __init__(
        self,
        blocks,
        n_outputs,
        fusion="late",
        d_model=32,
        n_tokens=4,
        n_heads=4,
        n_layers=1,
        dropout=0.2,
        modality_dropout=0.0,
        encoders=None,
        encoder_hidden=(128,),
        head_hidden=(64,),
        cls_token=False,
    ):
        super().__init__()
        n_modalities = len(blocks)
        self.fusion = fusion
        self.n_tokens = n_tokens
        self.d_model = d_model
        self.cls_token = cls_token
        width = n_tokens * d_model
        self.encoders = modality_encoders(
            blocks, width, encoders, encoder_hidden, dropout
        )
        self.modality_dropout = ModalityDropout(modality_dropout)
        if fusion == "concat":
            self.head = MLP(n_modalities * width, n_outputs, head_hidden, dropout)
        elif fusion == "late":
            self.heads = GroupedMLP(
                n_modalities, n_outputs, head_hidden, dropout, in_features=width
            )
        elif fusion == "gated":
            self.gate = MLP(d_model, 1, (d_model,))
            self.head = MLP(d_model, n_outputs, head_hidden, dropout)
        else:
            self.type_embedding = nn.Parameter(
                torch.randn(n_modalities, 1, 1, d_model) * 0.02
            )
            self.cls = nn.Parameter(torch.randn(1, 1, d_model) * 0.02)
            n_blocks = 2 * n_layers if fusion == "co_attention" else n_layers
            self.blocks = nn.ModuleList(
                AttentionBlock(d_model, n_heads, dropout) for _ in range(n_blocks)
            )
            self.norm = nn.LayerNorm(d_model)
            self.head = MLP(d_model, n_outputs, head_hidden, dropout)
            owner = torch.arange(n_modalities).repeat_interleave(n_tokens)
            owner = torch.cat([torch.tensor([-1]), owner])  # the CLS token
            same = owner[:, None] == owner[None, :]
            is_cls = (owner[:, None] < 0) | (owner[None, :] < 0)
            # Which query may attend to which key, before masking.
            structure = {
                "attention": [torch.ones_like(same)],
                "cross_attention": [~same | is_cls],
                "co_attention": [same | is_cls, ~same | is_cls],
            }[fusion] * n_layers
            self.register_buffer("structure", torch.stack(structure), persistent=False)

    def _tokens(self, X, mask):
        """Encode each modality: (n_modalities, batch, n_tokens, d_model)."""
        tokens = self.encoders(X).view(len(mask.T), len(X), self.n_tokens, -1)
        if self.fusion in ("late", "gated"):  # they weigh absent modalities 0
            return tokens
        if self.fusion != "concat":
            tokens = tokens + self.type_embedding
        return tokens * mask.T[:, :, None, None]

    def _attend(self, tokens, mask, need_weights=False):
        """Run the attention blocks; return the readout, weights and key mask."""
        batch = len(mask)
        x = torch.cat(
            [
                self.cls.expand(batch, -1, -1),
                tokens.transpose(0, 1).reshape(batch, -1, self.d_model),
            ],
            dim=1,
        )
        present = torch.cat(
            [mask.new_ones(batch, 1), mask.repeat_interleave(self.n_tokens, dim=1)],
            dim=1,
        )
        weights = None
        for i, block in enumerate(self.blocks):
            allowed = self.structure[i] & present[:, None, None, :]
            last = i == len(self.blocks) - 1
            x, weights = block(x, allowed, need_weights and last)
        x = self.norm(x)
        if self.cls_token:
            return x[:, 0], weights, present
        pooled = (x[:, 1:] * present[:, 1:, None]).sum(1)
        count = present[:, 1:].sum(1, keepdim=True).clamp_min(1)
        return pooled / count, weights, present

    def _gates(self, summary, mask):
        """Softmax gates (batch, n_modalities) from the modality summaries."""
        return masked_softmax(self.gate(summary).squeeze(-1).T, mask)

    def forward(self, X, mask):
        """Return the outputs (batch, n_outputs) from ``X`` and the ``mask``."""
        mask = self.modality_dropout(mask)
        tokens = self._tokens(X, mask)
        if self.fusion == "concat":
            return self.head(tokens.transpose(0, 1).flatten(1))
        if self.fusion == "late":
            outputs = self.heads(tokens.flatten(2))
            share = mask / mask.sum(1, keepdim=True).clamp_min(1)
            return torch.einsum("mbo,bm->bo", outputs, share)
        if self.fusion == "gated":
            summary = tokens.mean(2)
            gates = self._gates(summary, mask)
            return self.head(torch.einsum("mbd,bm->bd", summary, gates))
        return self.head(self._attend(tokens, mask)[0])

    def modality_weights(self, X, mask):
        """Return the share of each modality in each row (batch, n_modalities).

        Attention fusions: the attention the readout (CLS token, or the
        present tokens when ``cls_token=False``) pays to each modality's
        tokens in the last block, heads averaged; ``"gated"``: the gates;
        ``"late"``: the equal shares of the present modalities (also used when
        the readout attends to no modality token). Rows sum to 1 (0 where no
        modality is present); missing modalities get 0.
        """
        if self.fusion == "concat":
            raise ValueError(
                "fusion='concat' has no per-row modality weights; use "
                "'attention', 'cross_attention', 'co_attention', 'gated' or 'late'."
            )
        if self.fusion == "late":
            return mask / mask.sum(1, keepdim=True).clamp_min(1)
        tokens = self._tokens(X, mask)
        if self.fusion == "gated":
            return self._gates(tokens.mean(2), mask)
        _, weights, present = self._attend(tokens, mask, need_weights=True)
        if self.cls_token:
            received = weights[:, 0, 1:]
        else:
            queries = present[:, 1:, None].to(weights.dtype)
            received = (weights[:, 1:, 1:] * queries).sum(1)
        per_modality = received.view(len(X), -1, self.n_tokens).sum(2) * mask
        total = per_modality.sum(1, keepdim=True)
        # A readout that attends to no modality token (cross-attention read
        # from the tokens of a lone modality) is that modality's own tokens.
        equal = mask / mask.sum(1, keepdim=True).clamp_min(1)
        return torch.where(total > 0, per_modality / total.clamp_min(1e-12), equal)


# --- multimodal VAE ---


# Encoders' log-variances and likelihoods' log-scales are clipped to these
# ranges so that exp() stays finite in float32.
LOGVAR_RANGE = (-12.0, 8.0)
LOG_SCALE_MIN = math.log(1e-2)


def kl_standard_normal(mu, logvar):
    """KL of ``N(mu, exp(logvar))`` from ``N(0, I)``, summed on the last axis."""
    return 0.5 * (mu.square() + logvar.exp() - 1.0 - logvar).sum(-1)


def product_of_experts(mu, logvar, mask):
    """Product of Gaussian experts and of the prior expert ``N(0, I)``.

    Computed in precision-weighted form with log-sum-exp over log precisions,
    so that very confident or very vague experts neither overflow nor
    underflow.

    Parameters
    ----------
    mu, logvar : Tensor of shape (..., n_experts, batch, latent)
        The experts' means and log variances.
    mask : Tensor of bool, shape (..., n_experts, batch)
        False where an expert is absent (it then has no weight); a row with
        no expert gets the prior.

    Returns
    -------
    mu, logvar : Tensor of shape (..., batch, latent)
        The joint Gaussian.
    """
    log_precision = torch.where(mask.unsqueeze(-1), -logvar, -math.inf)
    prior = torch.zeros_like(log_precision.narrow(-3, 0, 1))
    log_precision = torch.cat([prior, log_precision], dim=-3)
    joint_logvar = -torch.logsumexp(log_precision, dim=-3)
    weights = torch.softmax(log_precision, dim=-3)
    joint_mu = (weights.narrow(-3, 1, weights.shape[-3] - 1) * mu).sum(-3)
    return joint_mu, joint_logvar


def mixture_weights(mask):
    """Uniform weights ``(n_experts, batch)`` over the experts present in each row."""
    mask = mask.to(torch.float32)
    return mask / mask.sum(0).clamp(min=1.0)


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
        Joint posterior: product of experts (trained with the joint and the
        single-modality ELBOs, as in MVAE), mixture of experts (stratified:
        every present modality's expert is sampled and decodes every
        modality), or mixture of products of experts over the subsets of
        the present modalities (one subset drawn a row).
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
        subsets = [
            [m in subset for m in range(n)]
            for k in range(1, n + 1)
            for subset in combinations(range(n), k)
        ]
        self.register_buffer("subsets", torch.tensor(subsets, dtype=torch.bool))

    def _split(self, X):
        return torch.split(X.index_select(-1, self.columns), self.widths, dim=-1)

    def _encode(self, X):
        """Encode each modality: means, log variances ``(modality, batch, latent)``."""
        out = self.encoders(X)
        mu, logvar = out.chunk(2, dim=-1)
        return mu, logvar.clamp(*LOGVAR_RANGE)

    def _subset_posteriors(self, mu, logvar, mask):
        """MoPoE components ``(subset, batch, latent)``, weights ``(subset, batch)``."""
        in_subset = self.subsets.unsqueeze(-1)  # (subset, modality, 1)
        sub_mu, sub_logvar = product_of_experts(
            mu.unsqueeze(0), logvar.unsqueeze(0), in_subset & mask.T.unsqueeze(0)
        )
        valid = ~(in_subset & ~mask.T.unsqueeze(0)).any(1)  # subset within present
        return sub_mu, sub_logvar, mixture_weights(valid)

    def posterior_mean(self, X, mask):
        """Mean of the joint posterior from the modalities each row has."""
        mu, logvar = self._encode(X)
        if self.aggregation == "poe":
            return product_of_experts(mu, logvar, mask.T)[0]
        if self.aggregation == "moe":
            weights = mixture_weights(mask.T)
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

    @staticmethod
    def _sample(mu, logvar, generator=None):
        eps = torch.randn(mu.shape, generator=generator, device=mu.device)
        return mu + eps * torch.exp(0.5 * logvar)

    def forward(self, X, mask):
        """Per-row reconstruction log-likelihood and KL of the training objective."""
        return self.elbo_terms(X, mask, unimodal=self.aggregation == "poe")

    def elbo(self, X, mask):
        """ELBO of each row (β = 1), with noise from a fixed seed (deterministic)."""
        generator = torch.Generator(device=X.device).manual_seed(0)
        log_likelihood, kl = self.elbo_terms(X, mask, generator=generator)
        return log_likelihood - kl

    def elbo_terms(self, X, mask, unimodal=False, generator=None):
        """Reconstruction log-likelihood and KL, one value a row each.

        Parameters
        ----------
        X : Tensor of shape (batch, n_features)
            Standardized data.
        mask : Tensor of bool, shape (batch, n_modalities)
            True where a row has a modality; absent modalities are left out
            of the posterior and of the reconstruction term.
        unimodal : bool, default=False
            For ``"poe"``, add each present modality's own ELBO to the joint
            one, so that single-modality experts are trained too (MVAE).
        generator : torch.Generator, default=None
            Source of the reparametrization noise.

        Returns
        -------
        log_likelihood, kl : Tensor of shape (batch,)
        """
        mu, logvar = self._encode(X)
        if self.aggregation == "poe":
            experts = mask.T.unsqueeze(0)
            if unimodal:
                eye = torch.eye(len(self.widths), dtype=torch.bool, device=X.device)
                experts = torch.cat([experts, eye.unsqueeze(-1) & experts])
            post_mu, post_logvar = product_of_experts(
                mu.unsqueeze(0), logvar.unsqueeze(0), experts
            )
            weights = experts.any(1).to(X.dtype)  # (term, batch)
        elif self.aggregation == "moe":
            post_mu, post_logvar, weights = mu, logvar, mixture_weights(mask.T)
        else:
            post_mu, post_logvar, weights = self._subset_posteriors(mu, logvar, mask)
        kl = (weights * kl_standard_normal(post_mu, post_logvar)).sum(0)
        if self.aggregation == "mopoe":
            # One mixture component a row, drawn with the mixture weights.
            draw = torch.where(weights.sum(0) > 0, weights, 1.0).T
            pick = torch.multinomial(draw, 1, generator=generator).squeeze(1)
            rows = torch.arange(X.shape[0], device=X.device)
            z = self._sample(post_mu[pick, rows], post_logvar[pick, rows], generator)
            return self._log_likelihood(X, mask, z), kl
        z = self._sample(post_mu, post_logvar, generator)
        log_likelihood = (weights * self._log_likelihood(X, mask, z)).sum(0)
        return log_likelihood, kl


class NegativeELBO(nn.Module):
    """Training loss: ``-(log-likelihood - beta * kl_weight * KL)``, row mean.

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
        """Loss of the ``(log_likelihood, kl)`` rows returned by the module."""
        log_likelihood, kl = terms
        return -(log_likelihood - self.beta * self.kl_weight * kl).mean()


def _default_mlp(hidden, dropout):
    def build(in_features, out_features):
        return MLP(in_features, out_features, hidden=hidden, dropout=dropout)

    return build
