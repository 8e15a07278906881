"""The torch module of the fusion head: modality tokens, the fusions, heads.

Each fusion is one :class:`Fusion` subclass, registered by name in
``FUSIONS``; :class:`FusionNet` encodes the modalities into tokens and hands
them to the fusion its ``fusion`` names.
"""

import math

import torch
from torch import nn

from mmfuse.deep._layers import (
    MLP,
    Dropout,
    GroupedMLP,
    ModalityDropout,
    equal_shares,
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


FUSIONS: dict[str, type["Fusion"]] = {}
"""The fusions by name, in the order they are defined (``Fusion`` subclasses)."""


class Fusion(nn.Module):
    """Base of the fusion steps: modality tokens in, the net's outputs out.

    A fusion is one subclass declared with its name
    (``class MyFusion(Fusion, name="mine")``), which registers it in
    ``FUSIONS``: the estimators' ``fusion`` parameter accepts every
    registered name. Its ``__init__`` takes the arguments below, passes them
    on to this one (which stores them) and builds its parts; its
    :meth:`forward` fuses the tokens; its :meth:`modality_weights`, when it
    has per-row weights, says how much each modality counts in each row.

    Parameters
    ----------
    n_modalities : int
        Number of modalities.
    n_outputs : int
        Output width (classes or targets).
    d_model : int
        Token width.
    n_tokens : int
        Tokens per modality.
    n_heads : int
        Attention heads.
    n_layers : int
        Attention layers.
    dropout : float
        Dropout in the attention blocks and heads.
    head_hidden : sequence of int
        Hidden widths of the head(s).
    cls_token : bool
        Whether the attention fusions read the fused representation from the
        CLS token.
    """

    name: str
    attends = False  # an attention fusion: d_model must divide by n_heads

    def __init_subclass__(cls, *, name=None, **kwargs):
        super().__init_subclass__(**kwargs)
        if name is not None:
            cls.name = name
            FUSIONS[name] = cls

    def __init__(
        self,
        n_modalities,
        n_outputs,
        *,
        d_model,
        n_tokens,
        n_heads,
        n_layers,
        dropout,
        head_hidden,
        cls_token,
    ):
        super().__init__()
        self.n_modalities = n_modalities
        self.n_outputs = n_outputs
        self.d_model = d_model
        self.n_tokens = n_tokens
        self.n_heads = n_heads
        self.n_layers = n_layers
        self.dropout = dropout
        self.head_hidden = head_hidden
        self.cls_token = cls_token

    def forward(self, tokens, mask):
        """Fuse the tokens into the outputs (batch, n_outputs).

        ``tokens`` (n_modalities, batch, n_tokens, d_model) encode every
        modality, absent ones too (their values mean nothing); ``mask``
        (batch, n_modalities) is True where a row has a modality.
        """
        raise NotImplementedError

    def modality_weights(self, tokens, mask):
        """Return the share of each modality in each row (batch, n_modalities).

        Rows sum to 1 (0 where no modality is present); missing modalities
        get 0. Raises ValueError for a fusion without per-row weights.
        """
        weighted = [
            name
            for name, fusion in FUSIONS.items()
            if fusion.modality_weights is not Fusion.modality_weights
        ]
        raise ValueError(
            f"fusion={self.name!r} has no per-row modality weights; use "
            f"{', '.join(map(repr, weighted[:-1]))} or {weighted[-1]!r}."
        )


def _present(tokens, mask):
    """``tokens`` with those of the modalities a row lacks zeroed."""
    return tokens * mask.T[:, :, None, None]


class ConcatFusion(Fusion, name="concat"):
    """Early fusion: the tokens of all modalities side by side into the head.

    The tokens of a missing modality are zeroed. No per-row weights.
    """

    def __init__(self, n_modalities, n_outputs, **settings):
        super().__init__(n_modalities, n_outputs, **settings)
        width = n_modalities * self.n_tokens * self.d_model
        self.head = MLP(width, n_outputs, self.head_hidden, self.dropout)

    def forward(self, tokens, mask):
        """Return the head's outputs on the concatenated tokens."""
        return self.head(_present(tokens, mask).transpose(0, 1).flatten(1))


class _AttentionFusion(Fusion):
    """Attention over the tokens of all modalities and a CLS token.

    Tokens get a learned modality-type embedding; a missing modality's
    tokens are masked out as keys. A learned CLS token joins them as a key
    every query may attend to, so a query always has one (e.g. the tokens of
    a lone modality in cross-attention). A subclass says, in
    :meth:`layer_structure`, which query may attend to which key in the
    blocks of one layer.
    """

    attends = True

    def __init__(self, n_modalities, n_outputs, **settings):
        super().__init__(n_modalities, n_outputs, **settings)
        d_model = self.d_model
        self.type_embedding = nn.Parameter(
            torch.randn(n_modalities, 1, 1, d_model) * 0.02
        )
        self.cls = nn.Parameter(torch.randn(1, 1, d_model) * 0.02)
        owner = torch.arange(n_modalities).repeat_interleave(self.n_tokens)
        owner = torch.cat([torch.tensor([-1]), owner])  # the CLS token
        same = owner[:, None] == owner[None, :]
        is_cls = (owner[:, None] < 0) | (owner[None, :] < 0)
        structure = self.layer_structure(same, is_cls) * self.n_layers
        self.blocks = nn.ModuleList(
            AttentionBlock(d_model, self.n_heads, self.dropout) for _ in structure
        )
        self.norm = nn.LayerNorm(d_model)
        self.head = MLP(d_model, n_outputs, self.head_hidden, self.dropout)
        self.register_buffer("structure", torch.stack(structure), persistent=False)

    @staticmethod
    def layer_structure(same, is_cls):
        """Which query may attend to which key, before masking, a block of a layer.

        ``same`` and ``is_cls`` (length, length) say whether a query and a
        key belong to the same modality and whether either is the CLS token
        (the first). Returns one boolean (length, length) matrix a block.
        """
        raise NotImplementedError

    def _attend(self, tokens, mask, need_weights=False):
        """Run the attention blocks; return the readout, weights and key mask."""
        tokens = _present(tokens + self.type_embedding, mask)
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

    def forward(self, tokens, mask):
        """Return the head's outputs on the attention's readout."""
        return self.head(self._attend(tokens, mask)[0])

    def modality_weights(self, tokens, mask):
        """Return the attention the readout pays to each modality's tokens.

        In the last block, heads averaged; the readout is the CLS token, or
        the present tokens when ``cls_token=False``. A readout that attends
        to no modality token gets equal shares of the present modalities.
        """
        _, weights, present = self._attend(tokens, mask, need_weights=True)
        if self.cls_token:
            received = weights[:, 0, 1:]
        else:
            queries = present[:, 1:, None].to(weights.dtype)
            received = (weights[:, 1:, 1:] * queries).sum(1)
        per_modality = received.view(len(mask), -1, self.n_tokens).sum(2) * mask
        total = per_modality.sum(1, keepdim=True)
        # A readout that attends to no modality token (cross-attention read
        # from the tokens of a lone modality) is that modality's own tokens.
        return torch.where(
            total > 0, per_modality / total.clamp_min(1e-12), equal_shares(mask)
        )


class SelfAttentionFusion(_AttentionFusion, name="attention"):
    """Self-attention over the tokens of all modalities."""

    @staticmethod
    def layer_structure(same, is_cls):
        """Let every query attend to every key."""
        return [torch.ones_like(same)]


class CrossAttentionFusion(_AttentionFusion, name="cross_attention"):
    """Each modality's tokens attend to the other modalities' (and the CLS token).

    With ``cls_token=True`` and one layer, it reads the same as
    ``"attention"``: the CLS output of the last block sees that block's input
    tokens only.
    """

    @staticmethod
    def layer_structure(same, is_cls):
        """Let a query attend to the keys of the other modalities and the CLS."""
        return [~same | is_cls]


class CoAttentionFusion(_AttentionFusion, name="co_attention"):
    """Self-attention within each modality, then across modalities, per layer."""

    @staticmethod
    def layer_structure(same, is_cls):
        """Attend within each modality, then across modalities (CLS in both)."""
        return [same | is_cls, ~same | is_cls]


class GatedFusion(Fusion, name="gated"):
    """A softmax gate per row over the modality summaries (their mean tokens).

    The gates of missing modalities are 0; the gated sum of the summaries
    goes into the head.
    """

    def __init__(self, n_modalities, n_outputs, **settings):
        super().__init__(n_modalities, n_outputs, **settings)
        d_model = self.d_model
        self.gate = MLP(d_model, 1, (d_model,))
        self.head = MLP(d_model, n_outputs, self.head_hidden, self.dropout)

    def _gates(self, summary, mask):
        """Softmax gates (batch, n_modalities) from the modality summaries."""
        return masked_softmax(self.gate(summary).squeeze(-1).T, mask)

    def forward(self, tokens, mask):
        """Return the head's outputs on the gated sum of the summaries."""
        summary = tokens.mean(2)
        gates = self._gates(summary, mask)
        return self.head(torch.einsum("mbd,bm->bd", summary, gates))

    def modality_weights(self, tokens, mask):
        """Return the gates."""
        return self._gates(tokens.mean(2), mask)


class LateFusion(Fusion, name="late"):
    """One head per modality (on its tokens through a ReLU), outputs averaged.

    The average is over the modalities each row has.
    """

    def __init__(self, n_modalities, n_outputs, **settings):
        super().__init__(n_modalities, n_outputs, **settings)
        width = self.n_tokens * self.d_model
        self.heads = GroupedMLP(
            n_modalities, n_outputs, self.head_hidden, self.dropout, in_features=width
        )

    def forward(self, tokens, mask):
        """Return the mean of the present modalities' heads."""
        # The tokens end in a linear layer, as does a head's first: a ReLU
        # between them makes the pair a layer more, not one linear map.
        outputs = self.heads(tokens.flatten(2).relu())
        return torch.einsum("mbo,bm->bo", outputs, equal_shares(mask))

    def modality_weights(self, tokens, mask):
        """Return equal shares of the modalities present."""
        return equal_shares(mask)


class FusionNet(nn.Module):
    """Per-modality encoders into tokens, a fusion step, and an MLP head.

    Each modality is encoded into ``n_tokens`` tokens of width ``d_model``;
    the :class:`Fusion` registered as ``fusion`` combines them into the
    outputs. A missing modality takes no part: its tokens are zeroed or
    masked out of attention, gates and late averages.

    Parameters
    ----------
    blocks : list of sequence of int
        Column positions of each modality in the input.
    n_outputs : int
        Output width (classes or targets).
    fusion : str, default="late"
        The name of a registered fusion (a key of ``FUSIONS``): ``"concat"``,
        ``"attention"``, ``"cross_attention"``, ``"co_attention"``,
        ``"gated"`` or ``"late"``; see each :class:`Fusion` subclass.
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
        self.n_tokens = n_tokens
        self.encoders = modality_encoders(
            blocks, n_tokens * d_model, encoders, encoder_hidden, dropout
        )
        self.modality_dropout = ModalityDropout(modality_dropout)
        self.fusion = FUSIONS[fusion](
            len(blocks),
            n_outputs,
            d_model=d_model,
            n_tokens=n_tokens,
            n_heads=n_heads,
            n_layers=n_layers,
            dropout=dropout,
            head_hidden=head_hidden,
            cls_token=cls_token,
        )

    def _tokens(self, X, mask):
        """Encode each modality: (n_modalities, batch, n_tokens, d_model)."""
        return self.encoders(X).view(len(mask.T), len(X), self.n_tokens, -1)

    def forward(self, X, mask):
        """Return the outputs (batch, n_outputs) from ``X`` and the ``mask``."""
        mask = self.modality_dropout(mask)
        return self.fusion(self._tokens(X, mask), mask)

    def modality_weights(self, X, mask):
        """Return the share of each modality in each row (batch, n_modalities).

        The fusion's :meth:`Fusion.modality_weights`: rows sum to 1 (0 where
        no modality is present); missing modalities get 0.
        """
        return self.fusion.modality_weights(self._tokens(X, mask), mask)
