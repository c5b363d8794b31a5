"""Users as the items they had, in order (recommendation): SASRec (Kang and McAuley 2018) and
GRU4Rec (Hidasi et al. 2016) over each user's history.

A pair (user, item) is scored as ``h · v_item + b_item``, where ``h`` reads the ``length`` items
the user had before it (in training: before that interaction; otherwise: the user's latest
training items) through the items' own vectors, a learned position each, and a self-attention
encoder or a GRU, ending at a learned query step whose output is ``h``. The users' histories are
the training data's (``Encoder.constants``, kept by ``hold``); a user's latest ``length`` items
are kept with the weights, so that a saved model answers without the data.
"""

from __future__ import annotations

import torch
from torch import nn

from .configs import SequentialConfig
from .histories import find_pairs, history_pairs
from .inputs import Inputs
from .protocol import Graph, Network, among_scores


class Sequential(Network):
    """Scores of (user, item) pairs from each user's latest items.

    Args:
        inputs: the interactions' sizes (``users``, ``items``: indices from 0, 0 the unknown one).
        output_size: numbers per pair (1: a score or a rating).
        cell, factors, length, layers, heads, dropout: see ``SequentialConfig``.

    Example:
        >>> model = Sequential(Inputs(kind="interactions", users=3, items=6), 1,
        ...                    **SequentialConfig(factors=4, length=2, layers=1).arguments())
        >>> model.hold({"seen_starts": [0, 0, 2, 3], "seen_items": [4, 1, 5]})
        >>> model.recent.tolist()  # each user's latest items, the latest last (0: none)
        [[0, 0], [4, 1], [0, 5]]
        >>> model(torch.tensor([1, 2]), torch.tensor([3, 2])).shape
        torch.Size([2, 1])
    """

    def __init__(self, inputs: Inputs, output_size: int, *, cell: str, factors: int, length: int, layers: int,
                 heads: int, dropout: float):
        super().__init__(inputs)
        self.factors, self.length, self.cell = factors, length, cell
        # index 0 of an item's vector is the unknown item, and in a history the empty step
        self.item_vectors = nn.Embedding(inputs.items, factors, padding_idx=0)
        nn.init.normal_(self.item_vectors.weight, std=factors**-0.5)
        with torch.no_grad():
            self.item_vectors.weight[0].zero_()
        self.item_biases = nn.Embedding(inputs.items, 1)
        nn.init.zeros_(self.item_biases.weight)
        self.query = nn.Parameter(torch.zeros(factors))  # the step after the history, read out as h
        self.positions = nn.Parameter(torch.randn(length + 1, factors) * factors**-0.5)
        self.dropout = nn.Dropout(dropout)
        if cell == "transformer":
            block = nn.TransformerEncoderLayer(factors, heads, 2 * factors, dropout, batch_first=True, norm_first=True)
            self.encoder = nn.TransformerEncoder(block, layers, enable_nested_tensor=False)
        else:
            self.encoder = nn.GRU(factors, factors, layers, batch_first=True, dropout=dropout if layers > 1 else 0.0)
        self.norm = nn.LayerNorm(factors)
        self.head = nn.Linear(factors, output_size)  # an output beyond the score (2 and more), and its scale
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        # each user's latest ``length`` training items, the latest last (0: none), kept with the weights
        self.register_buffer("recent", torch.zeros(inputs.users, length, dtype=torch.long))
        # the training histories, in order, and where each (user, item) pair stands in them (training only)
        self.register_buffer("starts", torch.zeros(0, dtype=torch.long), persistent=False)
        self.register_buffer("history", torch.zeros(0, dtype=torch.long), persistent=False)
        self.register_buffer("pair_keys", torch.zeros(0, dtype=torch.long), persistent=False)
        self.register_buffer("pair_places", torch.zeros(0, dtype=torch.long), persistent=False)

    def hold(self, constants: dict) -> None:
        """Keep each user's training items in order (``seen_starts``, ``seen_items``: see
        ``InteractionsState``)."""
        device = self.recent.device
        starts = torch.as_tensor(constants["seen_starts"], dtype=torch.long, device=device)
        history = torch.as_tensor(constants["seen_items"], dtype=torch.long, device=device)
        self.pair_keys, self.pair_places = history_pairs(starts, history, self.inputs.items)
        self.starts, self.history = starts, history
        everyone = torch.arange(self.inputs.users, device=device)
        self.recent.copy_(self._before(everyone, starts[everyone + 1]))

    def _before(self, users: torch.Tensor, ends: torch.Tensor) -> torch.Tensor:
        """The ``length`` items of each user's history before position ``ends`` (B, length),
        right-aligned, 0 where the history is shorter."""
        places = ends[:, None] - self.length + torch.arange(self.length, device=ends.device)  # (B, length)
        inside = places >= self.starts[users][:, None]
        return torch.where(inside, self.history[places.clamp(min=0)], torch.zeros_like(places))

    def _by_pair(self, items: torch.Tensor | None) -> bool:
        """Whether each pair is read from what preceded its item (training, with the histories
        held) rather than from its user's latest items."""
        return self.training and items is not None and len(self.history) > 0

    def contexts(self, users: torch.Tensor, items: torch.Tensor | None) -> torch.Tensor:
        """The items each pair is read from (B, length): in training, what the user had before the
        pair's item (all of it, for an item the user did not have in training); otherwise, the
        user's latest training items."""
        if not self._by_pair(items):
            return self.recent[users]
        had, places = find_pairs(self.pair_keys, self.pair_places, users, items, self.inputs.items)
        ends = torch.where(had, places, self.starts[users + 1])
        return self._before(users, ends)

    def represent(self, contexts: torch.Tensor) -> torch.Tensor:
        """What each history says of the next item (B, factors)."""
        steps = self.item_vectors(contexts) * self.factors**0.5  # (B, length, factors)
        steps = torch.cat([steps, self.query.expand(len(steps), 1, -1)], dim=1) + self.positions
        steps = self.dropout(steps)
        if self.cell == "transformer":
            empty = torch.cat([contexts == 0, torch.zeros_like(contexts[:, :1], dtype=torch.bool)], dim=1)
            read = self.encoder(steps, src_key_padding_mask=empty)  # (B, length + 1, factors)
        else:
            read = self.encoder(steps)[0]
        return self.norm(read[:, -1])

    def _users(self, users: torch.Tensor, items: torch.Tensor | None) -> torch.Tensor:
        """Each pair's ``h`` (B, factors): a user's once per batch where it does not depend on the
        pair's item."""
        if self._by_pair(items):
            return self.represent(self.contexts(users, items))
        unique, back = torch.unique(users, return_inverse=True)
        return self.represent(self.recent[unique])[back]

    def _scores(self, found: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """(B, output_size) from each pair's ``h`` and item."""
        score = (found * self.item_vectors(items)).sum(dim=-1, keepdim=True)  # (B, 1)
        return score + self.head(found) + self.item_biases(items)

    def features(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self._users(users, items) * self.item_vectors(items)

    @property
    def output_layer(self) -> nn.Linear:
        return self.head

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self._scores(self._users(users, items), items)

    def item_scores(self, users: torch.Tensor, items: torch.Tensor | None = None,
                    among: torch.Tensor | None = None) -> torch.Tensor:
        """Each user's first output for the items ``among`` (B, N), or every item (B, items):
        read, in training, from what preceded the pair's item ``items``."""
        found = self._users(users, items)  # (B, factors)
        extra = self.head(found)[:, :1]  # (B, 1)
        if among is None:
            return found @ self.item_vectors.weight.T + extra + self.item_biases.weight[:, 0]
        return among_scores(found, self.item_vectors, among) + extra + self.item_biases(among)[..., 0]

    def export_graphs(self) -> list[Graph]:
        """The pairs scored from each user's ``h``, worked out once for every user (a user's
        latest items are fixed once trained): the graph holds the users' vectors as a table."""
        example = self.example_inputs(2)
        return [Graph("model", _Folded(self), example, ["users", "items"],
                      dynamic={"users": {0: "batch"}, "items": {0: "batch"}})]


class _Folded(nn.Module):
    """A trained ``Sequential``'s pairs scored from a table of every user's ``h``."""

    def __init__(self, model: Sequential):
        super().__init__()
        with torch.no_grad():
            everyone = torch.arange(model.inputs.users, device=model.recent.device)
            self.register_buffer("users", torch.cat([model.represent(model.recent[part])
                                                     for part in everyone.split(4096)]))
        self.model = model

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self.model._scores(self.users[users], items)


def build(config: SequentialConfig, inputs: Inputs, output_size: int, num_classes: int = 0) -> Sequential:
    return Sequential(inputs, output_size, **config.arguments())
