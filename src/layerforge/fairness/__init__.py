"""``layerforge fairness``: does a classifier treat groups of people alike?

For each sensitive column (it may be a feature or a column the model never read), on the run's
test rows (or given rows that carry the column and the target): per group the size, accuracy,
selection rate (share predicted ``positive``), true and false positive rates, and calibration
(mean predicted probability of ``positive`` against the observed rate); then the
demographic-parity difference and ratio and the equalized-odds difference (fairlearn's
definitions), each with a 95% bootstrap interval, flagged against thresholds. Results go to
``RUN/fairness/fairness.json`` and the report's Fairness section.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..data.prepare import load_source
from ..errors import DataError
from ..files import make_dir, write_json
from ..run.directory import Run
from ..run.store import recorded_parts

FOLDER, RECORD = "fairness", "fairness.json"
THRESHOLDS = {"demographic_parity_difference": 0.1, "equalized_odds_difference": 0.1}


@dataclass
class Audited:
    """Per sensitive column: its groups' metrics and the disparities, with intervals and flags."""

    path: Path
    positive: Any
    rows: int
    columns: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"positive": self.positive, "rows": self.rows, "columns": self.columns}


def _rows(run: Run, data, sensitive: list[str]):
    """Raw rows with the target and the sensitive columns: given, or the run's test rows."""
    import pandas as pd

    from ..data.tabular import read_table

    if data is not None:
        frame = data if isinstance(data, pd.DataFrame) else read_table(Path(data))
        where = str(data) if not isinstance(data, pd.DataFrame) else "the rows"
    else:
        if run.manifest.preprocessing.kind != "table":
            raise DataError("a fairness audit reads table rows; pass rows that carry the sensitive columns")
        source = load_source(run.spec.data, run.manifest.task)
        recorded = recorded_parts(run.path, run.manifest.files)
        test = recorded[1]["test"] if recorded else np.zeros(0, dtype=np.int64)
        if len(test) == 0:
            raise DataError("this run has no test rows; pass rows to audit")
        frame, where = source.payload.iloc[test].reset_index(drop=True), f"{source.label} (the run's test rows)"
    missing = [c for c in [*sensitive, run.manifest.target] if c not in frame.columns]
    if missing:
        raise DataError(f"--sensitive: column '{missing[0]}' is not in {where}; its columns: "
                        f"{', '.join(map(str, frame.columns))}")
    return frame


def audit(run: Run | str | Path, sensitive: list[str], data=None, *, positive=None,
          thresholds: dict[str, float] | None = None, bootstrap: int = 200, seed: int = 0) -> Audited:
    """Audit ``run``'s predictions by the groups of each ``sensitive`` column (see the module).

    Args:
        positive: the class that is the favourable outcome (default: the second of two classes).
        thresholds: largest acceptable disparities (default ``THRESHOLDS``).

    Raises:
        DataError: not a classification run, a column that is not there, more than two classes
            without ``positive``, or a group with no rows.
    """
    try:
        from fairlearn.metrics import (
            demographic_parity_difference,
            demographic_parity_ratio,
            equalized_odds_difference,
        )
    except ImportError:
        raise DataError("fairness audits need fairlearn: pip install 'layerforge[fairness]'") from None

    run = run if isinstance(run, Run) else Run(run)
    task = run.task
    if not task.classes:
        raise DataError(f"fairness metrics compare classifications; this run does {run.manifest.task}")
    if not sensitive:
        raise DataError("--sensitive: name at least one column whose groups to compare")
    names = [str(c) for c in task.classes]
    if positive is None:
        if len(names) != 2:
            raise DataError(f"--positive: this run has {len(names)} classes; say which one is the favourable outcome "
                            f"({', '.join(names)})")
        positive = task.classes[1]
    elif str(positive) not in names:
        raise DataError(f"--positive: {positive!r} is not a class of this run ({', '.join(names)})")
    positive = task.classes[names.index(str(positive))]
    limits = {**THRESHOLDS, **(thresholds or {})}
    frame = _rows(run, data, sensitive)
    truth = frame[run.manifest.target].astype(str).to_numpy() == str(positive)
    features = frame.drop(columns=[run.manifest.target])
    probability = run.predict_proba(features, ignore_extra=True)[:, names.index(str(positive))]
    chosen = np.asarray(run.predict(features, ignore_extra=True)).astype(str) == str(positive)
    found = Audited(run.path / FOLDER, positive, int(len(frame)))
    rng = np.random.default_rng(seed)
    for column in sensitive:
        groups = frame[column].astype(str).to_numpy()
        per_group = {}
        for group in sorted(set(groups)):
            inside = groups == group
            positives, negatives = truth[inside], ~truth[inside]
            per_group[group] = {
                "rows": int(inside.sum()),
                "accuracy": float(np.mean(chosen[inside] == truth[inside])),
                "selection_rate": float(chosen[inside].mean()),
                "true_positive_rate": float(chosen[inside][positives].mean()) if positives.any() else None,
                "false_positive_rate": float(chosen[inside][negatives].mean()) if negatives.any() else None,
                "mean_probability": float(probability[inside].mean()),
                "observed_rate": float(truth[inside].mean()),
            }
        measures = {"demographic_parity_difference": demographic_parity_difference,
                    "demographic_parity_ratio": demographic_parity_ratio,
                    "equalized_odds_difference": equalized_odds_difference}
        disparities = {}
        for name, measure in measures.items():
            value = float(measure(truth, chosen, sensitive_features=groups))
            samples = []
            for _ in range(bootstrap):
                pick = rng.integers(0, len(groups), len(groups))
                if len(set(groups[pick])) == len(per_group):
                    samples.append(float(measure(truth[pick], chosen[pick], sensitive_features=groups[pick])))
            low, high = (np.nanpercentile(samples, [2.5, 97.5]).tolist() if samples else [None, None])
            entry = {"value": value, "ci95": [low, high]}
            if name in limits:
                entry["threshold"] = limits[name]
                entry["flagged"] = bool(value > limits[name])
            disparities[name] = entry
        found.columns[column] = {"groups": per_group, "disparities": disparities}
    if not found.path.is_dir():
        make_dir(found.path)
    write_json(found.path / RECORD, found.to_json())
    return found


audit_fairness = audit  # layerforge.audit_fairness

__all__ = ["THRESHOLDS", "Audited", "audit", "audit_fairness"]
