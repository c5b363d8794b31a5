"""Cross-validation: estimate a spec honestly with k folds, then keep the k models.

``cross_validate(spec, folds=5, repeats=1)`` trains one run per fold, each split by its data
kind's cross-validation plan (``Kind.cv_plan``): stratified k-fold for classes, grouped when
``data.groups`` names a column, expanding windows in time order for forecasts and corpora. The
test part (the rows a plain run of the spec tests on) is held out of every fold. It writes::

    RUNS/<name>-cv-<time>/
      <name>-fold1-<time>/ ...   one run directory per fold (and repeat)
      cv.json                    per split and metric: each fold's value, mean, std and 95% interval
      oof.csv                    the out-of-fold prediction of every training row, with its fold (a
                                 detection's: a row per box, its picture the source row)
      cv.html                    the folds' curves, the spread of their scores, the summary

``layerforge ensemble CV_DIR`` then combines the fold models into one ensemble run.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import tasks
from ..api import DEFAULT_SPEC, train
from ..data.kinds import kind_of
from ..data.prepare import load_source, split_parts
from ..errors import DataError
from ..figures import Block, Table, charts
from ..files import write_json
from ..progress import Meter
from ..run.directory import Run
from ..run.store import recorded_parts, usable_runs_dir
from ..spec.load import load_spec
from ..tracking import parent_run
from . import RunGroup, run_line

SUMMARY, OOF, PAGE = "cv.json", "oof.csv", "cv.html"


@dataclass
class CrossValidated(RunGroup):
    """The fold runs of a cross-validation, its summary and out-of-fold predictions."""

    oof: Any = None  # a DataFrame

    def blocks(self) -> list[Block]:
        """Each metric's mean, spread and 95% interval over the folds (the console and pages)."""
        def said(entry) -> str:
            low, high = entry["ci95"]
            if low is None or math.isnan(low):
                return "-"
            cut = " (cut at the metric's range)" if entry.get("clipped_to") else ""
            return f"{low:.4f} to {high:.4f}{cut}"

        rows = [[f"{split} {name}", entry["mean"], entry["std"], said(entry)]
                for split, metrics in self.summary.items() for name, entry in metrics.items()]
        return [Table(["metric", "mean", "std", "95% interval"], rows, title=f"{len(self.runs)} folds")]


def interval(values: list[float], bounds: tuple[float | None, float | None] = (None, None)) -> dict[str, Any]:
    """Mean, sample standard deviation and the 95% interval of the mean (Student's t), cut at
    the metric's ``bounds`` (its lowest and highest possible values; None: unbounded), with
    ``clipped_to`` saying so when it was."""
    from scipy import stats

    n = len(values)
    mean = float(np.mean(values))
    std = float(np.std(values, ddof=1)) if n > 1 else 0.0
    half = float(stats.t.ppf(0.975, n - 1) * std / math.sqrt(n)) if n > 1 else float("nan")
    low, high = mean - half, mean + half
    floor, ceiling = bounds
    clipped = (floor is not None and low < floor) or (ceiling is not None and high > ceiling)
    if floor is not None:
        low = max(low, floor)
    if ceiling is not None:
        high = min(high, ceiling)
    found = {"mean": mean, "std": std, "ci95": [low, high], "values": values}
    if clipped:  # Student's t does not know the metric's range: its interval is cut at the range's ends
        found["clipped_to"] = [floor, ceiling]
    return found


def cross_validate(spec: Any = None, folds: int = 5, *, repeats: int = 1,
                   overrides: list[str] | tuple[str, ...] = (), runs_dir: str | Path = "runs",
                   log=None, progress=None, data: Any = None) -> CrossValidated:
    """Train ``spec`` on each of ``folds`` folds (``repeats`` times, each dealing the folds anew).

    Args:
        spec: a YAML path, a dict or a ``Spec`` (None: the built-in default).
        folds: how many folds (at least 2).
        repeats: how many times the folds are dealt (shuffled plans only).
        overrides: ``key=value`` settings, as ``layerforge train --set``.
        runs_dir: where the cross-validation directory is made.
        log: called with a line per finished fold.
        progress: where to show the folds' progress and time left (a Rich console or a text stream;
            ``layerforge.progress``); None shows nothing.
        data: rows in memory instead of the spec's file (a DataFrame or arrays ``(X, y)``, as
            ``train`` takes them).

    Returns:
        ``CrossValidated``: the runs, the summary of cv.json and the out-of-fold table.

    Raises:
        SpecError, DataError: before any fold is trained (e.g. fewer groups than folds).
    """
    if folds < 2:
        raise ValueError(f"folds: expected at least 2, got {folds}")
    if repeats < 1:
        raise ValueError(f"repeats: expected at least 1, got {repeats}")
    frame = None
    if data is not None:
        from ..api import in_memory

        spec, overrides, frame = in_memory(spec, overrides, data)
    spec = DEFAULT_SPEC if spec is None else spec
    base = load_spec(spec, overrides)
    data = base.data
    kind = kind_of(data)
    source = load_source(data, base.task, frame)
    task_class = tasks.get(base.task or kind.default_task(source))
    seed = data.split.seed_or(base.seed)
    stratify = task_class.stratify and source.labels is not None
    plans = []
    for repeat in range(repeats):
        for fold in range(folds):
            plan = kind.cv_plan(data, source, seed, stratify, folds, fold, deal=None if repeat == 0 else repeat)
            if repeat and plan == plans[fold][2]:
                raise DataError(f"--repeats {repeats}: {kind.name} data is cross-validated in order, so every repeat "
                                "would train the same folds; use --repeats 1")
            try:
                _, parts = split_parts(data, kind, source, task_class, seed, plan)
            except ValueError as error:
                raise DataError(str(error)) from None
            if len(parts["val"]) == 0:
                raise DataError(f"fold {fold + 1} of {folds} has no validation rows: {source.label} is too small for "
                                f"{folds} folds; use fewer")
            plans.append((repeat, fold, plan))
    folder = usable_runs_dir(Path(runs_dir) / f"{base.name}-cv-{time.strftime('%Y%m%d-%H%M%S')}")
    found = CrossValidated(path=folder, headline=task_class.headline)
    frames = []
    with parent_run(base, folder.name, "cross-validation") as record:
        meter = Meter("fold", len(plans), progress, log=log)
        for repeat, fold, plan in plans:
            label = f"fold{fold + 1}" + (f"-r{repeat + 1}" if repeats > 1 else "")
            run = train(spec, overrides=[*overrides, f"name={base.name}-{label}"], runs_dir=folder, plan=plan,
                        source=source)
            found.runs.append(run)
            frames.append(_out_of_fold(run, source, fold + 1, repeat + 1 if repeats > 1 else None))
            meter.advance(line=run_line(label, run.metrics.get("val") or {}, "val "))
        meter.close()
        record({f"mean_val_{k}": float(np.mean(v)) for k, v in (found.values().get("val") or {}).items()
                if v and all(isinstance(x, (int, float)) for x in v)})
    import pandas as pd

    found.oof = pd.concat([f for f in frames if f is not None], ignore_index=True) if any(
        f is not None for f in frames) else None
    if found.oof is not None:
        found.oof.to_csv(folder / OOF, index=False)
    for split, metrics in found.values().items():
        for name, values in metrics.items():
            found.summary.setdefault(split, {})[name] = interval(
                [float(v) for v in values if v is not None and math.isfinite(v)], task_class.bounds_of(name))
    write_json(folder / SUMMARY, {"spec": base.name, "folds": folds, "repeats": repeats,
                                  "plan": found.runs[0].manifest.split.plan if found.runs[0].manifest.split else None,
                                  "runs": [run.path.name for run in found.runs], "headline": found.headline,
                                  "summary": found.summary})
    _write_page(found, base.name, folds, repeats)
    return found


def _out_of_fold(run: Run, source, fold: int, repeat: int | None):
    """The fold model's predictions of its validation rows, with their source row and truth."""
    from ..recipes.scaffold import as_tensors

    try:
        inputs, y = run.held_out("val")
    except DataError:
        return None
    import torch

    with torch.no_grad():
        tensors, _ = as_tensors((inputs, y), run.task, "cpu")
        try:
            table = run.task.prediction_table(run.model, tensors, run.manifest.target)
        except DataError:  # a task that does not predict rows
            return None
    recorded = recorded_parts(run.path)
    positions = recorded[1]["val"] if recorded else None
    decoding = run.task.decoding()
    if positions is not None and decoding.table_rows == "part":  # a row per box: its picture is its source row
        table = type(table)(decoding.named({name: table[name] for name in table.columns}, positions.tolist()))
    elif positions is not None and len(positions) == len(table):
        table.insert(0, "row", positions)
        if source.labels is not None and np.ndim(source.labels) == 1:  # one truth per row (not a mask)
            table.insert(1, "true", np.asarray(source.labels)[positions])
    if repeat is not None:
        table.insert(0, "repeat", repeat)
    table.insert(0, "fold", fold)
    return table


def _out_of_fold_pictures(found: CrossValidated) -> list[tuple[str, bytes]]:
    """Every row's out-of-fold prediction against its truth: a confusion matrix for classes, the
    predicted values against the true ones otherwise."""
    oof = found.oof
    if oof is None or "true" not in oof.columns or not found.runs:
        return []
    task = found.runs[0].task
    predicted = oof.columns[list(oof.columns).index("true") + 1]
    if task.classes:
        names = [str(c) for c in task.classes]
        index = {name: i for i, name in enumerate(names)}
        true = oof["true"].astype(str).map(index)
        guess = oof[predicted].astype(str).map(index)
        known = true.notna() & guess.notna()
        return [(f"out-of-fold confusion matrix ({int(known.sum())} rows)",
                 charts.confusion_matrix(true[known].to_numpy(int), guess[known].to_numpy(int), list(task.classes),
                                         rows="out-of-fold"))]
    try:
        true, guess = oof["true"].to_numpy(float), oof[predicted].to_numpy(float)
    except (TypeError, ValueError):  # answers that are not one number per row
        return []
    return [(f"out-of-fold predictions ({len(true)} rows)",
             charts.regression(true, guess, predicted, rows="out-of-fold"))]


def _write_page(found: CrossValidated, name: str, folds: int, repeats: int) -> None:
    from ..report.html import build_study_page

    summary = [["folds", folds], ["repeats", repeats], ["runs", len(found.runs)]]
    for split, metrics in found.summary.items():
        for metric, entry in metrics.items():
            low, high = entry["ci95"]
            summary.append([f"{split} {metric}", f"{entry['mean']:.4f} ± {entry['std']:.4f} "
                                                 f"(95% interval {low:.4f} to {high:.4f})"])
    header = ["fold", *[f"{split} {m}" for split, metrics in found.summary.items() for m in metrics]]
    rows = [[run.path.name, *[run.metrics.get(split, {}).get(m) for split, metrics in found.summary.items()
                              for m in metrics]] for run in found.runs]
    pictures = found.curves([run.path.name for run in found.runs], "per-fold {key}")
    spread = {f"{split} {m}": entry["values"] for split, metrics in found.summary.items()
              for m, entry in metrics.items() if m in (found.headline, "loss")}
    if spread:
        pictures.append(("fold spread", charts.fold_spread(spread)))
    pictures += _out_of_fold_pictures(found)
    build_study_page(found.path / PAGE, f"layerforge cross-validation: {name}",
                     f"{len(found.runs)} fold runs · {found.path.name}", summary, (header, rows), pictures,
                     trials_title="Folds")
