"""Seed sensitivity: one spec trained under several seeds (each changes the split as well as the
initialisation), with each metric's median, range and worst seed, so that one lucky or unlucky
number is not taken for the spec's.

The runs are kept in one directory, ``RUNS/<name>-seeds-<time>/``, beside ``seeds.json``::

    {"spec": NAME, "seeds": [0, 1, ...], "runs": [...], "summary": {"test": {"accuracy":
     {"median": ..., "min": ..., "max": ..., "spread": ..., "worst_seed": ..., "values": [...]}}}}
"""

from __future__ import annotations

import math
import statistics
import time
from pathlib import Path
from typing import Any

from .. import tasks
from ..api import DEFAULT_SPEC, train
from ..files import write_json
from ..progress import Meter
from ..run.store import usable_runs_dir
from ..spec.load import load_spec
from . import RunGroup, run_line

SUMMARY, PAGE = "seeds.json", "seeds.html"


class Seeds(RunGroup):
    """The runs of one spec under several seeds and the summary of their metrics."""


def train_seeds(spec: Any = None, seeds: int = 5, *, overrides: list[str] | tuple[str, ...] = (),
                runs_dir: str | Path = "runs", log=None, progress=None, data: Any = None) -> Seeds:
    """Train ``spec`` under ``seeds`` seeds (its own seed, then the next ones).

    Args:
        spec: a YAML path, a dict or a ``Spec`` (None: the built-in default).
        seeds: how many seeds (at least 2).
        overrides: ``key=value`` settings, as ``layerforge train --set``.
        runs_dir: where the directory of the runs is made.
        log: called with a line per finished run.
        progress: where to show the runs' progress and time left (a Rich console or a text stream;
            ``layerforge.progress``); None shows nothing.
        data: rows in memory instead of the spec's file (a DataFrame or arrays ``(X, y)``, as
            ``train`` takes them).

    Returns:
        ``Seeds``: the runs, and per split and metric the median, min, max, spread (max - min),
        the worst seed and every value.
    """
    if seeds < 2:
        raise ValueError(f"seeds: expected at least 2, got {seeds}")
    if data is not None:
        from ..api import in_memory

        spec, overrides, _ = in_memory(spec, overrides, data)
    spec = DEFAULT_SPEC if spec is None else spec
    base = load_spec(spec, overrides)
    folder = usable_runs_dir(Path(runs_dir) / f"{base.name}-seeds-{time.strftime('%Y%m%d-%H%M%S')}")
    found = Seeds(path=folder)
    numbers = [base.seed + i for i in range(seeds)]
    meter = Meter("seed", len(numbers), progress, log=log)
    for seed in numbers:
        run = train(spec, runs_dir=folder, data=data,
                    overrides=[*overrides, f"seed={seed}", f"name={base.name}-seed{seed}"])
        found.runs.append(run)
        meter.advance(line=run_line(f"seed {seed}", run.metrics.get("test") or run.metrics.get("val") or {}))
    meter.close()
    task = tasks.get(found.runs[0].manifest.task)
    found.headline = task.headline
    for split, metrics in found.values().items():
        for name, values in metrics.items():
            present = [(v, s) for v, s in zip(values, numbers) if v is not None and math.isfinite(v)]
            worst = (min if task.higher_is_better(name) else max)(present)
            only = [v for v, _ in present]
            found.summary.setdefault(split, {})[name] = {
                "median": statistics.median(only), "min": min(only), "max": max(only),
                "spread": max(only) - min(only), "worst_seed": worst[1], "values": values}
    write_json(folder / SUMMARY, {"spec": base.name, "seeds": numbers, "runs": [r.path.name for r in found.runs],
                                  "headline": found.headline, "summary": found.summary})
    _write_page(found, base.name, numbers)
    return found


def spread_sentence(found: Seeds) -> str | None:
    """What the seeds say about trusting one run's headline number."""
    head = (found.summary.get("test") or found.summary.get("val") or {}).get(found.headline)
    if not head:
        return None
    return (f"{found.headline} ranges from {head['min']:.4f} to {head['max']:.4f} across {len(head['values'])} seeds "
            f"(median {head['median']:.4f}): one run's number can be off by {head['spread']:.4f}")


def _write_page(found: Seeds, name: str, numbers: list[int]) -> None:
    """seeds.html: the spread first, then each seed's scores and the runs' curves overlaid."""
    from ..report.html import build_study_page

    summary = [["seeds", ", ".join(str(n) for n in numbers)], ["what this says", spread_sentence(found) or "-"]]
    for split, metrics in found.summary.items():
        for metric, entry in metrics.items():
            summary.append([f"{split} {metric}", f"median {entry['median']:.4f}, {entry['min']:.4f} to "
                                                 f"{entry['max']:.4f}, worst seed {entry['worst_seed']}"])
    columns = [(split, metric) for split, metrics in found.summary.items() for metric in metrics]
    rows = [[seed, run.path.name, *[run.metrics.get(split, {}).get(metric) for split, metric in columns]]
            for seed, run in zip(numbers, found.runs)]
    pictures = found.curves([f"seed {seed}" for seed in numbers], "each seed's {key}")
    build_study_page(found.path / PAGE, f"layerforge seeds: {name}", f"{len(found.runs)} runs · {found.path.name}",
                     summary, (["seed", "run", *[f"{s} {m}" for s, m in columns]], rows), pictures,
                     trials_title="Seeds")
