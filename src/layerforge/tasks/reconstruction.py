"""Reconstruction (autoencoders): the model's output is compared with its own input.

The targets ``y`` carry each row's class when the data has one (for latent plots, k-NN checks
and anomaly labels; at most ``LABELLED_CLASSES`` of them); training never reads them. The anomaly score of a row is its
reconstruction error.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data.labels import checked_classes, class_codes, encode_classes
from ..decodings import AnomalyScores
from ..errors import DataError
from ..figures import Note, Picture
from ..metrics import roc_auc
from .base import Finished, Task, answer_outputs, input_arrays

# The evaluation corruption is drawn from this seed, so that every epoch and every model of a
# comparison (plain against denoising) sees the same noisy inputs.
NOISE_SEED = 0
KNN_NEIGHBOURS = 5
# A target with more distinct values than this is read as a measurement, not as classes: the
# rows are then unlabelled for the latent plot and the k-NN check.
LABELLED_CLASSES = 50


def encode_all(model, x, batch_size: int = 1024):
    """Codes' mean (N, K) and log-variance (variational; else None) of every row, in eval mode."""
    import torch

    model.eval()
    with torch.no_grad():
        parts = [model.encode(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
    mean = torch.cat([m for m, _ in parts])
    log_var = None if parts[0][1] is None else torch.cat([v for _, v in parts])
    return mean, log_var


def row_errors(reconstruction, x, weights=None):
    """Mean squared reconstruction error of each row (N,), each input number weighted by
    ``weights`` (the anomaly score)."""
    squared = (reconstruction.float() - x.float()).pow(2).flatten(1)
    return (squared if weights is None else squared * weights).mean(dim=1)


def kl_per_row(mean, log_var):
    return 0.5 * (mean.pow(2) + log_var.exp() - 1.0 - log_var).sum(dim=1)


def anomaly_report(val_scores: np.ndarray, test_scores: np.ndarray, test_anomalous: np.ndarray,
                   quantile: float) -> dict[str, float]:
    """Threshold the anomaly scores at ``quantile`` of the (normal) validation rows' scores, and
    measure the test rows against their anomaly labels: ROC AUC (threshold-free), precision,
    recall and F1 at the threshold."""
    threshold = float(np.quantile(val_scores, quantile))
    flagged = test_scores > threshold
    true_positive = int(np.sum(flagged & test_anomalous))
    precision = true_positive / max(int(flagged.sum()), 1)
    recall = true_positive / max(int(test_anomalous.sum()), 1)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "anomaly_roc_auc": roc_auc(test_anomalous.astype(int), test_scores),
        "anomaly_threshold": threshold,
        "anomaly_precision": precision,
        "anomaly_recall": recall,
        "anomaly_f1": f1,
        "anomaly_rows": int(test_anomalous.sum()),
    }


class ReconstructionTask(Task):
    """Reproduce the input through a bottleneck. Metrics: ``mse`` on clean inputs,
    ``noisy_mse`` (the clean input recovered from a corrupted one) and, for variational
    models, ``kl`` (per row, in nats)."""

    name = "reconstruction"
    default_loss = "mse"
    target_form = "values"
    metrics = {"mse": False, "noisy_mse": False, "kl": False}
    headline = "mse"
    scored_on_outputs = False  # the noisy reconstruction and the KL term come from the encoder and the noise
    averaged_over_rows = True  # mse, noisy_mse, kl and the loss: means over rows of equal size
    example = {"data": {"dataset": "digits"}, "model": {"type": "autoencoder", "layers": [16], "latent_size": 2}}
    needs_target = False
    stratify = True
    detects_anomalies = True

    def __init__(self, classes: list | None = None, *, weights: np.ndarray | None = None,
                 anomaly_classes: list | None = None, threshold: float | None = None):
        self.classes = classes
        self.weights, self.anomaly_classes, self.threshold = weights, anomaly_classes, threshold

    @classmethod
    def fit(cls, labels, train: np.ndarray, encoder, data_spec, source: str) -> ReconstructionTask:
        classes = checked_classes(labels) if labels is not None else None
        if classes is not None and len(classes) > LABELLED_CLASSES and data_spec.anomaly_classes is None:
            classes = None  # a measurement (diabetes' progression), not classes to colour codes by
        return cls(classes, weights=encoder.unit_weights(), anomaly_classes=data_spec.anomaly_classes)

    @classmethod
    def from_manifest(cls, manifest, encoder, run_dir: Path | None = None) -> ReconstructionTask:
        anomaly = manifest.anomaly
        return cls(manifest.classes, weights=encoder.unit_weights(), anomaly_classes=manifest.anomaly_classes,
                   threshold=anomaly.threshold if anomaly else None)

    def encode_targets(self, labels, source: str | None = None) -> np.ndarray:
        if self.classes is None:  # unlabelled rows: no class to carry
            return np.zeros(len(labels), dtype=np.int64)
        return encode_classes(labels, self.classes, source)

    def evaluation_needs_targets(self, model) -> bool:
        return False

    def objective(self, loss_fn):
        """Reconstruction (of the clean input, from a corrupted one for a denoising model) plus
        ``beta`` times the KL term per input number."""

        def loss(model, inputs: tuple, y):
            x = inputs[0]
            reconstruction, kl = model.reconstruct(x)
            value = loss_fn(reconstruction, x)
            if kl is not None:
                value = value + model.beta * kl.mean() / x[0].numel()
            return value

        return loss

    def scores(self, outputs, y) -> dict[str, float]:  # evaluate() is overridden: it reads inputs
        raise NotImplementedError

    def evaluate(self, model, inputs: tuple, y, loss_fn) -> dict[str, float]:
        import torch

        from ..models.autoencoder import corrupt
        from ..models.protocol import predict_outputs

        x = inputs[0]
        reconstruction = predict_outputs(model, (x,))
        generator = torch.Generator().manual_seed(NOISE_SEED)
        noisy = corrupt(x, model.noise_kind, model.noise_amount, generator)
        loss = float(loss_fn(reconstruction, x))
        result = {"mse": float(row_errors(reconstruction, x).mean()),
                  "noisy_mse": float(row_errors(predict_outputs(model, (noisy,)), x).mean())}
        if model.variational:
            mean, log_var = encode_all(model, x)
            kl = kl_per_row(mean, log_var).mean()
            result["kl"] = float(kl)
            loss += model.beta * float(kl) / x[0].numel()
        return {"loss": loss, **result}

    # -- prediction ----------------------------------------------------------------------------

    def anomaly_scores(self, model, inputs: tuple) -> np.ndarray:
        """Each row's anomaly score (N,): its reconstruction error (the decoding's), or with
        ``model.anomaly_score: code`` how unlikely its code is under the prior (PyTorch only)."""
        from ..models.protocol import predict_outputs

        if getattr(model, "anomaly_score", "reconstruction") == "code":
            from ..models.protocol import Call

            return predict_outputs(Call(model, "code_scores"), (inputs[0],)).float().cpu().numpy()
        return self.decoding().predictions(answer_outputs(model, inputs), input_arrays(inputs))

    def predictions(self, model, inputs: tuple) -> np.ndarray:
        return self.anomaly_scores(model, inputs)

    def decoding(self) -> AnomalyScores:
        weights = None if self.weights is None else np.asarray(self.weights, dtype=float).tolist()
        return AnomalyScores(weights, self.threshold)

    def anomalies(self, scores: np.ndarray) -> np.ndarray:
        """Which scores exceed the threshold chosen on validation rows."""
        if self.threshold is None:
            raise DataError("this autoencoder has no anomaly threshold: train it with data.anomaly_classes "
                            "and a validation split, or threshold the scores of predict yourself")
        return scores > self.threshold

    def prediction_table(self, model, inputs: tuple, target: str | None):
        """``anomaly_score`` per row, and ``anomaly`` when the run has a threshold."""
        import pandas as pd

        return pd.DataFrame(self.decoding().scored(self.anomaly_scores(model, inputs)))

    def embed(self, model, inputs: tuple) -> np.ndarray:
        """Latent codes (N, latent_size); a variational model gives each code's mean."""
        return encode_all(model, inputs[0])[0].cpu().numpy()

    def sample(self, model, n: int, label=None, seed: int = 0) -> np.ndarray:
        import torch

        if not model.variational:
            raise DataError("sampling needs a variational autoencoder (model.variant: variational) or a gan; "
                            "a plain autoencoder's codes do not follow a known distribution")
        if label is not None:
            raise DataError("--label needs a conditional GAN; an autoencoder is not conditioned on classes")
        return model.sample(n, generator=torch.Generator().manual_seed(seed)).cpu().numpy()

    # -- when training ends --------------------------------------------------------------------

    def finish(self, model, tensors: dict, *, encoder, images: Path, history: list[dict]) -> Finished:
        """Latent k-NN accuracy, anomaly scores and their threshold, and the pictures."""
        import torch

        from ..figures import pictures as draw
        from ..models.protocol import predict_outputs

        finished = Finished()
        codes = {name: encode_all(model, inputs[0])[0].cpu().numpy() for name, (inputs, _) in tensors.items()
                 if len(inputs[0])}
        labels = {name: y.cpu().numpy() for name, (_, y) in tensors.items()}
        has_labels = self.classes is not None
        if has_labels and self.anomaly_classes is None and "test" in codes:
            from sklearn.neighbors import KNeighborsClassifier

            knn = KNeighborsClassifier(n_neighbors=KNN_NEIGHBOURS).fit(codes["train"], labels["train"])
            finished.test["latent_knn_accuracy"] = float(knn.score(codes["test"], labels["test"]))

        shown_split = next(name for name in ("test", "val", "train") if name in codes)  # held-out rows if any
        shown_inputs, _ = tensors[shown_split]
        if self.anomaly_classes is not None and "val" in codes and "test" in codes:
            anomalous = np.isin(labels["test"], class_codes(self.classes, self.anomaly_classes,
                                                            "data.anomaly_classes", "the data"))
            val_scores = self.anomaly_scores(model, tensors["val"][0])
            test_scores = self.anomaly_scores(model, shown_inputs)
            quantile = model.threshold_quantile
            report = anomaly_report(val_scores, test_scores, anomalous, quantile)
            finished.test.update(report)
            self.threshold = report["anomaly_threshold"]
            finished.record["anomaly"] = {"threshold": self.threshold, "quantile": quantile,
                                          "classes": self.anomaly_classes}
            finished.pictures["anomaly_scores"] = draw.score_histogram(
                test_scores[~anomalous], test_scores[anomalous], self.threshold, images / "anomaly_scores.png")

        y_shown = labels[shown_split]
        picks = _picks(y_shown, 2, 20) if has_labels else np.arange(min(20, len(y_shown)))
        originals = shown_inputs[0][torch.as_tensor(picks, device=shown_inputs[0].device)]
        reconstructions = predict_outputs(model, (originals,))
        originals_seen = encoder.pictures(originals.cpu().numpy())
        if originals_seen is not None:
            finished.pictures["reconstructions"] = draw.reconstruction_grid(
                originals_seen, encoder.pictures(reconstructions.cpu().numpy()), images / "reconstructions.png")
        finished.pictures["latent"] = draw.latent_scatter(
            codes[shown_split], y_shown if has_labels else None, self.classes, images / "latent.png",
            title=f"{shown_split} rows' latent codes")
        if model.variational and originals_seen is not None:
            samples = model.sample(100, generator=torch.Generator().manual_seed(0)).cpu().numpy()
            real = encoder.pictures(tensors["train"][0][0][:1000].cpu().numpy())
            finished.pictures["samples"] = draw.image_grid(
                encoder.pictures(samples), images / "samples.png", title="decoded from random codes",
                value_range=draw.display_range(real))
        return finished

    def report_blocks(self, model, held_out, *, encoder, pictures, target):

        shown = [Picture(name, path.read_bytes()) for name, path in pictures.items() if path.is_file()]
        return shown or [Note("no pictures for this kind of data")]


def _picks(y: np.ndarray, per_class: int, limit: int) -> np.ndarray:
    """Row positions with up to ``per_class`` rows of each class, at most ``limit`` in all."""
    chosen = [np.flatnonzero(y == c)[:per_class] for c in np.unique(y)]
    order = [c[i] for i in range(per_class) for c in chosen if len(c) > i]
    return np.asarray(order[:limit], dtype=np.int64)
