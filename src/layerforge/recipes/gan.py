"""The GAN recipe: a generator and a discriminator with their own optimizers, trained in turn;
the classifier that judges generated rows (trained first, on the real rows); and the watch that
reports divergence and mode collapse as doctor findings."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from ..doctor.verdicts import finding, worst
from ..errors import CheckpointError
from ..models.gan import Judge
from ..spec.schema import TrainSpec
from ..tasks.classification import ClassificationTask
from ..tasks.generation import JUDGE_FILE, JUDGE_LAYERS, judge_classifier, load_judge
from ..training import losses
from ..training.callbacks import Callback
from ..training.checkpoint import save_weights
from ..training.optim import build_optimizer
from . import supervised
from .scaffold import Scaffold


def gradient_penalty(critic, real: torch.Tensor, fake: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
    """WGAN-GP: ``(|grad_x D(x)| - 1)^2`` at random points between real and generated rows."""
    alpha = torch.rand(len(real), *([1] * (real.ndim - 1)), device=real.device, dtype=real.dtype)
    mixed = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    (grads,) = torch.autograd.grad(critic(mixed, labels).sum(), mixed, create_graph=True)
    return (grads.flatten(1).norm(dim=1) - 1).pow(2).mean()


def _clip(parameters, clip_grad_norm: float | None, clip_grad_value: float | None) -> None:
    if clip_grad_norm is not None:
        torch.nn.utils.clip_grad_norm_(parameters, clip_grad_norm)
    if clip_grad_value is not None:
        torch.nn.utils.clip_grad_value_(parameters, clip_grad_value)


def optimizers(model, train_spec, device: str) -> dict[str, torch.optim.Optimizer]:
    """``train.optimizer`` for the generator; ``train.discriminator_optimizer`` (default: the
    same settings) for the discriminator. The names are their parts in a checkpoint."""
    g_spec = train_spec.optimizer
    d_spec = train_spec.discriminator_optimizer or g_spec
    return {
        "optimizer": build_optimizer(g_spec.name, g_spec.params(), model.generator.parameters(), device=device),
        "discriminator_optimizer": build_optimizer(d_spec.name, d_spec.params(), model.discriminator.parameters(),
                                                   device=device),
    }


def train_gan_epoch(model, batches, loss, g_opt, d_opt, *, discriminator_steps: int = 1,
                    lr_at: Callable[[int], float] | None = None, clip_grad_norm: float | None = None,
                    clip_grad_value: float | None = None,
                    on_batch_end: Callable[[int, torch.Tensor], None] | None = None) -> tuple[torch.Tensor, list[int]]:
    """One pass over the real rows: for each batch, ``discriminator_steps`` discriminator updates
    on real against freshly generated rows, then one generator update.

    Args:
        loss: an ``AdversarialLoss``.
        lr_at: the schedule's rate for the generator; the discriminator's rate moves with it
            in proportion to its own base rate.

    Returns:
        (steps, 2) losses (discriminator, generator) on the device, and the rows in every step.
    """
    model.train()
    generator, critic = model.generator, model.discriminator
    g_base, d_base = g_opt.defaults["lr"], d_opt.defaults["lr"]
    g_params = [p for p in generator.parameters() if p.requires_grad]
    d_params = [p for p in critic.parameters() if p.requires_grad]
    conditional = model.num_classes > 0
    step_losses, sizes = [], []
    for step, (inputs, y) in enumerate(batches):
        real = inputs[0]
        labels = y if conditional else None
        if lr_at is not None:
            scale = lr_at(step) / g_base
            for group in g_opt.param_groups:
                group["lr"] = g_base * scale
            for group in d_opt.param_groups:
                group["lr"] = d_base * scale
        for _ in range(discriminator_steps):
            z = torch.randn(len(real), model.latent_size, device=real.device, dtype=real.dtype)
            fake = generator(z, labels)
            d_loss = loss.discriminator(critic(real, labels), critic(fake.detach(), labels))
            if loss.gp_weight:
                d_loss = d_loss + loss.gp_weight * gradient_penalty(critic, real, fake.detach(), labels)
            d_opt.zero_grad(set_to_none=True)
            d_loss.backward()
            _clip(d_params, clip_grad_norm, clip_grad_value)
            d_opt.step()
        critic.requires_grad_(False)  # the generator's update needs no discriminator gradients
        g_loss = loss.generator(critic(fake, labels))
        g_opt.zero_grad(set_to_none=True)
        g_loss.backward()
        critic.requires_grad_(True)
        _clip(g_params, clip_grad_norm, clip_grad_value)
        g_opt.step()
        model.update_ema()
        step_losses.append(torch.stack([d_loss.detach(), g_loss.detach()]))
        sizes.append(len(real))
        if on_batch_end is not None:
            on_batch_end(step, g_loss)
    return torch.stack(step_losses), sizes


def fit(scaffold: Scaffold, model, train, val=None, *, resume: bool = False) -> None:
    """Train a GAN on the real rows ``train = (inputs, y)`` (``y``: classes, for conditioning);
    judge generated rows against ``val`` after every epoch."""
    spec, task = scaffold.spec, scaffold.task
    model, batches, validation = scaffold.ready(model, train, val)
    loss_fn = losses.for_task(spec.loss, task)
    parts = optimizers(model, spec, scaffold.device.type)
    g_opt, d_opt = parts["optimizer"], parts["discriminator_optimizer"]
    validate = None if validation is None else (lambda: task.evaluate(model, *validation, loss_fn))
    with scaffold.fitting(model, parts, loss_fn, len(batches), has_val=validation is not None, resume=resume):
        for epoch in scaffold.epochs_left():
            step_losses, sizes = train_gan_epoch(
                model, batches, loss_fn, g_opt, d_opt, discriminator_steps=spec.discriminator_steps,
                lr_at=scaffold.lr_at(epoch), clip_grad_norm=spec.clip_grad_norm,
                clip_grad_value=spec.clip_grad_value, on_batch_end=scaffold.batch_hook(),
            )
            scaffold.end_epoch(epoch, step_losses, sizes, validate)


# -- the judge ---------------------------------------------------------------------------------

JUDGE_EPOCHS = 60


def fit_judge(prepared, seed: int, device: str) -> tuple[torch.nn.Module, dict]:
    """Train the MLP classifier that judges generated rows, on the real training rows.

    Returns:
        The classifier and what model.json records about it (layers, test accuracy).
    """
    splits, classes = prepared.splits, prepared.task.classes
    task = ClassificationTask(classes)
    torch.manual_seed(seed)
    classifier = judge_classifier(prepared.inputs, len(classes))
    validation = splits["val"] if len(splits["val"][1]) else None
    spec = TrainSpec(epochs=JUDGE_EPOCHS, batch_size=64, optimizer={"name": "adam", "lr": 1e-3}, device=device,
                     early_stopping={"monitor": "val_accuracy", "patience": 15} if validation is not None else None)
    scaffold = Scaffold(spec, task, seed=seed)
    supervised.fit(scaffold, classifier, splits["train"], validation)
    scores = {}
    if len(splits["test"][1]):
        scores = task.evaluate(classifier, *scaffold.place(splits["test"]), scaffold.loss_fn_)
    info = {"layers": JUDGE_LAYERS, "epochs": scaffold.epoch, "test_accuracy": scores.get("accuracy"),
            "trained_on": "the real training rows"}
    return classifier.cpu(), info


def setup(task, prepared, run_dir: Path, device: str, previous: dict) -> dict:
    """Give the task its judge: trained now on the real training rows (and saved beside the
    run), or loaded when the run resumes. Returns model.json's ``evaluator`` entry."""
    if not task.classes:
        task.judge = Judge()
        return {"evaluator": None}
    record = previous.get("evaluator")
    if isinstance(record, dict) and record.get("layers") == JUDGE_LAYERS and (Path(run_dir) / JUDGE_FILE).is_file():
        try:
            task.judge = load_judge(run_dir, record["layers"], prepared.inputs, len(task.classes))
            return {"evaluator": record}
        except CheckpointError:
            pass  # a damaged judge is trained again, from the same seed
    classifier, record = fit_judge(prepared, prepared.seed, device)
    save_weights(Path(run_dir) / JUDGE_FILE, classifier.state_dict())
    task.judge = Judge(classifier)
    return {"evaluator": record}


# -- the watch ---------------------------------------------------------------------------------

class GANWatch(Callback):
    """Says when a GAN diverges or collapses, instead of letting it fail silently.

    Findings (each once, with the epoch it began, in the doctor's format): the discriminator
    wins outright (its loss near zero while the generator's climbs), mode collapse (generated
    rows spread far less than real ones, or classes missing), and a Fréchet distance that has
    grown far past its best.
    """

    def __init__(self, patience: int = 3, warmup: int = 10):
        self.patience, self.warmup = patience, warmup
        self.findings: list[dict] = []
        self._streaks: dict[str, int] = {}
        self._best_frechet: float | None = None
        self._best_diversity: float | None = None

    def on_fit_start(self, trainer) -> None:
        """Start afresh; a resumed run replays its history, so findings survive a resume."""
        self.findings, self._streaks, self._best_frechet, self._best_diversity = [], {}, None, None
        for record in trainer.history_:
            self.on_epoch_end(trainer, record)

    def _flag(self, kind: str, condition: bool, epoch: int, message: str, fix: str) -> None:
        streak = self._streaks.get(kind, 0) + 1 if condition else 0
        self._streaks[kind] = streak
        if streak == self.patience and not any(f["kind"] == kind for f in self.findings):
            self.findings.append(finding(kind, "warning", message, fix, epoch=epoch - self.patience + 1))

    def on_epoch_end(self, trainer, record: dict) -> None:
        epoch = record["epoch"]
        spec = trainer.spec
        if trainer.loss_fn_.kind in ("non_saturating", "hinge"):
            d_lr = (spec.discriminator_optimizer or spec.optimizer).lr
            self._flag("discriminator_wins", record["train_d_loss"] < 0.05 and record["train_g_loss"] > 4.0, epoch,
                       f"the discriminator separates real from generated rows almost perfectly (loss "
                       f"{record['train_d_loss']:.3f}) and the generator's loss is {record['train_g_loss']:.2f}: "
                       f"the generator gets no useful gradient (train.discriminator_optimizer.lr {d_lr:g} against "
                       f"train.optimizer.lr {spec.optimizer.lr:g})",
                       "lower the discriminator's learning rate (train.discriminator_optimizer.lr), use "
                       "model.spectral_norm: true, or train.loss: {name: non_saturating, label_smoothing: 0.1}")
        if "val_diversity" in record:
            # a young generator's rows are alike too; judge it once it had time, or if it got worse
            diversity, coverage = record["val_diversity"], record.get("val_coverage", 1.0)
            self._best_diversity = max(self._best_diversity or 0.0, diversity)
            settled = epoch >= self.warmup or diversity < 0.5 * self._best_diversity
            evidence = (f"generated rows spread only {diversity:.2f}x as much as real ones" if diversity < 0.25
                        else f"the real-data classifier finds only {coverage:.0%} of the classes among them")
            self._flag("mode_collapse", settled and (diversity < 0.25 or coverage < 0.7), epoch,
                       f"mode collapse: {evidence}",
                       "model.ema, lower learning rates, train.loss: wasserstein_gp, or model.conditional: true")
        if "val_frechet" in record:
            value = record["val_frechet"]
            if self._best_frechet is None or value < self._best_frechet:
                self._best_frechet = value
            self._flag("diverging", value > 2 * self._best_frechet + 1e-9, epoch,
                       f"the Fréchet distance rose to {value:.3g} from its best {self._best_frechet:.3g}: training "
                       "is diverging",
                       "train.early_stopping: {monitor: val_frechet} to keep the best weights, or lower the "
                       "learning rates")

    def diagnosis(self, scaffold, *, failure: str | None = None, early_stopping: bool = False) -> dict:
        """The findings, as diagnosis.json records them."""
        return {"worst": worst(self.findings), "findings": list(self.findings), "failure": failure,
                "measured_steps": 0, "layers": [], "activations": []}


def monitor(train_spec, path) -> GANWatch:
    """The watch for divergence and collapse (a GAN's losses do not read like one loss, so the
    doctor's gradient verdicts do not apply)."""
    return GANWatch()
