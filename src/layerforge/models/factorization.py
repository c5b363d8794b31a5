"""Factorisation of interactions (recommendation): users and items as learned vectors.

Biased matrix factorisation scores a pair as ``head(u ⊙ v) + b_u + b_i`` (the head's weights
weigh each factor; at ones it is the plain dot product); with ``layers`` it is neural
collaborative filtering (NeuMF, He et al. 2017): an MLP over each side's second vector,
concatenated, read by the same head beside the product.
"""

from __future__ import annotations

import torch
from torch import nn

from ..nn.init import init_linear
from .configs import FactorizationConfig
from .inputs import Inputs
from .mlp import DenseBlock
from .protocol import Graph, Network, among_scores


class Factorization(Network):
    """Scores of (user, item) pairs from learned vectors.

    Args:
        inputs: the interactions' sizes (``users``, ``items``: indices from 0, 0 the unknown one).
        output_size: numbers per pair (1: a score or a rating).
        factors, layers, activation, dropout, biases, regularization: see ``FactorizationConfig``.

    Example:
        >>> model = Factorization(Inputs(kind="interactions", users=5, items=7), 1,
        ...                       **FactorizationConfig(factors=4).arguments())
        >>> model(torch.tensor([1, 2]), torch.tensor([3, 6])).shape
        torch.Size([2, 1])
    """

    def __init__(self, inputs: Inputs, output_size: int, *, factors: int, layers: list[int], activation: str,
                 dropout: float, biases: bool, regularization: float):
        super().__init__(inputs)
        self.regularization, self.factors, self.biases = regularization, factors, biases
        # a user's and an item's vector, each with its bias as one more number (in the same
        # table: a user's bias, which a ranking loss cannot move, learns with its vector)
        self.user_factors = nn.Embedding(inputs.users, factors + biases)
        self.item_factors = nn.Embedding(inputs.items, factors + biases)
        for table in (self.user_factors, self.item_factors):
            nn.init.normal_(table.weight, std=factors**-0.5)
            if biases:
                nn.init.zeros_(table.weight[:, factors])
            nn.init.zeros_(table.weight[0])  # the unknown user or item (never trained): answered from the rest
        self.tower = None
        width = factors
        if layers:
            self.user_vectors = nn.Embedding(inputs.users, factors)
            self.item_vectors = nn.Embedding(inputs.items, factors)
            for table in (self.user_vectors, self.item_vectors):
                nn.init.normal_(table.weight, std=factors**-0.5)
            sizes = [2 * factors, *layers]
            self.tower = nn.Sequential(*(DenseBlock(a, b, activation, "none", dropout)
                                         for a, b in zip(sizes, sizes[1:])))
            for block in self.tower:
                init_linear(block.linear, "kaiming", activation)
            width += layers[-1]
        self.head = nn.Linear(width, output_size)
        nn.init.constant_(self.head.weight, 1.0 if not layers else 0.5)
        nn.init.zeros_(self.head.bias)

    def _parts(self, users: torch.Tensor, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The features the head reads (B, width) and the pairs' biases (B, 1), or None."""
        user, item = self.user_factors(users), self.item_factors(items)  # (B, factors [+ 1])
        found = user[:, : self.factors] * item[:, : self.factors]  # (B, factors)
        if self.tower is not None:
            pair = torch.cat([self.user_vectors(users), self.item_vectors(items)], dim=-1)  # (B, 2 * factors)
            found = torch.cat([found, self.tower(pair)], dim=-1)  # (B, factors + layers[-1])
        return found, (user[:, self.factors :] + item[:, self.factors :]) if self.biases else None

    def features(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self._parts(users, items)[0]

    @property
    def output_layer(self) -> nn.Linear:
        return self.head

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        features, biases = self._parts(users, items)
        scores = self.head(features)  # (B, output_size)
        return scores if biases is None else scores + biases

    def penalty(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """``regularization`` times the mean over the pairs of their user's and item's squared
        vectors and biases, and the head's squared weights (which would otherwise grow as the
        vectors shrink): what training adds to the loss."""
        tables = [(self.user_factors, users), (self.item_factors, items)]
        if self.tower is not None:
            tables += [(self.user_vectors, users), (self.item_vectors, items)]
        found = sum(table(rows).square().sum(dim=-1).mean() for table, rows in tables)
        return self.regularization * (found + self.head.weight.square().sum())

    def item_scores(self, users: torch.Tensor, items: torch.Tensor | None = None, among: torch.Tensor | None = None,
                    chunk: int = 1 << 20) -> torch.Tensor:
        """Each user's first output for the items ``among`` (B, N), or for every item (B, items):
        one product of the factor tables without a tower, else the pairs scored ``chunk`` at a
        time. ``items`` (the pair each row scores) does not change a user's vector here."""
        if among is not None and self.tower is not None:
            return self(users.repeat_interleave(among.shape[1]), among.reshape(-1))[:, 0].reshape(among.shape)
        catalogue = self.inputs.items
        if self.tower is None:
            user = self.user_factors(users)
            weighted = user[:, : self.factors] * self.head.weight[0]  # (B, factors)
            if among is not None:
                scores = among_scores(weighted, lambda found: self.item_factors(found)[:, : self.factors], among)
                if self.biases:
                    scores = scores + user[:, self.factors :] + self.item_factors(among)[..., self.factors]
                return scores + self.head.bias[0]
            every = self.item_factors.weight
            scores = weighted @ every[:, : self.factors].T + self.head.bias[0]  # (B, items)
            if self.biases:
                scores = scores + user[:, self.factors :] + every[:, self.factors :].T
            return scores
        rows = max(1, chunk // catalogue)
        parts = []
        every = torch.arange(catalogue, device=users.device)
        for start in range(0, len(users), rows):
            part = users[start : start + rows]
            pairs_users = part.repeat_interleave(catalogue)  # (b * items,)
            pairs_items = every.repeat(len(part))
            parts.append(self(pairs_users, pairs_items)[:, 0].reshape(len(part), catalogue))
        return torch.cat(parts) if parts else torch.zeros(0, catalogue, device=users.device)

    def export_graphs(self) -> list[Graph]:
        example = self.example_inputs(2)
        return [Graph("model", self, example, ["users", "items"], dynamic={"users": {0: "batch"},
                                                                          "items": {0: "batch"}})]


def build(config: FactorizationConfig, inputs: Inputs, output_size: int, num_classes: int = 0) -> Factorization:
    return Factorization(inputs, output_size, **config.arguments())
