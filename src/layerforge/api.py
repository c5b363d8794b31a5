"""``layerforge.train``: a spec in, a trained run directory out."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Any

import torch

from . import recipes
from .data.augment import Augment
from .data.columns import schema_table
from .data.kinds import Source
from .data.prepare import load_source, prepare, rows_in_memory
from .data.splits import Recorded, SplitPlan
from .errors import CheckpointError, DataError, SpecError, TrainingError
from .fairness import reweighing
from .figures.console import show
from .files import locked, read_json, remove, write_json
from .models import count_parameters
from .models.check import checked_build
from .recipes.scaffold import Scaffold, as_tensors, resolve_device
from .report.html import build_report
from .run.directory import Run
from .run.manifest import Manifest, read_manifest, spec_digest, spec_matches
from .run.store import (
    CHECKPOINTS,
    DIAGNOSIS,
    DOCTOR_LOG,
    HISTORY,
    IMAGES,
    METRICS,
    MODEL,
    PARTIAL,
    SPEC,
    SPLIT,
    WEIGHTS,
    clear_leftovers,
    clear_orphans,
    file_checksums,
    finished,
    has_checkpoint,
    new_run_dir,
    read_split,
    resumed,
    usable_runs_dir,
    write_held_out,
    write_spec,
    write_split,
)
from .spec.defaults import DEFAULT_SPEC
from .spec.load import dotted, load_spec
from .training.callbacks import Callback, EpochProgress, HistoryWriter, TensorBoardLogger
from .training.checkpoint import save_weights
from .training.distributed import Distributed
from .training.precision import Precision
from .transfer import TRANSFER, Freezer, frozen_names, init_from

__all__ = ["DEFAULT_SPEC", "TrainingInterrupted", "train"]


class TrainingInterrupted(KeyboardInterrupt):
    """Training was interrupted (Ctrl-C) after ``epoch`` epochs. ``run_dir`` can be resumed; it
    is None when no checkpoint had been written yet (the run directory was removed)."""

    def __init__(self, run_dir: Path | None, epoch: int):
        super().__init__(f"interrupted after epoch {epoch}")
        self.run_dir, self.epoch = run_dir, epoch


def _resume_spec(run_dir: Path, overrides) -> Any:
    if not (run_dir / SPEC).is_file():
        raise CheckpointError(f"cannot resume {run_dir}: it is not a run directory ({SPEC} is missing)")
    if (run_dir / METRICS).is_file() and not (run_dir / PARTIAL).is_file():
        raise CheckpointError(f"cannot resume {run_dir}: the run already finished")
    changed = [o.partition("=")[0] for o in overrides if o.partition("=")[0].strip() != "train.epochs"]
    if changed:
        raise SpecError(
            [f"--set {key}: a resumed run keeps its spec; only train.epochs may change" for key in changed]
        )
    return load_spec(run_dir / SPEC, overrides)


def train(
    spec: Any = None,
    *,
    overrides: list[str] | tuple[str, ...] = (),
    runs_dir: str | Path = "runs",
    resume: str | Path | None = None,
    progress: bool = False,
    callbacks: list[Callback] | tuple = (),
    console=None,
    plan: SplitPlan | None = None,
    source: Source | None = None,
    data: Any = None,
) -> Run:
    """Train the network a spec describes and write its run directory.

    Args:
        spec: a YAML path, a dict, or a ``Spec``; None trains the built-in default (digits MLP).
        overrides: ``"key.path=value"`` strings applied on top of the spec.
        runs_dir: where the new run directory is created.
        resume: a run directory to continue from its last checkpoint (its own spec is used).
        progress: show progress over the epochs: a bar on a terminal, a line every ten seconds
            when output is a file or a pipe, one updating line in a notebook.
        callbacks: extra ``Callback`` objects.
        plan: how to split the rows instead of ``data.split`` (``layerforge.data.splits``; e.g.
            fold k of a cross-validation).
        source: the spec's rows already loaded (``layerforge.data.prepare.load_source``), so
            that several runs on one data set read it once.
        data: rows in memory instead of the spec's ``data.path`` or ``data.dataset``: a DataFrame
            (the spec names its target), or arrays ``(X, y)`` (columns ``x0, x1, ...`` and
            ``target``). A run trained on them resumes with them given again.

    Returns:
        The finished ``Run`` (metrics, history, model, predict).

    Raises:
        SpecError, DataError: before anything is trained.
        TrainingError: the loss became non-finite; the last good checkpoint is kept.
        TrainingInterrupted: Ctrl-C; the run directory can be resumed.

    Examples:
        >>> run = train({"data": {"dataset": "iris"}, "train": {"epochs": 5}})  # doctest: +SKIP
        >>> run.metrics["test"]["accuracy"]                                    # doctest: +SKIP
    """
    frame = None
    if data is not None:
        if source is not None:
            raise SpecError("give the rows as data= or as source=, not both")
    if resume is not None:
        run_dir = Path(resume)
        spec = _resume_spec(run_dir, overrides)
        if data is not None:
            frame, _ = rows_in_memory(data)
    elif data is not None:
        asked, given, frame = in_memory(spec, overrides, data)
        spec = load_spec(asked, given)
    else:
        spec = load_spec(DEFAULT_SPEC if spec is None else spec, overrides)
    if frame is not None:
        source = load_source(spec.data, spec.task, frame)
    device = resolve_device(spec.train.device)
    Precision.of(spec.train.precision, device)  # refused before a directory is made
    distributed = Distributed.from_env(device)
    leader = distributed is None or distributed.leader
    if resume is None:
        usable_runs_dir(runs_dir)
    elif (run_dir / SPLIT).is_file():  # the rows it started with, whichever plan chose them
        source = source or load_source(spec.data, spec.task)
        plan = Recorded(read_split(run_dir, source), read_json(run_dir / SPLIT).get("plan") or {})

    prepared = prepare(spec.data, spec.task, spec.seed, plan=plan, source=source)
    task = prepared.task
    if console is not None and resume is None and prepared.encoder.schema:
        _show_schema(prepared, console)
    if spec.train.calibrate != "none" and not task.calibrates:
        raise SpecError(f"train.calibrate: temperature scaling is for classification; this run does {task.name}")
    row_weights = reweighing(spec.train.fairness, prepared) if spec.train.fairness else None
    recipe = recipes.get(task.recipe)
    if distributed is not None and not recipe.abilities.distributed:
        raise SpecError(f"--nproc: data-parallel training trains one network with one loss; a {task.name} run trains "
                        f"{recipe.trains}; train it in one process")
    if prepared.source.streamed:
        _check_streamed(spec, task)
    # the spec as run: its task, and whether its table streamed (data.streaming: auto decides by size)
    spec = spec.model_copy(update={"task": task.name,
                                   "data": spec.data.model_copy(update={"streaming": prepared.source.streamed})})
    torch.manual_seed(spec.seed)
    batch = prepared.rows("train") if spec.train.batch_size == "full" else spec.train.batch_size
    model = checked_build(spec.model, prepared.inputs, task.output_size, task.num_classes, batch_size=batch,
                          device=resolve_device(spec.train.device))

    frozen = frozen_names(model, spec.model.freeze) if spec.model.freeze else []
    loaded = None
    if spec.model.init_from is not None and resume is None:
        loaded = init_from(model, Path(spec.model.init_from).expanduser(), task.classes)
        if console is not None:
            console.print(loaded.summary(), markup=False)
    model.hold(prepared.encoder.constants)  # this data's, whatever a run it starts from held
    if resume is None and leader:
        clear_orphans(runs_dir)
        run_dir = new_run_dir(runs_dir, spec.name, spec)
        if loaded is not None:
            write_json(run_dir / TRANSFER, loaded.to_json())
    if distributed is not None and resume is None:
        run_dir = Path(distributed.shared(str(run_dir) if leader else ""))  # the first process made it
    with locked(run_dir, "training") if leader else contextlib.nullcontext():
        previous = {}
        if resume is not None:
            previous = _previous_manifest(run_dir)
            if not spec_matches(spec, previous.get("spec_sha256"), _written_spec(run_dir)):
                raise CheckpointError(f"cannot resume {run_dir}: its {SPEC} was changed after the run started (only "
                                      "train.epochs may change); restore it, or train the new spec as a new run")
            if leader:
                clear_leftovers(run_dir)
                resumed(run_dir)
                write_spec(run_dir / SPEC, spec)  # it may train longer (train.epochs)
        if distributed is not None:
            distributed.wait()  # the others read the checkpoint once the first process has tidied the directory
        # a run stopped before its first checkpoint starts again from its first epoch
        resuming = resume is not None and has_checkpoint(run_dir)
        if frozen:
            callbacks = [Freezer(model, frozen, spec.train.unfreeze_at), *callbacks]
        if not leader:
            return _follow(run_dir, spec, prepared, model, resuming, callbacks, row_weights, distributed)
        return _train(run_dir, spec, prepared, model, previous, resuming, progress, callbacks, console, row_weights,
                      distributed)


def in_memory(spec: Any, overrides: list[str] | tuple[str, ...], data) -> tuple[Any, list[str], Any]:
    """For rows given in memory (``data=``): the spec to load (the defaults but for data, when
    none is given), the overrides that record the rows (``data.frame``; arrays' target column
    ``target``) and the rows as a DataFrame."""
    frame, called = rows_in_memory(data)
    asked = {"data": {}} if spec is None else spec
    given = [*overrides, f"data.frame={called}"]
    if isinstance(data, tuple) and load_spec(asked, given).data.target is None:  # arrays: y is the target
        given.append("data.target=target")
    return asked, given, frame


def _show_schema(prepared, console) -> None:
    """How the table's columns are read, before training on them (plain numbers counted, not
    listed, in a wide table)."""
    source = prepared.source
    show([schema_table(prepared.encoder.schema, all_rows=False,
                       title=f"{Path(source.label).name}: {source.rows} rows, columns as read")], console)


def _check_streamed(spec, task) -> None:
    """Refuse what streamed data cannot train with: every row in memory at once."""
    problems = []
    if spec.train.batch_size == "full":
        problems.append("train.batch_size: 'full' needs every row in memory; the data are streamed "
                        "(data.streaming): give a number of rows")
    if spec.train.fairness is not None:
        problems.append("train.fairness: reweighing draws rows from memory; the data are streamed "
                        "(data.streaming): remove it, or mitigate after training (layerforge fairness --mitigate)")
    recipe = recipes.get(task.recipe)
    if not recipe.abilities.streaming:
        problems.append(f"data.streaming: a {task.name} run trains {recipe.trains} on rows in memory; set "
                        "data.streaming: false")
    if problems:
        raise SpecError(problems)


def _follow(run_dir: Path, spec, prepared, model, resuming: bool, callbacks, row_weights, distributed) -> Run:
    """Train as one of the other processes of data-parallel training: the same steps on its part
    of each batch, writing nothing; the run is returned once the first process has finished it."""
    scaffold = _scaffold(run_dir, spec, prepared, callbacks, row_weights, distributed)
    _fit(scaffold, prepared, model, resuming)
    distributed.wait()
    return Run(run_dir)


def _scaffold(run_dir: Path, spec, prepared, callbacks, row_weights, distributed) -> Scaffold:
    """The training state of a run in ``run_dir``, with the spec's data-dependent parts."""
    return Scaffold(spec.train, prepared.task, seed=spec.seed, checkpoint_dir=run_dir / CHECKPOINTS,
                    augment=Augment.from_spec(spec.data.augment, prepared.task.moved_targets), row_weights=row_weights,
                    perturbation=prepared.encoder.state.perturbation() if spec.train.adversarial else None,
                    callbacks=list(callbacks), distributed=distributed)


def _fit(scaffold: Scaffold, prepared, model, resuming: bool) -> None:
    """Train ``model`` on the prepared training rows, validating on the validation rows if any."""
    splits = prepared.splits
    recipes.get(prepared.task.recipe).fit(scaffold, model, splits["train"],
                                          splits["val"] if prepared.rows("val") else None, resume=resuming)


def _written_spec(run_dir: Path) -> dict | None:
    """The run's spec.yaml as it is written (its keys, for ``spec_matches``), or None."""
    import yaml

    try:
        found = yaml.safe_load((run_dir / SPEC).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None
    return found if isinstance(found, dict) else None


def _previous_manifest(run_dir: Path) -> dict:
    """What the run's model.json recorded before (what training measured on the way, such as a
    GAN's judge); the file is written again before the first epoch, so a damaged one is dropped."""
    try:
        previous = read_json(run_dir / MODEL)
    except CheckpointError:
        return {}
    return previous if isinstance(previous, dict) else {}


def _train(run_dir: Path, spec, prepared, model, previous: dict, resuming: bool, progress: bool, callbacks,
           console, row_weights=None, distributed=None) -> Run:
    """Train in ``run_dir`` (its lock held) and write everything the run directory holds."""
    task = prepared.task
    recipe = recipes.get(task.recipe)
    manifest = _write_manifest(run_dir, spec, prepared, model, recipe, previous)

    monitor = recipe.monitor(spec.train, run_dir / DOCTOR_LOG)
    shown = [EpochProgress(console if console is not None else sys.stdout)] if progress else []
    extra = [*shown, *callbacks, *([monitor] if monitor else [])]
    if "tensorboard" in spec.train.log:
        extra.append(TensorBoardLogger(run_dir / "tensorboard", dotted(spec.model_dump(mode="json"))))
    tracker = None
    if "mlflow" in spec.train.log and (distributed is None or distributed.leader):
        from .tracking import MlflowTracker

        fingerprint = manifest.split.fingerprint if manifest.split is not None else "-"
        tracker = MlflowTracker(run_dir, spec, {"layerforge.task": task.name, "layerforge.data": manifest.source,
                                                "layerforge.data_fingerprint": fingerprint})
        extra.append(tracker)
    scaffold = _scaffold(run_dir, spec, prepared, [HistoryWriter(run_dir / HISTORY), *extra], row_weights,
                         distributed)
    early_stopping = bool(spec.train.early_stopping and spec.train.early_stopping.restore_best)
    try:
        _fit(scaffold, prepared, model, resuming)
    except KeyboardInterrupt:
        raise TrainingInterrupted(run_dir if _stopped(run_dir) else None, scaffold.epoch) from None
    except DataError:  # a streamed row the preprocessing refuses
        _stopped(run_dir)
        raise
    except TrainingError as error:
        _write_diagnosis(run_dir, monitor, scaffold, failure=str(error), early_stopping=early_stopping)
        finished(run_dir)
        if tracker is not None:
            tracker.failed()
        raise

    save_weights(run_dir / WEIGHTS, model.state_dict(), {"format": manifest.format})
    metrics = _measure(run_dir, manifest, model, scaffold, prepared, spec.train.calibrate)
    diagnosis = _write_diagnosis(run_dir, monitor, scaffold, early_stopping=early_stopping)
    metrics["findings"] = diagnosis["findings"]
    metrics["doctor"] = {"worst": diagnosis["worst"], "findings": len(diagnosis["findings"])}
    if scaffold.rollbacks_:
        metrics["rollbacks"] = len(scaffold.rollbacks_)
    write_json(run_dir / METRICS, metrics)
    if spec.train.report:
        build_report(run_dir, prepared)
    read_manifest(run_dir / MODEL).model_copy(update={"files": file_checksums(run_dir)}).write(run_dir / MODEL)
    finished(run_dir)
    if tracker is not None:
        tracker.finish(metrics)
    if distributed is not None:
        distributed.wait()  # the other processes return the finished run
    return Run(run_dir)


def _stopped(run_dir: Path) -> bool:
    """Leave a run stopped before its end resumable, or, with nothing to continue from, remove
    it; whether it was kept."""
    if has_checkpoint(run_dir):
        finished(run_dir)
        return True
    remove(run_dir)
    return False


def _write_manifest(run_dir: Path, spec, prepared, model, recipe, previous: dict) -> Manifest:
    """model.json (and split.json, which it points to), before the first epoch: enough to
    rebuild the model and its preprocessing without the training data."""
    task = prepared.task
    device = resolve_device(spec.train.device).type
    manifest = Manifest.model_validate({
        **task.record(),
        "task": task.name,
        "target": prepared.source.target,
        "inputs": prepared.inputs,
        "features": prepared.encoder.features,
        "preprocessing": prepared.encoder.state,
        "rows": {name: prepared.rows(name) for name in prepared.splits},
        "source": prepared.source.label,
        "split": write_split(run_dir, prepared),
        "held_out": write_held_out(run_dir, prepared),
        "model": {"spec": spec.model.model_copy(update=model.manifest_options()), "output_size": task.output_size,
                  "num_classes": task.num_classes,
                  "parameters": count_parameters(model)},
        "anomaly_classes": spec.data.anomaly_classes,
        "spec_sha256": spec_digest(spec),
        "baseline": prepared.baselines or None,
        **recipe.setup(task, prepared, run_dir, device, previous),
    })
    manifest.write(run_dir / MODEL)
    return manifest


def _measure(run_dir: Path, manifest: Manifest, model, scaffold: Scaffold, prepared,
             calibrate: str = "none") -> dict[str, Any]:
    """Held-out metrics (with any baseline), the epochs trained, and what the task measures and
    draws once training ended; model.json gains what the task chose (an anomaly threshold, a
    calibration fitted on the validation rows, which the metrics then reflect)."""
    task, splits = prepared.task, prepared.splits
    held_out = {name: as_tensors(splits[name], task, scaffold.device) for name in ("val", "test")
                if prepared.rows(name)}
    if calibrate != "none" and "val" in held_out:
        manifest = Manifest.model_validate({**manifest.to_json(), **task.calibrate(model, *held_out["val"])})
        manifest.write(run_dir / MODEL)
    metrics: dict[str, Any] = {name: task.evaluate(model, *data, scaffold.loss_fn_) for name, data in held_out.items()}
    for baseline, scores in prepared.baselines.items():
        if "test" in metrics:  # e.g. the seasonal-naive forecast of the same test steps
            metrics["test"].update({f"{baseline}_{k}": v for k, v in scores.items()})
    metrics.update(epochs=scaffold.epoch, best_epoch=scaffold.best_epoch_, stopped_early=scaffold.stopped_early_)
    seconds = [record["seconds"] for record in scaffold.history_]
    if scaffold.spec.compile and len(seconds) > 1:  # compiling happens in the first steps
        metrics["compile_seconds"] = round(max(0.0, seconds[0] - sorted(seconds[1:])[len(seconds[1:]) // 2]), 3)
    tensors = {"train": as_tensors(prepared.arrays("train"), task, scaffold.device), **held_out}
    finished = task.finish(model, tensors, encoder=prepared.encoder, images=run_dir / IMAGES,
                           history=scaffold.history_)
    if finished.record:
        Manifest.model_validate({**manifest.to_json(), **finished.record}).write(run_dir / MODEL)
    if finished.test:
        metrics.setdefault("test", {}).update(finished.test)
    if finished.pictures:
        metrics["pictures"] = {name: str(Path(path).relative_to(run_dir)) for name, path in finished.pictures.items()}
    return metrics


def _write_diagnosis(run_dir: Path, monitor, scaffold: Scaffold, *, failure: str | None = None,
                     early_stopping: bool = False) -> dict:
    """diagnosis.json: the monitor's findings (the doctor's, or a GAN's watch), most severe first."""
    if monitor is None:
        diagnosis = {"worst": None, "findings": [], "failure": failure, "measured_steps": 0, "layers": [],
                     "activations": []}
    else:
        diagnosis = monitor.diagnosis(scaffold, failure=failure, early_stopping=early_stopping)
    write_json(run_dir / DIAGNOSIS, diagnosis)
    return diagnosis
