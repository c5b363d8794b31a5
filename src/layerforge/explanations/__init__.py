"""``layerforge explain``: which inputs a trained run's answers rest on, with checks of the
explanation itself.

Attributions come from Captum (the ``explain`` extra): integrated gradients, saliency, gradient
SHAP, DeepLift, occlusion or feature ablation, for the predicted class of each row (or
``target``; a detection: the score of each picture's best box, or best box of ``target``).
Tables are explained per original column (a column's one-hot and missing-indicator features
summed into it); series per channel and step; images per pixel; text per token (at the
network's token embedding: integrated gradients there, or ablation and occlusion of tokens by the
padding id), with global importance per distinct token. Two checks are computed, not assumed:

* completeness (integrated gradients): the attributions of a row sum to the change of the
  output from the baseline; ``delta`` is the gap relative to that change;
* model randomisation (Adebayo et al., 2018): the same method on the same architecture with
  fresh random weights must give a clearly different ranking of the inputs; the Spearman rank
  correlation of the mean absolute attributions is reported, and explanations that do not depend
  on the weights are flagged.

Global importance: mean absolute attribution per input, and permutation importance (the drop of
the headline metric when an input is shuffled across the rows) on the test split.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..capabilities import Explanation
from ..capabilities import get as capability
from ..codecs.cells import shown
from ..errors import DataError
from ..figures.pictures import image_grid
from ..models.check import checked_build
from ..progress import SHOW_AFTER, Meter
from ..recipes.scaffold import as_tensors
from ..run.directory import Run
from ..run.ensemble import shared_test_rows

METHODS = ("integrated_gradients", "saliency", "gradient_shap", "deeplift", "occlusion", "feature_ablation")
TOKEN_METHODS = ("integrated_gradients", "feature_ablation", "occlusion")  # ids cannot move along a gradient
FOLDER = Explanation.folder  # RUN/explain/explain.json
RANDOMISED_AT = 0.5  # rank correlation above which an explanation does not depend enough on the weights
COMPLETE_WITHIN = 1e-2  # integrated gradients refine rows whose completeness gap is above this share
SHOWN_ROWS = 8  # the rows whose own maps an image explanation's PNG shows


@dataclass
class Explained:
    """Attributions of some rows and the checks of them."""

    path: Path
    method: str
    names: list[str]
    attributions: np.ndarray  # (rows, inputs) for tables; (rows, *input shape) otherwise
    targets: list
    importance: dict[str, float] = field(default_factory=dict)  # mean |attribution| per input
    permutation: dict[str, float] = field(default_factory=dict)  # headline drop per input (tables)
    checks: dict[str, Any] = field(default_factory=dict)
    tokens: list[list[str]] | None = None  # text: each row's tokens (attributions: (rows, positions))

    def summary(self) -> Explanation:
        """What ``RUN/explain/explain.json`` keeps: the method, the 20 largest importances and the
        checks (the console and the report show it)."""
        top = sorted(self.importance.items(), key=lambda kv: -kv[1])[:20]
        return Explanation(path=self.path, method=self.method, rows=len(self.attributions), importance=dict(top),
                           permutation=self.permutation, checks=self.checks)

    def table(self):
        """One row per explained row and one column per input; for text, one row per token
        (row, target, position, token, attribution)."""
        import pandas as pd

        if self.tokens is not None:
            return pd.DataFrame([{"row": row, "target": target, "position": position, "token": token,
                                  "attribution": float(self.attributions[row, position])}
                                 for row, (target, tokens) in enumerate(zip(self.targets, self.tokens))
                                 for position, token in enumerate(tokens)])

        flat = self.attributions.reshape(len(self.attributions), -1)
        frame = pd.DataFrame(flat, columns=self.names)
        frame.insert(0, "target", self.targets)
        return frame


def _captum():
    try:
        import captum.attr as attr
    except ImportError:
        raise DataError("explanations need Captum: pip install 'layerforge[explain]'") from None
    return attr


def _attribute(method: str, model, x: torch.Tensor, extra: tuple, target: torch.Tensor, generator_seed: int = 0,
               steps: int = 128):
    import warnings

    with warnings.catch_warnings():  # Captum's notes on hooks and gradients it switches on for itself
        warnings.filterwarnings("ignore", category=UserWarning, module=r"captum\.")
        embedding = model.token_embedding()
        if embedding is not None:
            return _attribute_tokens(method, model, embedding, x, extra, target, steps)
        return _attribute_quietly(method, model, x, extra, target, generator_seed, steps)


def _attribute_tokens(method: str, model, embedding, x: torch.Tensor, extra: tuple, target: torch.Tensor,
                      steps: int = 128):
    """Per-token attributions (B, L): integrated gradients at the token embedding (summed over its
    width) from the padding id as baseline, or tokens replaced by the padding id."""
    attr = _captum()
    baseline = torch.zeros_like(x)  # id 0: padding
    if method == "integrated_gradients":
        found, delta = attr.LayerIntegratedGradients(model, embedding).attribute(
            x, baselines=baseline, target=target, additional_forward_args=extra or None, n_steps=steps,
            return_convergence_delta=True)
        return found.sum(dim=-1), delta  # (B, L, D) -> (B, L)
    if method == "occlusion":
        return attr.Occlusion(model).attribute(x, sliding_window_shapes=(min(3, x.shape[1]),), baselines=0,
                                               target=target, additional_forward_args=extra or None).float(), None
    return attr.FeatureAblation(model).attribute(x, baselines=0, target=target,
                                                 additional_forward_args=extra or None).float(), None


def _attribute_quietly(method: str, model, x: torch.Tensor, extra: tuple, target: torch.Tensor,
                       generator_seed: int = 0, steps: int = 128):
    attr = _captum()
    torch.manual_seed(generator_seed)
    baseline = torch.zeros_like(x)
    forward = model
    if method == "integrated_gradients":
        found, delta = attr.IntegratedGradients(forward).attribute(
            x, baselines=baseline, target=target, additional_forward_args=extra or None, n_steps=steps,
            return_convergence_delta=True)
        return found, delta
    if method == "saliency":
        return attr.Saliency(forward).attribute(x, target=target, additional_forward_args=extra or None,
                                                abs=False), None
    if method == "gradient_shap":
        baselines = torch.cat([baseline[:1], baseline[:1] + 0.1 * torch.randn_like(x[:1])])
        return attr.GradientShap(forward).attribute(x, baselines=baselines, target=target, n_samples=16,
                                                    additional_forward_args=extra or None), None
    if method == "deeplift":
        return attr.DeepLift(forward).attribute(x, baselines=baseline, target=target,
                                                additional_forward_args=extra or None), None
    if method == "occlusion":
        window = (1,) if x.dim() == 2 else (1, *(min(2, size) for size in x.shape[2:]))  # a table: one column
        return attr.Occlusion(forward).attribute(x, sliding_window_shapes=window, baselines=0.0, target=target,
                                                 additional_forward_args=extra or None), None
    return attr.FeatureAblation(forward).attribute(x, baselines=0.0, target=target,
                                                   additional_forward_args=extra or None), None


def _grouped(values: np.ndarray, groups) -> np.ndarray:
    flat = values.reshape(len(values), -1)
    return flat if groups is None else np.stack([flat[:, members].sum(axis=1) for _, members in groups], axis=1)


def _names(groups, shape: tuple) -> list[str]:
    if groups is not None:
        return [name for name, _ in groups]
    return ["_".join(str(i) for i in index) for index in np.ndindex(*shape)]


def explain(run: Run | str | Path, data=None, *, method: str = "integrated_gradients", target=None,
            rows: int = 200, seed: int = 0, log=None, progress=None) -> Explained:
    """Explain ``run``'s answers for ``data`` (default: up to ``rows`` of its test split).

    An ensemble is explained through its members, on the same rows and for the class the
    ensemble predicts: its attributions are the mean of theirs (for integrated gradients, the
    attributions of the mean of their outputs), and its checks the worst of theirs.

    Args:
        method: one of ``METHODS`` (``TOKEN_METHODS`` for text).
        target: the class to explain (default: each row's predicted class); regression explains
            its (first) output.
        log: called with a line when it is done.
        progress: where to show the steps done (attributions, their convergence, the
            randomisation check, column shuffles; per member of an ensemble) and the time left once
            it takes more than a few seconds (a Rich console or a text stream); None shows nothing.

    Raises:
        DataError: an unknown method or class, a task without per-row outputs to explain, a
            method that token inputs cannot take, or Captum missing.
    """
    run = run if isinstance(run, Run) else Run(run)
    if method not in METHODS:
        raise DataError(f"--method: expected one of {', '.join(METHODS)}, got {method!r}")
    capability("explain").check(run)
    task = run.task
    members = run.members if run.manifest.ensemble else [run]
    for member in members:
        _check_method(member, method)
    if run.manifest.ensemble and data is None:
        _, where = shared_test_rows(members)
        parts = [_rows_of(member, None, rows, index) for member, index in zip(members, where)]
    else:
        parts = [_rows_of(member, data, rows) for member in members]
    with torch.no_grad():
        picked = task.explained_parts(members[0].model.cpu().eval(), parts[0][0], target)  # a detection's best boxes
        if picked is not None:
            answers = None
        elif task.classes:
            answers = torch.as_tensor(np.mean([m.task.probabilities(m.model.cpu().eval(), inputs)
                                               for m, (inputs, _) in zip(members, parts)], axis=0))
        else:
            answers = torch.zeros(len(parts[0][0][0]), 1)
    chosen, targets = picked if picked is not None else _targets(task, answers, target)
    with Meter("step", len(members) * len(STEPS), progress, after=SHOW_AFTER) as meter:
        found = [_explained(member, inputs, y, method, chosen, targets, seed, meter)
                 for member, (inputs, y) in zip(members, parts)]
    result = found[0] if len(found) == 1 else _combined(run, found)
    result.summary().write()
    if log:
        log(f"{method} on {len(chosen)} rows; checks: {result.checks}")
    return result


def _check_method(run: Run, method: str) -> None:
    """Token inputs are explained at the network's embedding, by the methods that allow it."""
    tokens = run.manifest.preprocessing.perturbation() is None
    if tokens and run.model.token_embedding() is None:
        raise DataError("this run's inputs are not numbers or tokens a network embeds; nothing to attribute to")
    if tokens and method not in TOKEN_METHODS:
        raise DataError(f"--method: token inputs are explained with {', '.join(TOKEN_METHODS)}; {method} moves "
                        "inputs along a gradient, and token ids cannot move")


def _rows_of(run: Run, data, rows: int, index: np.ndarray | None = None) -> tuple[tuple, torch.Tensor | None]:
    """Up to ``rows`` encoded rows and their targets: ``data``, or the run's test rows (those at
    ``index`` among them when given)."""
    if data is None:
        if not run.manifest.rows.get("test"):
            raise DataError("this run has no test rows; pass rows to explain")
        inputs, y = run.held_out("test")
        if index is not None:
            inputs, y = tuple(np.asarray(t)[index] for t in inputs), np.asarray(y)[index]
        inputs, y = as_tensors((inputs, y), run.task, "cpu")
    else:
        inputs, labels = run.predictor.encode(data)
        y = None if labels is None else run.predictor.targets(labels, inputs)
    return tuple(t[:rows] for t in inputs), None if y is None else y[:rows]


def _targets(task, answers: torch.Tensor, target) -> tuple[torch.Tensor, list]:
    """The output explained for each row: the predicted class, ``target``, or a regression's
    first output."""
    if not task.classes:
        if target is not None:
            raise DataError(f"--target: this run does {task.name}, which has no classes to choose from; its "
                            "predicted value is explained (leave out --target)")
        return torch.zeros(len(answers), dtype=torch.long), ["output"] * len(answers)
    if target is None:
        chosen = answers.argmax(dim=1)
    else:
        names = [str(c) for c in task.classes]
        if str(target) not in names:
            raise DataError(f"--target: {shown(target)} is not a class of this run ({', '.join(names)})")
        chosen = torch.full((len(answers),), names.index(str(target)), dtype=torch.long)
    return chosen, [task.classes[i] for i in chosen.tolist()]


STEPS = ("attributions", "their convergence", "randomisation check", "column shuffles")


def _explained(run: Run, inputs: tuple, y, method: str, chosen: torch.Tensor, targets: list, seed: int,
               meter: Meter) -> Explained:
    """One network's attributions of ``inputs`` for the outputs ``chosen``, with their checks
    (each of ``STEPS`` advances ``meter``)."""
    model, state = run.task.explained(run.model.cpu().eval()), run.manifest.preprocessing
    tokens = state.perturbation() is None
    x, extra = (inputs[0] if tokens else inputs[0].float()), tuple(inputs[1:])
    found, delta = _attribute(method, model, x, extra, chosen, seed)
    meter.advance({"done": STEPS[0]})
    if delta is not None:
        found, delta = _converged(model, x, extra, chosen, found, delta, seed)
    meter.advance({"done": STEPS[1]})
    values = found.detach().numpy()
    groups = state.attribution_groups()
    grouped = _grouped(values, groups) if groups is not None else values
    names = _names(groups, tuple(x.shape[1:]))
    result = Explained(run.path / FOLDER, method, names, grouped, targets,
                       tokens=_tokens(run.predictor.encoder, x, extra) if tokens else None)
    result.importance = _importance(result)
    if delta is not None:
        relative = _relative_gap(model, x, extra, chosen, delta)
        result.checks["completeness_delta_median"] = float(relative.median())
        result.checks["completeness_delta_max"] = float(relative.max())
    result.checks.update(_randomisation(run, method, x, extra, chosen, grouped.reshape(len(grouped), -1), groups,
                                        seed))
    meter.advance({"done": STEPS[2]})
    if groups is not None and y is not None:
        result.permutation = _permutation(run, model, inputs, y, groups, names, seed)
    meter.advance({"done": STEPS[3]})
    return result


def _combined(run: Run, found: list[Explained]) -> Explained:
    """An ensemble's explanation: its members' attributions averaged, their checks at their worst."""
    first = found[0]
    if first.tokens is not None and any(f.tokens != first.tokens for f in found):
        raise DataError("the members split the text into different tokens (each fitted its own vocabulary); "
                        "explain the members one by one")
    attributions = np.mean([f.attributions for f in found], axis=0)
    result = Explained(run.path / FOLDER, first.method, first.names, attributions, first.targets,
                       tokens=first.tokens)
    result.importance = _importance(result)
    if first.permutation:
        result.permutation = {name: float(np.mean([f.permutation[name] for f in found])) for name in first.names}
    checks = [f.checks for f in found]
    if "completeness_delta_max" in checks[0]:
        result.checks["completeness_delta_median"] = max(c["completeness_delta_median"] for c in checks)
        result.checks["completeness_delta_max"] = max(c["completeness_delta_max"] for c in checks)
    result.checks["randomisation_rank_correlation"] = max(c["randomisation_rank_correlation"] for c in checks)
    result.checks["depends_on_weights"] = all(c["depends_on_weights"] for c in checks)
    result.checks["members"] = len(found)
    return result


def _tokens(encoder, x: torch.Tensor, extra: tuple) -> list[list[str]]:
    """Each row's tokens, up to its length."""
    lengths = extra[0].tolist() if extra else [x.shape[1]] * len(x)
    return [encoder.token_names(x[row, :length].numpy()) for row, length in enumerate(lengths)]


def _importance(result: Explained) -> dict[str, float]:
    """Mean absolute attribution per input; for text, per distinct token over its occurrences."""
    values = result.attributions
    if result.tokens is None:
        return dict(zip(result.names, np.abs(values.reshape(len(values), -1)).mean(axis=0).tolist()))
    sums, counts = {}, {}
    for row, names in enumerate(result.tokens):
        for position, name in enumerate(names):
            sums[name] = sums.get(name, 0.0) + abs(float(values[row, position]))
            counts[name] = counts.get(name, 0) + 1
    return {name: sums[name] / counts[name] for name in sums}


def _relative_gap(model, x, extra, chosen, delta) -> torch.Tensor:
    """Each row's completeness gap relative to its output's change from the baseline."""
    with torch.no_grad():
        change = (model(x, *extra) - model(torch.zeros_like(x), *extra)).gather(1, chosen[:, None])[:, 0]
    return delta.detach().abs() / change.abs().clamp_min(1e-6)


def _converged(model, x, extra, chosen, found, delta, seed: int, steps: int = 128):
    """Integrated gradients again, with four times the steps, for the rows whose attributions miss
    the output's change by more than ``COMPLETE_WITHIN`` of it (a path through many ReLU kinks
    needs a finer integral), up to 2048 steps."""
    found, delta = found.detach().clone(), delta.detach().clone()
    while steps < 2048:
        rows = torch.nonzero(_relative_gap(model, x, extra, chosen, delta) > COMPLETE_WITHIN).flatten()
        if len(rows) == 0:
            break
        steps *= 4
        again, gap = _attribute("integrated_gradients", model, x[rows], tuple(t[rows] for t in extra), chosen[rows],
                                seed, steps)
        found[rows], delta[rows] = again.detach(), gap.detach()
    return found, delta


def _randomisation(run: Run, method: str, x, extra, chosen, trained: np.ndarray, groups, seed: int) -> dict[str, Any]:
    """The same explanation of a network of the same architecture with fresh random weights:
    the median over rows of the Spearman rank correlation between the two attribution maps
    (signed, per input), as Adebayo et al. compare them."""
    from scipy.stats import spearmanr

    record = run.manifest.model
    torch.manual_seed(seed + 12345)
    fresh = run.task.explained(checked_build(record.spec, run.manifest.inputs, record.output_size,
                                             record.num_classes).eval())
    found, _ = _attribute(method, fresh, x, extra, chosen, seed)
    random = _grouped(found.detach().numpy(), groups).reshape(len(x), -1)
    correlations = []
    for mine, theirs in zip(trained, random):
        value = spearmanr(mine, theirs).statistic
        correlations.append(float(value) if np.isfinite(value) else 0.0)
    correlation = float(np.median(correlations))
    return {"randomisation_rank_correlation": correlation, "depends_on_weights": bool(correlation < RANDOMISED_AT)}


def _permutation(run: Run, model, inputs: tuple, y, groups, names, seed: int) -> dict[str, float]:
    """How much the headline metric drops when each column is shuffled across the rows."""
    task, loss = run.task, run.loss()
    metric, higher = task.headline, task.higher_is_better(task.headline)
    with torch.no_grad():
        base = float(task.evaluate(model, inputs, y, loss)[metric])
        rng = np.random.default_rng(seed)
        drops = {}
        for name, (_, members) in zip(names, groups):
            shuffled = inputs[0].clone()
            order = torch.as_tensor(rng.permutation(len(shuffled)))
            shuffled[:, members] = inputs[0][order][:, members]
            value = float(task.evaluate(model, (shuffled, *inputs[1:]), y, loss)[metric])
            drops[name] = (base - value) if higher else (value - base)
    return drops


def write_out(result: Explained, out: Path) -> Path:
    """``--out``: a CSV (one row per explained row, one column per input) or, for images and
    series, a PNG of the mean absolute attribution over the inputs' shape."""
    out = Path(out)
    if out.suffix.lower() == ".csv":
        result.table().to_csv(out, index=False)
        return out
    if out.suffix.lower() != ".png":
        raise DataError(f"{out}: write explanations as .csv (per row and input) or .png (images and series)")
    if result.attributions.ndim < 3:
        raise DataError(f"{out}: explanations of tables and text are written as .csv (per input column, or per "
                        "token)")
    if result.attributions.ndim == 4:  # images: the mean, then the first rows' own maps, each named by its target
        each = np.abs(result.attributions).mean(axis=1, keepdims=True)[:SHOWN_ROWS]  # (rows, 1, H, W)
        maps = np.concatenate([each.mean(axis=0, keepdims=True), each])
        labels = ["mean", *[f"row {i + 1}: {target}" for i, target in enumerate(result.targets[:SHOWN_ROWS])]]
        return image_grid(maps, out, columns=1, row_labels=labels, title=f"|{result.method}|")
    heat = np.abs(result.attributions).mean(axis=0)  # (C, L) for series
    return image_grid(heat[None, None], out, columns=1, title=f"mean |{result.method}|")


__all__ = ["METHODS", "TOKEN_METHODS", "Explained", "explain"]
