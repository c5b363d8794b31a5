"""The scaffold every training recipe runs in: device placement, batches, callbacks, the
learning-rate schedule, early stopping, checkpoints of named stateful parts, and divergence
with rollback. A recipe (``supervised``, ``gan``) owns its loop and calls the scaffold at the
start of training, for each epoch and each step, and at the end of each epoch:

    with scaffold.fitting(model, {"optimizer": optimizer}, loss_fn, len(batches), has_val=...):
        for epoch in scaffold.epochs_left():
            ...one pass over the batches...
            scaffold.end_epoch(epoch, step_losses, sizes, validate)
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from ..data.batches import InMemoryBatches, as_tensors
from ..errors import CheckpointError, SpecError, TrainingError
from ..memory import keep_freed_memory
from ..models.protocol import channels_last_inputs, channels_last_pays
from ..training.callbacks import Callback, EarlyStopping
from ..training.checkpoint import (
    CheckpointState,
    join_optimizer_state,
    load_checkpoint,
    save_checkpoint,
    split_optimizer_state,
)
from ..training.optim import Schedule
from ..training.precision import Precision

# on_divergence: rollback. Each rollback divides the learning rate by this; after MAX_ROLLBACKS
# the run stops as with on_divergence: stop. An epoch whose mean loss exceeds SPIKE_FACTOR times
# the best epoch's so far counts as diverged too.
ROLLBACK_FACTOR = 10.0
MAX_ROLLBACKS = 5
CHECKPOINT_SECONDS = 10.0  # train.checkpoint_every: auto writes at most one checkpoint per this many seconds
SPIKE_FACTOR = 10.0


def _fitting_groups(saved: dict, optimizer: torch.optim.Optimizer, part: str) -> dict:
    """``saved`` (an optimizer's JSON part), checked against the optimizer this run builds: the
    same parameter groups with the same settings of the same types, so that a damaged or edited
    state is refused here rather than failing, or silently training otherwise, steps later."""
    fresh = optimizer.state_dict()["param_groups"]
    groups = saved["param_groups"]
    if len(groups) != len(fresh):
        raise CheckpointError(f"trainer_state.json: {part}: {len(groups)} parameter groups, the optimizer has "
                              f"{len(fresh)}")
    for number, (group, expected) in enumerate(zip(groups, fresh)):
        if set(group) != set(expected) or group["params"] != expected["params"]:
            raise CheckpointError(f"trainer_state.json: {part}.param_groups.{number}: not the settings of this "
                                  "optimizer")
        for key, value in expected.items():
            # only the learning rate moves during training (schedules, rollbacks); the rest is the spec's
            fits = _usable_rate(group[key]) if key == "lr" else _plain(group[key]) == _plain(value)
            if not fits:
                raise CheckpointError(f"trainer_state.json: {part}.param_groups.{number}.{key}: {group[key]!r} "
                                      f"where this run's optimizer has {value!r}")
    return saved


def _usable_rate(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0


def _plain(value):
    """A setting as JSON holds it (tuples as lists), to compare a saved one with a fresh one."""
    return [_plain(v) for v in value] if isinstance(value, (list, tuple)) else value


def resolve_device(device: str) -> torch.device:
    """'auto' picks CUDA when available; asking for 'cuda' without it is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise SpecError("train.device: 'cuda', but this machine has no CUDA device; use auto or cpu")
    return torch.device(device)


def _laid_out_like_parameters(optimizer: torch.optim.Optimizer) -> None:
    """Store each restored state tensor of ``optimizer`` as its parameter is stored. Checkpoints
    keep tensors contiguous, and a fused step reads state and parameter element by element in
    memory order: a channels-last weight beside contiguous moments would be updated wrongly."""
    for param, state in optimizer.state.items():
        for key, value in state.items():
            if isinstance(value, torch.Tensor) and value.shape == param.shape and value.stride() != param.stride():
                state[key] = torch.empty_like(param, dtype=value.dtype).copy_(value)


def _overrides(callback: Callback, hook: str) -> bool:
    return getattr(type(callback), hook, None) is not getattr(Callback, hook)


class Scaffold:
    """The state of one training run and the parts every recipe shares.

    Args:
        spec: the validated ``train`` section (``TrainSpec``).
        task: the task object (loss names, metric directions, target tensors).
        seed: seeds torch and the batch order; the same seed gives the same run on CPU.
        callbacks: ``Callback`` objects; each hook receives this scaffold.
        checkpoint_dir: where checkpoints go (None: no checkpoints).
        augment: applied to the first input of every training batch (``data.augment``).
        perturbation: how adversarial training may move the encoded rows (``train.adversarial``).
        row_weights: how often each training row is drawn, relative to the others
            (``train.fairness``); None draws each once per epoch.
        distributed: this process's place in data-parallel training (``Distributed``), or None;
            only the first process writes checkpoints.

    During and after training: ``model_``, ``optimizers_`` (name -> optimizer), ``loss_fn_``,
    ``epoch``, ``history_``, ``rollbacks_``, ``best_epoch_``, ``stopped_early_``.
    """

    def __init__(self, spec, task, *, seed: int = 0, callbacks=(), checkpoint_dir: str | Path | None = None,
                 augment: Callable | None = None, perturbation=None, row_weights=None, distributed=None):
        self.spec, self.task, self.seed = spec, task, seed
        self.callbacks = list(callbacks)
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else None
        self.augment = augment
        self.perturbation = perturbation  # how train.adversarial may move the rows (the data's Perturbation)
        self.row_weights = None if row_weights is None else torch.as_tensor(row_weights, dtype=torch.float64)
        self.epochs = spec.epochs
        self.epoch = 0
        self.stop_training = self.stopped_early_ = False
        self.history_: list[dict] = []
        self.rollbacks_: list[dict] = []
        self._checkpointed_at = float("-inf")  # a resumed run checkpoints its first epoch
        self._checkpointed_epoch = 0
        self._position = None  # where in its epoch a mid-epoch checkpoint resumed from was taken
        self.distributed = distributed
        self.device = distributed.device if distributed is not None else resolve_device(spec.device)
        self.precision = Precision.of(spec.precision, self.device)
        keep_freed_memory()  # every step frees and takes the same activations again
        if self.device.type == "cuda":
            torch.set_float32_matmul_precision("high")  # TF32 matmuls and convolutions
        torch.manual_seed(seed)
        self._generator = torch.Generator().manual_seed(seed)

    # -- data ----------------------------------------------------------------------------------

    def place(self, data) -> tuple[tuple[torch.Tensor, ...], torch.Tensor] | None:
        """``(inputs, y)`` as tensors on the training device (None stays None)."""
        return None if data is None else as_tensors(data, self.task, self.device)

    def batches(self, model: torch.nn.Module, train):
        """Shuffled batches of ``train.batch_size`` rows (all rows with 'full') of ``train``:
        ``(inputs, y)`` on the training device, or a streamed source's ``RowStream``; a last batch
        of one row is dropped when the model has batch norm."""
        has_batch_norm = any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules())
        min_batch = 2 if has_batch_norm else 1
        shard = None if self.distributed is None else (self.distributed.rank, self.distributed.world)
        if not isinstance(train, tuple):  # rows that stream from their file
            return train.batches(self.spec.batch_size, generator=self._generator, min_batch=min_batch, shard=shard,
                                 device=self.device)
        inputs, y = train
        size = len(y) if self.spec.batch_size == "full" else self.spec.batch_size
        return InMemoryBatches(inputs, y, size, generator=self._generator, min_batch=min_batch,
                               weights=self.row_weights, shard=shard)

    def parallel(self, model: torch.nn.Module) -> torch.nn.Module:
        """What updates run through: ``model``, in data-parallel training its wrapper that
        averages gradients over the processes, compiled with ``train.compile``."""
        trained = model if self.distributed is None else self.distributed.parallel(model)
        return torch.compile(trained) if self.spec.compile else trained

    def ready(self, model: torch.nn.Module, train, val) -> tuple[torch.nn.Module, Any, tuple | None]:
        """The model on the training device, batches of the training rows (``(inputs, y)``, or
        a streamed source's ``RowStream``), and the validation rows placed there too (None
        without them). 2-D convolutions get their maps stored channels last where that runs
        faster (``channels_last_pays``)."""
        model = model.to(self.device)
        train = self.place(train) if isinstance(train, tuple) else train  # rows in memory: placed once
        val = self.place(val)
        if channels_last_pays(model, self.device):  # and laid out once, not batch by batch
            model = model.to(memory_format=torch.channels_last)
            train = (channels_last_inputs(train[0]), train[1]) if isinstance(train, tuple) else train
            val = None if val is None else (channels_last_inputs(val[0]), val[1])
        return model, self.batches(model, train), val

    # -- the run -------------------------------------------------------------------------------

    @contextmanager
    def fitting(self, model: torch.nn.Module, optimizers: dict[str, Any], loss_fn, steps_per_epoch: int, *,
                has_val: bool, resume: bool = False) -> Iterator[Scaffold]:
        """Set up a run of ``model`` with its named ``optimizers`` (the first one's learning rate
        is the schedule's), continue from the checkpoint when ``resume``, call the callbacks'
        ``on_fit_start`` and, whatever happens, ``on_fit_end``. On a normal end the best
        epoch's weights come back when early stopping keeps them."""
        spec = self.spec
        first = next(iter(optimizers.values()))
        self.model_, self.optimizers_, self.loss_fn_ = model, optimizers, loss_fn
        self.steps_per_epoch_ = steps_per_epoch
        self.schedule_ = Schedule(spec.schedule.name, spec.optimizer.lr, spec.epochs, steps_per_epoch,
                                  warmup_epochs=spec.schedule.warmup_epochs, **spec.schedule.params(),
                                  higher_is_better=self.task.higher_is_better(spec.schedule.monitor or "val_loss"))
        self.early_stopping_ = None
        if spec.early_stopping is not None:
            es = spec.early_stopping
            if es.monitor.startswith("val_") and not has_val:
                raise TrainingError(f"train.early_stopping.monitor is '{es.monitor}' but there is no validation data")
            self.early_stopping_ = EarlyStopping(es.monitor, es.patience, es.min_delta, es.restore_best,
                                                 self.task.higher_is_better(es.monitor))
        self._first_optimizer = first
        if resume:
            self._restore()
        self._steady_lr = spec.schedule.name == "none" and self.schedule_.warmup_steps == 0
        self._validate_every = spec.validation_interval()
        self._rollback = spec.on_divergence == "rollback"
        self._good = self._snapshot() if self._rollback else None
        batch_hooks = [c for c in self.callbacks if _overrides(c, "on_batch_end")]
        self._batch_hooks = batch_hooks or None
        for callback in self.callbacks:
            callback.on_fit_start(self)
        try:
            yield self
        finally:
            for callback in self.callbacks:
                callback.on_fit_end(self)
        early = self.early_stopping_
        self.best_epoch_ = early.best_epoch if early and early.best is not None else self.epoch
        if early is not None and early.restore_best and early.best_weights is not None:
            model.load_state_dict(early.best_weights)

    def epochs_left(self) -> Iterator[int]:
        """The epochs still to train (an epoch rolled back is trained again)."""
        while self.epoch < self.spec.epochs and not self.stop_training:
            epoch = self.epoch
            for callback in self.callbacks:
                callback.on_epoch_start(self, epoch)
            self._started = time.perf_counter()
            yield epoch

    def lr_at(self, epoch: int) -> Callable[[int], float] | None:
        """The learning rate of each step of ``epoch``, or None while it stays as it is."""
        if self._steady_lr and self.schedule_.scale == 1.0:  # a rollback lowers the rate through the schedule
            return None
        schedule = self.schedule_
        return lambda step: schedule.lr(epoch, step)

    def batch_hook(self) -> Callable[[int, torch.Tensor], None] | None:
        """What a recipe calls after each update with (step, loss): the callbacks that watch
        steps, or None when none does (then the loop calls nothing)."""
        if not self._batch_hooks:
            return None

        def after_step(step: int, loss: torch.Tensor) -> None:
            for callback in self._batch_hooks:
                callback.on_batch_end(self, step, loss)

        return after_step

    def end_epoch(self, epoch: int, step_losses: torch.Tensor, sizes: list[int],
                  validate: Callable[[], dict[str, float]] | None) -> None:
        """Check the epoch's losses (rolling back or stopping on divergence), record the epoch,
        validate, step the schedule and early stopping, checkpoint and call the callbacks.

        Args:
            step_losses: each step's losses (steps,) or (steps, losses), on the device.
            sizes: the rows of each step.
            validate: the validation scores, or None without validation data.
        """
        weights = torch.tensor(sizes, dtype=step_losses.dtype, device=step_losses.device)
        sums = torch.cat([(step_losses.reshape(len(sizes), -1) * weights[:, None]).sum(0), weights.sum()[None]])
        means = (sums[:-1] / sums[-1]).tolist()  # the one wait of the epoch: a non-finite step shows here
        problem = self._divergence(step_losses, sizes, spike=self._rollback,
                                   mean_finite=all(map(math.isfinite, means)))
        if self.distributed is not None:  # every process stops, or rolls back, together
            troubled = self.distributed.total(torch.tensor([float(problem is not None)], device=step_losses.device))
            if problem is None and float(troubled) > 0:
                problem = (0, "the loss became non-finite in another process")
        if problem is not None:
            if not self._rollback or len(self.rollbacks_) >= MAX_ROLLBACKS:
                self._raise_diverged(problem, epoch, self._rollback)
            self._roll_back(epoch, problem)
            return
        if self.distributed is not None:  # the epoch's loss over every process's rows
            sums = self.distributed.total(sums)
            means = (sums[:-1] / sums[-1]).tolist()
        record = {"epoch": epoch + 1, "lr": self._first_optimizer.param_groups[0]["lr"]}
        record.update({f"train_{name}": v for name, v in zip(self.task.loss_names, means)})
        if validate is not None and self.validates(epoch):
            record.update({f"val_{k}": v for k, v in validate().items()})
        record["seconds"] = round(time.perf_counter() - self._started, 4)
        self.schedule_.epoch_end(record)
        self.history_.append(record)
        self.epoch = epoch + 1
        if self.early_stopping_ is not None and self.early_stopping_.update(record, self.model_):
            self.stop_training = self.stopped_early_ = True
        last = self.epoch == self.spec.epochs or self.stop_training
        writes = self.distributed is None or self.distributed.leader
        if self.checkpoint_dir and writes and self._checkpoint_due(last):
            self.save_checkpoint()
            self._checkpointed_at, self._checkpointed_epoch = time.perf_counter(), self.epoch
        if self._rollback:
            self._good = self._snapshot()
        for callback in self.callbacks:
            callback.on_epoch_end(self, record)

    def validates(self, epoch: int) -> bool:
        """Whether epoch ``epoch`` (0-based) ends with a validation: every
        ``train.validate_every`` epochs (``TrainSpec.validation_interval``) and the last."""
        return (epoch + 1) % self._validate_every == 0 or epoch + 1 == self.spec.epochs

    def _checkpoint_due(self, last: bool) -> bool:
        """Whether the epoch just ended is checkpointed (``train.checkpoint_every``)."""
        every = self.spec.checkpoint_every
        if every != "auto":
            return last or self.epoch % every == 0
        since = time.perf_counter() - self._checkpointed_at
        return last or self.epoch == 1 or since >= CHECKPOINT_SECONDS

    # -- divergence ------------------------------------------------------------------------------

    def _divergence(self, step_losses: torch.Tensor, sizes: list[int], *, spike: bool,
                    mean_finite: bool) -> tuple[int, str] | None:
        """(step, what happened) when the epoch's loss went non-finite or, with ``spike``, jumped
        far above the best epoch's; None for a healthy epoch. ``mean_finite``: the epoch's mean
        loss is finite (then no step's loss can be otherwise, and none is looked at)."""
        bad = [] if mean_finite else (~torch.isfinite(step_losses)).nonzero()  # (step[, loss]) of each
        if len(bad):
            step = int(bad[0, 0])
            value = step_losses[step]
            shown = float(value) if value.numel() == 1 else ", ".join(
                f"{name} {float(v)}" for name, v in zip(self.task.loss_names, value))
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
            f"the last good checkpoint (epoch {self._checkpointed_epoch}) is kept in {self.checkpoint_dir}"
            if self.checkpoint_dir and self._checkpointed_epoch > 0
            else "no checkpoint was written before it"
        )
        tried = f" after {len(self.rollbacks_)} rollbacks" if rollback else ""
        raise TrainingError(
            f"{what} at epoch {epoch + 1}, step {step + 1}{tried}; training stopped and {kept}. Try a lower "
            "train.optimizer.lr, train.clip_grad_norm, train.on_divergence: rollback, or check the data for "
            "extreme values"
        )

    def _snapshot(self) -> dict:
        """What a rollback returns to: weights, optimizer states and the epoch reached."""
        return {
            "model": {k: v.detach().clone() for k, v in self.model_.state_dict().items()},
            "optimizers": {name: copy.deepcopy(o.state_dict()) for name, o in self.optimizers_.items()},
            "epoch": self.epoch,
        }

    def _roll_back(self, epoch: int, problem: tuple[int, str]) -> None:
        """Return to the last good epoch's weights with a learning rate ``ROLLBACK_FACTOR`` lower."""
        good = self._good
        self.model_.load_state_dict(good["model"])
        for name, optimizer in self.optimizers_.items():
            optimizer.load_state_dict(good["optimizers"][name])
        before = self.schedule_.base_lr * self.schedule_.scale
        self.schedule_.scale /= ROLLBACK_FACTOR
        self.rollbacks_.append({
            "epoch": epoch + 1, "step": problem[0] + 1, "reason": problem[1], "restored_epoch": good["epoch"],
            "lr_before": before, "lr_after": before / ROLLBACK_FACTOR,
        })

    # -- checkpoints -------------------------------------------------------------------------------

    def mid_epoch(self, batches) -> Callable[[int, list, list[int]], None] | None:
        """What a recipe calls after each step of an epoch whose rows stream from their files
        (long epochs): a checkpoint mid-epoch, at most one per ``CHECKPOINT_SECONDS`` (with
        ``train.checkpoint_every: auto``), holding the steps done, their losses and rows, and the
        batch generator as the epoch began, so that a resumed run draws the same batches and
        skips the ones done. None where epochs are checkpointed only at their end."""
        writes = self.distributed is None or self.distributed.leader
        if not (self.checkpoint_dir and writes and self.spec.checkpoint_every == "auto"
                and batches.mid_epoch):
            return None

        def checkpoint(step: int, step_losses: list, sizes: list[int]) -> None:
            if time.perf_counter() - self._checkpointed_at < CHECKPOINT_SECONDS:
                return
            losses = [loss.tolist() for loss in step_losses]  # the only wait on the device, once in a while
            self.save_checkpoint(position={"step": step + 1, "losses": losses, "sizes": list(sizes)},
                                 batches_state=batches.epoch_state)
            self._checkpointed_at = time.perf_counter()

        return checkpoint

    def resume_position(self) -> tuple[int, list, list[int]] | None:
        """(steps done, their losses, their rows) of the epoch a mid-epoch checkpoint stopped
        in, once, right after resuming from it; None otherwise."""
        position, self._position = self._position, None
        if position is None:
            return None
        losses = [torch.tensor(loss, device=self.device) for loss in position["losses"]]
        return position["step"], losses, position["sizes"]

    def save_checkpoint(self, position: dict | None = None, batches_state: torch.Tensor | None = None) -> None:
        """Write everything needed to continue exactly: weights, optimizers, schedule, RNGs;
        mid-epoch, the ``position`` reached in it and the batch generator's state as the epoch
        began (``batches_state``)."""
        tensors = {f"model.{k}": v for k, v in self.model_.state_dict().items()}
        optimizer_state = {}
        for part, optimizer in self.optimizers_.items():
            optimizer_tensors, optimizer_state[part] = split_optimizer_state(optimizer.state_dict(), part)
            tensors.update(optimizer_tensors)
        tensors["rng.torch"] = torch.get_rng_state()
        tensors["rng.batches"] = self._generator.get_state() if batches_state is None else batches_state
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
            **({"position": position} if position else {}),
        }
        scaler = self._scaler()
        if scaler is not None:
            scaled = scaler.state_dict()
            state["loss_scale"] = {"scale": float(scaled["scale"]), "growth_tracker": int(scaled["_growth_tracker"])}
        save_checkpoint(self.checkpoint_dir, tensors, state)

    def _scaler(self):
        """fp16's loss scaler, or None."""
        return self.precision.scaler if self.precision is not None else None

    def _restore(self) -> None:
        if self.checkpoint_dir is None:
            raise CheckpointError("resume needs a checkpoint_dir")
        tensors, state = load_checkpoint(self.checkpoint_dir)
        model_state = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
        try:
            self.model_.load_state_dict(model_state)
        except (RuntimeError, ValueError, KeyError) as error:
            lines = [line.strip() for line in str(error).splitlines() if line.strip()]
            shown = lines[1] if len(lines) > 1 else (lines[0] if lines else type(error).__name__)
            more = f" (and {len(lines) - 2} more)" if len(lines) > 2 else ""
            raise CheckpointError(f"the checkpoint in {self.checkpoint_dir} does not fit this model: {shown}{more}; "
                                  "was the run's spec.yaml changed after it started?") from None
        try:
            for part, optimizer in self.optimizers_.items():
                saved = _fitting_groups(CheckpointState.optimizer_part(state, part), optimizer, part)
                optimizer.load_state_dict(join_optimizer_state(tensors, saved, part))
                _laid_out_like_parameters(optimizer)
            self.schedule_.load_state_dict(state["schedule"])
            if self.early_stopping_ is not None and state["early_stopping"] is not None:
                best = {k[5:]: v.to(self.device) for k, v in tensors.items() if k.startswith("best.")}
                self.early_stopping_.load_state_dict(state["early_stopping"], best)
            torch.set_rng_state(tensors["rng.torch"])
            self._generator.set_state(tensors["rng.batches"])
            scaler = self._scaler()
            if scaler is not None and state.get("loss_scale"):
                scaler.load_state_dict({**scaler.state_dict(), "scale": state["loss_scale"]["scale"],
                                        "_growth_tracker": state["loss_scale"]["growth_tracker"]})
        except (RuntimeError, ValueError, KeyError, TypeError, IndexError) as error:
            raise CheckpointError(f"the checkpoint in {self.checkpoint_dir} cannot be restored: "
                                  f"{str(error).splitlines()[0] if str(error) else type(error).__name__}") from None
        if torch.cuda.is_available():
            states = [tensors[k] for k in sorted(tensors) if k.startswith("rng.cuda.")]
            if states:
                torch.cuda.set_rng_state_all(states)
        self.history_ = list(state["history"])
        self._position = state.get("position")
        self.epoch = self._checkpointed_epoch = state["epoch"]
        self.stopped_early_ = state.get("stopped_early", False)
        self.rollbacks_ = list(state.get("rollbacks", []))
        self.stop_training = self.stopped_early_
