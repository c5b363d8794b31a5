"""``layerforge summary``: show a model's layers, output shapes and parameter counts for a spec."""

from __future__ import annotations

from pathlib import Path

import typer

from .common import guard, make_console, training_stack


def summary(
    spec: Path | None = typer.Argument(None, help="Spec YAML file (default: the built-in default)."),
    set_: list[str] = typer.Option([], "--set", help="Override a spec key (repeatable)."),
) -> None:
    """Show a model's layers, output shapes and parameter counts for a spec."""
    training_stack()
    from ..summary import summarize

    rows, total, trainable = guard(lambda: summarize(spec, set_))
    from rich.table import Table

    table = Table()
    for column, justify in (("layer", "left"), ("type", "left"), ("output shape", "left"), ("parameters", "right")):
        table.add_column(column, justify=justify)
    for name, kind, shape, count in rows:
        table.add_row(name, kind, shape, f"{count:,}")
    console = make_console()
    console.print(table)
    console.print(f"parameters: {total:,} ({trainable:,} trainable)")

