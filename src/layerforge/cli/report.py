"""``layerforge report``: rebuild a run's report.html (one self-contained page: curves, results, doctor, model, spec)."""

from __future__ import annotations

from pathlib import Path

import typer

from .common import guard, make_console, usable_output, writing


def report(run: Path = typer.Argument(..., help="Run directory.")) -> None:
    """Rebuild a run's report.html (one self-contained page: curves, results, doctor, model, spec)."""
    from ..report.html import build_report

    def call():
        usable_output(run / "report.html", "report", "report.html")
        with writing(run / "report.html", "report"):
            return build_report(run)

    path = guard(call)
    make_console().print(f"wrote {path}")

