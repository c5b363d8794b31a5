"""``layerforge.train``: a spec in, a trained run directory out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .errors import CheckpointError, SpecError, TrainingError
from .runs import (
    CHECKPOINTS,
    DIAGNOSIS,
    DOCTOR_LOG,
    HISTORY,
    METRICS,
    MODEL,
    MODEL_FORMAT,
    SPEC,
    WEIGHTS,
    Run,
    new_run_dir,
    write_json,
    write_spec,
)
from .training.callbacks import Callback

# What `layerforge train` runs with no arguments: an MLP on scikit-learn's digits.
DEFAULT_SPEC: dict[str, Any] = {
    "name": "digits-mlp",
    "seed": 0,
    "data": {"dataset": "digits", "target": "label", "split": {"val": 0.15, "test": 0.15, "stratify": True}},
    "task": "classification",
    "model": {"type": "mlp", "layers": [256, 128], "activation": "relu", "dropout": 0.1,
              "norm": "batch", "init": "kaiming"},
    "train": {
        "epochs": 60,
        "batch_size": 64,
        "loss": {"name": "cross_entropy", "label_smoothing": 0.05},
        "optimizer": {"name": "adamw", "lr": 0.003, "weight_decay": 0.01},
        "schedule": {"name": "cosine", "warmup_epochs": 1},
        "clip_grad_norm": 1.0,
        "early_stopping": {"monitor": "val_loss", "patience": 15, "restore_best": True},
        "device": "auto",
    },
}


class TrainingInterrupted(KeyboardInterrupt):
    """Training was interrupted (Ctrl-C); ``run_dir`` can be resumed."""

    def __init__(self, run_dir: Path, epoch: int):
        super().__init__(f"interrupted after epoch {epoch}")
        self.run_dir, self.epoch = run_dir, epoch


class HistoryWriter(Callback):
    """Keeps ``history.jsonl`` equal to the trainer's history, one JSON line per epoch."""

    def __init__(self, path: Path):
        self.path = path

    def on_fit_start(self, trainer) -> None:
        from .training.checkpoint import atomic_write

        atomic_write(self.path, "".join(json.dumps(r) + "\n" for r in trainer.history_))

    def on_epoch_end(self, trainer, record: dict) -> None:
        with open(self.path, "a", encoding="utf-8") as file:
            file.write(json.dumps(record) + "\n")


def _resume_spec(run_dir: Path, overrides) -> Any:
    from .spec.load import load_spec

    if not (run_dir / SPEC).is_file():
        raise CheckpointError(f"cannot resume {run_dir}: it is not a run directory ({SPEC} is missing)")
    if (run_dir / METRICS).is_file():
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
) -> Run:
    """Train the network a spec describes and write its run directory.

    Args:
        spec: a YAML path, a dict, or a ``Spec``; None trains the built-in default (digits MLP).
        overrides: ``"key.path=value"`` strings applied on top of the spec.
        runs_dir: where the new run directory is created.
        resume: a run directory to continue from its last checkpoint (its own spec is used).
        progress: show a Rich progress bar.
        callbacks: extra ``Callback`` objects.

    Returns:
        The finished ``Run`` (metrics, history, model, predict).

    Raises:
        SpecError, DataError: before anything is trained.
        TrainingError: the loss became non-finite; the last good checkpoint is kept.
        TrainingInterrupted: Ctrl-C; the run directory can be resumed.

    Example:
        >>> run = train({"data": {"dataset": "iris"}, "train": {"epochs": 5}})  # doctest: +SKIP
        >>> run.metrics["test"]["accuracy"]                                    # doctest: +SKIP
    """
    import torch

    from . import tasks
    from .data.prepare import prepare
    from .models import build_model, count_parameters
    from .spec.load import load_spec
    from .training.checkpoint import save_weights
    from .training.loop import evaluate
    from .training.trainer import Trainer, as_tensors

    if resume is not None:
        run_dir = Path(resume)
        spec = _resume_spec(run_dir, overrides)
    else:
        spec = load_spec(DEFAULT_SPEC if spec is None else spec, overrides)

    prepared = prepare(spec.data, spec.task, spec.seed)
    data_meta = prepared.meta()
    spec = spec.model_copy(update={"task": prepared.task})
    task = tasks.from_meta(data_meta)
    torch.manual_seed(spec.seed)
    model = build_model(spec.model, prepared.inputs_info, task.output_size)

    previous = json.loads((run_dir / MODEL).read_text(encoding="utf-8")) if resume is not None else {}
    if resume is None:
        run_dir = new_run_dir(runs_dir, spec.name)
    write_spec(run_dir / SPEC, spec)
    meta = {
        "format": MODEL_FORMAT,
        **data_meta,
        "model": {
            "spec": spec.model.model_dump(mode="json"),
            "output_size": task.output_size,
            "parameters": count_parameters(model),
        },
    }
    extra = list(callbacks)
    watch = None
    if prepared.task == "generation":
        from .generative import evaluator_for
        from .training.adversarial import GANWatch
        from .training.trainer import resolve_device

        evaluator, meta["evaluator"] = evaluator_for(run_dir, prepared, spec.seed,
                                                     resolve_device(spec.train.device).type, previous.get("evaluator"))
        task = tasks.get("generation", classes=prepared.classes, evaluator=evaluator,
                         discriminator_steps=spec.train.discriminator_steps)
        watch = GANWatch()
        extra.append(watch)
    write_json(run_dir / MODEL, meta)

    if progress:
        from .training.callbacks import ProgressBar

        extra.insert(0, ProgressBar(console))
    augment = None
    if spec.data.augment is not None:
        from .data.augment import Augment

        augment = Augment(**spec.data.augment.model_dump())
    if "tensorboard" in spec.train.log:
        from .training.callbacks import TensorBoardLogger

        extra.append(TensorBoardLogger(run_dir / "tensorboard"))
    doctor = None
    if spec.train.doctor and prepared.task != "generation":  # a GAN has its own watch
        from .doctor.monitor import Doctor

        doctor = Doctor(path=run_dir / DOCTOR_LOG)
        extra.append(doctor)
    trainer = Trainer.from_spec(
        spec.train, task=task, seed=spec.seed, checkpoint_dir=run_dir / CHECKPOINTS, augment=augment,
        callbacks=[HistoryWriter(run_dir / HISTORY), *extra],
    )
    splits = prepared.splits
    val = splits["val"] if prepared.rows("val") else None
    try:
        trainer.fit(model, splits["train"], val, resume=resume is not None)
    except KeyboardInterrupt:
        raise TrainingInterrupted(run_dir, trainer.epoch) from None
    except TrainingError as error:
        _write_diagnosis(run_dir, doctor, watch, trainer, spec, prepared, failure=str(error))
        raise

    save_weights(run_dir / WEIGHTS, model.state_dict(), {"format": MODEL_FORMAT})
    held_out = {name: as_tensors(splits[name], task, trainer.device) for name in ("val", "test")
                if prepared.rows(name)}
    metrics: dict[str, Any] = {name: evaluate(model, *data, trainer.loss_fn_, task) for name, data in held_out.items()}
    for baseline, scores in data_meta.get("baseline", {}).items():
        if "test" in metrics:  # e.g. the seasonal-naive forecast of the same test steps
            metrics["test"].update({f"{baseline}_{k}": v for k, v in scores.items()})
    metrics["epochs"] = trainer.epoch
    metrics["best_epoch"] = trainer.best_epoch_
    metrics["stopped_early"] = trainer.stopped_early_
    if prepared.task in ("reconstruction", "generation"):
        tensors = {"train": as_tensors(splits["train"], task, trainer.device), **held_out}
        _finish_generative(run_dir, meta, model, task, prepared, tensors, trainer, spec, metrics)
    if watch is not None:
        metrics["findings"] = watch.findings
    diagnosis = _write_diagnosis(run_dir, doctor, watch, trainer, spec, prepared)
    metrics["doctor"] = {"worst": diagnosis["worst"], "findings": len(diagnosis["findings"])}
    if trainer.rollbacks_:
        metrics["rollbacks"] = len(trainer.rollbacks_)
    write_json(run_dir / METRICS, metrics)
    if spec.train.report:
        from .report.html import build_report

        build_report(run_dir, prepared)
    return Run(run_dir)


def _write_diagnosis(run_dir: Path, doctor, watch, trainer, spec, prepared, failure: str | None = None) -> dict:
    """diagnosis.json: the doctor's findings (and a GAN's), most severe first."""
    from .doctor.verdicts import diagnose, worst

    findings = []
    if doctor is not None:
        findings = diagnose(doctor.measurements, trainer.history_, task=prepared.task,
                            classes=len(prepared.classes) if prepared.classes else None,
                            rollbacks=trainer.rollbacks_, failure=failure,
                            early_stopping=bool(spec.train.early_stopping and spec.train.early_stopping.restore_best))
    if watch is not None:
        findings += [{**f, "fix": "", "evidence": {"epoch": f["epoch"]}} for f in watch.findings]
    diagnosis = {"worst": worst(findings), "findings": findings, "failure": failure,
                 "measured_steps": len(doctor.measurements) if doctor is not None else 0,
                 "layers": doctor.layer_names if doctor is not None else [],
                 "activations": doctor.activation_names if doctor is not None else []}
    write_json(run_dir / DIAGNOSIS, diagnosis)
    return diagnosis


def _finish_generative(run_dir: Path, meta: dict, model, task, prepared, tensors: dict, trainer, spec,
                       metrics: dict) -> None:
    """Add an autoencoder's or GAN's extra test metrics and pictures to ``metrics`` (and the
    anomaly threshold to model.json). ``tensors``: split name -> ((x,), y) on the device."""
    from .generative import finish_generation, finish_reconstruction

    if prepared.task == "reconstruction":
        result = finish_reconstruction(run_dir, meta, model, tensors, spec)
        if result["anomaly"] is not None:
            meta["anomaly"] = result["anomaly"]
            write_json(run_dir / MODEL, meta)
    else:
        result = finish_generation(run_dir, meta, model, task, tensors, trainer.history_)
    if result["test"]:
        metrics.setdefault("test", {}).update(result["test"])
    metrics["pictures"] = {name: str(Path(path).relative_to(run_dir)) for name, path in result["pictures"].items()}
