"""Segmentation: a class for every pixel of a picture.

The network (``model.type: unet``) gives each pixel's class scores; it learns by the sum of the
pixels' cross-entropy and the soft Dice loss (``dice_ce``; or ``cross_entropy`` or ``dice``),
and is scored by the mean intersection over union of the classes, the Dice coefficient of the
classes other than the background, and the share of pixels classed right.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..decodings import Masks
from ..errors import DataError
from ..figures import Picture, Table
from ..metrics import segmentation_scores
from .base import Task, answer_outputs, input_arrays

SHOWN = 3  # pictures shown among the best and among the worst


class SegmentationTask(Task):
    """Class each pixel. Metrics: ``mean_iou`` (intersection over union, averaged over the
    classes), ``dice`` (over the classes but the background) and ``pixel_accuracy``, over all
    the held-out pixels."""

    name = "segmentation"
    default_loss = "dice_ce"
    trains_on = "masks"
    target_form = "pixels"
    metrics = {"mean_iou": True, "dice": True, "pixel_accuracy": True}
    headline = "mean_iou"
    moved_targets = "masks"
    attacks = True  # the mean IoU of perturbed pictures (layerforge attack)
    metric_bounds = {"mean_iou": (0.0, 1.0), "dice": (0.0, 1.0), "pixel_accuracy": (0.0, 1.0)}
    example = {"data": {"dataset": "shapes", "split": {"val": 0.1, "test": 0.1}},
               "model": {"type": "unet", "channels": [8, 16]}}

    def __init__(self, classes: list[str]):
        self.classes = list(classes)

    @classmethod
    def fit(cls, labels, train: np.ndarray, encoder, data_spec, source: str) -> SegmentationTask:
        return cls(encoder.state.classes)

    @classmethod
    def from_manifest(cls, manifest, encoder, run_dir: Path | None = None) -> SegmentationTask:
        return cls(encoder.state.classes)

    @property
    def output_size(self) -> int:
        return len(self.classes)

    def encode_targets(self, labels, source: str | None = None) -> np.ndarray:
        """Each pixel's class index (N, H, W), checked to be a class the run knows."""
        masks = np.asarray(labels)
        if masks.ndim != 3:
            raise DataError(f"{source or 'the masks'}: expected masks of (rows, height, width), got {masks.shape}")
        wrong = np.flatnonzero(masks.reshape(len(masks), -1).max(axis=1, initial=0) >= len(self.classes))
        if len(wrong):
            raise DataError(f"{source or 'the masks'}: the mask of row {wrong[0] + 1} holds class "
                            f"{int(masks[wrong[0]].max())}; this run knows classes 0 to {len(self.classes) - 1}")
        return masks.astype(np.int64)

    def scores(self, outputs, y) -> dict[str, float]:
        answered = outputs.argmax(1).cpu().numpy() if hasattr(outputs, "cpu") else np.asarray(outputs).argmax(1)
        true = y.cpu().numpy() if hasattr(y, "cpu") else np.asarray(y)
        found = segmentation_scores(answered, true, len(self.classes))
        return {name: found[name] for name in self.metrics}

    def decoding(self) -> Masks:
        return Masks(self.classes)

    def predictions(self, model, inputs: tuple) -> np.ndarray:
        return self.decoding().predictions(answer_outputs(model, inputs), inputs)

    def report_blocks(self, model, held_out, *, encoder, pictures, target):
        """Each class's IoU on the held-out pixels, and the pictures segmented best and worst."""
        found = held_out()
        if found is None:
            return []
        inputs, y = found
        answered = self.decoding().pictures(answer_outputs(model, inputs))
        true = np.asarray(y.cpu() if hasattr(y, "cpu") else y)
        scores = segmentation_scores(answered, true, len(self.classes))
        rows = [[name, round(scores[f"iou_{k}"], 4) if f"iou_{k}" in scores else None,
                 int((true == k).sum()), int((answered == k).sum())] for k, name in enumerate(self.classes)]
        blocks = [Table(["class", "IoU", "true pixels", "answered pixels"], rows,
                        "each class's intersection over union")]
        each = np.array([segmentation_scores(a, t, len(self.classes))["mean_iou"] for a, t in zip(answered, true)])
        order = np.argsort(each, kind="stable")
        chosen = np.concatenate([order[::-1][:SHOWN], order[:SHOWN]]) if len(order) > SHOWN else order
        from ..figures.charts import mask_overlays

        shown = encoder.pictures(input_arrays(inputs[:1])[0][chosen])
        captions = [f"{'best' if i < SHOWN else 'worst'} · IoU {each[row]:.2f}" for i, row in enumerate(chosen)]
        blocks.append(Picture("the held-out pictures segmented best and worst: the picture, its true mask and the "
                              "answered one", mask_overlays(shown, true[chosen], answered[chosen], captions,
                                                            self.classes, "best and worst held-out pictures")))
        return blocks
