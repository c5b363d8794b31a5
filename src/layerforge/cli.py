"""The command line. Every command is a thin call into the Python API."""

from __future__ import annotations

import os
import subprocess
import sys
from enum import Enum
from pathlib import Path

import typer

from . import __version__
from .errors import CheckpointError, LayerforgeError, OutputError, SpecError, TrainingError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="layerforge: write a short spec, get a trained, evaluated network.",
)

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


def _console(stderr: bool = False):
    """A console that never reads markup: messages carry user text (paths, columns, values)."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    # Rich assumes 80 columns when output is not a terminal; tables read better wider.
    width = None if stream.isatty() else 140
    return Console(stderr=stderr, highlight=False, markup=False, width=width)


def _styled(label: str, style: str, text: str):
    """``label`` in ``style``, then ``text`` as it is."""
    from rich.text import Text

    return Text(label, style=style) + Text(text)


def _fail(message: str, code: int) -> None:
    _console(stderr=True).print(_styled("error:", "bold red", f" {message}"), soft_wrap=True)
    raise typer.Exit(code)


def _usable_output(path: Path, option: str = "--out", example: str = "out.csv") -> Path:
    from .files import usable_output  # files (tempfile, hashlib) stays out of --help

    return usable_output(path, option, example)


def _writing(path: Path, option: str = "--out"):
    from .files import writing

    return writing(path, option)


def _write_json(path: Path, data) -> None:
    from .files import write_json

    write_json(path, data)


def _guard(call):
    """Run ``call``; print layerforge errors without a traceback and exit non-zero."""
    try:
        return call()
    except SpecError as error:
        _fail(str(error), 2)
    except TrainingError as error:
        _fail(str(error), 1)
    except LayerforgeError as error:
        _fail(str(error), 2)


def _metrics_table(metrics: dict) -> object:
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


_OWN_PROCESS = False  # set by main(): the command runs in a process of its own (not inside a caller's)


def _training_stack() -> None:
    """Import torch, numpy, pandas and the modules of layerforge that use them (what a command
    that trains, predicts or explains needs) with the garbage collector paused, then freeze what
    the imports made. Left running, the collector walks the ever larger heap of new module
    objects again and again while they import, none of which is garbage: pausing it takes about
    0.8 s (a fifth) off the start-up of ``layerforge train``. Only in a process of its own
    (``main``): freezing a caller's objects would keep its garbage forever."""
    if not _OWN_PROCESS:
        return
    import gc

    gc.disable()
    try:
        from . import api  # noqa: F401  (torch, numpy, pandas and the training stack)
    finally:
        gc.freeze()
        gc.enable()


@app.command()
def train(
    spec: Path | None = typer.Argument(None, help="Spec YAML file; omit it to train the built-in default (MLP on digits)."),
    set_: list[str] = typer.Option([], "--set", help="Override a spec key, e.g. --set train.epochs=30 (repeatable)."),
    resume: Path | None = typer.Option(None, "--resume", help="Continue an interrupted run directory."),
    runs_dir: Path = RUNS_DIR,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar; print only the run directory."),
    seeds: int = typer.Option(1, "--seeds", min=1, help="Train under this many seeds (the spec's, then the next) and report each metric's median, range and worst seed."),
    nproc: int = typer.Option(1, "--nproc", min=1, help="Data-parallel training in this many processes on this machine (torchrun; Gloo on CPUs, NCCL on GPUs)."),
) -> None:
    """Train a network from a spec and write its run directory."""
    if spec is not None and resume is not None:
        _fail("give a spec or --resume RUN_DIR, not both (a resumed run keeps its own spec)", 2)
    if resume is None:  # a mistake in the spec is answered before torch is imported
        from .spec.defaults import DEFAULT_SPEC
        from .spec.load import load_spec

        _guard(lambda: load_spec(DEFAULT_SPEC if spec is None else spec, set_))
    _training_stack()
    from .api import TrainingInterrupted
    from .api import train as train_run

    if nproc > 1:
        if seeds > 1:
            _fail("--nproc trains one run in several processes; it cannot train --seeds runs", 2)
        _launch(nproc, spec, set_, resume, runs_dir, quiet)
        return
    if os.environ.get("RANK", "0") != "0":  # another process of data-parallel training: the first one speaks
        _guard(lambda: train_run(spec, overrides=set_, runs_dir=runs_dir, resume=resume))
        return
    if seeds > 1:
        if resume is not None:
            _fail("--seeds trains new runs; it cannot --resume one", 2)
        _train_seeds(spec, set_, runs_dir, seeds, quiet)
        return
    console = _console()
    show_progress = not quiet and console.is_terminal
    if not quiet and resume is None:
        what = spec if spec else ("the built-in default (digits MLP)" + (" with your --set changes" if set_ else
                                                                            ": an MLP on the digits dataset"))
        console.print(f"training {what}")
    try:
        run = _guard(lambda: train_run(spec, overrides=set_, runs_dir=runs_dir, resume=resume,
                                       progress=show_progress, console=console))
    except TrainingInterrupted as interrupted:
        if interrupted.run_dir is None:
            _fail(f"interrupted after epoch {interrupted.epoch}, before the first checkpoint: nothing was saved "
                  "to continue from; train the spec again", 130)
        _fail(
            f"interrupted after epoch {interrupted.epoch}; continue with: "
            f"layerforge train --resume {interrupted.run_dir}",
            130,
        )
    if quiet:
        print(run.path)
        return
    metrics = run.metrics
    console.print(f"{run.path.name}: {metrics['epochs']} epochs (best {metrics['best_epoch']})")
    console.print(_metrics_table(metrics))
    for name, path in metrics.get("pictures", {}).items():
        console.print(f"{name}: {run.path / path}")
    findings = metrics.get("findings", [])
    for finding in findings:
        began = finding["evidence"].get("epoch") or finding["evidence"].get("began")
        when = f", from epoch {began}" if began else ""
        console.print(_styled(finding["severity"], "bold yellow", f" ({finding['kind']}{when}): {finding['message']}"),
                      soft_wrap=True)
    if findings:
        worst = (metrics.get("doctor") or {}).get("worst")
        console.print(f"doctor: {len(findings)} finding(s), the worst {worst}; see layerforge doctor {run.path}")
    elif "doctor" in metrics:
        console.print("doctor: no findings")
    if (run.path / "report.html").is_file():
        console.print(f"report: {run.path / 'report.html'}")
    console.print(f"run directory: {run.path}")


def _launch(nproc: int, spec: Path | None, overrides: list[str], resume: Path | None, runs_dir: Path,
            quiet: bool) -> None:
    """``layerforge train`` again in ``nproc`` processes under torchrun on this machine."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
               "-m", "layerforge", "train", *([str(spec)] if spec is not None else []),
               *(part for override in overrides for part in ("--set", override)),
               *(["--resume", str(resume)] if resume is not None else []), "--runs-dir", str(runs_dir),
               *(["--quiet"] if quiet else [])]
    env = {**os.environ, "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // nproc))}
    raise typer.Exit(subprocess.run(command, env=env).returncode)


def _train_seeds(spec: Path | None, overrides: list[str], runs_dir: Path, seeds: int, quiet: bool) -> None:
    from rich.table import Table

    from .evaluation.seeds import PAGE, SUMMARY, spread_sentence, train_seeds

    console = _console()
    log = None if quiet else (lambda line: console.print(line, markup=False))
    found = _guard(lambda: train_seeds(spec, seeds, overrides=overrides, runs_dir=runs_dir, log=log))
    if quiet:
        print(found.path)
        return
    table = Table(title=f"{seeds} seeds")
    for column in ("metric", "median", "min", "max", "worst seed"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    for split, metrics in found.summary.items():
        for name, entry in metrics.items():
            table.add_row(f"{split} {name}", f"{entry['median']:.4f}", f"{entry['min']:.4f}", f"{entry['max']:.4f}",
                          str(entry["worst_seed"]))
    console.print(table)
    said = spread_sentence(found)
    if said:
        console.print(said, markup=False)
    console.print(f"runs, {SUMMARY} and {PAGE}: {found.path}", markup=False)
    console.print(f"to keep them as one model, train a deep ensemble on one split: layerforge ensemble "
                  f"{spec or 'SPEC'} --seeds {seeds}", markup=False)


@app.command()
def cv(
    spec: Path | None = typer.Argument(None, help="Spec YAML file; omit it for the built-in default (MLP on digits)."),
    folds: int = typer.Option(5, "--folds", min=2, help="How many folds."),
    repeats: int = typer.Option(1, "--repeats", min=1, help="Deal the folds this many times (shuffled data only)."),
    set_: list[str] = typer.Option([], "--set", help="Override a spec key, e.g. --set train.epochs=30 (repeatable)."),
    runs_dir: Path = RUNS_DIR,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only the cross-validation directory."),
) -> None:
    """Cross-validate a spec: one run per fold (stratified, grouped by data.groups, or in time
    order), out-of-fold predictions, and each metric's mean, spread and 95% interval."""
    _training_stack()
    from rich.table import Table

    from .evaluation.cv import OOF, PAGE, SUMMARY, cross_validate

    console = _console()
    log = None if quiet else (lambda line: console.print(line, markup=False))
    found = _guard(lambda: cross_validate(spec, folds, repeats=repeats, overrides=set_, runs_dir=runs_dir, log=log))
    if quiet:
        print(found.path)
        return
    table = Table(title=f"{len(found.runs)} folds")
    for column in ("metric", "mean", "std", "95% interval"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    for split, metrics in found.summary.items():
        for name, entry in metrics.items():
            low, high = entry["ci95"]
            table.add_row(f"{split} {name}", f"{entry['mean']:.4f}", f"{entry['std']:.4f}", f"{low:.4f} to {high:.4f}")
    console.print(table)
    console.print(f"folds, {SUMMARY}, {OOF} and {PAGE}: {found.path}", markup=False)
    console.print(f"ship the {len(found.runs)} fold models as one: layerforge ensemble {found.path}", markup=False)


@app.command()
def ensemble(
    sources: list[str] = typer.Argument(..., help="A cross-validation or seeds directory, two or more run directories, or with --seeds a spec."),
    seeds: int = typer.Option(0, "--seeds", min=0, help="Train the spec under this many seeds on one split and keep them as a deep ensemble."),
    set_: list[str] = typer.Option([], "--set", help="With --seeds: override a spec key (repeatable)."),
    runs_dir: Path | None = typer.Option(None, "--runs-dir", help="Where the ensemble is written (default: beside its members, or runs/)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only the ensemble's directory."),
) -> None:
    """Combine runs into one ensemble run (averaged probabilities, or mean and spread of values)
    that predict, evaluate and report accept."""
    _training_stack()
    from .evaluation import ensemble as ensembles

    console = _console()
    log = None if quiet else (lambda line: console.print(line, markup=False))
    paths = [Path(source) for source in sources]
    if seeds:
        if len(paths) != 1:
            _fail("--seeds trains one spec: give exactly one spec file", 2)
        made = _guard(lambda: ensembles.train_ensemble(paths[0], seeds, overrides=set_, runs_dir=runs_dir or Path("runs"),
                                                        log=log))
    elif set_:
        _fail("--set changes a spec; it applies only with --seeds", 2)
    elif len(paths) == 1:
        made = _guard(lambda: ensembles.ensemble_from(paths[0], runs_dir=runs_dir, log=log))
    else:
        made = _guard(lambda: ensembles.build_ensemble(paths, runs_dir=runs_dir or Path("runs"), log=log))
    if quiet:
        print(made.path)
        return
    if made.metrics.get("test"):
        console.print(_metrics_table({"test": made.metrics["test"]}))
    console.print(f"report: {made.path / 'report.html'}", markup=False)
    console.print(f"ensemble directory: {made.path}", markup=False)


def _checked_and_reported(run: Path, checks: dict, folder: Path, section: str) -> None:
    """What attack, explain and fairness end with: their checks, the report rebuilt with their
    section, and where the results are."""
    from .report.html import build_report

    console = _console()
    for key, value in checks.items():
        console.print(f"check {key}: {value}", markup=False)
    _guard(lambda: build_report(run))
    console.print(f"results: {folder} (and the report's {section} section)", markup=False)


@app.command()
def attack(
    run: Path = typer.Argument(..., help="Run directory."),
    method: str = typer.Option("pgd", "--method", help="pgd or fgsm (FGSM is measured too, as a check)."),
    eps: list[float] = typer.Option([], "--eps", help="Budget in the data's units: pixels in [0, 1] for images, standardised values otherwise (repeatable; default: a sweep)."),
    eps_sweep: bool = typer.Option(False, "--eps-sweep", help="The sweep of budgets that suits the data (the default without --eps)."),
    steps: int = typer.Option(20, "--steps", min=1, help="PGD steps."),
    norm: str = typer.Option("linf", "--norm", help="linf or l2."),
) -> None:
    """Attack a run's test rows with FGSM or PGD: its headline metric against epsilon, and
    checks that the attack was strong enough to trust (written to RUN/robustness, shown in the report)."""
    _training_stack()
    from rich.table import Table

    from .robustness import attack as run_attack

    if eps and eps_sweep:
        _fail("give --eps or --eps-sweep, not both", 2)
    console = _console()
    found = _guard(lambda: run_attack(run, method=method, eps=eps or None, steps=steps, norm=norm))
    table = Table(title=f"{found.rows} test rows, epsilon in {found.units}")
    table.add_column("epsilon", justify="right")
    for name in dict.fromkeys(["fgsm", found.method]):
        table.add_column(f"{found.metric} ({name})", justify="right")
    for point in found.points:
        table.add_row(f"{point['eps']:g}", *(f"{point[k]:.4f}" for k in dict.fromkeys(["fgsm", found.method])))
    console.print(table)
    _checked_and_reported(run, found.checks, found.path, "Robustness")


@app.command()
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
    _training_stack()
    from rich.table import Table

    from .explanations import explain as run_explain
    from .explanations import write_out

    console = _console()
    found = _guard(lambda: run_explain(run, data, method=method, target=target, rows=rows))
    table = Table(title=f"{found.method}: {len(found.attributions)} rows")
    table.add_column("input")
    table.add_column("mean |attribution|", justify="right")
    if found.permutation:
        table.add_column("permutation importance", justify="right")
    for name, value in sorted(found.importance.items(), key=lambda kv: -kv[1])[:15]:
        extra = [f"{found.permutation[name]:.4f}"] if found.permutation else []
        table.add_row(name, f"{value:.4g}", *extra)
    console.print(table)
    if out is not None:
        console.print(f"attributions: {_guard(lambda: write_out(found, out))}", markup=False)
    _checked_and_reported(run, found.checks, found.path, "Explanations")


@app.command()
def fairness(
    run: Path = typer.Argument(..., help="Run directory (a classifier)."),
    sensitive: list[str] = typer.Option(..., "--sensitive", help="A column whose groups to compare (repeatable)."),
    data: Path | None = typer.Option(None, "--data", help="Rows with the target and sensitive columns (default: the run's test rows)."),
    positive: str | None = typer.Option(None, "--positive", help="The favourable class (default: the second of two)."),
    max_parity_difference: float = typer.Option(0.1, "--max-parity-difference", min=0, help="Flag a demographic-parity difference above this."),
    max_odds_difference: float = typer.Option(0.1, "--max-odds-difference", min=0, help="Flag an equalized-odds difference above this."),
    mitigate: str | None = typer.Option(None, "--mitigate", help="demographic_parity, true_positive_rate_parity or equalized_odds: per-group thresholds that predict applies from then on (one --sensitive); none removes them."),
    fit_on: str = typer.Option("val", "--fit-on", help="Rows the thresholds are fitted on: val or train (the test rows only measure)."),
) -> None:
    """Audit a classifier's predictions by group: per-group accuracy, selection and error rates,
    calibration, and demographic-parity and equalized-odds disparities with bootstrap intervals.
    With --mitigate, post-process it: thresholds per group, stored with the run, before and after shown."""
    _training_stack()
    from rich.table import Table

    from .fairness import audit, mitigate_fairness, remove_mitigation

    console = _console()
    limits = {"demographic_parity_difference": max_parity_difference, "equalized_odds_difference": max_odds_difference}
    if mitigate == "none":
        had = _guard(lambda: remove_mitigation(run))
        console.print("per-group thresholds removed: predict decides by the model's probabilities again" if had
                      else "this run has no per-group thresholds", markup=False)
        return
    if mitigate is not None:
        if len(sensitive) != 1 or data is not None:
            _fail("--mitigate: name exactly one --sensitive column; thresholds are fitted on the run's own rows "
                  "(no --data)", 2)
        done = _guard(lambda: mitigate_fairness(run, sensitive[0], mitigate, positive=positive, fit_on=fit_on,
                                                thresholds=limits))
        table = Table(title=f"{done.column}: thresholds for {done.constraint} (fitted on {done.fitted_on})")
        for name in ("group", "threshold", "selection before", "selection after", "accuracy before", "accuracy after"):
            table.add_column(name, justify="left" if name == "group" else "right")
        for group, cut in done.thresholds.items():
            before, after = done.before["groups"].get(group, {}), done.after["groups"].get(group, {})
            cells = [before.get("selection_rate"), after.get("selection_rate"), before.get("accuracy"),
                     after.get("accuracy")]
            table.add_row(group, f"{cut:.4f}", *("-" if v is None else f"{v:.3f}" for v in cells))
        console.print(table)
        console.print(done.summary(), markup=False)
        console.print("predict applies these thresholds from now on; rows must carry the column "
                      f"'{done.column}'", markup=False)
        _checked_and_reported(run, {}, done.path, "Fairness")
        return
    found = _guard(lambda: audit(run, sensitive, data, positive=positive, thresholds=limits))
    for column, result in found.columns.items():
        table = Table(title=f"{column} (favourable: {found.positive})")
        for name in ("group", "rows", "accuracy", "selection", "TPR", "FPR", "mean p", "observed"):
            table.add_column(name, justify="left" if name == "group" else "right")
        for group, m in result["groups"].items():
            cells = [m["accuracy"], m["selection_rate"], m["true_positive_rate"], m["false_positive_rate"],
                     m["mean_probability"], m["observed_rate"]]
            table.add_row(group, str(m["rows"]), *("-" if v is None else f"{v:.3f}" for v in cells))
        console.print(table)
        for name, entry in result["disparities"].items():
            low, high = entry["ci95"]
            interval = "" if low is None else f" (95% interval {low:.3f} to {high:.3f})"
            flag = " FLAGGED" if entry.get("flagged") else ""
            console.print(f"{name}: {entry['value']:.3f}{interval}{flag}", markup=False)
    _checked_and_reported(run, {}, found.path, "Fairness")


@app.command()
def evaluate(
    run: Path = typer.Argument(..., help="Run directory."),
    data: Path | None = typer.Option(None, "--data", help="CSV/Parquet with the target column (default: the run's test split)."),
    out: Path | None = typer.Option(None, "--out", help="Write the metrics to this JSON file."),
    unknown_categories: Unknown | None = typer.Option(None, "--unknown-categories", help="error (default) or bucket for unseen categories."),
    ignore_extra: bool = typer.Option(False, "--ignore-extra", help="Ignore columns the model does not know."),
) -> None:
    """Evaluate a trained run on its test split or on another file."""
    _training_stack()
    from .run.directory import load_run

    def call():
        if out is not None:
            _usable_output(out, example="metrics.json")
        loaded = load_run(run)
        metrics = loaded.evaluate(data, unknown=unknown_categories and unknown_categories.value,
                                  ignore_extra=ignore_extra)
        if out is not None:
            with _writing(out):
                _write_json(out, metrics)
        return metrics

    metrics = _guard(call)
    label = str(data) if data else "its test split"
    console = _console()
    console.print(f"{run.name} on {label} ({metrics.pop('rows')} rows)")
    console.print(_metrics_table({"test": metrics}))


@app.command()
def predict(
    run: Path = typer.Argument(..., help="Run directory."),
    data: Path = typer.Argument(..., help="CSV or Parquet file of new rows."),
    out: Path | None = typer.Option(None, "--out", help="Write predictions here (.csv or .parquet); default: standard output."),
    unknown_categories: Unknown | None = typer.Option(None, "--unknown-categories", help="error (default) or bucket for unseen categories."),
    ignore_extra: bool = typer.Option(False, "--ignore-extra", help="Ignore columns the model does not know."),
    backend: Backend = typer.Option(Backend.torch, "--backend", help="torch (the run), or onnx: its export through the torch-free runtime."),
    int8: bool = typer.Option(False, "--int8", help="With --backend onnx: the int8 model the export kept."),
) -> None:
    """Predict new rows with a trained run (classes and probabilities, values, or an
    autoencoder's anomaly scores)."""

    def call():
        options = {"unknown": unknown_categories and unknown_categories.value, "ignore_extra": ignore_extra}
        if backend is Backend.onnx:
            return _runtime_table(run, data, int8, options)
        if int8:
            raise OutputError("--int8 needs --backend onnx")
        _training_stack()
        from .run.directory import load_run

        return load_run(run).predictor.predict_pieces(data, **options)  # a large table: chunk by chunk

    _write_frames(call, out, "predictions.csv")


def _runtime_table(run: Path, data: Path, int8: bool, options: dict):
    """Predictions through the exported model and ``layerforge.runtime`` (no torch)."""
    import pandas as pd

    from .export import current

    runtime = current(run, int8=int8)
    return (pd.DataFrame(table) for table in runtime.predict_pieces(str(data), **options))  # a block at a time


@app.command()
def export(
    run: Path = typer.Argument(..., help="Run directory."),
    format_: ExportFormat = typer.Option(ExportFormat.onnx, "--format", help="onnx (the only format so far)."),
    quantize: Quantization | None = typer.Option(None, "--quantize", help="int8: add an int8 model, kept only if as accurate (--max-drop) and no slower."),
    opset: int | None = typer.Option(None, "--opset", min=7, help="ONNX opset (default: the exporter's, 17 or 18)."),
    out: Path | None = typer.Option(None, "--out", help="Folder to write (default: RUN/export)."),
    max_drop: float = typer.Option(1.0, "--max-drop", min=0, help="Largest headline-metric loss int8 may cost: points for accuracy-like metrics, else percent."),
) -> None:
    """Export a run to ONNX with its parity proven on the run's own rows (RUN/export)."""
    _training_stack()
    from .export import EXPORT_DIR, PARITY
    from .report.html import build_report
    from .run.directory import load_run

    console = _console(stderr=True)

    def call():
        loaded = load_run(run)
        folder = loaded.export(quantize=quantize and quantize.value, opset=opset, out=out, max_drop=max_drop,
                               log=lambda line: console.print(line, markup=False))
        if folder == loaded.path / EXPORT_DIR and (loaded.path / "report.html").is_file():
            try:
                build_report(loaded.path)
                console.print("report.html: Export section added", markup=False)
            except LayerforgeError as error:
                console.print(f"report.html was not rebuilt: {error}", markup=False)
        return folder

    folder = _guard(call)
    print(folder)
    console.print(f"proof: {folder / PARITY}", markup=False)


def _write_frames(call, out: Path | None, example: str) -> None:
    """The rows of the tables ``call`` makes (a table, or tables made one at a time), to
    standard output or to ``out`` (checked before the work; written whole or not at all)."""
    from .data.tabular import write_table_pieces

    def written():
        if out is not None:
            _usable_output(out, example=example)
        made = call()
        frames = [made] if hasattr(made, "to_csv") else made
        if out is not None:
            with _writing(out):
                write_table_pieces(frames, out)
            return
        for i, frame in enumerate(frames):
            frame.to_csv(sys.stdout, index=False, header=i == 0)

    _guard(written)


@app.command()
def tune(
    spec: Path = typer.Argument(..., help="A spec with a search section."),
    trials: int | None = typer.Option(None, "--trials", min=1, help="Trials this command runs (default: search.trials); commands on one study add up."),
    timeout: float | None = typer.Option(None, "--timeout", min=0, help="Seconds after which no new trial starts."),
    storage: str | None = typer.Option(None, "--storage", help="Optuna storage URL (default: RUNS/STUDY/study.db); e.g. postgresql://user@host/db."),
    study: str | None = typer.Option(None, "--study", help="The study's name and directory (default: the spec's name)."),
    jobs: int = typer.Option(1, "--jobs", min=1, help="Worker processes on this machine."),
    overrides: list[str] = typer.Option([], "--set", help="Override a spec value, e.g. --set search.trials=10."),
    runs_dir: Path = RUNS_DIR,
    worker: int = typer.Option(0, "--worker", hidden=True),
    quiet: bool = typer.Option(False, "--quiet", help="No line per trial."),
) -> None:
    """Search hyperparameters (and architectures) with Optuna; write best.yaml, trials.csv and report.html."""
    _training_stack()
    from .search import tune as run_search

    console = _console(stderr=True)
    log = None if quiet else (lambda line: console.print(line, markup=False))

    def call():
        return run_search(spec, overrides=overrides, trials=trials, timeout=timeout, storage=storage, study=study,
                          jobs=jobs, runs_dir=runs_dir, log=log, worker=worker)

    try:
        tuned = _guard(call)
    except KeyboardInterrupt:
        console.print("interrupted: the study keeps its finished trials; run the same command to continue it",
                      markup=False)
        raise typer.Exit(130) from None
    if worker:
        return
    counts = ", ".join(f"{count} {name}" for name, count in tuned.counts.items() if count)
    print(tuned.path)
    console.print(f"{counts}; best: trial {tuned.best_trial}, validation {tuned.metric} {tuned.best_value}"
                  if tuned.best_trial is not None else f"{counts}; no trial completed", markup=False)
    if tuned.best_spec:
        console.print(f"train the best: layerforge train {tuned.best_spec}", markup=False)


@app.command()
def serve(
    runs: list[str] = typer.Argument(..., help="Run directories to serve (each may be NAME=DIRECTORY)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind; 0.0.0.0 makes the service reachable from other machines."),
    port: int = typer.Option(8000, "--port", min=0, max=65535, help="TCP port."),
    workers: int = typer.Option(1, "--workers", min=1, help="Processes; each loads every model."),
    backend: Backend = typer.Option(Backend.torch, "--backend", help="torch (the run), or onnx: its export through ONNX Runtime."),
    int8: bool = typer.Option(False, "--int8", help="With --backend onnx: the int8 model the export kept."),
    api_key_env: str | None = typer.Option(None, "--api-key-env", help="Environment variable holding the API key clients must send (default: none asked)."),
    max_batch: int = typer.Option(64, "--max-batch", min=1, help="Most rows one forward pass gathers from concurrent requests; 1 turns batching off."),
    batch_wait_ms: float = typer.Option(2.0, "--batch-wait-ms", min=0, max=1000, help="Longest wait for requests on their way in before a forward pass."),
    max_body: int = typer.Option(1 << 20, "--max-body", min=1, help="Largest request body in bytes (413 beyond it)."),
    queue_size: int = typer.Option(256, "--queue-size", min=1, help="Requests that may wait per model before 503."),
) -> None:
    """Serve runs over HTTP: POST /v1/models/NAME/predict, typed from each run (see /docs)."""
    from .serving import serve as run_service

    _guard(lambda: run_service(runs, host=host, port=port, workers=workers, api_key_env=api_key_env,
                               backend=backend.value, int8=int8, max_batch=max_batch, batch_wait_ms=batch_wait_ms,
                               max_body=max_body, queue_size=queue_size))


@app.command()
def embed(
    run: Path = typer.Argument(..., help="Run directory of an autoencoder."),
    data: Path = typer.Argument(..., help="Rows to encode: CSV/Parquet (tables), .npz or a folder (images, series)."),
    out: Path | None = typer.Option(None, "--out", help="Write the codes here (.csv or .parquet); default: standard output."),
    ignore_extra: bool = typer.Option(False, "--ignore-extra", help="Ignore columns the model does not know."),
) -> None:
    """Encode rows to an autoencoder's latent codes (dimensionality reduction)."""
    _training_stack()
    from .run.directory import load_run

    def call():  # a large table: chunk by chunk
        predictor = load_run(run).predictor
        return (predictor.embed_table(piece, ignore_extra=ignore_extra) for piece in predictor.encoder.pieces(data))

    _write_frames(call, out, "codes.csv")


@app.command()
def sample(
    run: Path = typer.Argument(..., help="Run directory of a GAN or a variational autoencoder."),
    n: int = typer.Option(100, "--n", min=1, help="How many rows to generate."),
    label: str | None = typer.Option(None, "--label", help="Class to generate (conditional GANs)."),
    seed: int = typer.Option(0, "--seed", help="The same seed gives the same samples."),
    out: Path = typer.Option(Path("samples.png"), "--out", help="A .png grid (images) or a .csv/.parquet table."),
) -> None:
    """Generate new rows: a PNG grid of images or a table."""
    _training_stack()
    from .run.directory import load_run

    def call():
        _usable_output(out, example="samples.png")
        loaded = load_run(run)
        with _writing(out):
            return loaded.write_samples(out, n, label=label, seed=seed)

    path = _guard(call)
    _console().print(f"wrote {n} samples to {path}")


@app.command()
def generate(
    run: Path = typer.Argument(..., help="Run directory of a language model."),
    prompt: str = typer.Option("", "--prompt", help="Text to continue."),
    length: int = typer.Option(200, "--length", min=1, help="Tokens to generate."),
    temperature: float = typer.Option(1.0, "--temperature", help="Below 1 is more conservative."),
    top_k: int | None = typer.Option(None, "--top-k", min=1, help="Sample among the k most likely tokens."),
    seed: int = typer.Option(0, "--seed", help="The same seed gives the same text."),
) -> None:
    """Sample text from a trained language model."""
    _training_stack()
    from .run.directory import load_run

    text = _guard(lambda: load_run(run).generate(prompt, length, temperature, top_k, seed))
    print(text)


@app.command()
def summary(
    spec: Path | None = typer.Argument(None, help="Spec YAML file (default: the built-in default)."),
    set_: list[str] = typer.Option([], "--set", help="Override a spec key (repeatable)."),
) -> None:
    """Show a model's layers, output shapes and parameter counts for a spec."""
    _training_stack()
    from .summary import summarize

    rows, total, trainable = _guard(lambda: summarize(spec, set_))
    from rich.table import Table

    table = Table()
    for column, justify in (("layer", "left"), ("type", "left"), ("output shape", "left"), ("parameters", "right")):
        table.add_column(column, justify=justify)
    for name, kind, shape, count in rows:
        table.add_row(name, kind, shape, f"{count:,}")
    console = _console()
    console.print(table)
    console.print(f"parameters: {total:,} ({trainable:,} trainable)")


@app.command()
def doctor(run: Path = typer.Argument(..., help="Run directory.")) -> None:
    """Print the training doctor's findings for a run (from its diagnosis.json)."""
    from .run.manifest import read_manifest
    from .run.records import Diagnosis
    from .run.store import DIAGNOSIS, MODEL, read_record

    def call():
        if not (run / DIAGNOSIS).is_file():
            raise CheckpointError(f"{run} has no {DIAGNOSIS}: it is not a run directory, or it was trained "
                                  "with train.doctor: false")
        checksums = read_manifest(run / MODEL).files if (run / MODEL).is_file() else None
        return read_record(run, DIAGNOSIS, Diagnosis, checksums)

    diagnosis = _guard(call)
    console = _console()
    if diagnosis.failure:
        console.print(_styled("the run failed:", "bold red", f" {diagnosis.failure}"), soft_wrap=True)
    if not diagnosis.findings:
        console.print("no findings: gradients, units, learning rate and fit look healthy "
                      f"({diagnosis.measured_steps} measured steps)")
    colours = {"info": "blue", "warning": "yellow", "error": "red"}
    for item in diagnosis.findings:
        console.print(_styled(item.severity, f"bold {colours[item.severity]}",
                              f" {item.kind.replace('_', ' ')}: {item.message}"), soft_wrap=True)
        if item.fix:
            console.print(f"    try: {item.fix}", soft_wrap=True)


@app.command()
def report(run: Path = typer.Argument(..., help="Run directory.")) -> None:
    """Rebuild a run's report.html (one self-contained page: curves, results, doctor, model, spec)."""
    from .report.html import build_report

    def call():
        _usable_output(run / "report.html", "report", "report.html")
        with _writing(run / "report.html", "report"):
            return build_report(run)

    path = _guard(call)
    _console().print(f"wrote {path}")


@app.command()
def compare(
    runs_: list[Path] = typer.Argument(..., metavar="RUN...", help="Two or more run directories."),
    out: Path = typer.Option(Path("compare.html"), "--out", help="Where to write the page."),
) -> None:
    """Compare runs: curves overlaid and final metrics side by side, in one HTML page."""
    from .report.html import build_comparison

    if len(runs_) < 2:
        _fail("compare needs at least two run directories", 2)
    def call():
        _usable_output(out, example="compare.html")
        with _writing(out):
            return build_comparison(runs_, out)

    path = _guard(call)
    _console().print(f"wrote {path}")


@app.command("lr-find")
def lr_find(
    spec: Path | None = typer.Argument(None, help="Spec YAML file (default: the built-in default)."),
    set_: list[str] = typer.Option([], "--set", help="Override a spec key (repeatable)."),
    out: Path = typer.Option(Path("lr_find.png"), "--out", help="Where to save the plot."),
    steps: int = typer.Option(100, "--steps", min=10, help="Steps of the range test."),
) -> None:
    """Learning-rate range test: suggest train.optimizer.lr and save the loss-vs-rate plot."""
    _training_stack()
    from .recipes.lr_range import lr_range_test, plot

    def call():
        _usable_output(out, example="lr_find.png")
        finding = lr_range_test(spec, set_, steps=steps)
        with _writing(out):
            plot(finding, out)
        return finding

    finding = _guard(call)
    console = _console()
    console.print(f"suggested learning rate: {finding.suggestion:.3g} (steepest descent {finding.steepest:.3g}, "
                  f"lowest loss at {finding.minimum:.3g})")
    console.print(f"use it with: --set train.optimizer.lr={finding.suggestion:.2g}")
    console.print(f"plot: {out}")


@app.command()
def datasets() -> None:
    """List the built-in datasets: name, task, shape and source."""
    from rich.table import Table

    from .data import builtin

    table = Table(title="built-in datasets (offline; train + test where the split is official)", title_justify="left")
    for column in ("name", "kind", "task", "shape", "source"):
        table.add_column(column)
    for name, info in builtin.DATASETS.items():
        table.add_row(name, info.kind, info.task, info.shape, info.source)
    _console().print(table)


@app.command()
def runs(runs_dir: Path = RUNS_DIR) -> None:
    """List the runs in a directory with their final metrics."""
    from rich.table import Table

    from .run.store import list_runs

    rows = list_runs(runs_dir)
    if not rows:
        _console().print(f"no runs in {runs_dir}")
        return
    from .tasks import TASKS

    table = Table(title=f"runs in {runs_dir}", title_justify="left")
    for column in ("run", "task", "epochs", "status", "val", "test", "doctor"):
        table.add_column(column)

    def headline(task, scores):
        key = TASKS[task].headline if task in TASKS else None
        if not isinstance(scores, dict) or key not in scores:
            return "-"
        return f"{key} {scores[key]:.4f}"

    for row in rows:
        metrics = row["metrics"]
        doctor = metrics.get("doctor") or {}
        verdict = "-" if not doctor else f"{doctor['findings']} ({doctor['worst']})" if doctor["findings"] else "healthy"
        table.add_row(row["run"], str(row["task"]), str(row["epochs"]), row["status"],
                      headline(row["task"], metrics.get("val")), headline(row["task"], metrics.get("test")), verdict)
    _console().print(table)


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
    global _OWN_PROCESS
    _OWN_PROCESS = True
    app()
