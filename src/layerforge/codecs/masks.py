"""Pictures to segment: the image codec's reading of pictures, and a folder of scenes (an
``images`` folder and a ``masks`` folder whose files share their names) whose masks are the
labels that evaluation scores against."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from ..errors import DataError, OutputError
from .arrays import IMAGE_FILES, ImageCodec
from .pictures import read_image, read_mask, write_mask
from .tables import columns_of, named_files


def scene_files(root: Path) -> tuple[list[Path], list[Path] | None]:
    """The pictures of ``root/images`` and, where ``root/masks`` is there, the mask of each (the
    PNG of the same name).

    Raises:
        DataError: no pictures, or a picture without its mask (named).
    """
    pictures = sorted(p for p in (root / "images").iterdir() if p.suffix.lower() in IMAGE_FILES)
    if not pictures:
        raise DataError(f"{root / 'images'}: holds no {', '.join(IMAGE_FILES)} files")
    if not (root / "masks").is_dir():
        return pictures, None
    masks = [root / "masks" / f"{p.stem}.png" for p in pictures]
    missing = next((m for m in masks if not m.is_file()), None)
    if missing is not None:
        raise DataError(f"{missing}: not found; every picture in images/ needs its mask in masks/ (a PNG of the same "
                        "name)")
    return pictures, masks


def is_scene_folder(path) -> bool:
    """Whether ``path`` is a folder of scenes (it holds an ``images`` folder)."""
    return isinstance(path, (str, Path)) and (Path(path) / "images").is_dir()


TABLE_FILES = (".csv", ".tsv", ".parquet", ".pq")


def table_files(path, image: str, mask: str | None) -> tuple[list[Path], list[Path] | None]:
    """The pictures a table names in its ``image`` column and, where it has the ``mask`` column,
    their masks (paths relative to the table's folder).

    Raises:
        DataError: a missing column, an empty cell or a file that is not there (by row).
    """
    columns = columns_of(path, [image])
    if image not in columns.values:
        raise DataError(f"missing column{columns.where.file}: {image} (the picture of each row)")
    folder = Path(path).parent
    masks = named_files(columns, mask, folder, "mask file") if mask in columns.values else None
    return named_files(columns, image, folder, "picture file"), masks


class MasksCodec(ImageCodec):
    """Encodes pictures to segment as the image codec does (arrays, base64 PNG/JPEG text, an
    image file, a folder of images), a folder of scenes, or a table whose ``column`` names each
    picture's file (and, for evaluation, whose target column names its mask); the masks (resized
    by the nearest pixel to the run's size) are the labels.

    Args:
        state: the fitted state (the image codec's, ``classes`` and ``column``).
    """

    kind = "masks"

    def __init__(self, state: dict):
        super().__init__(state)
        self.classes, self.column = list(state["classes"]), state.get("column", "image")

    def row_names(self, rows) -> list[str] | None:
        if is_scene_folder(rows):
            return [p.name for p in scene_files(Path(rows))[0]]
        if isinstance(rows, (str, Path)) and Path(rows).suffix.lower() in TABLE_FILES:
            return [p.name for p in table_files(rows, self.column, None)[0]]
        return ImageCodec.row_names(rows)

    def encode(self, rows, *, unknown: str | None = None, ignore_extra: bool = False,
               target: str | None = None) -> tuple[tuple[np.ndarray], np.ndarray | None]:
        if isinstance(rows, (str, Path)) and Path(rows).suffix.lower() in TABLE_FILES:
            pictures, masks = table_files(rows, self.column, target)
        elif is_scene_folder(rows):
            pictures, masks = scene_files(Path(rows))
        else:
            return super().encode(rows)[0], None
        x = np.stack([read_image(p, self.size, self.channels) for p in pictures])
        labels = None
        if masks is not None:
            labels = np.stack([read_mask(m, self.size) for m in masks])
            wrong = np.flatnonzero(labels.reshape(len(labels), -1).max(axis=1) >= len(self.classes))
            if len(wrong):
                raise DataError(f"{masks[wrong[0]]}: holds class {int(labels[wrong[0]].max())}; this run knows classes "
                                f"0 to {len(self.classes) - 1} ({', '.join(self.classes)})")
        return super().encode(x)[0], labels


def write_masks(folder, masks: np.ndarray, names: list[str] | None) -> list[Path]:
    """Each mask (N, H, W) as a PNG of class indices in ``folder`` (which must be absent or
    empty), named after the picture it answers (``names``; else its row number): written whole
    or not at all. Returns the files.

    Raises:
        OutputError: ``folder`` holds something already, or two pictures share a name.
    """
    folder = Path(folder)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise OutputError(f"--out {folder}: exists and is not an empty folder; name a new folder for the masks")
    files = [Path(name).with_suffix(".png") for name in names] if names else \
        [Path(f"{row + 1}.png") for row in range(len(masks))]
    if len(set(files)) != len(files):
        twice = next(f for f in files if files.count(f) > 1)
        raise OutputError(f"--out {folder}: two pictures would both write {twice}; give pictures distinct names")
    folder.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        for file, mask in zip(files, masks):
            (partial / file).parent.mkdir(parents=True, exist_ok=True)
            write_mask(partial / file, mask)
        if folder.exists():
            folder.rmdir()  # empty, as checked
        os.replace(partial, folder)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return [folder / file for file in files]
