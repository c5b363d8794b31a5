"""Blocks on a terminal: tables drawn with Rich, notes as sentences (pictures are in the report
and its folder). What the command line and training's opening lines print."""

from __future__ import annotations

from . import Note, Table, number_text


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return number_text(value)
    return str(value)


def show(blocks, console) -> None:
    """Each block on ``console`` (a Rich console)."""
    from rich.table import Table as Drawn  # Rich: only where something is printed

    for block in blocks:
        if isinstance(block, Table):
            table = Drawn(title=block.title or None)
            for i, name in enumerate(block.header):
                table.add_column(name, justify="left" if i == 0 else "right")
            for row in block.rows:
                table.add_row(*(_cell(value) for value in row))
            console.print(table)
        elif isinstance(block, Note):
            console.print(block.text, markup=False)
