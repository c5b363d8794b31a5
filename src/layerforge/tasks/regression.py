"""Regression: outputs (N, K) against standardised targets (N, K); metrics on the original scale."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data.labels import row_label, row_of
from ..decodings import Values
from ..errors import DataError
from ..figures import Note, Picture
from .base import Task, answer_outputs


class RegressionTask(Task):
    """Predict ``len(mean)`` real values. Targets are standardised with the training rows' mean
    and spread; metrics and predictions are on the original scale."""

    name = "regression"
    default_loss = "mse"
    target_form = "values"
    manifest_fields = ("target_scaling",)
    metrics = {"mse": False, "mae": False, "r2": True}
    metric_bounds = {"mse": (0.0, None), "mae": (0.0, None), "r2": (None, 1.0)}
    headline = "r2"
    example = {"data": {"dataset": "diabetes"}, "model": {"type": "mlp", "layers": [8]}}
    ensembles = True
    attacks = True
    explains = True

    def __init__(self, mean: list[float], std: list[float]):
        self.mean = np.asarray(mean, dtype=np.float64)
        self.std = np.asarray(std, dtype=np.float64)

    @classmethod
    def chance_loss(cls, classes: int | None) -> tuple[float, str] | None:
        return 1.0, "predicting the mean"  # the loss of standardised targets predicted by their mean

    @classmethod
    def fit(cls, labels, train: np.ndarray, encoder, data_spec, source: str) -> RegressionTask:
        from ..data.tabular import scale_of, to_numbers

        if labels is None:
            raise DataError(f"{source}: regression needs a target column (data.target)")
        values = to_numbers(labels, labels.name, source, boolean=False)[train]
        values = values[~np.isnan(values)]  # encode_targets names missing targets, row by row
        if len(values) == 0:
            raise DataError(f"target column '{labels.name}' has no values in the training rows")
        mean, std = scale_of(values, labels.name)
        return cls([mean], [std])

    @classmethod
    def from_manifest(cls, manifest, encoder, run_dir: Path | None = None) -> RegressionTask:
        return cls(manifest.target_scaling.mean, manifest.target_scaling.std)

    @classmethod
    def from_targets(cls, y: np.ndarray) -> RegressionTask:
        y = np.asarray(y)
        width = 1 if y.ndim == 1 else y.shape[1]
        return cls([0.0] * width, [1.0] * width)

    def record(self) -> dict:
        return {"classes": None, "target_scaling": {"mean": self.mean.tolist(), "std": self.std.tolist()}}

    @property
    def output_size(self) -> int:
        return len(self.mean)

    def encode_targets(self, labels, source: str | None = None) -> np.ndarray:
        from ..data.tabular import standardise, to_numbers

        values = to_numbers(labels, labels.name, source, boolean=False)
        missing = np.flatnonzero(np.isnan(values))
        if len(missing):
            raise DataError(f"target column '{labels.name}' has missing values ({len(missing)} rows, the first in "
                            f"{row_label(row_of(labels, int(missing[0])), source)}); fill or drop them")
        return standardise(values, self.mean[0], self.std[0], labels, source).astype(np.float32)[:, None]

    def target_tensor(self, y: np.ndarray):
        import torch

        return torch.as_tensor(y, dtype=torch.get_default_dtype()).reshape(len(y), -1)

    def decode(self, outputs) -> np.ndarray:
        """Values on the original scale, shape (N, K)."""
        return outputs.detach().double().cpu().numpy() * self.std + self.mean

    def scores(self, outputs, y) -> dict[str, float]:
        """mse, mae and r2 on the original scale (averaged over targets)."""
        pred, true = self.decode(outputs), self.decode(y)
        error = pred - true
        total = ((true - true.mean(axis=0)) ** 2).sum(axis=0)
        r2 = 1 - (error**2).sum(axis=0) / np.where(total > 0, total, np.nan)
        return {
            "mse": float((error**2).mean()),
            "mae": float(np.abs(error).mean()),
            "r2": float(np.nanmean(r2)) if np.isfinite(r2).any() else float("nan"),
        }

    def decoding(self) -> Values:
        return Values(self.mean.tolist(), self.std.tolist())

    def predictions(self, model, inputs: tuple) -> np.ndarray:
        return self.decoding().predictions(answer_outputs(model, inputs), inputs)

    def for_ensemble(self) -> RegressionTask:
        return self

    def report_blocks(self, model, held_out, *, encoder, pictures, target):
        from ..figures import charts
        from ..models.protocol import predict_outputs

        rows = held_out()
        if rows is None:
            return [Note("no held-out rows")]
        inputs, y = rows
        true, pred = self.decode(y), self.decode(predict_outputs(model, inputs))
        return [Picture("predicted vs true", charts.regression(true[:, 0], pred[:, 0], target or "target"))]
