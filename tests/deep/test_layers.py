"""Tests of the shared torch layers: MLPs, grouped layers, dropout, masking."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from mmfuse.deep._layers import (
    MLP,
    BlockLinear,
    Dropout,
    FusedMLP,
    GroupedLinear,
    GroupedMLP,
    ModalityDropout,
    ModalityEncoders,
    _MLPFunction,
    equal_shares,
    masked_softmax,
    modality_encoders,
)


# -------------------------------------------------------------------- MLP
def test_mlp_is_linear_activation_dropout_then_linear():
    mlp = MLP(5, 3, hidden=(4, 2), dropout=0.25)
    kinds = [type(layer).__name__ for layer in mlp]
    layer = ["Linear", "ReLU", "Dropout"]
    assert kinds == [*layer, *layer, "Linear"]
    sizes = [(mlp[i].in_features, mlp[i].out_features) for i in (0, 3)]
    assert sizes == [(5, 4), (4, 2)]
    assert (mlp[-1].in_features, mlp[-1].out_features) == (2, 3)
    assert mlp[2].p == 0.25
    x = torch.randn(7, 5)
    expected = mlp[-1](torch.relu(mlp[3](torch.relu(mlp[0](x)))))
    torch.testing.assert_close(mlp.eval()(x), expected)
    single = MLP(5, 3, hidden=())
    assert len(single) == 1 and isinstance(single[0], nn.Linear)


# ---------------------------------------------------------------- Dropout
@pytest.mark.parametrize("p", [0.1, 0.5])
def test_dropout_drops_at_rate_p_and_keeps_the_mean(p):
    x = torch.ones(300, 1001)  # odd size: the random lanes are cut to it
    layer = Dropout(p)
    torch.manual_seed(0)
    out = layer(x)
    dropped = (out == 0).double().mean().item()
    assert abs(dropped - p) < 0.005
    assert torch.allclose(out[out != 0], torch.tensor(1 / (1 - p)))
    assert abs(out.mean().item() - 1) < 0.01
    torch.manual_seed(0)
    assert torch.equal(layer(x), out)  # torch's seed reproduces the draws
    assert not torch.equal(layer(x), out)
    assert layer.eval()(x) is x and Dropout(0.0)(x) is x


def test_dropout_rounds_p_to_sixteen_bits_and_scales_by_it():
    layer = Dropout(0.3)
    assert layer.threshold == round(0.3 * 2**16) == 19661
    x = torch.randn(64, 257, dtype=torch.float64)
    out = layer(x)
    kept = out != 0
    # Kept elements are scaled by 1 / (1 - p) with p rounded to 2**-16.
    scale = 2**16 / (2**16 - 19661)
    assert torch.equal(out[kept], x[kept] * scale)
    assert out.dtype == torch.float64 and out.shape == x.shape
    # A p below half a step rounds to 0: the identity, even in training.
    assert Dropout(2**-18)(x) is x


def test_dropout_draws_each_element_independently():
    # Four elements share one 64-bit draw: neighbours must not drop together
    # more often than independent draws would.
    torch.manual_seed(1)
    out = Dropout(0.5)(torch.ones(200_000))
    dropped = (out == 0).double()
    for shift in (1, 2, 3, 4):
        both = (dropped[:-shift] * dropped[shift:]).mean().item()
        assert abs(both - 0.25) < 0.005


def test_dropout_passes_gradients_through_kept_elements():
    x = torch.randn(50, 40, requires_grad=True)
    out = Dropout(0.3)(x)
    out.sum().backward()
    kept = out != 0
    assert torch.allclose(out[kept], x[kept] / 0.7, rtol=1e-4)
    assert torch.allclose(x.grad, kept / 0.7, rtol=1e-4)


# ---------------------------------------------------------------- masking
def test_masked_softmax_is_softmax_over_the_present_entries():
    logits = torch.tensor([[1.0, 2.0, 3.0], [0.5, -1.0, 2.0]])
    mask = torch.tensor([[True, False, True], [True, True, True]])
    weights = masked_softmax(logits, mask)
    torch.testing.assert_close(weights[0, [0, 2]], torch.softmax(logits[0, [0, 2]], 0))
    torch.testing.assert_close(weights[1], torch.softmax(logits[1], 0))
    assert weights[0, 1] == 0


def test_masked_softmax_ignores_masked_logits_and_is_nan_free():
    logits = torch.tensor([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]])
    mask = torch.tensor([[True, False, True], [False, False, False]])
    weights = masked_softmax(logits, mask)
    np.testing.assert_allclose(weights[0, [0, 2]].sum(), 1, rtol=1e-6)
    assert weights[0, 1] == 0 and (weights[1] == 0).all()
    for masked in (math.inf, -math.inf, math.nan, 1e30):
        changed = logits.clone()
        changed[:, 1] = masked
        assert torch.equal(masked_softmax(changed, mask), weights)


def test_equal_shares_along_either_axis():
    mask = torch.tensor([[1, 0, 0], [1, 1, 0], [1, 1, 0]], dtype=torch.bool)
    shares = equal_shares(mask, dim=0)
    expected = torch.tensor([[1 / 3, 0.0, 0.0], [1 / 3, 0.5, 0.0], [1 / 3, 0.5, 0.0]])
    torch.testing.assert_close(shares, expected)
    assert shares.dtype == torch.float32
    torch.testing.assert_close(equal_shares(mask.T), expected.T)  # dim=-1
    rows = equal_shares(torch.tensor([[True, True, False, True], [False] * 4]))
    torch.testing.assert_close(
        rows, torch.tensor([[1 / 3, 1 / 3, 0, 1 / 3], [0.0] * 4])
    )


def test_modality_dropout_module():
    torch.manual_seed(0)
    mask = torch.rand(4000, 3) > 0.2
    mask[0] = False
    layer = ModalityDropout(0.4)
    dropped = layer(mask)
    assert not (dropped & ~mask).any()  # never adds a modality
    had_any = mask.any(1)
    assert dropped[had_any].any(1).all() and not dropped[0].any()
    assert 0.3 < 1 - dropped.sum() / mask.sum() < 0.45
    assert torch.equal(layer.eval()(mask), mask)
    assert ModalityDropout(0.0)(mask) is mask


# -------------------------------------------------------- grouped layers
def test_block_linear_is_one_linear_layer_per_block():
    blocks = [[4, 0, 7], [1, 2], [3, 5, 6, 8]]  # out of order, of three widths
    torch.manual_seed(0)
    layer = BlockLinear(blocks, 3)
    assert [p.shape for p in layer.parameters()] == [(9, 3), (3, 1, 3)]
    X = torch.randn(6, 9)
    out = layer(X)
    assert out.shape == (3, 6, 3)
    for b, block in enumerate(blocks):
        rows = slice(layer.offsets[b], layer.offsets[b] + len(block))
        expected = X[:, block] @ layer.weight[rows] + layer.bias[b]
        torch.testing.assert_close(out[b], expected)


def test_block_linear_reads_consecutive_blocks_as_they_would_be_gathered():
    torch.manual_seed(0)
    consecutive = BlockLinear([range(0, 4), range(4, 9)], 3)
    assert consecutive.order is None
    # The same blocks at shuffled positions of a permuted X: gathered.
    permutation = torch.randperm(9)
    position = torch.argsort(permutation)  # where column c of X now stands
    gathered = BlockLinear([position[:4].tolist(), position[4:].tolist()], 3)
    assert gathered.order is not None
    gathered.load_state_dict(consecutive.state_dict())
    X = torch.randn(5, 9)
    torch.testing.assert_close(gathered(X[:, permutation]), consecutive(X))


def test_block_linear_initializes_each_block_like_torch_linear():
    torch.manual_seed(0)
    layer = BlockLinear([range(0, 4), range(4, 404)], 50)
    for b, (offset, width) in enumerate(zip(layer.offsets, layer.widths, strict=True)):
        bound = 1 / math.sqrt(width)
        weights = layer.weight[offset : offset + width]
        assert weights.abs().max() <= bound and weights.abs().max() > 0.9 * bound
        assert layer.bias[b].abs().max() <= bound


def test_block_linear_gradients_stay_in_their_block():
    layer = BlockLinear([[0, 1], [2, 3, 4]], 2)
    layer(torch.randn(3, 5))[0].sum().backward()
    assert (layer.weight.grad[2:] == 0).all() and (layer.bias.grad[1] == 0).all()
    assert (layer.weight.grad[:2] != 0).any()


def test_grouped_linear_is_one_linear_layer_per_group():
    torch.manual_seed(0)
    layer = GroupedLinear(3, 4, 2)
    bound = 1 / math.sqrt(4)
    assert layer.weight.abs().max() <= bound and layer.bias.abs().max() <= bound
    x = torch.randn(3, 5, 4)
    expected = torch.stack([x[g] @ layer.weight[g] + layer.bias[g] for g in range(3)])
    torch.testing.assert_close(layer(x), expected)


def test_grouped_mlp_is_one_mlp_per_block():
    # Blocks out of order, not consecutive, of different widths.
    blocks = [[4, 0, 7], [1, 2], [3, 5, 6, 8]]
    torch.manual_seed(0)
    grouped = GroupedMLP(blocks, 3, hidden=(5,)).eval()
    X = torch.randn(6, 9)
    first, _, _, second = grouped
    expected = []
    for b, block in enumerate(blocks):
        rows = slice(first.offsets[b], first.offsets[b] + len(block))
        hidden = torch.relu(X[:, block] @ first.weight[rows] + first.bias[b])
        expected.append(hidden @ second.weight[b] + second.bias[b])
    torch.testing.assert_close(grouped(X), torch.stack(expected))
    consecutive = GroupedMLP([range(0, 4), range(4, 9)], 3, hidden=())
    assert consecutive[0].order is None and grouped[0].order is not None


def test_grouped_mlp_of_groups_keeps_them_apart():
    torch.manual_seed(0)
    grouped = GroupedMLP(3, 2, hidden=(4, 4), in_features=5).eval()
    assert isinstance(grouped[0], GroupedLinear)
    x = torch.randn(3, 6, 5)
    out = grouped(x)
    assert out.shape == (3, 6, 2)
    changed = x.clone()
    changed[1] = torch.randn(6, 5)
    again = grouped(changed)
    assert torch.equal(again[[0, 2]], out[[0, 2]])
    assert not torch.equal(again[1], out[1])


def test_modality_encoders_take_given_encoders_and_default_mlps():
    blocks = [[0, 1], [2, 3, 4], [5]]
    assert isinstance(modality_encoders(blocks, 4), GroupedMLP)
    assert isinstance(modality_encoders(blocks, 4, [None] * 3), GroupedMLP)
    torch.manual_seed(0)
    encoders = modality_encoders(blocks, 4, [None, nn.Linear, None], hidden=(3,))
    assert isinstance(encoders, ModalityEncoders)
    assert [type(e).__name__ for e in encoders] == ["MLP", "Linear", "MLP"]
    assert encoders[1].in_features == 3 and encoders[0][0].out_features == 3
    X = torch.randn(7, 6)
    out = encoders.eval()(X)
    assert out.shape == (3, 7, 4)
    for m, block in enumerate(blocks):
        torch.testing.assert_close(out[m], encoders[m](X[:, block]))


# -------------------------------------------------------------- FusedMLP
DEVICES = [
    "cpu",
    pytest.param(
        "cuda",
        marks=[
            pytest.mark.gpu,
            pytest.mark.skipif(
                not torch.cuda.is_available(), reason="needs a CUDA device"
            ),
        ],
    ),
]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(
    ("in_features", "out_features", "hidden", "rows"),
    [
        (30, 47, (512,), 200),  # narrow output: products computed transposed
        (30, 240, (512,), 200),  # wide output
        (5, 3, (6, 200), 7),  # narrow hidden layer, two hidden layers
        (4, 2, (), 3),  # one linear layer
    ],
)
def test_fused_mlp_is_the_mlp_forward_and_backward(
    in_features, out_features, hidden, rows, device
):
    torch.manual_seed(0)
    mlp = MLP(in_features, out_features, hidden).to(device)
    torch.manual_seed(0)
    fused = FusedMLP(in_features, out_features, hidden).to(device)
    for a, b in zip(mlp.parameters(), fused.parameters(), strict=True):
        assert torch.equal(a, b)  # the same initialization
    x = torch.randn(2, rows, in_features, device=device, requires_grad=True)
    target = torch.randn(2, rows, out_features, device=device)
    outputs, grads = [], []
    for net in (mlp, fused):
        x.grad = None
        out = net(x)
        (out * target).sum().backward()
        outputs.append(out)
        grads.append([x.grad, *(p.grad for p in net.parameters())])
    assert outputs[1].shape == (2, rows, out_features)
    torch.testing.assert_close(outputs[1], outputs[0])
    for expected, actual in zip(*grads, strict=True):
        torch.testing.assert_close(actual, expected)


@pytest.mark.parametrize("device", DEVICES)
def test_fused_mlp_function_gradients_are_exact(device):
    # Double precision, every product orientation: narrow and wide layers.
    torch.manual_seed(0)
    widths = [4, 6, 200, 3]
    given = {"dtype": torch.double, "device": device, "requires_grad": True}
    x = torch.randn(7, 4, **given)
    params = []
    for width_in, width_out in zip(widths, widths[1:], strict=False):
        params += [
            torch.randn(width_out, width_in, **given),
            torch.randn(width_out, **given),
        ]
    assert torch.autograd.gradcheck(_MLPFunction.apply, (x, *params))


def test_fused_mlp_with_dropout_trains_as_the_mlp():
    torch.manual_seed(0)
    mlp = MLP(3, 2, (8,), dropout=0.5)
    torch.manual_seed(0)
    fused = FusedMLP(3, 2, (8,), dropout=0.5)
    x = torch.randn(10, 3)
    torch.manual_seed(1)
    expected = mlp(x)
    torch.manual_seed(1)
    torch.testing.assert_close(fused(x), expected)
    fused.eval()  # no dropout in eval mode: the fused pass
    torch.testing.assert_close(fused(x), mlp.eval()(x))
