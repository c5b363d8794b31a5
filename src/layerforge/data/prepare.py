"""From a data spec to split, preprocessed arrays, and back for new rows at prediction time."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import DataError, did_you_mean
from . import builtin
from .split import split_indices
from .tabular import Preprocessor, _category_key, _row_label, _to_numbers, infer_task, read_table


@dataclass
class Prepared:
    """Everything training needs from the data, and what prediction needs to repeat it.

    ``splits`` maps 'train', 'val' and 'test' to ``(inputs, y)`` where ``inputs`` is the tuple
    of arrays the model takes: ``(x,)``, or ``(x, lengths)`` for sequences of unequal length.
    ``inputs_info`` describes ``x`` for the model builders (see ``layerforge.models``).
    """

    task: str
    target: str
    classes: list | None
    target_mean: list[float] | None
    target_std: list[float] | None
    inputs_info: dict[str, Any]
    preprocessing: dict[str, Any]
    splits: dict[str, tuple[tuple[np.ndarray, ...], np.ndarray]]
    source: str
    features: list[str] | None = None
    extra: dict[str, Any] | None = None

    def rows(self, name: str) -> int:
        return int(len(self.splits[name][1]))

    def meta(self) -> dict[str, Any]:
        """What model.json records about the data."""
        return {
            "task": self.task,
            "target": self.target,
            "classes": self.classes,
            "target_scaling": None
            if self.target_mean is None
            else {"mean": self.target_mean, "std": self.target_std},
            "inputs": self.inputs_info,
            "features": self.features,
            "preprocessing": self.preprocessing,
            "rows": {name: self.rows(name) for name in self.splits},
            "source": self.source,
            **(self.extra or {}),
        }


def load_frame(data_spec):
    """The raw DataFrame a data spec names, and a label for messages."""
    if data_spec.dataset:
        return builtin.load(data_spec.dataset), data_spec.dataset
    return read_table(data_spec.path), data_spec.path


def _check_named_columns(frame, names: list[str], key: str, source: str) -> None:
    columns = [str(c) for c in frame.columns]
    for name in names:
        if name not in frame.columns:
            raise DataError(
                f"{key}: no column '{name}' in {source}{did_you_mean(name, columns)} "
                f"(columns: {', '.join(columns[:30])}{', ...' if len(columns) > 30 else ''})"
            )


def resolve_target(data_spec, frame, source: str) -> str:
    target = data_spec.target
    if target is None and data_spec.dataset:
        target = builtin.DATASETS[data_spec.dataset].target
    if target is None:
        raise DataError(
            f"data.target: name the column to predict (columns of {source}: "
            f"{', '.join(map(str, frame.columns[:30]))})"
        )
    _check_named_columns(frame, [target], "data.target", source)
    return target


def classes_of(series) -> list:
    """Sorted class labels as JSON-able values (ints when all labels are integral)."""
    values = series.dropna().unique()
    keys = {_category_key(v) for v in values}
    if all(k.lstrip("-").isdigit() for k in keys):
        return sorted(int(k) for k in keys)
    return sorted(keys)


def encode_classes(series, classes: list, source: str | None = None) -> np.ndarray:
    """Class indices for a target column; unknown or missing labels raise DataError."""
    index = {_category_key(c): i for i, c in enumerate(classes)}
    codes = np.empty(len(series), dtype=np.int64)
    missing = series.isna().to_numpy()
    for position, (value, absent) in enumerate(zip(series, missing)):
        code = None if absent else index.get(_category_key(value))
        if code is None:
            shown = "a missing value" if absent else repr(value)
            raise DataError(
                f"target column '{series.name}': {shown} in {_row_label(position, source)} is not "
                f"one of the classes the model knows ({', '.join(map(str, classes))})"
            )
        codes[position] = code
    return codes


def prepare(data_spec, task: str | None, seed: int) -> Prepared:
    """Load, check, split and preprocess the data a spec names (any kind)."""
    kind = builtin.data_kind(data_spec)
    if kind == "sequence":
        from .sequences import prepare_sequences

        return prepare_sequences(data_spec, task, seed)
    if kind == "forecast":
        from .forecast import prepare_forecast

        return prepare_forecast(data_spec, task, seed)
    if kind == "image":
        from .images import prepare_images

        return prepare_images(data_spec, task, seed)
    if kind == "corpus":
        from .text import prepare_corpus

        return prepare_corpus(data_spec, task, seed)
    if kind == "text":
        from .text import prepare_text_classification

        return prepare_text_classification(data_spec, task, seed)
    return prepare_table(data_spec, task, seed)


def prepare_table(data_spec, task: str | None, seed: int) -> Prepared:
    """Load, check, split and preprocess a table.

    Preprocessing statistics come from the training split only.

    Raises:
        DataError: columns that do not exist, a missing target, values of the wrong type, ...
    """
    frame, source = load_frame(data_spec)
    generative = task in GENERATIVE
    if generative and data_spec.target is None and not data_spec.dataset:
        target = None  # unlabelled rows: every column is a feature
    else:
        target = resolve_target(data_spec, frame, source)
    _check_named_columns(frame, data_spec.drop, "data.drop", source)
    _check_named_columns(frame, data_spec.categorical, "data.categorical", source)
    if data_spec.features is not None:
        _check_named_columns(frame, data_spec.features, "data.features", source)
        features = [f for f in data_spec.features if f != target]
    else:
        features = [c for c in frame.columns if c != target and c not in data_spec.drop]
    if not features:
        raise DataError(f"no feature columns left in {source} besides the target '{target}'")

    missing = np.flatnonzero(frame[target].isna().to_numpy()) if target is not None else []
    if len(missing):
        rows = ", ".join(_row_label(i, source) for i in missing[:3])
        raise DataError(
            f"target column '{target}' has {len(missing)} missing value(s) ({rows}"
            f"{', ...' if len(missing) > 3 else ''}); fill or drop those rows"
        )
    if task is None:
        task = builtin.DATASETS[data_spec.dataset].task if data_spec.dataset else infer_task(frame[target])

    split = data_spec.split
    labels = None
    if target is None:
        classes, y_all = None, np.zeros(len(frame), dtype=np.int64)
    elif task == "classification" or generative:
        classes = classes_of(frame[target])
        if len(classes) < 2:
            raise DataError(f"target column '{target}' has only one class ({classes}); nothing to learn")
        y_all = encode_classes(frame[target], classes, source)
        if split.stratify and split.shuffle:
            labels = y_all
    else:
        classes = None
        y_all = _to_numbers(frame[target], target, source, boolean=False)
    parts = split_indices(len(frame), split.val, split.test, seed=seed, labels=labels, shuffle=split.shuffle)
    parts = hold_out_anomalies(parts, y_all, classes, data_spec.anomaly_classes, source)
    if len(parts["train"]) == 0:
        raise DataError(f"{source}: no rows left for training after the split")

    train_rows = frame.iloc[parts["train"]]
    preprocessor = Preprocessor.fit(train_rows, features, data_spec.categorical)
    target_mean = target_std = None
    if task == "regression":
        y_train = y_all[parts["train"]]
        std = float(y_train.std())
        target_mean, target_std = [float(y_train.mean())], [std if std > 0 else 1.0]
        y_all = ((y_all - target_mean[0]) / target_std[0]).astype(np.float32)[:, None]
    splits = {}
    for name, rows in parts.items():
        x = preprocessor.transform(frame.iloc[rows], unknown="bucket", source=source)
        splits[name] = ((x,), y_all[rows])
    inputs_info = {"kind": "table", "features": len(preprocessor.feature_names)}
    preprocessing = {"kind": "table", **preprocessor.to_json(), "encoded_features": preprocessor.feature_names}
    extra = generative_meta(data_spec)
    return Prepared(task, target, classes, target_mean, target_std, inputs_info, preprocessing, splits, source,
                    features=preprocessor.input_names, extra=extra or None)


GENERATIVE = ("reconstruction", "generation")


def generative_meta(data_spec) -> dict[str, Any]:
    """What model.json records for autoencoders and GANs: the anomaly classes, and the image
    shape of a built-in table whose rows are images (digits), so that samples can be drawn."""
    extra: dict[str, Any] = {}
    if data_spec.anomaly_classes is not None:
        extra["anomaly_classes"] = list(data_spec.anomaly_classes)
    if data_spec.dataset and builtin.DATASETS[data_spec.dataset].image_shape:
        extra["image_shape"] = list(builtin.DATASETS[data_spec.dataset].image_shape)
    return extra


def hold_out_anomalies(parts: dict[str, np.ndarray], y: np.ndarray, classes: list | None, anomaly_classes,
                       source: str) -> dict[str, np.ndarray]:
    """Move every row of ``anomaly_classes`` into the test split: an anomaly detector learns
    what normal looks like from training and validation rows, and is tested on both kinds."""
    if anomaly_classes is None:
        return parts
    if classes is None:
        raise DataError("data.anomaly_classes: needs a data.target column that names each row's class")
    codes = anomaly_codes(classes, anomaly_classes, source)
    if len(codes) == len(classes):
        raise DataError("data.anomaly_classes: lists every class, so no normal rows remain to learn from")
    anomalous = np.isin(y, codes)
    moved = np.concatenate([rows[anomalous[rows]] for rows in parts.values()])
    kept = {name: rows[~anomalous[rows]] for name, rows in parts.items()}
    kept["test"] = np.sort(np.concatenate([kept["test"], moved]))
    return kept


def anomaly_codes(classes: list, anomaly_classes: list, source: str) -> list[int]:
    """The class indices of ``anomaly_classes`` (values as in the target column)."""
    known = {_category_key(c): i for i, c in enumerate(classes)}
    codes = []
    for value in anomaly_classes:
        if _category_key(value) not in known:
            raise DataError(f"data.anomaly_classes: {value!r} is not a class of {source} "
                            f"(classes: {', '.join(map(str, classes))})")
        codes.append(known[_category_key(value)])
    return codes
