"""Two towers (recommendation): a user's and an item's vector, each made by a tower from what
the data says of it (Covington et al. 2016; Yi et al. 2019).

A tower reads an entity's learned vector (``ids``) beside its side columns (the data's
``user_features`` or ``item_features``, encoded as a table's columns are: a genre set's ones, a
standardised year, a title's words) through an MLP to ``factors`` numbers; a pair's score is
``u · v + b_item`` and, for a rating, ``head(u)``. Each entity's encoded columns are the training
data's (``Encoder.constants``, kept by ``hold``) and are saved with the weights, so that a saved
model answers without the data. Trained with the loss ``in_batch``, each interaction is scored
against the other items of its batch.
"""

from __future__ import annotations

import torch
from torch import nn

from ..nn.init import init_linear
from .configs import TwoTowerConfig
from .histories import find_pairs, history_pairs
from .inputs import Inputs
from .mlp import DenseBlock
from .protocol import Graph, Network, among_scores


class Tower(nn.Module):
    """One side's vectors (B, factors [+ 1]) from its indices: a learned vector per index (with
    ``ids``) beside the side's encoded columns (``columns``: a buffer of one row per index, held
    with the weights) and ``extra`` numbers given with the indices, through ``layers`` to
    ``width`` numbers."""

    def __init__(self, count: int, columns: int, width: int, *, factors: int, layers: list[int], activation: str,
                 dropout: float, ids: bool, extra: int = 0):
        super().__init__()
        self.ids = nn.Embedding(count, factors) if ids else None
        if self.ids is not None:
            nn.init.normal_(self.ids.weight, std=factors**-0.5)
            nn.init.zeros_(self.ids.weight[0])  # the unknown user or item (never trained): its columns alone
        self.register_buffer("columns", torch.zeros(count, columns))
        sizes = [factors * ids + columns + extra, *layers]
        self.blocks = nn.Sequential(*(DenseBlock(a, b, activation, "none", dropout) for a, b in zip(sizes, sizes[1:])))
        for block in self.blocks:
            init_linear(block.linear, "kaiming", activation)
        self.out = nn.Linear(sizes[-1], width)

    def forward(self, indices: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
        parts = [self.ids(indices)] if self.ids is not None else []
        if self.columns.shape[1]:
            parts.append(self.columns[indices])
        if extra is not None:
            parts.append(extra)
        return self.out(self.blocks(torch.cat(parts, dim=-1)))


class History(nn.Module):
    """Each user's training items as one vector (B, factors): their learned vectors' sum over the
    square root of their count (SVD++, Koren 2008), zeros for a user without any. The histories
    (``starts``, ``items``: as ``InteractionsState``'s ``seen_starts`` and ``seen_items``) are
    kept with the weights; their length is the data's, so loading weights takes theirs."""

    def __init__(self, users: int, items: int, factors: int):
        super().__init__()
        self.items_count = items
        self.vectors = nn.EmbeddingBag(items, factors, mode="sum")
        nn.init.normal_(self.vectors.weight, std=factors**-0.5)
        self.register_buffer("starts", torch.zeros(users + 1, dtype=torch.long))
        self.register_buffer("items", torch.zeros(0, dtype=torch.long))
        self.register_buffer("pair_keys", torch.zeros(0, dtype=torch.long), persistent=False)
        self.register_buffer("pair_places", torch.zeros(0, dtype=torch.long), persistent=False)

    def hold(self, starts, items) -> None:
        device = self.starts.device
        self.starts = torch.as_tensor(starts, dtype=torch.long, device=device)
        self.items = torch.as_tensor(items, dtype=torch.long, device=device)
        self._keys()

    def _keys(self) -> None:
        self.pair_keys, self.pair_places = history_pairs(self.starts, self.items, self.items_count)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        for name in ("starts", "items"):  # the data's lengths, not this module's
            if prefix + name in state_dict:
                setattr(self, name, torch.empty_like(state_dict[prefix + name], device=self.starts.device))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self._keys()

    def forward(self, users: torch.Tensor, left_out: torch.Tensor | None = None) -> torch.Tensor:
        """Each user's history, less the item ``left_out`` of each row where the user had it."""
        first, lengths = self.starts[users], self.starts[users + 1] - self.starts[users]
        offsets = torch.cumsum(lengths, 0) - lengths
        places = torch.repeat_interleave(first - offsets, lengths) + torch.arange(int(lengths.sum()),
                                                                                 device=users.device)
        sums = self.vectors(self.items[places], offsets)  # (B, factors)
        counts = lengths.to(sums.dtype)
        if left_out is not None and len(self.pair_keys):
            had = find_pairs(self.pair_keys, self.pair_places, users, left_out, self.items_count)[0].to(sums.dtype)
            sums = sums - had[:, None] * self.vectors.weight[left_out]
            counts = counts - had
        return sums / counts.clamp(min=1).sqrt()[:, None]


class TwoTower(Network):
    """Scores of (user, item) pairs from a user tower and an item tower.

    Args:
        inputs: the interactions' sizes (``users``, ``items``: indices from 0, 0 the unknown one;
            ``user_features``, ``item_features``: the widths of their encoded columns).
        output_size: numbers per pair (1: a score or a rating).
        factors, layers, activation, dropout, ids, history: see ``TwoTowerConfig``.

    Raises:
        ValueError: a tower with nothing to read (``ids: false`` and no columns on its side).

    Example:
        >>> model = TwoTower(Inputs(kind="interactions", users=3, items=5, item_features=2), 1,
        ...                  **TwoTowerConfig(factors=4, layers=[8]).arguments())
        >>> model.hold({"item_columns": [[0, 0], [1, 0], [0, 1], [1, 1], [0, 0]]})
        >>> model(torch.tensor([1, 2]), torch.tensor([3, 4])).shape
        torch.Size([2, 1])
    """

    def __init__(self, inputs: Inputs, output_size: int, *, factors: int, layers: list[int], activation: str,
                 dropout: float, ids: bool, history: bool):
        super().__init__(inputs)
        self.factors = factors
        self.history = History(inputs.users, inputs.items, factors) if history else None
        sides = {"user": (inputs.users, inputs.user_features or 0), "item": (inputs.items, inputs.item_features or 0)}
        for side, (_, columns) in sides.items():
            if not ids and not columns:
                raise ValueError(f"the {side} tower reads nothing: with ids: false, name the {side}s' columns in "
                                 f"data.{side}_features")
        options = {"factors": factors, "layers": layers, "activation": activation, "dropout": dropout, "ids": ids}
        self.users = Tower(*sides["user"], factors, **options, extra=factors if history else 0)
        self.items = Tower(*sides["item"], factors + 1, **options)  # and the item's bias
        self.head = nn.Linear(factors, output_size)  # an output beyond the score (2 and more), and a user's bias
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def hold(self, constants: dict) -> None:
        """Keep each user's and item's encoded columns (``user_columns``, ``item_columns``: a
        row per index), where the data has them, and with ``history`` each user's training items
        (``seen_starts``, ``seen_items``)."""
        for side, tower in (("user", self.users), ("item", self.items)):
            found = constants.get(f"{side}_columns")
            if found is not None and tower.columns.shape[1]:
                tower.columns.copy_(torch.as_tensor(found, dtype=tower.columns.dtype))
        if self.history is not None:
            self.history.hold(constants["seen_starts"], constants["seen_items"])

    def _user(self, users: torch.Tensor, items: torch.Tensor | None) -> torch.Tensor:
        """Each row's user vector (B, factors): in training, the history leaves the pair's item
        out (as a held-out item is not in it)."""
        if self.history is None:
            return self.users(users)
        return self.users(users, self.history(users, items if self.training else None))

    def _scores(self, user: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """(B, output_size) from each pair's user vector and item."""
        item = self.items(items)  # (B, factors + 1)
        return (user * item[:, : self.factors]).sum(dim=-1, keepdim=True) + item[:, self.factors :] + self.head(user)

    def features(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self._user(users, items) * self.items(items)[:, : self.factors]

    @property
    def output_layer(self) -> nn.Linear:
        return self.head

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self._scores(self._user(users, items), items)

    def item_scores(self, users: torch.Tensor, items: torch.Tensor | None = None,
                    among: torch.Tensor | None = None) -> torch.Tensor:
        """Each user's first output for the items ``among`` (B, N), or every item (B, items):
        each distinct item's tower run once."""
        user = self._user(users, items)  # (B, factors)
        with_bias = torch.cat([user, torch.ones_like(user[:, :1])], dim=1)  # the item's bias as one more product
        extra = self.head(user)[:, :1]  # (B, 1)
        if among is None:
            every = self.items(torch.arange(self.inputs.items, device=users.device))  # (items, factors + 1)
            return with_bias @ every.T + extra
        return among_scores(with_bias, self.items, among) + extra

    def export_graphs(self) -> list[Graph]:
        """The pairs scored from tables of every user's and item's vector (a trained tower's
        answers are fixed): a plain product graph."""
        example = self.example_inputs(2)
        return [Graph("model", _Folded(self), example, ["users", "items"],
                      dynamic={"users": {0: "batch"}, "items": {0: "batch"}})]


class _Folded(nn.Module):
    """A trained ``TwoTower``'s pairs scored from tables of its towers' answers."""

    def __init__(self, model: TwoTower):
        super().__init__()
        with torch.no_grad():
            device = model.head.weight.device
            for name, tower, count in (("user_vectors", model.users, model.inputs.users),
                                       ("item_vectors", model.items, model.inputs.items)):
                every = torch.arange(count, device=device)
                parts = [model._user(part, None) if tower is model.users else tower(part) for part in every.split(4096)]
                self.register_buffer(name, torch.cat(parts))
        self.head, self.factors = model.head, model.factors

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        user, item = self.user_vectors[users], self.item_vectors[items]
        return (user * item[:, : self.factors]).sum(dim=-1, keepdim=True) + item[:, self.factors :] + self.head(user)


def build(config: TwoTowerConfig, inputs: Inputs, output_size: int, num_classes: int = 0) -> TwoTower:
    return TwoTower(inputs, output_size, **config.arguments())
