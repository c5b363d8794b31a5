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
    embeddings, and its numbers (``periodic``) through periodic embeddings: the other positions
    as they are, then each code's embedding, then the numbers'.

    Args:
        features: positions in a row.
        codes: (position, number of codes) of each code; a value outside 0..codes-1 is clamped.
        periodic: the positions of numbers read through ``PeriodicNumbers``.
    """

    def __init__(self, features: int, codes: list[tuple[int, int]], periodic: list[int] = ()):
        super().__init__()
        taken = {position for position, _ in codes} | set(periodic)
        self.register_buffer("kept", torch.tensor([i for i in range(features) if i not in taken], dtype=torch.long),
                             persistent=False)
        self.positions = [position for position, _ in codes]
        self.limits = [count - 1 for _, count in codes]
        self.embeddings = nn.ModuleList(nn.Embedding(count, embedding_size(count)) for _, count in codes)
        self.periodic = PeriodicNumbers(list(periodic)) if periodic else None
        self.out_features = (len(self.kept) + sum(e.embedding_dim for e in self.embeddings)
                             + (len(periodic) * self.periodic.size if periodic else 0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, F) -> (B, out_features)
        parts = [x.index_select(1, self.kept)]
        for position, limit, embedding in zip(self.positions, self.limits, self.embeddings):
            parts.append(embedding(x[:, position].round().long().clamp(0, limit)))  # (B, E)
        if self.periodic is not None:
            parts.append(self.periodic(x).flatten(1))  # (B, numbers * size)
        return torch.cat(parts, dim=1)


class PeriodicNumbers(nn.Module):
    """Numbers read through periodic embeddings (Gorishniy et al., 2022, "PLR"): each number x
    becomes ``ReLU(W [sin(2π c x), cos(2π c x)] + b)``, with ``frequencies`` learned frequencies
    c (drawn from N(0, ``sigma``)) and its own W and b per number.

    Args:
        positions: the positions of the numbers in a row.
        frequencies, sigma: the frequencies per number and their initial spread.
        size: each number's embedding width.
    """

    def __init__(self, positions: list[int], frequencies: int = 16, sigma: float = 1.0, size: int = 16):
        super().__init__()
        count = len(positions)
        self.register_buffer("positions", torch.tensor(positions, dtype=torch.long), persistent=False)
        self.frequencies = nn.Parameter(torch.randn(count, frequencies) * sigma)
        self.weight = nn.Parameter(torch.randn(count, 2 * frequencies, size) / math.sqrt(2 * frequencies))
        self.bias = nn.Parameter(torch.zeros(count, size))
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, F) -> (B, numbers, size)
        angles = 2 * math.pi * x.index_select(1, self.positions).unsqueeze(-1) * self.frequencies  # (B, N, K)
        waves = torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)  # (B, N, 2K)
        return torch.relu(torch.einsum("bnk,nkd->bnd", waves, self.weight) + self.bias)
