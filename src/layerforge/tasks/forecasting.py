"""Forecasting: outputs (N, horizon) against scaled future values; metrics on the original scale."""

from __future__ import annotations

import numpy as np
import torch

from ..data.forecast import SeriesScaler, forecast_metrics


class ForecastTask:
    """Predict the next ``horizon`` values of a series from a window of its past."""

    name = "forecasting"
    default_loss = "mse"

    def __init__(self, scaling: dict, horizon: int):
        self.scaler = SeriesScaler.from_json(scaling)
        self.horizon = horizon

    @property
    def output_size(self) -> int:
        return self.horizon

    def target_tensor(self, scaled: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(scaled, dtype=torch.get_default_dtype()).reshape(len(scaled), -1)

    def decode(self, outputs: torch.Tensor) -> np.ndarray:
        """Forecasts on the original scale, shape (N, horizon)."""
        return self.scaler.inverse_target(outputs.detach().double().cpu().numpy())

    def outputs_for(self, model, inputs: tuple, targets: torch.Tensor) -> torch.Tensor:
        """Forecasts as long as ``targets``: direct when they span one horizon, otherwise by
        feeding the model its own forecasts (recursive), one horizon at a time."""
        from ..training.loop import predict_outputs

        steps = targets.shape[1]
        window = inputs[0]  # (B, C, lookback)
        if steps <= self.horizon:
            return predict_outputs(model, inputs)[:, :steps]
        return rollout(model, window, steps)

    def metrics(self, outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
        """mae, rmse and mape (a fraction) over every forecast step."""
        return forecast_metrics(self.decode(targets), self.decode(outputs))


@torch.no_grad()
def rollout(model, window: torch.Tensor, steps: int) -> torch.Tensor:
    """Forecast ``steps`` ahead from ``window`` (B, 1, lookback) by sliding it over the model's own
    forecasts. Returns (B, steps) on the model's (scaled) scale."""
    from ..training.loop import predict_outputs

    if window.shape[1] != 1:
        raise ValueError("a recursive forecast needs a single-channel series (future covariates are unknown)")
    forecasts = []
    produced = 0
    while produced < steps:
        block = predict_outputs(model, (window,))  # (B, horizon)
        forecasts.append(block)
        produced += block.shape[1]
        window = torch.cat([window[:, :, block.shape[1] :], block[:, None, :]], dim=2)  # (B, 1, lookback)
    return torch.cat(forecasts, dim=1)[:, :steps]
