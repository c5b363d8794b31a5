"""Layers shared by model families: dense heads, masks, pooling and positional encodings."""

from __future__ import annotations

import math

import torch
from torch import nn

from . import activations
from .init import init_linear


def dense_head(in_features: int, hidden: list[int], out_features: int, activation: str, dropout: float,
               init: str = "kaiming") -> nn.Sequential:
    """Hidden dense layers (activation, dropout) and a linear output layer."""
    layers: list[nn.Module] = []
    sizes = [in_features, *hidden]
    for a, b in zip(sizes, sizes[1:]):
        linear = nn.Linear(a, b)
        init_linear(linear, init, activation)
        layers += [linear, activations.get(activation)]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
    output = nn.Linear(sizes[-1], out_features)
    init_linear(output, "xavier" if init != "default" else "default", "identity")
    layers.append(output)
    return nn.Sequential(*layers)


def length_mask(lengths: torch.Tensor | None, max_length: int) -> torch.Tensor | None:
    """(B, L) bool mask, True where a position holds data; None when all rows are full length."""
    if lengths is None:
        return None
    positions = torch.arange(max_length, device=lengths.device)
    return positions[None, :] < lengths[:, None]


def masked_mean(x: torch.Tensor, mask: torch.Tensor | None, dim: int) -> torch.Tensor:
    """Mean over ``dim`` counting only positions where ``mask`` is True."""
    if mask is None:
        return x.mean(dim=dim)
    weights = mask.to(x.dtype)
    while weights.ndim < x.ndim:
        weights = weights.unsqueeze(-1)
    return (x * weights).sum(dim=dim) / weights.sum(dim=dim).clamp_min(1)


def masked_max(x: torch.Tensor, mask: torch.Tensor | None, dim: int) -> torch.Tensor:
    if mask is None:
        return x.amax(dim=dim)
    fill = mask
    while fill.ndim < x.ndim:
        fill = fill.unsqueeze(-1)
    return x.masked_fill(~fill, torch.finfo(x.dtype).min).amax(dim=dim)


class AttentionPool(nn.Module):
    """Weighted mean over time with weights from a learned scoring vector."""

    def __init__(self, features: int):
        super().__init__()
        self.score = nn.Linear(features, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:  # (B, L, F) -> (B, F)
        scores = self.score(x).squeeze(-1)  # (B, L)
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        weights = scores.softmax(dim=1).unsqueeze(-1)  # (B, L, 1)
        return (weights * x).sum(dim=1)


def sinusoidal_positions(length: int, features: int) -> torch.Tensor:
    """(length, features) fixed positional encodings of Vaswani et al. (2017)."""
    position = torch.arange(length, dtype=torch.float32)[:, None]
    frequency = torch.exp(torch.arange(0, features, 2, dtype=torch.float32) * (-math.log(10000.0) / features))
    table = torch.zeros(length, features)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency[: features // 2])
    return table


def embedding_size(codes: int) -> int:
    """The width of a learned embedding of ``codes`` categories (grows slowly, at most 32)."""
    return int(min(32, max(2, round(1.6 * codes ** 0.56))))


class CodeEmbeddings(nn.Module):
    """A table row whose category codes (one position each) are read through learned
    embeddings: the other positions as they are, then each code's embedding.

    Args:
        features: positions in a row.
        codes: (position, number of codes) of each code; a value outside 0..codes-1 is clamped.
    """

    def __init__(self, features: int, codes: list[tuple[int, int]]):
        super().__init__()
        coded = {position for position, _ in codes}
        self.register_buffer("kept", torch.tensor([i for i in range(features) if i not in coded], dtype=torch.long),
                             persistent=False)
        self.positions = [position for position, _ in codes]
        self.limits = [count - 1 for _, count in codes]
        self.embeddings = nn.ModuleList(nn.Embedding(count, embedding_size(count)) for _, count in codes)
        self.out_features = len(self.kept) + sum(e.embedding_dim for e in self.embeddings)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, F) -> (B, out_features)
        parts = [x.index_select(1, self.kept)]
        for position, limit, embedding in zip(self.positions, self.limits, self.embeddings):
            parts.append(embedding(x[:, position].round().long().clamp(0, limit)))  # (B, E)
        return torch.cat(parts, dim=1)
