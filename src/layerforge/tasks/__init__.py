"""Tasks: what a training step means, the default loss, metrics and how outputs decode.

``TASKS`` and ``METRICS`` are plain data so that specs validate without importing torch.
"""

from __future__ import annotations

from ..errors import SpecError, unknown_name

TASKS: dict[str, str] = {  # -> default loss
    "classification": "cross_entropy",
    "regression": "mse",
    "forecasting": "mse",
    "language_model": "cross_entropy",
    "reconstruction": "mse",
    "generation": "non_saturating",
}

# Metrics each task reports every epoch (besides loss), and whether higher is better.
METRICS: dict[str, dict[str, bool]] = {
    "classification": {"accuracy": True, "f1_macro": True, "roc_auc": True},
    "regression": {"mse": False, "mae": False, "r2": True},
    "forecasting": {"mae": False, "rmse": False, "mape": False},
    "language_model": {"bits_per_token": False, "perplexity": False},
    "reconstruction": {"mse": False, "noisy_mse": False, "kl": False},
    "generation": {"frechet": False, "class_accuracy": True, "coverage": True, "diversity": True},
}

# the one metric that sums up a run of each task (layerforge runs)
HEADLINE: dict[str, str] = {"classification": "accuracy", "regression": "r2", "forecasting": "mape",
                            "language_model": "bits_per_token", "reconstruction": "mse", "generation": "frechet"}

# what one training step reports, when it is more than one loss
LOSS_NAMES: dict[str, tuple[str, ...]] = {"generation": ("d_loss", "g_loss")}


def higher_is_better(monitor: str) -> bool:
    """Whether a larger value of ``monitor`` (e.g. 'val_accuracy', 'train_loss') is better."""
    metric = monitor.split("_", 1)[1] if "_" in monitor else monitor
    return any(metric in table and table[metric] for table in METRICS.values())


def monitor_names(task: str | None, has_val: bool) -> list[str]:
    """The values an epoch record holds that early stopping or plateau can monitor."""
    if task is None:
        names = ["train_loss", *(f"train_{n}" for losses in LOSS_NAMES.values() for n in losses)]
    else:
        names = [f"train_{n}" for n in LOSS_NAMES.get(task, ("loss",))]
    if has_val:
        metrics = METRICS[task] if task else {m: 0 for t in METRICS.values() for m in t}
        if task not in LOSS_NAMES:
            names.append("val_loss")
        names += [f"val_{m}" for m in metrics]
    return names


# task -> (module, class), imported on first use so that specs validate without torch
_CLASSES: dict[str, tuple[str, str]] = {
    "classification": (".classification", "ClassificationTask"),
    "regression": (".regression", "RegressionTask"),
    "forecasting": (".forecasting", "ForecastTask"),
    "language_model": (".language_model", "LanguageModelTask"),
    "reconstruction": (".reconstruction", "ReconstructionTask"),
    "generation": (".generation", "GenerationTask"),
}


def get(name: str, **kwargs):
    """Build the task ``name`` (``classes=`` for classification, ``mean=``/``std=`` for regression)."""
    if name not in _CLASSES:
        raise SpecError(f"task: {unknown_name('task', name, TASKS)}")
    from importlib import import_module

    module, class_name = _CLASSES[name]
    return getattr(import_module(module, __name__), class_name)(**kwargs)


def from_meta(meta: dict):
    """The task a run's model.json (or ``Prepared.meta()``) describes."""
    if meta["task"] == "classification":
        return get("classification", classes=meta["classes"])
    if meta["task"] == "language_model":
        return get("language_model", vocab_size=meta["inputs"]["vocab_size"])
    if meta["task"] in ("reconstruction", "generation"):
        return get(meta["task"], classes=meta["classes"])
    if meta["task"] == "forecasting":
        return get("forecasting", scaling=meta["preprocessing"], horizon=meta["forecast"]["horizon"])
    scaling = meta["target_scaling"]
    return get("regression", mean=scaling["mean"], std=scaling["std"])
