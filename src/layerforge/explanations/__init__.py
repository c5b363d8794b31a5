"""``layerforge explain``: which inputs a trained run's answers rest on, with checks of the
explanation itself.

Attributions come from Captum (the ``explain`` extra): integrated gradients, saliency, gradient
SHAP, DeepLift, occlusion or feature ablation, for the predicted class of each row (or
``target``). Tables are explained per original column (a column's one-hot and missing-indicator
features summed into it); series per channel and step; images per pixel. Two checks are computed,
not assumed:

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

from ..errors import DataError
from ..figures.pictures import image_grid
from ..files import make_dir, write_json
from ..models.check import checked_build
from ..recipes.scaffold import as_tensors
from ..run.directory import Run

METHODS = ("integrated_gradients", "saliency", "gradient_shap", "deeplift", "occlusion", "feature_ablation")
FOLDER, RECORD = "explain", "explain.json"  # RUN/explain/explain.json
RANDOMISED_AT = 0.5  # rank correlation above which an explanation does not depend enough on the weights


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

    def table(self):
        """One row per explained row, one column per input (tables)."""
        import pandas as pd

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


def _attribute(method: str, model, x: torch.Tensor, extra: tuple, target: torch.Tensor, generator_seed: int = 0):
    import warnings

    with warnings.catch_warnings():  # Captum's notes on hooks and gradients it switches on for itself
        warnings.filterwarnings("ignore", category=UserWarning, module=r"captum\.")
        return _attribute_quietly(method, model, x, extra, target, generator_seed)


def _attribute_quietly(method: str, model, x: torch.Tensor, extra: tuple, target: torch.Tensor,
                       generator_seed: int = 0):
    attr = _captum()
    torch.manual_seed(generator_seed)
    baseline = torch.zeros_like(x)
    forward = model
    if method == "integrated_gradients":
        found, delta = attr.IntegratedGradients(forward).attribute(
            x, baselines=baseline, target=target, additional_forward_args=extra or None, n_steps=128,
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
            rows: int = 200, seed: int = 0, log=None) -> Explained:
    """Explain ``run``'s answers for ``data`` (default: up to ``rows`` of its test split).

    Args:
        method: one of ``METHODS``.
        target: the class to explain (default: each row's predicted class); regression explains
            its (first) output.

    Raises:
        DataError: an unknown method or class, a task without per-row outputs to explain, token
            inputs, or Captum missing.
    """
    run = run if isinstance(run, Run) else Run(run)
    if method not in METHODS:
        raise DataError(f"--method: expected one of {', '.join(METHODS)}, got {method!r}")
    if run.manifest.ensemble:
        raise DataError("explaining an ensemble is not offered; explain its members (members/ in the ensemble)")
    task, state = run.task, run.manifest.preprocessing
    if not task.attacks:
        raise DataError(f"explanations are for classification and regression runs; this run does {run.manifest.task}")
    if state.perturbation() is None:
        raise DataError("token inputs are not explained yet; explain a run on tables, series or images")
    model = run.model.cpu().eval()
    if data is None:
        if not run.manifest.rows.get("test"):
            raise DataError("this run has no test rows; pass rows to explain")
        inputs, y = as_tensors(run.held_out("test"), task, "cpu")
    else:
        inputs, labels = run.predictor.encode(data)
        y = None if labels is None else run.predictor.targets(labels, inputs)
    inputs = tuple(t[:rows] for t in inputs)
    y = None if y is None else y[:rows]
    x, extra = inputs[0].float(), tuple(inputs[1:])
    with torch.no_grad():
        outputs = model(*inputs)
    if task.classes:
        if target is None:
            chosen = outputs.argmax(dim=1)
        else:
            names = [str(c) for c in task.classes]
            if str(target) not in names:
                raise DataError(f"--target: {target!r} is not a class of this run ({', '.join(names)})")
            chosen = torch.full((len(x),), names.index(str(target)), dtype=torch.long)
        targets = [task.classes[i] for i in chosen.tolist()]
    else:
        chosen, targets = torch.zeros(len(x), dtype=torch.long), ["output"] * len(x)
    found, delta = _attribute(method, model, x, extra, chosen, seed)
    values = found.detach().numpy()
    groups = state.attribution_groups()
    grouped = _grouped(values, groups) if groups is not None else values
    names = _names(groups, tuple(x.shape[1:]))
    result = Explained(run.path / FOLDER, method, names, grouped, targets)
    mean_abs = np.abs(grouped.reshape(len(grouped), -1)).mean(axis=0)
    result.importance = dict(zip(names, mean_abs.tolist()))
    if delta is not None:
        with torch.no_grad():
            change = (model(*inputs) - model(torch.zeros_like(x), *extra)).gather(1, chosen[:, None])[:, 0]
        relative = delta.detach().abs() / change.abs().clamp_min(1e-6)
        result.checks["completeness_delta_median"] = float(relative.median())
        result.checks["completeness_delta_max"] = float(relative.max())
    result.checks.update(_randomisation(run, method, x, extra, chosen, grouped.reshape(len(grouped), -1), groups,
                                        seed))
    if groups is not None and y is not None:
        result.permutation = _permutation(run, model, inputs, y, groups, names, seed)
    _write(result)
    if log:
        log(f"{method} on {len(x)} rows; checks: {result.checks}")
    return result


def _randomisation(run: Run, method: str, x, extra, chosen, trained: np.ndarray, groups, seed: int) -> dict[str, Any]:
    """The same explanation of a network of the same architecture with fresh random weights:
    the median over rows of the Spearman rank correlation between the two attribution maps
    (signed, per input), as Adebayo et al. compare them."""
    from scipy.stats import spearmanr

    record = run.manifest.model
    torch.manual_seed(seed + 12345)
    fresh = checked_build(record.spec, run.manifest.inputs, record.output_size, record.num_classes).eval()
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
        raise DataError(f"{out}: a table's explanation is a .csv (one column per input column)")
    heat = np.abs(result.attributions).mean(axis=0)  # (C, H, W) for images, (C, L) for series
    heat = heat[None] if heat.ndim == 2 else heat  # a series as one picture of its channels and steps
    return image_grid(heat[None], out, columns=1, title=f"mean |{result.method}|")


def _write(result: Explained) -> None:
    if not result.path.is_dir():
        make_dir(result.path)
    top = sorted(result.importance.items(), key=lambda kv: -kv[1])[:20]
    write_json(result.path / RECORD, {"method": result.method, "rows": len(result.attributions),
                                       "importance": dict(top), "permutation": result.permutation,
                                       "checks": result.checks})


__all__ = ["METHODS", "Explained", "explain"]
