"""Verdicts: from measurements and the epoch history to findings a person can act on.

Each finding has a ``kind``, a ``severity`` (info, warning, error), a ``message`` with the
evidence (numbers, layer names, epochs) and a ``fix``: a concrete change in spec terms.
"""

from __future__ import annotations

import math
import statistics
from typing import Any, TypedDict

from .. import tasks

SEVERITIES = ("info", "warning", "error")

# thresholds, named so that the rules read as sentences
VANISHING_RATIO = 1e-3  # a layer's RMS gradient below this fraction of the largest layer's
EXPLODING_NORM = 1e3  # a layer's gradient norm above this
DEAD_WARNING, DEAD_INFO = 0.5, 0.2
SATURATED_WARNING = 0.5
UPDATE_TOO_HIGH, UPDATE_TOO_LOW = 0.1, 1e-6
OVERFIT_RISE = 0.10  # validation loss this far above its best
GAP_RATIO = 3.0  # the best validation loss at least this many times the final training loss,
GAP_SHARE = 0.25  # and above it by this share of the chance (or first-epoch) loss
SPIKE_FACTOR = 5.0


class Finding(TypedDict):
    """One verdict, for every kind of run: what (``kind``), how bad (``severity``: info,
    warning, error), the ``message`` with its evidence in words, a ``fix`` in spec terms, and the
    ``evidence`` as numbers, layer names and epochs."""

    kind: str
    severity: str
    message: str
    fix: str
    evidence: dict[str, Any]


def finding(kind: str, severity: str, message: str, fix: str, **evidence: Any) -> Finding:
    return {"kind": kind, "severity": severity, "message": message, "fix": fix, "evidence": evidence}


def _finite(value) -> bool:
    """A measured number (non-finite numbers are stored as null)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _median(values: list[float]) -> float:
    values = [v for v in values if _finite(v)]
    return statistics.median(values) if values else float("nan")


def per_layer(measurements: list[dict], key: str) -> dict[str, float]:
    """Median over sampled steps of ``key`` for each layer, in forward order."""
    names = list(dict.fromkeys(n for m in measurements for n in m.get(key, {})))
    return {name: _median([m[key].get(name) for m in measurements if key in m]) for name in names}


def late(measurements: list[dict]) -> list[dict]:
    """The second half of the run: a network's state once the first steps are behind it."""
    return measurements[len(measurements) // 2 :] or measurements


def _list(names: list[str], limit: int = 4) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def diagnose(measurements: list[dict], history: list[dict], *, task=None, classes: int | None = None,
             rollbacks: list[dict] = (), failure: str | None = None, early_stopping: bool = False) -> list[Finding]:
    """Every finding the evidence supports, most severe first.

    Args:
        task: the run's task (a name, class or object); it gives the loss of a model that
            learned nothing, for the underfitting verdict.
        classes: how many classes the data has.
    """
    findings: list[dict] = []
    findings += _gradients(measurements, failure)
    findings += _units(late(measurements))
    findings += _learning_rate(measurements, history)
    findings += _fit(history, _chance(task, classes), early_stopping)
    findings += _spikes(measurements, rollbacks)
    order = {s: i for i, s in enumerate(reversed(SEVERITIES))}
    return sorted(findings, key=lambda f: order[f["severity"]])


def _gradients(measurements: list[dict], failure: str | None) -> list[dict]:
    found = []
    rms = per_layer(measurements, "grad_rms")
    names = [n for n, v in rms.items() if math.isfinite(v)]
    if len(names) >= 2:
        largest = max(rms[n] for n in names)
        small = [n for n in names if rms[n] < VANISHING_RATIO * largest]
        if small and largest > 0 and names.index(small[0]) < len(names) - 1:
            ratio = rms[small[0]] / largest
            found.append(finding(
                "vanishing_gradients", "warning",
                f"gradients vanish on the way back: the RMS gradient of {_list(small)} is "
                f"{ratio:.1e} times that of the layer with the largest ({max(names, key=rms.get)}); "
                "those layers barely learn",
                "use model.activation: relu (or gelu) instead of sigmoid/tanh, model.init: kaiming, "
                "model.norm: batch, or fewer layers",
                layers=small, ratio=ratio,
            ))
    norms = per_layer(measurements, "grad_norm")
    peak = {}
    for name in norms:
        values = [m["grad_norm"].get(name, 0.0) for m in measurements]
        peak[name] = math.inf if any(not _finite(v) for v in values) else max(values, default=0.0)
    exploding = [n for n, v in peak.items() if not math.isfinite(v) or v > EXPLODING_NORM]
    nonfinite = failure is not None and "non-finite" in failure
    if exploding or nonfinite:
        where = f" (gradient norms up to {max(peak[n] for n in exploding):.3g} in {_list(exploding)})" \
            if exploding else ""
        found.append(finding(
            "exploding_gradients", "error" if nonfinite else "warning",
            ("the loss became non-finite" if nonfinite else "gradients explode") + where,
            "lower train.optimizer.lr (try 10x lower or `layerforge lr-find`), set train.clip_grad_norm: 1.0, "
            "or train.on_divergence: rollback",
            layers=exploding, failure=failure,
        ))
    return found


def unit_health(measurements: list[dict]) -> dict[str, dict[str, float]]:
    """Median share of dead units and of saturated outputs per activation module, in forward
    order (NaN where a module has no such measure)."""
    names = list(dict.fromkeys(n for m in measurements for n in m.get("activations", {})))
    health = {}
    for name in names:
        stats = [m["activations"][name] for m in measurements if name in m.get("activations", {})]
        health[name] = {key: _median([s.get(key) for s in stats]) for key in ("dead", "saturated")}
    return health


def _units(measurements: list[dict]) -> list[dict]:
    found = []
    for name, health in unit_health(measurements).items():
        dead = health["dead"]
        if math.isfinite(dead) and dead >= DEAD_INFO:
            found.append(finding(
                "dead_units", "warning" if dead >= DEAD_WARNING else "info",
                f"{dead:.0%} of the units after {name} are dead: their ReLU outputs 0 for every row of a batch, "
                "so they pass no gradient and stop learning",
                "lower train.optimizer.lr, use model.activation: leaky_relu (or gelu), model.init: kaiming, "
                "or model.norm: batch",
                layer=name, fraction=dead,
            ))
        saturated = health["saturated"]
        if math.isfinite(saturated) and saturated >= SATURATED_WARNING:
            found.append(finding(
                "saturation", "warning",
                f"{saturated:.0%} of the outputs of {name} sit at the flat ends of their activation, "
                "where its gradient is nearly 0",
                "use model.activation: relu or gelu, model.norm: batch or layer, model.init: xavier, "
                "or standardised inputs",
                layer=name, fraction=saturated,
            ))
    return found


def _learning_rate(measurements: list[dict], history: list[dict]) -> list[dict]:
    """Steps far too large or too small for the weights. Weights that do not move at all have
    no gradient (dead units, vanishing gradients): that is not the learning rate's doing."""
    found = []
    ratios = per_layer(measurements, "update_ratio")
    typical = _median(list(ratios.values()))
    lr = history[0].get("lr") if history else None
    lr = lr if _finite(lr) else None
    losses = [r["train_loss"] for r in history if _finite(r.get("train_loss"))]
    if math.isfinite(typical) and typical > UPDATE_TOO_HIGH:
        found.append(finding(
            "learning_rate_too_high", "warning",
            f"each step moves the weights by {typical:.1%} of their size (healthy is about 0.1%)"
            + (f" at learning rate {lr:g}" if lr else ""),
            "lower train.optimizer.lr 10x, or find one with `layerforge lr-find SPEC`",
            update_ratio=typical,
        ))
    elif math.isfinite(typical) and 0 < typical < UPDATE_TOO_LOW and len(losses) >= 2 \
            and losses[-1] > 0.95 * losses[0]:
        found.append(finding(
            "learning_rate_too_low", "warning",
            f"each step moves the weights by only {typical:.1e} of their size and the training loss fell by "
            f"{1 - losses[-1] / losses[0]:.1%} in {len(losses)} epochs",
            "raise train.optimizer.lr 10x, or find one with `layerforge lr-find SPEC`",
            update_ratio=typical,
        ))
    elif len(losses) >= 4 and losses[-1] > losses[0] * 1.5:
        found.append(finding(
            "learning_rate_too_high", "warning",
            f"the training loss rose from {losses[0]:.4g} to {losses[-1]:.4g}",
            "lower train.optimizer.lr 10x, or find one with `layerforge lr-find SPEC`",
        ))
    return found


def _chance(task, classes: int | None) -> tuple[float, str] | None:
    if task is None:
        return None
    return (tasks.get(task) if isinstance(task, str) else task).chance_loss(classes)


def _fit(history: list[dict], chance: tuple[float, str] | None, early_stopping: bool) -> list[dict]:
    found = []
    train = [r.get("train_loss") for r in history]
    validated = [r for r in history if "val_loss" in r]  # every epoch, or every train.validate_every
    val, epochs = [r["val_loss"] for r in validated], [r["epoch"] for r in validated]
    beside = [r.get("train_loss") for r in validated]
    if len(validated) >= 5 and all(_finite(v) for v in val + beside):
        best = min(range(len(val)), key=val.__getitem__)
        after = len(val) - 1 - best
        rise = val[-1] / val[best] - 1 if val[best] > 0 else 0.0
        if after >= max(3, len(val) // 10) and rise > OVERFIT_RISE and beside[-1] < beside[best]:
            kept = early_stopping
            found.append(finding(
                "overfitting", "info" if kept else "warning",
                f"overfitting from epoch {epochs[best] + 1}: validation loss rose from {val[best]:.4g} (epoch "
                f"{epochs[best]}) to {val[-1]:.4g} (epoch {epochs[-1]}) while training loss fell from "
                f"{beside[best]:.4g} to {beside[-1]:.4g}" + ("; early stopping kept the best epoch's weights" if kept
                                                            else ""),
                "train.early_stopping: {monitor: val_loss, patience: 10, restore_best: true}, more "
                "model.dropout, train.optimizer.weight_decay, a smaller model, more data or data.augment",
                began=epochs[best] + 1, best_epoch=epochs[best], best_val_loss=val[best], last_val_loss=val[-1],
            ))
    if not found and validated:
        found += _gap(train, val, chance, early_stopping)
    if history and _finite(train[-1]) and chance is not None:
        chance, doing = chance
        if train[-1] > 0.8 * chance:
            found.append(finding(
                "underfitting", "warning",
                f"the training loss ends at {train[-1]:.4g}, close to that of {doing} ({chance:.4g}): "
                "the model has not learned the training data",
                "train longer (train.epochs), raise train.optimizer.lr, use a bigger model (model.layers), "
                "or less regularisation (model.dropout, train.l2)",
                final_train_loss=train[-1], chance_loss=chance,
            ))
            window = max(5, len(train) // 4)
            if len(train) >= 2 * window and abs(train[-window] - train[-1]) < 0.01 * abs(train[-window]):
                found.append(finding(
                    "plateau", "warning",
                    f"the training loss has not moved in the last {window} epochs ({train[-window]:.4g} → "
                    f"{train[-1]:.4g}) although the model underfits",
                    "raise train.optimizer.lr, use train.schedule: onecycle, or check the data and target",
                    epochs=window,
                ))
    return found


def _gap(train: list, val: list, chance: tuple[float, str] | None, early_stopping: bool) -> list[dict]:
    """Memorisation: the training loss fell far below anything the validation loss reached,
    whether or not the validation loss rose afterwards (a large generalisation gap)."""
    if len(train) < 5 or not all(_finite(v) for v in val + train) or train[0] <= 0:
        return []
    best = min(val)
    gap = best - train[-1]
    # how large a gap must be: a share of what a model that learned nothing scores, when the
    # task knows it; else of the loss training started from
    scale, of = (chance[0], f"the loss of {chance[1]}") if chance else (train[0], "the first epoch's training loss")
    learned = train[-1] < 0.5 * train[0]
    if not (learned and best > GAP_RATIO * train[-1] and gap > GAP_SHARE * scale):
        return []
    return [finding(
        "overfitting", "info" if early_stopping else "warning",
        f"a large generalisation gap: the training loss fell to {train[-1]:.4g} but the validation loss never "
        f"went below {best:.4g} (a gap of {gap:.4g}, {gap / scale:.0%} of {of}, {scale:.4g}): the model "
        "memorises the training rows instead of learning what carries over to new ones",
        "more data or data.augment, a smaller model (model.layers), more model.dropout, "
        "train.optimizer.weight_decay or train.l2",
        gap=gap, final_train_loss=train[-1], best_val_loss=best,
    )]


def _spikes(measurements: list[dict], rollbacks: list[dict]) -> list[dict]:
    found = []
    losses = [(m["epoch"], m["loss"]) for m in measurements if _finite(m["loss"])]
    spikes = []
    for i in range(5, len(losses)):
        typical = statistics.median(v for _, v in losses[i - 5 : i])
        # relative to the recent level, and large against where training started (not 1e-6 -> 1e-5)
        if typical > 0 and losses[i][1] > SPIKE_FACTOR * typical and losses[i][1] > 0.1 * losses[0][1]:
            spikes.append(losses[i][0])
    if spikes:
        found.append(finding(
            "loss_spikes", "info",
            f"the batch loss jumped above {SPIKE_FACTOR:g}x its recent level in epoch(s) "
            f"{_list([str(e) for e in dict.fromkeys(spikes)], 6)}",
            "train.clip_grad_norm: 1.0, a lower train.optimizer.lr, or a warmup (train.schedule.warmup_epochs)",
            epochs=list(dict.fromkeys(spikes)),
        ))
    for rollback in rollbacks:
        found.append(finding(
            "rollback", "warning",
            f"epoch {rollback['epoch']}: {rollback['reason']}; went back to the weights of epoch "
            f"{rollback['restored_epoch']} and lowered the learning rate from {rollback['lr_before']:g} to "
            f"{rollback['lr_after']:g}",
            "start with the lower train.optimizer.lr, or add train.clip_grad_norm",
            **rollback,
        ))
    return found


def worst(findings: list[dict]) -> str | None:
    """The highest severity among ``findings`` (None when there are none)."""
    levels = [SEVERITIES.index(f["severity"]) for f in findings]
    return SEVERITIES[max(levels)] if levels else None
