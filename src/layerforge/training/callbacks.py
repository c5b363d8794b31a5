"""Callbacks: a handful of hooks around the loop, plus the built-in ones."""

from __future__ import annotations

import math
import time

import torch

from ..errors import SpecError
from ..files import append_jsonl, atomic_write, jsonl
from ..progress import Meter


class Callback:
    """Hooks a training recipe calls. Override the ones you need; each receives the run's
    ``Scaffold`` (named ``trainer``): ``model_``, ``epoch``, ``epochs``, ``history_``,
    ``steps_per_epoch_``, ``task``, ``loss_fn_``, ``device`` and ``stop_training``.

    ``trainer.stop_training = True`` in any hook ends training after the current epoch.
    ``on_batch_end`` is only called when a callback overrides it, so unused it costs nothing.
    """

    def on_fit_start(self, trainer) -> None: ...

    def on_epoch_start(self, trainer, epoch: int) -> None: ...

    def on_batch_end(self, trainer, step: int, loss: torch.Tensor) -> None: ...

    def on_epoch_end(self, trainer, record: dict) -> None: ...

    def on_fit_end(self, trainer) -> None: ...


class EarlyStopping:
    """Track the best value of ``monitor``; say when ``patience`` epochs passed without gain.

    Keeps a copy of the best weights when ``restore_best`` is set. Its state is checkpointed.
    """

    def __init__(self, monitor: str, patience: int, min_delta: float, restore_best: bool, higher_is_better: bool):
        self.monitor, self.patience, self.min_delta = monitor, patience, min_delta
        self.restore_best, self.higher_is_better = restore_best, higher_is_better
        self.best: float | None = None
        self.best_epoch = 0
        self.wait = 0
        self.best_weights: dict[str, torch.Tensor] | None = None

    def update(self, record: dict, model: torch.nn.Module) -> bool:
        """Record an epoch; True when training should stop: ``patience`` epochs have passed since
        the best one (an epoch without ``monitor``, not validated, decides nothing)."""
        if self.monitor not in record:
            return False
        value = record[self.monitor]
        if math.isnan(value):
            improved = False
        elif self.best is None:
            improved = True
        elif self.higher_is_better:
            improved = value > self.best + self.min_delta
        else:
            improved = value < self.best - self.min_delta
        if improved:
            self.best, self.best_epoch, self.wait = value, record["epoch"], 0
            if self.restore_best:
                self.best_weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
            return False
        self.wait = record["epoch"] - self.best_epoch
        return self.wait >= self.patience

    def state_dict(self) -> dict:
        return {"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait}

    def load_state_dict(self, state: dict, best_weights: dict[str, torch.Tensor] | None) -> None:
        self.best, self.best_epoch, self.wait = state["best"], state["best_epoch"], state["wait"]
        self.best_weights = best_weights or None


class HistoryWriter(Callback):
    """Keeps a ``history.jsonl`` file equal to the run's history, one JSON line per epoch. Lines
    wait up to ``every_seconds`` to be written together (the first epoch's at once, the rest by
    the end of training), so epochs of a few milliseconds do not each pay a file write; a resumed
    run rewrites the file from its checkpoint."""

    def __init__(self, path, every_seconds: float = 1.0):
        self.path, self.every_seconds = path, every_seconds
        self._waiting: list[dict] = []
        self._written_at = float("-inf")

    def on_fit_start(self, trainer) -> None:
        atomic_write(self.path, jsonl(trainer.history_))
        self._waiting = []

    def on_epoch_end(self, trainer, record: dict) -> None:
        self._waiting.append(record)
        if time.perf_counter() - self._written_at >= self.every_seconds:
            self._write()

    def on_fit_end(self, trainer) -> None:
        self._write()

    def _write(self) -> None:
        append_jsonl(self.path, self._waiting)
        self._waiting, self._written_at = [], time.perf_counter()


class EpochProgress(Callback):
    """Progress over epochs (``layerforge.progress``): a bar on a terminal, a line every few seconds
    in a log, one updating line in a notebook; with the losses, the monitored metric, the time
    elapsed and the time left."""

    def __init__(self, out):
        self.out = out
        self._meter = None

    def on_fit_start(self, trainer) -> None:
        self._meter = Meter("epoch", trainer.epochs, self.out, done=trainer.epoch)
        early = trainer.early_stopping_
        self._keys = list(dict.fromkeys(["train_loss", "val_loss",
                                          early.monitor if early is not None else f"val_{trainer.task.headline}"]))
        self._latest = {}

    def on_epoch_end(self, trainer, record: dict) -> None:
        self._latest.update({key: record[key] for key in self._keys if key in record})  # validated every k epochs
        self._meter.update(record["epoch"], self._latest)

    def on_fit_end(self, trainer) -> None:
        if self._meter is not None:
            self._meter.close()


class TensorBoardLogger(Callback):
    """Writes every number of each epoch's record (losses, metrics, learning rate) as a
    TensorBoard scalar under ``log_dir``, and, when training ends, the spec's values with the
    last epoch's numbers for TensorBoard's HParams view. Needs the ``tensorboard`` package."""

    def __init__(self, log_dir, hparams: dict | None = None):
        self.log_dir = log_dir
        self.hparams = hparams or {}
        self.writer = None
        self._last: dict[str, float] = {}

    def on_fit_start(self, trainer) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise SpecError("train.log: tensorboard needs the tensorboard package; install it with "
                            "pip install 'layerforge[tensorboard]'") from None
        self.writer = SummaryWriter(log_dir=str(self.log_dir))

    def on_epoch_end(self, trainer, record: dict) -> None:
        for key, value in record.items():
            if key != "epoch" and isinstance(value, (int, float)) and not isinstance(value, bool):
                group = "train" if key.startswith("train_") else "val" if key.startswith("val_") else "run"
                self.writer.add_scalar(f"{group}/{key.split('_', 1)[1] if group != 'run' else key}", value,
                                       record["epoch"])
                self._last[key] = float(value)
        self.writer.flush()

    def on_fit_end(self, trainer) -> None:
        if self.writer is None:
            return
        if self.hparams and self._last:
            values = {key: ("None" if value is None else value) for key, value in self.hparams.items()}
            self.writer.add_hparams(values, {f"hparam/{key}": value for key, value in self._last.items()},
                                    run_name=".")
        self.writer.close()
