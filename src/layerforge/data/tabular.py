"""Tables: reading CSV / Parquet, and preprocessing fitted on the training rows only.

The fitted ``Preprocessor`` is plain JSON (saved in ``model.json``), so prediction in a new
process applies exactly the transformation used in training.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError
from ..files import atomic_file
from .arrays import MAX_STANDARD_SCORE, scaling
from .labels import category_key, row_label, row_of

MISSING = "<missing>"
MAX_CATEGORIES = 1000
BLOCK_ROWS = 65536  # Preprocessor.transform encodes number columns this many rows at a time


def read_table(path: str | Path):
    """Read a .csv, .tsv or .parquet file into a DataFrame; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
        elif suffix in (".csv", ".tsv"):
            frame = pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",")
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


def _is_missing(series):
    return series.isna().to_numpy()


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
    """``(numbers - mean) / std``, refusing a value more than ``MAX_STANDARD_SCORE`` standard
    deviations from the training mean: not a measurement of the same thing, and a step away
    from outputs that are not numbers at all.

    Raises:
        DataError: naming the column, the row and the training scale.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        scaled = (numbers - mean) / std
        usable = np.abs(scaled) <= MAX_STANDARD_SCORE
    bad = np.flatnonzero(~usable & np.isfinite(numbers))
    if len(bad):
        raise DataError(
            f"column '{series.name}': {numbers[bad[0]]:.3g} in {row_label(row_of(series, bad[0]), source)} is too far "
            f"from the values seen in training (mean {mean:.3g}, standard deviation {std:.3g}) to be used"
            + (f"; so are {len(bad) - 1} more rows" if len(bad) > 1 else "") + "; fix or drop those rows"
        )
    return scaled


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
    """Column as float64 with NaN for missing; a clear error for values that are not numbers."""
    missing = _is_missing(series)
    if boolean:
        def convert(value):
            text = str(value).strip().lower()
            return {"true": 1.0, "false": 0.0, "1": 1.0, "0": 0.0, "1.0": 1.0, "0.0": 0.0}.get(text, math.nan)

        numbers = np.array([math.nan if m else convert(v) for v, m in zip(series, missing)])
        kind = "true/false values"
    else:
        if pd.api.types.is_bool_dtype(series):
            raise DataError(f"column '{column}': expected numbers, found true/false values; pass the numbers the "
                            "model was trained on")
        numbers = np.array(
            pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        )
        kind = "numbers"
    infinite = np.flatnonzero(np.isinf(numbers))
    if len(infinite):
        raise DataError(
            f"column '{column}': an infinite value in {row_label(row_of(series, infinite[0]), source)}"
            + (f" and {len(infinite) - 1} more rows" if len(infinite) > 1 else "") + "; fix or drop those rows"
        )
    bad = np.flatnonzero(np.isnan(numbers) & ~missing)
    if len(bad):
        first = bad[0]
        raise DataError(
            f"column '{column}': expected {kind}, found {series.iloc[first]!r} in "
            f"{row_label(row_of(series, first), source)}" + (f" and {len(bad) - 1} more rows" if len(bad) > 1 else "")
            + "; fix the values or declare the column categorical (data.categorical)"
        )
    return numbers


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
    def fit(cls, frame, features: list[str], categorical: list[str] = (), source: str | None = None) -> Preprocessor:
        """Fit on the training rows ``frame`` (``source``: the file, for messages)."""
        columns = []
        for name in features:
            series = frame[name]
            kind = infer_kind(series, name in categorical, source)
            missing = bool(series.isna().any())
            if kind == "categorical":
                keys = sorted({category_key(v) for v in series.dropna()})
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
            if column["kind"] == "categorical":
                names += [f"{column['name']}={c}" for c in column["categories"]]
            else:
                names.append(column["name"])
                if column["indicator"]:
                    names.append(f"{column['name']}__missing")
        return names

    @property
    def input_names(self) -> list[str]:
        return [column["name"] for column in self.columns]

    def check_columns(self, frame, *, allowed_extra: tuple[str, ...] = (), ignore_extra: bool = False,
                      source: str | None = None) -> None:
        """Raise DataError when ``frame`` lacks a training column or has unexpected ones."""
        where = f" in {source}" if source else ""
        missing = [name for name in self.input_names if name not in frame.columns]
        if missing:
            raise DataError(
                f"missing column{'s' if len(missing) > 1 else ''}{where}: {', '.join(missing)} "
                f"(the model was trained on: {', '.join(self.input_names)})"
            )
        extra = [c for c in frame.columns if c not in self.input_names and c not in allowed_extra]
        if extra and not ignore_extra:
            raise DataError(
                f"unexpected column{'s' if len(extra) > 1 else ''}{where}: "
                f"{', '.join(map(str, extra))}; remove them or pass ignore_extra (--ignore-extra)"
            )

    def transform(self, frame, *, unknown: str = "error", source: str | None = None) -> np.ndarray:
        """The model's input matrix (float32, one row per frame row).

        Args:
            unknown: 'error' raises on a category not seen in training; 'bucket' encodes it as
                all zeros (an "unknown" bucket).
        """
        out = np.empty((len(frame), len(self.feature_names)), dtype=np.float32)
        plain, position = [], 0  # number columns stored as numbers: encoded together, below
        for column in self.columns:
            series = frame[column["name"]]
            if column["kind"] == "categorical":
                width = len(column["categories"])
                out[:, position : position + width] = self._encode(column, series, unknown, source)
                position += width
                continue
            if column["kind"] == "numeric" and pd.api.types.is_numeric_dtype(series) \
                    and not pd.api.types.is_bool_dtype(series):
                plain.append((position, column))
            else:
                self._number_column(out, position, column, series, source)
            position += 2 if column["indicator"] else 1
        if plain:
            self._number_columns(out, plain, frame, source)
        return out

    def _number_column(self, out: np.ndarray, position: int, column: dict, series, source: str | None) -> None:
        """One number or true/false column, standardised into ``out`` (and its missing indicator)."""
        numbers = to_numbers(series, column["name"], source, boolean=column["kind"] == "boolean")
        missing = np.isnan(numbers)
        numbers[missing] = column["fill"]
        out[:, position] = standardise(numbers, column["mean"], column["std"], series, source)
        if column["indicator"]:
            out[:, position + 1] = missing

    def _number_columns(self, out: np.ndarray, plain: list[tuple[int, dict]], frame, source: str | None) -> None:
        """Columns held as numbers, standardised in one pass over all of them (a column with a
        value to refuse goes through ``_number_column``, which names its row)."""
        columns = [column for _, column in plain]
        names = [c["name"] for c in columns]
        fills, means, stds = (np.array([c[key] for c in columns]) for key in ("fill", "mean", "std"))
        positions = np.array([position for position, _ in plain])
        indicators = np.flatnonzero([c["indicator"] for c in columns])
        for start in range(0, len(frame), BLOCK_ROWS):  # a block of rows at a time bounds the temporaries
            rows = slice(start, start + BLOCK_ROWS)
            values = frame.iloc[rows][names].to_numpy(np.float64, na_value=np.nan)
            missing = np.isnan(values)
            with np.errstate(over="ignore", invalid="ignore"):
                scaled = (np.where(missing, fills, values) - means) / stds
                refused = ~(np.abs(scaled) <= MAX_STANDARD_SCORE)
            for j in np.flatnonzero(refused.any(axis=0)):  # infinite or too far from training: raises
                self._number_column(out, plain[j][0], columns[j], frame[names[j]], source)
            out[rows, positions] = scaled
            for j in indicators:
                out[rows, positions[j] + 1] = missing[:, j]

    @staticmethod
    def _encode(column: dict, series, unknown: str, source: str | None) -> np.ndarray:
        categories = column["categories"]
        index = {key: i for i, key in enumerate(categories)}
        missing = _is_missing(series)
        keys = [MISSING if m else category_key(v) for v, m in zip(series, missing)]
        codes = np.array([index.get(k, -1) for k in keys], dtype=np.int64)
        unseen = np.flatnonzero(codes < 0)
        if len(unseen) and unknown != "bucket":
            first = unseen[0]
            value = "a missing value" if keys[first] == MISSING else f"unseen category {keys[first]!r}"
            shown = [c for c in categories if c != MISSING]
            raise DataError(
                f"column '{column['name']}': {value} in {row_label(first, source)}"
                + (f" and {len(unseen) - 1} more rows" if len(unseen) > 1 else "")
                + f" (known: {', '.join(shown[:20])}{', ...' if len(shown) > 20 else ''}); fix the "
                "value, or map unseen categories to an unknown bucket with "
                "data.unknown_categories: bucket (--unknown-categories bucket)"
            )
        encoded = np.zeros((len(series), len(categories)), dtype=np.float64)
        known = codes >= 0
        encoded[np.flatnonzero(known), codes[known]] = 1.0
        return encoded

    def inverse_transform(self, matrix: np.ndarray):
        """Rows of the model's input space back to the original columns (a DataFrame): numbers
        unscaled, booleans thresholded at 0.5, categories by their largest one-hot entry."""
        import pandas as pd

        data, position = {}, 0
        for column in self.columns:
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


def fingerprint_frame(frame) -> str:
    """SHA-256 of a table's content: column names, types and every value."""
    digest = hashlib.sha256()
    digest.update("\x1f".join(f"{c}:{t}" for c, t in frame.dtypes.items()).encode("utf-8"))
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()
