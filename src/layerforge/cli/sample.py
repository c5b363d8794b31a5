"""``layerforge sample``: generate new rows: a PNG grid of images or a table."""

from __future__ import annotations

from pathlib import Path

import typer

from .common import guard, make_console, training_stack, usable_output, writing


def sample(
    run: Path = typer.Argument(..., help="Run directory of a GAN or a variational autoencoder."),
    n: int = typer.Option(100, "--n", min=1, help="How many rows to generate."),
    label: str | None = typer.Option(None, "--label", help="Class to generate (conditional GANs)."),
    seed: int = typer.Option(0, "--seed", help="The same seed gives the same samples."),
    out: Path = typer.Option(Path("samples.png"), "--out", help="A .png grid (images) or a .csv/.parquet table."),
) -> None:
    """Generate new rows: a PNG grid of images or a table."""
    training_stack()
    from ..run.directory import load_run

    def call():
        usable_output(out, example="samples.png")
        loaded = load_run(run)
        with writing(out):
            return loaded.write_samples(out, n, label=label, seed=seed)

    path = guard(call)
    make_console().print(f"wrote {n} samples to {path}")

