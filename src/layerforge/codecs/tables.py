"""Tables: raw rows in any of the forms users hold them (a CSV or TSV file or body, a Parquet
file, a DataFrame, JSON rows or columns, arrays) to the model's input matrix, by the fitted state
of each column and the one reader of cells (``cells``). Numpy only, except that a Parquet file
or a DataFrame is read through pandas, at the edge.

A CSV file is read as text, cell by cell, the same way by every door: a byte-order mark is
skipped, blank lines are skipped (rows keep their line numbers for messages), a header that
names a column twice is refused, and so is a line with more or fewer fields than the header.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from ..data.arrays import MAX_STANDARD_SCORE
from ..errors import DataError
from .cells import MISSING_CATEGORY, Where, category_codes, numbers, plain_numbers
from .columns import COLUMN_CODECS, column_codec

BLOCK_CELLS = 1 << 20  # values of a CSV file read at a time (csv_blocks)
CSV_FILES = (".csv", ".tsv")
PARQUET_FILES = (".parquet", ".pq")
BUCKET_HINT = ("map unseen categories to an unknown bucket with data.unknown_categories: bucket "
               "(--unknown-categories bucket)")


class CsvText(str):
    """A CSV table given as text (an HTTP body), read as a CSV file is read; never a path."""


class Columns:
    """The raw cells of some rows, by column, and what names those rows in messages.

    Attributes:
        values: column name -> cells (a list or an array), one per row.
        where: names a row (the file, its line).
        rows: how many rows.
    """

    def __init__(self, values: dict[str, Sequence], where: Where, rows: int):
        self.values, self.where, self.rows = values, where, rows


# -- CSV text ---------------------------------------------------------------------------------------


def _csv_rows(handle, delimiter: str, source: str, cells: int | None) -> Iterator[tuple[int, Columns]]:
    """(first row, columns) for each block of about ``cells`` values of a CSV text (all rows at
    once when ``cells`` is None)."""
    reader = csv.reader(handle, delimiter=delimiter)
    try:
        header = next(reader, None)
        while header == []:  # blank lines before the header
            header = next(reader, None)
        if not header:
            raise DataError(f"{source}: holds no rows")
        if header[0].startswith("\ufeff"):  # a byte-order mark in text given as a string
            header[0] = header[0][1:]
        seen: dict[str, int] = {}
        for position, name in enumerate(header):
            if name in seen:
                raise DataError(f"{source}: the header names column '{name}' twice (fields {seen[name] + 1} and "
                                f"{position + 1}); rename one of them")
            seen[name] = position
        width = len(header)
        per_block = None if cells is None else max(1, cells // width)
        first, lines, fields = 0, [], [[] for _ in header]
        for line in reader:
            if not line:
                continue  # a blank line
            if len(line) != width:
                found = f"{len(line)} field{'s' if len(line) != 1 else ''}"
                raise DataError(f"{source}: line {reader.line_num} has {found}, the header {width}")
            lines.append(reader.line_num)
            for column, value in zip(fields, line):
                column.append(value)
            if per_block is not None and len(lines) == per_block:
                yield first, _block(header, fields, lines, source, first)
                first, lines, fields = first + per_block, [], [[] for _ in header]
    except csv.Error as error:
        raise DataError(f"{source}: line {reader.line_num} is not valid CSV ({error})") from None
    except UnicodeDecodeError as error:
        raise DataError(f"{source}: is not UTF-8 text ({error.reason} at byte {error.start})") from None
    if not lines and not first:
        raise DataError(f"{source}: holds no rows")
    if lines:
        yield first, _block(header, fields, lines, source, first)


class _Lines(Where):
    """Names rows of CSV text by the line each was read from (blank lines skipped)."""

    def __init__(self, source: str, first: int, lines: list[int]):
        super().__init__(source, first)
        self.lines = lines

    def __call__(self, row: int) -> str:
        name = Path(self.source).name if self.source != "the CSV body" else self.source
        return f"row {self.first + row + 1} (line {self.lines[row]} of {name})"


def _block(header: list[str], fields: list[list[str]], lines: list[int], source: str, first: int) -> Columns:
    return Columns(dict(zip(header, fields)), _Lines(source, first, lines), len(lines))


def _delimiter(path: Path) -> str:
    return "\t" if path.suffix.lower() == ".tsv" else ","


def _table_file(rows) -> Path:
    path = Path(rows)
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    if path.suffix.lower() not in CSV_FILES + PARQUET_FILES:
        raise DataError(f"{path}: expected a .csv, .tsv or .parquet file")
    return path


def csv_blocks(rows: str | Path, cells: int | None = None) -> Iterator[Columns]:
    """The rows of a .csv or .tsv file in blocks of about ``cells`` values (default
    ``BLOCK_CELLS``), for files larger than memory; messages name rows as in the whole file."""
    path = _table_file(rows)
    with path.open(newline="", encoding="utf-8-sig") as handle:
        for _, block in _csv_rows(handle, _delimiter(path), str(path), cells or BLOCK_CELLS):
            yield block


def read_csv_text(text: str, source: str = "the CSV body") -> Columns:
    """The rows of CSV text (an HTTP body)."""
    return next(_csv_rows(io.StringIO(text, newline=""), ",", source, None))[1]


def _read_file(path: Path) -> Columns:
    if path.suffix.lower() in CSV_FILES:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            return next(_csv_rows(handle, _delimiter(path), str(path), None))[1]
    import pandas as pd  # Parquet: read at the edge, its cells typed by the file

    try:
        frame = pd.read_parquet(path)
    except Exception as error:  # pyarrow raises many types for damaged files
        raise DataError(f"{path}: cannot be read as a table: {error}") from None
    if frame.empty:
        raise DataError(f"{path}: holds no rows")
    frame.attrs["source"] = str(path)
    return frame_columns(frame)


def frame_columns(frame) -> Columns:
    """A DataFrame's cells by column; rows are named by the frame's integer index (a chunk of a
    file keeps its rows' positions there) and ``attrs['source']``, the file."""
    names = [str(c) for c in frame.columns]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise DataError(f"the table names column '{twice[0]}' twice; rename one of them")
    index = frame.index
    rows = index.to_numpy() if index.dtype.kind in "iu" else None
    where = Where(frame.attrs.get("source"), rows=rows)
    return Columns({name: frame[column].to_numpy() for name, column in zip(names, frame.columns)}, where, len(frame))


def table_pieces(rows) -> Iterator:
    """A .csv or .tsv file's rows a block at a time (``csv_blocks``), for a file larger than
    memory; other rows whole."""
    if isinstance(rows, (str, Path)) and not isinstance(rows, CsvText) and str(rows).lower().endswith(CSV_FILES):
        yield from csv_blocks(rows)
    else:
        yield rows


def columns_of(rows, features: list[str]) -> Columns:
    """The cells of raw rows by column, from any of the table forms: a file, CSV text, a
    DataFrame, JSON columns (name -> values), JSON rows (mappings), or arrays whose columns are
    ``features`` in order."""
    if isinstance(rows, Columns):
        return rows
    if isinstance(rows, CsvText):
        return read_csv_text(rows)
    if isinstance(rows, (str, Path)):
        return _read_file(_table_file(rows))
    if hasattr(rows, "columns") and hasattr(rows, "iloc"):  # a DataFrame
        return frame_columns(rows)
    if isinstance(rows, dict):
        values = {str(name): list(cells) if not isinstance(cells, np.ndarray) else cells
                  for name, cells in rows.items()}
        counts = {name: len(cells) for name, cells in values.items()}
        if len(set(counts.values())) > 1:
            first = next(iter(counts))
            odd = next(name for name in counts if counts[name] != counts[first])
            raise DataError(f"column '{odd}' holds {counts[odd]} values but '{first}' holds {counts[first]}; every "
                            "column needs one value per row")
        return Columns(values, Where(), next(iter(counts.values()), 0))
    if isinstance(rows, list) and rows and isinstance(rows[0], dict):
        return _json_rows(rows)
    array = np.asarray(rows)
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2 or array.shape[1] != len(features):
        raise DataError(f"expected rows of {len(features)} values ({', '.join(features[:10])}"
                        f"{', ...' if len(features) > 10 else ''}), got an array of shape {array.shape}")
    return Columns({name: array[:, i] for i, name in enumerate(features)}, Where(), len(array))


def _json_rows(rows: list[dict]) -> Columns:
    """Columns of JSON rows: every row names the same columns (null for a missing value)."""
    names = list(rows[0])
    values: dict[str, list] = {name: [] for name in names}
    where = Where()
    for row, mapping in enumerate(rows):
        if not isinstance(mapping, dict):
            raise DataError(f"{where(row)}: expected a mapping of column -> value, got {type(mapping).__name__}")
        if len(mapping) != len(names) or any(name not in mapping for name in names):
            lacking = [name for name in names if name not in mapping]
            if lacking:
                raise DataError(f"{where(row)} has no value for column '{lacking[0]}' (row 1 has one); give every "
                                "column in every row, null for a missing value")
            extra = next(name for name in mapping if name not in values)
            raise DataError(f"{where(row)} names column '{extra}', which row 1 does not; give every row the same "
                            "columns")
        for name in names:
            values[name].append(mapping[name])
    return Columns(values, where, len(rows))


# -- the codec --------------------------------------------------------------------------------------


def named_files(columns: Columns, column: str, folder: Path, what: str) -> list[Path]:
    """The files a column of a table names, one per row (``folder``: where relative paths
    start, the table's own folder).

    Raises:
        DataError: an empty cell, or a file that is not there, named by its row.
    """
    files = []
    for row, cell in enumerate(columns.values[column]):
        if not isinstance(cell, str) or not cell.strip():
            raise DataError(f"{columns.where(row)}: column {column} holds no {what}; give each row the path of its "
                            "file")
        file = Path(cell) if Path(cell).is_absolute() else folder / cell
        if not file.is_file():
            raise DataError(f"{columns.where(row)}: {what} not found: {file}")
        files.append(file)
    return files


def no_row_names(rows) -> None:
    """``row_names`` of a codec whose rows are not files: they have none of their own."""
    return None


class TableCodec:
    """Encodes raw rows of a table as the run's preprocessing says: numbers and true/false
    values standardised (a missing value filled with the training median, plus a missing
    indicator where training had missing values), categories one-hot over the training
    categories.

    Args:
        state: the fitted state, as model.json and runtime.json keep it (``preprocessing``).
    """

    kind = "table"

    def __init__(self, state: dict):
        self.columns = state["columns"]
        self.features = [column["name"] for column in self.columns]
        self.unknown = state.get("unknown_categories", "error")
        self.ignored = set(state.get("ignored", ()))
        self._slots, position = [], 0  # (column, its first position in the matrix)
        self._codecs = {column["name"]: column_codec(column) for column in self.columns
                        if column["kind"] in COLUMN_CODECS}
        for column in self.columns:
            self._slots.append((column, position))
            position += self._width(column)
        self.width = position
        # the number columns, read at once when their cells are plain
        self._numeric = [(position, column) for column, position in self._slots if column["kind"] == "numeric"]
        self._positions = np.array([position for position, _ in self._numeric], dtype=np.int64)
        self._means, self._stds, self._fills = (np.array([[c[key]] for _, c in self._numeric], dtype=np.float64)
                                                for key in ("mean", "std", "fill"))
        self._indicators = [(row, position) for row, (position, c) in enumerate(self._numeric) if c["indicator"]]

    def _width(self, column: dict) -> int:
        if column["name"] in self._codecs:
            return self._codecs[column["name"]].width
        return len(column["categories"]) if column["kind"] == "categorical" else 1 + bool(column["indicator"])

    @property
    def blocks(self) -> list[tuple[str, int, int, int]]:
        """Each input column's positions in the matrix: (name, first, width, code size), the code
        size being the number of codes where the column is a category code read through an
        embedding (0 otherwise)."""
        return [(column["name"], position, self._width(column),
                 self._codecs[column["name"]].code_size if column["name"] in self._codecs else 0)
                for column, position in self._slots]

    def scaled(self) -> list[int]:
        """The positions of standardised values (which small perturbations move)."""
        found = []
        for column, position in self._slots:
            if column["name"] in self._codecs:
                found += [position + i for i in self._codecs[column["name"]].scaled]
            elif column["kind"] == "numeric":
                found.append(position)
        return found

    def read(self, rows) -> Columns:
        """The cells of ``rows`` by column (see ``columns_of``)."""
        return columns_of(rows, self.features)

    @staticmethod
    def pieces(rows) -> Iterator:
        """A .csv or .tsv file's rows a block at a time; other rows whole."""
        yield from table_pieces(rows)

    row_names = staticmethod(no_row_names)

    def kept(self, rows, keep: Sequence[str]) -> tuple[dict[str, Sequence], Columns]:
        """The cells of the columns ``keep`` names (copied into the predictions as they are, e.g.
        identifiers), and the rows without those of them the model does not read.

        Raises:
            DataError: a kept column that is not in the rows.
        """
        columns = self.read(rows)
        for name in keep:
            if name not in columns.values:
                raise DataError(f"--keep-columns: column '{name}' is not in the rows{columns.where.file}; their "
                                f"columns: {', '.join(map(str, columns.values))}")
        rest = {name: cells for name, cells in columns.values.items() if name not in keep or name in self.features}
        return {name: columns.values[name] for name in keep}, Columns(rest, columns.where, columns.rows)

    def encode(self, rows, *, unknown: str | None = None, ignore_extra: bool = False,
               target: str | list[str] | None = None) -> tuple[tuple[np.ndarray], Sequence | dict | None]:
        """``((x,), labels)``: the input matrix (rows, features) as float32, and the target
        column's cells when the rows carry it.

        Args:
            unknown: 'error' or 'bucket' for categories unseen in training (default: the run's).
            ignore_extra: drop columns the model does not know instead of refusing them.
            target: the target column (or columns), which rows may carry besides the features.

        Raises:
            DataError: a missing or unexpected column, or a cell the column cannot read, named
                by column, row and file.
        """
        columns = self.read(rows)
        self.check_columns(columns, target=target, ignore_extra=ignore_extra)
        x = self.matrix(columns, unknown or self.unknown)
        if isinstance(target, list):  # several targets: their cells by column, when the rows carry them all
            labels = {name: columns.values[name] for name in target} if all(
                name in columns.values for name in target) else None
        else:
            labels = columns.values.get(target) if target else None
        return (x,), labels

    def check_columns(self, columns: Columns, *, target: str | list[str] | None = None,
                      ignore_extra: bool = False) -> None:
        where = columns.where.file
        missing = [name for name in self.features if name not in columns.values]
        if missing:
            raise DataError(f"missing column{'s' if len(missing) > 1 else ''}{where}: {', '.join(missing)} "
                            f"(the model was trained on: {', '.join(self.features)})")
        targets = target if isinstance(target, list) else [target]
        extra = [name for name in columns.values if name not in self.features and name not in targets
                 and name not in self.ignored]
        if extra and not ignore_extra:
            raise DataError(f"unexpected column{'s' if len(extra) > 1 else ''}{where}: {', '.join(extra)}; "
                            "remove them or pass ignore_extra (--ignore-extra)")

    def matrix(self, columns: Columns, unknown: str = "error") -> np.ndarray:
        """The input matrix of rows whose columns were checked."""
        if unknown not in ("error", "bucket"):
            raise DataError(f"unknown categories: expected 'error' or 'bucket', got {unknown!r}")
        out = np.zeros((columns.rows, self.width), dtype=np.float32)
        done = self._numbers_at_once(out, columns)
        for column, position in self._slots:
            if column["name"] in done:
                continue
            cells = columns.values[column["name"]]
            codec = self._codecs.get(column["name"])
            if codec is not None:
                out[:, position : position + codec.width] = codec.encode(cells, columns.where, unknown)
                continue
            if column["kind"] == "categorical":
                width = len(column["categories"])
                self._one_hot(out[:, position : position + width], column, cells, unknown, columns.where)
                continue
            values = numbers(cells, column["name"], columns.where, boolean=column["kind"] == "boolean",
                             hint="fix the values")
            absent = np.isnan(values)
            values[absent] = column["fill"]
            out[:, position] = standardised(values, column, columns.where)
            if column["indicator"]:
                out[:, position + 1] = absent
        return out

    def _numbers_at_once(self, out: np.ndarray, columns: Columns) -> set[str]:
        """The number columns standardised in one pass when every cell is plainly fine
        (``cells.plain_numbers``); the names done. Anything else, and any value too far from
        training, is left to the column-by-column path, which names it."""
        numeric = self._numeric
        if not numeric:
            return set()
        found = plain_numbers([columns.values[column["name"]] for _, column in numeric])
        if found is None:
            return set()
        absent = np.isnan(found)
        with np.errstate(over="ignore", invalid="ignore"):
            scaled = (np.where(absent, self._fills, found) - self._means) / self._stds
        if not (np.abs(scaled) <= MAX_STANDARD_SCORE).all():
            return set()
        out[:, self._positions] = scaled.T
        for row, position in self._indicators:
            out[:, position + 1] = absent[row]
        return {column["name"] for _, column in numeric}

    @staticmethod
    def _one_hot(out: np.ndarray, column: dict, cells, unknown: str, where: Where) -> None:
        categories = column["categories"]
        codes, keys = category_codes(cells, {key: i for i, key in enumerate(categories)})
        unseen = np.flatnonzero(codes < 0)
        if len(unseen) and unknown != "bucket":
            first = int(unseen[0])
            what = "a missing value" if keys[first] is None else f"unseen category {keys[first]!r}"
            shown = [c for c in categories if c != MISSING_CATEGORY]
            more = len(unseen) - 1
            raise DataError(f"column '{column['name']}': {what} in {where(first)}"
                            + (f" and {more} more row{'s' if more > 1 else ''}" if more else "")
                            + f" (known: {', '.join(shown[:20])}{', ...' if len(shown) > 20 else ''}); fix the value, "
                            f"or {BUCKET_HINT}")
        known = np.flatnonzero(codes >= 0)
        out[known, codes[known]] = 1.0


def standardised(values: np.ndarray, column: dict, where: Where) -> np.ndarray:
    """``(values - mean) / std`` of ``column`` (its ``name``, ``mean`` and ``std``), refusing a
    value more than ``MAX_STANDARD_SCORE`` standard deviations from the training mean: not a
    measurement of the same thing, and a step away from outputs that are not numbers at all.

    Raises:
        DataError: naming the column, the row and the training scale."""
    mean, std = column["mean"], column["std"]
    with np.errstate(over="ignore", invalid="ignore"):
        scaled = (values - mean) / std
        far = np.flatnonzero(~(np.abs(scaled) <= MAX_STANDARD_SCORE))
    if len(far):
        more = len(far) - 1
        raise DataError(f"column '{column['name']}': {values[far[0]]:.3g} in {where(int(far[0]))} is too far from the "
                        f"values seen in training (mean {mean:.3g}, standard deviation {std:.3g}) to be used"
                        + (f"; so are {more} more rows" if more else "") + "; fix or drop those rows")
    return scaled


def no_kept_columns(kind: str):
    """``kept`` of a codec whose rows have no named columns: refuses."""
    def kept(self, rows, keep):
        raise DataError(f"--keep-columns copies columns of a table into the predictions; this run reads {kind}")
    return kept


def named_rows(table: dict, names: list[str] | None) -> dict:
    """``table`` (column name -> values) with each row's file first (``file``), when the rows
    were read from files (``row_names``) and there is one answer per file."""
    if names is None or "file" in table or len(next(iter(table.values()), [])) != len(names):
        return table
    return {"file": names, **table}


def with_kept(table: dict, kept: dict[str, Sequence]) -> dict:
    """``table`` (column name -> values) with the kept columns first.

    Raises:
        DataError: a kept column named like a column of the predictions.
    """
    for name in kept:
        if name in table:
            raise DataError(f"--keep-columns: '{name}' is also a column of the predictions; keep another column")
    return {**{name: list(cells) for name, cells in kept.items()}, **table}
