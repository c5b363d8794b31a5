"""Forecasting: outputs (N, horizon) against scaled future values; metrics on the original scale."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..decodings import Forecast
from ..figures import Note, Picture
from ..metrics import forecast_metrics
from .base import Task, answer_outputs


class ForecastTask(Task):
    """Predict the next ``horizon`` values of a series from a window of its past. Held-out spans
    longer than the horizon are forecast recursively, feeding the model its own forecasts.

    Args:
        scaler: the series' fitted scaling (the forecast encoder's), to score on the original scale.
        horizon: steps per forecast.
    """

    name = "forecasting"
    default_loss = "mse"
    trains_on = "future"
    target_form = "values"
    metrics = {"mae": False, "rmse": False, "mape": False}
    metric_bounds = {"mae": (0.0, None), "rmse": (0.0, None), "mape": (0.0, None)}
    headline = "mape"
    example = {"data": {"dataset": "airline", "lookback": 12, "horizon": 3, "test_size": 12},
               "model": {"type": "mlp", "layers": [8]}}

    def __init__(self, scaler, horizon: int):
        self.scaler, self.horizon = scaler, horizon

    @classmethod
    def fit(cls, labels, train: np.ndarray, encoder, data_spec, source: str) -> ForecastTask:
        return cls(encoder.scaler, encoder.state.horizon)

    @classmethod
    def from_manifest(cls, manifest, encoder, run_dir: Path | None = None) -> ForecastTask:
        return cls(encoder.scaler, encoder.state.horizon)

    @property
    def output_size(self) -> int:
        return self.horizon

    def target_tensor(self, y: np.ndarray):
        import torch

        return torch.as_tensor(y, dtype=torch.get_default_dtype()).reshape(len(y), -1)

    def decode(self, outputs) -> np.ndarray:
        """Forecasts on the original scale, shape (N, steps)."""
        return self.scaler.inverse_target(outputs.detach().double().cpu().numpy())

    def decoding(self) -> Forecast:
        return Forecast(float(self.scaler.mean[0]), float(self.scaler.std[0]), bool(self.scaler.log))

    def outputs_for(self, model, inputs: tuple, y):
        """Forecasts as long as ``y``: direct when it spans one horizon, else recursive."""
        from ..models.protocol import predict_outputs

        steps = y.shape[1]
        if steps <= self.horizon:
            return predict_outputs(model, inputs)[:, :steps]
        return rollout(model, inputs[0], steps)

    def scores(self, outputs, y) -> dict[str, float]:
        """mae, rmse and mape (a fraction) over every forecast step."""
        return forecast_metrics(self.decode(y), self.decode(outputs))

    def predictions(self, model, inputs: tuple) -> np.ndarray:
        """The next ``horizon`` steps after each window (histories, horizon), on the original
        scale."""
        return self.decoding().predictions(answer_outputs(model, inputs), inputs)

    def report_blocks(self, model, held_out, *, encoder, pictures, target):
        """The first test window's history, then the forecast of the test span."""
        from ..figures import charts

        rows = held_out()
        if rows is None or not len(rows[1]):
            return [Note("no held-out steps")]
        inputs, y = rows
        true, pred = self.decode(y)[0], self.decode(self.outputs_for(model, inputs, y))[0]
        history = self.decode(inputs[0][:1, 0])[0]
        return [Picture("forecast vs actual", charts.forecast(history, true, pred, target or "target"))]


def rollout(model, window, steps: int):
    """Forecast ``steps`` ahead from ``window`` (B, 1, lookback) by sliding it over the model's own
    forecasts. Returns (B, steps) on the model's (scaled) scale."""
    import torch

    from ..models.protocol import predict_outputs

    if window.shape[1] != 1:
        raise ValueError("a recursive forecast needs a single-channel series (future covariates are unknown)")
    forecasts = []
    produced = 0
    with torch.no_grad():
        while produced < steps:
            block = predict_outputs(model, (window,))  # (B, horizon)
            forecasts.append(block)
            produced += block.shape[1]
            window = torch.cat([window[:, :, block.shape[1] :], block[:, None, :]], dim=2)  # (B, 1, lookback)
    return torch.cat(forecasts, dim=1)[:, :steps]
