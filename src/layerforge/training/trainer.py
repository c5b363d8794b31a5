"""The Trainer: assembles data, optimizer, schedule and callbacks around ``train_one_epoch``."""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import CheckpointError, TrainingError
from . import losses
from .callbacks import Callback, EarlyStopping
from .checkpoint import join_optimizer_state, load_checkpoint, save_checkpoint, split_optimizer_state
from .loop import evaluate, train_one_epoch
from .optim import Schedule, build_optimizer


def resolve_device(device: str) -> torch.device:
    """'auto' picks CUDA when available; asking for 'cuda' without it is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise TrainingError("train.device is 'cuda' but no CUDA device is available; use auto or cpu")
    return torch.device(device)


def as_tensors(data, task, device) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
    """``(x, y)`` or ``((x, lengths), y)`` as tensors on ``device``: float inputs become the
    default float type, integer inputs (token ids, lengths) int64; ``y`` as the task wants it."""
    inputs, y = data
    inputs = inputs if isinstance(inputs, (tuple, list)) else (inputs,)
    tensors = []
    for part in inputs:
        part = part if torch.is_tensor(part) else torch.as_tensor(np.asarray(part))
        floating = part.is_floating_point() or part.dtype == torch.bool
        tensors.append(part.to(device, torch.get_default_dtype() if floating else torch.long))
    y = task.target_tensor(y.cpu().numpy() if torch.is_tensor(y) else np.asarray(y))
    return tuple(tensors), y.to(device)


def _penalty(l1: float, l2: float):
    """L1/L2 on weight matrices (not biases or norm scales), or None when both are 0."""
    if not l1 and not l2:
        return None

    def penalty(model: torch.nn.Module) -> torch.Tensor:
        weights = [p for p in model.parameters() if p.ndim > 1]
        total = 0.0
        if l1:
            total = total + l1 * sum(w.abs().sum() for w in weights)
        if l2:
            total = total + l2 * sum(w.pow(2).sum() for w in weights)
        return total

    return penalty


# on_divergence: rollback. Each rollback divides the learning rate by this; after MAX_ROLLBACKS
# the run stops as with on_divergence: stop. An epoch whose mean loss exceeds SPIKE_FACTOR times
# the best epoch's so far counts as diverged too.
ROLLBACK_FACTOR = 10.0
MAX_ROLLBACKS = 5
SPIKE_FACTOR = 10.0


def _overrides(callback: Callback, hook: str) -> bool:
    return getattr(type(callback), hook, None) is not getattr(Callback, hook)


class Trainer:
    """Train any ``nn.Module`` on in-memory data with the options of a spec's ``train`` section.

    Arguments are the ``train`` keys of a spec (``epochs``, ``batch_size``, ``loss``,
    ``optimizer``, ``schedule``, ``clip_grad_norm``, ``clip_grad_value``, ``l1``, ``l2``,
    ``early_stopping``, ``device``, ``checkpoint_every``), validated the same way, plus:

    Args:
        task: 'classification' or 'regression', or a task object (see ``layerforge.tasks``).
        seed: seeds dropout and batch order; the same seed gives the same result on CPU.
        callbacks: ``Callback`` objects.
        checkpoint_dir: where to write checkpoints (None: no checkpoints).
        augment: a callable applied to the first input of every training batch, e.g.
            ``layerforge.data.augment.Augment(shift=2, noise=0.05)``.

    After ``fit``: ``model_``, ``history_`` (one dict per epoch), ``best_epoch_`` and
    ``stopped_early_``.

    Example:
        >>> trainer = Trainer(task="classification", epochs=5, optimizer={"name": "adam", "lr": 1e-2})
        >>> trainer.fit(module, (x_train, y_train), (x_val, y_val))  # doctest: +SKIP
    """

    def __init__(self, *, task: Any = "classification", seed: int = 0, callbacks=(), checkpoint_dir=None,
                 augment=None, **train):
        from pydantic import ValidationError

        from ..spec.load import SpecError, format_errors
        from ..spec.schema import TrainSpec

        try:
            self.spec = TrainSpec.model_validate(train)
        except ValidationError as error:
            raise SpecError([f"train.{line}" for line in format_errors(error)]) from None
        self.task = task
        self.seed = seed
        self.callbacks = list(callbacks)
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else None
        self.augment = augment
        self.epochs = self.spec.epochs
        self.epoch = 0
        self.stop_training = False

    @classmethod
    def from_spec(cls, train_spec, **kwargs) -> Trainer:
        """A Trainer configured by a validated ``TrainSpec``."""
        return cls(**train_spec.model_dump(exclude_unset=False, exclude_none=True), **kwargs)

    # -- fitting ------------------------------------------------------------------------------

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
        spec = self.spec
        self.device = resolve_device(spec.device)
        task = self._task_object(train_data)
        self.task_ = task
        torch.manual_seed(self.seed)
        generator = torch.Generator().manual_seed(self.seed)
        model = model.to(self.device)
        x_train, y_train = as_tensors(train_data, task, self.device)  # x_train: a tuple of input tensors
        validation = as_tensors(val_data, task, self.device) if val_data is not None else None

        from ..data.batches import InMemoryBatches

        has_batch_norm = any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules())
        batch_size = len(y_train) if spec.batch_size == "full" else spec.batch_size
        batches = InMemoryBatches(
            x_train, y_train, batch_size, generator=generator, min_batch=2 if has_batch_norm else 1
        )
        loss_fn = self.loss_fn_ = losses.for_task(spec.loss, task)
        if hasattr(task, "build_optimizer"):  # e.g. a GAN's two optimizers
            optimizer = task.build_optimizer(model, spec, self.device.type)
        else:
            optimizer = build_optimizer(spec.optimizer.name, spec.optimizer.params(), model.parameters(),
                                        device=self.device.type)
        schedule = Schedule(spec.schedule.name, spec.optimizer.lr, spec.epochs, len(batches),
                            warmup_epochs=spec.schedule.warmup_epochs, **spec.schedule.params())
        early = None
        if spec.early_stopping is not None:
            from ..tasks import higher_is_better

            es = spec.early_stopping
            early = EarlyStopping(es.monitor, es.patience, es.min_delta, es.restore_best,
                                  higher_is_better(es.monitor))
            if es.monitor.startswith("val_") and validation is None:
                raise TrainingError(f"train.early_stopping.monitor is '{es.monitor}' but there is no validation data")

        self.model_, self.optimizer_, self.schedule_, self.early_stopping_ = model, optimizer, schedule, early
        self.steps_per_epoch_ = len(batches)
        self.rollbacks_: list[dict] = []
        self.history_: list[dict] = []
        self.epoch, self.stop_training, self.stopped_early_ = 0, False, False
        self._generator = generator
        if resume:
            self._restore()

        steady_lr = spec.schedule.name == "none" and schedule.warmup_steps == 0  # the optimizer's lr stays
        penalty = _penalty(spec.l1, spec.l2)
        # tasks with their own step: a GAN alternates two updates; an autoencoder's loss reads its input
        run_epoch = getattr(task, "train_epoch", train_one_epoch)
        objective = task.objective(loss_fn) if hasattr(task, "objective") else None
        loss_names = getattr(task, "loss_names", ("loss",))
        batch_hooks = [c for c in self.callbacks if _overrides(c, "on_batch_end")]
        on_batch_end = None
        if batch_hooks:
            def on_batch_end(step, loss):
                for callback in batch_hooks:
                    callback.on_batch_end(self, step, loss)

        rollback = spec.on_divergence == "rollback"
        good = self._snapshot() if rollback else None
        for callback in self.callbacks:
            callback.on_fit_start(self)
        try:
            while self.epoch < spec.epochs and not self.stop_training:
                epoch = self.epoch
                for callback in self.callbacks:
                    callback.on_epoch_start(self, epoch)
                started = time.perf_counter()
                fixed_lr = steady_lr and schedule.scale == 1.0  # a rollback lowers the rate through the schedule
                step_losses, sizes = run_epoch(
                    model, batches, loss_fn, optimizer,
                    lr_at=None if fixed_lr else (lambda step, e=epoch: schedule.lr(e, step)),
                    clip_grad_norm=spec.clip_grad_norm, clip_grad_value=spec.clip_grad_value,
                    penalty=penalty, augment=self.augment, on_batch_end=on_batch_end, objective=objective,
                )
                problem = self._divergence(step_losses, sizes, spike=rollback)
                if problem is not None:
                    if not rollback or len(self.rollbacks_) >= MAX_ROLLBACKS:
                        self._raise_diverged(problem, epoch, rollback)
                    self._rollback(good, epoch, problem)
                    continue
                weights = torch.tensor(sizes, dtype=step_losses.dtype, device=step_losses.device)
                means = (step_losses.reshape(len(sizes), -1) * weights[:, None]).sum(0) / weights.sum()
                record = {"epoch": epoch + 1, "lr": optimizer.param_groups[0]["lr"]}
                record.update({f"train_{name}": float(v) for name, v in zip(loss_names, means)})
                if validation is not None:
                    scores = evaluate(model, *validation, loss_fn, task)
                    record.update({f"val_{k}": v for k, v in scores.items()})
                record["seconds"] = round(time.perf_counter() - started, 4)
                schedule.epoch_end(record)
                self.history_.append(record)
                self.epoch = epoch + 1
                if early is not None and early.update(record, model):
                    self.stop_training = self.stopped_early_ = True
                last = self.epoch == spec.epochs or self.stop_training
                if self.checkpoint_dir and (self.epoch % spec.checkpoint_every == 0 or last):
                    self.save_checkpoint()
                if rollback:
                    good = self._snapshot()
                for callback in self.callbacks:
                    callback.on_epoch_end(self, record)
        finally:
            for callback in self.callbacks:
                callback.on_fit_end(self)

        self.best_epoch_ = early.best_epoch if early and early.best is not None else self.epoch
        if early is not None and early.restore_best and early.best_weights is not None:
            model.load_state_dict(early.best_weights)
        return self

    def _task_object(self, train_data):
        if not isinstance(self.task, str):
            return self.task
        from .. import tasks

        if self.task == "classification":
            y = np.asarray(train_data[1].cpu() if torch.is_tensor(train_data[1]) else train_data[1])
            return tasks.get("classification", classes=list(range(int(y.max()) + 1)))
        if self.task == "regression":
            y = np.asarray(train_data[1].cpu() if torch.is_tensor(train_data[1]) else train_data[1])
            width = 1 if y.ndim == 1 else y.shape[1]
            return tasks.get("regression", mean=[0.0] * width, std=[1.0] * width)
        return tasks.get(self.task)

    def _divergence(self, step_losses: torch.Tensor, sizes: list[int], *, spike: bool) -> tuple[int, str] | None:
        """(step, what happened) when the epoch's loss went non-finite or, with ``spike``, jumped
        far above the best epoch's; None for a healthy epoch."""
        finite = torch.isfinite(step_losses)
        if not bool(finite.all()):
            step = int((~finite).nonzero()[0, 0])
            value = step_losses[step]
            shown = float(value) if value.numel() == 1 else ", ".join(
                f"{name} {float(v)}" for name, v in zip(getattr(self.task_, "loss_names", ()), value))
            return step, f"the loss became non-finite ({shown})"
        if spike and step_losses.ndim == 1 and self.history_:
            mean = float(step_losses.mean())
            best = min(r["train_loss"] for r in self.history_)
            if best > 0 and mean > SPIKE_FACTOR * best:
                jump = f"{mean:.4g}, {mean / best:.0f}x its best ({best:.4g})"
                return len(sizes) - 1, f"the training loss jumped to {jump}"
        return None

    def _raise_diverged(self, problem: tuple[int, str], epoch: int, rollback: bool) -> None:
        step, what = problem
        kept = (
            f"the last good checkpoint (epoch {self.epoch}) is kept in {self.checkpoint_dir}"
            if self.checkpoint_dir and self.epoch > 0
            else "no checkpoint was written before it"
        )
        tried = f" after {len(self.rollbacks_)} rollbacks" if rollback else ""
        raise TrainingError(
            f"{what} at epoch {epoch + 1}, step {step + 1}{tried}; training stopped and {kept}. Try a lower "
            "train.optimizer.lr, train.clip_grad_norm, train.on_divergence: rollback, or check the data for "
            "extreme values"
        )

    def _snapshot(self) -> dict:
        """What a rollback returns to: weights, optimizer state and the epoch reached."""
        parts = getattr(self.optimizer_, "parts", {"optimizer": self.optimizer_})
        return {
            "model": {k: v.detach().clone() for k, v in self.model_.state_dict().items()},
            "optimizers": {name: copy.deepcopy(o.state_dict()) for name, o in parts.items()},
            "epoch": self.epoch,
        }

    def _rollback(self, good: dict, epoch: int, problem: tuple[int, str]) -> None:
        """Return to the last good epoch's weights with a learning rate ``ROLLBACK_FACTOR`` lower."""
        self.model_.load_state_dict(good["model"])
        for name, optimizer in getattr(self.optimizer_, "parts", {"optimizer": self.optimizer_}).items():
            optimizer.load_state_dict(good["optimizers"][name])
        before = self.schedule_.base_lr * self.schedule_.scale
        self.schedule_.scale /= ROLLBACK_FACTOR
        self.rollbacks_.append({
            "epoch": epoch + 1, "step": problem[0] + 1, "reason": problem[1], "restored_epoch": good["epoch"],
            "lr_before": before, "lr_after": before / ROLLBACK_FACTOR,
        })

    # -- checkpoints ----------------------------------------------------------------------------

    def save_checkpoint(self) -> None:
        """Write everything needed to continue exactly: weights, optimizer, schedule, RNGs."""
        tensors = {f"model.{k}": v for k, v in self.model_.state_dict().items()}
        optimizer_state = {}
        for part, optimizer in getattr(self.optimizer_, "parts", {"optimizer": self.optimizer_}).items():
            optimizer_tensors, optimizer_state[part] = split_optimizer_state(optimizer.state_dict(), part)
            tensors.update(optimizer_tensors)
        tensors["rng.torch"] = torch.get_rng_state()
        tensors["rng.batches"] = self._generator.get_state()
        if torch.cuda.is_available():
            for i, state in enumerate(torch.cuda.get_rng_state_all()):
                tensors[f"rng.cuda.{i}"] = state
        early = self.early_stopping_
        if early is not None and early.best_weights is not None:
            tensors.update({f"best.{k}": v for k, v in early.best_weights.items()})
        state = {
            "epoch": self.epoch,
            **optimizer_state,
            "schedule": self.schedule_.state_dict(),
            "early_stopping": early.state_dict() if early else None,
            "stopped_early": self.stopped_early_,
            "rollbacks": self.rollbacks_,
            "history": self.history_,
        }
        save_checkpoint(self.checkpoint_dir, tensors, state)

    def _restore(self) -> None:
        if self.checkpoint_dir is None:
            raise CheckpointError("resume needs a checkpoint_dir")
        tensors, state = load_checkpoint(self.checkpoint_dir)
        model_state = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
        try:
            self.model_.load_state_dict(model_state)
            for part, optimizer in getattr(self.optimizer_, "parts", {"optimizer": self.optimizer_}).items():
                optimizer.load_state_dict(join_optimizer_state(tensors, state[part], part))
        except (RuntimeError, ValueError, KeyError) as error:
            raise CheckpointError(f"the checkpoint in {self.checkpoint_dir} does not fit this model: {error}") from None
        self.schedule_.load_state_dict(state["schedule"])
        if self.early_stopping_ is not None and state["early_stopping"] is not None:
            best = {k[5:]: v.to(self.device) for k, v in tensors.items() if k.startswith("best.")}
            self.early_stopping_.load_state_dict(state["early_stopping"], best)
        torch.set_rng_state(tensors["rng.torch"])
        self._generator.set_state(tensors["rng.batches"])
        if torch.cuda.is_available():
            states = [tensors[k] for k in sorted(tensors) if k.startswith("rng.cuda.")]
            if states:
                torch.cuda.set_rng_state_all(states)
        self.history_ = list(state["history"])
        self.epoch = state["epoch"]
        self.stopped_early_ = state.get("stopped_early", False)
        self.rollbacks_ = list(state.get("rollbacks", []))
        self.stop_training = self.stopped_early_
