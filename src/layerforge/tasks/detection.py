"""Detection: the boxes of the objects in a picture, each with its class and a score.

The network (``model.type: centernet``) gives, on a grid of cells, each class's heatmap of box
centres, the width and height of the box centred at each cell and where in the cell the centre
lies. It learns by CenterNet's loss (``centernet``): a focal loss of the heatmaps against a
Gaussian bump at each true centre (as wide as its box), and the L1 distance of the log width and
height, and of the centre's place, at each true centre. Boxes are read from the heatmaps' peaks
(``decodings.Boxes``) and scored by COCO's average precision.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..decodings import BOX_COLUMNS, Boxes
from ..errors import DataError, SpecError
from ..figures import Picture, Table
from ..metrics import detection_scores
from .base import Task, answer_outputs, input_arrays

SHOWN = 3  # pictures shown among the best and among the worst
SPREAD = 0.54 / 6  # a true centre's bump: its standard deviation per box side (TTFNet's alpha / 6)


def padded_boxes(boxes, classes: int, source: str | None = None) -> np.ndarray:
    """Each picture's boxes (k, 5: ``x_min, y_min, x_max, y_max, class``) in one array (N, most,
    5), the rows past a picture's boxes of class -1.

    Raises:
        DataError: a box that is not (x_min, y_min, x_max, y_max, class), is empty or inverted,
            or has a class the run does not know (by picture).
    """
    boxes = [np.asarray(b, np.float32).reshape(-1, 5) if b is not None else np.zeros((0, 5), np.float32)
             for b in boxes]
    most = max([len(b) for b in boxes] + [1])
    found = np.zeros((len(boxes), most, 5), np.float32)
    found[:, :, 4] = -1
    where = source or "the boxes"
    for row, picture in enumerate(boxes):
        if not len(picture):
            continue
        if not np.isfinite(picture).all():
            raise DataError(f"{where}: picture {row + 1} has a box whose corners are not numbers")
        empty = np.flatnonzero((picture[:, 2] <= picture[:, 0]) | (picture[:, 3] <= picture[:, 1]))
        if len(empty):
            raise DataError(f"{where}: picture {row + 1} has a box {picture[empty[0], :4].tolist()} whose x_max or "
                            "y_max is not beyond its x_min or y_min; boxes are x_min, y_min, x_max, y_max in pixels")
        wrong = np.flatnonzero((picture[:, 4] < 0) | (picture[:, 4] >= classes) | (picture[:, 4] % 1 != 0))
        if len(wrong):
            raise DataError(f"{where}: picture {row + 1} has a box of class {picture[wrong[0], 4]:g}; this run knows "
                            f"classes 0 to {classes - 1}")
        found[row, : len(picture)] = picture
    return found


def centernet_loss(outputs, y, size: list[int], classes: int, size_weight: float = 1.0, offset_weight: float = 1.0):
    """CenterNet's loss of the maps ``outputs`` (B, classes + 4, h, w) against the boxes ``y``
    (B, most, 5) of pictures of ``size`` (height, width): the heatmaps' focal loss (Lin et al.'s,
    as CenterNet weighs it: the negatives near a true centre count less) per true box, plus the
    L1 distance of the log width and height and of the centre's place at each true centre."""
    import torch
    import torch.nn.functional as F

    outputs = outputs.float()
    batch, _, cells_down, cells_across = outputs.shape
    stride = 2 ** round(float(np.log2(size[0] / cells_down)))
    y = y.to(outputs.device, torch.float32)
    real = y[..., 4] >= 0  # (B, most)
    x_min, y_min, x_max, y_max = y[..., 0], y[..., 1], y[..., 2], y[..., 3]
    centre_x, centre_y = (x_min + x_max) / (2 * stride), (y_min + y_max) / (2 * stride)
    column = centre_x.floor().clamp(0, cells_across - 1)
    row = centre_y.floor().clamp(0, cells_down - 1)
    across = ((x_max - x_min) / stride * SPREAD).clamp(min=0.3)
    down = ((y_max - y_min) / stride * SPREAD).clamp(min=0.3)
    xs = torch.arange(cells_across, device=outputs.device, dtype=torch.float32)
    ys = torch.arange(cells_down, device=outputs.device, dtype=torch.float32)
    bump = torch.exp(-((xs[None, None, None, :] - column[..., None, None]) ** 2 / (2 * across[..., None, None] ** 2)
                       + (ys[None, None, :, None] - row[..., None, None]) ** 2 / (2 * down[..., None, None] ** 2)))
    bump = bump * real[..., None, None]  # (B, most, h, w)
    owner = F.one_hot(y[..., 4].clamp(min=0).long(), classes).to(torch.float32) * real[..., None]  # (B, most, K)
    wanted = (bump[:, :, None] * owner[..., None, None]).amax(1) if y.shape[1] else \
        outputs.new_zeros(batch, classes, cells_down, cells_across)
    logits = outputs[:, :classes]
    centre = wanted == 1.0
    probability = torch.sigmoid(logits)
    positive = -(F.logsigmoid(logits) * (1 - probability) ** 2)[centre].sum()
    negative = -(F.logsigmoid(-logits) * probability ** 2 * (1 - wanted) ** 4)[~centre].sum()
    count = real.sum().clamp(min=1)
    loss = (positive + negative) / count
    if not real.any():
        return loss
    picture = torch.arange(batch, device=outputs.device)[:, None].expand_as(real)[real]
    at = outputs[picture, classes:, row[real].long(), column[real].long()]  # (boxes, 4)
    sides = torch.stack([x_max - x_min, y_max - y_min], -1)[real].clamp(min=1e-3).log()
    inner = torch.stack([centre_x - column, centre_y - row], -1)[real]
    loss = loss + size_weight * F.l1_loss(at[:, :2], sides) + offset_weight * F.l1_loss(torch.sigmoid(at[:, 2:]), inner)
    return loss


class DetectionTask(Task):
    """Find each object's box and class. Metrics: COCO's ``map`` (average precision over the
    IoU thresholds 0.50 to 0.95 and the classes), ``map_50`` and ``map_75``, over the held-out
    pictures."""

    name = "detection"
    default_loss = "centernet"
    trains_on = "boxes"
    target_form = "boxes"
    metrics = {"map": True, "map_50": True, "map_75": True}
    headline = "map"
    metric_bounds = {"map": (0.0, 1.0), "map_50": (0.0, 1.0), "map_75": (0.0, 1.0)}
    moved_targets = "boxes"
    explains = True  # the score of each picture's best box: its heatmap's peak (layerforge explain)
    example = {"data": {"dataset": "shapes_boxes", "split": {"val": 0.1, "test": 0.1}},
               "model": {"type": "centernet", "channels": [8, 16, 16], "head_channels": 8}}

    def __init__(self, classes: list[str], size: list[int], min_score: float = 0.3, overlap: float = 0.5):
        self.classes, self.size = list(classes), list(size)
        self.min_score, self.overlap = min_score, overlap

    @classmethod
    def spec_problems(cls, spec) -> list[str]:
        problems = super().spec_problems(spec)
        if spec.data.augment is not None and spec.data.augment.rotate:
            problems.append("data.augment.rotate: boxes do not turn with their pictures (a turned box is not the box "
                            "of the turned object); use flip, shift and zoom, or remove rotate")
        return problems

    @classmethod
    def of(cls, state) -> DetectionTask:
        return cls(state.classes, state.size, state.min_score, state.overlap)

    @classmethod
    def fit(cls, labels, train: np.ndarray, encoder, data_spec, source: str) -> DetectionTask:
        return cls.of(encoder.state)

    @classmethod
    def from_manifest(cls, manifest, encoder, run_dir: Path | None = None) -> DetectionTask:
        return cls.of(encoder.state)

    @property
    def output_size(self) -> int:
        return len(self.classes) + 4

    def encode_targets(self, labels, source: str | None = None) -> np.ndarray:
        """Each picture's boxes, padded to one array (``padded_boxes``)."""
        return padded_boxes(labels, len(self.classes), source)

    def target_tensor(self, y: np.ndarray):
        import torch

        return torch.as_tensor(y, dtype=torch.float32)

    def own_loss(self, loss_spec):
        """CenterNet's loss (``centernet_loss``) for pictures of the run's size."""
        if loss_spec is not None and loss_spec.name != self.default_loss:
            raise SpecError(f"train.loss: a detection run learns by CenterNet's loss (centernet), not "
                            f"{loss_spec.name}; remove train.loss")
        return lambda outputs, y: centernet_loss(outputs, y, self.size, len(self.classes))

    @staticmethod
    def truths(y) -> list[np.ndarray]:
        """Each picture's true boxes (k, 5) from the padded targets."""
        y = np.asarray(y.cpu() if hasattr(y, "cpu") else y)
        return [boxes[boxes[:, 4] >= 0] for boxes in y]

    def scores(self, outputs, y) -> dict[str, float]:
        outputs = outputs.float().cpu().numpy() if hasattr(outputs, "cpu") else np.asarray(outputs)
        found = self.decoding().detections(outputs, Boxes.SCORED)
        scores = detection_scores(found, self.truths(y), len(self.classes))
        return {name: scores[name] for name in self.metrics}

    def decoding(self) -> Boxes:
        return Boxes(self.classes, self.size, self.min_score, self.overlap)

    def predictions(self, model, inputs: tuple) -> np.ndarray:
        return self.decoding().predictions(answer_outputs(model, inputs), inputs)

    def explained(self, model):
        """The heatmaps' logits of every class and cell, one row of numbers per picture: what a
        box's score is read from."""
        from ..models.detector import Heatmaps

        return Heatmaps(model, len(self.classes))

    def explained_parts(self, model, inputs: tuple, target=None):
        """Per picture, its best box's peak (the index of its class and cell among
        ``explained``'s outputs) and the box in words; ``target``: the best box of that class.

        Raises:
            DataError: a class the run does not know, or a picture without a box of it.
        """
        import torch

        if target is not None and str(target) not in self.classes:
            raise DataError(f"--target: {target} is not a class of this run ({', '.join(self.classes)})")
        outputs = answer_outputs(model, inputs)
        decoding = self.decoding()
        found = decoding.detections(outputs, 0.0)
        cells_down, cells_across = outputs.shape[2:]
        stride = self.size[0] / cells_down
        chosen, said = [], []
        for row, boxes in enumerate(found):
            if target is not None:
                boxes = boxes[boxes[:, 4] == self.classes.index(str(target))]
            if not len(boxes):
                raise DataError(f"--target: picture {row + 1} has no {target} box to explain")
            box = boxes[0]
            heat = outputs[row, int(box[4])]
            centre = ((box[1] + box[3]) / 2 / stride, (box[0] + box[2]) / 2 / stride)
            near = np.add.outer((np.arange(cells_down) - centre[0]) ** 2, (np.arange(cells_across) - centre[1]) ** 2)
            cell = int(np.argmax(np.where(near <= 2.0, heat, -np.inf)))  # the peak the box was read at
            chosen.append(int(box[4]) * cells_down * cells_across + cell)
            said.append(f"{self.classes[int(box[4])]} at ({box[0]:.0f}, {box[1]:.0f}, {box[2]:.0f}, {box[3]:.0f}) "
                        f"score {box[5]:.2f}")
        return torch.as_tensor(chosen), said

    def report_blocks(self, model, held_out, *, encoder, pictures, target):
        """Each class's AP on the held-out pictures, and the pictures detected best and worst."""
        found = held_out()
        if found is None:
            return []
        inputs, y = found
        decoding, truths = self.decoding(), self.truths(y)
        outputs = answer_outputs(model, inputs)
        scored = decoding.detections(outputs, Boxes.SCORED)
        scores = detection_scores(scored, truths, len(self.classes))
        answered = decoding.detections(outputs)
        rows = [[name, _rounded(scores.get(f"ap_{k}")), _rounded(scores.get(f"ap50_{k}")),
                 int(sum((t[:, 4] == k).sum() for t in truths)), int(sum((a[:, 4] == k).sum() for a in answered))]
                for k, name in enumerate(self.classes)]
        blocks = [Table(["class", "AP", "AP@0.5", "true boxes", f"boxes answered (score ≥ {self.min_score:g})"], rows,
                        "each class's average precision (COCO's: AP over the IoU thresholds 0.50 to 0.95)")]
        each = np.array([detection_scores([s], [t], len(self.classes))["map_50"] if len(t) else float(not len(a))
                         for s, t, a in zip(scored, truths, answered)])
        order = np.argsort(each, kind="stable")
        chosen = np.concatenate([order[::-1][:SHOWN], order[:SHOWN]]) if len(order) > SHOWN else order
        from ..figures.charts import box_overlays

        shown = encoder.pictures(input_arrays(inputs[:1])[0][chosen])
        captions = [f"{'best' if i < SHOWN else 'worst'} · AP@0.5 {each[row]:.2f}" for i, row in enumerate(chosen)]
        blocks.append(Picture("the held-out pictures detected best and worst: true boxes dashed, the boxes answered "
                              "solid with their scores",
                              box_overlays(shown, [truths[r] for r in chosen], [answered[r] for r in chosen], captions,
                                           self.classes, "best and worst held-out pictures")))
        return blocks


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


__all__ = ["BOX_COLUMNS", "DetectionTask", "centernet_loss", "padded_boxes"]
