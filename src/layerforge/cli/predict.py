"""``layerforge predict``: predict new rows with a trained run (classes and probabilities, values, or an"""

from __future__ import annotations

from pathlib import Path

import typer

from ..errors import OutputError
from .common import Backend, Unknown, guard, training_stack, write_frames


def predict(
    run: Path = typer.Argument(..., help="Run directory."),
    data: Path = typer.Argument(..., help="CSV or Parquet file of new rows (or what the run reads: a folder of images, a sound file or a folder of them, a parallel text file)."),
    out: Path | None = typer.Option(None, "--out", help="Write predictions here (.csv or .parquet; a folder: one PNG per picture, its mask for segmentation, its boxes drawn over it for detection); default: standard output."),
    unknown_categories: Unknown | None = typer.Option(None, "--unknown-categories", help="error (default) or bucket for unseen categories."),
    ignore_extra: bool = typer.Option(False, "--ignore-extra", help="Ignore columns the model does not know."),
    backend: Backend = typer.Option(Backend.torch, "--backend", help="torch (the run), or onnx: its export through the torch-free runtime."),
    int8: bool = typer.Option(False, "--int8", help="With --backend onnx: the int8 model the export kept."),
    keep_columns: list[str] = typer.Option([], "--keep-columns", help="Copy these columns of the rows (e.g. an identifier) into the predictions, first (comma-separated or repeated)."),
    beam_size: int | None = typer.Option(None, "--beam-size", min=1, help="seq2seq and transcription runs: write answers by a beam search this wide (1: greedy, or CTC's best path; default: as the run does)."),
) -> None:
    """Predict new rows with a trained run (classes and probabilities, values, or an
    autoencoder's anomaly scores)."""

    def call():
        keep = [name.strip() for given in keep_columns for name in given.split(",") if name.strip()]
        options = {"unknown": unknown_categories and unknown_categories.value, "ignore_extra": ignore_extra,
                   "keep": keep}
        if backend is Backend.onnx:
            return _runtime_table(run, data, int8, options, beam_size)
        if int8:
            raise OutputError("--int8 needs --backend onnx")
        training_stack()
        from ..run.directory import load_run

        predictor = load_run(run).predictor.searching(beam_size)
        return predictor.predict_pieces(data, **options)  # a large table: chunk by chunk

    def pictures() -> bool:
        """Write the answers as pictures into the folder ``out`` when the run's answers are
        pictures (segmentation masks, detections drawn over their pictures); False, having
        written nothing, when they are rows."""
        options = {"unknown": unknown_categories and unknown_categories.value, "ignore_extra": ignore_extra}
        if backend is Backend.onnx:
            from ..export import current

            answering = current(run, int8=int8)
            if not answering.decoding.writes_pictures:
                return False
            written = answering.write_pictures(str(data), out, **options)
        else:
            training_stack()
            from ..run.directory import load_run

            predictor = load_run(run).predictor
            if not predictor.task.decoding().writes_pictures:
                return False
            written = predictor.write_pictures(data, out, **options)
        typer.echo(f"{len(written)} pictures: {out}")
        return True

    if out is not None and out.suffix == "" and guard(pictures):  # a folder of pictures, for pictures
        return
    write_frames(call, out, "predictions.csv")


def _runtime_table(run: Path, data: Path, int8: bool, options: dict, beam_size: int | None):
    """Predictions through the exported model and ``layerforge.runtime`` (no torch)."""
    import pandas as pd

    from ..export import current

    runtime = current(run, int8=int8).searching(beam_size)
    return (pd.DataFrame(table) for table in runtime.predict_pieces(str(data), **options))  # a block at a time

