"""Interactions (recommendation): a row is a user and an item, read from a table (a file, CSV
text, a DataFrame, JSON rows or columns) whose user and item columns the run learned; each key
becomes the index the run gave it in training. Index 0 of each is the key the run never saw (a
new user or item), which a model answers from what it learned of everyone (its biases)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import DataError
from .cells import is_missing, shown
from .tables import columns_of, no_kept_columns, no_row_names, table_pieces


def key_of(value) -> str:
    """A user's or an item's key as the run keeps it: its text, a whole number without a
    decimal point (a column read as numbers in one file and as text in another names the
    same keys)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def key_index(keys: Sequence[str]) -> dict[str, int]:
    """Each key's index: its position in ``keys`` after the unknown key's 0."""
    return {key: position + 1 for position, key in enumerate(keys)}


class InteractionsCodec:
    """Encodes rows of a user and an item as their indices (two int64 arrays), and gives the
    rating column's cells as labels when the rows carry it.

    Args:
        state: the fitted state (``user``, ``item``: the columns; ``user_keys``, ``item_keys``:
            the keys training saw, in index order from 1).
    """

    kind = "interactions"
    recommends = True  # it ranks items for users (``top_items``), in every door

    def __init__(self, state: dict):
        self.user, self.item = state["user"], state["item"]
        self.users, self.items = key_index(state["user_keys"]), key_index(state["item_keys"])
        self.item_keys = np.asarray(state["item_keys"], dtype=object)
        self.rated = state.get("rating") is not None
        self.seen_starts = np.asarray(state["seen_starts"], np.int64)
        self.seen_items = np.asarray(state["seen_items"], np.int64)

    def popularity(self) -> np.ndarray:
        """Each item index's count of training interactions."""
        return np.bincount(self.seen_items, minlength=len(self.items) + 1)

    def top_items(self, scores: np.ndarray, users: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` highest-scoring items of each row of ``scores`` (users x items) that the
        row's user did not have in training, best first (item 0, the unknown one, never; ties
        to the lower index), and their scores.

        >>> codec = InteractionsCodec({"user": "u", "item": "i", "user_keys": ["a"], "item_keys": ["x", "y", "z"],
        ...                            "seen_starts": [0, 0, 1], "seen_items": [2]})
        >>> codec.top_items(np.array([[9.0, 1, 5, 3]]), np.array([1]), 2)[0].tolist()
        [[3, 1]]
        """
        scores = np.array(scores, np.float64)
        for row, user in enumerate(np.asarray(users, np.int64)):
            scores[row, self.seen_items[self.seen_starts[user] : self.seen_starts[user + 1]]] = -np.inf
        scores[:, 0] = -np.inf
        k = min(k, scores.shape[1] - 1)
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        return order, np.take_along_axis(scores, order, axis=1)

    def recommendation_columns(self, users: Sequence, items: np.ndarray, values: np.ndarray) -> dict[str, list]:
        """The table of each user's list: the user (as given), the rank from 1, the item's key
        and its value (``rating`` where the data has ratings, else ``score``)."""
        width = items.shape[1]
        return {self.user: [user for user in users for _ in range(width)],
                "rank": [rank for _ in users for rank in range(1, width + 1)],
                self.item: self.item_keys[items.reshape(-1) - 1].tolist(),
                "rating" if self.rated else "score": np.asarray(values, np.float64).reshape(-1).tolist()}

    kept = no_kept_columns("interactions")
    row_names = staticmethod(no_row_names)

    @staticmethod
    def pieces(rows):
        yield from table_pieces(rows)

    def encode(self, rows, *, unknown: str | None = None, ignore_extra: bool = False,
               target: str | None = None) -> tuple[tuple[np.ndarray, np.ndarray], Sequence | None]:
        """``((users, items), ratings)``: each row's user and item index, and the target column's
        cells when the rows carry it.

        Args:
            unknown: 'error' (default) refuses a user or item the run never saw, naming it;
                'bucket' reads it as index 0, the unknown key.

        Raises:
            DataError: a missing column, an empty cell, or (``unknown='error'``) a key the run
                never saw, named by column and row.
        """
        columns = columns_of(rows, [self.user, self.item])
        for name in (self.user, self.item):
            if name not in columns.values:
                raise DataError(f"missing column{columns.where.file}: {name} (each row's {self._role(name)}); the "
                                f"rows' columns: {', '.join(map(str, list(columns.values)[:20]))}")
        found = tuple(self._indices(columns, name, unknown or "error") for name in (self.user, self.item))
        return found, columns.values.get(target) if target else None

    def user_indices(self, users: Sequence) -> np.ndarray:
        """The indices of users named by their keys (whom to recommend for).

        Raises:
            DataError: a user the run never saw, named (a new user has no learned factors).
        """
        found = np.array([self.users.get(key_of(user), 0) for user in users], np.int64)
        if (found == 0).any():
            new = users[int(np.flatnonzero(found == 0)[0])]
            raise DataError(f"user {shown(new)} is not one of the {len(self.users):,} users the run learned from "
                            f"(column '{self.user}'); a new user has no learned factors to rank items by: train "
                            "again with the user's interactions")
        return found

    def _role(self, name: str) -> str:
        return "user" if name == self.user else "item"

    def _indices(self, columns, name: str, unknown: str) -> np.ndarray:
        if unknown not in ("error", "bucket"):
            raise DataError(f"unknown users and items: expected 'error' or 'bucket', got {unknown!r}")
        index = self.users if name == self.user else self.items
        out = np.zeros(columns.rows, np.int64)
        for row, cell in enumerate(columns.values[name]):
            if is_missing(cell):
                raise DataError(f"{columns.where(row)}: column '{name}' is empty; every row names its "
                                f"{self._role(name)}")
            position = index.get(key_of(cell), 0)
            if position == 0 and unknown == "error":
                raise DataError(f"{columns.where(row)}: column '{name}': {self._role(name)} {shown(cell)} is not one "
                                f"of the {len(index):,} the run learned from; a new {self._role(name)} has no "
                                "learned factors (pass unknown='bucket', --unknown bucket, to answer it from the "
                                "model's biases alone)")
            out[row] = position
        return out
