"""Raw rows to model inputs with numpy alone, exactly as layerforge's data kinds encode them
(tables, sequences, images, texts), from the fitted state that runtime.json keeps.

Tables come as a CSV file, a list of row mappings, a mapping of columns, or an array whose
columns are the features in order. CSV cells are read as pandas reads them: the same words mean
a missing value, a column is numeric when all its values are numbers, and 3, 3.0 and '3' are one
category.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np

# the words pandas.read_csv takes for a missing value
MISSING_WORDS = {"", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>",
                 "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"}
MISSING_CATEGORY = "<missing>"
MAX_STANDARD_SCORE = 1e6
BLOCK_CELLS = 1 << 20  # values of a CSV file read at a time (csv_blocks)
_WORD = re.compile(r"\w+|[^\w\s]", re.UNICODE)


class RuntimeDataError(ValueError):
    """Rows the exported model cannot read, named by column, row or file."""


def encode(record: dict, rows, *, unknown: str | None = None,
           ignore_extra: bool = False) -> tuple[tuple[np.ndarray, ...], list | None]:
    """(inputs, labels): the model's inputs for ``rows`` and their targets when present.

    Args:
        unknown: 'error' or 'bucket' for categories unseen in training (default: the run's).
        ignore_extra: drop table columns the model does not know instead of raising.
    """
    state = record["preprocessing"]
    kind = state["kind"]
    if kind == "table":
        return _table(state, rows, record.get("target"), unknown or state.get("unknown_categories", "error"),
                      ignore_extra)
    if kind == "sequence":
        return _sequences(state, rows)
    if kind == "image":
        return _images(state, rows)
    if kind == "text":
        return _texts(state, rows, record.get("target"))
    if kind == "forecast":
        return _forecast(state, rows)
    raise RuntimeDataError(f"the runtime does not read {kind} data; predict with `layerforge predict` instead")


# -- tables ----------------------------------------------------------------------------------------


def _is_missing(value) -> bool:
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    return isinstance(value, str) and value in MISSING_WORDS


def _number(value) -> float | None:
    """The number a cell holds, or None when it holds something else."""
    if isinstance(value, (bool, np.bool_, int, float, np.integer, np.floating)):
        return float(value)
    try:
        return float(str(value).strip())
    except ValueError:
        return None


class CsvText(str):
    """A CSV table given as text (an HTTP body), read as a CSV file is read; never a path."""


class FilePart(str):
    """A file's name, for messages about its rows read from row ``first`` (0-based) on."""

    first: int

    def __new__(cls, name: str, first: int = 0):
        part = super().__new__(cls, name)
        part.first = first
        return part


class CsvBlock:
    """Rows of a CSV file read a block at a time (``csv_blocks``): ``columns``, name -> raw
    values, and ``source``, the file and the number of rows before the block."""

    def __init__(self, columns: dict[str, list], source: FilePart):
        self.columns, self.source = columns, source


def _csv_blocks(handle, delimiter: str, source: str, cells: int | None = None) -> Iterator[tuple[int, dict[str, list]]]:
    """(first row, columns) for each block of about ``cells`` values (all rows when None)."""
    reader = csv.reader(handle, delimiter=delimiter)
    try:
        header = next(reader, None)
        if not header:
            raise RuntimeDataError(f"{source}: holds no rows")
        rows = None if cells is None else max(1, cells // len(header))
        first, columns = 0, {name: [] for name in header}
        for number, line in enumerate(reader, start=2):
            if len(line) != len(header):
                raise RuntimeDataError(f"{source}: line {number} has {len(line)} fields, the header {len(header)}")
            for name, value in zip(header, line):
                columns[name].append(value)
            if rows is not None and number - 1 - first == rows:
                yield first, columns
                first, columns = first + rows, {name: [] for name in header}
    except csv.Error as error:
        raise RuntimeDataError(f"{source}: line {reader.line_num} is not valid CSV ({error})") from None
    held = len(next(iter(columns.values()), []))
    if not held and not first:
        raise RuntimeDataError(f"{source}: holds no rows")
    if held:
        yield first, columns


def _read_csv(handle, delimiter: str, source: str) -> dict[str, list]:
    return next(_csv_blocks(handle, delimiter, source))[1]


def _csv_file(rows) -> Path:
    path = Path(rows)
    if not path.is_file():
        raise RuntimeDataError(f"data file not found: {path}")
    if path.suffix.lower() not in (".csv", ".tsv"):
        raise RuntimeDataError(f"{path}: the runtime reads tables from .csv or .tsv files")
    return path


def csv_blocks(rows: str | Path, cells: int | None = None) -> Iterator[CsvBlock]:
    """The rows of a .csv or .tsv file in blocks of about ``cells`` values, for files larger than
    memory (a cell read from text takes about 60 bytes); errors name rows as in the whole file."""
    path = _csv_file(rows)
    with path.open(newline="", encoding="utf-8") as handle:
        for first, columns in _csv_blocks(handle, _delimiter(path), str(path), cells or BLOCK_CELLS):
            yield CsvBlock(columns, FilePart(str(path), first))


def _delimiter(path: Path) -> str:
    return "\t" if path.suffix.lower() == ".tsv" else ","


def _columns_of(rows, features: list[str]) -> tuple[dict[str, list], str | None]:
    """Column name -> raw values, from any of the table forms; and the file, for messages."""
    if isinstance(rows, CsvText):
        import io

        return _read_csv(io.StringIO(rows, newline=""), ",", "the CSV body"), "the CSV body"
    if isinstance(rows, CsvBlock):
        return rows.columns, rows.source
    if isinstance(rows, (str, Path)):
        path = _csv_file(rows)
        with path.open(newline="", encoding="utf-8") as handle:
            return _read_csv(handle, _delimiter(path), str(path)), str(path)
    if isinstance(rows, dict):
        columns = {str(k): list(v) for k, v in rows.items()}
        counts = {name: len(values) for name, values in columns.items()}
        if len(set(counts.values())) > 1:
            first, odd = next(iter(counts)), next(n for n in counts if counts[n] != next(iter(counts.values())))
            raise RuntimeDataError(f"column '{odd}' holds {counts[odd]} values but '{first}' holds {counts[first]}; "
                                   "every column needs one value per row")
        return columns, None
    if isinstance(rows, list) and rows and isinstance(rows[0], dict):
        names = list(dict.fromkeys(k for row in rows for k in row))
        return {n: [row.get(n) for row in rows] for n in names}, None
    array = np.asarray(rows)
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2 or array.shape[1] != len(features):
        raise RuntimeDataError(f"expected rows of {len(features)} values ({', '.join(features[:10])}"
                               f"{', ...' if len(features) > 10 else ''}), got an array of shape {array.shape}")
    return {name: list(array[:, i]) for i, name in enumerate(features)}, None


def _where(row: int, source: str | None) -> str:
    """'row 3', or 'row 3 (line 4 of data.csv)', as ``layerforge predict`` names rows."""
    row += getattr(source, "first", 0)
    return f"row {row + 1} (line {row + 2} of {Path(source).name})" if source else f"row {row + 1}"


def _category_keys(values: list, from_text: bool) -> list[str | None]:
    """Category keys as layerforge makes them; text cells are first typed per column as pandas
    types them (numbers when all are numbers, booleans when all are true/false)."""
    present = [v for v in values if not _is_missing(v)]
    if from_text and present:
        lowered = {str(v).strip().lower() for v in present}
        if lowered <= {"true", "false"}:
            return [None if _is_missing(v) else str(v).strip().lower() for v in values]
        if all(_number(v) is not None for v in present):
            return [None if _is_missing(v) else _number_key(_number(v)) for v in values]
    return [None if _is_missing(v) else _key(v) for v in values]


def _number_key(number: float) -> str:
    return str(int(number)) if number.is_integer() and abs(number) < 2**53 else repr(number)


def _key(value) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return _number_key(float(value))
    return str(value)


def _table(state: dict, rows, target: str | None, unknown: str,
           ignore_extra: bool) -> tuple[tuple[np.ndarray, ...], list | None]:
    names = [c["name"] for c in state["columns"]]
    columns, source = _columns_of(rows, names)
    where = f" in {source}" if source else ""
    missing = [n for n in names if n not in columns]
    if missing:
        raise RuntimeDataError(f"missing column{'s' if len(missing) > 1 else ''}{where}: {', '.join(missing)} "
                               f"(the model was trained on: {', '.join(names)})")
    extra = [c for c in columns if c not in names and c != target]
    if extra and not ignore_extra:
        raise RuntimeDataError(f"unexpected column{'s' if len(extra) > 1 else ''}{where}: {', '.join(extra)}; "
                               "remove them or pass ignore_extra (--ignore-extra)")
    count = len(columns[names[0]])
    from_text = source is not None
    at_once = _numbers_at_once(state["columns"], columns)
    blocks = []
    for column in state["columns"]:
        values = columns[column["name"]]
        if column["kind"] == "categorical":
            blocks.append(_one_hot(column, values, from_text, unknown, source))
            continue
        scaled, absent = at_once[column["name"]] if at_once else _numeric_column(column, values, source)
        blocks.append(scaled[:, None])
        if column["indicator"]:
            blocks.append(absent.astype(np.float64)[:, None])
    x = np.concatenate(blocks, axis=1).astype(np.float32) if blocks else np.zeros((count, 0), np.float32)
    return (x,), (columns[target] if target and target in columns else None)


def _numbers_at_once(state_columns: list[dict], columns: dict[str, list]) -> dict | None:
    """Every number and true/false column scaled in one numpy pass (name -> (scaled, absent)),
    when all their values are plainly fine; None sends them through ``_numeric_column``, which
    names the first problem."""
    numeric = [c for c in state_columns if c["kind"] != "categorical"]
    try:
        if any({bool, np.bool_} & set(map(type, columns[c["name"]])) for c in numeric if c["kind"] == "numeric"):
            return None
        matrix = np.array([columns[c["name"]] for c in numeric], dtype=np.float64).reshape(len(numeric), -1)
    except (ValueError, TypeError):
        return None
    absent = np.isnan(matrix)
    flags = [i for i, c in enumerate(numeric) if c["kind"] == "boolean"]
    if np.isinf(matrix).any() or not np.isin(matrix[flags][~absent[flags]], (0.0, 1.0)).all():
        return None
    mean, std, fill = (np.array([c[key] for c in numeric])[:, None] for key in ("mean", "std", "fill"))
    scaled = (np.where(absent, fill, matrix) - mean) / std
    if not (np.abs(scaled) <= MAX_STANDARD_SCORE).all():
        return None
    return {c["name"]: (scaled[i], absent[i]) for i, c in enumerate(numeric)}


def _numeric_column(column: dict, values: list, source: str | None) -> tuple[np.ndarray, np.ndarray]:
    """One number or true/false column, value by value: (scaled, absent)."""
    count = len(values)
    numbers = np.empty(count)
    absent = np.zeros(count, dtype=bool)
    for row, value in enumerate(values):
        if _is_missing(value):
            absent[row], numbers[row] = True, column["fill"]
            continue
        if column["kind"] == "boolean":
            number = {"true": 1.0, "false": 0.0, "1": 1.0, "0": 0.0, "1.0": 1.0, "0.0": 0.0}.get(
                str(value).strip().lower())
            expected = "true/false values"
        else:
            number = None if isinstance(value, (bool, np.bool_)) else _number(value)
            expected = "numbers"
        if number is None:
            raise RuntimeDataError(f"column '{column['name']}': expected {expected}, found {value!r} in "
                                   f"{_where(row, source)}; fix the values or declare the column categorical "
                                   "(data.categorical)")
        if math.isinf(number):
            raise RuntimeDataError(f"column '{column['name']}': an infinite value in {_where(row, source)}; fix "
                                   "or drop those rows")
        numbers[row] = number
    scaled = (numbers - column["mean"]) / column["std"]
    far = np.flatnonzero(np.abs(scaled) > MAX_STANDARD_SCORE)
    if len(far):
        raise RuntimeDataError(f"column '{column['name']}': {numbers[far[0]]:.3g} in {_where(int(far[0]), source)} "
                               f"is too far from the values seen in training (mean {column['mean']:.3g}, "
                               f"standard deviation {column['std']:.3g}) to be used; fix or drop those rows")
    return scaled, absent


def _one_hot(column: dict, values: list, from_text: bool, unknown: str, source: str | None) -> np.ndarray:
    categories = column["categories"]
    index = {key: i for i, key in enumerate(categories)}
    encoded = np.zeros((len(values), len(categories)))
    for row, key in enumerate(_category_keys(values, from_text)):
        position = index.get(MISSING_CATEGORY if key is None else key)
        if position is None:
            if unknown == "bucket":
                continue
            what = "a missing value" if key is None else f"unseen category {key!r}"
            shown = [c for c in categories if c != MISSING_CATEGORY]
            raise RuntimeDataError(f"column '{column['name']}': {what} in {_where(row, source)} (known: "
                                   f"{', '.join(shown[:20])}{', ...' if len(shown) > 20 else ''}); fix the value, or "
                                   "map unseen categories to an unknown bucket with data.unknown_categories: bucket "
                                   "(--unknown-categories bucket)")
        encoded[row, position] = 1.0
    return encoded


# -- arrays: sequences and images ------------------------------------------------------------------


def _arrays(rows, what: str) -> tuple[np.ndarray, np.ndarray | None, list | None]:
    """x, lengths and labels from an .npz/.npy file or an array."""
    if isinstance(rows, (str, Path)):
        path = Path(rows)
        if not path.is_file():
            raise RuntimeDataError(f"file not found: {path}")
        if path.suffix == ".npy":
            return np.load(path, allow_pickle=False), None, None
        if path.suffix != ".npz":
            raise RuntimeDataError(f"{path}: the runtime reads {what} from .npz (x, optional lengths and y) or .npy")
        with np.load(path, allow_pickle=False) as arrays:
            if "x" not in arrays:
                raise RuntimeDataError(f"{path}: holds arrays {', '.join(arrays.files) or 'none'} but no 'x'")
            lengths = arrays["lengths"].astype(np.int64) if "lengths" in arrays else None
            labels = arrays["y"].tolist() if "y" in arrays else None
            return arrays["x"], lengths, labels
    return np.asarray(rows), None, None


def _padded(rows: list) -> tuple[np.ndarray, np.ndarray, None]:
    """Series of unequal lengths, each (length,) or (channels, length), zero-padded to the
    longest, with their lengths."""
    series = [np.atleast_2d(np.asarray(row, dtype=np.float64)) for row in rows]
    if len({s.shape[0] for s in series}) > 1 or any(s.ndim != 2 for s in series):
        raise RuntimeDataError("series must all have the same number of channels")
    lengths = np.array([s.shape[1] for s in series], dtype=np.int64)
    x = np.zeros((len(series), series[0].shape[0], int(lengths.max())))
    for row, values in enumerate(series):
        x[row, :, : values.shape[1]] = values
    return x, lengths, None


def _finite(x: np.ndarray, what: str) -> np.ndarray:
    if x.dtype.kind not in "fiub":
        raise RuntimeDataError(f"{what} must be numbers, got an array of {x.dtype}")
    bad = np.flatnonzero(~np.isfinite(x.reshape(len(x), -1)).all(axis=1))
    if len(bad):
        raise RuntimeDataError(f"{what}: row {bad[0] + 1} holds values that are missing or infinite")
    return x


def _near(scaled: np.ndarray, what: str) -> None:
    """No value more than MAX_STANDARD_SCORE training standard deviations from the mean."""
    far = np.flatnonzero(~(np.abs(scaled.reshape(len(scaled), -1)) <= MAX_STANDARD_SCORE).all(axis=1))
    if len(far):
        raise RuntimeDataError(f"{what}: row {far[0] + 1} holds values too far from those seen in training to be used")


def _sequences(state: dict, rows) -> tuple[tuple[np.ndarray, ...], list | None]:
    if isinstance(rows, list) and rows and len({np.shape(row)[-1:] for row in rows}) > 1:
        x, lengths, labels = _padded(rows)
    else:
        x, lengths, labels = _arrays(rows, "sequences")
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 2:
        x = x[:, None, :]
    if x.ndim != 3:
        raise RuntimeDataError(f"expected sequences shaped (rows, length) or (rows, channels, length), got {x.shape}")
    channels, length = len(state["mean"]), state["length"]
    if x.shape[1] != channels:
        raise RuntimeDataError(f"expected {channels} channel(s) per series, got {x.shape[1]} (shape {x.shape})")
    if x.shape[2] > length or (x.shape[2] < length and not state.get("variable_length")):
        bound = "at most" if state.get("variable_length") else "exactly"
        raise RuntimeDataError(f"expected series of {bound} {length} steps (the length the model was trained on), "
                               f"got {x.shape[2]}")
    if x.shape[2] < length:  # a shorter series: padded, its length kept
        lengths = np.full(len(x), x.shape[2], dtype=np.int64) if lengths is None else lengths
        x = np.concatenate([x, np.zeros((*x.shape[:2], length - x.shape[2]))], axis=2)
    _finite(x, "series")
    mean = np.asarray(state["mean"])[None, :, None]
    std = np.asarray(state["std"])[None, :, None]
    with np.errstate(over="ignore", invalid="ignore"):
        scaled = (x - mean) / std
    _near(scaled, "series")
    scaled = scaled.astype(np.float32)
    if lengths is not None:
        if ((lengths < 1) | (lengths > x.shape[-1])).any():
            raise RuntimeDataError(f"'lengths' must lie between 1 and the series' length {x.shape[-1]}")
        scaled[np.broadcast_to((np.arange(x.shape[2])[None, :] >= lengths[:, None])[:, None, :], scaled.shape)] = 0
    if lengths is None and state.get("variable_length"):
        lengths = np.full(len(x), x.shape[-1], dtype=np.int64)
    return ((scaled,) if lengths is None else (scaled, lengths.astype(np.int64))), labels


def _pictures(state: dict, rows: list) -> np.ndarray:
    """Images given one by one: base64 PNG/JPEG text (read into [0, 1], converted and resized as
    image files are) or arrays (H, W) / (C, H, W)."""
    import base64
    import binascii
    import io

    shape = (state["channels"], *state["size"])
    pictures = []
    for row, item in enumerate(rows):
        if not isinstance(item, str):
            array = np.asarray(item, dtype=np.float64)
            pictures.append(array[None] if array.ndim == 2 else array)
            continue
        try:
            from PIL import Image
        except ImportError:
            raise RuntimeDataError("reading PNG/JPEG images needs Pillow: pip install pillow") from None
        try:
            data = base64.b64decode(item, validate=True)
            with Image.open(io.BytesIO(data)) as image:
                image = image.convert("L" if shape[0] == 1 else "RGB")
                if image.size != (shape[2], shape[1]):
                    image = image.resize((shape[2], shape[1]), Image.BILINEAR)
                array = np.asarray(image, dtype=np.float64) / 255.0
        except (binascii.Error, ValueError) as error:
            raise RuntimeDataError(f"image {row + 1}: not base64 text ({error})") from None
        except (OSError, Image.DecompressionBombError) as error:
            raise RuntimeDataError(f"image {row + 1}: cannot be read as a PNG or JPEG image ({error})") from None
        pictures.append(array[None] if array.ndim == 2 else array.transpose(2, 0, 1))
    found = {p.shape for p in pictures}
    if len(found) > 1 or (pictures and pictures[0].shape != shape):
        wrong = next(row for row, p in enumerate(pictures) if p.shape != shape)
        raise RuntimeDataError(f"image {wrong + 1}: expected shape {shape}, got {pictures[wrong].shape}")
    return np.stack(pictures) if pictures else np.zeros((0, *shape))


def _images(state: dict, rows) -> tuple[tuple[np.ndarray, ...], list | None]:
    if isinstance(rows, list) and any(isinstance(item, str) for item in rows):
        x, labels = _pictures(state, rows), None
    else:
        x, _, labels = _arrays(rows, "images")
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 3:
        x = x[:, None]
    shape = (state["channels"], *state["size"])
    if x.ndim != 4 or tuple(x.shape[1:]) != shape:
        raise RuntimeDataError(f"expected images of shape {shape}, got {tuple(x.shape[1:])}")
    _finite(x, "images")
    mean = np.asarray(state["mean"])[None, :, None, None]
    std = np.asarray(state["std"])[None, :, None, None]
    with np.errstate(over="ignore", invalid="ignore"):
        scaled = (x - mean) / std
    _near(scaled, "images")
    return (scaled.astype(np.float32),), labels


# -- forecasts ------------------------------------------------------------------------------------


def _forecast(state: dict, rows) -> tuple[tuple[np.ndarray, ...], None]:
    """One input window per history: a table file whose columns are the series (one history),
    or a list of histories, each a list of steps (a number per step, or one per series)."""
    names, lookback = state["channels"], state["lookback"]
    if isinstance(rows, (str, Path)):
        columns, source = _columns_of(rows, names)
        missing = [n for n in names if n not in columns]
        if missing:
            raise RuntimeDataError(f"missing column in {source}: {', '.join(missing)} (the series to continue)")
        histories = [np.stack([[_number(v) if not _is_missing(v) else np.nan for v in columns[n]] for n in names],
                              axis=1)]
    else:
        histories = [np.asarray(history, dtype=np.float64) for history in rows]
    windows = []
    for row, values in enumerate(histories):
        values = values[:, None] if values.ndim == 1 else values
        if values.ndim != 2 or len(values) < lookback or values.shape[1] != len(names):
            raise RuntimeDataError(f"history {row + 1}: a forecast needs the last {lookback} steps of {len(names)} "
                                   f"series ({', '.join(names)}); got shape {values.shape}")
        window = values[-lookback:].copy()
        if not np.isfinite(window).all():
            raise RuntimeDataError(f"history {row + 1}: holds values that are missing or infinite")
        if state["log"]:
            if (window[:, 0] <= 0).any():
                raise RuntimeDataError(f"history {row + 1}: the target has values <= 0, which the model's log "
                                       "scale cannot read")
            window[:, 0] = np.log(window[:, 0])
        with np.errstate(over="ignore", invalid="ignore"):
            scaled = (window - np.asarray(state["mean"])) / np.asarray(state["std"])
        if not (np.abs(scaled) <= MAX_STANDARD_SCORE).all():
            raise RuntimeDataError(f"history {row + 1}: values too far from those seen in training to be used")
        windows.append(scaled.T)  # (C, lookback)
    x = np.stack(windows).astype(np.float32) if windows else np.zeros((0, len(names), lookback), np.float32)
    return (x,), None


# -- texts -----------------------------------------------------------------------------------------


def _texts(state: dict, rows, target: str | None) -> tuple[tuple[np.ndarray, ...], list | None]:
    column, labels = state["text"], None
    if isinstance(rows, (str, Path, CsvBlock, dict)) or (isinstance(rows, list) and rows and isinstance(rows[0], dict)):
        columns, source = _columns_of(rows, [column])
        if column not in columns:
            where = f" in {source}" if source else ""
            raise RuntimeDataError(f"missing column{where}: {column} (the text to classify)")
        texts = ["" if _is_missing(t) else str(t) for t in columns[column]]
        labels = columns.get(target) if target else None
    else:
        texts = [str(t) for t in rows]
    tokenize = _tokenizer(state)
    ids = np.zeros((len(texts), state["max_length"]), dtype=np.int64)
    lengths = np.ones(len(texts), dtype=np.int64)
    for row, text in enumerate(texts):
        tokens = tokenize(text)[: state["max_length"]] or [1]
        ids[row, : len(tokens)] = tokens
        lengths[row] = len(tokens)
    return (ids, lengths), labels


def _tokenizer(state: dict):
    lower = state.get("lowercase", False)
    if state["tokenizer"] in ("bpe", "pretrained"):  # both keep a tokenizers JSON
        from tokenizers import Tokenizer

        bpe = Tokenizer.from_str(state["bpe"])
        bpe.no_padding()
        bpe.no_truncation()
        return lambda text: bpe.encode(text.lower() if lower else text).ids
    index = {token: i for i, token in enumerate(state["vocab"])}
    char = state["tokenizer"] == "char"

    def tokenize(text: str) -> list[int]:
        text = text.lower() if lower else text
        return [index.get(piece, 1) for piece in (text if char else _WORD.findall(text))]

    return tokenize
