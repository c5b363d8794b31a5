"""Classification: logits (N, C) against class indices (N,)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..data.labels import checked_classes, encode_classes
from ..decodings import Classes
from ..errors import DataError
from ..figures import Note, Picture, Table
from ..metrics import classification_scores
from .base import Task, answer_outputs

MISCLASSIFIED = 16  # the wrong answers a report shows


def per_class_table(true: np.ndarray, predicted: np.ndarray, classes: list) -> Table:
    """Each class's precision, recall, F1 and support on the test rows, the weakest recall first."""
    rows = []
    for index, name in enumerate(classes):
        hits = int(np.sum((predicted == index) & (true == index)))
        said, actual = int(np.sum(predicted == index)), int(np.sum(true == index))
        precision = hits / said if said else float("nan")
        recall = hits / actual if actual else float("nan")
        f1 = 2 * precision * recall / (precision + recall) if said and actual and precision + recall else float("nan")
        rows.append([str(name), precision, recall, f1, actual])
    rows.sort(key=lambda row: (row[2] != row[2], row[2]))  # NaN recall (no rows of the class) last
    return Table(["class", "precision", "recall", "F1", "test rows"], rows, "per class (the weakest recall first)")

__all__ = ["ClassificationTask"]


class ClassificationTask(Task):
    """Predict one of ``classes``. The model outputs one logit per class; probabilities are their
    softmax, after dividing by ``temperature`` when the run was calibrated (``train.calibrate``).

    Metrics: accuracy, macro F1, ROC AUC (two classes), and how trustworthy the probabilities are:
    ``nll`` (negative log-likelihood), ``ece`` (expected calibration error, 15 bins) and
    ``brier``.
    """

    name = "classification"
    default_loss = "cross_entropy"
    target_form = "classes"
    manifest_fields = ("classes",)
    metrics = {"accuracy": True, "f1_macro": True, "roc_auc": True, "nll": False, "ece": False, "brier": False}
    metric_bounds = {"accuracy": (0.0, 1.0), "f1_macro": (0.0, 1.0), "roc_auc": (0.0, 1.0), "ece": (0.0, 1.0),
                     "nll": (0.0, None), "brier": (0.0, 2.0), "loss": (0.0, None)}
    headline = "accuracy"
    example = {"data": {"dataset": "iris"}, "model": {"type": "mlp", "layers": [8]}}
    stratify = True
    calibrates = True
    ensembles = True
    attacks = True
    explains = True

    def __init__(self, classes: list, temperature: float | None = None):
        self.classes = list(classes)
        self.temperature = temperature

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
        return cls(manifest.classes, manifest.temperature)

    @classmethod
    def from_targets(cls, y: np.ndarray) -> ClassificationTask:
        return cls(list(range(int(np.asarray(y).max()) + 1)))

    @property
    def output_size(self) -> int:
        return len(self.classes)

    def encode_targets(self, labels, source: str | None = None) -> np.ndarray:
        return encode_classes(labels, self.classes, source)

    def record(self) -> dict:
        return {**super().record(), "temperature": self.temperature}

    def _softmax(self, outputs):
        """Probabilities (a tensor) of logits ``outputs``, calibrated when the run was."""
        logits = outputs.float()
        return (logits / self.temperature if self.temperature else logits).softmax(dim=-1)

    def scores(self, outputs, y) -> dict[str, float]:
        """accuracy, f1_macro, with two classes roc_auc, and nll, ece and brier (one pass)."""
        return classification_scores(y.cpu().numpy(), self._softmax(outputs).double().cpu().numpy())

    def calibrate(self, model, inputs: tuple, y) -> dict:
        """Temperature scaling: the one temperature that minimises the negative log-likelihood
        of the rows (the validation rows), found by golden-section search over its logarithm.

        A weak standard-normal prior on log T counts as one more row that says T = 1: without
        it, a few validation rows that are all classified right push T towards 0 (every
        sharpening lowers their loss), and the test rows then get overconfident answers."""
        from ..models.protocol import predict_outputs

        logits = predict_outputs(model, inputs).double().cpu().numpy()
        true = y.cpu().numpy().astype(np.int64)

        def nll(log_t: float) -> float:
            z = logits / math.exp(log_t)
            top = z.max(axis=1, keepdims=True)
            loss = (np.log(np.exp(z - top).sum(axis=1)) + top[:, 0] - z[np.arange(len(z)), true]).mean()
            return float(loss + log_t**2 / (2 * len(z)))

        low, high = math.log(0.05), math.log(20.0)
        ratio = (math.sqrt(5) - 1) / 2
        a, b = high - ratio * (high - low), low + ratio * (high - low)
        fa, fb = nll(a), nll(b)
        for _ in range(60):
            if fa < fb:
                high, b, fb = b, a, fa
                a = high - ratio * (high - low)
                fa = nll(a)
            else:
                low, a, fa = a, b, fb
                b = low + ratio * (high - low)
                fb = nll(b)
        self.temperature = round(math.exp((low + high) / 2), 6)
        return {"temperature": self.temperature}

    def probabilities(self, model, inputs: tuple) -> np.ndarray:
        """Class probabilities (rows, classes), columns in the order of ``classes``."""
        return self.decoding().probabilities(answer_outputs(model, inputs))

    def predictions(self, model, inputs: tuple) -> np.ndarray:
        return self.decoding().predictions(answer_outputs(model, inputs), inputs)

    def decoding(self) -> Classes:
        return Classes(self.classes, self.temperature)

    def for_ensemble(self) -> ClassificationTask:
        return ClassificationTask(self.classes)

    def report_blocks(self, model, held_out, *, encoder, pictures, target):
        from ..figures import charts
        from ..models.protocol import predict_outputs

        rows = held_out()
        if rows is None:
            return [Note("no held-out rows")]
        inputs, y = rows
        probabilities = self._softmax(predict_outputs(model, inputs)).double().cpu().numpy()
        true = y.cpu().numpy()
        calibrated = f"temperature {self.temperature:.3g}" if self.temperature else "not calibrated"
        predicted = probabilities.argmax(1)
        blocks = [Picture("confusion matrix", charts.confusion_matrix(true, predicted, self.classes)),
                  Picture("ROC curve", charts.roc_curves(true, probabilities, self.classes)),
                  Picture(f"reliability diagram ({calibrated})", charts.reliability(true, probabilities)),
                  per_class_table(true, predicted, self.classes)]
        return blocks + self._misclassified(inputs, true, probabilities, encoder)

    def _misclassified(self, inputs, true: np.ndarray, probabilities: np.ndarray, encoder) -> list:
        """The wrong answers the network was surest of: pictures (images) or a table of test rows."""
        from ..figures import charts

        predicted = probabilities.argmax(1)
        wrong = np.flatnonzero(predicted != true)
        if not len(wrong):
            return [Note("every test row is classified correctly")]
        wrong = wrong[np.argsort(-probabilities[wrong, predicted[wrong]], kind="stable")][:MISCLASSIFIED]
        names = [str(c) for c in self.classes]
        pictures = encoder.pictures(inputs[0][wrong.tolist()].cpu().numpy()) if encoder is not None else None
        title = f"misclassified test rows ({len(np.flatnonzero(predicted != true))} of {len(true)}; the surest first)"
        if pictures is not None:
            captions = [f"{names[true[i]]} → {names[predicted[i]]} ({probabilities[i, predicted[i]]:.2f})"
                        for i in wrong]
            return [Picture(title, charts.captioned_pictures(pictures, captions, title))]
        rows = [[int(i) + 1, names[true[i]], names[predicted[i]], float(probabilities[i, predicted[i]]),
                 float(probabilities[i, true[i]])] for i in wrong]
        return [Table(["test row", "true", "predicted", "its probability", "probability of the truth"], rows,
                      title)]

