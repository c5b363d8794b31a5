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
    mitigate: str | None = typer.Option(None, "--mitigate", help="demographic_parity, true_positive_rate_parity or equalized_odds: per-group thresholds that predict applies from then on (one --sensitive); none removes them."),
    fit_on: str = typer.Option("val", "--fit-on", help="Rows the thresholds are fitted on: val or train (the test rows only measure)."),
) -> None:
    """Audit a classifier's predictions by group: per-group accuracy, selection and error rates,
    calibration, and demographic-parity and equalized-odds disparities with bootstrap intervals.
    With --mitigate, post-process it: thresholds per group, stored with the run, before and after shown."""
    training_stack()
    from rich.table import Table

    from ..fairness import audit, mitigate_fairness, remove_mitigation

    console = make_console()
    limits = {"demographic_parity_difference": max_parity_difference, "equalized_odds_difference": max_odds_difference}
    if mitigate == "none":
        had = guard(lambda: remove_mitigation(run))
        console.print("per-group thresholds removed: predict decides by the model's probabilities again" if had
                      else "this run has no per-group thresholds", markup=False)
        return
    if mitigate is not None:
        if len(sensitive) != 1 or data is not None:
            fail("--mitigate: name exactly one --sensitive column; thresholds are fitted on the run's own rows "
                  "(no --data)", 2)
        done = guard(lambda: mitigate_fairness(run, sensitive[0], mitigate, positive=positive, fit_on=fit_on,
                                                thresholds=limits))
        table = Table(title=f"{done.column}: thresholds for {done.constraint} (fitted on {done.fitted_on})")
        for name in ("group", "threshold", "selection before", "selection after", "accuracy before", "accuracy after"):
            table.add_column(name, justify="left" if name == "group" else "right")
        for group, cut in done.thresholds.items():
            before, after = done.before["groups"].get(group, {}), done.after["groups"].get(group, {})
            cells = [before.get("selection_rate"), after.get("selection_rate"), before.get("accuracy"),
                     after.get("accuracy")]
            table.add_row(group, f"{cut:.4f}", *("-" if v is None else f"{v:.3f}" for v in cells))
        console.print(table)
        console.print(done.summary(), markup=False)
        console.print("predict applies these thresholds from now on; rows must carry the column "
                      f"'{done.column}'", markup=False)
        checked_and_reported(run, {}, done.path, "Fairness")
        return
    found = guard(lambda: audit(run, sensitive, data, positive=positive, thresholds=limits))
    for column, result in found.columns.items():
        table = Table(title=f"{column} (favourable: {found.positive})")
        for name in ("group", "rows", "accuracy", "selection", "TPR", "FPR", "mean p", "observed"):
            table.add_column(name, justify="left" if name == "group" else "right")
        for group, m in result["groups"].items():
            cells = [m["accuracy"], m["selection_rate"], m["true_positive_rate"], m["false_positive_rate"],
                     m["mean_probability"], m["observed_rate"]]
            table.add_row(group, str(m["rows"]), *("-" if v is None else f"{v:.3f}" for v in cells))
        console.print(table)
        for name, entry in result["disparities"].items():
            low, high = entry["ci95"]
            interval = "" if low is None else f" (95% interval {low:.3f} to {high:.3f})"
            flag = " FLAGGED" if entry.get("flagged") else ""
            console.print(f"{name}: {entry['value']:.3f}{interval}{flag}", markup=False)
    checked_and_reported(run, {}, found.path, "Fairness")

