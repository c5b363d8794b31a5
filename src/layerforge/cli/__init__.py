"""The command line: one module per command, each a thin call into the library, registered on
the app here, one line each (``common`` holds what they share).

``layerforge --help`` imports this package and the commands' modules, none of which imports
torch or pandas before a command runs.
"""

from __future__ import annotations

import typer

from .. import __version__
from . import (
    attack,
    common,
    compare,
    cv,
    datasets,
    doctor,
    embed,
    ensemble,
    evaluate,
    explain,
    export,
    fairness,
    generate,
    lr_find,
    predict,
    recommend,
    report,
    runs,
    sample,
    schema,
    serve,
    summary,
    train,
    tune,
)

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="layerforge: write a short spec, get a trained, evaluated network.",
)

app.command()(train.train)
app.command()(cv.cv)
app.command()(ensemble.ensemble)
app.command()(attack.attack)
app.command()(explain.explain)
app.command()(fairness.fairness)
app.command()(evaluate.evaluate)
app.command()(predict.predict)
app.command()(recommend.recommend)
app.command()(export.export)
app.command()(tune.tune)
app.command()(serve.serve)
app.command()(embed.embed)
app.command()(sample.sample)
app.command()(generate.generate)
app.command()(summary.summary)
app.command()(doctor.doctor)
app.command()(report.report)
app.command()(compare.compare)
app.command("lr-find")(lr_find.lr_find)
app.command()(schema.schema)
app.command()(datasets.datasets)
app.command()(runs.runs)


def _version(value: bool) -> None:
    if value:
        print(f"layerforge {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version."),
) -> None:
    """layerforge: write a short spec, get a trained, evaluated network."""


def main() -> None:
    common.OWN_PROCESS = True
    app()


__all__ = ["app", "main"]
