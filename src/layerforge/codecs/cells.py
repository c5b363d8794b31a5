"""The one reader of cells: what a missing value, a number, a true/false value and a category
key are, for a cell of a CSV file (text), a JSON request, a Parquet file or a DataFrame alike.

A column's type comes from the fitted state (the preprocessing the run keeps), never from the
other cells of the file or of the chunk being read: the same cell reads the same way wherever it
stands. Numpy only.

The rules:

* **missing**: ``None``, NaN, pandas' NA, and the text cells pandas reads as missing (``""``,
  ``NA``, ``null``, ``NaN``, ...; ``MISSING_WORDS``).
* **numbers**: numbers (not ``true``/``false``), and text in the decimal notation CSV readers
  agree on: ASCII digits with an optional sign, point and exponent, spaces or tabs around them
  (``-1.5e3``, `` 12``). Not ``1_000``, ``١٢`` (other scripts' digits), ``12\\xa0``, ``0x10`` or
  ``1,5``: each is refused with the row that holds it. ``inf`` and ``Infinity`` are read and then
  refused as infinite.
* **true/false**: ``true``/``false`` (any case), ``1``/``0``, ``1.0``/``0.0``, JSON true and
  false, and the numbers 0 and 1. Not ``yes``, ``on`` or ``t``.
* **category keys**: text is its own key (``01001`` stays ``01001``); a number's key is its
  shortest text (``3``, ``3.0`` and ``np.int64(3)`` are ``3``; ``np.float32(0.1)`` is ``0.1``);
  true/false are ``true``/``false``. A cell whose own key is not a known category but which is a
  number whose key is (the cell ``3.0`` for the category ``3``) is that category; so is a double
  that is exactly a float32 whose key is (0.10000000149011612 for the float32 category ``0.1``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import DataError

# the words pandas.read_csv takes for a missing value (its default na_values)
MISSING_WORDS = frozenset({"", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
                           "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"})
MISSING_CATEGORY = "<missing>"
TRUE_WORDS = frozenset({"true", "1", "1.0"})
FALSE_WORDS = frozenset({"false", "0", "0.0"})
_NUMBER = re.compile(r"[ \t]*[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?[ \t]*", re.ASCII)
_INFINITE = re.compile(r"[ \t]*[+-]?(?:inf|infinity)[ \t]*", re.IGNORECASE)
_LENIENT = ("_", "\n", "\r", "\x0b", "\x0c")  # what float() reads and decimal notation does not (ASCII)
_SEPARATOR = "\x1f"


class Where:
    """Names a row for messages: 'row 3', or 'row 3 (line 4 of data.csv)' for a CSV or TSV file.

    Args:
        source: the file (or 'the CSV body'), or None.
        first: the rows before these in the source (a block of a large file).
        rows: each row's position in the source, when the rows are a selection of it.
    """

    def __init__(self, source: str | None = None, first: int = 0, rows: np.ndarray | None = None):
        self.source, self.first, self.rows = source, first, rows

    def __call__(self, row: int) -> str:
        position = int(self.rows[row]) if self.rows is not None else self.first + row
        if self.source and str(self.source).lower().endswith((".csv", ".tsv")):
            return f"row {position + 1} (line {position + 2} of {Path(self.source).name})"
        return f"row {position + 1}"

    @property
    def file(self) -> str:
        """' in data.csv', or '' when the rows come from no file."""
        return f" in {self.source}" if self.source else ""


def shown(value) -> str:
    """A cell as a message quotes it: text in quotes, numpy scalars as the Python values they are."""
    if isinstance(value, np.generic):
        value = value.item()
    return repr(value)


def is_missing(value) -> bool:
    """Whether one cell is a missing value."""
    if value is None:
        return True
    if isinstance(value, str):
        return value in MISSING_WORDS
    if isinstance(value, (float, np.floating)):
        return math.isnan(value)
    return type(value).__name__ in ("NAType", "NaTType")  # pandas' NA and NaT, without importing pandas


def _more(count: int) -> str:
    return f" and {count} more row{'s' if count > 1 else ''}" if count else ""


def _number(value) -> float | None:
    """The number one present cell holds, or None when it holds something else."""
    if isinstance(value, str):
        if _NUMBER.fullmatch(value):
            return float(value)
        return math.inf if _INFINITE.fullmatch(value) else None
    if isinstance(value, (bool, np.bool_)):
        return None
    if isinstance(value, (int, float, np.integer, np.floating)):
        return float(value)
    return None


def _text_numbers(values: Sequence) -> np.ndarray | None:
    """Every cell of a column of text parsed at once, when all are plainly decimal numbers (the
    common case); else None: see ``_decimal_text``."""
    try:
        joined = _SEPARATOR.join(values)  # refuses anything but text, at C speed
    except TypeError:
        return None
    return _decimal_text(values, joined)


def _decimal_text(cells: list, joined: str) -> np.ndarray | None:
    """Text cells (a list, or a list of columns) as float64 when every one is a finite decimal
    number, else None. What float() reads beyond the decimal notation needs a character outside
    ASCII (other scripts' digits, a no-break space), an underscore, a line or page break around
    the number, or letters that make it infinite or NaN: ruled out by C-speed scans of the cells
    joined, and by the result being finite; an empty cell, '1e' or '--1' fail the conversion."""
    if not joined.isascii() or any(mark in joined for mark in _LENIENT):
        return None
    try:
        found = np.array(cells, dtype=np.float64)
    except ValueError:
        return None
    return found if np.isfinite(found).all() else None


_PLAIN = (float, int, type(None))


def plain_numbers(columns: list) -> np.ndarray | None:
    """Several number columns' cells at once, (columns, rows) float64 with NaN where a cell is
    missing, when every cell is plainly a finite number or missing: numeric arrays (NaN for a
    missing value), JSON numbers and nulls, or decimal text. None sends the columns through ``numbers``
    one by one, which names the first cell it refuses. A request's row of 64 columns is read in
    one conversion instead of 64."""
    if not columns:
        return None
    try:
        if all(isinstance(c, np.ndarray) and c.dtype.kind in "fiu" for c in columns):
            found = np.stack([c.astype(np.float64, copy=False) for c in columns])
        elif all(type(v) in _PLAIN for c in columns for v in c):  # not bool: JSON true is refused
            found = np.array(columns, dtype=np.float64)
        else:  # text: joining refuses anything else, at C speed
            return _decimal_text(columns, _SEPARATOR.join(_SEPARATOR.join(c) for c in columns))
    except (TypeError, ValueError):
        return None
    return None if np.isinf(found).any() else found


def numbers(values, column: str, where: Where, *, boolean: bool = False,
            hint: str = "fix the values") -> np.ndarray:
    """A column's cells as float64, NaN where a cell is missing.

    Args:
        values: the cells (an array or a list): numbers, text, booleans, None.
        column: the column's name, for messages.
        where: names a row for messages.
        boolean: read true/false values (1.0 and 0.0) rather than numbers.
        hint: what a message tells the user to do about a cell that is not readable.

    Raises:
        DataError: a cell that is not a number (or true/false), or an infinite number, naming
            the column, the row and how many more rows are alike.
    """
    array = values if isinstance(values, np.ndarray) else None
    if array is not None and array.dtype.kind == "b":
        if boolean:
            return array.astype(np.float64)
        raise DataError(f"column '{column}': expected numbers, found true/false values{where.file}; {hint}")
    if array is not None and array.dtype.kind in "iuf":
        found = array.astype(np.float64)
        if boolean:
            _check_flags(found, values, column, where, hint)
        else:
            _check_finite(found, values, column, where)
        return found
    cells = values.tolist() if array is not None else list(values)
    found = None if boolean else _text_numbers(cells)
    if found is not None:
        _check_finite(found, cells, column, where)  # '1e400' reads as infinity
        return found
    found = np.empty(len(cells), dtype=np.float64)
    bad = []
    for row, value in enumerate(cells):
        if is_missing(value):
            found[row] = np.nan
            continue
        number = _flag(value) if boolean else _number(value)
        if number is None:
            bad.append(row)
            number = np.nan
        found[row] = number
    if bad:
        expected = "true/false values" if boolean else "numbers"
        raise DataError(f"column '{column}': expected {expected}, found {shown(cells[bad[0]])} in {where(bad[0])}"
                        f"{_more(len(bad) - 1)}; {hint}")
    _check_finite(found, cells, column, where)
    return found


def _flag(value) -> float | None:
    """1.0 or 0.0 for one present true/false cell, or None."""
    if isinstance(value, (bool, np.bool_)):
        return float(value)
    if isinstance(value, str):
        word = value.strip().lower()
        return 1.0 if word in TRUE_WORDS else 0.0 if word in FALSE_WORDS else None
    if isinstance(value, (int, float, np.integer, np.floating)) and value in (0, 1):
        return float(value)
    return None


def _check_flags(found: np.ndarray, values, column: str, where: Where, hint: str) -> None:
    bad = np.flatnonzero(~np.isnan(found) & (found != 0) & (found != 1))
    if len(bad):
        raise DataError(f"column '{column}': expected true/false values, found {shown(values[bad[0]])} in "
                        f"{where(int(bad[0]))}{_more(len(bad) - 1)}; {hint}")


def _check_finite(found: np.ndarray, values, column: str, where: Where) -> None:
    infinite = np.flatnonzero(np.isinf(found))
    if len(infinite):
        raise DataError(f"column '{column}': an infinite value in {where(int(infinite[0]))}"
                        f"{_more(len(infinite) - 1)}; fix or drop those rows")


def category_key(value) -> str:
    """A present cell's category key: text as it is, a number as its shortest text (3, 3.0
    and '3' as a number are '3'), true/false as 'true'/'false'."""
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        if float(value).is_integer() and abs(value) < 2**53:
            return str(int(value))
        return str(value)  # numpy's shortest text at the value's own precision: np.float32(0.1) is '0.1'
    return str(value)


def number_key(value) -> str | None:
    """The key of the number a text cell holds ('3.0' -> '3'), or None when it holds none."""
    number = _number(value) if isinstance(value, str) else None
    return None if number is None or math.isinf(number) else category_key(number)


def _cells(values) -> list:
    """A column's cells as a list; a numeric array's as numpy scalars, which keep their
    precision's text (``tolist`` would make float32 0.1 the double 0.10000000149011612)."""
    if isinstance(values, np.ndarray):
        return values.tolist() if values.dtype.kind == "O" else list(values)
    return list(values)


def category_codes(values, index: dict[str, int]) -> tuple[np.ndarray, list]:
    """Each cell's position in ``index`` (key -> position; a missing cell is ``MISSING_CATEGORY``),
    -1 where the cell is not a known category; and the cells' keys (None for a missing cell).

    Each distinct cell is looked up once."""
    cells = _cells(values)
    looked: dict = {}
    codes = np.empty(len(cells), dtype=np.int64)
    keys: list = [None] * len(cells)
    missing = index.get(MISSING_CATEGORY, -1)
    for row, value in enumerate(cells):
        seen = (type(value), value)  # by type too: True, 1 and 1.0 are equal keys of a dict
        try:
            found = looked[seen]
        except (KeyError, TypeError):  # not looked up yet, or a value that cannot be a dict key
            found = _lookup(value, index, missing)
            if found[1] is not None:  # NaN is never equal to itself: not kept
                try:
                    looked[seen] = found
                except TypeError:
                    pass
        codes[row], keys[row] = found
    return codes, keys


def _lookup(value, index: dict[str, int], missing: int) -> tuple[int, str | None]:
    if is_missing(value):
        return missing, None
    key = category_key(value)
    if key in index:
        return index[key], key
    for alias in _aliases(value):
        if alias in index:
            return index[alias], key
    return -1, key


def _aliases(value):
    """Other keys a present cell may stand for: the number a text cell holds ('3.0' -> '3'),
    and the float32 a double is exactly (0.10000000149011612 -> '0.1', as float32 data
    written through JSON or Python floats arrives)."""
    number = number_key(value)
    if number is not None:
        yield number
    if isinstance(value, (float, np.floating)) and not isinstance(value, np.float32) and math.isfinite(value):
        single = np.float32(value)
        if float(single) == float(value):
            yield category_key(single)


def group_keys(values) -> list[str]:
    """The group each cell of a column puts its row in (fairness audits and per-group
    decisions): its category key, and one group for every missing value, ``MISSING_CATEGORY``."""
    return [MISSING_CATEGORY if is_missing(v) else category_key(v) for v in _cells(values)]

