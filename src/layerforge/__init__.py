"""layerforge: a short spec in; a trained, evaluated network out.

Heavy libraries (torch, pandas, scikit-learn) are imported only when used, so importing
layerforge and validating specs stays fast.

Example:
    >>> import layerforge as lf
    >>> run = lf.train("examples/iris.yaml")        # doctest: +SKIP
    >>> run.metrics["test"]["accuracy"]             # doctest: +SKIP
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

from .errors import CheckpointError, DataError, LayerforgeError, SpecError, TrainingError

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "Spec",
    "load_spec",
    "train",
    "load_run",
    "Run",
    "Trainer",
    "Callback",
    "register_loss",
    "register_model",
    "register_task",
    "Task",
    "Predictor",
    "serve",
    "tune",
    "train_seeds",
    "cross_validate",
    "ensemble",
    "attack",
    "explain",
    "audit_fairness",
    "mitigate_fairness",
    "Doctor",
    "diagnose",
    "LayerforgeError",
    "SpecError",
    "DataError",
    "CheckpointError",
    "TrainingError",
    "TrainingInterrupted",
    "Classifier",
    "Regressor",
]

# public name -> module that defines it (imported on first use)
_LAZY = {
    "Classifier": ".estimators",
    "Regressor": ".estimators",
    "Spec": ".spec.schema",
    "load_spec": ".spec.load",
    "train": ".api",
    "TrainingInterrupted": ".api",
    "load_run": ".run.directory",
    "Run": ".run.directory",
    "Predictor": ".run.predictor",
    "serve": ".serving",
    "tune": ".search",
    "train_seeds": ".evaluation.seeds",
    "cross_validate": ".evaluation.cv",
    "ensemble": ".evaluation.ensemble",
    "attack": ".robustness",
    "explain": ".explanations",
    "audit_fairness": ".fairness",
    "mitigate_fairness": ".fairness",
    "Trainer": ".recipes.trainer",
    "Callback": ".training.callbacks",
    "register_loss": ".training.losses",
    "register_model": ".models",
    "register_task": ".tasks",
    "Task": ".tasks",
    "Doctor": ".doctor.monitor",
    "diagnose": ".doctor.verdicts",
}

if TYPE_CHECKING:
    from .api import TrainingInterrupted, train
    from .doctor.monitor import Doctor
    from .doctor.verdicts import diagnose
    from .evaluation.cv import cross_validate
    from .evaluation.ensemble import ensemble
    from .evaluation.seeds import train_seeds
    from .explanations import explain
    from .fairness import audit_fairness, mitigate_fairness
    from .models import register_model
    from .recipes.trainer import Trainer
    from .robustness import attack
    from .run.directory import Run, load_run
    from .run.predictor import Predictor
    from .search import tune
    from .serving import serve
    from .spec.load import load_spec
    from .spec.schema import Spec
    from .tasks import Task, register_task
    from .training.callbacks import Callback
    from .training.losses import register_loss


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'layerforge' has no attribute '{name}'")
