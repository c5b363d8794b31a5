"""The learning-rate range test: train briefly while the learning rate grows exponentially, and
suggest the rate where the loss falls fastest."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SMOOTHING = 0.9  # exponential moving average of the batch loss, bias-corrected
STOP_FACTOR = 4.0  # stop once the smoothed loss exceeds this multiple of its best


@dataclass
class LRFinding:
    learning_rates: list[float]
    losses: list[float]  # smoothed
    suggestion: float
    steepest: float
    minimum: float

    def to_json(self) -> dict[str, Any]:
        return {"suggestion": self.suggestion, "steepest": self.steepest, "minimum": self.minimum,
                "learning_rates": self.learning_rates, "losses": self.losses}


def lr_range_test(spec: Any = None, overrides=(), *, start: float = 1e-7, end: float = 10.0,
                  steps: int = 100) -> LRFinding:
    """Run the range test on a spec's data and model (a fresh model; nothing is saved).

    The suggestion is the rate of steepest descent of the smoothed loss against log(rate),
    bounded by a tenth of the rate where the loss was lowest.

    Raises:
        SpecError, DataError: as for training.
    """
    import torch

    from .. import tasks
    from ..api import DEFAULT_SPEC
    from ..data.batches import InMemoryBatches
    from ..data.prepare import prepare
    from ..errors import SpecError
    from ..models import build_model
    from ..spec.load import load_spec
    from ..training import losses
    from ..training.optim import build_optimizer
    from ..training.trainer import as_tensors, resolve_device

    spec = load_spec(DEFAULT_SPEC if spec is None else spec, overrides)
    if spec.model.type == "gan":
        raise SpecError("lr-find: a GAN's two networks have no single loss to follow; tune "
                        "train.optimizer.lr and train.discriminator_optimizer.lr directly")
    prepared = prepare(spec.data, spec.task, spec.seed)
    task = tasks.from_meta(prepared.meta())
    device = resolve_device(spec.train.device)
    torch.manual_seed(spec.seed)
    model = build_model(spec.model, prepared.inputs_info, task.output_size).to(device)
    x, y = as_tensors(prepared.splits["train"], task, device)
    batch_size = len(y) if spec.train.batch_size == "full" else spec.train.batch_size
    batches = InMemoryBatches(x, y, batch_size, generator=torch.Generator().manual_seed(spec.seed), min_batch=2)
    loss_fn = losses.for_task(spec.train.loss, task)
    objective = task.objective(loss_fn) if hasattr(task, "objective") else (lambda m, xs, t: loss_fn(m(*xs), t))
    optimizer = build_optimizer(spec.train.optimizer.name, {**spec.train.optimizer.params(), "lr": start},
                                model.parameters(), device=device.type)
    rates, smoothed = [], []
    average, best = 0.0, math.inf
    model.train()
    step = 0
    while step < steps:
        for inputs, target in batches:
            if step >= steps:
                break
            rate = start * (end / start) ** (step / max(steps - 1, 1))
            for group in optimizer.param_groups:
                group["lr"] = rate
            loss = objective(model, inputs, target)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            value = float(loss.detach())
            if not math.isfinite(value):
                step = steps
                break
            average = SMOOTHING * average + (1 - SMOOTHING) * value
            corrected = average / (1 - SMOOTHING ** (step + 1))
            rates.append(rate)
            smoothed.append(corrected)
            best = min(best, corrected)
            step += 1
            if corrected > STOP_FACTOR * best and step > 10:
                step = steps
                break
    if len(rates) < 5:
        raise SpecError("lr-find: the loss diverged at once; check the data or lower the start rate")
    minimum = rates[min(range(len(smoothed)), key=smoothed.__getitem__)]
    logs = [math.log10(r) for r in rates]
    slopes = [(smoothed[i + 1] - smoothed[i - 1]) / (logs[i + 1] - logs[i - 1]) for i in range(1, len(rates) - 1)]
    usable = [i for i in range(len(slopes)) if rates[i + 1] <= minimum]
    steepest = rates[1 + min(usable or range(len(slopes)), key=slopes.__getitem__)]
    suggestion = min(steepest, minimum / 10)
    return LRFinding(rates, smoothed, suggestion, steepest, minimum)


def plot(finding: LRFinding, path: str | Path) -> Path:
    from ..report.plots import _pyplot, _save

    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(6, 3.6))
    axis.plot(finding.learning_rates, finding.losses, color="#2563eb")
    axis.set_xscale("log")
    axis.axvline(finding.suggestion, color="#dc2626", linestyle="--", label=f"suggested {finding.suggestion:.2g}")
    axis.axvline(finding.minimum, color="#9ca3af", linestyle=":", label=f"lowest loss {finding.minimum:.2g}")
    axis.set_xlabel("learning rate")
    axis.set_ylabel("training loss (smoothed)")
    axis.set_title("learning-rate range test")
    axis.legend(frameon=False)
    axis.grid(alpha=0.3)
    return _save(figure, Path(path))
