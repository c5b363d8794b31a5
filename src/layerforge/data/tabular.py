"""Tables: reading CSV / Parquet, and preprocessing fitted on the training rows only.

The fitted ``Preprocessor`` is plain JSON (saved in ``model.json``), so prediction in a new
process applies exactly the transformation used in training.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..codecs.cells import MISSING_CATEGORY as MISSING
from ..codecs.cells import Where, category_key, numbers
from ..codecs.columns import COLUMN_CODECS, column_codec, fit_column
from ..codecs.tables import Columns, TableCodec, frame_columns, standardised
from ..errors import DataError
from ..files import atomic_file
from .arrays import scaling
from .columns import codec_kind, distinct_values, infer
from .labels import row_label, row_of

MAX_CATEGORIES = 1000


def read_table(path: str | Path, text: list[str] | tuple[str, ...] = ()):
    """Read a .csv, .tsv or .parquet file into a DataFrame; errors name the file.

    Args:
        text: columns a CSV file's cells are kept in as text (category codes such as 01001, and
            a text column), whatever their other cells look like; the rest are typed by pandas.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
        elif suffix in (".csv", ".tsv"):
            frame = pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",", dtype={name: str for name in text})
        else:
            raise DataError(f"{path}: expected a .csv, .tsv or .parquet file")
    except DataError:
        raise
    except MemoryError:
        raise DataError(f"{path}: does not fit in memory; stream it from the file instead (data.streaming: true)") \
            from None
    except Exception as error:  # pandas and pyarrow raise many types for malformed files
        raise DataError(f"{path}: cannot be read as a table: {error}") from None
    if frame.empty:
        raise DataError(f"{path}: holds no rows")
    return frame


def infer_kind(series, declared_categorical: bool, source: str | None = None) -> str:
    """'numeric', 'boolean' or 'categorical' for a feature column."""
    if declared_categorical:
        return "categorical"
    if pd.api.types.is_bool_dtype(series):
        return "boolean"
    if pd.api.types.is_datetime64_any_dtype(series):
        raise DataError(
            f"column '{series.name}' holds dates or times; drop it (data.drop) or turn it into "
            "numeric features first"
        )
    if pd.api.types.is_numeric_dtype(series):
        return "numeric"
    values = series.dropna()
    lowered = {str(v).strip().lower() for v in values.unique()}
    if lowered and lowered <= {"true", "false"}:
        return "boolean"
    parsed = pd.to_numeric(values, errors="coerce")
    if len(values) and parsed.notna().all():  # numbers read as text (a word elsewhere in the file)
        return "numeric"
    if len(values) and parsed.notna().mean() >= 0.5:  # numbers with a few words among them: a typo, not categories
        stray = np.flatnonzero(parsed.isna().to_numpy())
        first = values.index[stray[0]]
        raise DataError(
            f"column '{series.name}' holds numbers but also {values.loc[first]!r} in "
            f"{row_label(row_of(series, series.index.get_loc(first)), source)}"
            + (f" and {len(stray) - 1} more rows" if len(stray) > 1 else "")
            + "; fix those values, or list the column in data.categorical if its values are categories"
        )
    return "categorical"


def scale_of(values: np.ndarray, column: str) -> tuple[float, float]:
    """Mean and standard deviation (1 for a constant) of a column's training values.

    Raises:
        DataError: the values are too large for either to be a finite number.
    """
    mean, std = scaling(values, None, f"column '{column}'")
    return float(mean), float(std)


def standardise(numbers: np.ndarray, mean: float, std: float, series, source: str | None) -> np.ndarray:
    """``(numbers - mean) / std`` of a column (``series``), refusing values too far from training
    (``codecs.tables.standardised``, as new rows are refused).

    Raises:
        DataError: naming the column, the row and the training scale.
    """
    return standardised(numbers, {"name": series.name, "mean": mean, "std": std}, where_of(series, source))


def infer_task(series) -> str:
    """'classification' for labels, 'regression' for real-valued targets."""
    values = series.dropna()
    if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        return "classification"
    numbers = values.to_numpy(dtype=np.float64)
    with np.errstate(invalid="ignore"):  # infinities: to_numbers names them when the column is read
        integral = np.all(np.mod(numbers, 1) == 0)
    return "classification" if integral and len(np.unique(numbers)) <= 20 else "regression"


def to_numbers(series, column: str, source: str | None, boolean: bool) -> np.ndarray:
    """Column as float64 with NaN for missing; a clear error for values that are not numbers
    (read by the one reader of cells, ``codecs.cells``)."""
    hint = "fix the values or declare the column categorical (data.categorical)"
    return numbers(series.to_numpy(), column, where_of(series, source), boolean=boolean, hint=hint)


def where_of(series, source: str | None) -> Where:
    """Names the rows of a column of a table for messages, by its index when the table was read
    from a file (as training rows keep theirs)."""
    index = series.index
    return Where(source, rows=index.to_numpy() if index.dtype.kind in "iu" else None)


def write_table(frame, path: str | Path) -> Path:
    """Write ``frame`` as Parquet (.parquet, .pq) or CSV (any other name), atomically: an
    interrupted write leaves the old file or none, never half a table."""
    return write_table_pieces([frame], path)


def write_table_pieces(frames, path: str | Path) -> Path:
    """Write the rows of ``frames`` (DataFrames with the same columns, made as they are read:
    one in memory at a time) as one table, atomically, like ``write_table``. Parquet keeps the
    first frame's column types; every frame becomes a row group."""
    path = Path(path)
    with atomic_file(path) as file:
        if path.suffix.lower() in (".parquet", ".pq"):
            import pyarrow as pa
            import pyarrow.parquet as pq

            writer = None
            try:
                for frame in frames:
                    table = pa.Table.from_pandas(frame, preserve_index=False)
                    if writer is None:
                        writer = pq.ParquetWriter(file, table.schema)
                    writer.write_table(table.cast(writer.schema))
            finally:
                if writer is not None:
                    writer.close()
            if writer is None:
                raise DataError(f"{path}: no rows to write")
        else:
            for i, frame in enumerate(frames):
                file.write(frame.to_csv(index=False, header=i == 0).encode("utf-8"))
    return path


class Preprocessor:
    """Scale numeric columns, encode booleans and categories, impute missing values.

    Numeric and boolean columns are standardised with training mean and standard deviation;
    missing values become the training median plus a 0/1 indicator column (for columns that had
    missing values in training). Categorical columns are one-hot encoded over the training
    categories; a missing value is its own category when training had missing values there.

    Use ``Preprocessor.fit(frame, features)``; the result is described by ``to_json()``.
    """

    def __init__(self, columns: list[dict[str, Any]]):
        self.columns = columns

    @classmethod
    def fit(cls, frame, features: list[str], categorical: list[str] = (), source: str | None = None,
            types: dict[str, str] | None = None) -> Preprocessor:
        """Fit on the training rows ``frame`` (``source``: the file, for messages).

        Args:
            types: column -> type (``data.columns.TYPES``), as the schema inferred or the spec
                named them; a column not in it is typed by ``data.columns.infer``.
        """
        columns = []
        for name in features:
            series = frame[name]
            type_ = (types or {}).get(name) or ("category" if name in categorical else infer(series, name)[0])
            if type_ == "number" and series.dtype.kind == "O":
                infer_kind(series, False, source)  # names a stray word among numbers, and how many more
            kind = codec_kind("category" if type_ == "identifier" else type_, distinct_values(series))
            if kind in COLUMN_CODECS:
                columns.append(fit_column(kind, series.to_numpy(), name, where_of(series, source)))
                continue
            missing = bool(series.isna().any())
            if kind == "categorical":
                keys = sorted({category_key(v) for v in series.dropna().to_numpy()})  # float32 0.1 is "0.1"
                if len(keys) > MAX_CATEGORIES:
                    raise DataError(
                        f"column '{name}' has {len(keys)} distinct values, too many to one-hot "
                        f"encode (limit {MAX_CATEGORIES}); drop it with data.drop"
                    )
                if missing:
                    keys.append(MISSING)
                columns.append({"name": name, "kind": kind, "categories": keys})
                continue
            numbers = to_numbers(series, name, source, boolean=kind == "boolean")
            present = numbers[~np.isnan(numbers)]
            if len(present) == 0:
                raise DataError(f"column '{name}' has no values in the training rows; drop it with data.drop")
            mean, std = scale_of(present, name)
            columns.append({
                "name": name,
                "kind": kind,
                "mean": mean,
                "std": std,
                "fill": float(np.median(present)),
                "indicator": missing,
            })
        return cls(columns)

    @property
    def feature_names(self) -> list[str]:
        """Names of the input columns the model sees, in order."""
        names = []
        for column in self.columns:
            if column["kind"] in COLUMN_CODECS:
                names += column_codec(column).feature_names
            elif column["kind"] == "categorical":
                names += [f"{column['name']}={c}" for c in column["categories"]]
            else:
                names.append(column["name"])
                if column["indicator"]:
                    names.append(f"{column['name']}__missing")
        return names

    @property
    def input_names(self) -> list[str]:
        return [column["name"] for column in self.columns]

    def codec(self):
        """The codec that encodes rows by this preprocessing (``codecs.tables.TableCodec``)."""
        return TableCodec(self.to_json())

    def check_columns(self, frame, *, allowed_extra: tuple[str, ...] = (), ignore_extra: bool = False,
                      source: str | None = None) -> None:
        """Raise DataError when ``frame`` lacks a training column or has unexpected ones."""
        names = {str(name): () for name in frame.columns if name not in allowed_extra}
        self.codec().check_columns(Columns(names, Where(source), len(frame)), ignore_extra=ignore_extra)

    def transform(self, frame, *, unknown: str = "error", source: str | None = None) -> np.ndarray:
        """The model's input matrix (float32, one row per frame row), by ``codec()``.

        Args:
            unknown: 'error' raises on a category not seen in training; 'bucket' encodes it as
                all zeros (an "unknown" bucket).
        """
        codec = self.codec()
        return codec.matrix(_columns(frame[codec.features], source), unknown)

    def inverse_transform(self, matrix: np.ndarray):
        """Rows of the model's input space back to the original columns (a DataFrame): numbers
        unscaled, booleans thresholded at 0.5, categories by their largest one-hot entry."""
        import pandas as pd

        data, position = {}, 0
        for column in self.columns:
            if column["kind"] in COLUMN_CODECS:
                codec = column_codec(column)
                data[column["name"]] = codec.inverse(matrix[:, position : position + codec.width])
                position += codec.width
                continue
            if column["kind"] == "categorical":
                categories = column["categories"]
                block = matrix[:, position : position + len(categories)]
                data[column["name"]] = [None if categories[i] == MISSING else categories[i] for i in block.argmax(1)]
                position += len(categories)
                continue
            values = matrix[:, position] * column["std"] + column["mean"]
            data[column["name"]] = values > 0.5 if column["kind"] == "boolean" else values
            position += 2 if column["indicator"] else 1
        return pd.DataFrame(data)

    def to_json(self) -> dict[str, Any]:
        return {"columns": self.columns}

    @classmethod
    def from_json(cls, state: dict[str, Any]) -> Preprocessor:
        return cls(state["columns"])


def _columns(frame, source: str | None):
    """A DataFrame's cells by column (``codecs.tables.frame_columns``), naming ``source``."""
    columns = frame_columns(frame)
    if source is not None:
        columns.where.source = source
    return columns


def fingerprint_frame(frame) -> str:
    """SHA-256 of a table's content: column names, types and every value."""
    digest = hashlib.sha256()
    digest.update("\x1f".join(f"{c}:{t}" for c, t in frame.dtypes.items()).encode("utf-8"))
    try:
        hashed = pd.util.hash_pandas_object(frame, index=False)
    except TypeError:  # lists in cells (vectors, sets), or cells no table holds
        hashed = pd.util.hash_pandas_object(frame.apply(_cells_as_text), index=False)
    digest.update(hashed.to_numpy().tobytes())
    return digest.hexdigest()


def _cells_as_text(series):
    """A column whose cells may be lists, as text (for its fingerprint).

    Raises:
        DataError: a cell that no column type reads (a mapping, a set object), naming it."""
    if series.dtype.kind != "O":
        return series
    values = series.to_numpy()
    for row, value in enumerate(values):
        if isinstance(value, (dict, set, frozenset)) or (not isinstance(value, (str, bytes, list, tuple, np.ndarray))
                                                         and not hasattr(value, "__hash__")):
            raise DataError(f"column '{series.name}': {value!r} in row {row + 1} is a {type(value).__name__}; a cell "
                            "holds a number, text, a date or a list (a vector or a set)")
    return pd.Series([repr(v.tolist()) if isinstance(v, np.ndarray) else repr(v) if isinstance(v, (list, tuple))
                      else v for v in values], index=series.index, name=series.name, dtype=object)
