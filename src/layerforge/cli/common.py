"""What the commands share: the console, the error guard, output checks, option types, and the
import of the training stack."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path

import typer

from ..errors import LayerforgeError, SpecError, TrainingError

RUNS_DIR = typer.Option(Path("runs"), "--runs-dir", help="Directory that holds run directories.")


class Backend(str, Enum):
    torch = "torch"
    onnx = "onnx"


class ExportFormat(str, Enum):
    onnx = "onnx"


class Quantization(str, Enum):
    int8 = "int8"


class Unknown(str, Enum):
    error = "error"
    bucket = "bucket"


def make_console(stderr: bool = False):
    """A console that never reads markup: messages carry user text (paths, columns, values)."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    # Rich assumes 80 columns when output is not a terminal; tables read better wider.
    width = None if stream.isatty() else 140
    return Console(stderr=stderr, highlight=False, markup=False, width=width)


def styled(label: str, style: str, text: str):
    """``label`` in ``style``, then ``text`` as it is."""
    from rich.text import Text

    return Text(label, style=style) + Text(text)


def fail(message: str, code: int) -> None:
    make_console(stderr=True).print(styled("error:", "bold red", f" {message}"), soft_wrap=True)
    raise typer.Exit(code)


def usable_output(path: Path, option: str = "--out", example: str = "out.csv") -> Path:
    from ..files import usable_output  # files (tempfile, hashlib) stays out of --help

    return usable_output(path, option, example)


def writing(path: Path, option: str = "--out"):
    from ..files import writing

    return writing(path, option)


def write_json(path: Path, data) -> None:
    from ..files import write_json

    write_json(path, data)


def guard(call):
    """Run ``call``; print layerforge errors without a traceback and exit non-zero."""
    try:
        return call()
    except SpecError as error:
        fail(str(error), 2)
    except TrainingError as error:
        fail(str(error), 1)
    except LayerforgeError as error:
        fail(str(error), 2)


def metrics_table(metrics: dict) -> object:
    from rich.table import Table

    table = Table()
    splits = [name for name in ("val", "test") if isinstance(metrics.get(name), dict)]
    names = list(dict.fromkeys(k for split in splits for k in metrics[split] if k != "rows"))
    table.add_column("metric")
    for split in splits:
        table.add_column(split, justify="right")
    for name in names:
        table.add_row(name, *(f"{metrics[s][name]:.4f}" if name in metrics[s] else "-" for s in splits))
    return table


OWN_PROCESS = False  # set by main(): the command runs in a process of its own (not inside a caller's)


def training_stack() -> None:
    """Import torch, numpy, pandas and the modules of layerforge that use them (what a command
    that trains, predicts or explains needs) with the garbage collector paused, then freeze what
    the imports made. Left running, the collector walks the ever larger heap of new module
    objects again and again while they import, none of which is garbage: pausing it takes about
    0.8 s (a fifth) off the start-up of ``layerforge train``. Only in a process of its own
    (``main``): freezing a caller's objects would keep its garbage forever."""
    if not OWN_PROCESS:
        return
    import gc

    gc.disable()
    try:
        from .. import api  # noqa: F401  (torch, numpy, pandas and the training stack)
    finally:
        gc.freeze()
        gc.enable()


def show(blocks, console=None) -> None:
    """A capability's blocks on the console: its tables and sentences (pictures are in the
    report and its folder)."""
    from ..figures.console import show as draw

    draw(blocks, console or make_console())


def checked_and_reported(run: Path, result) -> None:
    """What attack, explain and fairness end with: the result's blocks and checks, the report
    rebuilt with its section, and where the results are."""
    from ..report.html import build_report

    console = make_console()
    show(result.blocks(), console)
    for key, value in result.checks.items():
        console.print(f"check {key}: {value}", markup=False)
    for said in result.warnings():
        console.print(styled("warning:", "bold yellow", f" {said}"), soft_wrap=True)
    guard(lambda: build_report(run))
    console.print(f"results: {result.path} (and the report's {result.title} section)", markup=False)


def write_frames(call, out: Path | None, example: str) -> None:
    """The rows of the tables ``call`` makes (a table, or tables made one at a time), to
    standard output or to ``out`` (checked before the work; written whole or not at all)."""
    from ..data.tabular import write_table_pieces

    def written():
        if out is not None:
            usable_output(out, example=example)
        made = call()
        frames = [made] if hasattr(made, "to_csv") else made
        if out is not None:
            with writing(out):
                write_table_pieces(frames, out)
            return
        for i, frame in enumerate(frames):
            frame.to_csv(sys.stdout, index=False, header=i == 0)

    guard(written)

