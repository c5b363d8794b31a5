"""Tasks: what a run learns to do. The registry is built from the task classes; Python users add
one with ``register_task(TaskClass)``. See ``base.Task`` for what a task answers."""

from __future__ import annotations

from ..errors import SpecError, unknown_name
from .base import Finished, Task
from .classification import ClassificationTask
from .detection import DetectionTask
from .forecasting import ForecastTask
from .generation import GenerationTask
from .language_model import LanguageModelTask
from .multilabel import MultiLabelTask
from .multitarget import MultiTargetTask
from .recommendation import RecommendationTask
from .reconstruction import ReconstructionTask
from .regression import RegressionTask
from .segmentation import SegmentationTask
from .seq2seq import Seq2SeqTask
from .transcription import TranscriptionTask

TASKS: dict[str, type[Task]] = {task.name: task for task in (
    ClassificationTask, MultiLabelTask, MultiTargetTask, RegressionTask, ForecastTask, LanguageModelTask,
    ReconstructionTask, GenerationTask, Seq2SeqTask, TranscriptionTask, SegmentationTask, DetectionTask,
    RecommendationTask,
)}


def register_task(task: type[Task]) -> None:
    """Make a task class available to specs as ``task: <its name>``.

    Raises:
        ValueError: the name is a built-in task's, or ``task`` is not a ``Task`` subclass.
    """
    if not (isinstance(task, type) and issubclass(task, Task)):
        raise ValueError(f"{task!r} is not a subclass of layerforge.tasks.Task")
    if task.name in TASKS and TASKS[task.name].__module__.startswith(__name__ + "."):
        raise ValueError(f"'{task.name}' is a built-in task; register yours under another name")
    TASKS[task.name] = task


def get(name: str) -> type[Task]:
    """The task class ``name``.

    Raises:
        SpecError: no such task.
    """
    if name not in TASKS:
        raise SpecError(f"task: {unknown_name('task', name, TASKS)}")
    return TASKS[name]


def higher_is_better(monitor: str, task: str | type[Task] | Task | None = None) -> bool:
    """Whether a larger value of ``monitor`` ('val_accuracy', 'train_loss') is better: the one
    answer early stopping, learning-rate plateaus and search use. Without a task, any task's
    metric of that name decides."""
    if task is not None:
        return (get(task) if isinstance(task, str) else task).higher_is_better(monitor)
    return any(cls.higher_is_better(monitor) for cls in TASKS.values())


def monitor_names(task: str | None, has_val: bool) -> list[str]:
    """What early stopping or a plateau schedule may monitor (every task's, when unknown)."""
    if task is not None:
        return get(task).monitors(has_val)
    return list(dict.fromkeys(name for cls in TASKS.values() for name in cls.monitors(has_val)))


__all__ = ["TASKS", "Finished", "Task", "get", "higher_is_better", "monitor_names", "register_task"]
