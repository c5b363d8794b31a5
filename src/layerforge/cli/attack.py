"""``layerforge attack``: attack a run's test rows with FGSM or PGD: its headline metric against epsilon, and"""

from __future__ import annotations

from pathlib import Path

import typer

from .common import checked_and_reported, fail, guard, make_console, training_stack


def attack(
    run: Path = typer.Argument(..., help="Run directory."),
    method: str = typer.Option("pgd", "--method", help="pgd or fgsm (FGSM is measured too, as a check)."),
    eps: list[float] = typer.Option([], "--eps", help="Budget in the data's units: pixels in [0, 1] for images, standardised values otherwise (repeatable; default: a sweep)."),
    eps_sweep: bool = typer.Option(False, "--eps-sweep", help="The sweep of budgets that suits the data (the default without --eps)."),
    steps: int = typer.Option(20, "--steps", min=1, help="PGD steps."),
    norm: str = typer.Option("linf", "--norm", help="linf or l2."),
) -> None:
    """Attack a run's test rows with FGSM or PGD: its headline metric against epsilon, and
    checks that the attack was strong enough to trust (written to RUN/robustness, shown in the report)."""
    training_stack()
    from ..robustness import attack as run_attack

    if eps and eps_sweep:
        fail("give --eps or --eps-sweep, not both", 2)
    found = guard(lambda: run_attack(run, method=method, eps=eps or None, steps=steps, norm=norm,
                                     progress=make_console(stderr=True)))
    checked_and_reported(run, found)
