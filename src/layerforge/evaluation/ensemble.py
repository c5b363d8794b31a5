"""Ensembles: several trained runs of one task combined into one run directory.

An ensemble is made from a cross-validation directory (its fold models), from one spec trained
under several seeds on one split (a deep ensemble), or from a list of runs. It is a run
directory like any other (``predict``, ``evaluate``, ``report`` accept it)::

    RUNS/<name>-ensemble-<time>/
      model.json        the first member's manifest, plus ``ensemble``: the members and what made them
      spec.yaml         the first member's spec
      metrics.json      the ensemble and each member on the test rows they all held out
      members/<run>/    each member's run directory (its checkpoints left behind)
      report.html

Classification averages the members' probabilities (each with its own calibration) and reports
``disagreement``, the share of members whose class differs from the ensemble's; regression
averages the members' values on the original scale and reports their standard deviation as
``uncertainty``. Every member reads new rows with its own fitted preprocessing.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

from ..errors import CheckpointError, DataError
from ..files import make_dir, read_json, remove, rename, sha256_file, write_json
from ..run.directory import Run
from ..run.ensemble import MEMBERS, EnsemblePredictor, same_task, score_on_shared_rows
from ..run.manifest import EnsembleRecord
from ..run.store import CHECKPOINTS, HISTORY, METRICS, MODEL, SPEC, file_checksums, usable_runs_dir
from ..spec.load import load_spec


def build_ensemble(runs: list[str | Path | Run], *, runs_dir: str | Path = "runs", name: str | None = None,
                   made_from: str = "runs", log=None) -> Run:
    """Combine trained runs into an ensemble run directory (see the module's docstring).

    Args:
        runs: at least two run directories of one task, target and class list.
        name: the ensemble's name (default: the first member's spec name).
        made_from: 'cross-validation', 'seeds' or 'runs' (recorded in model.json).
        log: called with a line per step.

    Raises:
        DataError: fewer than two runs, runs of different tasks, or of a task that does not
            combine; CheckpointError: a run did not finish.
    """
    from ..report.html import build_ensemble_page

    runs = [run if isinstance(run, Run) else Run(run) for run in runs]
    if len(runs) < 2:
        raise DataError(f"an ensemble needs at least two runs, got {len(runs)}")
    seen: dict[str, Path] = {}
    for run in runs:  # the same model twice would be counted as two opinions
        weights = run.path / "model.safetensors"
        digest = sha256_file(weights) if weights.is_file() else str(run.path.resolve())
        if digest in seen:
            same = "is given twice" if seen[digest].resolve() == run.path.resolve() else \
                f"and {seen[digest]} hold the same weights"
            raise DataError(f"{run.path} {same}: an ensemble combines different models; give each run once")
        seen[digest] = run.path
    same_task([run.manifest for run in runs], [str(run.path) for run in runs])
    for run in runs:
        run.predictor  # noqa: B018 -- a run without final weights fails here, before anything is written
    lead = runs[0]
    name = name or lead.spec.name
    runs_dir = usable_runs_dir(runs_dir)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    building = runs_dir / f".{name}-ensemble-{stamp}.tmp"
    make_dir(building)
    make_dir(building / MEMBERS)
    try:
        names = []
        for i, run in enumerate(runs):
            member = f"{i:02d}-{run.path.name}"[:100]
            shutil.copytree(run.path, building / MEMBERS / member,
                            ignore=shutil.ignore_patterns(CHECKPOINTS, "tensorboard", ".*"))
            names.append(f"{MEMBERS}/{member}")
        record = EnsembleRecord(members=names, made_from=made_from)
        manifest = lead.manifest.model_copy(update={"ensemble": record, "files": None, "temperature": None})
        manifest.write(building / MODEL)
        shutil.copyfile(lead.path / SPEC, building / SPEC)
        (building / HISTORY).write_text("", encoding="utf-8")  # an ensemble trains no epochs of its own
        predictor = EnsemblePredictor.load(building, manifest)
        try:
            scores = score_on_shared_rows(runs, predictor)
        except DataError as error:
            if log:
                log(f"no test rows to score the ensemble on: {error}")
            scores = {"members": None}
        epochs = [int(run.metrics.get("epochs") or 0) for run in runs]
        write_json(building / METRICS, {**scores, "epochs": max(epochs), "best_epoch": 0, "stopped_early": False,
                                        "ensemble": {"members": len(runs), "made_from": made_from}})
        manifest.model_copy(update={"files": file_checksums(building)}).write(building / MODEL)
        target = runs_dir / f"{name}-ensemble-{stamp}"
        attempt = 1
        while target.exists():
            attempt += 1
            target = runs_dir / f"{name}-ensemble-{stamp}-{attempt}"
        rename(building, target)
    except BaseException:
        remove(building)
        raise
    build_ensemble_page(target)
    if log:
        log(f"ensemble of {len(runs)} runs: {target}")
    return Run(target)


def ensemble_from(source: str | Path, *, runs_dir: str | Path | None = None, log=None) -> Run:
    """The ensemble of a cross-validation directory (cv.json) or a seeds directory (seeds.json):
    its runs, written beside them unless ``runs_dir`` says otherwise."""
    from .cv import SUMMARY as CV_SUMMARY
    from .seeds import SUMMARY as SEEDS_SUMMARY

    folder = Path(source)
    for summary, made_from in ((CV_SUMMARY, "cross-validation"), (SEEDS_SUMMARY, "seeds")):
        if (folder / summary).is_file():
            record = read_json(folder / summary)
            listed = record.get("runs") or []
            return build_ensemble([folder / run for run in listed], runs_dir=runs_dir or folder,
                                  name=record.get("spec"), made_from=made_from, log=log)
    raise CheckpointError(f"{folder}: neither a cross-validation directory ({CV_SUMMARY}) nor a seeds directory "
                          f"({SEEDS_SUMMARY}); pass run directories instead")


def train_ensemble(spec: Any, seeds: int = 5, *, overrides: list[str] | tuple[str, ...] = (),
                   runs_dir: str | Path = "runs", log=None, progress=None, data: Any = None) -> Run:
    """A deep ensemble: ``spec`` trained under ``seeds`` seeds on one split (its seed's), so the
    members differ only in initialisation and batch order and share their test rows."""
    from .seeds import train_seeds

    if data is not None:
        from ..api import in_memory

        spec, overrides, _ = in_memory(spec, overrides, data)
    base = load_spec(spec, overrides)
    split_seed = base.data.split.seed_or(base.seed)
    trained = train_seeds(spec, seeds, overrides=[*overrides, f"data.split.seed={split_seed}"], runs_dir=runs_dir,
                          log=log if progress is None else None, progress=progress, data=data)
    return build_ensemble(trained.runs, runs_dir=trained.path, name=base.name, made_from="seeds", log=log)


def ensemble(source: Any, *, seeds: int = 0, overrides: list[str] | tuple[str, ...] = (),
             runs_dir: str | Path | None = None, log=None, progress=None, data: Any = None) -> Run:
    """An ensemble run directory (``layerforge.ensemble``).

    Args:
        source: a cross-validation or seeds directory; a list of run directories; or, with
            ``seeds``, a spec (a YAML path, a dict or a ``Spec``).
        seeds: train the spec under this many seeds on one split (a deep ensemble).
        overrides: ``key=value`` settings for the spec (with ``seeds``).
        runs_dir: where the ensemble is written (default: beside its members, or ``runs``).
        log: called with a line per step.
        progress: with ``seeds``, where to show the members' progress and time left (a Rich
            console or a text stream); None shows nothing.
        data: with ``seeds``, rows in memory instead of the spec's file (as ``train`` takes them).

    Example:
        >>> cv = layerforge.cross_validate("examples/wine.yaml", folds=5)  # doctest: +SKIP
        >>> ens = layerforge.ensemble(cv.path)                            # doctest: +SKIP
        >>> ens.predict_proba(rows)                                        # doctest: +SKIP
    """
    if seeds:
        return train_ensemble(source, seeds, overrides=overrides, runs_dir=runs_dir or "runs", log=log,
                              progress=progress, data=data)
    if data is not None:
        raise ValueError("data= gives the rows a spec trains on: it applies only with seeds")
    if overrides:
        raise ValueError("overrides change a spec: they apply only with seeds")
    if isinstance(source, (list, tuple)):
        return build_ensemble(list(source), runs_dir=runs_dir or "runs", log=log)
    return ensemble_from(source, runs_dir=runs_dir, log=log)
