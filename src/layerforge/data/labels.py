"""Class labels: stable keys for category values, the sorted classes of a target column, and
class indices. Light (no pandas import), so that task declarations can use them."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..codecs.cells import category_codes, category_key
from ..errors import DataError


def row_label(position: int, source: str | None) -> str:
    """'row 3' or, for a CSV file, 'row 3 (line 4 of data.csv)'."""
    if source and source.lower().endswith((".csv", ".tsv")):
        return f"row {position + 1} (line {position + 2} of {Path(source).name})"
    return f"row {position + 1}"


def row_of(series, position: int) -> int:
    """The row of the whole table that ``position`` of ``series`` is (its index label when the
    table was read from a file, as training rows keep theirs)."""
    label = series.index[position]
    return int(label) if isinstance(label, (int, np.integer)) and not isinstance(label, bool) else position


def classes_of(series) -> list:
    """Sorted class labels of a pandas Series as JSON-able values (ints when all are integral)."""
    values = series.dropna().unique()
    keys = {category_key(v) for v in values}
    if all(k.lstrip("-").isdigit() for k in keys):
        return sorted(int(k) for k in keys)
    return sorted(keys)


def checked_classes(labels) -> list:
    """The classes of a target column, refusing one that leaves nothing to learn."""
    classes = classes_of(labels)
    if len(classes) < 2:
        raise DataError(f"target column '{labels.name}' has only one class ({classes}); nothing to learn")
    return classes


def encode_classes(series, classes: list, source: str | None = None) -> np.ndarray:
    """Class indices for a target column (a pandas Series), matched by the category rules of
    ``codecs.cells`` (the cell '1.0' of a CSV file is the class 1); unknown or missing labels
    raise DataError naming the row."""
    import pandas as pd

    values, uniques = pd.factorize(series, use_na_sentinel=True)  # each distinct label is looked up once
    known, keys = category_codes(np.asarray(uniques, dtype=object), {category_key(c): i for i, c in enumerate(classes)})
    codes = np.append(known, -1)[values]  # a missing label (-1) picks the final -1
    bad = np.flatnonzero(codes < 0)
    if len(bad):
        position = int(bad[0])
        shown = "a missing value" if values[position] < 0 else repr(keys[values[position]])
        raise DataError(
            f"target column '{series.name}': {shown} in {row_label(row_of(series, position), source)} is not "
            f"one of the classes the model knows ({', '.join(map(str, classes))})"
        )
    return codes


def class_codes(classes: list, values: list, key: str, source: str) -> list[int]:
    """The class indices of ``values`` (labels as in the target column); ``key`` names the spec
    key that lists them, for errors."""
    known = {category_key(c): i for i, c in enumerate(classes)}
    codes = []
    for value in values:
        if category_key(value) not in known:
            raise DataError(f"{key}: {value!r} is not a class of {source} (classes: {', '.join(map(str, classes))})")
        codes.append(known[category_key(value)])
    return codes
