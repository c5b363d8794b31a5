"""Regression: outputs (N, K) against standardised targets (N, K); metrics on the original scale."""

from __future__ import annotations

import numpy as np
import torch


class RegressionTask:
    """Predict ``len(mean)`` real values. Targets are standardised for training."""

    name = "regression"
    default_loss = "mse"

    def __init__(self, mean: list[float], std: list[float]):
        self.mean = np.asarray(mean, dtype=np.float64)
        self.std = np.asarray(std, dtype=np.float64)

    @property
    def output_size(self) -> int:
        return len(self.mean)

    def target_tensor(self, scaled: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(scaled, dtype=torch.get_default_dtype()).reshape(len(scaled), -1)

    def decode(self, outputs: torch.Tensor) -> np.ndarray:
        """Predictions on the original scale, shape (N, K)."""
        return outputs.detach().double().cpu().numpy() * self.std + self.mean

    def metrics(self, outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
        """mse, mae and r2 on the original scale (averaged over targets)."""
        pred = self.decode(outputs)
        true = self.decode(targets)
        error = pred - true
        total = ((true - true.mean(axis=0)) ** 2).sum(axis=0)
        r2 = 1 - (error**2).sum(axis=0) / np.where(total > 0, total, np.nan)
        return {
            "mse": float((error**2).mean()),
            "mae": float(np.abs(error).mean()),
            "r2": float(np.nanmean(r2)) if np.isfinite(r2).any() else float("nan"),
        }
