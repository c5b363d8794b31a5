"""``layerforge generate``: sample text from a trained language model."""

from __future__ import annotations

from pathlib import Path

import typer

from .common import guard, training_stack


def generate(
    run: Path = typer.Argument(..., help="Run directory of a language model."),
    prompt: str = typer.Option("", "--prompt", help="Text to continue."),
    length: int = typer.Option(200, "--length", min=1, help="Tokens to generate."),
    temperature: float = typer.Option(1.0, "--temperature", help="Below 1 is more conservative."),
    top_k: int | None = typer.Option(None, "--top-k", min=1, help="Sample among the k most likely tokens."),
    seed: int = typer.Option(0, "--seed", help="The same seed gives the same text."),
) -> None:
    """Sample text from a trained language model."""
    training_stack()
    from ..run.directory import load_run

    text = guard(lambda: load_run(run).generate(prompt, length, temperature, top_k, seed))
    print(text)

