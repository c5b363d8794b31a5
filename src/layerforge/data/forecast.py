"""Forecasting: windows of ``lookback`` steps predict the next ``horizon`` steps.

Splits are chronological only: training windows have their targets in the first part of the
series, validation windows in the next, and test windows in the last part (one window per
``horizon`` steps, each from the true history before it). Scaling (and the optional log) is
fitted on the training part. A seasonal-naive forecast of the same test steps is the baseline.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import DataError


def load_series(data_spec) -> tuple[np.ndarray, list[str], int | None, str]:
    """(T, C) values with the target in channel 0, channel names, season, source label."""
    from . import builtin

    if data_spec.dataset:
        values, name, season = builtin.load_series(data_spec.dataset)
        return values[:, None], [name], data_spec.season or season, data_spec.dataset
    from .tabular import _to_numbers, read_table

    frame = read_table(data_spec.path)
    if data_spec.target is None or data_spec.target not in frame.columns:
        raise DataError(f"data.target: name the column to forecast (columns: {', '.join(map(str, frame.columns))})")
    names = [data_spec.target, *[c for c in (data_spec.features or []) if c != data_spec.target]]
    columns = []
    for name in names:
        if name not in frame.columns:
            raise DataError(f"data.features: no column '{name}' in {data_spec.path}")
        numbers = _to_numbers(frame[name], name, data_spec.path, boolean=False)
        if np.isnan(numbers).any():
            raise DataError(f"column '{name}' has missing values; a forecast needs a gap-free series")
        columns.append(numbers)
    return np.stack(columns, axis=1), names, data_spec.season, data_spec.path


class SeriesScaler:
    """Optional log of the target, then per-channel standardisation with training statistics."""

    def __init__(self, mean: list[float], std: list[float], log: bool):
        self.mean, self.std, self.log = np.asarray(mean), np.asarray(std), log

    @classmethod
    def fit(cls, values: np.ndarray, log: bool) -> SeriesScaler:
        transformed = cls._log(values, log)
        std = transformed.std(axis=0)
        return cls(transformed.mean(axis=0).tolist(), np.where(std > 0, std, 1.0).tolist(), log)

    @staticmethod
    def _log(values: np.ndarray, log: bool) -> np.ndarray:
        if not log:
            return values.astype(np.float64)
        if (values[:, 0] <= 0).any():
            raise DataError("data.log: the target has values <= 0, which have no logarithm; set log: false")
        out = values.astype(np.float64).copy()
        out[:, 0] = np.log(out[:, 0])
        return out

    def transform(self, values: np.ndarray) -> np.ndarray:
        return ((self._log(values, self.log) - self.mean) / self.std).astype(np.float32)

    def inverse_target(self, scaled: np.ndarray) -> np.ndarray:
        values = np.asarray(scaled, dtype=np.float64) * self.std[0] + self.mean[0]
        return np.exp(values) if self.log else values

    def to_json(self) -> dict[str, Any]:
        return {"kind": "forecast", "mean": self.mean.tolist(), "std": self.std.tolist(), "log": self.log}

    @classmethod
    def from_json(cls, state: dict[str, Any]) -> SeriesScaler:
        return cls(state["mean"], state["std"], state["log"])


def windows(scaled: np.ndarray, lookback: int, horizon: int, target_starts: range) -> tuple[np.ndarray, np.ndarray]:
    """Inputs (N, C, lookback) and targets (N, horizon) for windows whose targets start at each
    index in ``target_starts``."""
    x = np.stack([scaled[t - lookback : t].T for t in target_starts]).astype(np.float32)
    y = np.stack([scaled[t : t + horizon, 0] for t in target_starts]).astype(np.float32)
    return x, y


def seasonal_naive(values: np.ndarray, origins: list[int], horizon: int, season: int) -> np.ndarray:
    """For each origin, repeat the last observed season forward over the horizon: (N, horizon)."""
    steps = np.arange(1, horizon + 1)
    back = season * np.ceil(steps / season).astype(int)
    return np.stack([values[origin + steps - 1 - back] for origin in origins])


def forecast_metrics(true: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """MAE, RMSE and MAPE (as a fraction, e.g. 0.05) over all forecast steps."""
    error = pred - true
    return {
        "mae": float(np.abs(error).mean()),
        "rmse": float(np.sqrt((error**2).mean())),
        "mape": float(np.mean(np.abs(error) / np.maximum(np.abs(true), 1e-12))),
    }


def prepare_forecast(data_spec, task: str | None, seed: int):
    from .prepare import Prepared

    if task not in (None, "forecasting"):
        raise DataError(f"forecast data supports task forecasting, not '{task}'")
    values, names, season, source = load_series(data_spec)
    total, lookback, horizon = len(values), data_spec.lookback, data_spec.horizon
    if lookback is None:
        lookback = 2 * season if season else 24
    test_size = data_spec.test_size or int(round(total * data_spec.split.test))
    before_test = total - test_size
    val_size = int(round(before_test * data_spec.split.val))
    train_end = before_test - val_size
    if train_end - lookback - horizon + 1 < 1:
        raise DataError(
            f"{source}: {total} steps leave {train_end} for training, too few for lookback {lookback} + "
            f"horizon {horizon}; lower data.lookback, data.horizon or the held-out steps"
        )
    scaler = SeriesScaler.fit(values[:train_end], data_spec.log)
    scaled = scaler.transform(values)
    train = windows(scaled, lookback, horizon, range(lookback, train_end - horizon + 1))
    val_starts = range(max(train_end, lookback), before_test - horizon + 1)
    empty = (np.zeros((0, len(names), lookback), np.float32), np.zeros((0, horizon), np.float32))
    val = windows(scaled, lookback, horizon, val_starts) if len(val_starts) else empty
    if len(names) == 1:
        # one forecast of every held-out step from the end of the known history: recursive
        # when the test span is longer than the horizon
        test_starts, test_span = ([before_test] if test_size else []), test_size
    else:
        # with covariates, whose future is unknown, forecast the test span one horizon at a time
        test_starts, test_span = list(range(before_test, total - horizon + 1, horizon)), horizon
        if test_size and not test_starts:
            raise DataError(f"data.horizon ({horizon}) is longer than the {test_size} held-out test steps")
    test = windows(scaled, lookback, test_span, test_starts) if test_starts else empty
    splits = {"train": ((train[0],), train[1]), "val": ((val[0],), val[1]), "test": ((test[0],), test[1])}

    extra: dict[str, Any] = {"forecast": {"lookback": lookback, "horizon": horizon, "season": season,
                                          "steps": total, "test_steps": test_size, "channels": names}}
    if season and test_starts:
        truth = np.stack([values[t : t + test_span, 0] for t in test_starts])
        baseline = seasonal_naive(values[:, 0], test_starts, test_span, season)
        extra["baseline"] = {"seasonal_naive": forecast_metrics(truth, baseline)}
    inputs_info = {"kind": "sequence", "channels": len(names), "length": lookback,
                   "relative": bool(data_spec.relative), "season": season}
    return Prepared("forecasting", names[0], None, None, None, inputs_info, scaler.to_json(), splits, source,
                    features=names, extra=extra)
