"""``layerforge datasets``: list the built-in datasets: name, task, shape and source."""

from __future__ import annotations

from .common import make_console


def datasets() -> None:
    """List the built-in datasets: name, task, shape and source."""
    from rich.table import Table

    from ..data import builtin

    table = Table(title="built-in datasets (offline; train + test where the split is official)", title_justify="left")
    for column in ("name", "kind", "task", "shape", "source"):
        table.add_column(column)
    for name, info in builtin.DATASETS.items():
        table.add_row(name, info.kind, info.task, info.shape, info.source)
    make_console().print(table)

