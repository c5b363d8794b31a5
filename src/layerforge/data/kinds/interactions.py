"""Interactions (recommendation): rows of a user and an item they had, with a rating for
explicit feedback (``data.rating``; without one every row is an interaction) and a time that
orders each user's rows (``data.time``). A table names its columns with ``data.user`` and
``data.item``; the built-in ``movielens`` holds 100,004 ratings.

The split holds each user's latest interactions out (``data.split.test``, then ``val``, as
shares of each user's rows; at random per user where there are no times), so that no model
learns a user's future. The encoder keeps the keys of the users and items training saw (each an
index from 1; 0 is a key it never saw) and each user's training items, which rankings leave out.

Side columns (``data.user_features``, ``data.item_features``: what the rows say of each user and
item, such as the movies' ``genres``, ``year`` and ``title``) are typed and encoded as a table's
columns are, from each user's or item's latest training row; a two-tower model reads them.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from ... import tasks
from ...codecs.interactions import key_of
from ...errors import DataError
from ...models.inputs import Inputs
from .. import builtin
from ..splits import LatestOfEachUser
from .base import Encoder, Kind, Source, State


class InteractionsState(State):
    """The columns (user, item, and the rating and time where the data has them), the keys
    training saw in index order from 1, and each user's training items (``seen_items`` from
    ``seen_starts[u]`` to ``seen_starts[u + 1]`` for user index ``u``), in the order the user had
    them (by ``time``, else by row; an item had twice at its latest)."""

    kind: Literal["interactions"] = "interactions"
    user: str
    item: str
    rating: str | None = None
    time: str | None = None
    user_keys: list[str]
    item_keys: list[str]
    seen_starts: list[int]
    seen_items: list[int]
    # side columns (``data.user_features``, ``data.item_features``): how each is encoded (a
    # table's ``Preprocessor``), fitted on each user's or item's latest training row
    user_features: dict | None = None
    item_features: dict | None = None

    def request_row(self, title: str):
        from pydantic import create_model

        return create_model(title, **{self.user: (str | int, ...), self.item: (str | int, ...)})


class InteractionsEncoder(Encoder):
    """Args:
        columns: each user's and each item's encoded side columns (``user_columns``,
            ``item_columns``: a row per index, 0 zeros), as fitting found them in the training
            rows; a network holds them with its weights.
    """

    state: InteractionsState

    def __init__(self, state: InteractionsState, target: str | None = None,
                 columns: dict[str, np.ndarray] | None = None):
        super().__init__(state, target)
        self.columns = columns or {}

    @property
    def inputs(self) -> Inputs:
        widths = {f"{side}_features": _width(getattr(self.state, f"{side}_features")) for side in ("user", "item")}
        return Inputs(kind="interactions", users=len(self.state.user_keys) + 1, items=len(self.state.item_keys) + 1,
                      **widths)

    @property
    def features(self) -> list[str]:
        return [self.state.user, self.state.item]

    def encode(self, source: Source, parts: dict[str, np.ndarray]):
        found = {}
        for name, rows in parts.items():
            (users, items), _ = self.codec.encode(source.payload.iloc[rows], unknown="bucket")
            labels = source.labels.iloc[rows].reset_index(drop=True) if source.labels is not None else None
            found[name] = ((users, items), labels)
        return found

    @property
    def constants(self) -> dict[str, np.ndarray]:
        """Each user's training items in order (``seen_items`` from ``seen_starts[u]``), which a
        network of users' histories reads."""
        return {"seen_starts": np.asarray(self.state.seen_starts, np.int64),
                "seen_items": np.asarray(self.state.seen_items, np.int64), **self.columns}

    def seen(self):
        """Each user's training items: a users x items matrix of ones (scipy CSR)."""
        from scipy.sparse import csr_matrix

        starts, items = np.asarray(self.state.seen_starts), np.asarray(self.state.seen_items, np.int64)
        shape = (self.inputs.users, self.inputs.items)
        found = csr_matrix((np.ones(len(items), np.float32), items, starts), shape=shape)
        found.sort_indices()
        return found

    def missing_labels(self) -> str:
        return f"evaluation data needs each row's rating: a column '{self.state.rating}'"


def _width(features: dict | None) -> int | None:
    """The width of a side's encoded columns (None: the data has none)."""
    if not features:
        return None
    from ..tabular import Preprocessor

    return len(Preprocessor.from_json(features).feature_names) or None


def _side_columns(frame, names: list[str], keys: list[str], label: str, side: str) -> list[str]:
    """``data.<side>_features``, checked: columns of the table, none of them the interactions'
    own."""
    for name in names:
        if name in keys:
            raise DataError(f"data.{side}_features: '{name}' is one of the interactions' own columns "
                            f"({', '.join(keys)}); name the columns that describe each {side} (a genre, a year, a "
                            "title)")
        _column(frame, name, f"{side}_features", label)
    return list(names)


def _fit_side(frame, rows: np.ndarray, indices: np.ndarray, count: int, names: list[str], data_spec,
              label: str) -> tuple[dict | None, np.ndarray | None]:
    """The encoding of one side's columns, fitted on each entity's latest training row (``rows``
    in time order; ``indices``: each row's entity index from 0), and the encoded row of every
    entity (``count`` + 1 rows, row 0 the unknown one's zeros)."""
    if not names:
        return None, None
    from ..tabular import Preprocessor

    latest = len(indices) - 1 - np.unique(indices[::-1], return_index=True)[1]  # each entity's last row, by entity
    table = frame.iloc[rows[latest]][names].reset_index(drop=True)
    types = data_spec.features if isinstance(data_spec.features, dict) else None
    fitted = Preprocessor.fit(table, names, data_spec.categorical, source=label, types=types)
    encoded = np.zeros((count + 1, len(fitted.feature_names)), np.float32)
    encoded[1:] = fitted.transform(table, unknown="bucket", source=label)
    return fitted.to_json(), encoded


def _column(frame, name: str | None, field: str, label: str) -> str:
    if name is None or name not in frame.columns:
        said = f"has no column '{name}'" if name else "needs it"
        raise DataError(f"data.{field}: {label} {said}; name the column of each row's {field} (columns: "
                        f"{', '.join(map(str, frame.columns[:30]))})")
    return name


class InteractionsKind(Kind):
    name = "interactions"
    reads = "interactions"
    targets = "interactions"
    state = InteractionsState

    def load(self, data_spec, *, target_required: bool = True) -> Source:
        """The built-in ratings, or a table of a user and an item per row."""
        from ..tabular import fingerprint_frame, read_table

        if data_spec.target is not None:
            raise DataError("data.target: interactions name their rating column data.rating (and data.user, "
                            "data.item)")
        if data_spec.dataset:
            frame, label = builtin.load_interactions(data_spec.dataset), data_spec.dataset
            user, item = data_spec.user or "user", data_spec.item or "item"
            rating = data_spec.rating or builtin.DATASETS[data_spec.dataset].target or None  # none: clicks
            rating = None if data_spec.rating is False else rating  # false: the ratings left out
            time = data_spec.time or "time"
        else:
            names = [n for n in (data_spec.user, data_spec.item) if n]
            frame, label = read_table(data_spec.path, text=names), data_spec.path
            user, item, rating, time = data_spec.user, data_spec.item, data_spec.rating or None, data_spec.time
        user, item = _column(frame, user, "user", label), _column(frame, item, "item", label)
        columns = [user, item]
        for name, field in ((rating, "rating"), (time, "time")):
            if name is not None:
                columns.append(_column(frame, name, field, label))
        for name in columns:
            empty = np.flatnonzero(frame[name].isna().to_numpy())
            if len(empty):
                raise DataError(f"{label}: column '{name}' is empty in row {empty[0] + 1} ({len(empty)} rows); "
                                "every interaction needs it: fill or drop those rows")
        if len(frame) < 2:
            raise DataError(f"{label}: holds {len(frame)} interaction; a recommender needs many")
        labels = None
        if rating is not None:
            import pandas as pd

            values = pd.to_numeric(frame[rating], errors="coerce")
            bad = np.flatnonzero(values.isna().to_numpy())
            if len(bad):
                raise DataError(f"{label}: column '{rating}' row {bad[0] + 1}: {frame[rating].iloc[bad[0]]!r} is not a "
                                "number; a rating is a number")
            labels = values.astype(np.float64).rename(rating)
        times = None
        if time is not None:
            times = _times(frame[time], time, label)
        sides = {side: _side_columns(frame, getattr(data_spec, f"{side}_features"), columns, label, side)
                 for side in ("user", "item")}
        columns += [name for names in sides.values() for name in names if name not in columns]
        users = np.unique([key_of(v) for v in frame[user]], return_inverse=True)[1]
        return Source(label, len(frame), frame.reset_index(drop=True), fingerprint_frame(frame[columns]), rating,
                      labels, facts={"user": user, "item": item, "time": time, "users": users, "times": times,
                                     "sides": sides})

    def from_frame(self, data_spec, frame, source: str, *, target_required: bool = True) -> Source:
        raise DataError("interactions are read from a table file (data.path with data.user and data.item) or the "
                        "built-in movielens")

    def for_loss(self, data_spec, loss: str):
        """A ranking loss learns from which items each user had, not from ratings: the ratings
        are left out (``data.rating: false``), so that every answer is a score, named so."""
        if loss in tasks.recommendation.RANKED and data_spec.rating is not False:
            return data_spec.model_copy(update={"rating": False})
        return data_spec

    def plan(self, data_spec, source: Source, seed: int, stratify: bool):
        split = data_spec.split
        return LatestOfEachUser(source.facts["users"], source.facts["times"], split.val, split.test, seed)

    def cv_plan(self, data_spec, source: Source, seed: int, stratify: bool, folds: int, fold: int, deal: int):
        raise DataError("cross-validation folds of interactions would put users' futures in training; a "
                        "recommender is judged on each user's latest interactions (the test part of one run)")

    def fit(self, source: Source, train: np.ndarray, data_spec) -> InteractionsEncoder:
        frame = source.payload.iloc[train]
        facts = source.facts
        # the keys sorted, each index one more than its place (0: a key training never held)
        user_keys, users = np.unique([key_of(v) for v in frame[facts["user"]]], return_inverse=True)
        item_keys, items = np.unique([key_of(v) for v in frame[facts["item"]]], return_inverse=True)
        # each user's items in the order the user had them (by time, else by row), an item had
        # twice at its latest
        times = facts["times"][train] if facts["times"] is not None else np.zeros(len(train))
        order = np.lexsort((np.arange(len(train)), times, users))
        latest = len(order) - 1 - np.unique((users * len(item_keys) + items)[order][::-1], return_index=True)[1]
        kept = order[np.sort(latest)]  # still by user, then time
        starts = np.searchsorted(users[kept] + 1, np.arange(len(user_keys) + 2))
        in_time = np.lexsort((np.arange(len(train)), times))
        found, columns = {}, {}
        for side, indices, keys in (("user", users, user_keys), ("item", items, item_keys)):
            found[side], encoded = _fit_side(frame, in_time, indices[in_time], len(keys), facts["sides"][side],
                                             data_spec, source.label)
            if encoded is not None:
                columns[f"{side}_columns"] = encoded
        state = InteractionsState(user=facts["user"], item=facts["item"], rating=source.target, time=facts["time"],
                                  user_keys=user_keys.tolist(), item_keys=item_keys.tolist(),
                                  seen_starts=starts.tolist(), seen_items=(items[kept] + 1).tolist(),
                                  user_features=found["user"], item_features=found["item"])
        return InteractionsEncoder(state, source.target, columns)

    def encoder(self, state: InteractionsState, target: str | None) -> InteractionsEncoder:
        return InteractionsEncoder(state, target)


def _times(column, name: str, label: str) -> np.ndarray:
    """A time column as numbers that order it (numbers as they are, dates and times as
    nanoseconds).

    Raises:
        DataError: a cell that is neither (named by row).
    """
    import pandas as pd

    numbers = pd.to_numeric(column, errors="coerce")
    if not numbers.isna().any():
        return numbers.to_numpy(np.float64)
    stamps = pd.to_datetime(column, errors="coerce", utc=True)
    bad = np.flatnonzero(stamps.isna().to_numpy())
    if len(bad):
        raise DataError(f"{label}: column '{name}' row {bad[0] + 1}: {column.iloc[bad[0]]!r} is neither a number nor "
                        "a date; data.time orders each user's interactions")
    return stamps.astype("int64").to_numpy(np.float64)
