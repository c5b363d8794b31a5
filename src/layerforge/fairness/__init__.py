"""``layerforge fairness``: does a classifier treat groups of people alike?

For each sensitive column (it may be a feature or a column the model never read), on the run's
test rows (or given rows that carry the column and the target): per group the size, accuracy,
selection rate (share predicted ``positive``), true and false positive rates, and calibration
(mean predicted probability of ``positive`` against the observed rate); then the
demographic-parity difference and ratio and the equalized-odds difference (fairlearn's
definitions), each with a 95% bootstrap interval, flagged against thresholds. Results go to
``RUN/fairness/fairness.json`` and the report's Fairness section.

Mitigation (``mitigate``) post-processes a binary classifier: per-group thresholds on its
probability of ``positive``, fitted on the validation (or training) rows so that every group gets
the same selection rate (demographic parity) or true positive rate, with the best accuracy that
allows. They make a new version of the run (a run directory beside it whose model.json holds them,
so that ``predict`` applies them there); the run it was made from answers as before. The test rows
measure the disparities and the accuracy before and after (``fairness/mitigation.json`` of the new
version).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..capabilities import FairnessAudit, Mitigation
from ..capabilities import get as capability
from ..codecs.cells import group_keys, shown
from ..data.prepare import load_source
from ..errors import DataError, SpecError
from ..run.decisions import CONSTRAINTS, GroupThresholds, fit_thresholds
from ..run.directory import Run
from ..run.store import recorded_parts
from ..run.versions import new_version

THRESHOLDS = {"demographic_parity_difference": 0.1, "equalized_odds_difference": 0.1}


Audited = FairnessAudit  # the result of ``audit``
Mitigated = Mitigation  # the result of ``mitigate``


def _rows(run: Run, data, sensitive: list[str], part: str = "test"):
    """Raw rows with the target and the sensitive columns: given, or the run's rows of ``part``."""
    import pandas as pd

    from ..data.tabular import read_table

    if data is not None:
        frame = data if isinstance(data, pd.DataFrame) else read_table(Path(data))
        where = str(data) if not isinstance(data, pd.DataFrame) else "the rows"
    else:
        if not run.manifest.preprocessing.named_columns:
            raise DataError("a fairness audit reads table rows; pass rows that carry the sensitive columns")
        source = load_source(run.spec.data, run.manifest.task)
        recorded = recorded_parts(run.path, run.manifest.files)
        rows = recorded[1].get(part, np.zeros(0, dtype=np.int64)) if recorded else np.zeros(0, dtype=np.int64)
        if len(rows) == 0:
            raise DataError(f"this run has no {PARTS[part]} rows; " + ("pass rows to audit" if part == "test" else
                            "fit the thresholds on another part (--fit-on)"))
        frame = source.payload.iloc[rows].reset_index(drop=True)
        where = f"{source.label} (the run's {PARTS[part]} rows)"
    missing = [c for c in [*sensitive, run.manifest.target] if c not in frame.columns]
    if missing:
        raise DataError(f"--sensitive: column '{missing[0]}' is not in {where}; its columns: "
                        f"{', '.join(map(str, frame.columns))}")
    return frame


PARTS = {"train": "training", "val": "validation", "test": "test"}


def _groups(column) -> np.ndarray:
    """Each row's group in a sensitive column: its category key, missing values one group
    (``codecs.cells.group_keys``, as per-group decisions read them)."""
    return np.asarray(group_keys(column.to_numpy()), dtype=object)


def _measured(truth: np.ndarray, chosen: np.ndarray, probability: np.ndarray, groups: np.ndarray,
              limits: dict[str, float], rng, bootstrap: int) -> dict[str, Any]:
    """Each group's rates, and the disparities with 95% bootstrap intervals and flags."""
    from fairlearn.metrics import (
        demographic_parity_difference,
        demographic_parity_ratio,
        equalized_odds_difference,
    )

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
    if len(per_group) < 2:  # a disparity compares groups: one group has none, rather than a perfect score
        only = next(iter(per_group), None)
        return {"accuracy": float(np.mean(chosen == truth)) if len(truth) else float("nan"), "groups": per_group,
                "disparities": {}, "note": f"these rows hold one group only ({shown(only)}): disparities compare "
                                           "two or more groups, so none is measured"}
    measures = {"demographic_parity_difference": demographic_parity_difference,
                "demographic_parity_ratio": demographic_parity_ratio,
                "equalized_odds_difference": equalized_odds_difference}
    names, index = np.unique(groups, return_inverse=True)
    resampled = []  # the disparities of each bootstrap sample that holds every group
    for _ in range(bootstrap):
        pick = rng.integers(0, len(groups), len(groups))
        if len(np.unique(index[pick])) == len(names):
            resampled.append(disparities_of(truth[pick], chosen[pick], index[pick], len(names)))
    disparities = {}
    for name, measure in measures.items():
        value = float(measure(truth, chosen, sensitive_features=groups))
        samples = [sample[name] for sample in resampled]
        low, high = (np.nanpercentile(samples, [2.5, 97.5]).tolist() if samples else [None, None])
        entry = {"value": value, "ci95": [low, high]}
        if name in limits:
            entry["threshold"] = limits[name]
            entry["flagged"] = bool(value > limits[name])
        disparities[name] = entry
    return {"accuracy": float(np.mean(chosen == truth)), "groups": per_group, "disparities": disparities}


def disparities_of(truth: np.ndarray, chosen: np.ndarray, index: np.ndarray, groups: int) -> dict[str, float]:
    """fairlearn's three disparities, computed at once with counts (``index``: each row's group
    number): the demographic-parity difference and ratio of the selection rates, and the
    equalized-odds difference, the larger of the spreads of the true and false positive rates."""
    def rates(inside: np.ndarray) -> np.ndarray:  # a group without such rows counts 0, as fairlearn does
        rows = np.bincount(index[inside], minlength=groups)
        hits = np.bincount(index[inside], weights=chosen[inside].astype(np.float64), minlength=groups)
        return np.divide(hits, rows, out=np.zeros(groups), where=rows > 0)

    selection = rates(np.ones(len(index), dtype=bool))
    spread = [r.max() - r.min() for r in (rates(truth), rates(~truth))]
    high = selection.max()
    return {"demographic_parity_difference": float(high - selection.min()),
            "demographic_parity_ratio": float(selection.min() / high) if high > 0 else float("nan"),
            "equalized_odds_difference": float(max(spread))}


def _scored(run: Run, frame, positive) -> tuple[np.ndarray, np.ndarray]:
    """Whether each row's target is ``positive``, and the model's probability of ``positive``."""
    truth = frame[run.manifest.target].astype(str).to_numpy() == str(positive)
    probability = run.predict_proba(frame.drop(columns=[run.manifest.target]), ignore_extra=True)
    return truth, probability[:, [str(c) for c in run.task.classes].index(str(positive))]


def _fairlearn() -> None:
    try:
        import fairlearn  # noqa: F401
    except ImportError:
        raise DataError("fairness audits need fairlearn: pip install 'layerforge[fairness]'") from None


def _positive(task, positive):
    """The favourable class: given (checked), or the second of two classes."""
    names = [str(c) for c in task.classes]
    if positive is None:
        if len(names) != 2:
            raise DataError(f"--positive: this run has {len(names)} classes; say which one is the favourable outcome "
                            f"({', '.join(names)})")
        return task.classes[1]
    if str(positive) not in names:
        raise DataError(f"--positive: {shown(positive)} is not a class of this run ({', '.join(names)})")
    return task.classes[names.index(str(positive))]


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
    _fairlearn()
    run = run if isinstance(run, Run) else Run(run)
    capability("fairness").check(run)
    task = run.task
    if not sensitive:
        raise DataError("--sensitive: name at least one column whose groups to compare")
    positive = _positive(task, positive)
    limits = {**THRESHOLDS, **(thresholds or {})}
    frame = _rows(run, data, sensitive)
    truth, probability = _scored(run, frame, positive)
    decided = run.predict(frame.drop(columns=[run.manifest.target]), ignore_extra=True)
    chosen = np.asarray(decided).astype(str) == str(positive)
    rng = np.random.default_rng(seed)
    found = FairnessAudit(path=run.path / FairnessAudit.folder, positive=positive, rows=int(len(frame)), columns={
        column: _measured(truth, chosen, probability, _groups(frame[column]), limits, rng, bootstrap)
        for column in sensitive})
    found.write()
    return found


def mitigate(run: Run | str | Path, sensitive: str, constraint: str = "demographic_parity", *, positive=None,
             fit_on: str = "val", thresholds: dict[str, float] | None = None, bootstrap: int = 200,
             seed: int = 0) -> Mitigated:
    """Post-process a binary classifier so that the groups of ``sensitive`` are treated alike.

    Per-group thresholds on the probability of ``positive`` are fitted on the run's ``fit_on``
    rows ('val' or 'train'; the test rows only measure) so that every group gets the same
    selection rate (``demographic_parity``) or true positive rate
    (``true_positive_rate_parity``), at the common rate that classifies those rows best; or
    (``equalized_odds``) true and false positive rates as near a common point as single
    thresholds allow (exact equality needs randomised ones, which predict would not repeat).

    They make a new version of the run beside it (``Mitigation.version_dir``), whose ``predict``
    applies them (rows must carry the column); ``run`` itself is not changed.

    Raises:
        DataError: not a two-class run, an ensemble, an unknown constraint or part, a missing
            column, or a group that the fitting rows do not cover.
    """
    _fairlearn()
    run = run if isinstance(run, Run) else Run(run)
    capability("mitigate").check(run)
    task = run.task
    if constraint not in CONSTRAINTS:
        raise DataError(f"--mitigate: {constraint!r} is not a constraint layerforge meets "
                        f"(choices: {', '.join(CONSTRAINTS)}, none)")
    if fit_on not in ("val", "train"):
        raise DataError(f"--fit-on: expected val or train, got {fit_on!r}")
    positive = _positive(task, positive)
    names = [str(c) for c in task.classes]
    other = task.classes[1 - names.index(str(positive))]
    column = sensitive

    def scored(part: str):
        frame = _rows(run, None, [column], part)
        return *_scored(run, frame, positive), _groups(frame[column])

    truth, probability, groups = scored(fit_on)
    if len(set(groups)) < 2:
        raise DataError(f"--sensitive {column}: the {PARTS[fit_on]} rows hold one group only ({shown(groups[0])}); "
                        "per-group thresholds need two or more groups to treat alike")
    for group in sorted(set(groups)):
        if constraint == "equalized_odds" and truth[groups == group].all():
            raise DataError(f"--sensitive {column}: group {shown(group)} has only '{positive}' rows among the "
                            f"{PARTS[fit_on]} rows, so its false positive rate cannot be matched; fit on more rows "
                            "(--fit-on train)")
        if constraint != "demographic_parity" and not truth[groups == group].any():
            raise DataError(f"--sensitive {column}: group {shown(group)} has no '{positive}' rows among the "
                            f"{PARTS[fit_on]} rows, so its true positive rate cannot be matched; fit on more rows "
                            "(--fit-on train)")
    fitted, rate = fit_thresholds(probability, truth, groups, constraint)
    test_truth, test_probability, test_groups = scored("test")
    unseen = sorted(set(test_groups) - set(fitted))
    if unseen:
        raise DataError(f"--sensitive {column}: group {shown(unseen[0])} of the test rows has no {PARTS[fit_on]} "
                        "rows to fit its threshold on")
    decision = GroupThresholds(column=column, positive=positive, other=other, constraint=constraint,
                               thresholds=fitted, fitted_on=f"{PARTS[fit_on]} rows ({len(truth)})")
    before = test_probability >= 0.5
    after = decision.decide_by(test_probability, test_groups).astype(str) == str(positive)
    limits = {**THRESHOLDS, **(thresholds or {})}
    found = Mitigation(column=column, constraint=constraint, positive=positive, fitted_on=decision.fitted_on,
                       rate=rate, thresholds=fitted, made_from=run.path.name,
                       before=_measured(test_truth, before, test_probability, test_groups, limits,
                                        np.random.default_rng(seed), bootstrap),
                       after=_measured(test_truth, after, test_probability, test_groups, limits,
                                       np.random.default_rng(seed), bootstrap))

    def recorded(version: Path) -> None:
        found.path, found.version = version / Mitigation.folder, version.name
        found.write()

    new_version(run, f"fairness mitigation: {constraint} on '{column}'", {"decision": decision}, recorded)
    return found


def remove_mitigation(run: Run | str | Path) -> Path | None:
    """A new version of a run that decides by per-group thresholds, without them (``predict``
    decides by the model's probabilities there); returns it, or None when the run has none.
    The run itself is not changed."""
    run = run if isinstance(run, Run) else Run(run)
    if run.manifest.decision is None:
        return None
    return new_version(run, "per-group thresholds removed", {"decision": None})


def reweighing(wanted, prepared) -> np.ndarray:
    """Kamiran and Calders' weight of each training row for ``train.fairness``: P(group) P(label)
    / P(group, label), so that in the weighted rows the label is independent of the group.

    Raises:
        SpecError: not a classification of table rows, or no such column.
    """
    column, task = wanted.sensitive, prepared.task
    if not task.classes:
        raise SpecError(f"train.fairness: reweighing balances labels across groups; this run does {task.name}")
    frame = prepared.source.payload
    if not hasattr(frame, "columns") or column not in frame.columns:
        listed = f"; its columns: {', '.join(map(str, frame.columns))}" if hasattr(frame, "columns") else ""
        raise SpecError(f"train.fairness.sensitive: column '{column}' is not in {prepared.source.label}{listed}")
    rows = prepared.parts["train"]
    groups = _groups(frame[column].iloc[rows])
    labels = prepared.source.labels.iloc[rows].astype(str).to_numpy()
    weights = np.empty(len(rows))
    for group in set(groups):
        for label in set(labels):
            both = (groups == group) & (labels == label)
            if both.any():
                weights[both] = (groups == group).mean() * (labels == label).mean() / both.mean()
    return weights


audit_fairness = audit  # layerforge.audit_fairness
mitigate_fairness = mitigate  # layerforge.mitigate_fairness

__all__ = ["THRESHOLDS", "Audited", "Mitigated", "audit", "audit_fairness", "disparities_of", "mitigate",
           "mitigate_fairness", "remove_mitigation", "reweighing"]
