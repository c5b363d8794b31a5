"""``layerforge lr-find``: a learning-rate range test; suggests train.optimizer.lr and saves the
loss-vs-rate plot."""

from __future__ import annotations

from pathlib import Path

import typer

from .common import guard, make_console, training_stack, usable_output, writing


def lr_find(
    spec: Path | None = typer.Argument(None, help="Spec YAML file (default: the built-in default)."),
    set_: list[str] = typer.Option([], "--set", help="Override a spec key (repeatable)."),
    out: Path = typer.Option(Path("lr_find.png"), "--out", help="Where to save the plot."),
    steps: int = typer.Option(100, "--steps", min=10, help="Steps of the range test."),
) -> None:
    """Learning-rate range test: suggest train.optimizer.lr and save the loss-vs-rate plot."""
    training_stack()
    from ..recipes.lr_range import lr_range_test, plot

    def call():
        usable_output(out, example="lr_find.png")
        finding = lr_range_test(spec, set_, steps=steps)
        with writing(out):
            plot(finding, out)
        return finding

    finding = guard(call)
    console = make_console()
    console.print(f"suggested learning rate: {finding.suggestion:.3g} (steepest descent {finding.steepest:.3g}, "
                  f"lowest loss at {finding.minimum:.3g})")
    console.print(f"use it with: --set train.optimizer.lr={finding.suggestion:.2g}")
    console.print(f"plot: {out}")

