"""``layerforge export``: export a run to ONNX with its parity proven on the run's own rows (RUN/export)."""

from __future__ import annotations

from pathlib import Path

import typer

from ..errors import LayerforgeError
from .common import ExportFormat, Quantization, guard, make_console, show, training_stack


def export(
    run: Path = typer.Argument(..., help="Run directory."),
    format_: ExportFormat = typer.Option(ExportFormat.onnx, "--format", help="onnx (the only format so far)."),
    quantize: Quantization | None = typer.Option(None, "--quantize", help="int8: add an int8 model, kept only if as accurate (--max-drop) and no slower."),
    opset: int | None = typer.Option(None, "--opset", min=7, help="ONNX opset (default: the exporter's, 17 or 18)."),
    out: Path | None = typer.Option(None, "--out", help="Folder to write (default: RUN/export)."),
    max_drop: float = typer.Option(1.0, "--max-drop", min=0, help="Largest headline-metric loss int8 may cost: points for accuracy-like metrics, else percent."),
    keep_int8: bool = typer.Option(False, "--keep-int8", help="Keep an int8 model that is as accurate and smaller even when it is slower."),
) -> None:
    """Export a run to ONNX with its parity proven on the run's own rows (RUN/export)."""
    training_stack()
    from ..capabilities import ExportParity
    from ..export import EXPORT_DIR, PARITY
    from ..report.html import build_report
    from ..run.directory import load_run

    console = make_console(stderr=True)

    def call():
        loaded = load_run(run)
        folder = loaded.export(quantize=quantize and quantize.value, opset=opset, out=out, max_drop=max_drop,
                               keep_int8=keep_int8, log=lambda line: console.print(line, markup=False),
                               progress=console)
        if folder == loaded.path / EXPORT_DIR and (loaded.path / "report.html").is_file():
            try:
                build_report(loaded.path)
                console.print("report.html: Export section added", markup=False)
            except LayerforgeError as error:
                console.print(f"report.html was not rebuilt: {error}", markup=False)
        return folder

    folder = guard(call)
    show(guard(lambda: ExportParity.read_in(folder)).blocks(), console)
    print(folder)
    console.print(f"proof: {folder / PARITY}", markup=False)

