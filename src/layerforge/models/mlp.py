"""Feedforward network (MLP): hidden layers of ``activation(Wx + b)``, then a linear head."""

from __future__ import annotations

import torch
from torch import nn

from ..nn import activations
from ..nn.init import init_linear


class DenseBlock(nn.Module):
    """Linear -> optional norm -> activation -> optional dropout."""

    def __init__(self, in_features: int, out_features: int, activation: str, norm: str, dropout: float):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)
        if norm == "batch":
            self.norm = nn.BatchNorm1d(out_features)
        elif norm == "layer":
            self.norm = nn.LayerNorm(out_features)
        else:
            self.norm = nn.Identity()
        self.activation = activations.get(activation)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, in) -> (B, out)
        return self.dropout(self.activation(self.norm(self.linear(x))))


class MLP(nn.Module):
    """A stack of dense blocks and a linear output layer.

    Args:
        input_size: features per row.
        hidden_sizes: width of each hidden layer, e.g. ``[128, 64]``.
        output_size: classes (logits) or regression targets.
        activation: a name from ``layerforge.nn.activations.ACTIVATIONS``.
        dropout: dropout probability after each hidden layer.
        norm: 'none', 'batch' or 'layer' normalisation before each activation.
        init: a name from ``layerforge.nn.init.INITS``.

    Example:
        >>> model = MLP(64, [128, 64], 10)
        >>> model(torch.zeros(2, 64)).shape
        torch.Size([2, 10])
    """

    def __init__(
        self,
        input_size: int,
        hidden_sizes: list[int],
        output_size: int,
        *,
        activation: str = "relu",
        dropout: float = 0.0,
        norm: str = "none",
        init: str = "kaiming",
    ):
        super().__init__()
        sizes = [input_size, *hidden_sizes]
        self.blocks = nn.Sequential(
            *(DenseBlock(a, b, activation, norm, dropout) for a, b in zip(sizes, sizes[1:]))
        )
        self.head = nn.Linear(sizes[-1], output_size)
        for block in self.blocks:
            init_linear(block.linear, init, activation)
        init_linear(self.head, "xavier" if init != "default" else "default", "identity")

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.blocks(x.flatten(1)))  # (B, F) or (B, C, *S) -> (B, output_size)


def build(model_spec, inputs: dict, output_size: int) -> MLP:
    """Build an MLP from the model section of a spec (sequences and images are flattened)."""
    from . import flat_size

    return MLP(
        flat_size(inputs),
        list(model_spec.layers),
        output_size,
        activation=model_spec.activation,
        dropout=model_spec.dropout,
        norm=model_spec.norm,
        init=model_spec.init,
    )
