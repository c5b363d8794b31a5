"""Forecasts: a series' history to the window the model reads (its last ``lookback`` steps, the
target's optional log, standardised per channel with the training steps' scale). Numpy only.
Training makes its windows with the same ``SeriesScaler``.
"""

from __future__ import annotations

import numpy as np

from ..data.arrays import bounded, scaling
from ..errors import DataError
from .cells import numbers
from .tables import columns_of, no_kept_columns, no_row_names


class SeriesScaler:
    """Optional log of the target, then per-channel standardisation with training statistics."""

    def __init__(self, mean: list[float], std: list[float], log: bool):
        self.mean, self.std, self.log = np.asarray(mean), np.asarray(std), log

    @classmethod
    def fit(cls, values: np.ndarray, log: bool) -> SeriesScaler:
        mean, std = scaling(cls._log(values, log), 0, "the training series")
        return cls(mean.tolist(), std.tolist(), log)

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
        with np.errstate(over="ignore", invalid="ignore"):
            return bounded((self._log(values, self.log) - self.mean) / self.std, "step")

    def inverse_target(self, scaled: np.ndarray) -> np.ndarray:
        values = np.asarray(scaled, dtype=np.float64) * self.std[0] + self.mean[0]
        return np.exp(values) if self.log else values


class ForecastCodec:
    """Encodes histories as one input window each: a table (a file, CSV text, a DataFrame, JSON
    columns) whose columns are the series (one history), one history as an array (steps,) or
    (steps, series), or a list of histories (each a list of steps: a number per step, or one per
    series, the target first).

    Args:
        state: the fitted state (``channels``, ``lookback``, ``mean``, ``std``, ``log``).
    """

    kind = "forecast"

    def __init__(self, state: dict):
        self.names, self.lookback = state["channels"], state["lookback"]
        self.scaler = SeriesScaler(state["mean"], state["std"], state["log"])

    kept = no_kept_columns("a series")
    row_names = staticmethod(no_row_names)

    def pieces(self, rows):
        yield rows

    def histories(self, rows) -> list[np.ndarray]:
        """Each history given, as (steps, series)."""
        if isinstance(rows, np.ndarray) or (isinstance(rows, list) and rows and not isinstance(rows[0], (list, tuple,
                                                                                                      np.ndarray))):
            return [np.asarray(rows, dtype=np.float64)]
        if isinstance(rows, list):
            found = []
            for row, history in enumerate(rows):
                try:
                    found.append(np.asarray(history, dtype=np.float64))
                except (TypeError, ValueError):
                    raise DataError(f"history {row + 1}: expected numbers, one per step (or one per series at each "
                                    "step)") from None
            return found
        columns = columns_of(rows, self.names)
        missing = [name for name in self.names if name not in columns.values]
        if missing:
            raise DataError(f"missing column{columns.where.file}: {', '.join(missing)} (the series to continue)")
        return [np.stack([numbers(columns.values[name], name, columns.where) for name in self.names], axis=1)]

    def encode(self, rows, *, unknown: str | None = None, ignore_extra: bool = False,
               target: str | None = None) -> tuple[tuple[np.ndarray], None]:
        windows = []
        many = isinstance(rows, list) and rows and isinstance(rows[0], (list, tuple, np.ndarray))
        for row, values in enumerate(self.histories(rows)):
            what = f"history {row + 1}: " if many else ""
            values = values[:, None] if values.ndim == 1 else values
            if values.ndim != 2 or len(values) < self.lookback or values.shape[1] != len(self.names):
                raise DataError(f"{what}a forecast needs the last {self.lookback} steps of {len(self.names)} series "
                                f"({', '.join(self.names)}); got shape {values.shape}")
            window = values[-self.lookback :]
            if not np.isfinite(window).all():
                step = int(np.flatnonzero(~np.isfinite(window).all(axis=1))[0]) + len(values) - self.lookback
                raise DataError(f"{what}step {step + 1} holds a value that is missing or infinite; a forecast needs "
                                "the last steps complete")
            if self.scaler.log and (window[:, 0] <= 0).any():
                raise DataError(f"{what}the target has values <= 0 in the last {self.lookback} steps, which the "
                                "model's log scale cannot read")
            try:
                windows.append(self.scaler.transform(window).T)  # (C, lookback)
            except DataError:
                raise DataError(f"{what}values too far from those seen in training to be used") from None
        x = np.stack(windows).astype(np.float32) if windows else np.zeros((0, len(self.names), self.lookback),
                                                                          np.float32)
        return (x,), None
