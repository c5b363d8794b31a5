"""Sequences (time series classification): arrays of shape (N, C, L), padded with lengths when
series differ in length; per-channel scaling fitted on the training rows."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Literal

import numpy as np

from ...errors import DataError
from ...models.inputs import Inputs
from .. import builtin
from ..arrays import bounded, numbers, read_npz, scaling
from .base import Encoder, Kind, Perturbation, Source, State
from .table import resolve_target


def pad(series: list[np.ndarray], length: int | None = None, with_lengths: bool | None = None,
        channels: int | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Stack (C, L_i) arrays into (N, C, length) with zeros after each end, and their lengths.

    ``length`` defaults to the longest series; lengths are returned when ``with_lengths``, which
    defaults to "the series differ in length". ``channels`` sets C when ``series`` is empty.
    """
    lengths = np.array([s.shape[-1] for s in series], dtype=np.int64)
    found = {s.shape[0] for s in series}
    if len(found) > 1:
        raise DataError(f"series have different numbers of channels: {sorted(found)}")
    channels = found.pop() if found else (channels or 1)
    length = int(lengths.max()) if length is None else length
    if with_lengths is None:
        with_lengths = len(set(lengths.tolist())) > 1
    out = np.zeros((len(series), channels, length), dtype=np.float32)
    for i, s in enumerate(series):
        out[i, :, : s.shape[-1]] = s
    return out, (lengths if with_lengths else None)


def as_sequences(x: np.ndarray, source: str = "the series") -> np.ndarray:
    """(N, L) -> (N, 1, L); (N, C, L) stays; numbers only, all finite."""
    x = numbers(x, "x", source)
    if x.ndim == 2:
        return x[:, None, :]
    if x.ndim != 3:
        hint = "; for images shaped (rows, channels, height, width) set data.kind: image" if x.ndim == 4 else ""
        raise DataError(f"{source}: expected sequences shaped (rows, length) or (rows, channels, length), got "
                        f"{x.shape}{hint}")
    if 0 in x.shape[1:]:
        raise DataError(f"{source}: series shaped {x.shape} have no {'channels' if x.shape[1] == 0 else 'steps'}")
    return x


def read_sequences(path: str | Path) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Read x (and optional lengths, y) from a .npz file, or x from a .npy file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"file not found: {path}")
    if path.suffix == ".npy":
        try:
            return as_sequences(np.load(path, allow_pickle=False), str(path)), None, None
        except (ValueError, OSError, EOFError) as error:
            raise DataError(f"{path}: cannot be read as a .npy array of numbers ({error})") from None
    if path.suffix != ".npz":
        raise DataError(f"{path}: sequences are read from .npz (arrays x, optional y and lengths) or .npy")
    arrays = read_npz(path)
    if "x" not in arrays:
        raise DataError(f"{path}: holds arrays {', '.join(arrays) or 'none'} but no 'x'")
    x = as_sequences(arrays["x"], str(path))
    lengths = arrays["lengths"].astype(np.int64) if "lengths" in arrays else None
    y = arrays.get("y")
    _same_rows(path, x, lengths=lengths, y=y)
    if lengths is not None and ((lengths < 1) | (lengths > x.shape[-1])).any():
        raise DataError(f"{path}: 'lengths' must lie between 1 and the series' length {x.shape[-1]}")
    return x, lengths, y


def _same_rows(source, x, **others) -> None:
    """Every array given holds one entry per series of ``x``."""
    for name, array in others.items():
        if array is not None and len(array) != len(x):
            raise DataError(f"{source}: 'x' holds {len(x)} series but '{name}' holds {len(array)}; they must match")


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

        steps = Annotated[list[Annotated[float, Field(allow_inf_nan=False)]],
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


def scale(x: np.ndarray, mean: list[float], std: list[float], lengths: np.ndarray | None = None) -> np.ndarray:
    """Standardise each channel; padding stays 0."""
    x = as_sequences(x)
    if x.shape[1] != len(mean):
        raise DataError(f"expected {len(mean)} channel(s) per series, got {x.shape[1]} (shape {x.shape})")
    with np.errstate(over="ignore", invalid="ignore"):
        scaled = x - np.asarray(mean, np.float32)[None, :, None]  # a new array (x may be the caller's)
        scaled /= np.asarray(std, np.float32)[None, :, None]
    if lengths is not None:
        padding = np.arange(x.shape[2])[None, :] >= lengths[:, None]  # (N, L)
        scaled[np.broadcast_to(padding[:, None, :], scaled.shape)] = 0.0
    return bounded(scaled, "series")


class SequenceEncoder(Encoder):
    state: SequenceState

    @property
    def inputs(self) -> Inputs:
        return Inputs(kind="sequence", channels=len(self.state.mean), length=self.state.length,
                      variable_length=self.state.variable_length)

    def _encoded(self, series: list[np.ndarray]) -> tuple[np.ndarray, ...]:
        x, lengths = pad(series, self.state.length, self.state.variable_length, channels=len(self.state.mean))
        x = scale(x, self.state.mean, self.state.std, lengths)
        return (x,) if lengths is None else (x, lengths)

    def encode(self, source: Source, parts: dict[str, np.ndarray]):
        return {name: (self._encoded([source.payload[i] for i in rows]), source.labels.iloc[rows])
                for name, rows in parts.items()}

    def encode_new(self, data, *, unknown: str | None = None, ignore_extra: bool = False):
        """Series from an array (N, [C,] L), or an .npz (x, optional lengths and y) / .npy file."""
        import pandas as pd

        if isinstance(data, (str, Path)):
            x, lengths, labels = read_sequences(data)
        else:
            x, lengths, labels = as_sequences(data), None, None
        inputs = (scale(x, self.state.mean, self.state.std, lengths),)
        if lengths is not None:
            inputs += (np.asarray(lengths, dtype=np.int64),)
        elif self.state.variable_length:
            inputs += (np.full(len(x), x.shape[-1], dtype=np.int64),)
        return inputs, None if labels is None else pd.Series(labels, name=self.target)


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
    _same_rows(path, raw["x_train"], y=raw["y_train"])
    if "x_test" in arrays and "y_test" in arrays:
        raw.update(x_test=as_sequences(arrays["x_test"], str(path)), y_test=arrays["y_test"])
        _same_rows(path, raw["x_test"], y_test=raw["y_test"])
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
        columns = data_spec.features or [c for c in frame.columns if c != target and c not in data_spec.drop]
        values = np.stack([to_numbers(frame[c], str(c), source, boolean=False) for c in columns], axis=1)
        if np.isnan(values).any():
            row = int(np.flatnonzero(np.isnan(values).any(axis=1))[0])
            raise DataError(f"{source}: series in row {row + 1} has missing values; fill them or use the long format")
        return {"x_train": values[:, None, :].astype(np.float32), "y_train": frame[target].to_numpy()}
    for key, column in (("data.id", data_spec.id), ("data.time", data_spec.time)):
        if column is not None and column not in frame.columns:
            raise DataError(f"{key}: no column '{column}' in {source}")
    channels = data_spec.features or [c for c in frame.columns
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
