"""``layerforge cv``: cross-validate a spec: one run per fold (stratified, grouped by data.groups, or in time"""

from __future__ import annotations

from pathlib import Path

import typer

from .common import RUNS_DIR, guard, make_console, show, training_stack


def cv(
    spec: Path | None = typer.Argument(None, help="Spec YAML file; omit it for the built-in default (MLP on digits)."),
    folds: int = typer.Option(5, "--folds", min=2, help="How many folds."),
    repeats: int = typer.Option(1, "--repeats", min=1, help="Deal the folds this many times (shuffled data only)."),
    set_: list[str] = typer.Option([], "--set", help="Override a spec key, e.g. --set train.epochs=30 (repeatable)."),
    runs_dir: Path = RUNS_DIR,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only the cross-validation directory."),
) -> None:
    """Cross-validate a spec: one run per fold (stratified, grouped by data.groups, or in time
    order), out-of-fold predictions, and each metric's mean, spread and 95% interval."""
    training_stack()
    from ..evaluation.cv import OOF, PAGE, SUMMARY, cross_validate

    console = make_console()
    found = guard(lambda: cross_validate(spec, folds, repeats=repeats, overrides=set_, runs_dir=runs_dir,
                                         progress=None if quiet else console))
    if quiet:
        print(found.path)
        return
    show(found.blocks(), console)
    console.print(f"folds, {SUMMARY}, {OOF} and {PAGE}: {found.path}", markup=False)
    if found.runs and found.runs[0].task.ensembles:
        console.print(f"ship the {len(found.runs)} fold models as one: layerforge ensemble {found.path}", markup=False)

