"""Images: the 8x8 digits, folders with one subfolder per class (PNG/JPEG), or NPZ arrays.
Resized to one size, scaled per channel with training statistics; shape (N, C, H, W)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError

EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")


def read_image(path: Path, size: tuple[int, int] | None, channels: int) -> np.ndarray:
    """One image as float32 (C, H, W) in [0, 1], converted to ``channels`` and resized."""
    try:
        from PIL import Image
    except ImportError:
        raise DataError("reading image files needs Pillow: pip install 'layerforge[images]'") from None
    try:
        with Image.open(path) as image:
            image = image.convert("L" if channels == 1 else "RGB")
            if size is not None and image.size != (size[1], size[0]):
                image = image.resize((size[1], size[0]), Image.BILINEAR)
            array = np.asarray(image, dtype=np.float32) / 255.0
    except OSError as error:
        raise DataError(f"{path}: cannot be read as an image ({error})") from None
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def read_folder(root: Path, size: tuple[int, int] | None, channels: int) -> tuple[np.ndarray, list[str]]:
    """Images from ``root/<class>/*.png`` and their class names (the subfolder names)."""
    folders = sorted(p for p in root.iterdir() if p.is_dir())
    if not folders:
        raise DataError(f"{root}: expected one subfolder per class holding images, found none")
    images, labels = [], []
    for folder in folders:
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in EXTENSIONS)
        for file in files:
            images.append(read_image(file, size, channels))
            labels.append(folder.name)
    if not images:
        raise DataError(f"{root}: the class subfolders hold no {', '.join(EXTENSIONS)} files")
    shapes = {im.shape for im in images}
    if len(shapes) > 1:
        raise DataError(f"{root}: images have different sizes {sorted(shapes)[:3]}; set data.image_size: [H, W]")
    return np.stack(images), labels


def as_images(x: np.ndarray) -> np.ndarray:
    """(N, H, W) -> (N, 1, H, W); (N, C, H, W) stays."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 3:
        return x[:, None]
    if x.ndim != 4:
        raise DataError(
            f"expected images shaped (rows, height, width) or (rows, channels, height, width), got {x.shape}"
        )
    return x


class ImageScaler:
    """Standardise each channel with the training mean and standard deviation."""

    def __init__(self, mean: list[float], std: list[float], size: list[int], channels: int):
        self.mean, self.std, self.size, self.channels = mean, std, size, channels

    @classmethod
    def fit(cls, x: np.ndarray) -> ImageScaler:
        std = x.std(axis=(0, 2, 3))
        return cls(x.mean(axis=(0, 2, 3)).tolist(), np.where(std > 0, std, 1.0).tolist(), list(x.shape[2:]),
                   int(x.shape[1]))

    def transform(self, x: np.ndarray) -> np.ndarray:
        x = as_images(x)
        if tuple(x.shape[1:]) != (self.channels, *self.size):
            raise DataError(f"expected images of shape {(self.channels, *self.size)}, got {tuple(x.shape[1:])}")
        mean = np.asarray(self.mean, np.float32)[None, :, None, None]
        std = np.asarray(self.std, np.float32)[None, :, None, None]
        return ((x - mean) / std).astype(np.float32)

    def read(self, path: str | Path) -> tuple[np.ndarray, list[str] | None]:
        """Images for prediction from a file, a folder of images or a folder of class folders."""
        path = Path(path)
        size = tuple(self.size)
        if path.is_file() and path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as arrays:
                return as_images(arrays["x"]), (arrays["y"].tolist() if "y" in arrays else None)
        if path.is_file():
            return read_image(path, size, self.channels)[None], None
        if path.is_dir() and any(p.is_dir() for p in path.iterdir()):
            x, labels = read_folder(path, size, self.channels)
            return x, labels
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix.lower() in EXTENSIONS)
            if not files:
                raise DataError(f"{path}: holds no images")
            return np.stack([read_image(f, size, self.channels) for f in files]), None
        raise DataError(f"not found: {path}")

    def to_json(self) -> dict[str, Any]:
        return {"kind": "image", "mean": self.mean, "std": self.std, "size": self.size, "channels": self.channels}

    @classmethod
    def from_json(cls, state: dict[str, Any]) -> ImageScaler:
        return cls(state["mean"], state["std"], state["size"], state["channels"])


def prepare_images(data_spec, task: str | None, seed: int):
    """Split, resize and scale an image classification dataset."""
    import pandas as pd

    from . import builtin
    from .prepare import GENERATIVE, Prepared, classes_of, encode_classes, generative_meta, hold_out_anomalies
    from .split import split_indices

    if task not in (None, "classification", *GENERATIVE):
        raise DataError(f"image data supports tasks classification, reconstruction and generation, not '{task}'")
    size = tuple(data_spec.image_size) if data_spec.image_size else None
    if data_spec.dataset:
        x, labels = builtin.load_images(data_spec.dataset)
    elif Path(data_spec.path).is_dir():
        x, labels = read_folder(Path(data_spec.path), size, data_spec.channels or 1)
    else:
        with np.load(data_spec.path, allow_pickle=False) as arrays:
            if "x" not in arrays or "y" not in arrays:
                raise DataError(f"{data_spec.path}: needs arrays 'x' (images) and 'y' (labels)")
            x, labels = as_images(arrays["x"]), arrays["y"].tolist()
    source = data_spec.dataset or data_spec.path
    classes = classes_of(pd.Series(labels))
    y = encode_classes(pd.Series(labels, name="label"), classes, source)
    split = data_spec.split
    parts = split_indices(len(x), split.val, split.test, seed=seed, labels=y if split.stratify else None,
                          shuffle=split.shuffle)
    parts = hold_out_anomalies(parts, y, classes, data_spec.anomaly_classes, source)
    scaler = ImageScaler.fit(x[parts["train"]])
    splits = {name: ((scaler.transform(x[rows]),), y[rows]) for name, rows in parts.items()}
    inputs_info = {"kind": "image", "channels": int(x.shape[1]), "height": int(x.shape[2]), "width": int(x.shape[3])}
    return Prepared(task or "classification", "label", classes, None, None, inputs_info, scaler.to_json(), splits,
                    source, extra=generative_meta(data_spec) or None)
