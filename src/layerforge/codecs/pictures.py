"""Picture files read as arrays: Pillow at the edge, float32 (C, H, W) in [0, 1]. The image
codec and a table's picture columns read files through these."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from ..errors import DataError


def _pillow():
    try:
        from PIL import Image
    except ImportError:
        raise DataError("reading images needs Pillow: pip install 'layerforge[images]'") from None
    return Image


def _picture(image, size: tuple[int, int] | None, channels: int) -> np.ndarray:
    """An opened image as float32 (C, H, W) in [0, 1], converted to ``channels`` and resized."""
    Image = _pillow()
    image = image.convert("L" if channels == 1 else "RGB")
    if size is not None and image.size != (size[1], size[0]):
        image = image.resize((size[1], size[0]), Image.BILINEAR)
    array = np.asarray(image, dtype=np.float32) / 255.0
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def _opened(source, size: tuple[int, int] | None, channels: int, name: str) -> np.ndarray:
    """An image file (a path or file object) read as ``_picture`` reads it; huge images refused."""
    Image = _pillow()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)  # refuse, rather than warn of, huge images
            with Image.open(source) as image:
                return _picture(image, size, channels)
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as error:
        raise DataError(f"{name}: refused: {error}") from None
    except (OSError, ValueError) as error:
        detail = "not a PNG or JPEG image" if not isinstance(source, (str, Path)) else str(error)
        raise DataError(f"{name}: cannot be read as an image ({detail})") from None


def read_image(path: Path, size: tuple[int, int] | None, channels: int) -> np.ndarray:
    """One image file as float32 (C, H, W) in [0, 1], converted to ``channels`` and resized."""
    return _opened(path, size, channels, str(path))


def read_mask(path: Path, size: tuple[int, int] | None) -> np.ndarray:
    """A mask file (a PNG of class indices: grey levels or a palette's entries) as uint8 (H, W),
    resized to ``size`` by the nearest pixel (classes are not blended)."""
    Image = _pillow()
    try:
        with Image.open(path) as image:
            if image.mode not in ("L", "P", "1", "I", "I;16"):
                raise DataError(f"{path}: a mask is a PNG of class indices (grey levels or a palette); this one is "
                                f"{image.mode} (colours): save each pixel's class number instead")
            if size is not None and image.size != (size[1], size[0]):
                image = image.resize((size[1], size[0]), Image.NEAREST)
            values = np.asarray(image)
    except OSError as error:
        raise DataError(f"{path}: cannot be read as a mask ({error})") from None
    if values.max(initial=0) > 255:
        raise DataError(f"{path}: holds class {int(values.max())}; a mask holds at most 256 classes")
    return values.astype(np.uint8)


def write_mask(path: Path, mask: np.ndarray) -> None:
    """A mask of class indices (H, W) as a greyscale PNG (each pixel its class number); a
    picture (H, W, 3) of uint8 as an RGB PNG."""
    mask = np.asarray(mask, dtype=np.uint8)
    _pillow().fromarray(mask, mode="L" if mask.ndim == 2 else "RGB").save(path)


COLOURS = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
           (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207))  # a class's colour, in turn


def drawn_boxes(picture: np.ndarray, boxes: np.ndarray, classes: list[str]) -> np.ndarray:
    """A picture (C, H, W) in [0, 1] as RGB uint8 (H, W, 3) with each box (k, 6: corners, class,
    score) drawn over it in its class's colour, its class and score above it."""
    Image = _pillow()
    from PIL import ImageDraw

    pixels = (np.clip(picture, 0, 1) * 255).round().astype(np.uint8)
    pixels = np.repeat(pixels, 3, axis=0) if len(pixels) == 1 else pixels
    image = Image.fromarray(pixels.transpose(1, 2, 0), mode="RGB")
    draw = ImageDraw.Draw(image)
    for box in boxes:
        colour = COLOURS[int(box[4]) % len(COLOURS)]
        draw.rectangle([float(box[0]), float(box[1]), float(box[2]) - 1, float(box[3]) - 1], outline=colour)
        draw.text((float(box[0]) + 1, max(float(box[1]) - 10, 0)), f"{classes[int(box[4])]} {box[5]:.2f}",
                  fill=colour)
    return np.asarray(image)
