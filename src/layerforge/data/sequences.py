"""Sequences (time series classification): arrays of shape (N, C, L), padded with lengths when
series differ in length; per-channel scaling fitted on the training split."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError


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


def as_sequences(x: np.ndarray) -> np.ndarray:
    """(N, L) -> (N, 1, L); (N, C, L) stays."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 2:
        return x[:, None, :]
    if x.ndim != 3:
        raise DataError(f"expected sequences shaped (rows, length) or (rows, channels, length), got {x.shape}")
    return x


class SequenceScaler:
    """Standardise each channel with the training mean and standard deviation (padding ignored)."""

    def __init__(self, mean: list[float], std: list[float], length: int):
        self.mean, self.std, self.length = mean, std, length

    @classmethod
    def fit(cls, x: np.ndarray, lengths: np.ndarray | None) -> SequenceScaler:
        mask = np.ones(x.shape[::2], dtype=bool) if lengths is None else (
            np.arange(x.shape[2])[None, :] < lengths[:, None]
        )  # (N, L)
        values = x.transpose(1, 0, 2)[:, mask]  # (C, observed steps)
        std = values.std(axis=1)
        return cls(values.mean(axis=1).tolist(), np.where(std > 0, std, 1.0).tolist(), int(x.shape[2]))

    def transform(self, x: np.ndarray, lengths: np.ndarray | None = None) -> np.ndarray:
        x = as_sequences(x)
        if x.shape[1] != len(self.mean):
            raise DataError(f"expected {len(self.mean)} channel(s) per series, got {x.shape[1]} (shape {x.shape})")
        mean = np.asarray(self.mean, np.float32)[None, :, None]
        std = np.asarray(self.std, np.float32)[None, :, None]
        scaled = (x - mean) / std
        if lengths is not None:
            padding = np.arange(x.shape[2])[None, :] >= lengths[:, None]  # (N, L)
            scaled[np.broadcast_to(padding[:, None, :], scaled.shape)] = 0.0
        return scaled.astype(np.float32)

    def to_json(self) -> dict[str, Any]:
        return {"kind": "sequence", "mean": self.mean, "std": self.std, "length": self.length}

    @classmethod
    def from_json(cls, state: dict[str, Any]) -> SequenceScaler:
        return cls(state["mean"], state["std"], state["length"])


def read_sequences(path: str | Path) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Read x (and optional lengths, y) from a .npz file, or x from a .npy file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"file not found: {path}")
    if path.suffix == ".npy":
        return as_sequences(np.load(path, allow_pickle=False)), None, None
    if path.suffix != ".npz":
        raise DataError(f"{path}: sequences are read from .npz (arrays x, optional y and lengths) or .npy")
    with np.load(path, allow_pickle=False) as arrays:
        if "x" not in arrays:
            raise DataError(f"{path}: holds arrays {', '.join(arrays.files)} but no 'x'")
        x = as_sequences(arrays["x"])
        lengths = arrays["lengths"].astype(np.int64) if "lengths" in arrays else None
        y = arrays["y"] if "y" in arrays else None
    return x, lengths, y


def prepare_sequences(data_spec, task: str | None, seed: int):
    """Split, pad and scale a sequence classification dataset (built-in or .npz)."""
    import pandas as pd

    from . import builtin
    from .prepare import Prepared, classes_of, encode_classes
    from .split import split_indices

    if task not in (None, "classification", "reconstruction"):
        raise DataError(f"sequence data supports tasks classification and reconstruction, not '{task}'")
    if data_spec.anomaly_classes is not None:
        raise DataError("data.anomaly_classes: anomaly detection reads tables and images; for sequences, score "
                        "rows with the reconstruction error of `layerforge predict` instead")
    if data_spec.dataset:
        raw = builtin.load_arrays(data_spec.dataset)
        source = data_spec.dataset
    elif data_spec.path.lower().endswith(".npz"):
        raw = _read_training_npz(data_spec.path)
        source = data_spec.path
    else:
        raw = _read_training_table(data_spec)
        source = data_spec.path
    labels = pd.Series(np.concatenate([np.asarray(raw["y_train"]), np.asarray(raw.get("y_test", []))]), name="label")
    classes = classes_of(labels)
    train_series = _as_list(raw["x_train"])
    y_train = encode_classes(pd.Series(raw["y_train"], name="label"), classes, source)
    split = data_spec.split
    if "x_test" in raw:  # an official test split: validation comes out of the training part
        test_series = _as_list(raw["x_test"])
        y_test = encode_classes(pd.Series(raw["y_test"], name="label"), classes, source)
        parts = split_indices(len(train_series), split.val, 0.0, seed=seed,
                              labels=y_train if split.stratify else None, shuffle=split.shuffle)
        pieces = {"train": ([train_series[i] for i in parts["train"]], y_train[parts["train"]]),
                  "val": ([train_series[i] for i in parts["val"]], y_train[parts["val"]]),
                  "test": (test_series, y_test)}
    else:
        parts = split_indices(len(train_series), split.val, split.test, seed=seed,
                              labels=y_train if split.stratify else None, shuffle=split.shuffle)
        pieces = {name: ([train_series[i] for i in rows], y_train[rows]) for name, rows in parts.items()}

    every = [s.shape[-1] for series, _ in pieces.values() for s in series]
    length, variable = max(every), len(set(every)) > 1
    if variable and task == "reconstruction":
        raise DataError(f"{source}: an autoencoder reconstructs sequences of one length; these have lengths "
                        f"{min(every)} to {length}")
    train_x, train_lengths = pad(pieces["train"][0], length, variable)
    scaler = SequenceScaler.fit(train_x, train_lengths)
    splits = {}
    for name, (series, y) in pieces.items():
        x, lengths = pad(series, length, variable, channels=train_x.shape[1])
        x = scaler.transform(x, lengths)
        splits[name] = ((x,) if lengths is None else (x, lengths), y)
    inputs_info = {"kind": "sequence", "channels": int(train_x.shape[1]), "length": int(length),
                   "variable_length": variable}
    return Prepared(task or "classification", "label", classes, None, None, inputs_info, scaler.to_json(), splits,
                    source)


def _as_list(x) -> list[np.ndarray]:
    if isinstance(x, np.ndarray):
        return list(as_sequences(x))
    return [as_sequences(np.asarray(s)[None])[0] for s in x]


def _read_training_npz(path) -> dict:
    with np.load(path, allow_pickle=False) as arrays:
        missing = [k for k in ("x", "y") if k not in arrays]
        if missing:
            raise DataError(f"{path}: needs arrays 'x' and 'y' (optionally 'x_test', 'y_test'); "
                            f"it holds {', '.join(arrays.files)}")
        raw = {"x_train": as_sequences(arrays["x"]), "y_train": arrays["y"]}
        if "x_test" in arrays and "y_test" in arrays:
            raw.update(x_test=as_sequences(arrays["x_test"]), y_test=arrays["y_test"])
    return raw


def _read_training_table(data_spec) -> dict:
    """Series from a CSV/Parquet table: one row per series (the label column plus one column per
    time step), or long format (``data.id`` and ``data.time`` columns, one row per step, the
    ``data.features`` columns as channels)."""
    from .prepare import resolve_target
    from .tabular import _to_numbers, read_table

    frame = read_table(data_spec.path)
    source = data_spec.path
    target = resolve_target(data_spec, frame, source)
    if data_spec.id is None:  # wide: one row per series
        columns = data_spec.features or [c for c in frame.columns if c != target and c not in data_spec.drop]
        values = np.stack([_to_numbers(frame[c], str(c), source, boolean=False) for c in columns], axis=1)
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
        steps = np.stack([_to_numbers(group[c], str(c), source, boolean=False) for c in channels])  # (C, L)
        series.append(steps.astype(np.float32))
        labels.append(group[target].iloc[0])
    return {"x_train": series, "y_train": np.asarray(labels)}
