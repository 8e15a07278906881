"""Torch layers shared by the deep models: MLPs, grouped encoders, masking."""

import math
from itertools import pairwise

import torch
from torch import nn


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
            layers += [nn.Linear(width, h), activation(), Dropout(dropout)]
            width = h
        layers.append(nn.Linear(width, out_features))
        super().__init__(*layers)


# MKL's single-precision product of an (m, k) and a (k, n) matrix runs up to
# 1.8 times slower when n is narrow (30-76) than the same product computed
# transposed, with n as rows (one core, AVX-512; e.g. 768 x 512 x 47:
# 0.73 ms, transposed 0.45 ms), and as fast once n reaches a few hundred.
_NARROW = 128


def _mm(a, b):
    """Return ``a @ b``, computed transposed when the product is narrow."""
    if b.shape[1] < min(a.shape[0], _NARROW):
        return (b.T @ a.T).T
    return a @ b


def _affine(x, weight, bias):
    """Return ``x @ weight.T + bias``, computed transposed when narrow."""
    if weight.shape[0] < min(x.shape[0], _NARROW):
        return torch.addmm(bias[:, None], weight, x.T).T
    return torch.addmm(bias, x, weight.T)


def _relu_backward_(grad, output):
    """Zero ``grad`` in place where the ReLU ``output`` is 0; return it."""
    return torch.ops.aten.threshold_backward.grad_input(
        grad, output, 0, grad_input=grad
    )


class _MLPFunction(torch.autograd.Function):
    """An MLP's forward and backward passes without dropout (see FusedMLP).

    Arguments: ``x`` (batch, in), then each layer's weight (out, in) and bias.
    The ReLUs run in place, forward and backward, on fresh products; each
    product is computed in the orientation MKL runs fastest (:func:`_mm`).
    """

    @staticmethod
    def forward(ctx, x, *params):
        weights = params[0::2]
        h = x
        inputs = []  # the input of each layer
        for i, (weight, bias) in enumerate(zip(weights, params[1::2], strict=True)):
            inputs.append(h)
            h = _affine(h, weight, bias)
            if i < len(weights) - 1:
                h = h.relu_()
        ctx.save_for_backward(*inputs, *weights)
        return h

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        n = len(ctx.saved_tensors) // 2
        inputs, weights = ctx.saved_tensors[:n], ctx.saved_tensors[n:]
        grads = []  # bias and weight of each layer, last layer first
        for i in reversed(range(n)):
            grads += [grad.sum(0), _mm(grad.T, inputs[i])]
            if i > 0:  # through the ReLU whose output is inputs[i]
                grad = _mm(grad, weights[i])
                grad = _relu_backward_(grad, inputs[i])
            elif ctx.needs_input_grad[0]:
                grad = _mm(grad, weights[0])
            else:
                grad = None
        return grad, *grads[::-1]


class FusedMLP(MLP):
    """An :class:`MLP` whose layers run as one autograd function.

    The same layers, parameters and initialization as :class:`MLP` with
    ReLU activations, computed with fewer passes over the hidden
    activations (the ReLUs in place, forward and backward) and each matrix
    product in the orientation that MKL runs fastest. Training with
    dropout runs layer by layer, as :class:`MLP`.

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
    """

    def __init__(self, in_features, out_features, hidden=(128,), dropout=0.0):
        super().__init__(in_features, out_features, hidden, dropout)
        self.dropout = dropout

    def forward(self, x):
        """Map ``x`` (..., in_features) to (..., out_features)."""
        if self.training and self.dropout:
            return super().forward(x)
        params = [
            p
            for layer in self
            if isinstance(layer, nn.Linear)
            for p in layer.parameters()
        ]
        out = _MLPFunction.apply(x.reshape(-1, x.shape[-1]), *params)
        return out.reshape(*x.shape[:-1], out.shape[-1])


class Dropout(nn.Module):
    """Dropout that draws its random mask several times faster on CPU.

    In training, zeroes each element with probability ``p`` and scales the
    others by ``1 / (1 - p)``; the identity in eval mode, like
    :class:`torch.nn.Dropout`. torch's CPU dropout draws one Bernoulli
    variable an element (about 10 ns); this one cuts four 16-bit lanes out of
    each 64-bit random integer, so ``p`` is rounded to a multiple of
    ``2**-16``. Draws come from torch's generator: seeding torch reproduces
    them. On other devices, torch's own (fused) dropout runs.

    Parameters
    ----------
    p : float, default=0.0
        Probability of zeroing an element, in [0, 1).
    """

    def __init__(self, p=0.0):
        super().__init__()
        self.p = p
        # Drop an element when its uniform 16-bit lane, unsigned, is < threshold.
        self.threshold = round(p * 2**16)

    def extra_repr(self):
        return f"p={self.p}"

    def forward(self, x):
        """Return ``x`` with dropped elements zeroed and the others scaled."""
        if not self.training or self.threshold == 0:
            return x
        if x.device.type != "cpu":
            return nn.functional.dropout(x, self.p)
        n = x.numel()
        lanes = torch.randint(-(2**63), 2**63 - 1, ((n + 3) // 4,), dtype=torch.int64)
        lanes = lanes.view(torch.int16)[:n].view(x.shape).float()
        # Lanes are uniform on [-2**15, 2**15): 1 from threshold - 2**15 up, else 0.
        keep = lanes.sub_(self.threshold - 2**15 - 1).clamp_(0, 1).to(x.dtype)
        return x * keep.mul_(2**16 / (2**16 - self.threshold))


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


def equal_shares(mask, dim=-1):
    """Equal weights of the entries present along ``dim``; none present gives 0.

    Parameters
    ----------
    mask : bool Tensor
        True where an entry (a modality, an expert) is present.
    dim : int, default=-1
        The axis along which the shares sum to 1.

    Returns
    -------
    shares : float32 Tensor of the shape of ``mask``
        ``1 / k`` for each of the ``k`` present entries along ``dim``, 0 for
        the others (all 0 where none is present).
    """
    mask = mask.to(torch.float32)
    return mask / mask.sum(dim, keepdim=True).clamp_min(1.0)


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
                Dropout(dropout),
                GroupedLinear(n_groups, width_in, width_out),
            ]
        super().__init__(*layers)


def build_part(factory, in_features, out_features, what):
    """Call a user's ``factory(in_features, out_features)``; check the module.

    A module instance in place of a factory, a factory that returns no
    module, a module that fails on a batch of ``in_features`` columns or
    that gives another width than ``out_features`` would otherwise surface
    as torch's shape errors, mid-training. The check runs the module once,
    in eval mode, on two rows of zeros (no random number is drawn).

    Parameters
    ----------
    factory : callable
        A class or factory of ``nn.Module``.
    in_features, out_features : int
        The widths it is built for.
    what : str
        What the module is, for the messages (e.g. ``"the encoder of
        modality 1"``).

    Returns
    -------
    module : nn.Module
    """
    if isinstance(factory, nn.Module):
        raise TypeError(
            f"{what} is given as a module instance ({type(factory).__name__}); "
            f"give its class, or a factory f(in_features, out_features) that "
            f"builds one (e.g. functools.partial(MyNet, depth=2)): one is built "
            f"for each modality's widths."
        )
    module = factory(in_features, out_features)
    if not isinstance(module, nn.Module):
        raise TypeError(
            f"{what}: its factory returned {type(module).__name__}, not a "
            f"torch.nn.Module."
        )
    training = module.training
    module.eval()
    try:
        with torch.no_grad():
            width = module(torch.zeros(2, in_features)).shape[-1]
    except Exception as exc:
        raise ValueError(
            f"{what}, built as f(in_features={in_features}, out_features="
            f"{out_features}), fails on a batch of {in_features} columns: {exc}"
        ) from exc
    finally:
        module.train(training)
    if width != out_features:
        raise ValueError(
            f"{what}, built as f(in_features={in_features}, out_features="
            f"{out_features}), gives {width} outputs a row; it must give "
            f"out_features."
        )
    return module


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
            else build_part(
                encoder, len(block), out_features, f"the encoder of modality {m}"
            )
            for m, (block, encoder) in enumerate(zip(blocks, encoders, strict=True))
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
