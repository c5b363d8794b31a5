"""Arrays from files, checked: .npz files read without pickle, with clear errors for damaged or
mismatched contents, numbers checked to be finite, and standardisation that refuses what it
cannot turn into usable numbers."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from ..errors import DataError

# A value this many training standard deviations from the training mean is refused: not a
# measurement of the same thing, and a step away from outputs that are not numbers at all (the
# training values themselves lie within sqrt(rows) of it).
MAX_STANDARD_SCORE = 1e6


def read_npz(path: str | Path) -> dict[str, np.ndarray]:
    """Every array of an .npz file (never unpickling anything).

    Raises:
        DataError: the file is not a readable .npz, or holds objects rather than arrays.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"file not found: {path}")
    if not zipfile.is_zipfile(path):
        what = "empty" if path.stat().st_size == 0 else "not a zip archive"
        raise DataError(f"{path}: cannot be read as an .npz file (it is {what}); save arrays with numpy.savez")
    try:
        with np.load(path, allow_pickle=False) as arrays:
            return {name: arrays[name] for name in arrays.files}
    except ValueError as error:  # object arrays need pickle, which is refused
        raise DataError(f"{path}: holds Python objects rather than plain arrays ({error}); save numbers with "
                        "numpy.savez") from None
    except (OSError, EOFError, zipfile.BadZipFile, KeyError) as error:
        raise DataError(f"{path}: cannot be read as an .npz file ({error or 'empty file'})") from None


def numbers(array, name: str, source: str) -> np.ndarray:
    """``array`` as a float32 array, refusing text, objects and values that are not finite.

    Raises:
        DataError: naming the array, the first bad row and what to do.
    """
    array = np.asarray(array)
    if array.dtype.kind not in "biuf":
        raise DataError(f"{source}: '{name}' holds {array.dtype} values, not numbers")
    with np.errstate(over="ignore"):  # too large for 32 bits is said below
        values = array.astype(np.float32, copy=False)  # float32 already: the array itself (nothing writes to it)
    if np.isfinite(values).all():  # one pass, and the only one when all is well
        return values
    if np.isfinite(array).all():  # finite before the conversion: too large for 32 bits
        raise DataError(f"{source}: '{name}' holds values too large for 32-bit numbers (up to "
                        f"{np.abs(array).max():.3g}); rescale them")
    finite(values, name, source)
    return values


def finite(values: np.ndarray, name: str, source: str) -> None:
    """Refuse NaN and infinite values, naming the first row that holds one."""
    bad = ~np.isfinite(values)
    if bad.any():
        row = int(np.argwhere(bad)[0][0])
        kind = "a missing (NaN)" if np.isnan(values[bad]).any() else "an infinite"
        raise DataError(f"{source}: '{name}' holds {kind} value in row {row + 1} ({int(bad.sum())} in all); "
                        "fill or drop those values")


def scaling(values: np.ndarray, axis, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation (1 where constant) of training ``values`` over ``axis``, in
    the values' own precision.

    Raises:
        DataError: the values are too large for either to be a finite number.
    """
    values = np.asarray(values)
    if values.size == 0:
        raise DataError(f"{name}: no values to learn a scale from")
    with np.errstate(over="ignore", invalid="ignore"):
        mean, std = values.mean(axis=axis), values.std(axis=axis)
    return _usable(mean, std, lambda: np.abs(values).max(), name)


def _usable(mean: np.ndarray, std: np.ndarray, largest, name: str) -> tuple[np.ndarray, np.ndarray]:
    """``mean`` and ``std`` (1 where constant), or a DataError when the values (up to
    ``largest()``) were too large for either to be a finite number."""
    if not (np.isfinite(mean).all() and np.isfinite(std).all()):
        raise DataError(f"{name}: values up to {largest():.3g} are too large to standardise; rescale them (e.g. to "
                        "other units or a logarithm)")
    return mean, np.where(std > 0, std, 1.0)


def channel_scaling(images: np.ndarray, rows: np.ndarray, name: str,
                    block: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """``scaling`` of ``images[rows]`` (N, C, H, W) per channel, read ``block`` rows at a time
    (two passes, sums in float64) rather than copied out whole: the training rows of a large
    image set are not held twice, nor their squared deviations once more."""
    pixels = len(rows) * int(np.prod(images.shape[2:]))
    if pixels == 0:
        raise DataError(f"{name}: no values to learn a scale from")
    blocks = [rows[i : i + block] for i in range(0, len(rows), block)]
    with np.errstate(over="ignore", invalid="ignore"):
        total = sum(images[part].sum(axis=(0, 2, 3), dtype=np.float64) for part in blocks)
        mean = (total / pixels).astype(images.dtype)
        squares = sum(np.square(images[part] - mean[None, :, None, None]).sum(axis=(0, 2, 3), dtype=np.float64)
                      for part in blocks)
        std = np.sqrt(squares / pixels).astype(images.dtype)
    return _usable(mean, std, lambda: np.abs(images[rows]).max(), name)


def bounded(scaled: np.ndarray, what: str) -> np.ndarray:
    """Standardised values as float32, refusing any row with a value further than
    ``MAX_STANDARD_SCORE`` standard deviations from the training mean (``what``: 'series',
    'image', 'row'; rows are counted from 1)."""
    with np.errstate(over="ignore"):  # a value too large for 32 bits is too far, said below
        scaled = scaled.astype(np.float32, copy=False)
    if not scaled.size or (scaled.max() <= MAX_STANDARD_SCORE and scaled.min() >= -MAX_STANDARD_SCORE):
        return scaled  # two passes without a copy; NaN fails both comparisons and is looked at below
    with np.errstate(invalid="ignore"):
        far = ~(np.abs(scaled) <= MAX_STANDARD_SCORE)
    if far.any():
        rows = np.flatnonzero(far.reshape(len(far), -1).any(axis=1))
        raise DataError(f"{what} {rows[0] + 1} holds values too far from those seen in training (more than "
                        f"{MAX_STANDARD_SCORE:.0e} standard deviations) to be used"
                        + (f"; so do {len(rows) - 1} more" if len(rows) > 1 else "") + "; fix or drop it")
    return scaled
