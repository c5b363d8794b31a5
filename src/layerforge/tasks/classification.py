"""Classification: logits (N, C) against class indices (N,)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..data.labels import checked_classes, encode_classes
from ..errors import DataError
from ..figures import Note, Picture
from ..metrics import accuracy, f1_macro, roc_auc
from .base import Task

__all__ = ["ClassificationTask", "accuracy", "f1_macro", "roc_auc"]


class ClassificationTask(Task):
    """Predict one of ``classes``. The model outputs one logit per class."""

    name = "classification"
    default_loss = "cross_entropy"
    target_form = "classes"
    manifest_fields = ("classes",)
    metrics = {"accuracy": True, "f1_macro": True, "roc_auc": True}
    headline = "accuracy"
    example = {"data": {"dataset": "iris"}, "model": {"type": "mlp", "layers": [8]}}
    stratify = True

    def __init__(self, classes: list):
        self.classes = list(classes)

    @classmethod
    def chance_loss(cls, classes: int | None) -> tuple[float, str] | None:
        return (math.log(classes), "guessing the class") if classes else None

    @classmethod
    def fit(cls, labels, train: np.ndarray, encoder, data_spec, source: str) -> ClassificationTask:
        if labels is None:
            raise DataError(f"{source}: classification needs a target column (data.target)")
        return cls(checked_classes(labels))

    @classmethod
    def from_manifest(cls, manifest, encoder, run_dir: Path | None = None) -> ClassificationTask:
        return cls(manifest.classes)

    @classmethod
    def from_targets(cls, y: np.ndarray) -> ClassificationTask:
        return cls(list(range(int(np.asarray(y).max()) + 1)))

    @property
    def output_size(self) -> int:
        return len(self.classes)

    def encode_targets(self, labels, source: str | None = None) -> np.ndarray:
        return encode_classes(labels, self.classes, source)

    def scores(self, outputs, y) -> dict[str, float]:
        """accuracy, f1_macro and, with two classes, roc_auc."""
        probs = outputs.float().softmax(dim=-1).cpu().numpy()
        true = y.cpu().numpy()
        pred = probs.argmax(axis=1)
        result = {"accuracy": accuracy(true, pred), "f1_macro": f1_macro(true, pred)}
        if len(self.classes) == 2:
            result["roc_auc"] = roc_auc(true, probs[:, 1])
        return result

    def probabilities(self, model, inputs: tuple) -> np.ndarray:
        """Class probabilities (rows, classes), columns in the order of ``classes``."""
        from ..models.protocol import predict_outputs

        return predict_outputs(model, inputs).float().softmax(dim=-1).cpu().numpy()

    def predictions(self, model, inputs: tuple) -> np.ndarray:
        return np.asarray(self.classes, dtype=object)[self.probabilities(model, inputs).argmax(axis=1)]

    def decoding(self) -> dict:
        return {"kind": "classes", "classes": self.classes}

    def prediction_table(self, model, inputs: tuple, target: str | None):
        """The predicted class and one ``proba_<class>`` column per class."""
        import pandas as pd

        probabilities = self.probabilities(model, inputs)
        frame = pd.DataFrame({target or "prediction": np.asarray(self.classes, dtype=object)[probabilities.argmax(1)]})
        for i, name in enumerate(self.classes):
            frame[f"proba_{name}"] = probabilities[:, i]
        return frame

    def report_blocks(self, model, held_out, *, encoder, pictures, target):
        from ..figures import charts
        from ..models.protocol import predict_outputs

        rows = held_out()
        if rows is None:
            return [Note("no held-out rows")]
        inputs, y = rows
        probabilities = predict_outputs(model, inputs).float().softmax(dim=-1).cpu().numpy()
        true = y.cpu().numpy()
        return [Picture("confusion matrix", charts.confusion_matrix(true, probabilities.argmax(1), self.classes)),
                Picture("ROC curve", charts.roc_curves(true, probabilities, self.classes))]
