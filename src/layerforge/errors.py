"""User-facing errors. Each says what happened, what was expected and how to fix it."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = [
    "LayerforgeError",
    "SpecError",
    "DataError",
    "CheckpointError",
    "TrainingError",
    "OutputError",
    "did_you_mean",
]


class LayerforgeError(Exception):
    """Base class of every error layerforge raises on purpose."""


class SpecError(LayerforgeError, ValueError):
    """A spec is malformed. ``problems`` holds one line per problem, each with its key path."""

    def __init__(self, problems: list[str] | str, source: str | None = None):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        self.source = source
        where = f" in {source}" if source else ""
        count = len(self.problems)
        head = f"{count} problem{'s' if count != 1 else ''} in the spec{where}:"
        super().__init__("\n".join([head, *(f"  - {p}" for p in self.problems)]))


class DataError(LayerforgeError, ValueError):
    """Data cannot be read or does not match what the spec or the trained model expects."""


class CheckpointError(LayerforgeError, ValueError):
    """A checkpoint or run directory is missing, corrupt, truncated or incompatible."""


class TrainingError(LayerforgeError, RuntimeError):
    """Training cannot go on, for example because the loss became non-finite."""


class ExportError(LayerforgeError, RuntimeError):
    """A model that cannot be exported, or whose export does not compute what it computes."""


class OutputError(LayerforgeError, ValueError):
    """A result cannot be written where it was asked to go (a directory, a read-only place)."""


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """Return `` — did you mean 'x'?`` when a choice is close to ``name``, else ``""``."""
    close = difflib.get_close_matches(str(name), list(choices), n=1, cutoff=0.6)
    return f" — did you mean '{close[0]}'?" if close else ""


def unknown_name(kind: str, name: str, choices: Iterable[str]) -> str:
    """Message for a name that is not in a registry, listing the valid ones."""
    choices = sorted(choices)
    return f"unknown {kind} '{name}'{did_you_mean(name, choices)} (choices: {', '.join(choices)})"
