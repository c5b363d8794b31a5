"""``layerforge compare``: compare runs: curves overlaid and final metrics side by side, in one HTML page."""

from __future__ import annotations

from pathlib import Path

import typer

from .common import fail, guard, make_console, usable_output, writing


def compare(
    runs_: list[Path] = typer.Argument(..., metavar="RUN...", help="Two or more run directories."),
    out: Path = typer.Option(Path("compare.html"), "--out", help="Where to write the page."),
) -> None:
    """Compare runs: curves overlaid and final metrics side by side, in one HTML page."""
    from ..report.html import build_comparison

    if len(runs_) < 2:
        fail("compare needs at least two run directories", 2)
    def call():
        usable_output(out, example="compare.html")
        with writing(out):
            return build_comparison(runs_, out)

    path = guard(call)
    make_console().print(f"wrote {path}")

