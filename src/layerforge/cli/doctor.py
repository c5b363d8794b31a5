"""``layerforge doctor``: print the training doctor's findings for a run (from its diagnosis.json)."""

from __future__ import annotations

from pathlib import Path

import typer

from ..errors import CheckpointError
from .common import guard, make_console, styled


def doctor(run: Path = typer.Argument(..., help="Run directory.")) -> None:
    """Print the training doctor's findings for a run (from its diagnosis.json)."""
    from ..run.manifest import read_manifest
    from ..run.records import Diagnosis
    from ..run.store import DIAGNOSIS, MODEL, read_record

    def call():
        if not (run / DIAGNOSIS).is_file():
            raise CheckpointError(f"{run} has no {DIAGNOSIS}: it is not a run directory, or it was trained "
                                  "with train.doctor: false")
        checksums = read_manifest(run / MODEL).files if (run / MODEL).is_file() else None
        return read_record(run, DIAGNOSIS, Diagnosis, checksums)

    diagnosis = guard(call)
    console = make_console()
    if diagnosis.failure:
        console.print(styled("the run failed:", "bold red", f" {diagnosis.failure}"), soft_wrap=True)
    if not diagnosis.findings:
        console.print("no findings: gradients, units, learning rate and fit look healthy "
                      f"({diagnosis.measured_steps} measured steps)")
    colours = {"info": "blue", "warning": "yellow", "error": "red"}
    for item in diagnosis.findings:
        console.print(styled(item.severity, f"bold {colours[item.severity]}",
                              f" {item.kind.replace('_', ' ')}: {item.message}"), soft_wrap=True)
        if item.fix:
            console.print(f"    try: {item.fix}", soft_wrap=True)

