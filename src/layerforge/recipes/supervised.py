"""The supervised recipe: one model, one loss, one optimizer. Every task but generation trains
with it (an autoencoder's loss reads its own input: the task's ``objective`` says so)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch

from ..doctor.monitor import Doctor
from ..errors import SpecError
from ..training import losses
from ..training.adversarial import Adversary, Budget
from ..training.freezing import parameter_groups
from ..training.optim import build_optimizer


def penalty(l1: float, l2: float) -> Callable[[torch.nn.Module], torch.Tensor] | None:
    """L1/L2 on weight matrices (not biases or norm scales), or None when both are 0."""
    if not l1 and not l2:
        return None

    def total(model: torch.nn.Module) -> torch.Tensor:
        weights = [p for p in model.parameters() if p.ndim > 1]
        value = 0.0
        if l1:
            value = value + l1 * sum(w.abs().sum() for w in weights)
        if l2:
            value = value + l2 * sum(w.pow(2).sum() for w in weights)
        return value

    return total


class SupervisedStep:
    """One update: augment the batch, compute the loss (plus penalties), backward, clip, step.
    Training and the learning-rate range test step through this same object.

    Args:
        objective: ``(model, inputs, y) -> loss``, the task's (``task.objective(loss_fn)``).
        penalty: added to the loss for the update only (L1/L2), not recorded.
        augment: transforms the first input of each batch (data augmentation); one whose
            ``moves_targets`` is set moves the batch's masks or boxes with its pictures (``pair``).
        share: in data-parallel training, this process's share of the current batch (its loss
            is weighted by it, so that the averaged gradients are the whole batch's).
        precision: ``Precision`` of the forward pass (autocast, and fp16's loss scaler), or None
            for fp32.
    """

    def __init__(self, model: torch.nn.Module, objective: Callable, optimizer: torch.optim.Optimizer, *,
                 clip_grad_norm: float | None = None, clip_grad_value: float | None = None,
                 penalty: Callable | None = None, augment: Callable | None = None,
                 adversary: Callable | None = None, share: Callable[[], float] | None = None, precision=None):
        self.model, self.objective, self.optimizer = model, objective, optimizer
        self.share, self.precision = share, precision
        self.adversary = adversary
        self.clip_grad_norm, self.clip_grad_value = clip_grad_norm, clip_grad_value
        self.penalty, self.augment = penalty, augment
        self.parameters = list(model.parameters())  # clipping skips those without a gradient (frozen)

    @classmethod
    def from_spec(cls, model, objective, optimizer, train_spec, augment=None, adversary=None, share=None,
                  precision=None) -> SupervisedStep:
        return cls(model, objective, optimizer, clip_grad_norm=train_spec.clip_grad_norm,
                   clip_grad_value=train_spec.clip_grad_value, penalty=penalty(train_spec.l1, train_spec.l2),
                   augment=augment, adversary=adversary, share=share, precision=precision)

    def __call__(self, inputs: tuple, y: torch.Tensor) -> torch.Tensor:
        """Update the model on one batch; returns the data loss (without penalties)."""
        if self.augment is not None and getattr(self.augment, "moves_targets", False):
            x, y = self.augment.pair(inputs[0], y)  # masks or boxes move with their pictures
            inputs = (x, *inputs[1:])
        elif self.augment is not None:
            inputs = (self.augment(inputs[0]), *inputs[1:])
        if self.adversary is not None:
            inputs = self.adversary(self.model, inputs, y)
        precision = self.precision
        with precision.autocast() if precision is not None else contextlib.nullcontext():
            loss = self.objective(self.model, inputs, y)
        total = loss if self.share is None else loss * self.share()
        total = total if self.penalty is None else total + self.penalty(self.model)
        self.optimizer.zero_grad(set_to_none=True)
        scaler = precision.scaler if precision is not None else None
        (total if scaler is None else scaler.scale(total)).backward()
        if scaler is not None and (self.clip_grad_norm is not None or self.clip_grad_value is not None):
            scaler.unscale_(self.optimizer)  # clip the true gradients
        if self.clip_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(self.parameters, self.clip_grad_norm)
        if self.clip_grad_value is not None:
            torch.nn.utils.clip_grad_value_(self.parameters, self.clip_grad_value)
        if scaler is None:
            self.optimizer.step()
        else:
            scaler.step(self.optimizer)  # skipped when the scaled gradients overflowed
            scaler.update()
        return loss.float()


def train_one_epoch(model: torch.nn.Module, batches, step: SupervisedStep, *,
                    lr_at: Callable[[int], float] | None = None,
                    on_batch_end: Callable[[int, torch.Tensor], None] | None = None,
                    done: tuple[int, list, list[int]] | None = None,
                    after_step: Callable[[int, list, list[int]], None] | None = None) -> tuple[torch.Tensor, list[int]]:
    """One pass over ``batches``, updating ``model`` in place. Nothing here waits for the
    device: losses stay on it and are returned for the caller to inspect once per epoch.

    Args:
        lr_at: the learning rate of each step (None: leave it as it is).
        on_batch_end: called with (step, loss) after each update.
        done: (steps, their losses, their rows) of this epoch trained before a mid-epoch
            checkpoint: those batches are drawn and skipped.
        after_step: called with (step, the losses and rows so far) after each update (a
            mid-epoch checkpoint).

    Returns:
        The data loss of every step (on the device) and the rows in every step.
    """
    model.train()
    skipped, step_losses, sizes = (0, [], []) if done is None else (done[0], list(done[1]), list(done[2]))
    groups = step.optimizer.param_groups
    for i, (inputs, y) in enumerate(batches):
        if i < skipped:
            continue
        if lr_at is not None:
            lr = lr_at(i)
            for group in groups:
                group["lr"] = lr * group.get("lr_scale", 1.0)  # discriminative rates keep their ratio
        loss = step(inputs, y)
        step_losses.append(loss.detach())
        sizes.append(len(y))
        if on_batch_end is not None:
            on_batch_end(i, loss)
        if after_step is not None:
            after_step(i, step_losses, sizes)
    return torch.stack(step_losses), sizes


def fit(scaffold, model: torch.nn.Module, train, val=None, *, resume: bool = False) -> None:
    """Train ``model`` on ``train = (inputs, y)``, validating on ``val`` after every epoch."""
    spec, task = scaffold.spec, scaffold.task
    model, batches, validation = scaffold.ready(model, train, val)
    loss_fn = losses.for_task(spec.loss, task)
    groups = parameter_groups(model, spec.optimizer.lr, spec.discriminative_lr)
    optimizer = build_optimizer(spec.optimizer.name, spec.optimizer.params(), groups or model.parameters(),
                                device=scaffold.device.type)
    trained = scaffold.parallel(model)  # what the updates run through: the model (compiled), or all processes'
    share = None if scaffold.distributed is None else (lambda: batches.share)
    step = SupervisedStep.from_spec(trained, task.objective(loss_fn), optimizer, spec, scaffold.augment,
                                    _adversary(spec, task.objective(loss_fn), scaffold), share, scaffold.precision)
    validate = None if validation is None else (lambda: task.evaluate(model, *validation, loss_fn))
    with scaffold.fitting(model, {"optimizer": optimizer}, loss_fn, len(batches), has_val=validation is not None,
                          resume=resume):
        mid_epoch = scaffold.mid_epoch(batches)
        for epoch in scaffold.epochs_left():
            step_losses, sizes = train_one_epoch(trained, batches, step, lr_at=scaffold.lr_at(epoch),
                                                 on_batch_end=scaffold.batch_hook(), done=scaffold.resume_position(),
                                                 after_step=mid_epoch)
            scaffold.end_epoch(epoch, step_losses, sizes, validate)


def _adversary(spec, objective, scaffold) -> Adversary | None:
    """The adversary of ``train.adversarial``, or None."""
    wanted = spec.adversarial
    if wanted is None:
        return None
    if scaffold.perturbation is None:
        raise SpecError("train.adversarial: these inputs are not numbers an attack can move (token ids); remove it")
    return Adversary(objective, Budget.of(scaffold.perturbation, scaffold.device), method=wanted.method,
                     eps=wanted.eps, steps=wanted.steps, ratio=wanted.ratio, norm=wanted.norm, seed=scaffold.seed)


def monitor(train_spec, path):
    """The training doctor, measuring gradients, updates and units (None when it is off)."""
    if not train_spec.doctor:
        return None
    return Doctor(path=path)


def setup(task, prepared, run_dir, device, previous: dict) -> dict:
    """Nothing to prepare before supervised training; returns model.json entries (none)."""
    return {}
