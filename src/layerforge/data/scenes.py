"""Scenes of shapes, drawn by numpy with their masks: the built-in set for segmentation.

Each scene is an RGB picture of one to four shapes (circles, squares and triangles, each in a
bright colour drawn at random, so that a shape's class is in its outline, not its colour) on a
textured, noisy background, the later
shapes drawn over the earlier ones (occlusion); its mask holds each pixel's class (0 the
background, then the shapes in ``SHAPES``' order), as drawn last. Shapes span from a few pixels
to half the picture. The same seed draws the same scenes.
"""

from __future__ import annotations

import numpy as np

from ..errors import DataError

SHAPES = ("circle", "square", "triangle")
CLASSES = ("background", *SHAPES)


def _colour(rng: np.random.Generator) -> np.ndarray:
    """A bright colour (RGB in [0, 1]): a random hue, saturation 0.5-1, value 0.75-1."""
    hue, saturation, value = rng.uniform(), rng.uniform(0.5, 1.0), rng.uniform(0.75, 1.0)
    channel = (np.array([5.0, 3.0, 1.0]) + hue * 6) % 6  # the hue's distance to red, green and blue
    return value - value * saturation * np.clip(np.minimum(channel, 4 - channel), 0, 1)


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """(3, size, size): a smooth colour gradient, stripes at a random angle and pixel noise."""
    y, x = np.mgrid[0:size, 0:size] / size
    base = rng.uniform(0.2, 0.6, 3)[:, None, None] + rng.uniform(-0.2, 0.2, (3, 1, 1)) * (x + y)[None]
    angle, period = rng.uniform(0, np.pi), rng.uniform(3, 12)
    stripes = 0.08 * np.sin(2 * np.pi * (x * np.cos(angle) + y * np.sin(angle)) * size / period)
    return base + stripes[None] + rng.normal(0, 0.04, (3, size, size))


def _inside(shape: str, y: np.ndarray, x: np.ndarray, cy: float, cx: float, radius: float, turn: float) -> np.ndarray:
    """Which pixels (y, x) lie in the shape centred at (cy, cx) of ``radius``, turned by ``turn``."""
    dy, dx = y - cy, x - cx
    if shape == "circle":
        return dy ** 2 + dx ** 2 <= radius ** 2
    u, v = dx * np.cos(turn) + dy * np.sin(turn), -dx * np.sin(turn) + dy * np.cos(turn)
    if shape == "square":
        half = radius / np.sqrt(2) * 1.2
        return (np.abs(u) <= half) & (np.abs(v) <= half)
    inside = np.ones_like(u, dtype=bool)  # a triangle: three half-planes
    for k in range(3):
        a = turn + 2 * np.pi * k / 3
        inside &= dx * np.cos(a) + dy * np.sin(a) <= radius / 2
    return inside


def scenes(count: int, size: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``count`` scenes: pictures (count, 3, size, size) in [0, 1] and masks (count, size, size)
    of class indices (``CLASSES``)."""
    pictures, masks, _ = drawn(count, size, seed)
    return pictures, masks


VISIBLE = 8  # the fewest pixels of a shape left in sight that make it an object to detect


def drawn(count: int, size: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """The scenes of ``scenes`` with the box of each shape: per scene an array (shapes, 5) of
    ``x_min, y_min, x_max, y_max, class`` (pixel edges; the class an index of ``SHAPES``) around
    the pixels of the shape left in sight, for the shapes with at least ``VISIBLE`` of them."""
    rng = np.random.default_rng(seed)
    pictures = np.zeros((count, 3, size, size), np.float32)
    masks = np.zeros((count, size, size), np.uint8)
    boxes = []
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    for i in range(count):
        picture, mask = _background(rng, size), masks[i]
        drawn_over, codes = np.full((size, size), -1), []  # which shape each pixel shows
        for _ in range(rng.integers(1, 5)):
            code = int(rng.integers(len(SHAPES)))
            radius = size * rng.uniform(0.06, 0.25)  # from a few pixels across to half the picture
            cy, cx = rng.uniform(radius * 0.5, size - radius * 0.5, 2)
            inside = _inside(SHAPES[code], y, x, cy, cx, radius, rng.uniform(0, 2 * np.pi))
            shaded = _colour(rng)[:, None, None] + rng.normal(0, 0.05, (3, size, size))
            picture = np.where(inside[None], shaded, picture)
            mask[inside] = code + 1
            drawn_over[inside] = len(codes)
            codes.append(code)
        pictures[i] = np.clip(picture, 0, 1)
        found = []
        for shape, code in enumerate(codes):
            rows, columns = np.nonzero(drawn_over == shape)
            if len(rows) >= VISIBLE:
                found.append((columns.min(), rows.min(), columns.max() + 1, rows.max() + 1, code))
        boxes.append(np.array(found, np.float32).reshape(-1, 5))
    return pictures, masks, boxes


def coin_boxes(masks: np.ndarray) -> list[np.ndarray]:
    """The box of each coin in each crop's mask: its connected pieces of coin pixels (one per
    coin, cut by the crop's edge where it is), those of at least ``VISIBLE`` pixels, as
    ``drawn``'s boxes are (class 0: coin)."""
    from scipy import ndimage

    boxes = []
    for mask in masks:
        pieces, _ = ndimage.label(mask)
        found = []
        for number, where in enumerate(ndimage.find_objects(pieces), start=1):
            if where is not None and (pieces[where] == number).sum() >= VISIBLE:
                found.append((where[1].start, where[0].start, where[1].stop, where[0].stop, 0))
        boxes.append(np.array(found, np.float32).reshape(-1, 5))
    return boxes


CROP = 64  # the side of a crop of the coins photograph
SPLIT = 224  # crops from this column on are the test crops; training crops end before it


def coins() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Crops of scikit-image's coins photograph (N, 1, 64, 64) in [0, 1], their masks (coin 1,
    background 0), and the positions of the test crops. The mask is scikit-image's gallery
    segmentation of the photograph: a watershed of its Sobel edges from markers of the surely
    dark and surely bright pixels, holes filled and specks opened away. Training crops overlap
    (every 16 pixels) left of column 224; test crops tile the part right of it.

    Raises:
        DataError: scikit-image is not installed.
    """
    try:
        from scipy import ndimage
        from skimage import data, filters, segmentation
    except ImportError:
        raise DataError("the coins set needs scikit-image: pip install 'layerforge[images]'") from None
    photograph = data.coins()
    markers = np.zeros_like(photograph)
    markers[photograph < 30], markers[photograph > 150] = 1, 2
    found = segmentation.watershed(filters.sobel(photograph), markers) == 2
    mask = ndimage.binary_opening(ndimage.binary_fill_holes(found), iterations=2).astype(np.uint8)
    height, width = photograph.shape
    corners = [(y, x) for y in range(0, height - CROP + 1, 16) for x in range(0, SPLIT - CROP + 1, 16)]
    test_corners = [(y, x) for y in range(0, height - CROP + 1, 32) for x in range(SPLIT, width - CROP + 1, 32)]
    corners += test_corners
    pictures = np.stack([photograph[y : y + CROP, x : x + CROP] for y, x in corners])[:, None] / 255.0
    masks = np.stack([mask[y : y + CROP, x : x + CROP] for y, x in corners])
    test = np.arange(len(corners) - len(test_corners), len(corners))
    return pictures.astype(np.float32), masks, test
