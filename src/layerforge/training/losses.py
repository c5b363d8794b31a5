"""Losses by name. Every loss is called as ``loss(output, target)`` and returns a scalar.

For classification ``output`` holds logits of shape (N, C) and ``target`` class indices (N,);
for regression both are float tensors of shape (N, K); for reconstruction both have the shape of
the inputs. GAN losses (task generation) are pairs: see ``AdversarialLoss``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..errors import SpecError, unknown_name


@dataclass(frozen=True)
class LossEntry:
    factory: Callable[..., Callable]
    tasks: tuple[str, ...] | None  # None: any task
    params: tuple[str, ...] | None  # None: any keyword (user-registered losses)


def _one_hot(target, num_classes: int):
    import torch.nn.functional as F

    return F.one_hot(target, num_classes).to(dtype=_float_dtype())


def _float_dtype():
    import torch

    return torch.get_default_dtype()


def _pointwise(kind: str, task: str, **params) -> Callable:
    import torch.nn.functional as F

    fn = {"mse": F.mse_loss, "mae": F.l1_loss, "huber": F.huber_loss}[kind]
    if task == "classification":
        # Compare class probabilities with the one-hot target.
        return lambda output, target: fn(
            output.softmax(dim=-1), _one_hot(target, output.shape[-1]), **params
        )
    return lambda output, target: fn(output, target, **params)


def _mse(task: str) -> Callable:
    return _pointwise("mse", task)


def _mae(task: str) -> Callable:
    return _pointwise("mae", task)


def _huber(task: str, delta: float = 1.0) -> Callable:
    return _pointwise("huber", task, delta=delta)


def _cross_entropy(task: str, label_smoothing: float = 0.0) -> Callable:
    import torch.nn.functional as F

    if task == "language_model":  # (B, L, V) logits against (B, L) next tokens
        return lambda output, target: F.cross_entropy(
            output.flatten(0, 1), target.flatten(), label_smoothing=label_smoothing
        )
    return lambda output, target: F.cross_entropy(output, target, label_smoothing=label_smoothing)


def _bce(task: str) -> Callable:
    import torch.nn.functional as F

    return lambda output, target: F.binary_cross_entropy_with_logits(
        output, _one_hot(target, output.shape[-1])
    )


def _hinge(task: str, margin: float = 1.0) -> Callable:
    import torch.nn.functional as F

    if task == "generation":
        return AdversarialLoss("hinge", margin=margin)
    return lambda output, target: F.multi_margin_loss(output, target, margin=margin)


@dataclass(frozen=True)
class AdversarialLoss:
    """The two halves of a GAN loss, on the discriminator's raw scores (logits).

    ``non_saturating``: the discriminator minimises binary cross-entropy (real targets are
    ``1 - label_smoothing``); the generator minimises ``-log D(G(z))``.
    ``hinge``: ``relu(margin - D(x)) + relu(margin + D(G(z)))`` and ``-D(G(z))``.
    ``wasserstein``: ``D(G(z)) - D(x)`` (plus ``gp_weight`` times the gradient penalty, which the
    training step computes) and ``-D(G(z))``.
    """

    kind: str
    label_smoothing: float = 0.0
    margin: float = 1.0
    gp_weight: float = 0.0

    def discriminator(self, real, fake):
        import torch.nn.functional as F

        if self.kind == "non_saturating":
            real_target = real.new_full(real.shape, 1.0 - self.label_smoothing)
            return (F.binary_cross_entropy_with_logits(real, real_target)
                    + F.binary_cross_entropy_with_logits(fake, fake.new_zeros(fake.shape)))
        if self.kind == "hinge":
            return F.relu(self.margin - real).mean() + F.relu(self.margin + fake).mean()
        return fake.mean() - real.mean()

    def generator(self, fake):
        import torch.nn.functional as F

        if self.kind == "non_saturating":
            return F.softplus(-fake).mean()
        return -fake.mean()


def _non_saturating(task: str, label_smoothing: float = 0.0) -> AdversarialLoss:
    return AdversarialLoss("non_saturating", label_smoothing=label_smoothing)


def _wasserstein_gp(task: str, gp_weight: float = 10.0) -> AdversarialLoss:
    return AdversarialLoss("wasserstein", gp_weight=gp_weight)


def _kl_div(task: str, label_smoothing: float = 0.0) -> Callable:
    import torch.nn.functional as F

    def loss(output, target):
        classes = output.shape[-1]
        wanted = _one_hot(target, classes) * (1.0 - label_smoothing) + label_smoothing / classes
        return F.kl_div(output.log_softmax(dim=-1), wanted, reduction="batchmean")

    return loss


LOSSES: dict[str, LossEntry] = {
    "mse": LossEntry(_mse, ("classification", "regression", "forecasting", "reconstruction"), ()),
    "mae": LossEntry(_mae, ("classification", "regression", "forecasting", "reconstruction"), ()),
    "huber": LossEntry(_huber, ("classification", "regression", "forecasting", "reconstruction"), ("delta",)),
    "cross_entropy": LossEntry(_cross_entropy, ("classification", "language_model"), ("label_smoothing",)),
    "bce": LossEntry(_bce, ("classification",), ()),
    "hinge": LossEntry(_hinge, ("classification", "generation"), ("margin",)),
    "non_saturating": LossEntry(_non_saturating, ("generation",), ("label_smoothing",)),
    "wasserstein_gp": LossEntry(_wasserstein_gp, ("generation",), ("gp_weight",)),
    "kl_div": LossEntry(_kl_div, ("classification",), ("label_smoothing",)),
}


def register_loss(name: str, factory: Callable[..., Callable], *, tasks=None) -> None:
    """Make a loss available to specs under ``name``.

    Args:
        name: the name specs use (``train.loss: name``).
        factory: called with the spec's extra loss keys (``{name: focal, gamma: 2}`` calls
            ``factory(gamma=2)``); returns a callable ``(output, target) -> scalar tensor``,
            for example an ``nn.Module`` class.
        tasks: the tasks the loss suits, e.g. ``("classification",)``; ``None`` for any.

    Raises:
        ValueError: ``name`` is already a built-in loss.

    Example:
        >>> import layerforge as lf
        >>> lf.register_loss("focal", FocalLoss, tasks=("classification",))  # doctest: +SKIP
    """
    if name in LOSSES and LOSSES[name].params is not None:
        raise ValueError(f"'{name}' is a built-in loss; register yours under another name")
    LOSSES[name] = LossEntry(lambda task, **params: factory(**params), tasks, None)


def check(name: str, params: dict, task: str | None) -> list[str]:
    """Problems with using loss ``name`` with ``params`` for ``task`` (empty when fine)."""
    if name not in LOSSES:
        return [unknown_name("loss", name, LOSSES)]
    entry = LOSSES[name]
    problems = []
    if entry.params is not None:
        for key in params:
            if key not in entry.params:
                allowed = ", ".join(entry.params) or "none"
                problems.append(f"'{key}' is not a parameter of loss '{name}' (its parameters: {allowed})")
    if task and entry.tasks is not None and task not in entry.tasks:
        problems.append(f"loss '{name}' does not suit task '{task}' (it suits: {', '.join(entry.tasks)})")
    return problems


def get(name: str, task: str, params: dict | None = None) -> Callable:
    """Build loss ``name`` for ``task``.

    Raises:
        SpecError: unknown loss, a parameter it does not take, or a task it does not suit.
    """
    params = dict(params or {})
    problems = check(name, params, task)
    if problems:
        raise SpecError([f"train.loss: {p}" for p in problems])
    return LOSSES[name].factory(task, **params)


def for_task(loss_spec, task) -> Callable:
    """The loss a spec's ``train.loss`` names (``None``: the task's default) for ``task``."""
    if loss_spec is None:
        return get(task.default_loss, task.name)
    return get(loss_spec.name, task.name, loss_spec.params())
