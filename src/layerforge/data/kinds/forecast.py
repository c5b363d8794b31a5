"""Forecasting: windows of ``lookback`` steps predict the next ``horizon`` steps.

Splits are chronological only: training windows have their targets in the first part of the
series, validation windows in the next, and test windows in the last part (one window per
``horizon`` steps, each from the true history before it). Scaling (and the optional log) is
fitted on the training part. A seasonal-naive forecast of the same test steps is the baseline.
"""

from __future__ import annotations

import hashlib
from typing import Literal

import numpy as np

from ...codecs.forecast import SeriesScaler
from ...errors import DataError
from ...metrics import forecast_metrics
from ...models.inputs import Inputs
from .. import builtin
from ..splits import Chronological, ExpandingWindow
from .base import Encoder, Kind, Source, State


def load_series(data_spec) -> tuple[np.ndarray, list[str], int | None, str]:
    """(T, C) values with the target in channel 0, channel names, season, source label."""

    if data_spec.dataset:
        values, name, season = builtin.load_series(data_spec.dataset)
        return values[:, None], [name], data_spec.season or season, data_spec.dataset
    from ..tabular import read_table, to_numbers

    frame = read_table(data_spec.path)
    if data_spec.target is None or data_spec.target not in frame.columns:
        raise DataError(f"data.target: name the column to forecast (columns: {', '.join(map(str, frame.columns))})")
    names = [data_spec.target, *[c for c in (data_spec.feature_list or []) if c != data_spec.target]]
    columns = []
    for name in names:
        if name not in frame.columns:
            raise DataError(f"data.features: no column '{name}' in {data_spec.path}")
        numbers = to_numbers(frame[name], name, data_spec.path, boolean=False)
        if np.isnan(numbers).any():
            raise DataError(f"column '{name}' has missing values; a forecast needs a gap-free series")
        columns.append(numbers)
    return np.stack(columns, axis=1), names, data_spec.season, data_spec.path


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


class ForecastState(State):
    """Scaling fitted on the training steps, and the windows: ``lookback`` steps of the
    ``channels`` (target first) predict the next ``horizon`` steps of the target."""

    kind: Literal["forecast"] = "forecast"
    mean: list[float]
    std: list[float]
    log: bool
    lookback: int
    horizon: int
    season: int | None = None
    relative: bool = False
    channels: list[str]
    steps: int
    test_steps: int

    def request_row(self, title: str):
        """One history to continue: at least ``lookback`` steps, each a number (one series) or
        one number per series (target first)."""
        from typing import Annotated

        from pydantic import Field

        number = Annotated[float, Field(allow_inf_nan=False, strict=True)]
        step = number if len(self.channels) == 1 else Annotated[list[number], Field(
            min_length=len(self.channels), max_length=len(self.channels))]
        return Annotated[list[step], Field(min_length=self.lookback, title=title,
                                           description=f"the last {self.lookback} or more steps of "
                                                       f"{', '.join(self.channels)}")]

    def scaler(self) -> SeriesScaler:
        return SeriesScaler(self.mean, self.std, self.log)


class ForecastEncoder(Encoder):
    state: ForecastState

    def __init__(self, state: ForecastState, target: str | None = None):
        super().__init__(state, target)
        self.scaler = state.scaler()

    @property
    def inputs(self) -> Inputs:
        return Inputs(kind="sequence", channels=len(self.state.channels), length=self.state.lookback,
                      relative=self.state.relative, season=self.state.season)

    @property
    def features(self) -> list[str]:
        return list(self.state.channels)

    def encode(self, source: Source, parts: dict[str, np.ndarray]):
        """Training windows slide one step at a time with their targets inside the training steps;
        validation windows likewise. The test steps are forecast from the end of the known
        history: in one recursive forecast for a single series, one horizon at a time with
        covariates (whose future is unknown)."""
        state, values = self.state, source.payload
        scaled = self.scaler.transform(values)
        lookback, horizon = state.lookback, state.horizon
        empty = (np.zeros((0, len(state.channels), lookback), np.float32), np.zeros((0, horizon), np.float32))
        encoded = {}
        for name, rows in parts.items():
            if name == "test":
                starts, span = self._test_windows(rows, len(values))
            else:
                start, stop = (int(rows[0]), int(rows[-1]) + 1) if len(rows) else (0, 0)
                starts, span = list(range(max(start, lookback), stop - horizon + 1)), horizon
            x, y = windows(scaled, lookback, span, starts) if starts else empty
            encoded[name] = ((x,), y)
        return encoded

    def _test_windows(self, rows: np.ndarray, total: int) -> tuple[list[int], int]:
        if not len(rows):
            return [], self.state.horizon
        before_test = int(rows[0])
        if len(self.state.channels) == 1:
            return [before_test], total - before_test
        return list(range(before_test, total - self.state.horizon + 1, self.state.horizon)), self.state.horizon

    def baseline(self, source: Source, test: np.ndarray) -> dict[str, dict[str, float]]:
        """The seasonal-naive forecast of the test steps, scored like the model."""
        starts, span = self._test_windows(test, len(source.payload))
        season = self.state.season
        if not season or not starts:
            return {}
        values = source.payload[:, 0]
        truth = np.stack([values[t : t + span] for t in starts])
        return {"seasonal_naive": forecast_metrics(truth, seasonal_naive(values, starts, span, season))}

    def unscale(self, rows: np.ndarray) -> np.ndarray:
        return self.scaler.inverse_target(rows)


class ForecastKind(Kind):
    name = "forecast"
    reads = "sequence"
    targets = "future"
    state = ForecastState

    def load(self, data_spec, *, target_required: bool = True) -> Source:
        values, names, season, source = load_series(data_spec)
        return Source(source, len(values), values, hashlib.sha256(values.tobytes()).hexdigest(), names[0],
                      facts={"channels": names, "season": season})

    def _test_steps(self, data_spec, steps: int) -> int:
        return data_spec.test_size or int(round(steps * data_spec.split.test))

    def plan(self, data_spec, source: Source, seed: int, stratify: bool):
        """Time order: the last ``data.test_size`` steps (or ``split.test`` of them) are the test
        span; ``split.val`` of the steps before it validate."""
        return Chronological(data_spec.split.val, test_rows=self._test_steps(data_spec, source.rows))

    def cv_plan(self, data_spec, source: Source, seed: int, stratify: bool, folds: int, fold: int, deal: int):
        """Expanding windows over the steps before the test span: fold k trains on the steps up
        to its validation block and never on a later one."""
        return ExpandingWindow(folds, fold, test_rows=self._test_steps(data_spec, source.rows))

    def raw_rows(self, source: Source, positions: np.ndarray):
        """One history: the series up to the first of ``positions`` (its steps)."""
        start = int(np.min(positions)) if len(positions) else len(source.payload)
        return np.asarray(source.payload)[: max(start, 1)]

    def fit(self, source: Source, train: np.ndarray, data_spec) -> ForecastEncoder:
        values, names, season = source.payload, source.facts["channels"], source.facts["season"]
        total, horizon = len(values), data_spec.horizon
        lookback = data_spec.lookback or (2 * season if season else 24)
        train_end = int(train[-1]) + 1 if len(train) else 0
        if train_end - lookback - horizon + 1 < 1:
            raise DataError(
                f"{source.label}: {total} steps leave {train_end} for training, too few for lookback {lookback} + "
                f"horizon {horizon}; lower data.lookback, data.horizon or the held-out steps"
            )
        test_steps = self._test_steps(data_spec, total)
        if len(names) > 1 and test_steps and test_steps < horizon:
            raise DataError(f"data.horizon ({horizon}) is longer than the {test_steps} held-out test steps")
        scaler = SeriesScaler.fit(values[:train_end], data_spec.log)
        state = ForecastState(mean=scaler.mean.tolist(), std=scaler.std.tolist(), log=data_spec.log,
                              lookback=lookback, horizon=horizon, season=season, relative=bool(data_spec.relative),
                              channels=names, steps=total, test_steps=test_steps)
        return ForecastEncoder(state, source.target)

    def encoder(self, state: ForecastState, target: str | None) -> ForecastEncoder:
        return ForecastEncoder(state, target)
