"""Split plans: which rows go to training, validation and test. A plan yields row positions
only; the data are loaded before and encoded after, so fold k of N is prepared from rows loaded
once.

Plans: ``Holdout`` (seeded shuffle), ``Stratified`` (the same proportions of every class),
``Chronological`` (in the rows' order: time series, corpora, ``split.shuffle: false``) and
``KFold`` (a fixed test part, then fold k of the rest for validation), ``GroupedKFold`` (the
same, keeping every group's rows in one part) and ``ExpandingWindow`` (time order: fold k trains on
everything before its validation block).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import ClassVar

import numpy as np

PARTS = ("train", "val", "test")
Parts = dict[str, np.ndarray]


class SplitPlan(ABC):
    """Divides ``rows`` row positions into sorted 'train', 'val' and 'test' index arrays."""

    name: ClassVar[str]

    @abstractmethod
    def split(self, rows: int, labels: np.ndarray | None = None, fixed: Parts | None = None) -> Parts:
        """The parts.

        Args:
            rows: how many rows.
            labels: class codes per row (stratified plans).
            fixed: parts the data fixes itself (an official test split); only the other rows
                are divided, and into train and val alone when test is fixed.
        """

    def describe(self) -> dict:
        """The plan as split.json records it."""
        return {"plan": self.name, **asdict(self)}


def _free_rows(rows: int, fixed: Parts | None) -> tuple[np.ndarray, Parts]:
    fixed = {name: np.sort(np.asarray(part, dtype=np.int64)) for name, part in (fixed or {}).items()}
    taken = np.concatenate(list(fixed.values())) if fixed else np.zeros(0, dtype=np.int64)
    return np.setdiff1d(np.arange(rows), taken), fixed


def _too_small(members: np.ndarray, val: float, test: float) -> bool:
    """Whether a group is too small to be cut on its own: a held-out part would get fewer than
    two of its rows, where rounding alone would miss its fraction by a quarter or more."""
    return any(0 < fraction and len(members) * fraction < 2 for fraction in (val, test))


def _divide(groups: list[np.ndarray], val: float, test: float, rng: np.random.Generator) -> Parts:
    """Shuffle each group and cut it into test, val and train by the fractions.

    Groups too small to be cut alone (a class of 3 rows gets no row from 15%) are pooled: one row of
    each stays in training, and the pool's other rows fill what the fractions ask of all the
    pooled rows, so that many small classes do not leave the held-out parts short."""
    parts: dict[str, list[np.ndarray]] = {name: [] for name in PARTS}
    small = [members for members in groups if _too_small(members, val, test)] if len(groups) > 1 else []
    if small:
        groups = [members for members in groups if not _too_small(members, val, test)]
        kept = [rng.permutation(members) for members in small]
        parts["train"] += [members[:1] for members in kept]
        pool = rng.permutation(np.concatenate([members[1:] for members in kept]))
        pooled = sum(len(members) for members in kept)
        n_test = min(int(round(pooled * test)), len(pool))
        n_val = min(int(round(pooled * val)), len(pool) - n_test)
        parts["test"].append(pool[:n_test])
        parts["val"].append(pool[n_test : n_test + n_val])
        parts["train"].append(pool[n_test + n_val :])
    for members in groups:
        members = rng.permutation(members)
        n_test = int(round(len(members) * test))
        n_val = int(round(len(members) * val))
        if n_test + n_val >= len(members):  # keep at least one row of each group for training
            n_test, n_val = min(n_test, max(0, len(members) - 1)), 0
        parts["test"].append(members[:n_test])
        parts["val"].append(members[n_test : n_test + n_val])
        parts["train"].append(members[n_test + n_val :])
    return {name: np.sort(np.concatenate(chunks)).astype(np.int64) for name, chunks in parts.items()}


def _shuffled(plan, rows: int, groups_of, fixed: Parts | None) -> Parts:
    free, fixed = _free_rows(rows, fixed)
    test = 0.0 if "test" in fixed else plan.test
    parts = _divide(groups_of(free), plan.val, test, np.random.default_rng(plan.seed))
    for name, part in fixed.items():
        parts[name] = np.sort(np.concatenate([parts[name], part]))
    return parts


@dataclass(frozen=True)
class Holdout(SplitPlan):
    """A seeded shuffle: fractions ``val`` and ``test`` of the rows held out."""

    val: float
    test: float
    seed: int
    name: ClassVar[str] = "holdout"

    def split(self, rows: int, labels: np.ndarray | None = None, fixed: Parts | None = None) -> Parts:
        return _shuffled(self, rows, lambda free: [free], fixed)


@dataclass(frozen=True)
class Stratified(SplitPlan):
    """A seeded shuffle within each class, so every part holds the classes in the same
    proportions (at least one row of each class stays in training)."""

    val: float
    test: float
    seed: int
    name: ClassVar[str] = "stratified"

    def split(self, rows: int, labels: np.ndarray | None = None, fixed: Parts | None = None) -> Parts:
        if labels is None:
            raise ValueError("a stratified split needs the class of every row")
        labels = np.asarray(labels)
        return _shuffled(self, rows, lambda free: [free[labels[free] == c] for c in np.unique(labels[free])], fixed)


@dataclass(frozen=True)
class Chronological(SplitPlan):
    """In the rows' order: training first, then validation, then test.

    ``val`` and ``test`` are fractions of all rows; with ``test_rows`` the test part is that
    many rows and ``val`` a fraction of the rows before it (forecasting); ``val_rows`` sets the
    validation part's size outright.
    """

    val: float
    test: float = 0.0
    test_rows: int | None = None
    val_rows: int | None = None
    name: ClassVar[str] = "chronological"

    def split(self, rows: int, labels: np.ndarray | None = None, fixed: Parts | None = None) -> Parts:
        order, fixed = _free_rows(rows, fixed)
        free = len(order)
        if "test" in fixed:
            n_test, n_val = 0, int(round(free * self.val))
        elif self.test_rows is None:
            n_test, n_val = int(round(free * self.test)), int(round(free * self.val))
        else:
            n_test = self.test_rows
            n_val = int(round((free - n_test) * self.val))
        if self.val_rows is not None:
            n_val = self.val_rows
        n_train = free - n_val - n_test
        parts = {"train": order[:n_train], "val": order[n_train : n_train + n_val], "test": order[n_train + n_val :]}
        for name, part in fixed.items():
            parts[name] = np.sort(np.concatenate([parts[name], part]))
        return parts


@dataclass(frozen=True)
class KFold(SplitPlan):
    """Cross-validation: a test part held out once (fraction ``test``, or the data's own), then
    the other rows dealt into ``folds`` folds; fold ``fold`` (0-based) validates, the rest train.
    With ``stratify`` every fold holds the classes in the same proportions. ``seed`` chooses the
    test part (the same rows a plain run of that seed tests on); ``deal`` deals the folds (a
    repeat of the cross-validation changes ``deal`` only)."""

    folds: int
    fold: int
    seed: int
    test: float = 0.0
    stratify: bool = True
    deal: int | None = None
    name: ClassVar[str] = "kfold"

    def __post_init__(self):
        if self.folds < 2 or not 0 <= self.fold < self.folds:
            raise ValueError(f"fold {self.fold} of {self.folds}: need at least 2 folds and 0 <= fold < folds")

    def _dealer(self) -> np.random.Generator:
        return np.random.default_rng(self.seed + 1 if self.deal is None else [self.seed, self.deal])

    def split(self, rows: int, labels: np.ndarray | None = None, fixed: Parts | None = None) -> Parts:
        stratified = self.stratify and labels is not None
        outer = Stratified(0.0, self.test, self.seed) if stratified else Holdout(0.0, self.test, self.seed)
        held = outer.split(rows, labels, fixed)
        rest, test = held["train"], held["test"]
        rng = self._dealer()
        groups = [rest[labels[rest] == c] for c in np.unique(labels[rest])] if stratified else [rest]
        dealt = np.concatenate([rng.permutation(g) for g in groups])  # classes in turn: folds stay balanced
        fold_of = np.arange(len(dealt)) % self.folds
        val = np.sort(dealt[fold_of == self.fold])
        return {"train": np.setdiff1d(rest, val), "val": val, "test": test}


@dataclass(frozen=True)
class GroupedKFold(KFold):
    """K-fold where the rows of one group (a patient, a site, a user: ``data.groups``) always
    stay together: the test part takes whole groups, and groups are dealt into folds of nearly
    equal row counts (largest groups first). ``groups`` holds each row's group."""

    groups: tuple = field(default=(), repr=False)
    name: ClassVar[str] = "grouped_kfold"

    def describe(self) -> dict:
        described = super().describe()
        described.pop("groups")
        return described

    def split(self, rows: int, labels: np.ndarray | None = None, fixed: Parts | None = None) -> Parts:
        free, fixed = _free_rows(rows, fixed)
        names, codes = np.unique(np.asarray(self.groups, dtype=object).astype(str), return_inverse=True)
        if len(codes) != rows:
            raise ValueError(f"groups: {len(codes)} values for {rows} rows")
        present = np.unique(codes[free])
        if len(present) < self.folds + (0 if "test" in fixed or not self.test else 1):
            raise ValueError(f"data.groups: {len(present)} groups cannot fill {self.folds} folds"
                             + (" and a test part" if self.test and "test" not in fixed else "")
                             + "; use fewer folds")
        rng = np.random.default_rng(self.seed)
        order = rng.permutation(present)
        test = np.zeros(0, dtype=np.int64)
        if "test" not in fixed and self.test:
            wanted, taken = self.test * len(free), []
            for group in order:
                if sum(taken) >= wanted:
                    break
                taken.append(int(np.sum(codes[free] == group)))
            test_groups, order = order[: len(taken)], order[len(taken):]
            test = free[np.isin(codes[free], test_groups)]
        rest = np.setdiff1d(free, test)
        sizes = {group: int(np.sum(codes[rest] == group)) for group in order}
        dealt = self._dealer().permutation(order)
        loads, fold_of = [0] * self.folds, {}
        for group in sorted(dealt, key=lambda g: -sizes[g]):  # stable: ties keep the dealt order
            k = int(np.argmin(loads))
            fold_of[group], loads[k] = k, loads[k] + sizes[group]
        val_groups = [group for group, k in fold_of.items() if k == self.fold]
        val = rest[np.isin(codes[rest], val_groups)]
        parts = {"train": np.setdiff1d(rest, val), "val": np.sort(val), "test": np.sort(test)}
        for name, part in fixed.items():
            parts[name] = np.sort(np.concatenate([parts[name], part]))
        return parts


@dataclass(frozen=True)
class ExpandingWindow(SplitPlan):
    """Cross-validation in time order (forecasting, corpora): the rows before the test part are
    cut into ``folds + 1`` blocks; fold ``fold`` trains on blocks 0..fold and validates on the
    next, so no fold learns from its future. The test part is the last ``test_rows`` rows."""

    folds: int
    fold: int
    test_rows: int = 0
    name: ClassVar[str] = "expanding_window"

    def __post_init__(self):
        if self.folds < 2 or not 0 <= self.fold < self.folds:
            raise ValueError(f"fold {self.fold} of {self.folds}: need at least 2 folds and 0 <= fold < folds")

    def split(self, rows: int, labels: np.ndarray | None = None, fixed: Parts | None = None) -> Parts:
        order, fixed = _free_rows(rows, fixed)
        n_test = 0 if "test" in fixed else self.test_rows
        before = order[: len(order) - n_test]
        edges = np.linspace(0, len(before), self.folds + 2).round().astype(int)
        parts = {"train": before[: edges[self.fold + 1]], "val": before[edges[self.fold + 1] : edges[self.fold + 2]],
                 "test": order[len(order) - n_test :]}
        for name, part in fixed.items():
            parts[name] = np.sort(np.concatenate([parts[name], part]))
        return parts


class Recorded(SplitPlan):
    """The parts a run recorded (split.json): a resumed run trains on the rows it started with,
    whatever plan chose them (``described``: that plan, as split.json keeps it)."""

    name: ClassVar[str] = "recorded"

    def __init__(self, parts: Parts, described: dict):
        self.parts, self.described = parts, described

    def split(self, rows: int, labels: np.ndarray | None = None, fixed: Parts | None = None) -> Parts:
        return dict(self.parts)

    def describe(self) -> dict:
        return dict(self.described)


def _apportion(total: int, counts: np.ndarray) -> np.ndarray:
    """``total`` rows shared among groups of ``counts`` rows in proportion, summing exactly
    (the largest remainders get the rows rounding leaves)."""
    quotas = total * counts / counts.sum()
    shares = np.floor(quotas).astype(np.int64)
    shares[np.argsort(shares - quotas, kind="stable")[: total - shares.sum()]] += 1
    return shares


@dataclass(frozen=True)
class Sampled(SplitPlan):
    """Held-out parts drawn straight from rows too many to shuffle whole (a table streamed from
    its file): validation and test take fractions ``val`` and ``test`` of the rows, at most
    ``held_out_rows`` each, drawn at random (within each class, in proportion, when stratified)
    or, when not shuffled, the last rows in order; every other row trains. It needs about 17
    bytes per row where a shuffle needs several times that, and a few tens of thousands of
    held-out rows measure a score to a fraction of a point."""

    val: float
    test: float
    held_out_rows: int
    seed: int
    stratify: bool = True
    shuffle: bool = True
    name: ClassVar[str] = "sampled"

    def split(self, rows: int, labels: np.ndarray | None = None, fixed: Parts | None = None) -> Parts:
        if fixed:
            raise ValueError("a sampled split draws every part itself; the data fixes some")
        sizes = [min(int(round(rows * fraction)), self.held_out_rows) for fraction in (self.val, self.test)]
        held = np.zeros(rows, dtype=np.int8)  # 0 train, 1 val, 2 test
        if not self.shuffle:
            held[rows - sizes[1] :] = 2
            held[rows - sizes[1] - sizes[0] : rows - sizes[1]] = 1
        else:
            rng = np.random.default_rng(self.seed)
            stratified = self.stratify and labels is not None
            groups = [np.flatnonzero(labels == c) for c in np.unique(labels)] if stratified else [None]
            counts = np.array([rows if members is None else len(members) for members in groups])
            wanted = [_apportion(size, counts) for size in sizes]
            for members, count, n_val, n_test in zip(groups, counts, *wanted):
                n_test = min(n_test, max(0, count - 1))  # a class keeps a row for training
                n_val = min(n_val, max(0, count - 1 - n_test))
                chosen = rng.choice(count, n_val + n_test, replace=False)
                chosen = chosen if members is None else members[chosen]
                held[chosen[:n_test]] = 2
                held[chosen[n_test:]] = 1
        return {name: np.flatnonzero(held == code) for code, name in enumerate(PARTS)}


def user_tails(users: np.ndarray, times: np.ndarray | None, held: float, seed: int = 0,
               rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(kept rows, held-out rows) of ``rows`` (default all): each user's latest ``held`` share
    of them held out (by ``times``, ties by row order; without times a seeded random share), at
    least one for a user with two or more, none for a user with one."""
    rows = np.arange(len(users)) if rows is None else np.asarray(rows, np.int64)
    if times is None:
        shuffled = np.random.default_rng(seed).permutation(rows)
        order = shuffled[np.argsort(users[shuffled], kind="stable")]
    else:
        order = rows[np.lexsort((rows, times[rows], users[rows]))]
    run = users[order]
    starts = np.flatnonzero(np.r_[True, run[1:] != run[:-1]]) if len(run) else np.zeros(0, np.int64)
    ends = np.r_[starts[1:], len(run)]
    out = np.zeros(len(run), bool)
    for start, end in zip(starts, ends):
        count = end - start
        if count >= 2 and held > 0:
            out[end - max(1, int(round(count * held))) : end] = True
    return np.sort(order[~out]), np.sort(order[out])


class LatestOfEachUser(SplitPlan):
    """Interactions split so that no user's future is learned from: each user's latest ``test``
    share of interactions is the test part and, of the rest, the latest ``val`` share (of the
    user's interactions, so the parts keep the fractions) the validation part. Without times
    the shares are drawn at random per user, seeded."""

    name: ClassVar[str] = "latest_of_each_user"

    def __init__(self, users: np.ndarray, times: np.ndarray | None, val: float, test: float, seed: int):
        self.users, self.times, self.val, self.test, self.seed = users, times, val, test, seed

    def split(self, rows: int, labels: np.ndarray | None = None, fixed: Parts | None = None) -> Parts:
        train, test = user_tails(self.users, self.times, self.test, self.seed)
        train, val = user_tails(self.users, self.times, self.val / max(1e-9, 1 - self.test), self.seed + 1, train)
        return {"train": train, "val": val, "test": test}

    def describe(self) -> dict:
        return {"plan": self.name, "val": self.val, "test": self.test, "seed": self.seed,
                "by": "random" if self.times is None else "time"}


def plan_for(split_spec, seed: int, stratify: bool) -> SplitPlan:
    """The plan a spec's ``data.split`` asks for; ``stratify`` when the rows have classes."""
    if not split_spec.shuffle:
        return Chronological(split_spec.val, split_spec.test)
    if stratify and split_spec.stratify:
        return Stratified(split_spec.val, split_spec.test, seed)
    return Holdout(split_spec.val, split_spec.test, seed)


def hold_out(parts: Parts, codes: np.ndarray, held: list[int]) -> Parts:
    """Move every row whose class code is in ``held`` into the test part (anomaly detection:
    learn normal rows in training and validation, test on both kinds)."""
    anomalous = np.isin(codes, held)
    moved = np.concatenate([rows[anomalous[rows]] for rows in parts.values()])
    kept = {name: rows[~anomalous[rows]] for name, rows in parts.items()}
    kept["test"] = np.sort(np.concatenate([kept["test"], moved]))
    return kept


def to_ranges(rows: np.ndarray) -> list[list[int]]:
    """Sorted row positions as [start, stop) ranges (compact for split.json)."""
    rows = np.asarray(rows, dtype=np.int64)
    if len(rows) == 0:
        return []
    breaks = np.flatnonzero(np.diff(rows) != 1) + 1
    starts = np.concatenate([[0], breaks])
    stops = np.concatenate([breaks, [len(rows)]])
    return np.stack([rows[starts], rows[stops - 1] + 1], axis=1).tolist()


def from_ranges(ranges: list[list[int]]) -> np.ndarray:
    if not ranges:
        return np.zeros(0, dtype=np.int64)
    starts, stops = np.asarray(ranges, dtype=np.int64).reshape(-1, 2).T
    lengths = stops - starts
    # each position: its range's start plus how far into the range it is
    return np.repeat(starts - np.cumsum(lengths) + lengths, lengths) + np.arange(lengths.sum(), dtype=np.int64)
