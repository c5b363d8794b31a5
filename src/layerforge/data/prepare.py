"""From a data spec to encoded training, validation and test rows, in separate steps: a data
kind loads the rows once (a ``Source``), a split plan divides them, the kind's encoder and the
task's target encoding are fitted on the training rows, and every part is encoded."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import tasks
from ..errors import DataError
from ..models.inputs import Inputs
from .kinds import Encoder, Kind, Source, kind_of
from .labels import class_codes, classes_of, encode_classes
from .splits import Recorded, Sampled, SplitPlan, hold_out

Arrays = tuple[tuple[np.ndarray, ...], np.ndarray]
SAMPLE_BYTES = 16 << 20  # data.stream.sample_rows: auto fits the preprocessing on about this many bytes of values,
SAMPLE_ROWS = (10_000, 100_000)  # ... and between these many rows


@dataclass
class Prepared:
    """Everything training needs from the data, and what prediction needs to repeat it.

    Attributes:
        kind: the data kind.
        source: the loaded rows.
        plan: the split plan that made ``parts``.
        parts: 'train', 'val' and 'test' -> row positions of ``source``.
        encoder: fitted on the training rows.
        task: the task, its target encoding fitted on the training rows.
        splits: 'train', 'val' and 'test' -> ``(inputs, y)``: the tuple of arrays the model
            takes (``(x,)`` or ``(x, lengths)``) and the encoded targets. Streamed data's
            training rows are a ``RowStream`` instead (``layerforge.data.streaming``).
        baselines: scores of simple forecasts of the test rows (e.g. seasonal naive).
        seed: the run's seed.
    """

    kind: Kind
    source: Source
    plan: SplitPlan
    parts: dict[str, np.ndarray]
    encoder: Encoder
    task: tasks.Task
    splits: dict[str, Arrays]
    baselines: dict[str, dict[str, float]]
    seed: int = 0

    def rows(self, name: str) -> int:
        part = self.splits[name]
        return len(part) if self.streamed(name) else int(len(part[1]))

    def streamed(self, name: str) -> bool:
        """Whether the rows of part ``name`` stream from their file (not in ``(inputs, y)``)."""
        return not isinstance(self.splits[name], tuple)

    def arrays(self, name: str) -> Arrays:
        """The rows of part ``name`` in memory: all of them, or a streamed part's sample (the
        rows its preprocessing was fitted on)."""
        part = self.splits[name]
        return part.sample if self.streamed(name) else part

    @property
    def inputs(self) -> Inputs:
        return self.encoder.inputs

    @property
    def classes(self) -> list | None:
        return self.task.classes

    @property
    def preprocessing(self) -> dict[str, Any]:
        return self.encoder.state.model_dump(mode="json")

    @property
    def inputs_info(self) -> dict[str, Any]:
        return self.inputs.describe()


def load_source(data_spec, task: str | None = None, frame=None) -> Source:
    """The rows a data spec names, read once (``frame``: the rows given in memory instead);
    ``prepare(..., source=)`` reuses them."""
    needs_target = task is None or tasks.get(task).needs_target
    kind = kind_of(data_spec)
    if data_spec.targets and not kind.several_targets:
        raise DataError(f"data.target: several target columns are read from tables; this is {kind.name} data: name "
                        "one target")
    source = kind.load(data_spec, target_required=needs_target) if frame is None else \
        kind.from_frame(data_spec, frame, data_spec.frame or "the rows", target_required=needs_target)
    if source.rows == 0:
        raise DataError(f"{source.label}: holds no rows to learn from")
    return source


def rows_in_memory(data) -> tuple[Any, str]:
    """A DataFrame of rows given in memory (a DataFrame, or arrays ``(X, y)`` whose columns
    become ``x0, x1, ...`` and ``target``), and what to call them.

    Raises:
        DataError: anything else, or arrays of unequal length.
    """
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        frame = data
    elif isinstance(data, tuple) and len(data) == 2:
        x, y = np.asarray(data[0]), np.asarray(data[1])
        if x.ndim != 2 or y.ndim != 1 or len(x) != len(y):
            raise DataError(f"data=(X, y): expected X of (rows, columns) and y of (rows,), got {x.shape} and "
                            f"{y.shape}")
        frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(x.shape[1])])
        frame["target"] = y
    else:
        raise DataError(f"data=: expected a DataFrame or arrays (X, y), got {type(data).__name__}")
    return frame, f"DataFrame ({len(frame)} rows, {len(frame.columns)} columns)"


def encode_parts(encoder: Encoder, task: tasks.Task, source: Source, parts: dict[str, np.ndarray]) -> dict[str, Arrays]:
    """Inputs and encoded targets of each part, with the run's fitted encoder and task."""
    encoded = {}
    for name, (inputs, raw) in encoder.encode(source, parts).items():
        y = task.encode_targets(raw, source.label) if raw is not None else np.zeros(len(inputs[0]), np.int64)
        encoded[name] = (inputs, y)
    return encoded


def prepare(data_spec, task: str | None = None, seed: int = 0, *, plan: SplitPlan | None = None,
            source: Source | None = None) -> Prepared:
    """Load, split and encode the data a spec names (any kind).

    Args:
        task: the task's name (None: the data decides, e.g. from the target column).
        seed: seeds the split.
        plan: how to split (default: the kind's plan for ``data.split``); e.g. ``KFold(5, k, seed)``.
        source: rows already loaded by ``load_source`` (fold k of N reads the data once).

    Raises:
        DataError: the data cannot be read, has no rows to train on, or does not suit the task.
    """
    kind = kind_of(data_spec)
    source = source if source is not None else load_source(data_spec, task)
    task_class = tasks.get(task or kind.default_task(source))
    if task_class.name not in kind.tasks:
        raise DataError(f"{kind.name} data supports tasks {', '.join(kind.tasks)}, not '{task_class.name}'")
    if source.streamed:
        return prepare_streamed(data_spec, kind, source, task_class, seed, plan)
    plan, parts = split_parts(data_spec, kind, source, task_class, seed, plan)
    encoder = kind.fit(source, parts["train"], data_spec)
    task_object = task_class.fit(source.labels, parts["train"], encoder, data_spec, source.label)
    splits = encode_parts(encoder, task_object, source, parts)
    baselines = encoder.baseline(source, parts["test"])
    return Prepared(kind, source, plan, parts, encoder, task_object, splits, baselines, seed)


def split_parts(data_spec, kind: Kind, source: Source, task_class: type[tasks.Task], seed: int,
                plan: SplitPlan | None = None) -> tuple[SplitPlan, dict[str, np.ndarray]]:
    """The rows of each part: ``plan`` (default: the kind's plan for ``data.split``), stratified
    by class when the task's targets are classes, then anomaly classes moved to test."""
    seed = data_spec.split.seed_or(seed)
    codes = None
    if task_class.stratify and source.labels is not None:
        codes = encode_classes(source.labels, classes_of(source.labels), source.label)
    plan = plan or kind.plan(data_spec, source, seed, stratify=codes is not None)
    parts = plan.split(source.rows, codes, source.fixed)
    if data_spec.anomaly_classes is not None:
        parts = _hold_out_anomalies(parts, codes, source, data_spec.anomaly_classes)
    if len(parts["train"]) == 0:
        raise DataError(f"{source.label}: no rows left for training after the split")
    return plan, parts


def _hold_out_anomalies(parts: dict[str, np.ndarray], codes: np.ndarray | None, source: Source,
                        anomaly_classes: list) -> dict[str, np.ndarray]:
    """Every row of ``anomaly_classes`` goes to the test part: an anomaly detector learns what
    normal looks like from training and validation rows, and is tested on both kinds."""
    if codes is None:
        raise DataError("data.anomaly_classes: needs a data.target column that names each row's class")
    classes = classes_of(source.labels)
    held = class_codes(classes, anomaly_classes, "data.anomaly_classes", source.label)
    if len(held) == len(classes):
        raise DataError("data.anomaly_classes: lists every class, so no normal rows remain to learn from")
    return hold_out(parts, codes, held)


def taken(source: Source, parts: dict[str, np.ndarray]) -> tuple[Source, dict[str, np.ndarray]]:
    """The rows of ``parts`` of a streamed source, read into an in-memory source (one pass over
    the file), and each part's positions in it."""
    wanted = np.unique(np.concatenate(list(parts.values())))
    return source.payload.take(wanted), {name: np.searchsorted(wanted, rows) for name, rows in parts.items()}


def prepare_streamed(data_spec, kind: Kind, source: Source, task_class: type[tasks.Task], seed: int,
                     plan: SplitPlan | None) -> Prepared:
    """``prepare`` for a streamed source (a table or a folder of images): split by the labels in memory, with at most
    ``data.stream.held_out_rows`` rows in validation and test each; one pass over the file reads
    those rows and a sample of ``data.stream.sample_rows`` training rows, which the preprocessing
    is fitted on (the task's target encoding sees every training label); the training rows
    become a ``RowStream``.

    Raises:
        DataError: a plan other than a holdout split (cross-validation), or rows the preprocessing
            refuses.
    """
    options = data_spec.stream
    split_seed = data_spec.split.seed_or(seed)
    if plan is not None and not isinstance(plan, Recorded):
        raise DataError(f"data.streaming: {source.label} is streamed, and a {plan.name} split needs its rows in "
                        "memory; cross-validation and ensembles of folds train on tables that fit in memory "
                        "(data.streaming: false)")
    if plan is None:
        split = data_spec.split
        stratify = task_class.stratify and source.labels is not None and split.stratify
        plan = Sampled(split.val, split.test, options.held_out_rows, split_seed, stratify, split.shuffle)
    plan, parts = split_parts(data_spec, kind, source, task_class, seed, plan)
    rng = np.random.default_rng(split_seed)
    train = parts["train"]
    sampled = options.sample_rows
    if sampled == "auto":
        sampled = int(np.clip(SAMPLE_BYTES // (8 * source.facts["values_per_row"]), *SAMPLE_ROWS))
    sample = np.sort(rng.choice(train, sampled, replace=False)) if len(train) > sampled else train
    in_memory, local = taken(source, {"sample": sample, "val": parts["val"], "test": parts["test"]})
    encoder = kind.fit(in_memory, local["sample"], data_spec)
    task = task_class.fit(source.labels, train, encoder, data_spec, source.label)
    encoded = encode_parts(encoder, task, in_memory, local)
    from .streaming import RowStream  # torch: only where rows stream

    splits = {"train": RowStream(source, train, encoder, task, encoded.pop("sample"), options, encode_parts),
              **encoded}
    baselines = encoder.baseline(in_memory, local["test"])
    return Prepared(kind, source, plan, parts, encoder, task, splits, baselines, seed)
