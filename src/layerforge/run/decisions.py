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

CONSTRAINTS = ("demographic_parity", "true_positive_rate_parity", "equalized_odds")


class GroupThresholds(BaseModel):
    """A row of group ``g`` (its value in ``column``) is predicted ``positive`` when the model's
    probability of ``positive`` reaches ``thresholds[g]``, and ``other`` below it."""

    model_config = ConfigDict(extra="forbid")

    column: str
    positive: int | str
    other: int | str
    constraint: Literal["demographic_parity", "true_positive_rate_parity", "equalized_odds"]
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
    thresholds classify these rows best. Returns the thresholds and that rate. Equalized odds
    (the same true and false positive rates) is met as closely as single thresholds allow: see
    ``_equalized_odds``.
    """
    if constraint == "equalized_odds":
        return _equalized_odds(probability, truth, groups)
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


def _equalized_odds(probability: np.ndarray, truth: np.ndarray, groups: np.ndarray,
                    grid: int = 41) -> tuple[dict[str, float], float]:
    """Thresholds that bring every group's true and false positive rates nearest a common point.

    For each candidate point (TPR, FPR) of a ``grid`` x ``grid`` lattice, each group takes the
    threshold whose rates lie nearest it (the larger of the two gaps); of the points whose
    equalized-odds difference (the larger spread of the groups' TPRs and FPRs) is within 0.05 of
    the smallest, the one that classifies the rows best wins (a tighter fit to the fitting rows
    cost up to 10 points of accuracy on the planted-bias test rows and did not carry over). Exact
    equality generally needs randomised thresholds (Hardt et al.); these stay deterministic, so
    the difference is reduced, not always removed. Returns the thresholds and the chosen TPR.
    """
    names = sorted(set(groups))
    curves = {}
    for g in names:
        scores = probability[groups == g]
        cuts = np.concatenate([np.unique(scores), [np.nextafter(scores.max(), np.inf)]])
        pos, neg = np.sort(probability[(groups == g) & truth]), np.sort(probability[(groups == g) & ~truth])
        tpr = (len(pos) - np.searchsorted(pos, cuts)) / max(len(pos), 1)  # share of each at or above the cut
        fpr = (len(neg) - np.searchsorted(neg, cuts)) / max(len(neg), 1)
        curves[g] = (cuts, tpr, fpr)
    lattice = np.linspace(0.0, 1.0, grid)
    found = []
    for target_tpr in lattice:
        for target_fpr in lattice[lattice <= target_tpr]:
            chosen = {}
            for g, (cuts, tpr, fpr) in curves.items():
                k = int(np.argmin(np.maximum(np.abs(tpr - target_tpr), np.abs(fpr - target_fpr))))
                chosen[g] = (float(cuts[k]), tpr[k], fpr[k])
            rates = np.array([(t, f) for _, t, f in chosen.values()])
            difference = float((rates.max(axis=0) - rates.min(axis=0)).max())
            found.append((difference, {g: c[0] for g, c in chosen.items()}, float(target_tpr)))
    smallest = min(difference for difference, _, _ in found)
    best, best_accuracy = None, -1.0
    for difference, thresholds, target_tpr in found:
        if difference > smallest + 0.05:
            continue
        cut = np.array([thresholds[g] for g in groups])
        accuracy = float(np.mean((probability >= cut) == truth))
        if accuracy > best_accuracy:
            best, best_accuracy = (thresholds, target_tpr), accuracy
    return best


__all__ = ["CONSTRAINTS", "GroupThresholds", "fit_thresholds"]
