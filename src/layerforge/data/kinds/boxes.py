"""Pictures with the boxes of the objects in them (detection): a table with a row per box
(``image, x_min, y_min, x_max, y_max, label`` in pixels; ``data.source`` names the picture
column, default ``image``, and ``data.target`` the class column, default ``label``; paths
relative to the table's folder), a COCO JSON file, or the built-in ``shapes_boxes`` scenes and
``coins_boxes`` crops of a photograph. Pictures keep their size (``data.image_size`` resizes
them, and their boxes with them); they are scaled per channel as images are.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Literal

import numpy as np

from ...codecs.boxes import box_files, read_pictures
from ...errors import DataError
from .. import builtin
from ..arrays import channel_scaling
from .base import Kind, Source
from .image import ImageEncoder, ImageState


class BoxesState(ImageState):
    """The image scaling and size, the classes' names, and how boxes are answered
    (``data.decoding.min_score`` and ``overlap``)."""

    kind: Literal["boxes"] = "boxes"
    classes: list[str]
    column: str = "image"  # a table's column of pictures
    min_score: float = 0.3
    overlap: float = 0.5


class BoxesEncoder(ImageEncoder):
    state: BoxesState

    def encode(self, source: Source, parts: dict[str, np.ndarray]):
        return {name: ((self.scale(source.payload[rows], own=True),), source.labels[rows])
                for name, rows in parts.items()}

    def missing_labels(self) -> str:
        return (f"evaluation data needs boxes: a table with a row per box ({self.state.column}, x_min, y_min, x_max, "
                f"y_max, {self.target or 'label'}) or a COCO JSON file")


def _resized(files: list[Path], boxes: list[np.ndarray], size: tuple[int, int] | None, channels: int):
    """The pictures at one size (``size``, else the one they all have) and their boxes scaled
    with them."""
    pictures = read_pictures(files, channels)
    if size is None:
        sizes = sorted({p.shape[1:] for p in pictures})
        if len(sizes) > 1:
            raise DataError(f"{files[0].parent}: pictures have different sizes "
                            f"({', '.join(f'{h}x{w}' for h, w in sizes[:3])}); set data.image_size: [H, W] to resize "
                            "them (their boxes are scaled with them)")
        return np.stack(pictures), boxes
    scaled = [found * np.array([size[1] / p.shape[2], size[0] / p.shape[1]] * 2 + [1.0], np.float32)
              for p, found in zip(pictures, boxes)]
    return np.stack(read_pictures(files, channels, size)), scaled


class BoxesKind(Kind):
    name = "boxes"
    reads = "image"
    targets = "boxes"
    state = BoxesState

    def load(self, data_spec, *, target_required: bool = True) -> Source:
        """The built-in scenes, a table of boxes or a COCO JSON file."""
        fixed, column, target = {}, data_spec.source or "image", "label"
        if data_spec.dataset:
            x, boxes, classes, test = builtin.load_boxes(data_spec.dataset)
            label = data_spec.dataset
            if test is not None:
                fixed["test"] = test
        else:
            if isinstance(data_spec.target, list):
                raise DataError("data.target: a box has one class column")
            target = data_spec.target or "label"
            files, boxes, classes = box_files(data_spec.path, column, target)
            if boxes is None:
                raise DataError(f"{data_spec.path}: has no boxes; training needs a row per box with x_min, y_min, "
                                f"x_max, y_max and {target}")
            if not classes:
                raise DataError(f"{data_spec.path}: holds no box; training needs some")
            channels = data_spec.channels or 3
            x, boxes = _resized(files, boxes, tuple(data_spec.image_size) if data_spec.image_size else None, channels)
            label = data_spec.path
        labels = np.empty(len(boxes), dtype=object)
        labels[:] = boxes
        digest = hashlib.sha256(np.ascontiguousarray(x).reshape(-1).view(np.uint8))
        for found in boxes:
            digest.update(np.ascontiguousarray(found).tobytes())
        return Source(label, len(x), x, digest.hexdigest(), target, labels, fixed=fixed,
                      facts={"classes": classes, "column": column})

    def fit(self, source: Source, train: np.ndarray, data_spec) -> BoxesEncoder:
        x = source.payload
        mean, std = channel_scaling(x, train, "the training images")
        state = BoxesState(mean=mean.tolist(), std=std.tolist(), size=list(x.shape[2:]), channels=int(x.shape[1]),
                           classes=list(source.facts["classes"]), column=source.facts["column"],
                           min_score=data_spec.decoding.min_score, overlap=data_spec.decoding.overlap)
        return BoxesEncoder(state, source.target)

    def encoder(self, state: BoxesState, target: str | None) -> BoxesEncoder:
        return BoxesEncoder(state, target)
