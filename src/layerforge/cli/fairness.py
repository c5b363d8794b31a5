"""``layerforge fairness``: audit a classifier's predictions by group: per-group accuracy, selection and error rates,"""

from __future__ import annotations

from pathlib import Path

import typer

from .common import checked_and_reported, fail, guard, make_console, training_stack


def fairness(
    run: Path = typer.Argument(..., help="Run directory (a classifier)."),
    sensitive: list[str] = typer.Option(..., "--sensitive", help="A column whose groups to compare (repeatable)."),
    data: Path | None = typer.Option(None, "--data", help="Rows with the target and sensitive columns (default: the run's test rows)."),
    positive: str | None = typer.Option(None, "--positive", help="The favourable class (default: the second of two)."),
    max_parity_difference: float = typer.Option(0.1, "--max-parity-difference", min=0, help="Flag a demographic-parity difference above this."),
    max_odds_difference: float = typer.Option(0.1, "--max-odds-difference", min=0, help="Flag an equalized-odds difference above this."),
    mitigate: str | None = typer.Option(None, "--mitigate", help="demographic_parity, true_positive_rate_parity or equalized_odds: per-group thresholds, in a new version of the run beside it (one --sensitive); none makes a version without them."),
    fit_on: str = typer.Option("val", "--fit-on", help="Rows the thresholds are fitted on: val or train (the test rows only measure)."),
) -> None:
    """Audit a classifier's predictions by group: per-group accuracy, selection and error rates,
    calibration, and demographic-parity and equalized-odds disparities with bootstrap intervals.
    With --mitigate, post-process it: thresholds per group, in a new version of the run (the run
    itself answers as before), before and after shown."""
    training_stack()
    from ..fairness import audit, mitigate_fairness, remove_mitigation
    from ..report.html import build_report

    console = make_console()
    limits = {"demographic_parity_difference": max_parity_difference, "equalized_odds_difference": max_odds_difference}
    if mitigate == "none":
        made = guard(lambda: remove_mitigation(run))
        if made is None:
            console.print("this run has no per-group thresholds", markup=False)
            return
        guard(lambda: build_report(made))
        console.print(f"a new version without the per-group thresholds (it decides by the model's probabilities): "
                      f"{made}", markup=False)
        return
    if mitigate is not None:
        if len(sensitive) != 1 or data is not None:
            fail("--mitigate: name exactly one --sensitive column; thresholds are fitted on the run's own rows "
                  "(no --data)", 2)
        done = guard(lambda: mitigate_fairness(run, sensitive[0], mitigate, positive=positive, fit_on=fit_on,
                                                thresholds=limits))
        checked_and_reported(done.version_dir, done)
        console.print(f"a new version of the run decides by these thresholds: {done.version_dir}", markup=False)
        console.print(f"predict with it (rows must carry the column '{done.column}'); {run} answers as before",
                      markup=False)
        return
    found = guard(lambda: audit(run, sensitive, data, positive=positive, thresholds=limits))
    checked_and_reported(run, found)
