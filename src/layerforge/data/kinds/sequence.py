"""Sequences (time series classification): arrays of shape (N, C, L), padded with lengths when
series differ in length; per-channel scaling fitted on the training rows."""

from __future__ import annotations

import hashlib
from typing import Literal

import numpy as np

from ...codecs.arrays import as_sequences, pad, same_rows, scale_sequences
from ...errors import DataError
from ...models.inputs import Inputs
from .. import builtin
from ..arrays import read_npz, scaling
from .base import Encoder, Kind, Perturbation, Source, State
from .table import resolve_target


class SequenceState(State):
    """Per-channel training mean and spread, and the length every series is padded to."""

    kind: Literal["sequence"] = "sequence"
    mean: list[float]
    std: list[float]
    length: int
    variable_length: bool = False

    def perturbation(self):
        """Standardised values, every channel and step."""
        return Perturbation("standardised values", np.ones((len(self.mean), 1), dtype=np.float32))

    def request_row(self, title: str):
        """One series: its steps (one channel) or one list of steps per channel; exactly
        ``length`` steps, or up to ``length`` when series vary in length."""
        from typing import Annotated

        from pydantic import Field

        steps = Annotated[list[Annotated[float, Field(allow_inf_nan=False, strict=True)]],
                          Field(min_length=1 if self.variable_length else self.length, max_length=self.length)]
        if len(self.mean) == 1:
            return Annotated[steps, Field(title=title, description=f"{self.length} steps")]
        return Annotated[list[steps], Field(min_length=len(self.mean), max_length=len(self.mean), title=title,
                                            description=f"{len(self.mean)} channels of {self.length} steps")]


def fit_scaling(x: np.ndarray, lengths: np.ndarray | None) -> tuple[list[float], list[float]]:
    """Each channel's mean and standard deviation over the observed steps (padding ignored)."""
    mask = np.ones(x.shape[::2], dtype=bool) if lengths is None else (
        np.arange(x.shape[2])[None, :] < lengths[:, None]
    )  # (N, L)
    values = x.transpose(1, 0, 2)[:, mask]  # (C, observed steps)
    mean, std = scaling(values, 1, "the training series")
    return mean.tolist(), std.tolist()


class SequenceEncoder(Encoder):
    state: SequenceState

    @property
    def inputs(self) -> Inputs:
        return Inputs(kind="sequence", channels=len(self.state.mean), length=self.state.length,
                      variable_length=self.state.variable_length)

    def _encoded(self, series: list[np.ndarray]) -> tuple[np.ndarray, ...]:
        x, lengths = pad(series, self.state.length, self.state.variable_length, channels=len(self.state.mean))
        x = scale_sequences(x, self.state.mean, self.state.std, lengths)
        return (x,) if lengths is None else (x, lengths)

    def encode(self, source: Source, parts: dict[str, np.ndarray]):
        return {name: (self._encoded([source.payload[i] for i in rows]), source.labels.iloc[rows])
                for name, rows in parts.items()}

class SequenceKind(Kind):
    name = "sequence"
    reads = "sequence"
    state = SequenceState

    def load(self, data_spec, *, target_required: bool = True) -> Source:
        """Series from a built-in (with its official test split), an .npz, or a table (one row
        per series, or long format with ``data.id`` and ``data.time``)."""
        import pandas as pd


        if data_spec.dataset:
            raw, source = builtin.load_arrays(data_spec.dataset), data_spec.dataset
        elif data_spec.path.lower().endswith(".npz"):
            raw, source = _read_training_npz(data_spec.path), data_spec.path
        else:
            raw, source = _read_training_table(data_spec), data_spec.path
        series = _as_list(raw["x_train"])
        labels = list(np.asarray(raw["y_train"]))
        fixed = {}
        if "x_test" in raw:  # an official test split: validation comes out of the training part
            test = _as_list(raw["x_test"])
            fixed["test"] = np.arange(len(series), len(series) + len(test))
            series += test
            labels += list(np.asarray(raw["y_test"]))
        if len(series) != len(labels):
            raise DataError(f"{source}: {len(series)} series but {len(labels)} labels")
        labels = pd.Series(np.asarray(labels), name="label")
        return Source(source, len(series), series, _fingerprint(series, labels), "label", labels, fixed)

    def fit(self, source: Source, train: np.ndarray, data_spec) -> SequenceEncoder:
        every = [s.shape[-1] for s in source.payload]
        length, variable = max(every), len(set(every)) > 1
        x, lengths = pad([source.payload[i] for i in train], length, variable,
                         channels=source.payload[0].shape[0])
        mean, std = fit_scaling(x, lengths)
        return SequenceEncoder(SequenceState(mean=mean, std=std, length=int(length), variable_length=variable),
                               source.target)

    def encoder(self, state: SequenceState, target: str | None) -> SequenceEncoder:
        return SequenceEncoder(state, target)


def _fingerprint(series: list[np.ndarray], labels) -> str:
    digest = hashlib.sha256()
    for s in series:
        digest.update(str(s.shape).encode())
        digest.update(np.ascontiguousarray(s, dtype=np.float32).tobytes())
    digest.update("\x1f".join(map(str, labels.tolist())).encode("utf-8"))
    return digest.hexdigest()


def _as_list(x) -> list[np.ndarray]:
    if isinstance(x, np.ndarray):
        return list(as_sequences(x))
    return [as_sequences(np.asarray(s)[None])[0] for s in x]


def _read_training_npz(path) -> dict:
    arrays = read_npz(path)
    missing = [k for k in ("x", "y") if k not in arrays]
    if missing:
        raise DataError(f"{path}: needs arrays 'x' and 'y' (optionally 'x_test', 'y_test'); "
                        f"it holds {', '.join(arrays) or 'none'}")
    raw = {"x_train": as_sequences(arrays["x"], str(path)), "y_train": arrays["y"]}
    same_rows(path, raw["x_train"], y=raw["y_train"])
    if "x_test" in arrays and "y_test" in arrays:
        raw.update(x_test=as_sequences(arrays["x_test"], str(path)), y_test=arrays["y_test"])
        same_rows(path, raw["x_test"], y_test=raw["y_test"])
    return raw


def _read_training_table(data_spec) -> dict:
    """Series from a CSV/Parquet table: one row per series (the label column plus one column per
    time step), or long format (``data.id`` and ``data.time`` columns, one row per step, the
    ``data.features`` columns as channels)."""
    from ..tabular import read_table, to_numbers

    frame = read_table(data_spec.path)
    source = data_spec.path
    target = resolve_target(data_spec, frame, source)
    if data_spec.id is None:  # wide: one row per series
        columns = data_spec.feature_list or [c for c in frame.columns if c != target and c not in data_spec.drop]
        values = np.stack([to_numbers(frame[c], str(c), source, boolean=False) for c in columns], axis=1)
        if np.isnan(values).any():
            row = int(np.flatnonzero(np.isnan(values).any(axis=1))[0])
            raise DataError(f"{source}: series in row {row + 1} has missing values; fill them or use the long format")
        return {"x_train": values[:, None, :].astype(np.float32), "y_train": frame[target].to_numpy()}
    for key, column in (("data.id", data_spec.id), ("data.time", data_spec.time)):
        if column is not None and column not in frame.columns:
            raise DataError(f"{key}: no column '{column}' in {source}")
    channels = data_spec.feature_list or [c for c in frame.columns
                                      if c not in (target, data_spec.id, data_spec.time, *data_spec.drop)]
    series, labels = [], []
    ordered = frame.sort_values([data_spec.id, data_spec.time]) if data_spec.time else frame
    for key, group in ordered.groupby(data_spec.id, sort=True):
        if group[target].nunique() != 1:
            raise DataError(f"series '{key}' (data.id) has more than one label in column '{target}'")
        steps = np.stack([to_numbers(group[c], str(c), source, boolean=False) for c in channels])  # (C, L)
        series.append(steps.astype(np.float32))
        labels.append(group[target].iloc[0])
    return {"x_train": series, "y_train": np.asarray(labels)}


scale = scale_sequences  # the name the kind's users know
