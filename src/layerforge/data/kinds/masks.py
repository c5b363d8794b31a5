"""Pictures with a class for every pixel (segmentation): a folder of scenes (``images/`` and
``masks/`` whose files share their names; masks are PNGs of class indices, the class names in a
``classes.json`` list beside them, else the indices), a table of picture and mask files
(``data.source``, default ``image``, and ``data.target``, default ``mask``, relative to the
table's folder, the class names in a ``classes.json`` beside it), or the built-in ``shapes``
scenes and ``coins`` crops of a photograph. The
pictures are scaled per channel as images are; the masks are the labels, resized with them by the
nearest pixel.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal

import numpy as np

from ...codecs.masks import TABLE_FILES, is_scene_folder, scene_files, table_files
from ...codecs.pictures import read_image, read_mask
from ...errors import DataError
from .. import builtin
from ..arrays import channel_scaling
from .base import Kind, Source
from .image import ImageEncoder, ImageState


class MasksState(ImageState):
    """The image scaling and size, and the name of each class a mask's pixel may hold."""

    kind: Literal["masks"] = "masks"
    classes: list[str]
    column: str = "image"  # a table's column of pictures


class MasksEncoder(ImageEncoder):
    state: MasksState

    def encode(self, source: Source, parts: dict[str, np.ndarray]):
        return {name: ((self.scale(source.payload[rows], own=True),), source.labels[rows])
                for name, rows in parts.items()}

    def missing_labels(self) -> str:
        return (f"evaluation data needs masks: a folder holding images/ and masks/ (PNGs of the same names), or a "
                f"table with a '{self.target}' column of mask files beside '{self.state.column}'")


def _classes(root: Path, masks: np.ndarray) -> list[str]:
    """The classes' names: ``classes.json`` (a list, index -> name) where it is there, else the
    indices the masks hold."""
    path = root / "classes.json"
    if not path.is_file():
        return [str(i) for i in range(int(masks.max()) + 1)]
    try:
        names = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: not a JSON list of class names ({error})") from None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names) or len(set(names)) != len(names):
        raise DataError(f"{path}: expected a JSON list of distinct class names, index -> name")
    if masks.max() >= len(names):
        raise DataError(f"{root}: a mask holds class {int(masks.max())}, but {path.name} names {len(names)} classes")
    return names


class MasksKind(Kind):
    name = "masks"
    reads = "image"
    targets = "masks"
    state = MasksState

    def load(self, data_spec, *, target_required: bool = True) -> Source:
        """The built-in scenes, or a folder holding ``images/`` and ``masks/``."""
        fixed, column, target = {}, data_spec.source or "image", "mask"
        if data_spec.dataset:
            x, masks, classes, test = builtin.load_scenes(data_spec.dataset)
            label = data_spec.dataset
            if test is not None:
                fixed["test"] = test
        else:
            root = Path(data_spec.path)
            if root.suffix.lower() in TABLE_FILES:  # a table of pictures and masks
                if isinstance(data_spec.target, list):
                    raise DataError("data.target: a picture has one mask column")
                column, target = data_spec.source or "image", data_spec.target or "mask"
                pictures, files = table_files(root, column, target)
                if files is None:
                    raise DataError(f"data.target: {root} has no column '{target}'; name the column of each "
                                    "picture's mask")
                root = root.parent
            elif not is_scene_folder(root):
                raise DataError(f"data.path: {root} holds no images/ folder; pictures to segment are read from a "
                                "folder holding images/ and masks/ (PNGs of class indices of the same names), or a "
                                "table of picture and mask files")
            else:
                pictures, files = scene_files(root)
            if files is None:
                raise DataError(f"{root}: holds no masks/ folder; training needs each picture's mask")
            size = tuple(data_spec.image_size) if data_spec.image_size else None
            channels = data_spec.channels or 3
            x = [read_image(p, size, channels) for p in pictures]
            if len({picture.shape for picture in x}) > 1:
                raise DataError(f"{root / 'images'}: pictures have different sizes; set data.image_size: [H, W]")
            x = np.stack(x)
            masks = np.stack([read_mask(m, tuple(x.shape[2:])) for m in files])
            classes, label = _classes(root, masks), data_spec.path
        digest = hashlib.sha256(np.ascontiguousarray(x).reshape(-1).view(np.uint8))
        digest.update(np.ascontiguousarray(masks).tobytes())
        return Source(label, len(x), x, digest.hexdigest(), target, masks, fixed=fixed,
                      facts={"classes": classes, "column": column})

    def fit(self, source: Source, train: np.ndarray, data_spec) -> MasksEncoder:
        x = source.payload
        mean, std = channel_scaling(x, train, "the training images")
        state = MasksState(mean=mean.tolist(), std=std.tolist(), size=list(x.shape[2:]), channels=int(x.shape[1]),
                           classes=list(source.facts["classes"]), column=source.facts["column"])
        return MasksEncoder(state, source.target)

    def encoder(self, state: MasksState, target: str | None) -> MasksEncoder:
        return MasksEncoder(state, target)
