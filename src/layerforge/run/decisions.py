"""Per-group decision thresholds: how a binary classifier's probabilities become decisions once
``layerforge fairness --mitigate`` has post-processed it. The probabilities stay the model's;
only the cut between the two classes moves, by the group a row belongs to (the value of one
column of the raw rows, which need not be a feature)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from ..errors import DataError

CONSTRAINTS = ("demographic_parity", "true_positive_rate_parity")


class GroupThresholds(BaseModel):
    """A row of group ``g`` (its value in ``column``) is predicted ``positive`` when the model's
    probability of ``positive`` reaches ``thresholds[g]``, and ``other`` below it."""

    model_config = ConfigDict(extra="forbid")

    column: str
    positive: int | str
    other: int | str
    constraint: Literal["demographic_parity", "true_positive_rate_parity"]
    thresholds: dict[str, float] = Field(min_length=1)
    fitted_on: str

    def split(self, data, features: list[str] | None, *, required: bool = True):
        """``(rows for the encoder, each row's group)``: the column is taken out of table rows
        when the model does not read it. Rows without the column give ``(data, None)`` unless
        ``required`` (what decisions need; probabilities and metrics do not).

        Raises:
            DataError: decisions asked of rows that are not a table or lack the column, or a
                group without a threshold.
        """
        import pandas as pd

        from ..data.tabular import read_table

        frame = read_table(Path(data)) if isinstance(data, (str, Path)) else data
        if not isinstance(frame, pd.DataFrame) or self.column not in frame.columns:
            if not required:
                return data, None
            raise DataError(f"column '{self.column}': this run decides by per-group thresholds on it (fairness "
                            "mitigation), so the rows must be a table that carries it; remove the thresholds with "
                            "`layerforge fairness RUN --mitigate none` to predict without it")
        groups = frame[self.column].astype(str).to_numpy()
        unknown = sorted(set(groups) - set(self.thresholds))
        if unknown:
            row = int(np.flatnonzero(groups == unknown[0])[0]) + 1
            raise DataError(f"column '{self.column}', row {row}: group {unknown[0]!r} has no decision threshold "
                            f"(the thresholds cover {', '.join(map(repr, sorted(self.thresholds)))})")
        if self.column not in (features or []):
            frame = frame.drop(columns=[self.column])
        return frame, groups

    def decide(self, classes: list, probabilities: np.ndarray, groups: np.ndarray) -> np.ndarray:
        """Class labels for rows with these probabilities (columns in the order of ``classes``)."""
        return self.decide_by(probabilities[:, [str(c) for c in classes].index(str(self.positive))], groups)

    def decide_by(self, chance: np.ndarray, groups: np.ndarray) -> np.ndarray:
        """Class labels for rows whose probability of ``positive`` is ``chance``."""
        cut = np.array([self.thresholds[g] for g in groups], dtype=np.float64)
        return np.where(chance >= cut, self.positive, self.other).astype(object)


def _cut(scores: np.ndarray, chosen: int, below: np.ndarray | None = None) -> float:
    """A threshold selecting the ``chosen`` highest of ``scores`` (sorted, highest first): halfway
    to the next score below the last one chosen (in ``below`` when given: all the group's scores)."""
    if chosen <= 0:
        return float(np.nextafter(scores[0], np.inf)) if len(scores) else 1.0
    last = scores[chosen - 1]
    pool = scores if below is None else below
    lower = pool[pool < last]
    return float((last + lower.max()) / 2) if len(lower) else float(last)


def fit_thresholds(probability: np.ndarray, truth: np.ndarray, groups: np.ndarray, constraint: str,
                   grid: int = 201) -> tuple[dict[str, float], float]:
    """Per-group thresholds meeting ``constraint`` with the highest accuracy on these rows.

    Every group gets the same selection rate (demographic parity) or the same true positive rate
    (true_positive_rate_parity); the common rate is the one of ``grid`` candidates in [0, 1] whose
    thresholds classify these rows best. Returns the thresholds and that rate.
    """
    names = sorted(set(groups))
    members = {g: groups == g for g in names}
    ranked = {g: np.sort(probability[members[g]])[::-1] for g in names}
    positives = {g: np.sort(probability[members[g] & truth])[::-1] for g in names}
    best, best_accuracy = None, -1.0
    for rate in np.linspace(0.0, 1.0, grid):
        thresholds = {}
        for g in names:
            if constraint == "demographic_parity":
                thresholds[g] = _cut(ranked[g], int(round(rate * len(ranked[g]))))
            else:
                thresholds[g] = _cut(positives[g], int(round(rate * len(positives[g]))), ranked[g])
        cut = np.array([thresholds[g] for g in groups])
        accuracy = float(np.mean((probability >= cut) == truth))
        if accuracy > best_accuracy:
            best, best_accuracy = (thresholds, float(rate)), accuracy
    return best


__all__ = ["CONSTRAINTS", "GroupThresholds", "fit_thresholds"]
