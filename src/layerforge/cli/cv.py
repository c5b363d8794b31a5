"""``layerforge cv``: cross-validate a spec: one run per fold (stratified, grouped by data.groups, or in time"""

from __future__ import annotations

from pathlib import Path

import typer

from .common import RUNS_DIR, guard, make_console, training_stack


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
    from rich.table import Table

    from ..evaluation.cv import OOF, PAGE, SUMMARY, cross_validate

    console = make_console()
    log = None if quiet else (lambda line: console.print(line, markup=False))
    found = guard(lambda: cross_validate(spec, folds, repeats=repeats, overrides=set_, runs_dir=runs_dir, log=log))
    if quiet:
        print(found.path)
        return
    table = Table(title=f"{len(found.runs)} folds")
    for column in ("metric", "mean", "std", "95% interval"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    for split, metrics in found.summary.items():
        for name, entry in metrics.items():
            low, high = entry["ci95"]
            table.add_row(f"{split} {name}", f"{entry['mean']:.4f}", f"{entry['std']:.4f}", f"{low:.4f} to {high:.4f}")
    console.print(table)
    console.print(f"folds, {SUMMARY}, {OOF} and {PAGE}: {found.path}", markup=False)
    console.print(f"ship the {len(found.runs)} fold models as one: layerforge ensemble {found.path}", markup=False)

