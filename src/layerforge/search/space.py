"""A trial's values: each key of ``search.space`` (and of the model family's architecture space)
sampled through an Optuna trial, as settings of the spec.

Optuna's choices must be None, booleans, numbers or strings; other choices (lists such as
``[[64], [128, 64]]``) are offered as their JSON text and read back, so importances and plots
still show what each was.
"""

from __future__ import annotations

import json
from typing import Any

PRIMITIVE = (type(None), bool, int, float, str)


def _offered(choices: list) -> list:
    return [c if isinstance(c, PRIMITIVE) else json.dumps(c) for c in choices]


def _taken(value: Any, choices: list) -> Any:
    for choice, offered in zip(choices, _offered(choices)):
        if offered == value and type(offered) is type(value):
            return choice
    return value


def suggest(trial, name: str, distribution: dict) -> Any:
    """One value of ``distribution`` (a spec's form: {'log_uniform': [a, b]}, {'choice': [...]},
    or a family's {'repeat': {'length': [a, b], 'choice': [...]}})."""
    (kind, bounds), = distribution.items()
    if kind == "choice":
        return _taken(trial.suggest_categorical(name, _offered(bounds)), bounds)
    if kind == "repeat":
        length = trial.suggest_int(f"{name}.length", *bounds["length"])
        return [_taken(trial.suggest_categorical(f"{name}[{i}]", _offered(bounds["choice"])), bounds["choice"])
                for i in range(length)]
    low, high = bounds
    if kind in ("uniform", "log_uniform"):
        return trial.suggest_float(name, float(low), float(high), log=kind == "log_uniform")
    return trial.suggest_int(name, int(low), int(high), log=kind == "log_int_uniform")


def spaces(search, model) -> dict[str, dict]:
    """Every key a trial sets and its distribution: the architecture's (``model.*``) first, then
    ``search.space``, whose keys win where both name one."""
    found = {}
    if search.architecture is not None:
        found.update({f"model.{key}": distribution for key, distribution in model.architecture_space().items()})
    found.update({key: {d.kind: getattr(d, d.kind)} for key, d in search.space.items()})
    return found


def sample(trial, search, model) -> dict[str, Any]:
    """Spec key -> value for one trial."""
    return {key: suggest(trial, key, distribution) for key, distribution in spaces(search, model).items()}


def grid(search) -> dict[str, list]:
    """The grid sampler's search space: every choice, every integer of a range."""
    found = {}
    for key, distribution in search.space.items():
        if distribution.kind == "choice":
            found[key] = _offered(distribution.choice)
        else:
            low, high = distribution.int_uniform
            found[key] = list(range(low, high + 1))
    return found


def grid_size(search) -> int:
    size = 1
    for values in grid(search).values():
        size *= len(values)
    return size
