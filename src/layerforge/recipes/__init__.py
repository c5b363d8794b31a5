"""Training recipes: flat, readable loops over a shared ``Scaffold``.

A recipe is a module with ``fit(scaffold, model, train, val, resume=...)`` (the loop),
``monitor(train_spec, path)`` (the callback that judges the run: the doctor, or a GAN's watch)
and ``setup(task, prepared, run_dir, device, previous)`` (what the run needs before its first
epoch). A task names its recipe (``Task.recipe``).
"""

from __future__ import annotations

from types import ModuleType

from ..errors import SpecError, unknown_name
from . import gan, supervised

RECIPES: dict[str, ModuleType] = {"supervised": supervised, "gan": gan}


def get(name: str) -> ModuleType:
    if name not in RECIPES:
        raise SpecError(unknown_name("training recipe", name, RECIPES))
    return RECIPES[name]


__all__ = ["RECIPES", "get"]
