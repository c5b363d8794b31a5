"""FT-Transformer (Gorishniy et al., 2021): a Transformer over a table's columns, one token each."""

from __future__ import annotations

import torch
from torch import nn

from ..nn.layers import PeriodicNumbers, dense_head
from .configs import FTTransformerConfig
from .inputs import Inputs
from .protocol import DenseHeaded


class ColumnTokens(nn.Module):
    """One token per input column of a table row: a number ``x * w + b`` (one weight and bias per
    column, all at once), a wider block (one-hots, a date's parts, words, a vector) through its
    own linear map, a category code through an embedding.

    Args:
        columns: (first position, width, codes) of each column (``Inputs.columns``).
        d_model: the token width.
    """

    def __init__(self, columns: list[tuple[int, int, int]], d_model: int, periodic: list[int] = ()):
        super().__init__()
        waves = {first for first, width, codes in columns if width == 1 and not codes and first in set(periodic)}
        self.periodic = PeriodicNumbers(sorted(waves), size=d_model) if waves else None
        scalars = [first for first, width, codes in columns if width == 1 and not codes and first not in waves]
        self.register_buffer("scalars", torch.tensor(scalars, dtype=torch.long), persistent=False)
        self.weight = nn.Parameter(torch.randn(len(scalars), d_model) / d_model ** 0.5)
        self.bias = nn.Parameter(torch.randn(len(scalars), d_model) / d_model ** 0.5)
        self.blocks = [(first, width) for first, width, codes in columns if width > 1 and not codes]
        self.block_maps = nn.ModuleList(nn.Linear(width, d_model) for _, width in self.blocks)
        self.codes = [(first, codes - 1) for first, _, codes in columns if codes]
        self.embeddings = nn.ModuleList(nn.Embedding(limit + 1, d_model) for _, limit in self.codes)
        self.count = len(scalars) + len(self.blocks) + len(self.codes) + len(waves)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, F) -> (B, columns, D)
        tokens = [x.index_select(1, self.scalars).unsqueeze(-1) * self.weight + self.bias]  # (B, S, D)
        for (first, width), linear in zip(self.blocks, self.block_maps):
            tokens.append(linear(x[:, first : first + width]).unsqueeze(1))  # (B, 1, D)
        for (first, limit), embedding in zip(self.codes, self.embeddings):
            tokens.append(embedding(x[:, first].round().long().clamp(0, limit)).unsqueeze(1))  # (B, 1, D)
        if self.periodic is not None:
            tokens.append(self.periodic(x))  # (B, numbers, D)
        return torch.cat(tokens, dim=1)


class FTTransformer(DenseHeaded):
    """Column tokens and a [CLS] token through pre-norm self-attention blocks; the head reads the
    [CLS] token after a final norm and activation.

    Args:
        inputs: a table row (its columns from ``Inputs.columns``).
        output_size: classes (logits) or regression targets.
        d_model, ..., head: see ``FTTransformerConfig`` (the spec's ``model`` keys).

    Example:
        >>> model = FTTransformer(Inputs.table(3), 2, **FTTransformerConfig(d_model=16).arguments())
        >>> model(torch.zeros(4, 3)).shape
        torch.Size([4, 2])
    """

    def __init__(self, inputs: Inputs, output_size: int, *, d_model: int, num_heads: int, num_layers: int,
                 ff_size: int | None, dropout: float, attention_dropout: float, head: list[int],
                 numbers: str):
        super().__init__(inputs)
        self.tokens = ColumnTokens(inputs.columns, d_model, list(inputs.numbers or ()) if numbers == "periodic" else [])
        self.cls = nn.Parameter(torch.randn(1, 1, d_model) / d_model ** 0.5)
        layer = nn.TransformerEncoderLayer(d_model, num_heads, ff_size or max(1, round(4 * d_model / 3)), dropout,
                                           activation="gelu", batch_first=True, norm_first=True)
        layer.self_attn.dropout = attention_dropout
        self.encoder = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.activation = nn.ReLU()
        self.head = dense_head(d_model, list(head), output_size, "relu", dropout)

    # the TorchScript exporter does not take nn.TransformerEncoder's fused attention
    exporters = ("dynamo",)

    def pooled(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        h = self.tokens(x.flatten(1))  # (B, columns, D)
        h = torch.cat([self.cls.expand(h.shape[0], -1, -1), h], dim=1)  # (B, 1 + columns, D)
        h = self.encoder(h)
        return self.activation(self.norm(h[:, 0]))  # (B, D): the [CLS] token


def build(config: FTTransformerConfig, inputs: Inputs, output_size: int, num_classes: int = 0) -> FTTransformer:
    return FTTransformer(inputs, output_size, **config.arguments())
