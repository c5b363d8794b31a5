"""Which parameters learn, and how fast: ``model.freeze`` (with ``train.unfreeze_at``) and
``train.discriminative_lr``. ``layerforge.transfer`` says how they serve transfer learning."""

from __future__ import annotations

import fnmatch

import torch

from ..errors import SpecError
from .callbacks import Callback


def feature_keys_of(model) -> list[str]:
    """A network's feature-extractor keys (``Network.feature_keys``); every key for another module."""
    return model.feature_keys() if hasattr(model, "feature_keys") else list(model.state_dict())


def frozen_names(model: torch.nn.Module, patterns: list[str]) -> list[str]:
    """The parameters ``patterns`` name ('features', or fnmatch patterns of parameter names).

    Raises:
        SpecError: a pattern names no parameter (the message lists the model's layers).
    """
    names = [name for name, _ in model.named_parameters()]
    chosen: list[str] = []
    for pattern in patterns:
        if pattern == "features":
            keys = set(feature_keys_of(model))
            matched = [name for name in names if name in keys]
        else:
            matched = [name for name in names if fnmatch.fnmatchcase(name, pattern)
                       or fnmatch.fnmatchcase(name, f"{pattern}.*")]
        if not matched:
            layers = list(dict.fromkeys(layer_of(name) for name in names))
            raise SpecError(f"model.freeze: '{pattern}' names no parameter of this model; its layers: "
                            f"{', '.join(layers)} (or 'features')")
        chosen += [name for name in matched if name not in chosen]
    if len(chosen) == len(names):
        raise SpecError("model.freeze: freezes every parameter, so nothing would learn; leave the output layer out")
    return chosen


def layer_of(name: str) -> str:
    """The layer a parameter belongs to: up to its first index ('blocks.0' for
    'blocks.0.linear.weight', 'backbone.encoder.layer.3' for a pretrained block's), else its
    module's first two names ('backbone.embeddings') or its module ('head' for 'head.weight')."""
    parts = name.split(".")
    for i, part in enumerate(parts[:-1]):
        if part.isdigit():
            return ".".join(parts[: i + 1])
    return ".".join(parts[:2]) if len(parts) > 2 else parts[0]


def parameter_groups(model: torch.nn.Module, lr: float, factor: float | None) -> list[dict] | None:
    """Optimizer parameter groups for discriminative learning rates: one per layer, the last at
    ``lr`` and each earlier one at ``factor`` times the next one's (``lr_scale`` keeps the
    ratio for schedules). The output layer's group comes first. None when ``factor`` is None."""
    if factor is None:
        return None
    layers: dict[str, list] = {}
    for name, parameter in model.named_parameters():
        layers.setdefault(layer_of(name), []).append(parameter)
    depth = len(layers)
    groups = [{"params": params, "lr": lr * factor ** (depth - 1 - i), "lr_scale": factor ** (depth - 1 - i)}
              for i, params in enumerate(layers.values())]
    return groups[::-1]


class Freezer(Callback):
    """Keeps the parameters of ``model.freeze`` from learning until epoch ``unfreeze_at``
    (1-based; None: for the whole run). They stay in the optimizer with no gradient, which it
    skips, so unfreezing needs no new optimizer and resuming finds the same state."""

    def __init__(self, model: torch.nn.Module, names: list[str], unfreeze_at: int | None):
        self.parameters = [p for n, p in model.named_parameters() if n in set(names)]
        self.unfreeze_at = unfreeze_at
        self.set(frozen=True)

    def set(self, frozen: bool) -> None:
        for parameter in self.parameters:
            parameter.requires_grad_(not frozen)

    def on_epoch_start(self, trainer, epoch: int) -> None:
        self.set(frozen=self.unfreeze_at is None or epoch + 1 < self.unfreeze_at)

    def on_fit_end(self, trainer) -> None:
        self.set(frozen=False)
