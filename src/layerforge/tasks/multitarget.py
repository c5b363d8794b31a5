"""Several targets at once: one head per target column (a class or a value each), their losses
weighted and summed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..decodings import Targets
from ..errors import DataError, SpecError
from ..figures import Note, Table, number_text
from .base import Task, answer_outputs
from .classification import ClassificationTask
from .regression import RegressionTask

__all__ = ["MultiTargetTask"]


class MultiTargetTask(Task):
    """Predict each of ``data.target``'s columns: a class (a column of labels) or a value (a
    column of numbers), from one network whose outputs hold each target's head side by side.
    The loss is each target's own (cross-entropy, or the mean squared error of its standardised
    values), weighted by ``data.target_weights`` (1 each by default) and summed.

    Metrics: each target's own, named ``<target>_<metric>`` (``price_r2``, ``kind_accuracy``),
    and ``score``, the mean of each target's headline (accuracy or R²).
    """

    name = "multitarget"
    default_loss = "per_target"
    target_form = "multi"
    manifest_fields = ("targets",)
    metrics = {"score": True}
    headline = "score"
    example = {"data": {"dataset": "diabetes", "target": ["progression", "sex"]},
               "model": {"type": "mlp", "layers": [8]}}

    def __init__(self, parts: list[tuple[str, Task]], weights: dict[str, float] | None = None):
        self.parts = parts
        self.weights = {name: float((weights or {}).get(name, 1.0)) for name, _ in parts}
        self.slices, start = [], 0
        for _, task in parts:
            self.slices.append(slice(start, start + task.output_size))
            start += task.output_size

    # -- building ------------------------------------------------------------------------------

    @classmethod
    def fit(cls, labels, train: np.ndarray, encoder, data_spec, source: str) -> MultiTargetTask:
        from ..data.tabular import infer_task

        if labels is None or not hasattr(labels, "columns"):
            raise DataError(f"{source}: a multi-target run needs several target columns (data.target: [a, b])")
        parts = []
        for name in labels.columns:
            column = labels[name]
            task = ClassificationTask if infer_task(column) == "classification" else RegressionTask
            parts.append((str(name), task.fit(column, train, encoder, data_spec, source)))
        return cls(parts, data_spec.target_weights)

    @classmethod
    def from_manifest(cls, manifest, encoder, run_dir: Path | None = None) -> MultiTargetTask:
        parts = []
        for part in manifest.targets:
            if part.task == "classification":
                parts.append((part.name, ClassificationTask(part.classes)))
            else:
                parts.append((part.name, RegressionTask(part.target_scaling.mean, part.target_scaling.std)))
        return cls(parts, {part.name: part.weight for part in manifest.targets})

    def record(self) -> dict[str, Any]:
        return {"classes": None, "target_scaling": None,
                "targets": [{"name": name, "task": task.name, "weight": self.weights[name], **task.record()}
                            for name, task in self.parts]}

    @property
    def output_size(self) -> int:
        return sum(task.output_size for _, task in self.parts)

    @property
    def num_classes(self) -> int:
        return 0

    # -- targets -------------------------------------------------------------------------------

    def encode_targets(self, labels, source: str | None = None) -> np.ndarray:
        """(rows, targets): each target's class index or standardised value."""
        missing = [name for name, _ in self.parts if name not in getattr(labels, "columns", ())]
        if missing:
            raise DataError(f"the rows lack the target column{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
        columns = [np.asarray(task.encode_targets(labels[name], source), dtype=np.float32).reshape(len(labels))
                   for name, task in self.parts]
        return np.stack(columns, axis=1)

    def target_tensor(self, y: np.ndarray):
        import torch

        return torch.as_tensor(y, dtype=torch.float32)

    def own_loss(self, loss_spec):
        """Each target's loss on its slice of the outputs, weighted and summed."""
        if loss_spec is not None and loss_spec.name != self.default_loss:
            raise SpecError("train.loss: a multi-target run's loss is each target's own (cross-entropy for classes, "
                            "mean squared error for values), weighted by data.target_weights; remove train.loss")
        import torch.nn.functional as F

        def loss(outputs, y):
            total = 0.0
            for i, ((name, task), part) in enumerate(zip(self.parts, self.slices)):
                if task.target_form == "classes":
                    value = F.cross_entropy(outputs[:, part], y[:, i].long())
                else:
                    value = F.mse_loss(outputs[:, part], y[:, i : i + 1].to(outputs.dtype))
                total = total + self.weights[name] * value
            return total

        return loss

    # -- evaluation and answers ------------------------------------------------------------------

    def scores(self, outputs, y) -> dict[str, float]:
        found, headlines = {}, []
        for i, ((name, task), part) in enumerate(zip(self.parts, self.slices)):
            column = y[:, i].long() if task.target_form == "classes" else y[:, i : i + 1]
            scores = task.scores(outputs[:, part], column)
            found.update({f"{name}_{metric}": value for metric, value in scores.items()})
            headlines.append(scores[task.headline])
        return {"score": float(np.mean(headlines)), **found}

    def decoding(self) -> Targets:
        return Targets([{"name": name, "decoding": task.decoding().to_json(), "start": part.start, "stop": part.stop}
                        for (name, task), part in zip(self.parts, self.slices)])

    def predictions(self, model, inputs: tuple) -> np.ndarray:
        return self.decoding().predictions(answer_outputs(model, inputs), inputs)

    def report_blocks(self, model, held_out, *, encoder, pictures, target):
        rows = held_out()
        if rows is None:
            return [Note("no held-out rows")]
        inputs, y = rows
        scores = self.scores(self.outputs_for(model, inputs, y), y)
        table = [[name, task.name, number_text(self.weights[name]),
                  ", ".join(f"{m} {number_text(scores[f'{name}_{m}'])}" for m in task.metrics
                            if f"{name}_{m}" in scores)]
                 for name, task in self.parts]
        return [Table(["target", "task", "weight", "held-out metrics"], table, "each target")]

