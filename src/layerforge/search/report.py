"""What a search leaves in its directory: best.yaml, trials.csv and report.html."""

from __future__ import annotations

import csv
import io
import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..figures import Block, Note, charts
from ..files import atomic_write
from ..report.html import build_study_page


@dataclass
class Tuned:
    """What a tune leaves: the study directory, its counts, and the best trial's run and spec."""

    path: Path
    study: str
    metric: str
    direction: str
    counts: dict[str, int] = field(default_factory=dict)
    best_value: float | None = None
    best_trial: int | None = None
    best_run: Path | None = None
    best_spec: Path | None = None

    def blocks(self) -> list[Block]:
        """The trials' counts and the best trial (the console)."""
        counts = ", ".join(f"{count} {name}" for name, count in self.counts.items() if count)
        if self.best_trial is None:
            return [Note(f"{counts}; no trial completed")]
        said = [Note(f"{counts}; best: trial {self.best_trial}, validation {self.metric} {self.best_value}")]
        if self.best_spec:
            said.append(Note(f"train the best: layerforge train {self.best_spec}"))
        return said


def _trial_rows(study, metric: str) -> tuple[list[str], list[list]]:
    trials = study.get_trials(deepcopy=False)
    params = sorted({name for trial in trials for name in trial.params})
    header = ["trial", "state", f"val {metric}", f"test {metric}", "epochs", "max epochs", "parameters", "seconds",
              "run", "why", *params]
    rows = []
    for trial in trials:
        attrs = trial.user_attrs
        rows.append([trial.number, trial.state.name.lower(), trial.value, attrs.get("test"), attrs.get("epochs"),
                     attrs.get("max_epochs"), attrs.get("parameters"), attrs.get("seconds"), attrs.get("run"),
                     attrs.get("refused") or attrs.get("error"), *(trial.params.get(name) for name in params)])
    return header, rows


def _csv(header: list[str], rows: list[list]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows([["" if v is None else v for v in row] for row in rows])
    return buffer.getvalue()


def _best_spec(folder: Path, trial, raw: dict, study: str) -> Path:
    """The searched spec with the best trial's values in place of its search section: a plain
    spec that trains that trial again."""
    from ..spec.load import set_key

    spec = {key: value for key, value in raw.items() if key != "search"}
    for key, value in (trial.user_attrs.get("values") or {}).items():
        set_key(spec, key, value, key)
    spec["name"] = f"{study}-best"
    best = folder / "best.yaml"
    header = f"# the best trial of study {study} (trial {trial.number}); `layerforge train best.yaml` trains it again\n"
    atomic_write(best, header + yaml.safe_dump(spec, sort_keys=False))
    return best


def _charts(study, metric: str, direction: str) -> tuple[list[tuple[str, bytes]], list[list]]:
    import optuna

    done = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.COMPLETE]
    if not done:
        return [], []
    pictures = []
    values = [t.value for t in done]
    better = max if direction == "maximize" else min
    best = [better(values[: i + 1]) for i in range(len(values))]
    pictures.append(("Optimisation history", charts.search_history([t.number for t in done], values, best, metric)))
    names = sorted({name for t in done for name in t.params})
    axes = []
    for name in names:
        raw = [t.params.get(name) for t in done]
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) or v is None for v in raw):
            axes.append((name, [math.nan if v is None else float(v) for v in raw], None))
        else:
            labels = sorted({json.dumps(v) for v in raw})
            axes.append((name, [labels.index(json.dumps(v)) for v in raw], labels))
    if axes:
        pictures.append(("Parallel coordinates", charts.parallel_coordinates(axes, values, metric)))
    importances = []
    if len(done) >= 3 and names:
        try:
            with warnings.catch_warnings():  # "few trials in some regimes": the page says how many there were
                warnings.simplefilter("ignore", UserWarning)
                found = optuna.importance.get_param_importances(study)
        except (RuntimeError, ValueError, ZeroDivisionError):  # too few or too alike trials
            found = {}
        if found:
            importances = [[name, float(value)] for name, value in found.items()]
            pictures.insert(1, ("Importances", charts.importances(list(found), [float(v) for v in found.values()])))
    return pictures, importances


def summarise(study, folder: Path, metric: str, direction: str, raw: dict):
    """Write trials.csv, best.yaml and report.html; return the ``Tuned`` record."""
    import optuna

    header, rows = _trial_rows(study, metric)
    atomic_write(folder / "trials.csv", _csv(header, rows))
    states = [t.state for t in study.get_trials(deepcopy=False)]
    counts = {name: sum(1 for s in states if s == state) for name, state in
              (("complete", optuna.trial.TrialState.COMPLETE), ("pruned", optuna.trial.TrialState.PRUNED),
               ("failed", optuna.trial.TrialState.FAIL), ("running", optuna.trial.TrialState.RUNNING))}
    tuned = Tuned(path=folder, study=study.study_name, metric=metric, direction=direction, counts=counts)
    if counts["complete"]:
        best = study.best_trial
        tuned.best_value, tuned.best_trial = best.value, best.number
        run = best.user_attrs.get("run")
        tuned.best_run = folder / run if run else None
        tuned.best_spec = _best_spec(folder, best, raw, study.study_name)
    pictures, importances = _charts(study, metric, direction)
    summary = [["study", study.study_name], ["metric", f"validation {metric} ({direction})"],
               *[[name, count] for name, count in counts.items()],
               ["best trial", tuned.best_trial], ["best value", tuned.best_value],
               ["best run", tuned.best_run and tuned.best_run.name], ["best spec", tuned.best_spec and "best.yaml"]]
    sign = -1 if direction == "maximize" else 1
    ordered = sorted(rows, key=lambda row: (row[2] is None, sign * (row[2] or 0)))
    # on the page the searched values come right after the scores, the run's name last
    order = [*range(4), *range(10, len(header)), *range(4, 10)]
    shown = ([header[i] for i in order], [[row[i] for i in order] for row in ordered])
    build_study_page(folder / "report.html", f"layerforge: study {study.study_name}",
                     f"{len(rows)} trials, validation {metric}", summary, shown, pictures)
    return tuned
