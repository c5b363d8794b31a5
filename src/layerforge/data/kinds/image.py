"""Images: the 8x8 digits, folders with one subfolder per class (PNG/JPEG), or NPZ arrays.
Resized to one size, scaled per channel with training statistics; shape (N, C, H, W)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Literal

import numpy as np

from ...codecs.arrays import as_images, list_folder, read_folder, scale_images
from ...codecs.pictures import read_image
from ...errors import DataError
from ...models.inputs import Inputs
from .. import builtin
from ..arrays import channel_scaling, read_npz
from .base import Encoder, Kind, Perturbation, Source, State

FILES_PER_UNIT = 256  # a streamed image folder is read this many files to a piece


class ImageState(State):
    """Per-channel training mean and spread, and the size every image has."""

    kind: Literal["image"] = "image"
    mean: list[float]
    std: list[float]
    size: list[int]
    channels: int

    def perturbation(self):
        """Pixels in [0, 1] (as images are read), scaled per channel as the encoder scales them."""
        mean = np.asarray(self.mean, dtype=np.float32)[:, None, None]
        std = np.asarray(self.std, dtype=np.float32)[:, None, None]
        return Perturbation("pixels in [0, 1]", 1.0 / std, (0.0 - mean) / std, (1.0 - mean) / std)

    def request_row(self, title: str):
        """One image: base64 PNG or JPEG (converted and resized as image files are), or its
        pixels as nested lists, (height, width) or (channels, height, width)."""
        from typing import Annotated

        from pydantic import Field

        height, width = self.size
        pixel = Annotated[float, Field(allow_inf_nan=False, strict=True)]
        line = Annotated[list[pixel], Field(min_length=width, max_length=width)]
        plane = Annotated[list[line], Field(min_length=height, max_length=height)]
        planes = Annotated[list[plane], Field(min_length=self.channels, max_length=self.channels)]
        encoded = Annotated[str, Field(min_length=1, description="base64 PNG or JPEG")]
        arrays = planes | plane if self.channels == 1 else planes
        return Annotated[encoded | arrays, Field(title=title)]


class ImageEncoder(Encoder):
    state: ImageState

    @property
    def inputs(self) -> Inputs:
        height, width = self.state.size
        return Inputs(kind="image", channels=self.state.channels, height=height, width=width)

    def scale(self, x: np.ndarray, own: bool = False) -> np.ndarray:
        """Standardised images, as the codec scales them; ``own``: ``x`` is a copy no one else
        holds, scaled in place."""
        x = as_images(x)
        if tuple(x.shape[1:]) != (self.state.channels, *self.state.size):
            raise DataError(f"expected images of shape {(self.state.channels, *self.state.size)}, "
                            f"got {tuple(x.shape[1:])}")
        return scale_images(x, self.state.mean, self.state.std, own=own)

    def encode(self, source: Source, parts: dict[str, np.ndarray]):
        return {name: ((self.scale(source.payload[rows], own=True),), source.labels.iloc[rows])
                for name, rows in parts.items()}  # payload[rows] is a copy

    def pictures(self, rows: np.ndarray) -> np.ndarray:
        return self.unscale(rows)


class ImageFiles:
    """The payload of a streamed image folder: the files stay on disk and are decoded when read,
    ``FILES_PER_UNIT`` to a piece (what a streamed source's payload offers: ``units``, ``read``
    and ``take``; see ``StreamedTable``).

    Args:
        root: the folder, for messages.
        files, labels: every image file and its class.
        size: (height, width) every image has (the first image's), or is resized to when ``resize``
            (``data.image_size``).
        channels: 1 or 3.
    """

    def __init__(self, root: str, files: list[Path], labels: list[str], size: tuple[int, int], channels: int,
                 resize: bool):
        self.root, self.files, self.labels = root, files, labels
        self.size, self.channels, self.resize = size, channels, resize

    def units(self) -> list[int]:
        return list(range(-(-len(self.files) // FILES_PER_UNIT)))

    def read(self, unit: int):
        """(row positions, in-memory source) of piece ``unit``: its images decoded."""
        positions = np.arange(unit * FILES_PER_UNIT, min((unit + 1) * FILES_PER_UNIT, len(self.files)))
        yield positions, self.take(positions)

    def take(self, positions: np.ndarray) -> Source:
        """The images at ``positions``, decoded, as an in-memory source."""
        import pandas as pd

        images = []
        for position in positions:
            image = read_image(self.files[position], self.size if self.resize else None, self.channels)
            if image.shape[1:] != self.size:
                raise DataError(f"{self.files[position]}: {image.shape[1]}x{image.shape[2]} pixels where the first "
                                f"image has {self.size[0]}x{self.size[1]}; set data.image_size: [H, W] to resize them")
            images.append(image)
        x = np.stack(images) if images else np.zeros((0, self.channels, *self.size), np.float32)
        labels = pd.Series([self.labels[p] for p in positions], name="label")
        return Source(self.root, len(x), x, "", "label", labels)

    def fingerprint(self) -> str:
        """SHA-256 of every file's name and bytes."""
        digest = hashlib.sha256()
        for file, label in zip(self.files, self.labels):
            digest.update(f"{label}/{file.name}\x1f".encode())
            digest.update(file.read_bytes())
        return digest.hexdigest()


def streamed_folder(data_spec) -> Source | None:
    """A folder of class folders as a streamed source, when ``data.streaming`` asks for it (or,
    with auto, when its decoded images would not fit in memory); None to read it whole."""
    import pandas as pd

    from ..tablefile import too_large

    root = Path(data_spec.path)
    files, labels = list_folder(root)
    channels = data_spec.channels or 1
    size = tuple(data_spec.image_size) if data_spec.image_size else read_image(files[0], None, channels).shape[1:]
    if data_spec.streaming == "auto" and not too_large(len(files) * channels * size[0] * size[1] * 4):
        return None
    payload = ImageFiles(data_spec.path, files, labels, tuple(size), channels, resize=bool(data_spec.image_size))
    facts = {"values_per_row": channels * size[0] * size[1]}
    return Source(data_spec.path, len(files), payload, payload.fingerprint(), "label",
                  pd.Series(labels, name="label"), facts=facts, streamed=True)


class ImageKind(Kind):
    name = "image"
    reads = "image"
    state = ImageState

    def load(self, data_spec, *, target_required: bool = True) -> Source:
        """The 8x8 digits, a folder with one subfolder per class, or an .npz with x and y."""
        import pandas as pd


        size = tuple(data_spec.image_size) if data_spec.image_size else None
        if data_spec.path is not None and data_spec.streaming is not False and Path(data_spec.path).is_dir():
            streamed = streamed_folder(data_spec)
            if streamed is not None:
                return streamed
        if data_spec.dataset:
            x, labels = builtin.load_images(data_spec.dataset)
        elif Path(data_spec.path).is_dir():
            x, labels = read_folder(Path(data_spec.path), size, data_spec.channels or 1)
        else:
            arrays = read_npz(data_spec.path)
            if "x" not in arrays or "y" not in arrays:
                raise DataError(f"{data_spec.path}: needs arrays 'x' (images) and 'y' (labels)")
            x, labels = as_images(arrays["x"], data_spec.path), arrays["y"].tolist()
        source = data_spec.dataset or data_spec.path
        if len(x) != len(labels):
            raise DataError(f"{source}: {len(x)} images but {len(labels)} labels")
        labels = pd.Series(labels, name="label")
        digest = hashlib.sha256(np.ascontiguousarray(x).reshape(-1).view(np.uint8))  # the bytes, not a copy
        digest.update("\x1f".join(map(str, labels.tolist())).encode("utf-8"))
        return Source(source, len(x), x, digest.hexdigest(), "label", labels)

    def fit(self, source: Source, train: np.ndarray, data_spec) -> ImageEncoder:
        x = source.payload
        mean, std = channel_scaling(x, train, "the training images")
        state = ImageState(mean=mean.tolist(), std=std.tolist(),
                           size=list(x.shape[2:]), channels=int(x.shape[1]))
        return ImageEncoder(state, source.target)

    def encoder(self, state: ImageState, target: str | None) -> ImageEncoder:
        return ImageEncoder(state, target)
