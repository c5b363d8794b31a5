"""Measurements during training, taken every few steps so that they cost little.

At a sampled step the doctor reads each layer's gradient norm and weight norm (the gradients are
still there after the optimizer step) and keeps a copy of the weights; one step later it measures
how far the update moved them. Forward hooks on the activation modules record, on the step after
a sample, the share of dead units (ReLU family: zero for every row of the batch), of saturated
outputs (sigmoid, tanh), and the outputs' mean and spread; they are in place only for that step
(for a compiled network, always: adding a hook would recompile it). Values stay on the device
and come to the host together, at most once a second, so the loop never waits for them.
"""

from __future__ import annotations

import time

import torch
from torch import nn

from ..files import append_jsonl, atomic_write, jsonl, read_jsonl
from ..training.callbacks import Callback
from .verdicts import diagnose, worst

RELU_FAMILY = (nn.ReLU, nn.ReLU6)
SATURATING = {nn.Sigmoid: (0.02, 0.98), nn.Tanh: (-0.98, 0.98), nn.Hardtanh: (-0.98, 0.98)}
SAMPLES_PER_EPOCH = 2
FLUSH_SECONDS = 1.0  # measurements come to the host (and the file) at most this often
MEASURED_EPOCHS = 100  # a longer run measures every k-th epoch (and its last), about this many in all
STEPS_PER_SAMPLE = 4  # an epoch of fewer steps than this per sample is sampled less


def _layers(model: nn.Module) -> list[tuple[str, list[nn.Parameter]]]:
    """Modules that own weights, in registration (forward) order, with their own parameters."""
    layers = []
    for name, module in model.named_modules():
        own = [p for n, p in module.named_parameters(recurse=False) if p.requires_grad and p.ndim > 1]
        if own:
            layers.append((name or type(module).__name__, own))
    return layers


class Doctor(Callback):
    """Collects the measurements ``doctor.verdicts.diagnose`` judges.

    Args:
        samples_per_epoch: sampled steps per epoch (spread evenly; an epoch of fewer than
            ``STEPS_PER_SAMPLE`` steps per sample takes fewer). A run of more than
            ``MEASURED_EPOCHS`` epochs measures every k-th epoch and its last, about that many.

    After training: ``measurements`` (one dict per sampled step), ``layer_names`` and
    ``activation_names`` (in forward order).
    """

    def __init__(self, samples_per_epoch: int = SAMPLES_PER_EPOCH, path=None):
        self.samples_per_epoch = samples_per_epoch
        self.path = path
        self.measurements: list[dict] = []
        self._pending: list[dict] = []
        self._handles: list = []

    # -- hooks ------------------------------------------------------------------------------

    def on_fit_start(self, trainer) -> None:
        if self.path is not None:  # a resumed run keeps the measurements of the epochs it keeps
            self.measurements = [m for m in read_jsonl(self.path)
                                 if isinstance(m.get("epoch"), int) and m["epoch"] <= trainer.epoch]
            atomic_write(self.path, jsonl(self.measurements))
        model = trainer.model_
        self.layers = _layers(model)
        self.layer_names = [name for name, _ in self.layers]
        self.activation_names = []
        self._capture = False
        self._activations: dict[str, dict] = {}
        self._watched = []  # (module, its hook): hooked only for the forward after a sample
        for name, module in model.named_modules():
            bounds = next((b for kind, b in SATURATING.items() if isinstance(module, kind)), None)
            if not isinstance(module, RELU_FAMILY) and bounds is None:
                continue
            self.activation_names.append(name)
            self._watched.append((module, self._hook(name, module, bounds)))
        self._hooked_always = trainer.spec.compile
        if self._hooked_always:
            self._hook_all()
        self._weights_before: list[torch.Tensor] | None = None
        self._flushed_at = float("-inf")  # the first epoch's measurements are written at once
        # every measured parameter in one flat list, and the layer each belongs to: one fused
        # norm over all of them, then per-layer sums, instead of a Python loop per tensor
        self._params = [p for _, params in self.layers for p in params]
        owner = [i for i, (_, params) in enumerate(self.layers) for _ in params]
        device = self._params[0].device if self._params else torch.device("cpu")
        self._owner = torch.tensor(owner, dtype=torch.long, device=device)
        self._numel = [sum(p.numel() for p in params) for _, params in self.layers]

    def _per_layer(self, norms: torch.Tensor) -> torch.Tensor:
        """Per-layer norms (samples, layers) from per-parameter norms (samples, parameters): the
        square root of the summed squares."""
        squares = norms.float().pow(2)
        out = torch.zeros(len(squares), len(self.layers), device=squares.device)
        return out.index_add_(1, self._owner, squares).sqrt()

    def on_epoch_start(self, trainer, epoch: int) -> None:
        self._epoch = epoch + 1
        every = max(1, -(-trainer.epochs // MEASURED_EPOCHS))  # a run of many short epochs: some of them
        if epoch % every and epoch != trainer.epochs - 1:
            self._sampled = set()
            return
        steps = max(1, trainer.steps_per_epoch_)
        samples = max(1, min(self.samples_per_epoch, steps // STEPS_PER_SAMPLE))  # a short epoch: fewer
        self._sampled = set(range(0, steps - 1, max(1, steps // samples))) or {0}

    def on_batch_end(self, trainer, step: int, loss: torch.Tensor) -> None:
        if self._capture:  # the forward of this step recorded activations
            self._capture = False
            if not self._hooked_always:
                self._unhook()
            if self._pending:
                self._pending[-1]["activations"] = self._activations
            self._activations = {}
        # per-parameter norms only here (a few fused ops); per-layer sums and ratios wait for _flush
        if self._weights_before is not None:  # one step after a sample: the size of the update
            after = [p.detach() for p in self._params]
            self._pending[-1]["update_norm"] = torch.stack(
                torch._foreach_norm(torch._foreach_sub(after, self._weights_before)))
            self._weights_before = None
        if step not in self._sampled or not self._params:
            return
        weights = [p.detach() for p in self._params]
        grads = [p.grad.detach() if p.grad is not None else torch.zeros_like(p) for p in self._params]
        self._pending.append({
            "epoch": self._epoch, "step": step, "loss": loss.detach(),
            "grad_norm": torch.stack(torch._foreach_norm(grads)),
            "weight_norm": torch.stack(torch._foreach_norm(weights)),
        })
        self._weights_before = torch._foreach_mul(weights, 1.0)  # copies, in one call
        self._capture = bool(self._watched)
        if not self._hooked_always:
            self._hook_all()

    def on_epoch_end(self, trainer, record: dict) -> None:
        self._flush(final=False)

    def on_fit_end(self, trainer) -> None:
        self._flush(final=True)
        self._unhook()

    def _hook_all(self) -> None:
        self._handles = [module.register_forward_hook(hook) for module, hook in self._watched]

    def _unhook(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    # -- internals --------------------------------------------------------------------------

    def _hook(self, name: str, module: nn.Module, bounds: tuple[float, float] | None):
        """A forward hook that records ``module``'s outputs on capturing steps: dead units for
        the ReLU family (``bounds`` None), else the share outside ``bounds`` (saturated)."""

        def hook(_module, _inputs, output):
            if not self._capture or not module.training or not torch.is_tensor(output):
                return
            out = output.detach()
            std, mean = torch.std_mean(out) if out.numel() > 1 else (out.new_zeros(()), out.mean())
            stats = {"mean": mean, "std": std}
            if bounds is None:  # a unit (dimension 1) is dead when no row and no position makes it positive
                peaks = out.amax(dim=[d for d in range(out.ndim) if d != 1]) if out.ndim > 1 else out.amax()[None]
                stats["dead"] = (peaks <= 0).float().mean()
            else:
                stats["saturated"] = ((out <= bounds[0]) | (out >= bounds[1])).float().mean()
            self._activations[name] = stats

        return hook

    def _flush(self, final: bool) -> None:
        """Bring the measurements to the host as plain numbers, all at once: at most once every
        ``FLUSH_SECONDS`` (the loop waits for the device then), and when training ends. A sample
        still waiting for its next step (the update size, the activations) stays until then,
        unless training has ended."""
        if not final and time.perf_counter() - self._flushed_at < FLUSH_SECONDS:
            return
        waiting = not final and (self._weights_before is not None or self._capture)
        ready, self._pending = (self._pending[:-1], self._pending[-1:]) if waiting else (self._pending, [])
        self._flushed_at = time.perf_counter()
        if not ready:
            return
        # per-layer numbers of all the samples at once: a few tensors, each copied to the host once
        weight = self._per_layer(torch.stack([entry["weight_norm"] for entry in ready]))
        grads = self._per_layer(torch.stack([entry["grad_norm"] for entry in ready])).tolist()
        moved = [i for i, entry in enumerate(ready) if "update_norm" in entry]
        ratios = iter((self._per_layer(torch.stack([ready[i]["update_norm"] for i in moved]))
                       / weight[moved].clamp_min(1e-12)).tolist() if moved else [])
        losses = torch.stack([entry["loss"].float() for entry in ready]).tolist()
        stats = [value for entry in ready for values in entry.get("activations", {}).values()
                 for value in values.values()]
        stats = iter(torch.stack(stats).float().tolist() if stats else [])
        lines = []
        for entry, loss, grad, weights in zip(ready, losses, grads, weight.tolist()):
            line = {"epoch": entry["epoch"], "step": entry["step"], "loss": loss,
                    "grad_norm": dict(zip(self.layer_names, grad)),
                    "grad_rms": {n: g / max(c, 1) ** 0.5 for n, g, c in zip(self.layer_names, grad, self._numel)},
                    "weight_norm": dict(zip(self.layer_names, weights))}
            if "update_norm" in entry:
                line["update_ratio"] = dict(zip(self.layer_names, next(ratios)))
            if "activations" in entry:
                line["activations"] = {name: {k: next(stats) for k in values}
                                       for name, values in entry["activations"].items()}
            lines.append(line)
        self.measurements += lines
        if self.path is not None:
            append_jsonl(self.path, lines)

    # -- verdicts ---------------------------------------------------------------------------

    def diagnosis(self, scaffold, *, failure: str | None = None, early_stopping: bool = False) -> dict:
        """The verdicts on this run's measurements and history, as diagnosis.json records them."""
        task = scaffold.task
        found = diagnose(self.measurements, scaffold.history_, task=task, classes=task.num_classes or None,
                         rollbacks=scaffold.rollbacks_, failure=failure, early_stopping=early_stopping)
        return {"worst": worst(found), "findings": found, "failure": failure,
                "measured_steps": len(self.measurements), "layers": self.layer_names,
                "activations": self.activation_names}
