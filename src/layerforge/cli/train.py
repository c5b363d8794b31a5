"""``layerforge train``: train a network from a spec and write its run directory."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from .common import RUNS_DIR, fail, guard, make_console, metrics_table, styled, training_stack


def train(
    spec: Path | None = typer.Argument(None, help="Spec YAML file; omit it to train the built-in default (MLP on digits)."),
    set_: list[str] = typer.Option([], "--set", help="Override a spec key, e.g. --set train.epochs=30 (repeatable)."),
    resume: Path | None = typer.Option(None, "--resume", help="Continue an interrupted run directory."),
    runs_dir: Path = RUNS_DIR,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress and no tables; print only the run directory."),
    seeds: int = typer.Option(1, "--seeds", min=1, help="Train under this many seeds (the spec's, then the next) and report each metric's median, range and worst seed."),
    nproc: int = typer.Option(1, "--nproc", min=1, help="Data-parallel training in this many processes on this machine (Gloo on CPUs, NCCL on GPUs)."),
) -> None:
    """Train a network from a spec and write its run directory."""
    if spec is not None and resume is not None:
        fail("give a spec or --resume RUN_DIR, not both (a resumed run keeps its own spec)", 2)
    if resume is None:  # a mistake in the spec is answered before torch is imported
        from ..spec.defaults import DEFAULT_SPEC
        from ..spec.load import load_spec

        guard(lambda: load_spec(DEFAULT_SPEC if spec is None else spec, set_))
    training_stack()
    from ..api import TrainingInterrupted
    from ..api import train as train_run

    if nproc > 1:
        if seeds > 1:
            fail("--nproc trains one run in several processes; it cannot train --seeds runs", 2)
        _launch(nproc, spec, set_, resume, runs_dir, quiet)
        return
    if os.environ.get("RANK", "0") != "0":  # another process of data-parallel training: the first one speaks
        _with_peers(lambda: guard(lambda: train_run(spec, overrides=set_, runs_dir=runs_dir, resume=resume)))
        return
    if seeds > 1:
        if resume is not None:
            fail("--seeds trains new runs; it cannot --resume one", 2)
        _train_seeds(spec, set_, runs_dir, seeds, quiet)
        return
    console = make_console()
    if not quiet and resume is None:
        what = spec if spec else ("the built-in default (digits MLP)" + (" with your --set changes" if set_ else
                                                                            ": an MLP on the digits dataset"))
        console.print(f"training {what}")
    try:
        run = _with_peers(lambda: guard(lambda: train_run(spec, overrides=set_, runs_dir=runs_dir, resume=resume,
                                                          progress=not quiet,
                                                          console=None if quiet else console)))
    except TrainingInterrupted as interrupted:
        if interrupted.run_dir is None:
            fail(f"interrupted after epoch {interrupted.epoch}, before the first checkpoint: nothing was saved "
                  "to continue from; train the spec again", 130)
        fail(
            f"interrupted after epoch {interrupted.epoch}; continue with: "
            f"layerforge train --resume {interrupted.run_dir}",
            130,
        )
    if quiet:
        print(run.path)
        return
    metrics = run.metrics
    console.print(f"{run.path.name}: {metrics['epochs']} epochs (best {metrics['best_epoch']})")
    console.print(metrics_table(metrics))
    for name, path in metrics.get("pictures", {}).items():
        console.print(f"{name}: {run.path / path}")
    findings = metrics.get("findings", [])
    for finding in findings:
        began = finding["evidence"].get("epoch") or finding["evidence"].get("began")
        when = f", from epoch {began}" if began else ""
        console.print(styled(finding["severity"], "bold yellow", f" ({finding['kind']}{when}): {finding['message']}"),
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
    """``layerforge train`` again in ``nproc`` processes on this machine (``training.launch``)."""
    from ..training.launch import launch

    cores = os.cpu_count() or 1
    if nproc > cores:
        fail(f"--nproc {nproc}: this machine has {cores} CPU cores; use at most {cores} processes", 2)
    arguments = [*([str(spec)] if spec is not None else []),
                 *(part for override in overrides for part in ("--set", override)),
                 *(["--resume", str(resume)] if resume is not None else []), "--runs-dir", str(runs_dir),
                 *(["--quiet"] if quiet else [])]
    ended = launch(nproc, arguments, runs_dir, resume)
    if ended.message:
        fail(ended.message, ended.code)
    raise typer.Exit(ended.code)


def _with_peers(call):
    """``call``, in a process of data-parallel training: losing another process of the group is
    one line and ``PEER_LOST``, not the backend's traceback (the launcher says what happened)."""
    from ..training.distributed import PEER_LOST, lost_peer

    try:
        return call()
    except Exception as error:
        if not lost_peer(error):
            raise
        fail("another training process stopped (the connection to it was lost); this one stops too", PEER_LOST)


def _train_seeds(spec: Path | None, overrides: list[str], runs_dir: Path, seeds: int, quiet: bool) -> None:
    from rich.table import Table

    from ..evaluation.seeds import PAGE, SUMMARY, spread_sentence, train_seeds

    console = make_console()
    found = guard(lambda: train_seeds(spec, seeds, overrides=overrides, runs_dir=runs_dir,
                                      progress=None if quiet else console))
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

