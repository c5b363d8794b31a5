"""scikit-learn estimators: ``Classifier`` and ``Regressor`` train a layerforge run on the rows
``fit(X, y)`` is given (arrays or a DataFrame, every column a feature), so that a network goes
into ``cross_val_score``, ``GridSearchCV`` and ``Pipeline`` like any estimator.

Each fit writes a run directory (under ``runs_dir``, or a temporary folder removed with the
estimator) and keeps the run as ``run_``; ``save`` copies it where a run can be loaded
(``lf.load_run``). Its rows are split into training and ``validation_fraction`` validation rows
(which pick the best epoch); the caller holds out its own test rows.

Example:
    >>> from sklearn.model_selection import cross_val_score
    >>> import layerforge as lf
    >>> cross_val_score(lf.Classifier(epochs=30), X, y, cv=5)  # doctest: +SKIP
"""

from __future__ import annotations

import shutil
import tempfile
import weakref
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DataError

try:  # scikit-learn is a dependency of layerforge; the import is deferred for start-up only
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
except ImportError:  # pragma: no cover
    raise ImportError("layerforge.Classifier and Regressor need scikit-learn (pip install scikit-learn)") from None


class _Network(BaseEstimator):
    """What both estimators share; see ``Classifier``."""

    _task = "classification"
    _classes = True  # its targets are classes: splits keep their shares, and they need not be numbers

    def __init__(self, model: str = "mlp", layers: tuple[int, ...] | None = (128, 64), epochs: int = 50,
                 batch_size: int = 64, lr: float = 1e-3, validation_fraction: float = 0.15, seed: int = 0,
                 spec: dict | None = None, runs_dir: str | None = None):
        self.model = model
        self.layers = layers
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.validation_fraction = validation_fraction
        self.seed = seed
        self.spec = spec
        self.runs_dir = runs_dir

    def _spec(self, columns: list[str]) -> dict[str, Any]:
        spec = {key: dict(value) if isinstance(value, dict) else value for key, value in (self.spec or {}).items()}
        model = {"type": self.model, **spec.get("model", {})}
        if self.layers is not None and self.model == "mlp" and "layers" not in model:
            model["layers"] = list(self.layers)
        train = {"epochs": self.epochs, "batch_size": self.batch_size, "report": False, "doctor": False,
                 **spec.get("train", {})}
        train.setdefault("optimizer", {"name": "adam", "lr": self.lr})
        data = {"target": "target", "features": columns, **spec.get("data", {}),
                "split": {"val": self.validation_fraction, "test": 0.0, "stratify": self._classes}}
        return {**spec, "name": spec.get("name", type(self).__name__.lower()), "task": self._task, "seed": self.seed,
                "model": model, "train": train, "data": data}

    def fit(self, X, y=None):
        """Train on the rows ``X`` (arrays or a DataFrame) and targets ``y``; returns self.

        Raises:
            ValueError: rows or targets that cannot be read (``DataError``, naming the column
                and row), or too few rows to hold some out for validation.
        """
        import pandas as pd

        from .api import train

        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y is None")
        frame, target = self._frame(X, y)
        frame["target"] = pd.Series(target, index=frame.index)
        self._check_targets(frame["target"])
        self._drop_folder()
        folder = Path(self.runs_dir) if self.runs_dir is not None else Path(tempfile.mkdtemp(prefix="layerforge-"))
        if self.runs_dir is None:
            self._cleanup = weakref.finalize(self, shutil.rmtree, folder, True)
        self.run_ = train(self._spec(self._columns), data=frame, runs_dir=folder)
        self.n_iter_ = int(self.run_.metrics.get("epochs", self.epochs))
        return self

    def _frame(self, X, y=None):
        """The rows as a DataFrame (a DataFrame's own columns; arrays' named x0, x1, ...), checked
        as scikit-learn checks them: its shape, the features of the fit, finite numbers (a NaN is
        read as a missing value), no sparse matrices; and the targets when fitting."""
        import pandas as pd
        from sklearn.utils.validation import column_or_1d, validate_data

        fitting = y is not None
        if hasattr(X, "columns") and hasattr(X, "iloc"):  # a DataFrame keeps its column types
            validate_data(self, X, skip_check_array=True, reset=fitting)
            frame = X.copy()
            frame.columns = [str(c) for c in frame.columns]
            if fitting:
                y = column_or_1d(y, warn=True)
                if len(y) != len(frame):
                    raise ValueError(f"y: expected one target per row of X ({len(frame)}), got {len(y)}")
                if len(frame) < 2:
                    raise ValueError(f"X: 1 sample; training needs at least 2 (n_samples={len(frame)})")
        else:
            options = {"accept_sparse": False, "dtype": None, "ensure_all_finite": "allow-nan", "reset": fitting}
            if fitting:
                X, y = validate_data(self, X, y, ensure_min_samples=2, y_numeric=not self._classes,
                                     **options)
            else:
                X = validate_data(self, X, **options)
            if X.dtype.kind == "c":
                raise ValueError("Complex data not supported")
            # the fit's names (a DataFrame's, when it was fitted on one)
            names = self._columns if not fitting else [f"x{i}" for i in range(X.shape[1])]
            frame = pd.DataFrame(X, columns=names)
        if fitting:
            self._columns = [str(c) for c in frame.columns]
        return frame, y

    def _check_targets(self, target) -> None:
        pass

    def _check_fitted(self) -> None:
        if not hasattr(self, "run_"):
            from sklearn.exceptions import NotFittedError

            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit(X, y) first")

    def _drop_folder(self) -> None:
        cleanup = getattr(self, "_cleanup", None)
        if cleanup is not None:
            cleanup()

    def predict(self, X) -> np.ndarray:
        """The prediction for each row of ``X``."""
        self._check_fitted()
        return np.asarray(self.run_.predict(self._frame(X)[0]))

    def save(self, path: str | Path) -> Path:
        """Copy the fitted run's directory to ``path`` (which must not exist); load it with
        ``lf.load_run(path)``."""
        self._check_fitted()
        path = Path(path)
        if path.exists():
            raise DataError(f"{path} exists; save to a new path")
        shutil.copytree(self.run_.path, path)
        return path

    def __getstate__(self):
        state = dict(self.__dict__)
        if "run_" in state:
            raise TypeError(f"a fitted {type(self).__name__} is kept as a run directory, not pickled: save it with "
                            ".save(path) and load it with lf.load_run(path)")
        state.pop("_cleanup", None)
        return state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True  # a missing value is filled and marked, as in any table
        tags.non_deterministic = False
        return tags


class Classifier(ClassifierMixin, _Network):
    """A network that classifies rows, as a scikit-learn estimator.

    Args:
        model: the model family (``mlp``, ``ft_transformer``).
        layers: an MLP's hidden layers.
        epochs, batch_size, lr: training.
        validation_fraction: the share of the rows held out to pick the best epoch.
        seed: seeds the split and the weights.
        spec: any further spec sections (``{"train": {"early_stopping": {...}}}``); keys set
            here win over the arguments above.
        runs_dir: where runs are written (default: a temporary folder per fit).

    Attributes:
        classes_: the classes, in the order of ``predict_proba``'s columns.
        run_: the trained ``Run``.
    """

    def fit(self, X, y=None):
        super().fit(X, y)
        self.classes_ = np.asarray(self.run_.manifest.classes)
        kind = np.asarray(y).dtype.kind
        if kind in "iufb":  # the classes as numbers, as y held them
            self.classes_ = self.classes_.astype(np.asarray(y).dtype)
        return self

    def _check_targets(self, target) -> None:
        if target.nunique() < 2:
            raise ValueError(f"y holds {target.nunique()} class; a classifier needs at least 2")
        if target.dtype.kind == "f" and not np.all(np.mod(target.dropna(), 1) == 0):
            raise ValueError("Unknown label type: continuous targets; use lf.Regressor for real-valued targets")

    def predict(self, X) -> np.ndarray:
        """The class of each row of ``X``."""
        probabilities = self.predict_proba(X)
        return self.classes_[probabilities.argmax(axis=1)]

    def predict_proba(self, X) -> np.ndarray:
        """Each class's probability (rows, classes), columns in the order of ``classes_``."""
        self._check_fitted()
        return np.asarray(self.run_.predict_proba(self._frame(X)[0]))


class Regressor(RegressorMixin, _Network):
    """A network that predicts a real value per row, as a scikit-learn estimator; the arguments
    are ``Classifier``'s."""

    _task = "regression"
    _classes = False

    def predict(self, X) -> np.ndarray:
        return np.asarray(super().predict(X), dtype=np.float64).ravel()


__all__ = ["Classifier", "Regressor"]
