"""Columns beyond numbers and categories: dates, free text, sets, vectors and categories too many
to one-hot (read through a learned embedding). Each reads a column's cells into a block of the
model's input matrix by its fitted state (a JSON dict, kept in model.json and runtime.json), with
numpy alone, so every door reads a cell the same way.

A column codec has ``width`` (positions in the matrix), ``feature_names``, ``encode(cells,
where, unknown) -> (rows, width)`` float32, ``code_size`` (for a code read through an embedding:
the number of codes, else 0), ``scaled`` (the positions that are standardised values) and
``inverse(block)`` (the cells back, for generative models). ``fit_column(kind, cells, name,
where)`` fits one from training cells.
"""

from __future__ import annotations

import datetime as _dt
import math
import re
from collections import Counter
from collections.abc import Sequence

import numpy as np

from ..errors import DataError
from .cells import Where, _cells, _more, category_codes, category_key, is_missing, numbers, shown
from .pictures import _pillow, read_image

MAX_WORDS = 1000  # a text column's vocabulary: its most frequent words in the training rows
MAX_SET_VALUES = 256  # a set column's values read one by one; the rest count together
SET_SEPARATORS = ("|", ";", ",")
WORD = re.compile(r"[^\W_]+", re.UNICODE)
_EPOCH = np.datetime64("1970-01-01T00:00:00", "s")
SECONDS_PER_DAY = 86_400.0
# the formats a date column's text may be in, tried in this order on the training cells
DATE_FORMATS = ("iso", "%m/%d/%Y", "%d/%m/%Y", "%Y/%m/%d", "%d.%m.%Y", "%d-%m-%Y", "%m-%d-%Y", "%m/%d/%y",
                "%d/%m/%y", "%d %b %Y", "%d %B %Y", "%b %d, %Y", "%B %d, %Y", "%b %d %Y", "%m/%d/%Y %H:%M",
                "%d/%m/%Y %H:%M", "%m/%d/%Y %H:%M:%S", "%d/%m/%Y %H:%M:%S", "%m/%d/%Y %I:%M %p")


def _scale(values: np.ndarray) -> tuple[float, float]:
    """Mean and standard deviation (1 for a constant) of present values."""
    if not len(values):
        return 0.0, 1.0
    mean, std = float(values.mean()), float(values.std())
    return mean, std if std > 0 and math.isfinite(std) else 1.0


# -- dates ------------------------------------------------------------------------------------------


def _parse_text(text: str, form: str) -> _dt.datetime:
    text = text.strip()
    if form == "iso":
        if text.endswith("Z"):
            text = text[:-1] + "+00:00"
        return _dt.datetime.fromisoformat(text)
    return _dt.datetime.strptime(text, form)


def _read_date(text: str, form: str) -> _dt.datetime:
    """A date in the column's form, or in ISO 8601, which every date column reads too."""
    try:
        return _parse_text(text, form)
    except ValueError:
        if form == "iso":
            raise
        return _parse_text(text, "iso")


def _seconds(moment) -> float:
    """Seconds since 1970-01-01 of a date or time; one with a time zone is read in UTC, one
    without as it stands."""
    if isinstance(moment, _dt.datetime):
        if moment.tzinfo is not None:
            moment = moment.astimezone(_dt.timezone.utc).replace(tzinfo=None)
        return (moment - _dt.datetime(1970, 1, 1)).total_seconds()
    return float((moment - _dt.date(1970, 1, 1)).days) * SECONDS_PER_DAY


def date_format(cells: Sequence, forms: Sequence[str] = DATE_FORMATS) -> str | None:
    """The first of ``forms`` that reads every present text cell (None when none does, or when a
    cell is a number: numbers are not read as dates)."""
    texts = {value.strip() for value in cells if isinstance(value, str) and not is_missing(value)}
    if not texts or any(not isinstance(v, str) and not is_missing(v) and not _is_moment(v) for v in cells):
        return None
    if all(re.fullmatch(r"[+-]?\d+(\.\d*)?", text) for text in texts):
        return None
    for form in forms:
        try:
            for text in texts:
                _parse_text(text, form)
        except ValueError:
            continue
        return form
    return None


def _is_moment(value) -> bool:
    return isinstance(value, (_dt.date, np.datetime64))


def moments(cells, form: str | None, column: str, where: Where) -> np.ndarray:
    """Seconds since 1970 of each cell (NaN for a missing one): text in the column's format, or a
    date or time value (a DataFrame's or Parquet file's).

    Raises:
        DataError: a cell that is not a date in that format, naming its row."""
    values = _cells(cells)
    out = np.full(len(values), np.nan)
    looked: dict = {}
    bad = []
    for row, value in enumerate(values):
        if is_missing(value):
            continue
        if isinstance(value, np.datetime64):
            if not np.isnat(value):
                out[row] = float((value.astype("datetime64[s]") - _EPOCH).astype(np.int64))
            continue
        if isinstance(value, _dt.date):
            if value == value:  # pandas' NaT is a date that is not equal to itself
                out[row] = _seconds(value)
            continue
        if isinstance(value, str) and form is not None:
            found = looked.get(value)
            if found is None:
                try:
                    found = looked[value] = _seconds(_read_date(value, form))
                except (ValueError, OverflowError):
                    bad.append(row)
                    continue
            out[row] = found
            continue
        bad.append(row)
    if bad:
        expected = "ISO 8601 (2024-03-15 or 2024-03-15T14:30)" if form in (None, "iso") else \
            f"the form {form} or ISO 8601 (2024-03-15)"
        raise DataError(f"column '{column}': {shown(values[bad[0]])} in {where(bad[0])} is not a date in "
                        f"{expected}{_more(len(bad) - 1)}; fix the value, or leave the cell empty for a missing date")
    return out


def date_parts(seconds: np.ndarray) -> dict[str, np.ndarray]:
    """Calendar parts of times given in seconds since 1970 (present values only): year, month
    (1-12), day of the week (0 = Monday), day of the year (1-366) and the time of day in seconds."""
    whole = np.floor(seconds).astype(np.int64)
    days = (whole // 86_400).astype("datetime64[D]")
    years = days.astype("datetime64[Y]")
    months = days.astype("datetime64[M]")
    return {
        "year": years.astype(np.int64) + 1970.0,
        "month": (months - years.astype("datetime64[M]")).astype(np.int64) + 1.0,
        "weekday": ((days.astype(np.int64) + 3) % 7).astype(np.float64),
        "yearday": (days - years.astype("datetime64[D]")).astype(np.int64) + 1.0,
        "clock": (whole % 86_400).astype(np.float64),
    }


class DateColumn:
    """A date or a date and time: the time itself (standardised), the year (standardised), and
    the month, day of the week and day of the year as points on a circle (sin, cos); a time of
    day on a circle too for ``datetime``; a missing indicator where training had missing dates,
    which are filled with the training median."""

    CYCLES = (("month", 12.0, 1.0), ("weekday", 7.0, 0.0), ("yearday", 365.25, 1.0))

    def __init__(self, state: dict):
        self.state = state
        self.name = state["name"]
        self.clock = state["kind"] == "datetime"
        self.width = 2 + 2 * len(self.CYCLES) + (2 if self.clock else 0) + (1 if state["indicator"] else 0)

    @classmethod
    def fit(cls, kind: str, cells, name: str, where: Where, form: str | None = None) -> dict:
        form = form if form is not None else date_format(_cells(cells))
        seconds = moments(cells, form, name, where)
        present = seconds[~np.isnan(seconds)]
        if not len(present):
            raise DataError(f"column '{name}' has no dates in the training rows; drop it with data.drop")
        days_mean, days_std = _scale(present / SECONDS_PER_DAY)
        year_mean, year_std = _scale(date_parts(present)["year"])
        return {"name": name, "kind": kind, "format": form, "days_mean": days_mean, "days_std": days_std,
                "year_mean": year_mean, "year_std": year_std, "fill": float(np.median(present)),
                "indicator": bool(np.isnan(seconds).any())}

    @property
    def feature_names(self) -> list[str]:
        names = [f"{self.name}:time", f"{self.name}:year"]
        for part, _, _ in self.CYCLES:
            names += [f"{self.name}:{part}_sin", f"{self.name}:{part}_cos"]
        if self.clock:
            names += [f"{self.name}:clock_sin", f"{self.name}:clock_cos"]
        return names + ([f"{self.name}__missing"] if self.state["indicator"] else [])

    code_size = 0

    @property
    def scaled(self) -> list[int]:
        return [0, 1]

    def encode(self, cells, where: Where, unknown: str = "error") -> np.ndarray:
        state = self.state
        seconds = moments(cells, state["format"], self.name, where)
        absent = np.isnan(seconds)
        seconds[absent] = state["fill"]
        parts = date_parts(seconds)
        columns = [(seconds / SECONDS_PER_DAY - state["days_mean"]) / state["days_std"],
                   (parts["year"] - state["year_mean"]) / state["year_std"]]
        for part, period, first in self.CYCLES:
            angle = 2 * np.pi * (parts[part] - first) / period
            columns += [np.sin(angle), np.cos(angle)]
        if self.clock:
            angle = 2 * np.pi * parts["clock"] / SECONDS_PER_DAY
            columns += [np.sin(angle), np.cos(angle)]
        if state["indicator"]:
            columns.append(absent.astype(np.float64))
        return np.stack(columns, axis=1).astype(np.float32)

    def inverse(self, block: np.ndarray) -> list:
        days = block[:, 0] * self.state["days_std"] + self.state["days_mean"]
        stamps = (np.round(days * SECONDS_PER_DAY).astype(np.int64)).astype("datetime64[s]")
        unit = "s" if self.clock else "D"
        return [str(stamp.astype(f"datetime64[{unit}]")) for stamp in stamps]


# -- free text --------------------------------------------------------------------------------------


def words(text) -> list[str]:
    """The words of a cell: runs of letters and digits, lower-cased (a missing cell has none)."""
    return [] if is_missing(text) else WORD.findall(str(text).lower())


class TextColumn:
    """Free text as a bag of words: the training rows' most frequent words (at most
    ``MAX_WORDS``, each in at least two rows when there are enough), each weighted by its rarity
    (TF-IDF, sublinear counts, each row scaled to length sqrt(its distinct words), so that a word
    weighs about 1 as a one-hot does), and the number of words (log, standardised). Words not in
    the vocabulary are left out. The model's first layer over this block is an embedding bag of
    the words."""

    def __init__(self, state: dict):
        self.state = state
        self.name = state["name"]
        self.vocabulary = {word: i for i, word in enumerate(state["words"])}
        self.idf = np.asarray(state["idf"], dtype=np.float64)
        self.width = len(state["words"]) + 1

    @classmethod
    def fit(cls, kind: str, cells, name: str, where: Where, max_words: int = MAX_WORDS) -> dict:
        rows = [set(words(cell)) for cell in _cells(cells)]
        counts = Counter(word for row in rows for word in row)
        if not counts:
            raise DataError(f"column '{name}' has no words in the training rows; drop it with data.drop")
        least = 2 if sum(count >= 2 for count in counts.values()) >= 10 else 1
        kept = sorted((word for word, count in counts.items() if count >= least), key=lambda w: (-counts[w], w))
        kept = sorted(kept[:max_words])
        n = len(rows)
        idf = [math.log((1 + n) / (1 + counts[word])) + 1.0 for word in kept]
        lengths = np.log1p([len(words(cell)) for cell in _cells(cells)])
        mean, std = _scale(np.asarray(lengths, dtype=np.float64))
        return {"name": name, "kind": kind, "words": kept, "idf": idf, "length_mean": mean, "length_std": std}

    @property
    def feature_names(self) -> list[str]:
        return [f"{self.name}:{word}" for word in self.state["words"]] + [f"{self.name}:length"]

    code_size = 0

    @property
    def scaled(self) -> list[int]:
        return [self.width - 1]

    def encode(self, cells, where: Where, unknown: str = "error") -> np.ndarray:
        values = _cells(cells)
        out = np.zeros((len(values), self.width), dtype=np.float64)
        vocabulary = self.vocabulary
        for row, value in enumerate(values):
            if not is_missing(value) and not isinstance(value, str):
                raise DataError(f"column '{self.name}': {shown(value)} in {where(row)} is not text; give the text, or "
                                "leave the cell empty")
            found = words(value)
            out[row, -1] = len(found)
            for word, count in Counter(found).items():
                position = vocabulary.get(word)
                if position is not None:
                    out[row, position] = 1.0 + math.log(count)
        out[:, :-1] *= self.idf
        norms = np.linalg.norm(out[:, :-1], axis=1, keepdims=True)
        present = np.sqrt((out[:, :-1] > 0).sum(axis=1, keepdims=True))
        # each row scaled to length sqrt(its words): a word's value is about 1, as a one-hot's, whatever the length
        out[:, :-1] *= np.where(norms > 0, present / np.where(norms > 0, norms, 1.0), 0.0)
        out[:, -1] = (np.log1p(out[:, -1]) - self.state["length_mean"]) / self.state["length_std"]
        return out.astype(np.float32)

    def inverse(self, block: np.ndarray) -> list:
        top = np.argsort(-block[:, :-1], axis=1)[:, :5]
        return [" ".join(self.state["words"][i] for i in row if block[r, i] > 0) for r, row in enumerate(top)]


# -- sets -------------------------------------------------------------------------------------------


def set_separator(cells: Sequence) -> str:
    """The separator of a set column's text: the first of ``SET_SEPARATORS`` its cells hold."""
    texts = [value for value in cells if isinstance(value, str)]
    for separator in SET_SEPARATORS:
        if any(separator in text for text in texts):
            return separator
    return SET_SEPARATORS[0]


def set_values(value, separator: str) -> list[str]:
    """The values of a set cell: text split at ``separator`` (spaces around each value dropped),
    or a list of values (a DataFrame's or JSON's); a missing cell is the empty set."""
    if isinstance(value, (list, tuple, set, frozenset, np.ndarray)):
        return [category_key(v).strip() for v in value if not is_missing(v) and category_key(v).strip()]
    if is_missing(value):
        return []
    return [piece.strip() for piece in category_key(value).split(separator) if piece.strip()]


class SetColumn:
    """Several values in one cell (``a|b|c``): one 0/1 feature per value seen in training (at most
    ``MAX_SET_VALUES``, the most frequent), and the count of other values (unseen ones
    included); a missing cell is the empty set."""

    def __init__(self, state: dict):
        self.state = state
        self.name = state["name"]
        self.index = {value: i for i, value in enumerate(state["values"])}
        self.width = len(state["values"]) + 1

    @classmethod
    def fit(cls, kind: str, cells, name: str, where: Where, separator: str | None = None) -> dict:
        values = _cells(cells)
        separator = separator or set_separator(values)
        counts = Counter(v for cell in values for v in set(set_values(cell, separator)))
        if not counts:
            raise DataError(f"column '{name}' has no values in the training rows; drop it with data.drop")
        kept = sorted(sorted(counts, key=lambda v: (-counts[v], v))[:MAX_SET_VALUES])
        return {"name": name, "kind": kind, "separator": separator, "values": kept}

    @property
    def feature_names(self) -> list[str]:
        return [f"{self.name}={value}" for value in self.state["values"]] + [f"{self.name}=<other>"]

    code_size = 0
    scaled: list[int] = []

    def encode(self, cells, where: Where, unknown: str = "error") -> np.ndarray:
        values = _cells(cells)
        out = np.zeros((len(values), self.width), dtype=np.float32)
        for row, cell in enumerate(values):
            for value in set(set_values(cell, self.state["separator"])):
                out[row, self.index.get(value, self.width - 1)] += 1.0
        return out

    def inverse(self, block: np.ndarray) -> list:
        names = self.state["values"]
        return [self.state["separator"].join(names[i] for i in np.flatnonzero(row[:-1] > 0.5)) for row in block]


# -- vectors ----------------------------------------------------------------------------------------


def vector_of(value) -> np.ndarray | None:
    """The numbers of a vector cell: a list or array, or text such as ``[0.1, 2, 3]`` or
    ``0.1 2 3`` (None for a missing cell); ValueError when it holds something else."""
    if isinstance(value, (list, tuple, np.ndarray)):
        return np.asarray(value, dtype=np.float64).ravel()
    if is_missing(value):
        return None
    if not isinstance(value, str):
        raise ValueError(value)
    text = value.strip().removeprefix("[").removesuffix("]")
    pieces = [piece for piece in re.split(r"[\s,;]+", text) if piece]
    return np.asarray([float(piece) for piece in pieces], dtype=np.float64)


def vectors(cells, column: str, where: Where, size: int | None) -> np.ndarray:
    """(rows, size) numbers of a vector column, NaN rows for missing cells.

    Raises:
        DataError: a cell that is not a list of ``size`` finite numbers, naming its row."""
    values = _cells(cells)
    found: list = []
    for row, value in enumerate(values):
        try:
            vector = vector_of(value)
        except (ValueError, TypeError):
            raise DataError(f"column '{column}': {shown(value)} in {where(row)} is not a list of numbers (such as "
                            "[0.5, 1, 2])") from None
        if vector is not None:
            size = len(vector) if size is None else size
            if len(vector) != size:
                raise DataError(f"column '{column}': {where(row)} holds {len(vector)} numbers, training rows {size}; "
                                "give every row a vector of the same length")
            if not np.isfinite(vector).all():
                raise DataError(f"column '{column}': {where(row)} holds a value that is not a finite number")
        found.append(vector)
    size = size or 1
    return np.stack([np.full(size, np.nan) if v is None else v for v in found]) if found else np.zeros((0, size))


class VectorColumn:
    """A list of numbers in one cell (an embedding, a short signal): each position standardised
    with its training mean and deviation; a missing cell is filled with the means, with a missing
    indicator where training had missing cells."""

    def __init__(self, state: dict):
        self.state = state
        self.name = state["name"]
        self.size = len(state["means"])
        self.means, self.stds = np.asarray(state["means"]), np.asarray(state["stds"])
        self.width = self.size + (1 if state["indicator"] else 0)

    @classmethod
    def fit(cls, kind: str, cells, name: str, where: Where) -> dict:
        found = vectors(cells, name, where, None)
        absent = np.isnan(found).all(axis=1)
        present = found[~absent]
        if not len(present):
            raise DataError(f"column '{name}' has no values in the training rows; drop it with data.drop")
        stds = present.std(axis=0)
        return {"name": name, "kind": kind, "means": present.mean(axis=0).tolist(),
                "stds": np.where(stds > 0, stds, 1.0).tolist(), "indicator": bool(absent.any())}

    @property
    def feature_names(self) -> list[str]:
        return [f"{self.name}[{i}]" for i in range(self.size)] + ([f"{self.name}__missing"]
                                                                  if self.state["indicator"] else [])

    code_size = 0

    @property
    def scaled(self) -> list[int]:
        return list(range(self.size))

    def encode(self, cells, where: Where, unknown: str = "error") -> np.ndarray:
        found = vectors(cells, self.name, where, self.size)
        absent = np.isnan(found).all(axis=1)
        found[absent] = self.means
        out = (found - self.means) / self.stds
        if self.state["indicator"]:
            out = np.concatenate([out, absent[:, None]], axis=1)
        return out.astype(np.float32)

    def inverse(self, block: np.ndarray) -> list:
        return [list(row) for row in block[:, : self.size] * self.stds + self.means]


# -- numbers by their quantiles ---------------------------------------------------------------------

QUANTILES = 200  # points of a number column's distribution kept to map it onto a normal's


class QuantileColumn:
    """A number read by its place among the training values: each value goes to the standard
    normal's value at its quantile (piecewise linear between ``QUANTILES`` training quantiles;
    beyond the training range, the end points), so that a heavy tail or a few huge values do not
    squeeze the rest into a sliver. A missing value is the median, with a missing indicator where
    training had missing values."""

    def __init__(self, state: dict):
        self.state = state
        self.name = state["name"]
        self.points = np.asarray(state["points"], dtype=np.float64)
        self.scores = np.asarray(state["scores"], dtype=np.float64)
        self.width = 1 + (1 if state["indicator"] else 0)

    @classmethod
    def fit(cls, kind: str, cells, name: str, where: Where) -> dict:
        from scipy.special import ndtri  # fitting runs where scipy is (scikit-learn's dependency)

        values = numbers(cells, name, where, hint="fix the values or give the column another type in data.features")
        present = values[~np.isnan(values)]
        if not len(present):
            raise DataError(f"column '{name}' has no values in the training rows; drop it with data.drop")
        levels = np.linspace(0, 1, min(QUANTILES, len(present)))
        found = np.quantile(present, levels)
        scores = ndtri(np.clip(levels, 1e-3, 1 - 1e-3))
        points, inverse = np.unique(found, return_inverse=True)  # tied quantiles: their mean score
        merged = np.bincount(inverse, weights=scores) / np.bincount(inverse)
        return {"name": name, "kind": kind, "points": points.tolist(), "scores": merged.tolist(),
                "fill": float(np.median(present)), "indicator": bool(np.isnan(values).any())}

    @property
    def feature_names(self) -> list[str]:
        return [self.name] + ([f"{self.name}__missing"] if self.state["indicator"] else [])

    code_size = 0

    @property
    def scaled(self) -> list[int]:
        return [0]

    def encode(self, cells, where: Where, unknown: str = "error") -> np.ndarray:
        values = numbers(cells, self.name, where, hint="fix the values")
        absent = np.isnan(values)
        values[absent] = self.state["fill"]
        if len(self.points) == 1:
            out = np.zeros((len(values), 1))
        else:
            out = np.interp(values, self.points, self.scores)[:, None]
        if self.state["indicator"]:
            out = np.concatenate([out, absent[:, None]], axis=1)
        return out.astype(np.float32)

    def inverse(self, block: np.ndarray) -> list:
        if len(self.points) == 1:
            return [float(self.points[0])] * len(block)
        return np.interp(block[:, 0], self.scores, self.points).tolist()


# -- pictures ---------------------------------------------------------------------------------------

IMAGE_SIDE = 32  # the largest side a picture column's images are resized to


def _base_folder(where: Where):
    """The folder a table's image paths are relative to: its file's, or the current one."""
    from pathlib import Path

    source = Path(str(where.source)) if where.source else None
    return source.parent if source is not None and source.is_file() else Path.cwd()


class ImageColumn:
    """A path to a picture file (relative to the table's folder, or absolute): the picture,
    converted to the training images' channels, resized to ``size``, its pixels scaled to [-1, 1]
    in the matrix (channels, rows, columns flattened). A missing path is a blank (zero) picture."""

    def __init__(self, state: dict):
        self.state = state
        self.name = state["name"]
        self.channels, self.size = state["channels"], tuple(state["size"])
        self.width = self.channels * self.size[0] * self.size[1]

    @classmethod
    def fit(cls, kind: str, cells, name: str, where: Where) -> dict:
        Image = _pillow()
        base = _base_folder(where)
        paths = [v for v in _cells(cells) if not is_missing(v)][:50]
        if not paths:
            raise DataError(f"column '{name}' has no picture paths in the training rows; drop it with data.drop")
        sizes, colour = [], False
        for value in paths:
            path = _image_path(value, base)
            try:
                with Image.open(path) as image:
                    sizes.append(image.size)  # (width, height)
                    colour = colour or image.mode not in ("L", "1", "I", "I;16", "F", "LA")
            except OSError as error:
                raise DataError(f"column '{name}': {path} cannot be read as a picture ({error})") from None
        width, height = (int(np.median([size[i] for size in sizes])) for i in (0, 1))
        scale = min(1.0, IMAGE_SIDE / max(width, height))
        size = [max(1, round(height * scale)), max(1, round(width * scale))]
        return {"name": name, "kind": kind, "channels": 3 if colour else 1, "size": size}

    @property
    def feature_names(self) -> list[str]:
        return [f"{self.name}[{i}]" for i in range(self.width)]

    code_size = 0
    scaled: list[int] = []

    def encode(self, cells, where: Where, unknown: str = "error") -> np.ndarray:
        base = _base_folder(where)
        values = _cells(cells)
        out = np.zeros((len(values), self.width), dtype=np.float32)
        for row, value in enumerate(values):
            if is_missing(value):
                continue
            if not isinstance(value, str):
                raise DataError(f"column '{self.name}': {shown(value)} in {where(row)} is not a path to a picture")
            path = _image_path(value, base)
            if not path.is_file():
                raise DataError(f"column '{self.name}': {where(row)} names {path}, which is not a file; give a "
                                "picture's path, relative to the table's folder")
            out[row] = read_image(path, self.size, self.channels).ravel() * 2 - 1
        return out

    def inverse(self, block: np.ndarray) -> list:
        return [None] * len(block)


def _image_path(value, base):
    from pathlib import Path

    path = Path(str(value).strip()).expanduser()
    return path if path.is_absolute() else base / path


# -- categories through an embedding ----------------------------------------------------------------


class EmbeddedColumn:
    """A category column with too many values to one-hot: one position holding the category's
    code (1, 2, ...), which the model reads through a learned embedding. Code 0 is a bucket for
    values seen once in training, missing values and values never seen: a column of many values
    meets new ones, and the bucket has been trained."""

    def __init__(self, state: dict):
        self.state = state
        self.name = state["name"]
        self.index = {key: i + 1 for i, key in enumerate(state["categories"])}
        self.width = 1
        self.code_size = len(state["categories"]) + 1

    @classmethod
    def fit(cls, kind: str, cells, name: str, where: Where) -> dict:
        counts = Counter(category_key(v) for v in _cells(cells) if not is_missing(v))
        kept = sorted(key for key, count in counts.items() if count >= 2)
        return {"name": name, "kind": kind, "categories": kept}

    @property
    def feature_names(self) -> list[str]:
        return [self.name]

    scaled: list[int] = []

    def encode(self, cells, where: Where, unknown: str = "error") -> np.ndarray:
        codes, _ = category_codes(cells, self.index)
        return np.maximum(codes, 0).astype(np.float32)[:, None]

    def inverse(self, block: np.ndarray) -> list:
        names = ["<other>", *self.state["categories"]]
        return [names[int(np.clip(round(float(code)), 0, len(names) - 1))] for code in block[:, 0]]


COLUMN_CODECS = {"date": DateColumn, "datetime": DateColumn, "text": TextColumn, "set": SetColumn,
                 "vector": VectorColumn, "embedded": EmbeddedColumn, "quantile": QuantileColumn, "image": ImageColumn}


def column_codec(state: dict):
    """The codec of a fitted column of one of the kinds above."""
    return COLUMN_CODECS[state["kind"]](state)


def fit_column(kind: str, cells, name: str, where: Where, **options) -> dict:
    """The fitted state of a column of ``kind`` from its training cells."""
    return COLUMN_CODECS[kind].fit(kind, cells, name, where, **options)
