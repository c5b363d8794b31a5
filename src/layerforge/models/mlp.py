"""Feedforward network (MLP): hidden layers of ``activation(Wx + b)``, then a linear head."""

from __future__ import annotations

import torch
from torch import nn

from ..nn import activations
from ..nn.init import init_linear
from ..nn.layers import CodeEmbeddings
from .configs import MLPConfig
from .inputs import Inputs
from .protocol import Network


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
        # an Identity is not called: a module call costs about as much as a small layer's work
        x = self.linear(x)
        if not isinstance(self.norm, nn.Identity):
            x = self.norm(x)
        x = self.activation(x)
        return x if isinstance(self.dropout, nn.Identity) else self.dropout(x)


class MLP(Network):
    """A stack of dense blocks and a linear output layer; sequences and images are flattened.

    Args:
        inputs: what one row holds (its numbers are flattened).
        output_size: classes (logits) or regression targets.
        layers, activation, dropout, norm, init: see ``MLPConfig`` (the spec's ``model`` keys).

    Example:
        >>> model = MLP(Inputs.table(64), 10, **MLPConfig(layers=[128, 64]).arguments())
        >>> model(torch.zeros(2, 64)).shape
        torch.Size([2, 10])
    """

    def __init__(self, inputs: Inputs, output_size: int, *, layers: list[int], activation: str, dropout: float,
                 norm: str, init: str, numbers: str):
        super().__init__(inputs)
        periodic = list(inputs.numbers or ()) if numbers == "periodic" else []
        self.embed = CodeEmbeddings(inputs.flat_size, inputs.codes, periodic) if inputs.codes or periodic else None
        sizes = [self.embed.out_features if self.embed is not None else inputs.flat_size, *layers]
        self.blocks = nn.Sequential(
            *(DenseBlock(a, b, activation, norm, dropout) for a, b in zip(sizes, sizes[1:]))
        )
        self.head = nn.Linear(sizes[-1], output_size)
        for block in self.blocks:
            init_linear(block.linear, init, activation)
        init_linear(self.head, "xavier" if init != "default" else "default", "identity")

    def features(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        x = x.flatten(1)  # (B, F) or (B, C, *S) -> (B, F)
        if self.embed is not None:
            x = self.embed(x)  # category codes through their embeddings
        return self.blocks(x)  # (B, hidden)

    @property
    def output_layer(self) -> nn.Linear:
        return self.head

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.features(x))  # (B, output_size)


def build(config: MLPConfig, inputs: Inputs, output_size: int, num_classes: int = 0) -> MLP:
    return MLP(inputs, output_size, **config.arguments())
