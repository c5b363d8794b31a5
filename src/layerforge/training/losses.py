"""Losses by name. Every loss is called as ``loss(output, target)`` and returns a scalar.

What a loss compares depends on the task's ``target_form``: 'classes' (logits (N, C) against
class indices (N,)), 'values' (numbers against numbers of the same shape: regression,
forecasting, reconstruction), 'tokens' (logits (B, L, V) against next tokens (B, L)),
'alignments' (logits (B, T, V) of every frame against a shorter token sequence (B, L) that some
alignment of the frames spells, id 0 the blank and the padding: transcription), 'pixels'
(class scores (B, K, H, W) against each pixel's class (B, H, W): segmentation), 'boxes' (a
detector's maps against each picture's boxes: detection, whose loss the task builds),
'interactions' (a recommender's scores: a rating's error, or, for implicit feedback, each
interaction's score against items drawn at random: ``RankedLoss``) or
'adversarial' (a GAN's two halves: see ``AdversarialLoss``). A loss declares the forms it suits;
user-registered losses name their tasks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .. import tasks
from ..errors import SpecError, unknown_name
from ..tasks.recommendation import RankedLoss


@dataclass(frozen=True)
class LossEntry:
    factory: Callable[..., Callable]  # (target_form, **params) -> loss
    forms: tuple[str, ...] | None  # the target forms it suits (built-in losses)
    params: tuple[str, ...] | None  # None: any keyword (user-registered losses)
    tasks: tuple[str, ...] | None = None  # the tasks it suits (user-registered losses; None: any)

    def suits(self, task) -> bool:
        if self.forms is not None:
            return task.target_form in self.forms
        return self.tasks is None or task.name in self.tasks


def _bpr(form: str, negatives: int = 1) -> RankedLoss:
    return RankedLoss("bpr", negatives)


def _sampled_softmax(form: str, negatives: int = 100) -> RankedLoss:
    return RankedLoss("softmax", negatives)


def _in_batch(form: str, correction: bool = True) -> RankedLoss:
    return RankedLoss("in_batch", 0, correction)


def _softmax(form: str) -> RankedLoss:
    return RankedLoss("softmax", 0)  # every item


def _one_hot(target, num_classes: int):
    import torch.nn.functional as F

    return F.one_hot(target, num_classes).to(dtype=_float_dtype())


def _float_dtype():
    import torch

    return torch.get_default_dtype()


def _pointwise(kind: str, form: str, **params) -> Callable:
    import torch.nn.functional as F

    fn = {"mse": F.mse_loss, "mae": F.l1_loss, "huber": F.huber_loss}[kind]
    if form == "classes":
        # Compare class probabilities with the one-hot target.
        return lambda output, target: fn(
            output.softmax(dim=-1), _one_hot(target, output.shape[-1]), **params
        )
    return lambda output, target: fn(output, target, **params)


def _mse(form: str) -> Callable:
    return _pointwise("mse", form)


def _mae(form: str) -> Callable:
    return _pointwise("mae", form)


def _huber(form: str, delta: float = 1.0) -> Callable:
    return _pointwise("huber", form, delta=delta)


def _weights(class_weights: list[float] | None, output):
    """The classes' weights as a tensor on the outputs' device (None: none), one per class."""
    if class_weights is None:
        return None
    import torch

    if len(class_weights) != output.shape[1 if output.ndim != 3 else -1]:
        raise SpecError(f"train.loss.class_weights: gives {len(class_weights)} weights, but the outputs have "
                        f"{output.shape[1 if output.ndim != 3 else -1]} classes; give one weight per class, in order")
    return torch.as_tensor(class_weights, dtype=torch.float32, device=output.device)


def _cross_entropy(form: str, label_smoothing: float = 0.0, class_weights: list[float] | None = None) -> Callable:
    import torch.nn.functional as F

    if form == "tokens":  # (B, L, V) logits against (B, L) next tokens
        return lambda output, target: F.cross_entropy(
            output.flatten(0, 1), target.flatten(), weight=_weights(class_weights, output),
            label_smoothing=label_smoothing
        )
    return lambda output, target: F.cross_entropy(output, target, weight=_weights(class_weights, output),
                                                  label_smoothing=label_smoothing)


def _dice(form: str, class_weights: list[float] | None = None) -> Callable:
    """One minus the soft Dice coefficient of each class (twice the overlap of the predicted
    probabilities and the true pixels over their sums, over the batch), averaged over the
    classes (weighted by ``class_weights``): a small class weighs as much as the background."""
    import torch.nn.functional as F

    def loss(output, target):
        probabilities = output.float().softmax(1)  # (B, K, H, W)
        truth = F.one_hot(target, output.shape[1]).permute(0, 3, 1, 2).to(probabilities.dtype)
        overlap = (probabilities * truth).sum((0, 2, 3))
        total = probabilities.sum((0, 2, 3)) + truth.sum((0, 2, 3))
        dice = (2 * overlap + 1.0) / (total + 1.0)
        weights = _weights(class_weights, output)
        return 1 - (dice.mean() if weights is None else (dice * weights).sum() / weights.sum())

    return loss


def _dice_ce(form: str, class_weights: list[float] | None = None) -> Callable:
    """The sum of the pixels' cross-entropy and the soft Dice loss (both weighted by
    ``class_weights``)."""
    import torch.nn.functional as F

    dice = _dice(form, class_weights)
    return lambda output, target: F.cross_entropy(output.float(), target, weight=_weights(class_weights, output)) \
        + dice(output, target)


def _ctc(form: str) -> Callable:
    """Connectionist temporal classification (Graves et al. 2006): minus the log of the summed
    probability of every alignment of the frames that spells the target (blank: id 0, which
    also pads targets), per target token, averaged over the rows; a target no alignment of
    the frames can spell adds nothing (zero_infinity)."""
    import torch
    import torch.nn.functional as F

    def loss(output, target):
        log_probs = output.float().log_softmax(-1).transpose(0, 1)  # (T, B, V)
        frames = torch.full((output.shape[0],), output.shape[1], dtype=torch.long, device=output.device)
        return F.ctc_loss(log_probs, target, frames, (target != 0).sum(1), blank=0, zero_infinity=True)

    return loss


def _bce(form: str, negatives: int | None = None) -> Callable:
    import torch.nn.functional as F

    if form == "interactions":
        return RankedLoss("bce", 4 if negatives is None else negatives)
    if negatives is not None:
        raise SpecError("train.loss.negatives: items drawn per interaction are for recommendation runs; remove it")
    if form == "labels":  # (N, L) logits against (N, L) sets of labels of 0/1
        return F.binary_cross_entropy_with_logits
    return lambda output, target: F.binary_cross_entropy_with_logits(
        output, _one_hot(target, output.shape[-1])
    )


def _hinge(form: str, margin: float = 1.0) -> Callable:
    import torch.nn.functional as F

    if form == "adversarial":
        return AdversarialLoss("hinge", margin=margin)
    return lambda output, target: F.multi_margin_loss(output, target, margin=margin)


def _centernet(form: str) -> Callable:
    raise SpecError("train.loss: centernet is the loss a detection run builds itself for its pictures' size "
                    "(layerforge.tasks.detection.centernet_loss)")


def _per_target(form: str) -> Callable:
    raise SpecError("train.loss: per_target is each target's own loss, which a multi-target run builds itself "
                    "(several data.target columns)")


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


def _non_saturating(form: str, label_smoothing: float = 0.0) -> AdversarialLoss:
    return AdversarialLoss("non_saturating", label_smoothing=label_smoothing)


def _wasserstein_gp(form: str, gp_weight: float = 10.0) -> AdversarialLoss:
    return AdversarialLoss("wasserstein", gp_weight=gp_weight)


def _kl_div(form: str, label_smoothing: float = 0.0) -> Callable:
    import torch.nn.functional as F

    def loss(output, target):
        classes = output.shape[-1]
        wanted = _one_hot(target, classes) * (1.0 - label_smoothing) + label_smoothing / classes
        return F.kl_div(output.log_softmax(dim=-1), wanted, reduction="batchmean")

    return loss


LOSSES: dict[str, LossEntry] = {
    "mse": LossEntry(_mse, ("classes", "values", "interactions"), ()),
    "mae": LossEntry(_mae, ("classes", "values", "interactions"), ()),
    "huber": LossEntry(_huber, ("classes", "values", "interactions"), ("delta",)),
    "cross_entropy": LossEntry(_cross_entropy, ("classes", "tokens", "pixels"), ("label_smoothing", "class_weights")),
    "bce": LossEntry(_bce, ("classes", "labels", "interactions"), ("negatives",)),
    "bpr": LossEntry(_bpr, ("interactions",), ("negatives",)),
    "sampled_softmax": LossEntry(_sampled_softmax, ("interactions",), ("negatives",)),
    "softmax": LossEntry(_softmax, ("interactions",), ()),
    "in_batch": LossEntry(_in_batch, ("interactions",), ("correction",)),
    "ctc": LossEntry(_ctc, ("alignments",), ()),
    "dice": LossEntry(_dice, ("pixels",), ("class_weights",)),
    "dice_ce": LossEntry(_dice_ce, ("pixels",), ("class_weights",)),
    "hinge": LossEntry(_hinge, ("classes", "adversarial"), ("margin",)),
    "non_saturating": LossEntry(_non_saturating, ("adversarial",), ("label_smoothing",)),
    "wasserstein_gp": LossEntry(_wasserstein_gp, ("adversarial",), ("gp_weight",)),
    "kl_div": LossEntry(_kl_div, ("classes",), ("label_smoothing",)),
    "per_target": LossEntry(_per_target, ("multi",), ()),
    "centernet": LossEntry(_centernet, ("boxes",), ()),
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
    LOSSES[name] = LossEntry(lambda form, **params: factory(**params), None, None, tuple(tasks) if tasks else None)


def _task(task):
    """A task class or object from a task, its class or its name."""
    return tasks.get(task) if isinstance(task, str) else task


def check(name: str, params: dict, task=None) -> list[str]:
    """Problems with using loss ``name`` with ``params`` for ``task`` (a name, class or object;
    None: any task). Empty when fine."""
    if name not in LOSSES:
        return [unknown_name("loss", name, LOSSES)]
    entry = LOSSES[name]
    problems = []
    if entry.params is not None:
        for key in params:
            if key not in entry.params:
                allowed = ", ".join(entry.params) or "none"
                problems.append(f"'{key}' is not a parameter of loss '{name}' (its parameters: {allowed})")
    if task is not None and not entry.suits(_task(task)):
        suited = [cls.name for cls in tasks.TASKS.values() if entry.suits(cls)]
        problems.append(f"loss '{name}' does not suit task '{_task(task).name}' (it suits: {', '.join(suited)})")
    return problems


def get(name: str, task, params: dict | None = None) -> Callable:
    """Build loss ``name`` for ``task`` (a name, class or object).

    Raises:
        SpecError: unknown loss, a parameter it does not take, or a task it does not suit.
    """
    params = dict(params or {})
    problems = check(name, params, task)
    if problems:
        raise SpecError([f"train.loss: {p}" for p in problems])
    return LOSSES[name].factory(_task(task).target_form, **params)


def for_task(loss_spec, task) -> Callable:
    """The loss a spec's ``train.loss`` names (``None``: the task's default) for ``task``, or
    the loss the task builds itself (``Task.own_loss``: several targets)."""
    own = task.own_loss(loss_spec) if isinstance(task, tasks.Task) else None
    if own is not None:
        return own
    if loss_spec is None:
        return get(task.default_loss, task)
    return get(loss_spec.name, task, loss_spec.params())
