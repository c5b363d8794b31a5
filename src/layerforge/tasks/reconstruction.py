"""Reconstruction (autoencoders): the model's output is compared with its own input.

The targets ``y`` carry each row's class when the data has one (for latent plots, k-NN checks
and anomaly labels); training never reads them.
"""

from __future__ import annotations

import numpy as np
import torch

# The evaluation corruption is drawn from this seed, so that every epoch and every model of a
# comparison (plain against denoising) sees the same noisy inputs.
NOISE_SEED = 0


@torch.no_grad()
def encode_all(model, x: torch.Tensor, batch_size: int = 1024) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Codes' mean (N, K) and log-variance (variational; else None) of every row, in eval mode."""
    model.eval()
    parts = [model.encode(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
    mean = torch.cat([m for m, _ in parts])
    log_var = None if parts[0][1] is None else torch.cat([v for _, v in parts])
    return mean, log_var


def row_errors(reconstruction: torch.Tensor, x: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared reconstruction error of each row (N,), each input number weighted by
    ``weights`` (the anomaly score)."""
    squared = (reconstruction.float() - x.float()).pow(2).flatten(1)
    return (squared if weights is None else squared * weights).mean(dim=1)


def kl_per_row(mean: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    return 0.5 * (mean.pow(2) + log_var.exp() - 1.0 - log_var).sum(dim=1)


class ReconstructionTask:
    """Reproduce the input through a bottleneck. Metrics: ``mse`` on clean inputs,
    ``noisy_mse`` (the clean input recovered from a corrupted one) and, for variational
    models, ``kl`` (per row, in nats)."""

    name = "reconstruction"
    default_loss = "mse"

    def __init__(self, classes: list | None = None):
        self.classes = classes

    @property
    def output_size(self) -> int:
        return 0

    def target_tensor(self, codes: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(codes, dtype=torch.long)

    def objective(self, loss_fn):
        """The training loss of a batch: reconstruction (of the clean input, from a corrupted
        one for a denoising model) plus ``beta`` times the KL term per input number."""

        def loss(model, inputs: tuple, y: torch.Tensor) -> torch.Tensor:
            x = inputs[0]
            reconstruction, kl = model.reconstruct(x)
            value = loss_fn(reconstruction, x)
            if kl is not None:
                value = value + model.beta * kl.mean() / x[0].numel()
            return value

        return loss

    @torch.no_grad()
    def evaluate(self, model, inputs: tuple, y: torch.Tensor, loss_fn) -> dict[str, float]:
        from ..models.autoencoder import corrupt
        from ..training.loop import predict_outputs

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


def anomaly_report(val_scores: np.ndarray, test_scores: np.ndarray, test_anomalous: np.ndarray,
                   quantile: float) -> dict[str, float]:
    """Threshold the anomaly scores at ``quantile`` of the (normal) validation rows' scores, and
    measure the test rows against their anomaly labels: ROC AUC (threshold-free), precision,
    recall and F1 at the threshold."""
    from .classification import roc_auc

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
