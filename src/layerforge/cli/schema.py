"""``layerforge schema``: each column of a table with its type, missing share, distinct values
and warnings, as training would read it."""

from __future__ import annotations

from pathlib import Path

import typer

from ..errors import DataError
from .common import fail, guard, make_console, show


def schema(
    data: Path = typer.Argument(..., help="A .csv, .tsv or .parquet file."),
    target: str | None = typer.Option(None, "--target", help="The column to predict (checked for imbalance, and the others for leaking it)."),
    types: list[str] = typer.Option([], "--type", help="A column's type, as data.features names it: COLUMN=TYPE (repeatable), e.g. --type notes=text."),
    drop: list[str] = typer.Option([], "--drop", help="A column to leave out, as data.drop (repeatable)."),
) -> None:
    """Show how each column of a table is read: its type, missing share, distinct values and warnings."""
    named = {}
    for given in types:
        column, _, kind = given.partition("=")
        if not kind:
            fail(f"--type {given}: expected COLUMN=TYPE, e.g. --type notes=text", 2)
        named[column] = kind

    def described():
        from ..data.columns import describe, schema_table
        from ..data.tabular import read_table

        frame = read_table(data)
        for name in [*drop, *([target] if target else [])]:
            if name not in frame.columns:
                raise DataError(f"no column '{name}' in {data} (columns: {', '.join(map(str, frame.columns[:30]))})")
        columns = describe(frame, target=target, types=named, drop=drop)
        features = sum(column.role == "feature" for column in columns)
        return schema_table(columns, title=f"{data.name}: {len(frame)} rows, {len(columns)} columns, {features} "
                                          "features")

    show([guard(described)], make_console())
