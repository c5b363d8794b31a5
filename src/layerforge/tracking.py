"""MLflow tracking (``train.log: [mlflow]``; the ``mlflow`` extra).

A run records, in an MLflow run named after its run directory, in an experiment named after its
spec:

- params: every value of the resolved spec, by its dotted key (``train.optimizer.lr``);
- tags: the task, the data source, the data's fingerprint, the layerforge version, the run directory;
- metrics: every number of every epoch's record (step = the epoch), then the final test and
  validation metrics (``test_<metric>``, ``final_val_<metric>``);
- artifacts: report.html, diagnosis.json, metrics.json, spec.yaml and history.jsonl;
- the model: an MLflow pyfunc model (``layerforge.mlflow_model``, logged from its code file, no
  pickle) holding the run directory, whose ``predict(frame)`` is ``layerforge predict``'s table.

The store is ``MLFLOW_TRACKING_URI`` when it is set, else ``mlruns/`` in the working directory
(an SQLite database ``mlruns/mlflow.db`` and the artifacts beside it; read it with
``mlflow ui --backend-store-uri sqlite:///mlruns/mlflow.db``). The trials of ``tune`` and the
folds of ``cv`` are nested under one MLflow run for the study or the cross-validation
(``parent_run``), also across ``tune --jobs`` worker processes.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import shutil
import tempfile
import time
from pathlib import Path

from . import __version__
from .errors import SpecError
from .spec.load import dotted
from .training.callbacks import Callback

PARENT = "LAYERFORGE_MLFLOW_PARENT"  # the MLflow run id children nest under (inherited by worker processes)
STORE = "mlruns"
ARTIFACTS = ("report.html", "diagnosis.json", "metrics.json", "spec.yaml", "history.jsonl")
LEFT_OUT = ("checkpoints", ".lock")  # not needed to predict: the pyfunc model's copy of the run leaves them out


def _mlflow():
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # training has its own progress
    try:
        import mlflow
    except ImportError:
        raise SpecError("train.log: mlflow needs the mlflow package; install it with "
                        "pip install 'layerforge[mlflow]'") from None
    for name in ("mlflow.store.db.utils", "alembic"):  # creating the store's tables is not news
        logging.getLogger(name).setLevel(logging.WARNING)
    return mlflow


def store_uri() -> str:
    """``MLFLOW_TRACKING_URI``, or the SQLite database in ``./mlruns``."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{(Path.cwd() / STORE).resolve()}/mlflow.db"


def _experiment(mlflow, name: str) -> str:
    """The id of experiment ``name`` in the store (made when missing; with the default store its
    artifacts go to ``mlruns/artifacts``)."""
    mlflow.set_tracking_uri(store_uri())
    if not os.environ.get("MLFLOW_TRACKING_URI"):
        (Path.cwd() / STORE).mkdir(exist_ok=True)
    found = mlflow.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    location = None if os.environ.get("MLFLOW_TRACKING_URI") else (Path.cwd() / STORE / "artifacts").resolve().as_uri()
    try:
        return mlflow.create_experiment(name, artifact_location=location)
    except Exception:  # another process made it first
        return mlflow.get_experiment_by_name(name).experiment_id


def _numbers(record: dict) -> dict[str, float]:
    return {key: float(value) for key, value in record.items()
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)}


@contextlib.contextmanager
def parent_run(spec, name: str, kind: str):
    """An MLflow run for a study or a cross-validation of ``spec`` (when its ``train.log`` has
    mlflow), under which the runs trained inside nest; yields a function that logs numbers on it."""
    if "mlflow" not in spec.train.log:
        yield lambda numbers: None
        return
    mlflow = _mlflow()
    experiment = _experiment(mlflow, spec.name)
    client = mlflow.MlflowClient(store_uri())
    run = client.create_run(experiment, run_name=name, tags={"layerforge.kind": kind,
                                                              **({"mlflow.parentRunId": os.environ[PARENT]}
                                                                 if os.environ.get(PARENT) else {})})
    before = os.environ.get(PARENT)
    os.environ[PARENT] = run.info.run_id
    status = "FAILED"
    try:
        yield lambda numbers: [client.log_metric(run.info.run_id, key, value)
                               for key, value in _numbers({k: v for k, v in numbers.items() if v is not None}).items()]
        status = "FINISHED"
    finally:
        if before is None:
            os.environ.pop(PARENT, None)
        else:
            os.environ[PARENT] = before
        client.set_terminated(run.info.run_id, status)


class MlflowTracker(Callback):
    """Records one training run in MLflow (see the module): params and tags when it starts, each
    epoch's numbers, and, once the run directory is finished (``finish``), the final metrics,
    the artifacts and the pyfunc model."""

    def __init__(self, run_dir: Path, spec, tags: dict[str, str]):
        self.run_dir, self.spec, self.tags = Path(run_dir), spec, tags
        self.mlflow = _mlflow()
        self.client = self.run_id = None

    def on_fit_start(self, trainer) -> None:
        if self.run_id is not None:
            return
        mlflow = self.mlflow
        experiment = _experiment(mlflow, self.spec.name)
        self.client = mlflow.MlflowClient(store_uri())
        tags = {"layerforge.version": __version__, "layerforge.run_dir": str(self.run_dir.resolve()), **self.tags}
        if os.environ.get(PARENT):  # a fold or a trial: in its cross-validation's or study's experiment
            tags["mlflow.parentRunId"] = os.environ[PARENT]
            experiment = self.client.get_run(os.environ[PARENT]).info.experiment_id
        self.run_id = self.client.create_run(experiment, run_name=self.run_dir.name, tags=tags).info.run_id
        from mlflow.entities import Param

        params = [Param(key, str(value)[:6000]) for key, value in dotted(self.spec.model_dump(mode="json")).items()]
        for start in range(0, len(params), 100):  # MLflow takes at most 100 params a call
            self.client.log_batch(self.run_id, params=params[start:start + 100])

    def on_epoch_end(self, trainer, record: dict) -> None:
        from mlflow.entities import Metric

        epoch = int(record["epoch"])
        stamp = int(time.time() * 1000)
        metrics = [Metric(key, value, stamp, epoch) for key, value in _numbers(record).items() if key != "epoch"]
        if metrics:
            self.client.log_batch(self.run_id, metrics=metrics)

    def finish(self, metrics: dict) -> str:
        """The final metrics, the artifacts and the pyfunc model, then the run ends; returns the
        model's URI (``runs:/<id>/model``)."""
        from mlflow.entities import Metric

        stamp = int(time.time() * 1000)
        final = [Metric(f"test_{key}", value, stamp, 0) for key, value in _numbers(metrics.get("test") or {}).items()]
        final += [Metric(f"final_val_{key}", value, stamp, 0)
                  for key, value in _numbers(metrics.get("val") or {}).items()]
        if final:
            self.client.log_batch(self.run_id, metrics=final)
        for name in ARTIFACTS:
            if (self.run_dir / name).is_file():
                self.client.log_artifact(self.run_id, str(self.run_dir / name))
        uri = self._log_model()
        self.client.set_terminated(self.run_id, "FINISHED")
        return uri

    def _log_model(self) -> str:
        mlflow = self.mlflow
        with tempfile.TemporaryDirectory() as folder:
            copy = Path(folder) / self.run_dir.name
            shutil.copytree(self.run_dir, copy, ignore=shutil.ignore_patterns(*LEFT_OUT))
            said = logging.getLogger("mlflow.pyfunc")
            level = said.level
            said.setLevel(logging.ERROR)  # it would say that a DataFrame hint gives no signature: that is the point
            try:
                with _active(mlflow, self.run_id):
                    info = mlflow.pyfunc.log_model(
                        name="model", python_model=str(Path(__file__).with_name("mlflow_model.py")),
                        artifacts={"run": str(copy)}, pip_requirements=[f"layerforge=={__version__}"])
            finally:
                said.setLevel(level)
        return f"runs:/{self.run_id}/model" if info is not None else ""

    def failed(self) -> None:
        if self.run_id is not None:
            self.client.set_terminated(self.run_id, "FAILED")

    def on_fit_end(self, trainer) -> None:
        pass


@contextlib.contextmanager
def _active(mlflow, run_id: str):
    """``run_id`` as MLflow's active run for the fluent calls inside, whatever was active before."""
    with mlflow.start_run(run_id=run_id, nested=mlflow.active_run() is not None):
        yield
