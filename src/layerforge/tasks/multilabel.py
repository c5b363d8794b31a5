"""Multi-label classification: one logit per label (N, L) against sets of labels (N, L) of 0/1."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..codecs.columns import set_separator, set_values
from ..data.labels import row_label, row_of
from ..decodings import Labels
from ..errors import DataError
from ..figures import Note, Table, number_text
from ..metrics import best_thresholds, multilabel_scores
from .base import Finished, Task, answer_outputs

__all__ = ["MultiLabelTask"]


class MultiLabelTask(Task):
    """Give each row any number of ``classes`` (labels), from a target column of sets (``a|b``,
    or lists). Each label has its own sigmoid output and threshold: 0.5 while training, then the
    threshold that maximises that label's F1 on the validation rows.

    Metrics: ``f1_micro`` (the headline), ``f1_macro``, ``jaccard``, ``hamming_loss`` and
    ``exact_match``; the test rows are scored with the tuned thresholds.
    """

    name = "multilabel"
    default_loss = "bce"
    target_form = "labels"
    manifest_fields = ("classes",)
    metrics = {"f1_micro": True, "f1_macro": True, "jaccard": True, "hamming_loss": False, "exact_match": True}
    metric_bounds = {name: (0.0, 1.0) for name in metrics} | {"loss": (0.0, None)}
    headline = "f1_micro"
    example = {"data": {"dataset": "movies"}, "model": {"type": "mlp", "layers": [16]}}

    def __init__(self, classes: list, thresholds: list[float] | None = None, separator: str = "|"):
        self.classes = [str(c) for c in classes]
        self.thresholds = thresholds
        self.separator = separator

    @classmethod
    def fit(cls, labels, train: np.ndarray, encoder, data_spec, source: str) -> MultiLabelTask:
        if labels is None:
            raise DataError(f"{source}: multi-label classification needs a target column of label sets (data.target)")
        cells = labels.tolist()
        separator = set_separator(cells)
        found = sorted({value for cell in cells for value in set_values(cell, separator)})
        if len(found) < 2:
            raise DataError(f"target column '{labels.name}' holds {len(found)} label(s); multi-label classification "
                            f"needs at least 2 (cells such as 'a{separator}b')")
        return cls(found, None, separator)

    @classmethod
    def from_manifest(cls, manifest, encoder, run_dir: Path | None = None) -> MultiLabelTask:
        labels = manifest.labels
        return cls(manifest.classes, labels.thresholds if labels else None, labels.separator if labels else "|")

    @classmethod
    def from_targets(cls, y: np.ndarray) -> MultiLabelTask:
        return cls([str(i) for i in range(np.asarray(y).shape[1])])

    def record(self) -> dict:
        return {**super().record(), "labels": {"thresholds": self.thresholds, "separator": self.separator}}

    @property
    def output_size(self) -> int:
        return len(self.classes)

    def encode_targets(self, labels, source: str | None = None) -> np.ndarray:
        """(rows, labels) of 0/1; a label the run does not know is refused, naming its row."""
        index = {name: i for i, name in enumerate(self.classes)}
        out = np.zeros((len(labels), len(self.classes)), dtype=np.float32)
        for row, cell in enumerate(labels.tolist()):
            for value in set_values(cell, self.separator):
                if value not in index:
                    raise DataError(f"target column '{labels.name}': label {value!r} in "
                                    f"{row_label(row_of(labels, row), source)} is not one of the run's labels "
                                    f"({', '.join(self.classes[:20])})")
                out[row, index[value]] = 1.0
        return out

    def target_tensor(self, y: np.ndarray):
        import torch

        return torch.as_tensor(y, dtype=torch.get_default_dtype())

    def decoding(self) -> Labels:
        return Labels(self.classes, self.thresholds, self.separator)

    def scores(self, outputs, y) -> dict[str, float]:
        chosen = self.decoding().chosen(outputs.float().cpu().numpy())
        return multilabel_scores(y.cpu().numpy(), chosen)

    def probabilities(self, model, inputs: tuple) -> np.ndarray:
        """Each label's probability (rows, labels), columns in the order of ``classes``."""
        return self.decoding().probabilities(answer_outputs(model, inputs))

    def predictions(self, model, inputs: tuple) -> np.ndarray:
        return self.decoding().predictions(answer_outputs(model, inputs), inputs)

    def finish(self, model, tensors: dict, *, encoder, images: Path, history: list[dict]) -> Finished:
        """Each label's threshold tuned on the validation rows (kept at 0.5 without them), and the
        test rows scored with them."""
        if "val" not in tensors:
            return Finished(record=self.record())
        inputs, y = tensors["val"]
        self.thresholds = best_thresholds(y.cpu().numpy(), self.decoding().probabilities(answer_outputs(model, inputs)))
        test = {}
        if "test" in tensors:
            inputs, y = tensors["test"]
            test = self.scores(self.outputs_for(model, inputs, y), y)
        return Finished(test=test, record=self.record())

    def report_blocks(self, model, held_out, *, encoder, pictures, target):
        rows = held_out()
        if rows is None:
            return [Note("no held-out rows")]
        inputs, y = rows
        true = y.cpu().numpy().astype(bool)
        chosen = self.decoding().chosen(answer_outputs(model, inputs))
        table = []
        for i, name in enumerate(self.classes):
            hit = (true[:, i] & chosen[:, i]).sum()
            precision = hit / chosen[:, i].sum() if chosen[:, i].sum() else float("nan")
            recall = hit / true[:, i].sum() if true[:, i].sum() else float("nan")
            f1 = 2 * hit / (true[:, i].sum() + chosen[:, i].sum()) if true[:, i].sum() + chosen[:, i].sum() else 1.0
            threshold = self.thresholds[i] if self.thresholds else 0.5
            table.append([name, int(true[:, i].sum()), number_text(threshold), number_text(precision),
                          number_text(recall), number_text(f1)])
        return [Table(["label", "rows with it", "threshold", "precision", "recall", "F1"], table,
                      "each label on the held-out rows")]

