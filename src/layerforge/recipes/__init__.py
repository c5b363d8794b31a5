"""Training recipes: flat, readable loops over a shared ``Scaffold``.

A recipe's loop is a module with ``fit(scaffold, model, train, val, resume=...)`` (the loop),
``monitor(train_spec, path)`` (the callback that judges the run: the doctor, or a GAN's watch)
and ``setup(task, prepared, run_dir, device, previous)`` (what the run needs before its first
epoch). A task names its recipe (``Task.recipe``); the registry entry says what the recipe can
do (``Abilities``), so that spec validation and the API ask it instead of comparing names, and
validating a spec never imports the loops (or torch).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType

from ..errors import SpecError, unknown_name


@dataclass(frozen=True)
class Abilities:
    """What a recipe's training can do besides its loop.

    Attributes:
        adversarial: train on adversarial examples too (``train.adversarial``).
        precision: mixed precision and ``torch.compile`` (``train.precision``, ``train.compile``).
        fairness: reweigh the training rows by group (``train.fairness``).
        discriminative_lr: smaller learning rates for earlier layers (``train.discriminative_lr``).
        distributed: data-parallel training over processes (``--nproc``).
        streaming: rows read from their file a chunk at a time (``data.streaming``).
    """

    adversarial: bool = False
    precision: bool = False
    fairness: bool = False
    discriminative_lr: bool = False
    distributed: bool = False
    streaming: bool = False


def _supervised() -> ModuleType:
    from . import supervised

    return supervised


def _gan() -> ModuleType:
    from . import gan

    return gan


@dataclass(frozen=True)
class Recipe:
    """A registered training recipe: its name, what it trains (for messages: 'one network with
    one loss'), its abilities, and ``loop``, which imports the module that trains."""

    name: str
    trains: str
    abilities: Abilities
    loop: Callable[[], ModuleType]

    def fit(self, *args, **kwargs):
        return self.loop().fit(*args, **kwargs)

    def monitor(self, *args, **kwargs):
        return self.loop().monitor(*args, **kwargs)

    def setup(self, *args, **kwargs):
        return self.loop().setup(*args, **kwargs)


RECIPES: dict[str, Recipe] = {
    "supervised": Recipe("supervised", "one network with one loss",
                         Abilities(adversarial=True, precision=True, fairness=True, discriminative_lr=True,
                                   distributed=True, streaming=True), _supervised),
    "gan": Recipe("gan", "two networks, a generator against a discriminator", Abilities(), _gan),
}


def get(name: str) -> Recipe:
    if name not in RECIPES:
        raise SpecError(unknown_name("training recipe", name, RECIPES))
    return RECIPES[name]


__all__ = ["RECIPES", "Abilities", "Recipe", "get"]
