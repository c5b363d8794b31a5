"""Users' training histories (``seen_starts``, ``seen_items``: each user's items in order, as
``InteractionsState`` keeps them), searchable by (user, item) pair: the networks that read a
user's history ask whether a pair is in it, and where, to read only what preceded it or leave
it out."""

from __future__ import annotations

import torch


def history_pairs(starts: torch.Tensor, items: torch.Tensor, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Every (user, item) pair of the histories as a sorted key ``user * count + item``
    (``count``: the number of items), and each key's place in ``items``.

    >>> history_pairs(torch.tensor([0, 0, 2, 3]), torch.tensor([4, 1, 2]), 5)
    torch.return_types.sort(
    values=tensor([ 6,  9, 12]),
    indices=tensor([1, 0, 2]))
    """
    users = torch.repeat_interleave(torch.arange(len(starts) - 1, device=starts.device), starts[1:] - starts[:-1])
    return torch.sort(users * count + items)


def find_pairs(keys: torch.Tensor, places: torch.Tensor, users: torch.Tensor, items: torch.Tensor,
               count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Whether each (user, item) pair is in the histories (``keys``, ``places``: from
    ``history_pairs``), and its place there (meaningless where it is not).

    >>> keys, places = history_pairs(torch.tensor([0, 0, 2, 3]), torch.tensor([4, 1, 2]), 5)
    >>> had, place = find_pairs(keys, places, torch.tensor([1, 1, 2]), torch.tensor([1, 2, 2]), 5)
    >>> had.tolist(), place[had].tolist()  # user 1 had item 1 second; user 2 had item 2 third
    ([True, False, True], [1, 2])
    """
    wanted = users * count + items
    found = torch.searchsorted(keys, wanted).clamp(max=len(keys) - 1)
    return keys[found] == wanted, places[found]
