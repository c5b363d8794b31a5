"""The type of every column of a table, by rules a user can read, and the schema table that
``layerforge schema`` and training print. Pandas and numpy only (no torch), so that inspecting a
file answers at once.

The rules, in order, for a column's present cells:

* true/false values (``true``/``false``, a boolean column): ``binary``;
* a column of dates or times, or text that is dates in one form (ISO ``2024-03-15``,
  ``15/03/2024``, ``Mar 15, 2024``, ...): ``date``, or ``datetime`` when any has a time of day;
* numbers (or text that is numbers): ``number``; whole numbers all different in a column named
  like an identifier (``id``, ``customer_id``, ``key``) or counting 1, 2, 3, ...: ``identifier``;
* lists of numbers (``[0.1, 2, 3]``, a list in a DataFrame's cell) of one length: ``vector``;
* paths to picture files (``cats/001.png``): ``image``;
* values joined by ``|`` in at least a fifth of the cells (``drama|comedy``): ``set``;
* text of three words or more on average, or of two or more words with many different values:
  ``text``;
* a different short value in every row (at least 20 rows): ``identifier``, left out;
* anything else: ``category`` (one-hot up to ``MAX_ONE_HOT`` values, a learned embedding beyond).

``data.features: {column: type}`` overrides the rule for a column; ``data.categorical`` makes a
column a ``category``.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field

import numpy as np

from ..codecs.cells import is_missing
from ..codecs.columns import date_format, vector_of
from ..errors import DataError
from ..figures import Table

TYPES = ("number", "binary", "category", "date", "datetime", "text", "set", "vector", "image", "identifier")
MAX_ONE_HOT = 50  # a category column of more values is read through a learned embedding
MIN_IDENTIFIER_ROWS = 20
IMAGE_FILES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
_IDENTIFIER_NAME = re.compile(r"(^|[^a-z])(id|ids|key|uuid|guid|index)$|^(id|key|uuid|guid)([^a-z]|$)|[a-z]Id$|ID$",
                              re.IGNORECASE)
SAMPLE = 2000  # cells looked at to tell text, sets and identifiers apart


@dataclass
class Column:
    """One column as the schema shows it.

    Attributes:
        name: the column.
        type: one of ``TYPES``; ``role`` says what the run does with it.
        role: 'feature', 'target', 'left out' (identifiers) or 'dropped' (``data.drop``).
        missing: the share of missing cells.
        distinct: different present values.
        detail: how it is read (a date's form, one-hot or embedding, the separator of a set).
        warnings: what a user should know about it.
        given: whether ``data.features`` or ``data.categorical`` named its type.
    """

    name: str
    type: str
    role: str = "feature"
    missing: float | None = 0.0
    distinct: int | None = 0
    detail: str = ""
    warnings: list[str] = field(default_factory=list)
    given: bool = False


def _present(series):
    values = series.to_numpy()
    if values.dtype.kind == "O":
        return [v for v in values.tolist() if not is_missing(v)]
    return list(series.dropna().to_numpy())


def _distinct(values: list) -> int:
    try:
        return len(set(values))
    except TypeError:  # lists in cells
        return len({repr(v) for v in values})


def distinct_values(series) -> int:
    """Different present values of a column (lists in cells counted by their contents)."""
    return _distinct(_present(series))


def _as_numbers(values: list) -> np.ndarray | None:
    if any(isinstance(v, (bool, np.bool_)) for v in values):
        return None
    try:
        return np.asarray([float(v) for v in values], dtype=np.float64)
    except (TypeError, ValueError):
        return None


def _identifier_numbers(name: str, numbers: np.ndarray, rows: int) -> bool:
    if len(numbers) < MIN_IDENTIFIER_ROWS or len(numbers) != rows or not np.isfinite(numbers).all() \
            or not np.all(np.mod(numbers, 1) == 0):
        return False
    if len(np.unique(numbers)) != len(numbers):
        return False
    ordered = np.sort(numbers)
    return bool(_IDENTIFIER_NAME.search(name)) or bool(np.all(np.diff(ordered) == 1))


def infer(series, name: str | None = None) -> tuple[str, str]:
    """The type of a column (a pandas Series) by the rules above, and how it reads."""
    import pandas as pd

    name = str(series.name if name is None else name)
    values = _present(series)
    rows = len(series)
    if not values:
        return "number", "no values"
    if pd.api.types.is_bool_dtype(series):
        return "binary", ""
    if pd.api.types.is_datetime64_any_dtype(series):
        return _date_or_time(pd.to_datetime(series.dropna())), ""
    if pd.api.types.is_numeric_dtype(series):
        numbers = series.dropna().to_numpy(dtype=np.float64)
        return ("identifier", "a different whole number in every row") if _identifier_numbers(name, numbers, rows) \
            else ("number", "")
    if all(isinstance(v, (str, bool, np.bool_)) for v in values) and \
            {str(v).strip().lower() for v in values} <= {"true", "false"}:
        return "binary", ""
    sample = values[:SAMPLE]
    if all(isinstance(v, (list, tuple, np.ndarray)) for v in sample):
        return _vector_or_set(values)
    texts = [v for v in sample if isinstance(v, str)]
    numbers = _as_numbers(values)
    if numbers is not None:
        if _identifier_numbers(name, numbers, rows):
            return "identifier", "a different whole number in every row"
        return "number", "numbers stored as text"
    words_among = sum(_as_numbers([v]) is None for v in values)
    if words_among <= 0.5 * len(values):  # numbers with a few words among them: a typo, not categories
        return "number", f"numbers, but {words_among} cell{'s' if words_among > 1 else ''} of text"
    if len(texts) < len(sample):  # a mix of Python values: read as categories
        return "category", ""
    form = date_format(values)
    if form is not None:
        kind = _date_or_time(pd.to_datetime(pd.Series(values[:SAMPLE]), format="ISO8601" if form == "iso" else form,
                                            utc=True, errors="coerce").dropna())
        swapped = _swapped(form)
        either = swapped is not None and date_format(values, (swapped,)) is not None
        return kind, f"dates as text ({'ISO 8601' if form == 'iso' else form}" + \
            (f"; {swapped} reads them too)" if either else ")")
    if all(t.strip().startswith("[") and t.strip().endswith("]") for t in texts):
        try:
            sizes = {len(vector_of(t)) for t in values}
        except ValueError:
            sizes = set()
        if len(sizes) == 1:
            return "vector", f"{sizes.pop()} numbers"
    if sum(t.strip().lower().endswith(IMAGE_FILES) for t in texts) >= 0.9 * len(texts):
        return "image", "paths to picture files"
    if sum("|" in t for t in texts) >= 0.2 * len(texts):
        return "set", "values joined by |"
    counts = [len(t.split()) for t in texts]  # words between spaces: snake_case stays one
    mean_words = float(np.mean(counts))
    distinct = _distinct(values)
    if mean_words >= 3 or (mean_words >= 2 and distinct > MAX_ONE_HOT and distinct >= 0.3 * len(values)):
        return "text", f"{mean_words:.1f} words a row on average"
    if distinct == rows and rows >= MIN_IDENTIFIER_ROWS:
        return "identifier", "a different value in every row"
    return "category", ""


def _swapped(form: str) -> str | None:
    """The form with day and month the other way round (None when there is no such form)."""
    if "%m" not in form or "%d" not in form:
        return None
    return form.replace("%m", "\0").replace("%d", "%m").replace("\0", "%d")


def _date_or_time(moments) -> str:
    if not len(moments):
        return "date"
    moments = moments.dt.tz_convert(None) if getattr(moments.dt, "tz", None) is not None else moments
    return "datetime" if bool((moments != moments.dt.normalize()).any()) else "date"


def _vector_or_set(values: list) -> tuple[str, str]:
    try:
        sizes = {len(np.asarray(v, dtype=np.float64).ravel()) for v in values}
    except (TypeError, ValueError):
        return "set", "lists of values"
    return ("vector", f"{sizes.pop()} numbers") if len(sizes) == 1 else ("set", "lists of values")


def codec_kind(type_: str, distinct: int) -> str:
    """The fitted column kind a type is read by (``codecs``): e.g. a category of many values is
    'embedded'."""
    if type_ == "category":
        return "categorical" if distinct <= MAX_ONE_HOT else "embedded"
    return {"number": "numeric", "binary": "boolean"}.get(type_, type_)


def detail_of(type_: str, distinct: int, how: str) -> str:
    if type_ == "category":
        return f"one-hot, {distinct} values" if distinct <= MAX_ONE_HOT else f"embedding, {distinct} values"
    return how


def describe(frame, *, target: str | list[str] | None = None, types: dict[str, str] | None = None,
             categorical: list[str] = (), drop: list[str] = (), features: list[str] | None = None) -> list[Column]:
    """Every column of ``frame`` with its type, role, missing share, distinct values and warnings.

    Args:
        target: the column to predict (or several): checked for imbalance, and the others for
            leaking it.
        types: column -> type named by the spec (``data.features`` as a mapping).
        categorical: columns the spec makes categories.
        drop: columns the spec drops.
        features: the only feature columns (``data.features`` as a list).
    """
    types = dict(types or {})
    for name in types:
        if name not in frame.columns:
            raise DataError(f"data.features: no column '{name}' (columns: {', '.join(map(str, frame.columns[:30]))})")
        if types[name] not in TYPES[:-1]:
            raise DataError(f"data.features.{name}: unknown type '{types[name]}' (choices: {', '.join(TYPES[:-1])})")
    columns = []
    rows = len(frame)
    targets = target if isinstance(target, list) else [target]
    for name in frame.columns:
        series = frame[name]
        given = name in types or name in categorical
        if name in types:
            kind, how = types[name], "named in data.features"
        elif name in categorical:
            kind, how = "category", "named in data.categorical"
        else:
            kind, how = infer(series, name)
            if kind == "identifier" and features is not None and name in features:  # listed: used as it is
                kind = "number" if how.startswith("a different whole number") else "category"
        present = _present(series)
        distinct = _distinct(present)
        role = "target" if name in targets else "dropped" if name in drop else \
            "dropped" if features is not None and name not in features else \
            "left out" if kind == "identifier" and features is None else "feature"
        column = Column(str(name), kind, role, float(1 - len(present) / rows) if rows else 0.0, distinct,
                        detail_of(kind, distinct, how), given=given)
        column.warnings = _warnings(column, series, rows, how)
        columns.append(column)
    for name in targets:
        if name is not None and name in frame.columns:
            with np.errstate(all="ignore"), warnings.catch_warnings():  # huge or constant values: no warning to give
                warnings.simplefilter("ignore", RuntimeWarning)
                _leaks(columns, frame, name)
    return columns


def _warnings(column: Column, series, rows: int, how: str) -> list[str]:
    found = []
    if column.role == "left out":
        found.append("identifier-like: left out (name its type in data.features to use it)")
    if column.distinct <= 1 and rows > 1:
        found.append("constant: carries nothing to learn from")
    if column.missing >= 0.5:
        found.append(f"{column.missing:.0%} missing")
    if how.startswith("dates as text"):
        found.append("dates stored as text: read as dates")
        if "reads them too" in how:
            found.append("day and month could be either way round: read as the first form; write the dates as "
                         "ISO 8601 (2024-03-15) to be sure")
    if how == "numbers stored as text":
        found.append("numbers stored as text: read as numbers")
    if how.startswith("numbers, but"):
        found.append(f"{how.removeprefix('numbers, but ')} among numbers: fix those cells, or name the column's "
                     "type in data.features")
    if column.role == "target" and column.type in ("binary", "category") and rows:
        counts = series.value_counts(dropna=True)
        if len(counts) > 1 and counts.iloc[-1] / counts.sum() < 0.05:
            found.append(f"imbalanced: the rarest class '{counts.index[-1]}' is {counts.iloc[-1] / counts.sum():.1%} "
                         "of rows")
    return found


def _leaks(columns: list[Column], frame, target: str) -> None:
    """Warn on a feature that predicts the target almost perfectly (a leak, or a copy of it):
    each of its values' most common target is right for 99% of rows (numbers in 20 bins), or,
    for a number target, |correlation| of 0.99 or more."""
    import pandas as pd

    labels = frame[target]
    numeric_target = pd.api.types.is_numeric_dtype(labels) and labels.nunique() > 20
    for column in columns:
        if column.role != "feature" or column.type not in ("number", "binary", "category"):
            continue
        series = frame[column.name]
        if numeric_target:
            values = pd.to_numeric(series, errors="coerce").replace([np.inf, -np.inf], np.nan)
            if values.nunique() > 1 and abs(values.corr(labels.astype(float))) >= 0.99:
                column.warnings.append(f"predicts the target '{target}' almost perfectly (correlation "
                                       f"{values.corr(labels.astype(float)):.3f}): a leak?")
            continue
        keys = series.astype(str)
        if column.type == "number" and column.distinct > 20:
            values = pd.to_numeric(series, errors="coerce").replace([np.inf, -np.inf], np.nan)
            if values.nunique() < 2:
                continue
            keys = pd.qcut(values, 20, duplicates="drop").astype(str)
        if keys.nunique() >= 0.5 * len(keys):
            continue
        right = labels.groupby(keys.to_numpy()).agg(lambda s: s.value_counts().iloc[0]).sum()
        if labels.nunique() > 1 and right / len(labels) >= 0.99:
            column.warnings.append(f"predicts the target '{target}' for {right / len(labels):.1%} of rows: a leak?")


def feature_types(columns: list[Column]) -> dict[str, str]:
    """The feature columns' types, in order; a category of more than ``MAX_ONE_HOT`` values in
    the whole table is 'embedded' (read through an embedding), as the schema says."""
    return {column.name: "embedded" if column.type == "category" and (column.distinct or 0) > MAX_ONE_HOT
            else column.type for column in columns if column.role == "feature"}


def rows_of(columns: list[Column]) -> list[list[str]]:
    """The schema as table rows: column, type, role, missing, distinct, how it is read, warnings."""
    return [[c.name, c.type, c.role, "-" if c.missing is None else f"{c.missing:.0%}",
             "-" if c.distinct is None else str(c.distinct), c.detail, "; ".join(c.warnings)] for c in columns]


HEADER = ["column", "type", "role", "missing", "distinct", "read as", "warnings"]


def schema_table(columns: list[Column], *, all_rows: bool = True, title: str = "columns"):
    """The schema as a ``figures.Table``; with ``all_rows`` False, plain number columns without
    warnings are counted in the title instead of listed (a table of 64 pixels)."""
    shown = columns if all_rows or len(columns) <= 20 else \
        [c for c in columns if c.type != "number" or c.warnings or c.role != "feature"]
    hidden = len(columns) - len(shown)
    if hidden:
        title += f" ({hidden} more plain number columns not listed)"
    return Table(HEADER, rows_of(shown), title)
