"""Tables (CSV, TSV, Parquet, built-in tables): one row per example, named columns of numbers,
booleans and categories, and a target column."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from ...codecs.tables import PARQUET_FILES, TableCodec, frame_columns
from ...errors import DataError, did_you_mean
from ...models.inputs import Inputs
from .. import builtin
from ..labels import row_label
from .base import Encoder, Kind, Perturbation, Source, State


class NumericColumn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    kind: Literal["numeric", "boolean"]
    mean: float
    std: float
    fill: float
    indicator: bool


class CategoricalColumn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    kind: Literal["categorical"]
    categories: list[str]


class DateColumn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    kind: Literal["date", "datetime"]
    format: str | None
    days_mean: float
    days_std: float
    year_mean: float
    year_std: float
    fill: float
    indicator: bool


class TextColumn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    kind: Literal["text"]
    words: list[str]
    idf: list[float]
    length_mean: float
    length_std: float


class SetColumn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    kind: Literal["set"]
    separator: str
    values: list[str]


class VectorColumn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    kind: Literal["vector"]
    means: list[float]
    stds: list[float]
    indicator: bool


class QuantileColumn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    kind: Literal["quantile"]
    points: list[float]
    scores: list[float]
    fill: float
    indicator: bool


class ImageColumn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    kind: Literal["image"]
    channels: Literal[1, 3]
    size: list[int]


class EmbeddedColumn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    kind: Literal["embedded"]
    categories: list[str]


Column = Annotated[NumericColumn | CategoricalColumn | DateColumn | TextColumn | SetColumn | VectorColumn
                   | EmbeddedColumn | QuantileColumn | ImageColumn, Field(discriminator="kind")]


class TableState(State):
    """The fitted preprocessing of each input column (see ``Preprocessor``), and the columns
    left out (identifiers, ``data.drop``), which rows may carry."""

    named_columns: ClassVar[bool] = True
    kind: Literal["table"] = "table"
    columns: list[Column]
    encoded_features: list[str]
    unknown_categories: Literal["error", "bucket"] = "error"
    image_shape: list[int] | None = None  # (C, H, W) when every row is an image (the digits)
    ignored: list[str] = []

    def _codec(self):
        return TableCodec(self.model_dump(mode="json"))

    def attribution_groups(self):
        """Each input column with its encoded features: the value (and its missing indicator),
        one one-hot feature per category, a date's parts, a text's words."""
        return [(name, list(range(first, first + width))) for name, first, width, _ in self._codec().blocks]

    def perturbation(self):
        """Standardised values (numbers, a date's time and year, vectors); category one-hots and
        codes, words and missing-value indicators stay as they are."""
        scale = np.zeros(len(self.encoded_features), dtype=np.float32)
        scale[self._codec().scaled()] = 1.0
        return Perturbation("standardised values", scale)

    def reads_files(self) -> str | None:
        pictures = [column.name for column in self.columns if column.kind == "image"]
        return f"the picture paths of column '{pictures[0]}'" if pictures else None

    def request_row(self, title: str):
        """A mapping of every input column: numbers (null: a missing value), true/false, or one of
        a category column's known categories (any text when unseen ones go to a bucket)."""
        from pydantic import create_model

        from ..tabular import MISSING

        fields = {}
        for i, column in enumerate(self.columns):
            if column.kind in _REQUEST_CELLS:
                annotation, about = _REQUEST_CELLS[column.kind]
            elif column.kind == "categorical":
                known = tuple(c for c in column.categories if c != MISSING)
                kind = str if self.unknown_categories == "bucket" or not known else Literal[known]
                absent = MISSING in column.categories or self.unknown_categories == "bucket"
                annotation, about = (kind | None if absent else kind), f"one of {len(known)} categories"
            else:
                finite = Annotated[float, Field(allow_inf_nan=False)]
                annotation = (bool if column.kind == "boolean" else finite) | None
                about = "true or false" if column.kind == "boolean" else "a number"
                about += "; null: missing"
            fields[f"column_{i}"] = (annotation, Field(alias=column.name, description=about))
        return create_model(title, __config__=ConfigDict(extra="forbid", title=title), **fields)


# what a request's cell is for the column kinds read by ``codecs.columns``
_REQUEST_CELLS = {
    "date": (str | None, "a date (ISO 8601, e.g. 2024-03-15, or the form of the training data); null: missing"),
    "datetime": (str | None, "a date and time (ISO 8601, e.g. 2024-03-15T14:30); null: missing"),
    "text": (str | None, "text; null: none"),
    "set": (str | list[str] | None, "values joined by the column's separator, or a list; null: none"),
    "vector": (list[Annotated[float, Field(allow_inf_nan=False)]] | str | None, "a list of numbers; null: missing"),
    "embedded": (str | int | None, "a category (unseen ones go to the column's bucket)"),
    "quantile": (Annotated[float, Field(allow_inf_nan=False)] | None, "a number; null: missing"),
    "image": (str | None, "a path to a picture file on the server (relative to its working folder)"),
}


def _check_named_columns(frame, names: list[str], key: str, source: str) -> None:
    columns = [str(c) for c in frame.columns]
    for name in names:
        if name not in frame.columns:
            raise DataError(
                f"{key}: no column '{name}' in {source}{did_you_mean(name, columns)} "
                f"(columns: {', '.join(columns[:30])}{', ...' if len(columns) > 30 else ''})"
            )


def resolve_target(data_spec, frame, source: str) -> str | list[str]:
    """The target column a data spec names (a built-in knows its own), or its several target
    columns, checked to exist."""

    target = data_spec.target
    if isinstance(target, list):
        _check_named_columns(frame, target, "data.target", source)
        return list(target)
    if target is None and data_spec.dataset:
        target = builtin.DATASETS[data_spec.dataset].target
    if target is None:
        raise DataError(
            f"data.target: name the column to predict (columns of {source}: "
            f"{', '.join(map(str, frame.columns[:30]))})"
        )
    _check_named_columns(frame, [target], "data.target", source)
    return target


def load_frame(data_spec):
    """The raw DataFrame a data spec names, and a label for messages."""
    from ..tabular import read_table

    if data_spec.dataset:
        return builtin.load(data_spec.dataset), data_spec.dataset
    return read_table(data_spec.path, text=data_spec.categorical), data_spec.path


def table_columns(data_spec, frame, source: str, target_required: bool) -> tuple[str | None, list[str], str | None]:
    """The target, feature and group columns a data spec names, checked against ``frame``'s
    columns (only its column names are read)."""
    if not target_required and data_spec.target is None and not data_spec.dataset:
        target = None  # unlabelled rows: every column is a feature
    else:
        target = resolve_target(data_spec, frame, source)
    _check_named_columns(frame, data_spec.drop, "data.drop", source)
    _check_named_columns(frame, data_spec.categorical, "data.categorical", source)
    targets = target if isinstance(target, list) else [target]
    groups = data_spec.groups
    if groups is not None:
        _check_named_columns(frame, [groups], "data.groups", source)
        if groups in targets:
            raise DataError(f"data.groups: '{groups}' is the target column; name the column that groups rows "
                            "(a patient, a site)")
    if data_spec.feature_types:
        _check_named_columns(frame, list(data_spec.feature_types), "data.features", source)
    if data_spec.feature_list is not None:
        _check_named_columns(frame, data_spec.feature_list, "data.features", source)
        features = [f for f in data_spec.feature_list if f not in (*targets, groups)]
    else:
        features = [c for c in frame.columns if c not in (*targets, groups) and c not in data_spec.drop]
    if not features:
        raise DataError(f"no feature columns left in {source} besides the target '{target}'")
    return target, features, groups


def check_labels(labels, target: str | list[str], source: str) -> None:
    """Refuse a target column with missing values, naming the first rows; in a column of label
    sets (multi-label) an empty cell is the empty set."""
    if isinstance(target, list):
        for name in target:
            check_labels(labels[name], name, source)
        return
    missing = np.flatnonzero(labels.isna().to_numpy())
    if len(missing):
        from ..columns import infer

        if infer(labels)[0] == "set":
            return
        rows = ", ".join(row_label(i, source) for i in missing[:3])
        raise DataError(
            f"target column '{target}' has {len(missing)} missing value(s) ({rows}"
            f"{', ...' if len(missing) > 3 else ''}); fill or drop those rows"
        )


def _load_streamed(data_spec, file, target_required: bool) -> Source:
    """A table source whose rows stay in ``file`` (a ``TableFile``): only its target column is read.

    Raises:
        DataError: as loading in memory does (missing columns, missing target values), and for
            what streaming cannot do (``data.groups``).
    """
    import pandas as pd

    header = pd.DataFrame(columns=file.names)
    target, features, groups = table_columns(data_spec, header, file.path, target_required)
    if isinstance(target, list):
        raise DataError(f"data.target: several targets are read from a table in memory; {file.path} is streamed "
                        "(data.streaming): set data.streaming: false")
    if data_spec.anomaly_classes is not None:
        raise DataError(f"data.anomaly_classes: moves every row of those classes into the test part, which a "
                        f"streamed table holds in memory; {file.path} is streamed (data.streaming): set "
                        "data.streaming: false")
    if groups is not None:
        raise DataError(f"data.groups: grouped splits need the whole table in memory; {file.path} is streamed "
                        "(data.streaming); set data.streaming: false or remove data.groups")
    labels = file.column(target) if target is not None else None
    if labels is not None:
        check_labels(labels, target, file.path)
    rows = len(labels) if labels is not None else len(file.column(features[0]))
    if rows == 0:
        raise DataError(f"{file.path}: holds no rows")
    facts = {"features": features, "builtin_task": None, "image_shape": None, "values_per_row": len(features) + 1}
    fingerprint = file.fingerprint()
    file.index_lines(rows)
    return Source(file.path, rows, StreamedTable(file, target, facts), fingerprint, target, labels,
                  facts=facts, streamed=True)


class StreamedTable:
    """The payload of a streamed table source: its rows stay in the file (a ``TableFile``) and
    come out as in-memory sources, a chunk or a choice of rows at a time (what a streamed source's
    payload offers: ``units``, ``read`` and ``take``)."""

    def __init__(self, file, target: str | None, facts: dict):
        self.file, self.target, self.facts = file, target, facts
        self.columns = [*facts["features"], *([target] if target else [])]

    def units(self) -> list[int]:
        """The pieces the file can be read from independently."""
        return self.file.units()

    def read(self, unit: int):
        """(row positions, in-memory source) of each chunk of piece ``unit``."""
        for frame in self.file.chunks(unit, self.columns):
            yield frame.index.to_numpy(), self._source(frame)

    def take(self, positions: np.ndarray) -> Source:
        """The rows at sorted ``positions`` as an in-memory source."""
        return self._source(self.file.take(positions, self.columns))

    def _source(self, frame) -> Source:
        labels = frame[self.target] if self.target else None
        return Source(self.file.path, len(frame), frame, "", self.target, labels, facts=self.facts)


class TableEncoder(Encoder):
    """Standardised numbers, encoded booleans and one-hot categories (a ``Preprocessor``)."""

    state: TableState

    def __init__(self, state: TableState, target: str | None = None):
        from ..tabular import Preprocessor

        super().__init__(state, target)
        self.preprocessor = Preprocessor.from_json(state.model_dump(include={"columns"}))

    @property
    def inputs(self) -> Inputs:
        blocks = [[first, width, codes] for _, first, width, codes in self.codec.blocks]
        return Inputs.table(len(self.state.encoded_features), blocks, self.codec.scaled())

    @property
    def features(self) -> list[str]:
        return self.preprocessor.input_names

    def missing_labels(self) -> str:
        if isinstance(self.target, list):
            return f"evaluation data needs the target columns {', '.join(repr(t) for t in self.target)}"
        return f"evaluation data needs the target column '{self.target}'"

    def encode(self, source: Source, parts: dict[str, np.ndarray]):
        """Each part's rows by the codec, as new rows are encoded (categories first seen outside
        the training rows go to the unknown bucket)."""
        frame = source.payload
        encoded = {}
        for name, rows in parts.items():
            part = frame.iloc[rows]
            columns = frame_columns(part[self.features])
            columns.where.source = source.label
            encoded[name] = ((self.codec.matrix(columns, "bucket"),),
                             None if source.labels is None else source.labels.iloc[rows])
        return encoded

    def encode_new(self, data, *, unknown: str | None = None, ignore_extra: bool = False):
        columns = self.codec.read(data)
        inputs, labels = self.codec.encode(columns, unknown=unknown, ignore_extra=ignore_extra, target=self.target)
        if labels is not None:
            import pandas as pd

            where = columns.where
            index = where.rows if where.rows is not None else pd.RangeIndex(where.first, where.first + columns.rows)
            labels = pd.DataFrame(labels, index=index) if isinstance(labels, dict) else \
                pd.Series(labels, name=self.target, index=index)
        return inputs, labels

    def pieces(self, data) -> Iterator:
        """A .csv or .tsv file's rows in blocks, read as text by the codec
        (``codecs.tables.csv_blocks``); a .parquet file's in chunks (``TableFile``: about 8 MB of
        values each, indexed by their rows in the file and naming it in ``attrs['source']``, so
        that messages name the file's row); anything else whole."""
        if not isinstance(data, (str, Path)) or not str(data).lower().endswith(PARQUET_FILES):
            yield from self.codec.pieces(data)
            return
        from ..tablefile import TableFile

        file, rows = TableFile.open(data), 0
        for unit in file.units():
            for frame in file.chunks(unit, file.names):
                frame.attrs["source"] = str(data)
                rows += len(frame)
                yield frame
        if not rows:
            raise DataError(f"{data}: holds no rows")

    def unscale(self, rows: np.ndarray):
        """A DataFrame with the original columns: numbers unscaled, categories decoded."""
        return self.preprocessor.inverse_transform(rows.reshape(len(rows), -1))

    def pictures(self, rows: np.ndarray) -> np.ndarray | None:
        if not self.state.image_shape:
            return None
        return self.unscale(rows).to_numpy(dtype=np.float64).reshape(len(rows), *self.state.image_shape)

    def unit_weights(self) -> np.ndarray | None:
        """Pixels share one unit: errors weighted by each column's variance are in pixel units.
        (A nearly always blank pixel has a tiny spread; in standardised units its rare ink would
        dominate.) Tables of mixed columns have no common unit and keep standardised units."""
        if not self.state.image_shape:
            return None
        return np.array([c.std ** 2 for c in self.state.columns])


class TableKind(Kind):
    name = "table"
    reads = "table"
    state = TableState
    several_targets = True

    def load(self, data_spec, *, target_required: bool = True) -> Source:
        if data_spec.frame is not None:
            raise DataError(f"this run's rows were given in memory ({data_spec.frame}), so they cannot be read "
                            "again here: pass them again (lf.train(resume=RUN, data=rows)), or evaluate on a file")
        if data_spec.path is not None:
            from ..tablefile import TableFile, check_fits

            file = TableFile.open(data_spec.path, data_spec.stream.chunk_rows)
            if data_spec.streaming is True or (data_spec.streaming == "auto" and file.too_large()):
                return _load_streamed(data_spec, file, target_required)
            check_fits(file.estimated_bytes(), data_spec.path)
        frame, source = load_frame(data_spec)
        return self.from_frame(data_spec, frame, source, target_required=target_required)

    def from_frame(self, data_spec, frame, source: str, *, target_required: bool = True) -> Source:
        """The rows of a DataFrame (read from the spec's file or data set, or given in memory)."""
        from ..tabular import fingerprint_frame

        target, features, groups = table_columns(data_spec, frame, source, target_required)
        labels = None
        if target is not None:
            labels = frame[target]
            check_labels(labels, target, source)
        info = builtin.DATASETS.get(data_spec.dataset) if data_spec.dataset else None
        facts = {"features": features, "builtin_task": info.task if info else None,
                 "image_shape": list(info.image_shape) if info and info.image_shape else None}
        if groups is not None:
            facts["groups"] = frame[groups].to_numpy()
        return Source(source, len(frame), frame, fingerprint_frame(frame), target, labels, facts=facts)

    def default_task(self, source: Source) -> str:
        from ..tabular import infer_task

        if isinstance(source.target, list):
            return "multitarget"
        if source.facts["builtin_task"]:
            return source.facts["builtin_task"]
        from ..columns import infer

        if source.labels is not None and infer(source.labels)[0] == "set":
            return "multilabel"  # a target of label sets (a|b)
        return infer_task(source.labels)

    def fit(self, source: Source, train: np.ndarray, data_spec) -> TableEncoder:
        """The preprocessing of the feature columns, each by its type (``data.columns``: the
        spec's, or inferred from the cells of every row, labels aside), fitted on the training
        rows; identifier-like columns are left out."""
        from ..columns import describe, feature_types
        from ..tabular import Preprocessor

        features = source.facts["features"]
        frame = source.payload
        named = source.target if isinstance(source.target, list) else [source.target]
        target = [name for name in named if name is not None and name in frame.columns]
        columns = describe(frame[[*features, *target]], target=source.target, types=data_spec.feature_types,
                           categorical=data_spec.categorical, features=data_spec.feature_list)
        types = feature_types(columns)
        left_out = [column.name for column in columns if column.role == "left out"]
        kept = [name for name in features if name in types]
        if not kept:
            raise DataError(f"no feature columns left in {source.label}: {', '.join(left_out)} look like identifiers "
                            "(a different value in every row); name their types in data.features to use them")
        if data_spec.numbers == "quantile":  # numbers read by their quantiles
            types = {name: "quantile" if kind == "number" else kind for name, kind in types.items()}
        preprocessor = Preprocessor.fit(frame.iloc[train], kept, data_spec.categorical, source.label, types)
        state = TableState(**preprocessor.to_json(), encoded_features=preprocessor.feature_names,
                           unknown_categories=data_spec.unknown_categories, image_shape=source.facts["image_shape"],
                           ignored=[*left_out, *(str(c) for c in data_spec.drop)])
        encoder = TableEncoder(state, source.target)
        encoder.schema = columns
        return encoder

    def encoder(self, state: TableState, target: str | None) -> TableEncoder:
        return TableEncoder(state, target)
