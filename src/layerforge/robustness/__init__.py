"""``layerforge attack``: how far a trained run's answers hold under adversarial inputs.

FGSM and PGD (``layerforge.training.adversarial``) attack the run's own test rows, with epsilon in
the data's units (pixels in [0, 1] for images, standardised values for tables and series; category
one-hots are never moved) and the model in evaluation mode. Each epsilon reports the task's
headline metric under both attacks, and the attack checks itself: PGD must be at least as strong
as FGSM at every epsilon, and at the largest epsilon an undefended classifier must fall to about
chance (otherwise its gradients may be masked and the numbers flatter it). Results go to
``RUN/robustness/attack.json`` with a curve (and, for images, clean and attacked examples), and
the run's report shows them.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from ..capabilities import Robustness
from ..capabilities import get as capability
from ..errors import DataError
from ..figures import charts
from ..figures.pictures import reconstruction_grid
from ..progress import SHOW_AFTER, Meter
from ..recipes.scaffold import as_tensors
from ..run.directory import Run
from ..training.adversarial import METHODS, NORMS, Budget, perturb

CURVE, EXAMPLES = Robustness.pictures
# the largest budget that means something in each unit: a whole pixel range, or 10,000 standard
# deviations (beyond, the numbers overflow before they say anything)
LARGEST_EPS = {"pixels in [0, 1]": 1.0, None: 1e4}
SWEEPS = {"pixels in [0, 1]": [0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3],
          "standardised values": [0.0, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0]}


Attacked = Robustness  # the result of ``attack``: its record, console rows and report blocks


def attack(run: Run | str | Path, *, method: str = "pgd", eps: float | list[float] | None = None, steps: int = 20,
           norm: str = "linf", seed: int = 0, log=None, progress=None) -> Attacked:
    """Attack ``run``'s test rows (see the module).

    Args:
        method: 'pgd' or 'fgsm' (FGSM is measured too, to check the attack's strength).
        eps: one budget, several, or None for the sweep that suits the data's units.
        steps: PGD steps.
        norm: 'linf' or 'l2'.
        log: called with a line per budget.
        progress: where to show the budgets done and the time left once the attack takes more
            than a few seconds (a Rich console or a text stream); None shows nothing.

    Raises:
        DataError: the task has no meaningful score under attack, the inputs are token ids, the
            run has no test rows, or an option is unknown.
    """
    run = run if isinstance(run, Run) else Run(run)
    if method not in METHODS:
        raise DataError(f"--method: expected one of {', '.join(METHODS)}, got {method!r}")
    if norm not in NORMS:
        raise DataError(f"--norm: expected one of {', '.join(NORMS)}, got {norm!r}")
    if run.manifest.ensemble:
        raise DataError("attacking an ensemble is not offered; attack its members (members/ in the ensemble)")
    capability("attack").check(run)
    task = run.task
    perturbation = run.manifest.preprocessing.perturbation()
    if perturbation is None:
        raise DataError("these inputs are token ids, which an attack of small steps cannot move; attack a run "
                        "on tables, series or images")
    if not run.manifest.rows.get("test"):
        raise DataError("this run has no test rows to attack (data.split.test is 0)")
    budgets = SWEEPS[perturbation.units] if eps is None else ([eps] if isinstance(eps, (int, float)) else list(eps))
    largest = LARGEST_EPS.get(perturbation.units, LARGEST_EPS[None])
    if any(not math.isfinite(e) or e < 0 or e > largest for e in budgets):
        raise DataError(f"--eps: expected numbers from 0 to {largest:g} ({perturbation.units}), got "
                        f"{', '.join(f'{e:g}' for e in budgets)}")
    model = run.model.cpu().eval()
    inputs, y = as_tensors(run.held_out("test"), task, "cpu")
    budget = Budget.of(perturbation, "cpu")
    loss_fn = run.loss()
    objective = task.objective(loss_fn)
    metric = task.headline
    found = Robustness(path=run.path / Robustness.folder, metric=metric, units=perturbation.units, method=method,
                       norm=norm, steps=steps, rows=int(len(y)))

    def score(rows) -> float:
        with torch.no_grad():
            return float(task.evaluate(model, rows, y, loss_fn)[metric])

    examples = None
    clean = score(inputs)
    meter = Meter("budget", len(set(budgets)), progress, after=SHOW_AFTER, log=log)
    for value in sorted(set(budgets)):
        point = {"eps": value}
        for name in dict.fromkeys(["fgsm", method]):
            crafted = perturb(model, objective, inputs, y, budget, method=name, eps=value, steps=steps, norm=norm,
                              generator=torch.Generator().manual_seed(seed))
            point[name] = score(crafted)
            if name == method and value > 0:
                examples = (value, crafted)
        found.points.append(point)
        meter.advance(line=f"eps {value:g}: " + ", ".join(f"{k} {v:.4f}" for k, v in point.items() if k != "eps"))
    meter.close()
    found.checks = _checks(found, task, clean)
    _write(found, run, inputs, examples)
    return found


def _checks(found: Attacked, task, clean: float) -> dict[str, Any]:
    """Whether the attack was strong enough to trust its numbers (``clean``: the metric on the
    rows unattacked)."""
    higher = task.higher_is_better(found.metric)
    checks: dict[str, Any] = {}
    if found.method != "fgsm":
        worse = [p["eps"] for p in found.points
                 if (p[found.method] > p["fgsm"] + 1e-9 if higher else p[found.method] < p["fgsm"] - 1e-9)]
        checks["stronger_than_fgsm"] = not worse
        if worse:
            checks["weaker_at"] = worse
    largest = found.points[-1]
    checks["clean_metric"] = clean
    if task.classes and largest["eps"] > 0:
        at_chance = max(0.1, 1.5 / len(task.classes))
        value = largest[found.method]
        checks["largest_eps"] = largest["eps"]
        checks["metric_at_largest_eps"] = value
        if clean <= at_chance:  # nothing to fall from: the check cannot say whether gradients are masked
            checks["clean_at_chance"] = True
        else:
            checks["falls_to_chance"] = bool(value <= at_chance)
    return checks


def _write(found: Attacked, run, inputs, examples) -> None:
    found.write()
    if len(found.points) > 1:
        (found.path / CURVE).write_bytes(charts.robustness_curve(found.points, found.metric, found.units,
                                                                 found.method))
    if examples is not None:
        encoder = run.predictor.encoder
        clean = encoder.pictures(inputs[0][:10].cpu().numpy())
        attacked = encoder.pictures(examples[1][0][:10].cpu().numpy())
        if clean is not None and attacked is not None:
            reconstruction_grid(clean, attacked, found.path / EXAMPLES,
                                title=f"test images and their {found.method} attacks at eps {examples[0]:g}")


__all__ = ["Attacked", "attack"]
