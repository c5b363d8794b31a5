"""Adversarial examples: FGSM and PGD (L-infinity or L2) in the units users reason in.

An attack moves the encoded rows the model reads, but its budget ``eps`` is measured in the
data's own units (``Perturbation``: pixels in [0, 1] for images, standardised values for tables
and series, category one-hots left alone), and pixels stay in [0, 1]. It maximises the task's
training loss with the model in evaluation mode. ``Adversary`` is what ``train.adversarial``
trains on (Madry-style), in the supervised recipe.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

METHODS = ("fgsm", "pgd")
NORMS = ("linf", "l2")


@dataclass(frozen=True)
class Budget:
    """Where a perturbation may go: per-element scale (encoded units per user unit; 0: fixed)
    and the encoded bounds, as tensors shaped like one row (batch dimension first)."""

    scale: torch.Tensor
    low: torch.Tensor | None = None
    high: torch.Tensor | None = None

    @classmethod
    def of(cls, perturbation, device, dtype=torch.float32) -> Budget:
        def tensor(value):
            return None if value is None else torch.as_tensor(value, device=device, dtype=dtype)[None]

        return cls(tensor(perturbation.scale), tensor(perturbation.low), tensor(perturbation.high))

    def clamp(self, x: torch.Tensor) -> torch.Tensor:
        if self.low is not None:
            x = torch.maximum(x, self.low.expand_as(x))
        if self.high is not None:
            x = torch.minimum(x, self.high.expand_as(x))
        return x


def _project(delta: torch.Tensor, eps: float, norm: str, movable: torch.Tensor) -> torch.Tensor:
    """``delta`` (user units) inside the ball of radius ``eps``; fixed elements stay 0."""
    delta = delta * movable
    if norm == "linf":
        return delta.clamp(-eps, eps)
    size = delta.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *[1] * (delta.dim() - 1))
    return delta * torch.clamp(eps / size, max=1.0)


def _random_start(x: torch.Tensor, eps: float, norm: str, movable: torch.Tensor,
                  generator: torch.Generator | None) -> torch.Tensor:
    noise = torch.rand(x.shape, generator=generator, device="cpu").to(x.device, x.dtype) * 2 - 1
    if norm == "l2":
        noise = noise / noise.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *[1] * (x.dim() - 1))
        noise = noise * torch.rand(len(x), generator=generator).to(x.device, x.dtype).view(-1, *[1] * (x.dim() - 1))
    return _project(noise * eps, eps, norm, movable)


def perturb(model: torch.nn.Module, loss: Callable, inputs: tuple, y: torch.Tensor, budget: Budget, *,
            method: str = "pgd", eps: float = 0.1, steps: int = 20, alpha: float | None = None,
            norm: str = "linf", random_start: bool | None = None,
            generator: torch.Generator | None = None) -> tuple:
    """Adversarial inputs: ``inputs`` with their first tensor moved to raise ``loss``.

    Args:
        loss: ``(model, inputs, y) -> scalar``, the task's training loss.
        method: 'fgsm' (one step of size eps) or 'pgd' (``steps`` steps of size ``alpha``,
            default eps / 4, from a random start).
        eps: the budget in user units (``budget``).
        norm: 'linf' or 'l2'.
        random_start: start from a random point of the ball (default: PGD yes, FGSM no).

    The model's mode is left as it was; its parameters get no gradient from the attack.
    """
    if eps <= 0:
        return inputs
    x0 = inputs[0].detach()
    movable = (budget.scale != 0).to(x0.dtype).expand_as(x0)
    steps = 1 if method == "fgsm" else steps
    alpha = eps if method == "fgsm" and alpha is None else (alpha or eps / 4)
    start = (method == "pgd") if random_start is None else random_start
    safe_scale = torch.where(budget.scale != 0, budget.scale, torch.ones_like(budget.scale))

    def feasible(delta: torch.Tensor) -> torch.Tensor:
        """``delta`` moved back inside the bounds (a pixel stays in [0, 1]): a step past a bound
        would leave the element with no gradient, stuck there."""
        return (budget.clamp(x0 + delta * budget.scale) - x0) / safe_scale * movable

    delta = feasible(_random_start(x0, eps, norm, movable, generator)) if start else torch.zeros_like(x0)
    wanted = [p.requires_grad for p in model.parameters()]
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    try:
        for _ in range(steps):
            delta.requires_grad_(True)
            x = budget.clamp(x0 + delta * budget.scale)
            value = loss(model, (x, *inputs[1:]), y)
            (grad,) = torch.autograd.grad(value, delta)
            with torch.no_grad():
                if norm == "linf":
                    step = grad.sign()
                else:
                    step = grad / grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *[1] * (grad.dim() - 1))
                delta = feasible(_project(delta.detach() + alpha * step, eps, norm, movable))
    finally:
        for parameter, flag in zip(model.parameters(), wanted):
            parameter.requires_grad_(flag)
    with torch.no_grad():
        return (budget.clamp(x0 + delta * budget.scale).detach(), *inputs[1:])


class Adversary:
    """Replaces a share of each training batch by adversarial examples (``train.adversarial``):
    PGD as Madry et al., or FGSM from a random start with steps of 1.25 eps (Wong et al.'s fast
    adversarial training). The examples are crafted in evaluation mode, so batch-norm statistics
    see only the rows the model learns from."""

    def __init__(self, loss: Callable, budget: Budget, *, method: str, eps: float, steps: int, ratio: float,
                 norm: str = "linf", seed: int = 0):
        self.loss, self.budget = loss, budget
        self.method, self.eps, self.steps, self.ratio, self.norm = method, eps, steps, ratio, norm
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, model: torch.nn.Module, inputs: tuple, y: torch.Tensor) -> tuple:
        rows = int(round(len(y) * self.ratio))
        if rows == 0:
            return inputs
        was_training = model.training
        model.eval()
        part = tuple(t[:rows] for t in inputs)
        fast = self.method == "fgsm"
        crafted = perturb(model, self.loss, part, y[:rows], self.budget, method=self.method, eps=self.eps,
                          steps=self.steps, norm=self.norm, alpha=1.25 * self.eps if fast else None,
                          random_start=True, generator=self.generator)
        model.train(was_training)
        if rows == len(y):
            return crafted
        return (torch.cat([crafted[0], inputs[0][rows:]]), *inputs[1:])
