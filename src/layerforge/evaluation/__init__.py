"""Judging a spec beyond one run: how its metrics move with the seed (``seeds``), across folds
(``cv``), and several runs combined into one (``ensemble``). What the groups of runs share is
here: their record, their metrics gathered per split, and their curves overlaid."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..figures import charts
from ..run.directory import Run


def run_line(label: str, scores: dict, prefix: str = "") -> str:
    """A finished run in one line: its label and its first three scores (``prefix`` names their split).

    >>> run_line("fold1", {"loss": 0.25, "accuracy": 0.9, "f1_macro": 0.88, "nll": 0.3}, "val ")
    'fold1: val loss 0.25, val accuracy 0.9, val f1_macro 0.88'
    """
    return f"{label}: " + ", ".join(f"{prefix}{key} {value:.4g}" for key, value in list(scores.items())[:3]
                                    if isinstance(value, (int, float)))


@dataclass
class RunGroup:
    """Runs of one spec kept together, with the summary of their metrics."""

    path: Path
    runs: list[Run] = field(default_factory=list)
    summary: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    headline: str = ""

    def values(self) -> dict[str, dict[str, list]]:
        """Per split and metric, each run's value (None where a run has none), for the metrics
        the first run reports as finite numbers."""
        found: dict[str, dict[str, list]] = {}
        for split in ("val", "test"):
            names = [k for k, v in (self.runs[0].metrics.get(split) or {}).items()
                     if isinstance(v, (int, float)) and k != "rows"]
            for name in names:
                values = [run.metrics[split].get(name) for run in self.runs]
                if any(v is not None and math.isfinite(v) for v in values):
                    found.setdefault(split, {})[name] = values
        return found

    def curves(self, labels: list[str], title: str) -> list[tuple[str, bytes]]:
        """The runs' validation loss, headline and training loss per epoch, overlaid."""
        named = list(zip(labels, (run.history for run in self.runs)))
        first = self.runs[0].history
        keys = [k for k in ("val_loss", f"val_{self.headline}", "train_loss") if any(k in r for r in first)]
        return [(title.format(key=key), charts.overlaid(named, key)) for key in keys]
