"""Torch building blocks shared by the deep models (no scikit-learn logic)."""

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
            layers += [nn.Linear(width, h), activation(), nn.Dropout(dropout)]
            width = h
        layers.append(nn.Linear(width, out_features))
        super().__init__(*layers)
