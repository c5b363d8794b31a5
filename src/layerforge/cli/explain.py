"""``layerforge explain``: explain a run's answers: attributions per input column (or step, or pixel), global"""

from __future__ import annotations

from pathlib import Path

import typer

from .common import checked_and_reported, guard, make_console, training_stack


def explain(
    run: Path = typer.Argument(..., help="Run directory."),
    data: Path | None = typer.Argument(None, help="Rows to explain (default: the run's test rows)."),
    method: str = typer.Option("integrated_gradients", "--method", help="integrated_gradients, saliency, gradient_shap, deeplift, occlusion or feature_ablation."),
    target: str | None = typer.Option(None, "--target", help="The class to explain (default: each row's predicted class)."),
    rows: int = typer.Option(200, "--rows", min=1, help="Explain at most this many rows."),
    out: Path | None = typer.Option(None, "--out", help="Write attributions: .csv per row and input, or .png (images, series)."),
) -> None:
    """Explain a run's answers: attributions per input column (or step, or pixel), global
    importance, and checks of the explanation (completeness, model randomisation)."""
    training_stack()
    from ..explanations import explain as run_explain
    from ..explanations import write_out

    found = guard(lambda: run_explain(run, data, method=method, target=target, rows=rows,
                                      progress=make_console(stderr=True)))
    if out is not None:
        make_console().print(f"attributions: {guard(lambda: write_out(found, out))}", markup=False)
    checked_and_reported(run, found.summary())
