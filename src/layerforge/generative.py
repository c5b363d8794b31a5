"""Autoencoder and GAN runs: the real-data classifier that judges samples, what is measured and
drawn when training ends (latent codes, anomaly scores, reconstructions, samples), and the
conversion of model-space rows back to the data's own scale."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

EVALUATOR = "evaluator.safetensors"
IMAGES = "images"
KNN_NEIGHBOURS = 5


# -- rows in the data's own scale --------------------------------------------------------------

def unscale(meta: dict, rows: np.ndarray):
    """Model-space rows back to the data's scale: images (N, C, H, W), series (N, C, L), or a
    DataFrame with the original columns for tables."""
    state = meta["preprocessing"]
    if state["kind"] == "table":
        from .data.tabular import Preprocessor

        return Preprocessor.from_json(state).inverse_transform(rows.reshape(len(rows), -1))
    shape = (1, -1) + (1,) * (rows.ndim - 2)
    return rows * np.asarray(state["std"]).reshape(shape) + np.asarray(state["mean"]).reshape(shape)


def as_pictures(meta: dict, rows: np.ndarray) -> np.ndarray | None:
    """(N, C, H, W) images in the data's scale, or None when the rows are not pictures."""
    if meta["inputs"]["kind"] == "image":
        return unscale(meta, rows)
    if meta["inputs"]["kind"] == "table" and meta.get("image_shape"):
        return unscale(meta, rows).to_numpy(dtype=np.float64).reshape(len(rows), *meta["image_shape"])
    return None


def write_rows(meta: dict, rows: np.ndarray, path: Path, *, labels: list | None = None, title: str = "") -> Path:
    """Write generated rows: a PNG grid (images) or a CSV/Parquet table with the data's columns."""
    from .errors import DataError

    path = Path(path)
    if path.suffix.lower() == ".png":
        pictures = as_pictures(meta, rows)
        if pictures is None:
            raise DataError(f"{path}: these rows are not images; write a .csv instead")
        from .report.plots import image_grid

        return image_grid(pictures, path, columns=min(10, len(pictures)), title=title or None)
    if path.suffix.lower() not in (".csv", ".parquet", ".pq"):
        raise DataError(f"{path}: write samples as .png (images), .csv or .parquet")
    import pandas as pd

    from .data.tabular import write_table

    values = unscale(meta, rows)
    frame = values if isinstance(values, pd.DataFrame) else pd.DataFrame(values.reshape(len(rows), -1))
    if labels is not None:
        frame.insert(0, meta["target"], labels)
    return write_table(frame, path)


def score_weights(meta: dict):
    """Per-input weights that make reconstruction errors those of the data's own units when all
    inputs share one unit (the pixels of a table whose rows are images), or None.

    Standardising a nearly always blank pixel divides by a tiny spread, so its rare ink would
    dominate an error in standardised units; in pixel units every pixel counts alike. Tables of
    mixed columns have no common unit and are scored in standardised units."""
    import torch

    if meta["inputs"]["kind"] != "table" or not meta.get("image_shape"):
        return None
    return torch.tensor([c["std"] ** 2 for c in meta["preprocessing"]["columns"]])


def anomaly_scores(meta: dict, model, inputs: tuple):
    """Reconstruction error of every row (N,) as a numpy array: the anomaly score."""
    from .tasks.reconstruction import row_errors
    from .training.loop import predict_outputs

    weights = score_weights(meta)
    x = inputs[0]
    weights = None if weights is None else weights.to(x.device)
    return row_errors(predict_outputs(model, inputs), x, weights).cpu().numpy()


# -- the real-data classifier of GAN runs ------------------------------------------------------

def evaluator_for(run_dir: Path, prepared, seed: int, device: str, previous: dict | None):
    """The classifier that judges generated rows: trained now on the real training rows, or
    loaded from the run directory when resuming. Returns (Evaluator, model.json entry or None)."""
    from .tasks.generation import Evaluator

    if not prepared.classes:
        return Evaluator(), None
    if previous is not None and (run_dir / EVALUATOR).is_file():
        return load_evaluator(run_dir, {**prepared.meta(), "evaluator": previous}), previous
    from .training.adversarial import fit_evaluator
    from .training.checkpoint import save_weights

    classifier, info = fit_evaluator(prepared.splits, prepared.classes, seed, device)
    save_weights(run_dir / EVALUATOR, classifier.state_dict())
    return Evaluator(classifier), info


def load_evaluator(run_dir: Path, meta: dict):
    from .models import flat_size
    from .tasks.generation import Evaluator
    from .training.adversarial import evaluator_classifier
    from .training.checkpoint import load_weights

    info = meta.get("evaluator")
    if info is None:
        return Evaluator()
    classifier = evaluator_classifier(flat_size(meta["inputs"]), len(meta["classes"]), info["layers"])
    classifier.load_state_dict(load_weights(Path(run_dir) / EVALUATOR))
    return Evaluator(classifier)


# -- when training ends ------------------------------------------------------------------------

def _real_range(meta: dict, x) -> tuple[float, float]:
    """The display range of real pictures, so that generated ones are drawn on the same scale."""
    from .report.plots import display_range

    return display_range(as_pictures(meta, x[:1000].cpu().numpy()))


def _picks(y: np.ndarray, per_class: int, limit: int) -> np.ndarray:
    """Row positions with up to ``per_class`` rows of each class, at most ``limit`` in all."""
    chosen = [np.flatnonzero(y == c)[:per_class] for c in np.unique(y)]
    order = np.concatenate([np.stack([c[i] for c in chosen if len(c) > i]) for i in range(per_class)])
    return order[:limit]


def finish_reconstruction(run_dir: Path, meta: dict, model, tensors: dict, spec) -> dict[str, Any]:
    """Latent k-NN accuracy, anomaly scores and their threshold, and the pictures.

    Args:
        tensors: split name -> ((x,), y) on the model's device: 'train' and the held-out
            splits that have rows.

    Returns:
        ``{"test": extra test metrics, "anomaly": model.json entry or None, "pictures": {...}}``.
    """
    import torch

    from .report import plots
    from .tasks.reconstruction import encode_all
    from .training.loop import predict_outputs

    images = Path(run_dir) / IMAGES
    result: dict[str, Any] = {"test": {}, "anomaly": None, "pictures": {}}
    codes = {name: encode_all(model, inputs[0])[0].cpu().numpy() for name, (inputs, _) in tensors.items()
             if len(inputs[0])}
    labels = {name: y.cpu().numpy() for name, (_, y) in tensors.items()}
    anomaly_classes = meta.get("anomaly_classes")
    has_labels = meta.get("classes") is not None

    if has_labels and anomaly_classes is None and "test" in codes:
        from sklearn.neighbors import KNeighborsClassifier

        knn = KNeighborsClassifier(n_neighbors=KNN_NEIGHBOURS).fit(codes["train"], labels["train"])
        result["test"]["latent_knn_accuracy"] = float(knn.score(codes["test"], labels["test"]))

    shown_split = next(name for name in ("test", "val", "train") if name in codes)  # held-out rows if any
    test_inputs, _ = tensors[shown_split]
    if anomaly_classes is not None and "val" in codes and "test" in codes:
        from .data.prepare import anomaly_codes
        from .tasks.reconstruction import anomaly_report

        anomalous_codes = anomaly_codes(meta["classes"], anomaly_classes, meta["source"])
        val_scores = anomaly_scores(meta, model, tensors["val"][0])
        test_scores = anomaly_scores(meta, model, test_inputs)
        anomalous = np.isin(labels["test"], anomalous_codes)
        report = anomaly_report(val_scores, test_scores, anomalous, spec.model.threshold_quantile)
        result["test"].update(report)
        result["anomaly"] = {"threshold": report["anomaly_threshold"], "quantile": spec.model.threshold_quantile,
                             "classes": anomaly_classes}
        result["pictures"]["anomaly_scores"] = plots.score_histogram(
            test_scores[~anomalous], test_scores[anomalous], report["anomaly_threshold"],
            images / "anomaly_scores.png")

    y_shown = labels[shown_split]
    picks = _picks(y_shown, 2, 20) if has_labels else np.arange(min(20, len(y_shown)))
    originals = test_inputs[0][torch.as_tensor(picks, device=test_inputs[0].device)]
    reconstructions = predict_outputs(model, (originals,))
    pictures = as_pictures(meta, originals.cpu().numpy())
    if pictures is not None:
        result["pictures"]["reconstructions"] = plots.reconstruction_grid(
            pictures, as_pictures(meta, reconstructions.cpu().numpy()), images / "reconstructions.png")
    result["pictures"]["latent"] = plots.latent_scatter(
        codes[shown_split], y_shown if has_labels else None, meta.get("classes"), images / "latent.png",
        title=f"{shown_split} rows' latent codes")
    if model.variational and pictures is not None:
        samples = model.sample(100, generator=torch.Generator().manual_seed(0)).cpu().numpy()
        result["pictures"]["samples"] = plots.image_grid(
            as_pictures(meta, samples), images / "samples.png", title="decoded from random codes",
            value_range=_real_range(meta, tensors["train"][0][0]))
    return result


def finish_generation(run_dir: Path, meta: dict, model, task, tensors: dict, history: list[dict]) -> dict[str, Any]:
    """The real-data floor of the Fréchet distance, the sample grid and the Fréchet curve."""
    import torch

    from .report import plots
    from .tasks.generation import SAMPLE_SEED, frechet_distance, moments

    images = Path(run_dir) / IMAGES
    result: dict[str, Any] = {"test": {}, "pictures": {}}
    train_x = tensors["train"][0][0]
    if "test" in tensors:
        evaluator = task.evaluator.to(train_x.device)
        train_features, _ = evaluator(train_x)
        test_features, _ = evaluator(tensors["test"][0][0])
        # how far the real test rows are from the real training rows: the best a generator can hope for
        result["test"]["real_frechet"] = frechet_distance(*moments(train_features), *moments(test_features))
    classes = meta.get("classes")
    if model.num_classes:
        labels = torch.arange(model.num_classes).repeat_interleave(10)
        title = "generated samples, one row per class"
    else:
        labels, title = None, "generated samples"
    count = len(labels) if labels is not None else 100
    samples = model.sample(count, labels, generator=torch.Generator().manual_seed(SAMPLE_SEED)).cpu().numpy()
    pictures = as_pictures(meta, samples)
    if pictures is not None:
        rows = [str(c) for c in classes] if model.num_classes and classes else None
        result["pictures"]["samples"] = plots.image_grid(pictures, images / "samples.png", columns=10,
                                                         row_labels=rows, title=title,
                                                         value_range=_real_range(meta, train_x))
    epochs = [r["epoch"] for r in history if "val_frechet" in r]
    if epochs:
        values = [r["val_frechet"] for r in history if "val_frechet" in r]
        result["pictures"]["frechet"] = plots.curve(epochs, {"validation": values}, images / "frechet.png",
                                                    ylabel="Fréchet distance (lower is better)",
                                                    title="generated vs real rows")
    return result
