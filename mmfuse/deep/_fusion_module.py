"""The torch module of the fusion head: modality tokens, attention, gates, heads."""

import math

import torch
from torch import nn

from mmfuse.deep._layers import (
    MLP,
    Dropout,
    GroupedMLP,
    ModalityDropout,
    masked_softmax,
    modality_encoders,
)


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
        self.dropout = Dropout(dropout)

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
        - ``"late"``: one head per modality (on its tokens through a ReLU),
          outputs averaged.
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
            # The tokens end in a linear layer, as does a head's first: a ReLU
            # between them makes the pair a layer more, not one linear map.
            outputs = self.heads(tokens.flatten(2).relu())
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
