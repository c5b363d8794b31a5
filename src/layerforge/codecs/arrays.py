"""Sequences and images: raw rows (arrays, .npz/.npy files, series of unequal length, image files
and folders, base64 PNG or JPEG text) to standardised model inputs, by the per-channel scale
fitted on the training rows. Numpy only (Pillow where image files are read). Training encodes its
rows with the same ``scale_sequences`` and ``scale_images``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data.arrays import bounded, numbers, read_npz
from ..errors import DataError
from .pictures import _opened, read_image
from .tables import no_kept_columns, no_row_names

IMAGE_FILES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")


# -- sequences --------------------------------------------------------------------------------------


def as_sequences(x, source: str = "the series") -> np.ndarray:
    """(N, L) -> (N, 1, L); (N, C, L) stays; numbers only, all finite."""
    x = numbers(x, "x", source)
    if x.ndim == 2:
        return x[:, None, :]
    if x.ndim != 3:
        hint = "; for images shaped (rows, channels, height, width) set data.kind: image" if x.ndim == 4 else ""
        raise DataError(f"{source}: expected sequences shaped (rows, length) or (rows, channels, length), got "
                        f"{x.shape}{hint}")
    if 0 in x.shape[1:]:
        raise DataError(f"{source}: series shaped {x.shape} have no {'channels' if x.shape[1] == 0 else 'steps'}")
    return x


def pad(series: list[np.ndarray], length: int | None = None, with_lengths: bool | None = None,
        channels: int | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Stack (C, L_i) arrays into (N, C, length) with zeros after each end, and their lengths.

    ``length`` defaults to the longest series; lengths are returned when ``with_lengths``, which
    defaults to "the series differ in length". ``channels`` sets C when ``series`` is empty.
    """
    lengths = np.array([s.shape[-1] for s in series], dtype=np.int64)
    found = {s.shape[0] for s in series}
    if len(found) > 1:
        raise DataError(f"series have different numbers of channels: {sorted(found)}")
    channels = found.pop() if found else (channels or 1)
    length = int(lengths.max()) if length is None else length
    if with_lengths is None:
        with_lengths = len(set(lengths.tolist())) > 1
    out = np.zeros((len(series), channels, length), dtype=np.float32)
    for i, s in enumerate(series):
        out[i, :, : s.shape[-1]] = s
    return out, (lengths if with_lengths else None)


def read_sequences(path: str | Path) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Read x (and optional lengths, y) from a .npz file, or x from a .npy file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"file not found: {path}")
    if path.suffix == ".npy":
        try:
            return as_sequences(np.load(path, allow_pickle=False), str(path)), None, None
        except (ValueError, OSError, EOFError) as error:
            raise DataError(f"{path}: cannot be read as a .npy array of numbers ({error})") from None
    if path.suffix != ".npz":
        raise DataError(f"{path}: sequences are read from .npz (arrays x, optional y and lengths) or .npy")
    arrays = read_npz(path)
    if "x" not in arrays:
        raise DataError(f"{path}: holds arrays {', '.join(arrays) or 'none'} but no 'x'")
    x = as_sequences(arrays["x"], str(path))
    lengths = arrays["lengths"].astype(np.int64) if "lengths" in arrays else None
    y = arrays.get("y")
    same_rows(path, x, lengths=lengths, y=y)
    if lengths is not None and ((lengths < 1) | (lengths > x.shape[-1])).any():
        raise DataError(f"{path}: 'lengths' must lie between 1 and the series' length {x.shape[-1]}")
    return x, lengths, y


def same_rows(source, x, **others) -> None:
    """Every array given holds one entry per row of ``x``."""
    for name, array in others.items():
        if array is not None and len(array) != len(x):
            raise DataError(f"{source}: 'x' holds {len(x)} series but '{name}' holds {len(array)}; they must match")


def scale_sequences(x: np.ndarray, mean: list[float], std: list[float],
                    lengths: np.ndarray | None = None) -> np.ndarray:
    """Standardise each channel of (N, C, L) series; padding stays 0."""
    x = as_sequences(x)
    if x.shape[1] != len(mean):
        raise DataError(f"expected {len(mean)} channel(s) per series, got {x.shape[1]} (shape {x.shape})")
    with np.errstate(over="ignore", invalid="ignore"):
        scaled = x - np.asarray(mean, np.float32)[None, :, None]  # a new array (x may be the caller's)
        scaled /= np.asarray(std, np.float32)[None, :, None]
    if lengths is not None:
        padding = np.arange(x.shape[2])[None, :] >= lengths[:, None]  # (N, L)
        scaled[np.broadcast_to(padding[:, None, :], scaled.shape)] = 0.0
    return bounded(scaled, "series")


def _ragged(rows: list) -> tuple[np.ndarray, np.ndarray]:
    """Series of unequal lengths, each (length,) or (channels, length), padded to the longest."""
    series = []
    for row, values in enumerate(rows):
        try:
            array = np.atleast_2d(np.asarray(values, dtype=np.float32))
        except (TypeError, ValueError):
            raise DataError(f"series {row + 1}: expected numbers, one list of steps per channel") from None
        if array.ndim != 2:
            raise DataError(f"series {row + 1}: expected its steps, or one list of steps per channel")
        series.append(array)
    x, lengths = pad(series, with_lengths=True)
    return x, lengths


class SequenceCodec:
    """Encodes series as the run's scale says: (N, [C,] L) arrays, a list of series (of unequal
    lengths where the model reads them), or an .npz (x, optional lengths and y) / .npy file.

    Args:
        state: the fitted state (``mean``, ``std`` per channel, ``length``, ``variable_length``).
    """

    kind = "sequence"

    def __init__(self, state: dict):
        self.mean, self.std = state["mean"], state["std"]
        self.length, self.variable = state["length"], state.get("variable_length", False)

    kept = no_kept_columns("sequences")
    row_names = staticmethod(no_row_names)

    def pieces(self, rows):
        yield rows

    def encode(self, rows, *, unknown: str | None = None, ignore_extra: bool = False,
               target: str | None = None) -> tuple[tuple[np.ndarray, ...], list | None]:
        labels = lengths = None
        if isinstance(rows, (str, Path)):
            x, lengths, y = read_sequences(rows)
            labels = None if y is None else y.tolist()
        elif isinstance(rows, list) and rows and len({np.shape(row)[-1:] for row in rows}) > 1:
            x, lengths = _ragged(rows)
        else:
            x = as_sequences(rows)
        if x.shape[1] != len(self.mean):
            raise DataError(f"expected {len(self.mean)} channel(s) per series, got {x.shape[1]} (shape {x.shape})")
        steps = x.shape[2]
        if steps > self.length or (steps < self.length and not self.variable):
            bound = "at most" if self.variable else "exactly"
            raise DataError(f"expected series of {bound} {self.length} steps (the length the model was trained on), "
                            f"got {steps}")
        if steps < self.length:  # shorter series: padded, their lengths kept
            lengths = np.full(len(x), steps, dtype=np.int64) if lengths is None else lengths
            x = np.concatenate([x, np.zeros((*x.shape[:2], self.length - steps), np.float32)], axis=2)
        if lengths is None and self.variable:
            lengths = np.full(len(x), self.length, dtype=np.int64)
        inputs = (scale_sequences(x, self.mean, self.std, lengths),)
        return (inputs if lengths is None else inputs + (np.asarray(lengths, dtype=np.int64),)), labels


# -- images -----------------------------------------------------------------------------------------


def list_folder(root: Path) -> tuple[list[Path], list[str]]:
    """The image files of ``root/<class>/`` and their class names (the subfolder names)."""
    folders = sorted(p for p in root.iterdir() if p.is_dir())
    if not folders:
        raise DataError(f"{root}: expected one subfolder per class holding images, found none")
    files, labels = [], []
    for folder in folders:
        found = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_FILES)
        files += found
        labels += [folder.name] * len(found)
    if not files:
        raise DataError(f"{root}: the class subfolders hold no {', '.join(IMAGE_FILES)} files")
    return files, labels


def read_folder(root: Path, size: tuple[int, int] | None, channels: int) -> tuple[np.ndarray, list[str]]:
    """Images from ``root/<class>/*.png`` and their class names (the subfolder names)."""
    files, labels = list_folder(root)
    images = [read_image(file, size, channels) for file in files]
    shapes = {im.shape for im in images}
    if len(shapes) > 1:
        raise DataError(f"{root}: images have different sizes {sorted(shapes)[:3]}; set data.image_size: [H, W]")
    return np.stack(images), labels


def as_images(x, source: str = "the images") -> np.ndarray:
    """(N, H, W) -> (N, 1, H, W); (N, C, H, W) stays; numbers only, all finite."""
    x = numbers(x, "x", source)
    if x.ndim == 3:
        return x[:, None]
    if x.ndim != 4:
        raise DataError(
            f"expected images shaped (rows, height, width) or (rows, channels, height, width), got {x.shape}"
        )
    return x


def scale_images(x: np.ndarray, mean: list[float], std: list[float], own: bool = False) -> np.ndarray:
    """Standardised (N, C, H, W) images; ``own``: ``x`` is float32 and a copy no one else holds,
    scaled in place."""
    mean = np.asarray(mean, np.float32)[None, :, None, None]
    std = np.asarray(std, np.float32)[None, :, None, None]
    with np.errstate(over="ignore", invalid="ignore"):
        scaled = np.subtract(x, mean, out=x if own else None)
        scaled /= std
        return bounded(scaled, "image")


class ImageCodec:
    """Encodes images as the run's scale says: arrays (N, [C,] H, W), a list of images (base64
    PNG or JPEG text, or pixel arrays), an .npz file (x, optional y), an image file, a folder of
    images or a folder of class folders. Image files and text are converted and resized to the
    model's channels and size, as training read them.

    Args:
        state: the fitted state (``mean``, ``std`` per channel, ``size``, ``channels``).
    """

    kind = "image"
    resizes = True  # image files and text are resized to the run's size (else: refused when not of it)

    def __init__(self, state: dict):
        self.mean, self.std = state["mean"], state["std"]
        self.size, self.channels = tuple(state["size"]), state["channels"]

    kept = no_kept_columns("images")

    def unscale(self, x: np.ndarray) -> np.ndarray:
        """Encoded images back to pixels in [0, 1] (as they were read)."""
        mean = np.asarray(self.mean, np.float32)[None, :, None, None]
        return np.asarray(x, np.float32) * np.asarray(self.std, np.float32)[None, :, None, None] + mean

    @property
    def reading_size(self) -> tuple[int, int] | None:
        """The size image files are resized to when read (None: read as they are)."""
        return self.size if self.resizes else None

    def pieces(self, rows):
        yield rows

    @staticmethod
    def row_names(rows) -> list[str] | None:
        """The file each row was read from, for images read from files (relative to the folder
        given, e.g. ``cat/001.png``); None for images given as arrays or an .npz file."""
        if not isinstance(rows, (str, Path)):
            return None
        path = Path(rows)
        if path.is_file():
            return None if path.suffix == ".npz" else [path.name]
        if path.is_dir() and any(p.is_dir() for p in path.iterdir()):
            return [file.relative_to(path).as_posix() for file in list_folder(path)[0]]
        if path.is_dir():
            return sorted(p.name for p in path.iterdir() if p.suffix.lower() in IMAGE_FILES)
        return None

    def encode(self, rows, *, unknown: str | None = None, ignore_extra: bool = False,
               target: str | None = None) -> tuple[tuple[np.ndarray], list | None]:
        labels = None
        if isinstance(rows, (str, Path)):
            x, labels = self.read(rows)
        elif isinstance(rows, list) and any(isinstance(item, str) for item in rows):
            x = self._pictures(rows)
            self._check_range(x)
        else:
            x = as_images(rows)
            self._check_range(x)
        shape = (self.channels, *self.size)
        if tuple(x.shape[1:]) != shape:
            raise DataError(f"expected images of shape {shape}, got {tuple(x.shape[1:])}")
        return (scale_images(x, self.mean, self.std),), labels

    def _check_range(self, x: np.ndarray) -> None:
        """Pixels given as numbers must be on the scale the run learned: a run trained on pixels
        in [0, 1] (images read from files, whose mean and spread are below 1) refuses arrays of
        0-255 instead of reading them 255 times too bright."""
        if not len(x) or max(self.mean) > 1 or max(self.std) > 1:
            return
        top = float(np.nanmax(x))
        if 2.0 < top <= 255.0:
            raise DataError(f"pixels go up to {top:g}, but this run was trained on pixels in [0, 1]; divide the "
                            "images by 255 (or pass the image files, which are read as training read them)")

    def _pictures(self, rows: list) -> np.ndarray:
        """Images given one by one: base64 PNG/JPEG text or pixel arrays (H, W) / (C, H, W)."""
        import base64
        import binascii
        import io

        shape = (self.channels, *self.size)
        pictures = []
        for row, item in enumerate(rows):
            if isinstance(item, str):
                try:
                    data = base64.b64decode(item, validate=True)
                except (binascii.Error, ValueError) as error:
                    raise DataError(f"image {row + 1}: not base64 text ({error})") from None
                pictures.append(_opened(io.BytesIO(data), self.reading_size, self.channels, f"image {row + 1}"))
                continue
            try:
                with np.errstate(over="ignore"):  # too large for 32 bits: refused by as_images below
                    array = np.asarray(item, dtype=np.float32)
            except (TypeError, ValueError):
                raise DataError(f"image {row + 1}: expected base64 PNG or JPEG text, or its pixels as numbers") \
                    from None
            pictures.append(array[None] if array.ndim == 2 else array)
        wrong = next((row for row, p in enumerate(pictures) if p.shape != shape), None)
        if wrong is not None:
            raise DataError(f"image {wrong + 1}: expected shape {shape}, got {pictures[wrong].shape}")
        return as_images(np.stack(pictures)) if pictures else np.zeros((0, *shape), np.float32)

    def read(self, path: str | Path) -> tuple[np.ndarray, list | None]:
        """Images from an .npz file, an image file, a folder of images or a folder of class
        folders, and their labels when the file or folders give them."""
        path = Path(path)
        if path.is_file() and path.suffix == ".npz":
            arrays = read_npz(path)
            if "x" not in arrays:
                raise DataError(f"{path}: holds arrays {', '.join(arrays) or 'none'} but no 'x' (the images)")
            x, y = as_images(arrays["x"], str(path)), arrays.get("y")
            self._check_range(x)
            if y is not None and len(y) != len(x):
                raise DataError(f"{path}: 'x' holds {len(x)} images but 'y' holds {len(y)}; they must match")
            return x, (None if y is None else y.tolist())
        if path.is_file():
            return read_image(path, self.reading_size, self.channels)[None], None
        if path.is_dir() and any(p.is_dir() for p in path.iterdir()):
            return read_folder(path, self.reading_size, self.channels)
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_FILES)
            if not files:
                raise DataError(f"{path}: holds no images")
            return np.stack([read_image(f, self.reading_size, self.channels) for f in files]), None
        raise DataError(f"not found: {path}")
