"""``layerforge tune``: search hyperparameters (and architectures) with Optuna; write best.yaml,
trials.csv and report.html. Worker processes (``--jobs``) are started by the library."""

from __future__ import annotations

from pathlib import Path

import typer

from .common import RUNS_DIR, guard, make_console, show, training_stack


def tune(
    spec: Path = typer.Argument(..., help="A spec with a search section."),
    trials: int | None = typer.Option(None, "--trials", min=1, help="Trials this command runs (default: search.trials); commands on one study add up."),
    timeout: float | None = typer.Option(None, "--timeout", min=0, help="Seconds after which no new trial starts."),
    storage: str | None = typer.Option(None, "--storage", help="Optuna storage URL (default: RUNS/STUDY/study.db); e.g. postgresql://user@host/db."),
    study: str | None = typer.Option(None, "--study", help="The study's name and directory (default: the spec's name)."),
    jobs: int = typer.Option(1, "--jobs", min=1, help="Worker processes on this machine."),
    overrides: list[str] = typer.Option([], "--set", help="Override a spec value, e.g. --set search.trials=10."),
    runs_dir: Path = RUNS_DIR,
    quiet: bool = typer.Option(False, "--quiet", help="No progress and no line per trial."),
) -> None:
    """Search hyperparameters (and architectures) with Optuna; write best.yaml, trials.csv and report.html."""
    training_stack()
    from ..search import tune as run_search

    console = make_console(stderr=True)

    def call():
        return run_search(spec, overrides=overrides, trials=trials, timeout=timeout, storage=storage, study=study,
                          jobs=jobs, runs_dir=runs_dir,
                          progress=None if quiet else console)

    try:
        tuned = guard(call)
    except KeyboardInterrupt:
        console.print("interrupted: the study keeps its finished trials; run the same command to continue it",
                      markup=False)
        raise typer.Exit(130) from None
    print(tuned.path)
    show(tuned.blocks(), console)

