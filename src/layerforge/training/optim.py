"""Optimizers and learning-rate schedules by name."""

from __future__ import annotations

import math
from typing import Any

from ..errors import SpecError, unknown_name

# name -> (torch.optim class name, the keys a spec may set for it)
OPTIMIZERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "sgd": ("SGD", ("lr", "momentum", "nesterov", "dampening", "weight_decay")),
    "adam": ("Adam", ("lr", "betas", "eps", "weight_decay", "amsgrad")),
    "adamw": ("AdamW", ("lr", "betas", "eps", "weight_decay", "amsgrad")),
    "rmsprop": ("RMSprop", ("lr", "alpha", "eps", "weight_decay", "momentum", "centered")),
    "adagrad": ("Adagrad", ("lr", "lr_decay", "eps", "weight_decay")),
}

# name -> the keys a spec may set for it (besides name and warmup_epochs, which all take)
SCHEDULES: dict[str, tuple[str, ...]] = {
    "none": (),
    "step": ("step_size", "gamma"),
    "exponential": ("gamma",),
    "cosine": ("min_lr",),
    "onecycle": ("pct_start", "div_factor", "final_div_factor"),
    "plateau": ("monitor", "patience", "factor", "min_lr"),
}


def check_params(
    kind: str, table: dict, name: str, params: dict[str, Any]
) -> list[tuple[str, str]]:
    """Problems with ``params`` for entry ``name`` of ``table``, as (key, message) pairs."""
    if name not in table:
        return [("name", unknown_name(kind, name, table))]
    allowed = table[name][1] if kind == "optimizer" else table[name]
    return [
        (key, f"not a parameter of {kind} '{name}' (its parameters: {', '.join(allowed) or 'none'})")
        for key in params
        if key not in allowed
    ]


def build_optimizer(name: str, params: dict[str, Any], parameters, *, device: str = "cpu"):
    """Build torch optimizer ``name`` over ``parameters`` with the spec's ``params``."""
    import torch

    problems = check_params("optimizer", OPTIMIZERS, name, params)
    if problems:
        raise SpecError([f"train.optimizer.{key}: {message}" for key, message in problems])
    class_name, _ = OPTIMIZERS[name]
    kwargs = dict(params)
    if "betas" in kwargs:
        kwargs["betas"] = tuple(kwargs["betas"])
    # One fused kernel per step instead of a Python loop over parameters: measurably faster
    # on CPU as well as CUDA (bench/overhead.py).
    if name in ("sgd", "adam", "adamw") and device in ("cpu", "cuda"):
        kwargs.setdefault("fused", True)
    else:
        kwargs.setdefault("foreach", True)
    return getattr(torch.optim, class_name)(parameters, **kwargs)


class Schedule:
    """Learning rate as a function of (epoch, step), plus plateau state.

    Step-wise schedules (cosine, onecycle, warmup) change the rate every step; step and
    exponential change it once per epoch; plateau lowers it when the monitored value stalls
    (``higher_is_better`` says which way is better: ask the task, ``task.higher_is_better``).
    The state is a small JSON-able dict, saved with checkpoints.
    """

    def __init__(
        self,
        name: str,
        base_lr: float,
        epochs: int,
        steps_per_epoch: int,
        *,
        warmup_epochs: float = 0.0,
        step_size: int = 10,
        gamma: float = 0.1,
        min_lr: float = 0.0,
        pct_start: float = 0.3,
        div_factor: float = 25.0,
        final_div_factor: float = 1e4,
        monitor: str = "val_loss",
        patience: int = 5,
        factor: float = 0.5,
        higher_is_better: bool = False,
    ):
        if name not in SCHEDULES:
            raise SpecError(f"train.schedule.name: {unknown_name('schedule', name, SCHEDULES)}")
        self.name = name
        self.base_lr = base_lr
        self.total_steps = max(1, epochs * steps_per_epoch)
        self.steps_per_epoch = max(1, steps_per_epoch)
        self.warmup_steps = int(round(warmup_epochs * self.steps_per_epoch))
        self.step_size, self.gamma, self.min_lr = step_size, gamma, min_lr
        self.pct_start, self.div_factor, self.final_div_factor = pct_start, div_factor, final_div_factor
        self.monitor, self.patience, self.factor = monitor, patience, factor
        self.mode = "max" if higher_is_better else "min"
        # plateau state
        self.scale = 1.0
        self.best: float | None = None
        self.bad_epochs = 0
        self.checked: int | None = None

    def lr(self, epoch: int, step: int) -> float:
        """The learning rate for ``step`` (0-based, within the epoch) of ``epoch`` (0-based)."""
        global_step = epoch * self.steps_per_epoch + step
        lr = self._base(epoch, global_step) * self.scale
        if global_step < self.warmup_steps:
            lr *= (global_step + 1) / self.warmup_steps
        return lr

    def _base(self, epoch: int, global_step: int) -> float:
        base = self.base_lr
        if self.name == "step":
            return base * self.gamma ** (epoch // self.step_size)
        if self.name == "exponential":
            return base * self.gamma**epoch
        if self.name == "cosine":
            span = max(1, self.total_steps - self.warmup_steps)
            progress = min(1.0, max(0.0, (global_step - self.warmup_steps) / span))
            return self.min_lr + (base - self.min_lr) * 0.5 * (1 + math.cos(math.pi * progress))
        if self.name == "onecycle":
            low = base / self.div_factor
            rise = max(1, int(self.pct_start * self.total_steps))
            if global_step < rise:
                return low + (base - low) * 0.5 * (1 - math.cos(math.pi * global_step / rise))
            end = low / self.final_div_factor
            progress = min(1.0, (global_step - rise) / max(1, self.total_steps - rise))
            return end + (base - end) * 0.5 * (1 + math.cos(math.pi * progress))
        return base

    def epoch_end(self, record: dict[str, float]) -> None:
        """Update plateau state from the epoch's record (other schedules ignore it). Epochs
        without ``monitor`` (not validated) decide nothing; the epochs since the last check count
        towards ``patience``."""
        if self.name != "plateau" or self.monitor not in record:
            return
        value = record[self.monitor]
        improved = self.best is None or (
            value < self.best if self.mode == "min" else value > self.best
        )
        epoch = record.get("epoch")
        passed = 1 if self.checked is None or epoch is None else max(1, epoch - self.checked)
        self.checked = epoch
        if improved:
            self.best, self.bad_epochs = value, 0
            return
        self.bad_epochs += passed
        if self.bad_epochs > self.patience:
            floor = self.min_lr / self.base_lr if self.base_lr else 0.0
            self.scale = max(self.scale * self.factor, floor)
            self.bad_epochs = 0

    def state_dict(self) -> dict[str, Any]:
        return {"scale": self.scale, "best": self.best, "bad_epochs": self.bad_epochs, "checked": self.checked}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.scale, self.best, self.bad_epochs = state["scale"], state["best"], state["bad_epochs"]
        self.checked = state.get("checked")
