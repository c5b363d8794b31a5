"""``layerforge embed``: encode rows to an autoencoder's latent codes (dimensionality reduction)."""

from __future__ import annotations

from pathlib import Path

import typer

from .common import training_stack, write_frames


def embed(
    run: Path = typer.Argument(..., help="Run directory of an autoencoder."),
    data: Path = typer.Argument(..., help="Rows to encode: CSV/Parquet (tables), .npz or a folder (images, series)."),
    out: Path | None = typer.Option(None, "--out", help="Write the codes here (.csv or .parquet); default: standard output."),
    ignore_extra: bool = typer.Option(False, "--ignore-extra", help="Ignore columns the model does not know."),
) -> None:
    """Encode rows to an autoencoder's latent codes (dimensionality reduction)."""
    training_stack()
    from ..run.directory import load_run

    def call():  # a large table: chunk by chunk
        predictor = load_run(run).predictor
        return (predictor.embed_table(piece, ignore_extra=ignore_extra) for piece in predictor.encoder.pieces(data))

    write_frames(call, out, "codes.csv")

