"""Pictures to find objects in: the image codec's reading of pictures (not resized: a box is in
the pixels of its picture), and the two forms boxes come in: a table with a row per box
(``image, x_min, y_min, x_max, y_max, label``, in pixels; a picture with no box has a row with
the box's cells empty) and a COCO JSON file (``images``, ``annotations`` whose ``bbox`` is
``[x, y, width, height]``, ``categories``). The boxes are the labels evaluation scores against.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import DataError
from .arrays import ImageCodec
from .masks import TABLE_FILES
from .pictures import read_image
from .tables import columns_of, named_files

BOX_FIELDS = ("x_min", "y_min", "x_max", "y_max")


def is_box_file(path) -> bool:
    """Whether ``path`` names a table or a COCO JSON file (rather than pictures)."""
    return isinstance(path, (str, Path)) and Path(path).suffix.lower() in (*TABLE_FILES, ".json")


def _number(cell, where: str, name: str) -> float:
    try:
        value = float(cell)
    except (TypeError, ValueError):
        raise DataError(f"{where}: column {name} holds {cell!r}, not a number of pixels") from None
    if not np.isfinite(value):
        raise DataError(f"{where}: column {name} holds {cell!r}, not a number of pixels")
    return value


def _empty(cell) -> bool:
    return cell is None or (isinstance(cell, float) and np.isnan(cell)) or (isinstance(cell, str) and not cell.strip())


def table_boxes(path, column: str, label: str, classes: list[str] | None = None):
    """The pictures a table of boxes names (each once, in the order first named) and, where the
    table has the box columns and ``label``, each picture's boxes (k, 5: the corners and the
    class's index in ``classes``, which are the labels' sorted names when not given).

    Raises:
        DataError: a missing column, a cell that is not a number, or a label the run does not
            know (by row).
    """
    columns = columns_of(path, [column])
    if column not in columns.values:
        raise DataError(f"missing column{columns.where.file}: {column} (the picture of each box)")
    files = named_files(columns, column, Path(path).parent, "picture file")
    pictures = list(dict.fromkeys(files))
    needed = [*BOX_FIELDS, label]
    if not all(name in columns.values for name in needed):
        missing = [name for name in needed if name not in columns.values]
        if len(missing) < len(needed):
            raise DataError(f"missing column{columns.where.file}: {', '.join(missing)} (each box is x_min, y_min, "
                            f"x_max, y_max in pixels and its {label})")
        return pictures, None, classes
    cells = columns.values[label]
    names = [str(c).strip() for c in cells if not _empty(c)]
    known = list(classes) if classes is not None else sorted(set(names))
    index = {name: k for k, name in enumerate(known)}
    found: dict[Path, list] = {picture: [] for picture in pictures}
    for row, file in enumerate(files):
        box = [columns.values[name][row] for name in BOX_FIELDS]
        if all(_empty(c) for c in (*box, cells[row])):
            continue  # a picture without boxes
        where = columns.where(row)
        corners = [_number(c, where, name) for c, name in zip(box, BOX_FIELDS)]
        if _empty(cells[row]):
            raise DataError(f"{where}: column {label} is empty; give each box its class")
        name = str(cells[row]).strip()
        if name not in index:
            raise DataError(f"{where}: {label} '{name}' is not a class this run knows ({', '.join(known)})")
        if corners[2] <= corners[0] or corners[3] <= corners[1]:
            raise DataError(f"{where}: the box {corners} has x_max or y_max not beyond x_min or y_min; boxes are "
                            "x_min, y_min, x_max, y_max in pixels")
        found[file].append([*corners, index[name]])
    return pictures, [np.array(found[p], np.float32).reshape(-1, 5) for p in pictures], known


def coco_boxes(path, classes: list[str] | None = None):
    """The pictures and boxes of a COCO JSON file: each of its ``images`` (``file_name``
    relative to the file's folder, or to an ``images`` folder beside it) with the boxes of its
    ``annotations`` (crowd regions left out), and the classes (``categories`` by id; given
    ``classes``, their names must be among them).

    Raises:
        DataError: not COCO JSON, a picture not found, or a category the run does not know.
    """
    path = Path(path)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: not a COCO JSON file ({error})") from None
    if not isinstance(record, dict) or not isinstance(record.get("images"), list):
        raise DataError(f"{path}: a COCO file holds an 'images' list (and 'annotations' and 'categories')")
    try:
        categories = {int(c["id"]): str(c["name"]) for c in record.get("categories", [])}
        images = [(int(image["id"]), str(image["file_name"])) for image in record["images"]]
        notes = [(int(a["image_id"]), int(a["category_id"]), [float(v) for v in a["bbox"]], bool(a.get("iscrowd", 0)))
                 for a in record.get("annotations", [])]
    except (KeyError, TypeError, ValueError) as error:
        raise DataError(f"{path}: an entry lacks a field COCO gives it ({error}): images need id and file_name, "
                        "annotations image_id, category_id and bbox, categories id and name") from None
    known = list(classes) if classes is not None else [categories[k] for k in sorted(categories)]
    index = {name: k for k, name in enumerate(known)}
    pictures, where = [], {}
    for position, (number, name) in enumerate(images):
        file = next((f for f in (path.parent / name, path.parent / "images" / name) if f.is_file()), None)
        if file is None:
            raise DataError(f"{path}: picture '{name}' (image {number}) not found beside the file or in images/")
        pictures.append(file)
        where[number] = position
    found = [[] for _ in pictures]
    for image, category, (x, y, width, height), crowd in notes:
        if crowd:
            continue
        if image not in where:
            raise DataError(f"{path}: an annotation is of image {image}, which 'images' does not hold")
        name = categories.get(category)
        if name is None or name not in index:
            raise DataError(f"{path}: category {category} ({name or 'not in categories'}) is not a class this run "
                            f"knows ({', '.join(known)})")
        if width <= 0 or height <= 0:
            raise DataError(f"{path}: an annotation of image {image} has a bbox of width {width:g} and height "
                            f"{height:g}; COCO boxes are [x, y, width, height]")
        found[where[image]].append([x, y, x + width, y + height, index[name]])
    return pictures, [np.array(b, np.float32).reshape(-1, 5) for b in found], known


def box_files(path, column: str, label: str, classes: list[str] | None = None):
    """``table_boxes`` or ``coco_boxes``, by the file's type."""
    if Path(path).suffix.lower() == ".json":
        return coco_boxes(path, classes)
    return table_boxes(path, column, label, classes)


def read_pictures(files: list[Path], channels: int, size: tuple[int, int] | None = None) -> list[np.ndarray]:
    """The pictures of ``files`` (C, H, W) in [0, 1], resized to ``size`` where given."""
    return [read_image(file, size, channels) for file in files]


class BoxesCodec(ImageCodec):
    """Encodes pictures to find objects in as the image codec does (arrays, base64 PNG/JPEG text,
    an image file, a folder of images) but without resizing them, since the boxes answered are in
    their pixels; a table of boxes or a COCO JSON file gives the pictures it names, and their
    boxes as labels.

    Args:
        state: the fitted state (the image codec's, ``classes`` and ``column``).
    """

    kind = "boxes"
    resizes = False

    def __init__(self, state: dict):
        super().__init__(state)
        self.classes, self.column = list(state["classes"]), state.get("column", "image")

    def row_names(self, rows) -> list[str] | None:
        if is_box_file(rows):
            folder = Path(rows).parent
            return [p.relative_to(folder).as_posix() if p.is_relative_to(folder) else str(p)
                    for p in box_files(rows, self.column, "label", self.classes)[0]]
        return ImageCodec.row_names(rows)

    def encode(self, rows, *, unknown: str | None = None, ignore_extra: bool = False,
               target: str | None = None) -> tuple[tuple[np.ndarray], list | None]:
        if not is_box_file(rows):
            return super().encode(rows)[0], None
        pictures, boxes, _ = box_files(rows, self.column, target or "label", self.classes)
        x = read_pictures(pictures, self.channels)
        wrong = next((i for i, picture in enumerate(x) if picture.shape[1:] != self.size), None)
        if wrong is not None:
            raise DataError(f"{pictures[wrong]}: {x[wrong].shape[1]}x{x[wrong].shape[2]} pixels; this run finds boxes "
                            f"in pictures of {self.size[0]}x{self.size[1]}, and answers them in their pixels")
        return super().encode(np.stack(x) if x else np.zeros((0, self.channels, *self.size), np.float32))[0], boxes
