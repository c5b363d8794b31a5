"""The learning-rate range test: train briefly while the learning rate grows exponentially, and
suggest the rate where the loss falls fastest. It steps exactly as training does."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..data.augment import Augment
from ..data.prepare import prepare
from ..errors import SpecError
from ..figures.pictures import pyplot, save
from ..models.check import checked_build
from ..spec.defaults import DEFAULT_SPEC
from ..spec.load import load_spec
from ..training import losses
from ..training.optim import build_optimizer
from .scaffold import Scaffold
from .supervised import SupervisedStep

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

    Each step is a training step exactly as ``layerforge train`` takes it (augmentation,
    L1/L2 penalties, clipping), at a rate that grows exponentially from ``start`` to ``end``.
    The suggestion is the rate of steepest descent of the smoothed loss against log(rate),
    bounded by a tenth of the rate where the loss was lowest.

    Raises:
        SpecError, DataError: as for training.
    """
    spec = load_spec(DEFAULT_SPEC if spec is None else spec, overrides)
    prepared = prepare(spec.data, spec.task, spec.seed)
    task = prepared.task
    if len(task.loss_names) != 1:
        raise SpecError(f"lr-find follows one training loss; a {task.name} run trains with "
                        f"{' and '.join(task.loss_names)}: tune each optimizer's train.*.lr directly")
    torch.manual_seed(spec.seed)
    model = checked_build(spec.model, prepared.inputs, task.output_size, task.num_classes)
    model.hold(prepared.encoder.constants)
    scaffold = Scaffold(spec.train, task, seed=spec.seed,
                        augment=Augment.from_spec(spec.data.augment, task.moved_targets))
    model, batches, _ = scaffold.ready(model, prepared.splits["train"], None)
    loss_fn = losses.for_task(spec.train.loss, task)
    optimizer = build_optimizer(spec.train.optimizer.name, {**spec.train.optimizer.params(), "lr": start},
                                model.parameters(), device=scaffold.device.type)
    step_once = SupervisedStep.from_spec(model, task.objective(loss_fn), optimizer, spec.train, scaffold.augment)
    rates, smoothed = [], []
    average, best = 0.0, math.inf
    model.train()
    step = 0
    while step < steps:
        for batch_inputs, target in batches:
            if step >= steps:
                break
            rate = start * (end / start) ** (step / max(steps - 1, 1))
            for group in optimizer.param_groups:
                group["lr"] = rate
            value = float(step_once(batch_inputs, target).detach())
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
    """The smoothed loss against the learning rate, with the suggestion, as a PNG file."""
    plt = pyplot()
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
    return save(figure, Path(path))
