"""Hyperparameter and architecture search: ``layerforge tune SPEC`` or ``layerforge.tune(...)``.

A spec's ``search`` section names what to search (``space``: any spec key -> a range or
choices; ``architecture``: the model family's own structure, within a parameter or latency
budget) and how (trials, timeout, metric, sampler, pruner, seed). Each trial is an ordinary
training run into the study's directory, pruned from the epoch records training already
makes; the study itself lives in an Optuna storage (a SQLite file in the study directory by
default, or any Optuna URL such as PostgreSQL), so that several processes or machines running
the same command join one study, and a restarted command continues it. The result is a plain
spec, ``best.yaml``, that `layerforge train` trains without any search code.

Study directory (``RUNS/<study>/``)::

    study.db        the Optuna study (when no --storage is given)
    spec.yaml       the spec being searched (what every worker reads)
    <study>-tNNNN-<time>/   one run directory per trial
    best.yaml       the best trial's spec: `layerforge train best.yaml` trains it again
    trials.csv      every trial: state, value, values tried, epochs, parameters, seconds
    report.html     the trials, parameter importances, optimisation history, parallel coordinates
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
import random
import re
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from .. import tasks
from ..api import in_memory, train
from ..data.prepare import load_source, prepare
from ..errors import LayerforgeError, SpecError
from ..files import atomic_write
from ..models.check import latency_ms, parameter_count
from ..progress import Meter
from ..run.store import usable_runs_dir
from ..spec.load import apply_override, load_spec, read_yaml, set_key, validate
from ..spec.schema import TrainSpec
from ..tracking import parent_run
from ..training.callbacks import Callback
from . import space as spaces
from .report import Tuned, summarise

__all__ = ["Tuned", "tune"]

STUDY_DB, SPEC, BEST, TRIALS, REPORT = "study.db", "spec.yaml", "best.yaml", "trials.csv", "report.html"
HEARTBEAT_SECONDS = 10  # a worker's trial not heard of for GRACE_SECONDS is marked failed
GRACE_SECONDS = 60
STORAGE_ATTEMPTS = 5


def tune(spec: Any, *, overrides: list[str] | tuple[str, ...] = (), trials: int | None = None,
         timeout: float | None = None, storage: str | None = None, study: str | None = None, jobs: int = 1,
         runs_dir: str | Path = "runs", log=None, progress=None, worker: int = 0, data: Any = None) -> Tuned:
    """Run a search and write the study directory.

    Args:
        spec: a YAML path or a dict with a ``search`` section.
        overrides: ``key=value`` settings applied first (as ``layerforge train --set``).
        trials: trials this call runs (default ``search.trials``); calls on one study add up.
        timeout: seconds after which no new trial starts (default ``search.timeout``).
        storage: an Optuna storage URL (default: ``RUNS/<study>/study.db``, SQLite).
        study: the study's name (default: the spec's name); also its directory's.
        jobs: worker processes on this machine (this one and jobs - 1 more).
        runs_dir: where the study directory is.
        log: called with one line per finished trial (default: silent).
        progress: where to show this process's trials done, the best value so far and the time
            left (a Rich console or a text stream; ``layerforge.progress``); None shows nothing.
        data: rows in memory instead of the spec's file (a DataFrame or arrays ``(X, y)``, as
            ``train`` takes them); read once, for every trial, in this process (``jobs`` 1).

    Returns:
        ``Tuned``: the counts of complete, pruned and failed trials and the best trial.

    Raises:
        SpecError: the spec has no search section, or the section has problems (all reported).
    """
    import optuna

    source = None
    if data is not None:
        if jobs > 1:
            raise SpecError("--jobs: rows given in memory (data=) are searched in this process; use jobs=1, or write "
                            "the rows to a file for several processes")
        spec, overrides, frame = in_memory(spec, overrides, data)
    raw, spec_obj = _spec(spec, overrides)
    if data is not None:
        source = load_source(spec_obj.data, spec_obj.task, frame)
    search = spec_obj.search
    name = study or spec_obj.name
    if not STUDY_NAME.fullmatch(name) or name in (".", ".."):
        raise SpecError(f"--study: {name!r} is not a plain name (letters, digits, '.', '_' and '-', starting with a "
                        "letter or digit); the study's folder is made under --runs-dir with this name")
    folder = usable_runs_dir(Path(runs_dir) / name)
    spec_path = folder / SPEC
    url = storage or f"sqlite:///{(folder / STUDY_DB).resolve()}"
    metric, direction = _objective_of(spec_obj, source)
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # each trial has its own line (log)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)  # the heartbeat's
    study_obj = _study(url, name, direction, search, spec_obj, worker)
    if study_obj.user_attrs.get("metric", metric) != metric:
        raise SpecError(f"study {name!r} was searching {study_obj.user_attrs['metric']}, not {metric}; use another "
                        "--study name")
    digest = _searched_digest(raw)
    if study_obj.user_attrs.get("spec_sha256", digest) != digest:
        raise SpecError(f"study {name!r} was started from another spec (its search or training settings differ; the "
                        f"spec it searches is {spec_path}): its trials would mix two searches. Continue it with that "
                        "spec, or start a new study with --study NAME")
    study_obj.set_user_attr("metric", metric)
    study_obj.set_user_attr("spec_sha256", digest)
    if worker == 0:
        import yaml

        atomic_write(spec_path, yaml.safe_dump(raw, sort_keys=False))
    total = trials or search.trials
    shares = [total // jobs + (i < total % jobs) for i in range(jobs)]
    # MLflow (train.log: [mlflow]): one run for the study, the trials nested under it, also those
    # of the worker processes (they inherit its id)
    study_run = parent_run(spec_obj, name, "study") if worker == 0 else contextlib.nullcontext(lambda numbers: None)
    with study_run as record:
        children = [_spawn(spec_path, share, timeout, url, name, runs_dir, i)
                    for i, share in enumerate(shares) if i and share]
        budget = _Budget(spec_obj, search) if search.architecture is not None else None
        objective = _Objective(raw, spec_obj, name, folder, metric, budget, source)
        meter = Meter("trial", shares[0], progress, log=log)

        def finished(study, trial) -> None:
            meter.advance({f"best {metric}": _best(study)}, line=_line(trial, metric))

        try:
            study_obj.optimize(objective, n_trials=shares[0], timeout=timeout or search.timeout,
                               catch=(LayerforgeError, ValueError, RuntimeError), callbacks=[finished],
                               gc_after_trial=True)
        finally:
            meter.close()
            for child in children:
                child.wait()
        record({f"best_{metric}": _best(study_obj)})
    if any(child.returncode for child in children):
        raise LayerforgeError(f"{sum(1 for c in children if c.returncode)} of {len(children)} worker processes "
                              "failed; their trials are recorded in the study")
    return summarise(study_obj, folder, metric, direction, raw)


STUDY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def _searched_digest(raw: dict) -> str:
    """SHA-256 of what a study searches: the spec but for how many trials a command runs and for
    how long (``search.trials``, ``search.timeout``), which each command may change."""
    import hashlib
    import json

    body = copy.deepcopy(raw)
    if isinstance(body.get("search"), dict):
        for key in ("trials", "timeout"):
            body["search"].pop(key, None)
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode("utf-8")).hexdigest()


def _spec(source: Any, overrides) -> tuple[dict, Any]:
    is_file = isinstance(source, (str, Path))
    raw = read_yaml(Path(source)) if is_file else copy.deepcopy(source)
    for override in overrides:
        apply_override(raw, override)
    base_dir = Path(source).resolve().parent if is_file else None
    spec = validate(copy.deepcopy(raw), base_dir=base_dir, label=str(source) if is_file else None)
    if spec.search is None:
        raise SpecError("the spec has no search section: add `search: {space: {...}}` (or architecture: true) to "
                        "say what to search", source=str(source) if base_dir else None)
    if spec.data.path:  # validated: the absolute path of the file the spec means
        raw.setdefault("data", {})["path"] = spec.data.path
    model = raw.get("model")
    if isinstance(model, dict):  # the runs and models named by folder, as this process finds them
        for key in ("init_from", "source"):
            value = model.get(key)
            if isinstance(value, str) and not Path(value).expanduser().is_absolute() and Path(value).is_dir():
                model[key] = str(Path(value).resolve())
    return raw, spec


def _objective_of(spec, source=None) -> tuple[str, str]:
    """The metric trials are compared on and whether to maximise it (asked of the task)."""
    if spec.task is not None:
        task = tasks.get(spec.task)
    else:  # the data's target decides the task
        task = type(prepare(spec.data, None, spec.seed, source=source).task)
    metric = spec.search.metric or task.headline
    known = task.metric_names()
    if metric not in known:
        raise SpecError(f"search.metric: unknown metric '{metric}' for {task.name} (choices: {', '.join(known)})")
    return metric, "maximize" if task.higher_is_better(metric) else "minimize"


def _study(url: str, name: str, direction: str, search, spec, worker: int):
    import optuna

    engine = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    for attempt in range(STORAGE_ATTEMPTS):
        # workers that reach a new database together race to create its tables; the loser retries
        try:
            storage = optuna.storages.RDBStorage(url, engine_kwargs=engine, heartbeat_interval=HEARTBEAT_SECONDS,
                                                 grace_period=GRACE_SECONDS)
            seed = (spec.seed if search.seed is None else search.seed) + worker
            if name in {s.study_name for s in storage.get_all_studies()}:
                seed += os.getpid()  # joining a study: a seed of its own, so workers do not propose the same trials
            study = optuna.create_study(storage=storage, study_name=name, direction=direction,
                                        sampler=_sampler(search, seed), pruner=_pruner(search, spec.train.epochs),
                                        load_if_exists=True)
            break
        except ImportError as error:
            raise SpecError(f"--storage {url.split('://')[0]}: its database driver is not installed ({error.name}); "
                            "for PostgreSQL: pip install 'layerforge[postgres]'") from None
        except Exception as error:  # noqa: BLE001 - SQLAlchemy's errors; the last attempt says what failed
            if attempt == STORAGE_ATTEMPTS - 1:
                raise LayerforgeError(f"--storage: cannot open the study {name!r}: {error}") from None
            time.sleep(0.5 + random.random())
    if study.direction.name.lower() != direction:
        raise SpecError(f"study {name!r} exists and {study.direction.name.lower()}s; this spec would {direction}")
    return study


def _sampler(search, seed: int):
    import optuna

    if search.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if search.sampler == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    if search.sampler == "grid":
        return optuna.samplers.GridSampler(spaces.grid(search), seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(10, max(3, search.trials // 3)))


def _pruner(search, epochs: int):
    import optuna

    if search.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=max(1, min(5, epochs // 5)))
    if search.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=epochs, reduction_factor=3)
    return optuna.pruners.NopPruner()


def _spawn(spec_path: Path, trials: int, timeout, url: str, name: str, runs_dir, worker: int):
    command = [sys.executable, "-m", "layerforge.search.worker", str(spec_path), "--trials", str(trials),
               "--storage", url, "--study", name, "--runs-dir", str(runs_dir), "--worker", str(worker)]
    if timeout:
        command += ["--timeout", str(timeout)]
    return subprocess.Popen(command)


def _best(study) -> float | None:
    """The best value of the study's complete trials so far (every worker's), or None."""
    try:
        return study.best_value
    except ValueError:
        return None


def _line(trial, metric: str) -> str:
    value = "" if trial.value is None else f" {metric} {trial.value:.4g}"
    why = trial.user_attrs.get("refused") or trial.user_attrs.get("error") or ""
    epochs = trial.user_attrs.get("epochs")
    return (f"trial {trial.number}: {trial.state.name.lower()}{value}"
            + (f" after {epochs} epochs" if epochs is not None else "") + (f" ({why})" if why else ""))


class _Budget:
    """The architecture's budget, checked on each trial's model before it trains."""

    def __init__(self, spec, search):
        self.max_parameters = search.architecture.max_parameters
        self.max_latency_ms = search.architecture.max_latency_ms
        self._shapes = None
        self.spec = spec

    def refusal(self, model_config) -> tuple[str | None, dict]:
        """Why a model breaks the budget (None: it fits), and what was measured."""
        if self.max_parameters is None and self.max_latency_ms is None:
            return None, {}
        if self._shapes is None:
            prepared = prepare(self.spec.data, self.spec.task, self.spec.seed)
            self._shapes = (prepared.inputs, prepared.task.output_size, prepared.task.num_classes)
        measured = {"parameters": parameter_count(model_config, *self._shapes)}
        if self.max_parameters is not None and measured["parameters"] > self.max_parameters:
            return f"{measured['parameters']:,} parameters > max_parameters {self.max_parameters:,}", measured
        if self.max_latency_ms is not None:
            measured["latency_ms"] = latency_ms(model_config, *self._shapes)
            if measured["latency_ms"] > self.max_latency_ms:
                return f"{measured['latency_ms']:.3f} ms > max_latency_ms {self.max_latency_ms}", measured
        return None, measured


class _Objective:
    """One trial: sample, check the budget, train (pruned from its epoch records), report."""

    def __init__(self, raw: dict, spec, study: str, folder: Path, metric: str, budget: _Budget | None,
                 source=None):
        self.base = {key: value for key, value in raw.items() if key != "search"}  # what each trial starts from
        self.spec, self.study, self.folder = spec, study, folder
        self.metric, self.budget = metric, budget
        self.source = source  # rows given in memory, read once

    def __call__(self, trial) -> float:
        import optuna

        values = spaces.sample(trial, self.spec.search, self.spec.model)
        raw = copy.deepcopy(self.base)
        for key, value in values.items():
            set_key(raw, key, value, f"search.space.{key}")
        trial.set_user_attr("values", values)
        trial.set_user_attr("worker", os.getpid())
        raw["name"] = f"{self.study}-t{trial.number:04d}"
        set_key(raw, "train.report", False, "train.report")  # `layerforge report RUN` draws it when wanted
        train_section = raw.get("train") or {}
        if "checkpoint_every" not in train_section:
            # a trial is never resumed (a killed one is marked failed), and a checkpoint per epoch
            # costs more than a small network's epoch: one at the end
            epochs = train_section.get("epochs", TrainSpec.model_fields["epochs"].default)
            set_key(raw, "train.checkpoint_every", epochs, "train.checkpoint_every")
        try:
            spec = load_spec(raw)
        except SpecError as error:  # a combination no single value showed (validated before the study)
            trial.set_user_attr("refused", f"the spec it makes is invalid: {error.problems[0]}")
            raise optuna.TrialPruned() from None
        if self.budget is not None:
            refusal, measured = self.budget.refusal(spec.model)
            for key, value in measured.items():
                trial.set_user_attr(key, value)
            if refusal:
                trial.set_user_attr("refused", refusal)
                raise optuna.TrialPruned()
        pruning = _Pruning(trial, f"val_{self.metric}")
        started = time.perf_counter()
        try:
            run = train(spec, runs_dir=self.folder, callbacks=[pruning], source=self.source)
        except LayerforgeError as error:
            trial.set_user_attr("error", " ".join(str(error).split())[:500])
            raise
        trial.set_user_attr("seconds", round(time.perf_counter() - started, 3))
        trial.set_user_attr("run", run.path.name)
        trial.set_user_attr("epochs", len(run.history))
        trial.set_user_attr("max_epochs", spec.train.epochs)
        trial.set_user_attr("parameters", run.manifest.model.parameters)
        test = (run.metrics.get("test") or {}).get(self.metric)
        if test is not None:
            trial.set_user_attr("test", test)
        if pruning.pruned:
            raise optuna.TrialPruned()
        value = (run.metrics.get("val") or {}).get(self.metric)
        if value is None or not math.isfinite(value):
            trial.set_user_attr("error", f"no finite validation {self.metric}")
            raise LayerforgeError(f"trial {trial.number}: no finite validation {self.metric}")
        return float(value)


class _Pruning(Callback):
    """Reports each epoch's validation metric to the trial; stops training when the pruner says."""

    def __init__(self, trial, monitor: str):
        self.trial, self.monitor, self.pruned = trial, monitor, False

    def on_epoch_end(self, trainer, record: dict) -> None:
        value = record.get(self.monitor)
        if value is None or not math.isfinite(value):
            return
        self.trial.report(float(value), record["epoch"])
        if self.trial.should_prune():
            self.pruned = True
            trainer.stop_training = True
