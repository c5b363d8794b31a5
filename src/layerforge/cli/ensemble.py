"""``layerforge ensemble``: combine runs into one ensemble run (averaged probabilities, or mean and spread of values)"""

from __future__ import annotations

from pathlib import Path

import typer

from .common import fail, guard, make_console, metrics_table, training_stack


def ensemble(
    sources: list[str] = typer.Argument(..., help="A cross-validation or seeds directory, two or more run directories, or with --seeds a spec."),
    seeds: int = typer.Option(0, "--seeds", min=0, help="Train the spec under this many seeds on one split and keep them as a deep ensemble."),
    set_: list[str] = typer.Option([], "--set", help="With --seeds: override a spec key (repeatable)."),
    runs_dir: Path | None = typer.Option(None, "--runs-dir", help="Where the ensemble is written (default: beside its members, or runs/)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only the ensemble's directory."),
) -> None:
    """Combine runs into one ensemble run (averaged probabilities, or mean and spread of values)
    that predict, evaluate and report accept."""
    training_stack()
    from ..evaluation import ensemble as ensembles

    console = make_console()
    log = None if quiet else (lambda line: console.print(line, markup=False))
    paths = [Path(source) for source in sources]
    if seeds:
        if len(paths) != 1:
            fail("--seeds trains one spec: give exactly one spec file", 2)
        made = guard(lambda: ensembles.train_ensemble(paths[0], seeds, overrides=set_, runs_dir=runs_dir or Path("runs"),
                                                        log=log, progress=None if quiet else console))
    elif set_:
        fail("--set changes a spec; it applies only with --seeds", 2)
    elif len(paths) == 1:
        made = guard(lambda: ensembles.ensemble_from(paths[0], runs_dir=runs_dir, log=log))
    else:
        made = guard(lambda: ensembles.build_ensemble(paths, runs_dir=runs_dir or Path("runs"), log=log))
    if quiet:
        print(made.path)
        return
    if made.metrics.get("test"):
        console.print(metrics_table({"test": made.metrics["test"]}))
    console.print(f"report: {made.path / 'report.html'}", markup=False)
    console.print(f"ensemble directory: {made.path}", markup=False)

