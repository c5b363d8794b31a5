"""``layerforge evaluate``: evaluate a trained run on its test split or on another file."""

from __future__ import annotations

from pathlib import Path

import typer

from .common import (
    Backend,
    Unknown,
    guard,
    make_console,
    metrics_table,
    training_stack,
    usable_output,
    write_json,
    writing,
)


def evaluate(
    run: Path = typer.Argument(..., help="Run directory."),
    data: Path | None = typer.Option(None, "--data", help="CSV/Parquet with the target column (default: the run's test split)."),
    out: Path | None = typer.Option(None, "--out", help="Write the metrics to this JSON file."),
    unknown_categories: Unknown | None = typer.Option(None, "--unknown-categories", help="error (default) or bucket for unseen categories."),
    ignore_extra: bool = typer.Option(False, "--ignore-extra", help="Ignore columns the model does not know."),
    backend: Backend = typer.Option(Backend.torch, "--backend", help="torch (the run), or onnx: its export (RUN/export) in place of the network."),
    int8: bool = typer.Option(False, "--int8", help="With --backend onnx: the int8 model the export kept."),
) -> None:
    """Evaluate a trained run on its test split or on another file."""
    training_stack()
    from ..run.directory import load_run

    def call():
        if out is not None:
            usable_output(out, example="metrics.json")
        loaded = load_run(run)
        metrics = loaded.evaluate(data, unknown=unknown_categories and unknown_categories.value,
                                  ignore_extra=ignore_extra, backend=backend.value, int8=int8)
        if out is not None:
            with writing(out):
                write_json(out, metrics)
        return metrics

    metrics = guard(call)
    label = str(data) if data else "its test split"
    console = make_console()
    through = "" if backend is Backend.torch else f", through its {'int8 ' if int8 else ''}ONNX export"
    console.print(f"{run.name} on {label} ({metrics.pop('rows')} rows{through})", markup=False)
    table = metrics_table({"test": metrics})
    if data is not None:
        table.columns[1].header = data.name  # the rows scored are the file's, not the run's test split
    console.print(table)

