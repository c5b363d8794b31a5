"""The training loop: two plain functions, readable top to bottom."""

from __future__ import annotations

from collections.abc import Callable

import torch


def train_one_epoch(
    model: torch.nn.Module,
    batches,
    loss_fn: Callable,
    optimizer: torch.optim.Optimizer,
    *,
    lr_at: Callable[[int], float] | None = None,
    clip_grad_norm: float | None = None,
    clip_grad_value: float | None = None,
    penalty: Callable[[torch.nn.Module], torch.Tensor] | None = None,
    augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
    on_batch_end: Callable[[int, torch.Tensor], None] | None = None,
    objective: Callable[[torch.nn.Module, tuple, torch.Tensor], torch.Tensor] | None = None,
) -> tuple[torch.Tensor, list[int]]:
    """Run one pass over ``batches``, updating ``model`` in place.

    Nothing here waits for the device: losses stay on it and are returned for the caller to
    inspect once per epoch.

    Args:
        lr_at: learning rate for each step of the epoch (None: leave it as it is).
        penalty: extra term added to the loss for the update only (L1/L2), not recorded.
        augment: transforms the first input of each batch (data augmentation).
        on_batch_end: called with (step, loss) after each update.
        objective: ``(model, inputs, y) -> loss`` for tasks whose loss is not
            ``loss_fn(model(*inputs), y)``, e.g. an autoencoder's, which reads the input.

    Returns:
        The data loss of every step (on the device) and the rows in every step.
    """
    model.train()
    losses, sizes = [], []
    parameters = [p for p in model.parameters() if p.requires_grad]
    for step, (x, y) in enumerate(batches):
        if lr_at is not None:
            lr = lr_at(step)
            for group in optimizer.param_groups:
                group["lr"] = lr
        if augment is not None:
            x = (augment(x[0]), *x[1:])
        loss = loss_fn(model(*x), y) if objective is None else objective(model, x, y)
        total = loss if penalty is None else loss + penalty(model)
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        if clip_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(parameters, clip_grad_norm)
        if clip_grad_value is not None:
            torch.nn.utils.clip_grad_value_(parameters, clip_grad_value)
        optimizer.step()
        losses.append(loss.detach())
        sizes.append(len(y))
        if on_batch_end is not None:
            on_batch_end(step, loss)
    return torch.stack(losses), sizes


def _as_tuple(inputs) -> tuple:
    return tuple(inputs) if isinstance(inputs, (tuple, list)) else (inputs,)


@torch.no_grad()
def predict_outputs(model: torch.nn.Module, inputs, batch_size: int = 1024) -> torch.Tensor:
    """Model outputs for all rows of ``inputs`` (a tensor or tuple of tensors) in evaluation
    mode, batched to bound memory."""
    model.eval()
    inputs = _as_tuple(inputs)
    rows = len(inputs[0])
    return torch.cat([model(*(t[i : i + batch_size] for t in inputs)) for i in range(0, rows, batch_size)])


@torch.no_grad()
def evaluate(model: torch.nn.Module, inputs, y: torch.Tensor, loss_fn: Callable, task) -> dict[str, float]:
    """Loss and the task's metrics on ``(inputs, y)``."""
    if hasattr(task, "evaluate"):  # tasks that judge more than outputs against targets
        return task.evaluate(model, _as_tuple(inputs), y, loss_fn)
    if hasattr(task, "outputs_for"):  # e.g. recursive multi-step forecasts
        outputs = task.outputs_for(model, _as_tuple(inputs), y)
    else:
        outputs = predict_outputs(model, inputs)
    return {"loss": float(loss_fn(outputs, y)), **task.metrics(outputs, y)}
