"""``Trainer``: train your own ``nn.Module`` with the options of a spec's ``train`` section."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import ValidationError

from .. import tasks
from ..errors import SpecError
from ..spec.load import format_errors
from ..spec.schema import TrainSpec
from . import get
from .scaffold import Scaffold


def _targets(train_data) -> np.ndarray:
    y = train_data[1]
    return np.asarray(y.cpu() if torch.is_tensor(y) else y)


class Trainer:
    """Train any ``nn.Module`` on in-memory data with the options of a spec's ``train`` section.

    Arguments are the ``train`` keys of a spec (``epochs``, ``batch_size``, ``loss``,
    ``optimizer``, ``schedule``, ``clip_grad_norm``, ``clip_grad_value``, ``l1``, ``l2``,
    ``early_stopping``, ``device``, ``checkpoint_every``, ``validate_every``, ...), validated the same way, plus:

    Args:
        task: a task name ('classification': integer classes; 'regression': numbers) or a task
            object (see ``layerforge.tasks``); it picks the training recipe.
        seed: seeds dropout and batch order; the same seed gives the same result on CPU.
        callbacks: ``Callback`` objects.
        checkpoint_dir: where to write checkpoints (None: no checkpoints).
        augment: a callable applied to the first input of every training batch, e.g.
            ``layerforge.data.augment.Augment(shift=2, noise=0.05)``.

    After ``fit``: ``model_``, ``history_`` (one dict per epoch), ``best_epoch_``,
    ``stopped_early_``, ``rollbacks_`` and ``scaffold_`` (the run's state).

    Example:
        >>> trainer = Trainer(task="classification", epochs=5, optimizer={"name": "adam", "lr": 1e-2})
        >>> trainer.fit(module, (x_train, y_train), (x_val, y_val))  # doctest: +SKIP
    """

    def __init__(self, *, task: Any = "classification", seed: int = 0, callbacks=(), checkpoint_dir=None,
                 augment=None, **train):
        try:
            self.spec = TrainSpec.model_validate(train)
        except ValidationError as error:
            raise SpecError([f"train.{line}" for line in format_errors(error)]) from None
        self.task, self.seed, self.callbacks = task, seed, list(callbacks)
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else None
        self.augment = augment

    @classmethod
    def from_spec(cls, train_spec, **kwargs) -> Trainer:
        """A Trainer configured by a validated ``TrainSpec``."""
        return cls(**train_spec.model_dump(exclude_unset=False, exclude_none=True), **kwargs)

    def fit(self, model: torch.nn.Module, train_data, val_data=None, *, resume: bool = False) -> Trainer:
        """Train ``model`` on ``train_data = (x, y)``; validate on ``val_data`` each epoch.

        Args:
            resume: continue from the checkpoint in ``checkpoint_dir``.

        Returns:
            self, with ``model_`` and ``history_`` set.

        Raises:
            TrainingError: the loss became non-finite (the last good checkpoint is kept).
            CheckpointError: ``resume`` and the checkpoint is missing or corrupt.
        """
        task = self.task
        if isinstance(task, str):
            task = tasks.get(task).from_targets(_targets(train_data))
        scaffold = Scaffold(self.spec, task, seed=self.seed, callbacks=self.callbacks,
                            checkpoint_dir=self.checkpoint_dir, augment=self.augment)
        self.scaffold_ = scaffold
        get(task.recipe).fit(scaffold, model, train_data, val_data, resume=resume)
        self.model_, self.history_ = scaffold.model_, scaffold.history_
        self.best_epoch_, self.stopped_early_, self.rollbacks_ = (scaffold.best_epoch_, scaffold.stopped_early_,
                                                                  scaffold.rollbacks_)
        return self
