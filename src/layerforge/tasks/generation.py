"""Generation (GANs): quality metrics that need no downloaded weights.

Generated rows are judged in the feature space of a classifier trained on the same real data
(``Evaluator``): the Fréchet distance between real and generated features, and for labelled
data the share of generated rows the classifier assigns to the requested class and how many
classes appear at all (a mode-collapse check).
"""

from __future__ import annotations

import numpy as np
import torch

# Codes for evaluation come from this seed: every epoch is judged on the same codes.
SAMPLE_SEED = 1234
MIN_SAMPLES = 1000


def frechet_distance(mean_a: np.ndarray, cov_a: np.ndarray, mean_b: np.ndarray, cov_b: np.ndarray) -> float:
    """``|m_a - m_b|^2 + tr(C_a + C_b - 2 (C_a C_b)^(1/2))`` between two Gaussians."""
    values, vectors = np.linalg.eigh(cov_a)
    root_a = (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T
    middle = np.linalg.eigvalsh(root_a @ cov_b @ root_a)  # same eigenvalues as C_a C_b, symmetric
    cross = np.sqrt(np.clip(middle, 0, None)).sum()
    diff = mean_a - mean_b
    return float(diff @ diff + np.trace(cov_a) + np.trace(cov_b) - 2 * cross)


def moments(features: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    array = features.detach().double().cpu().numpy()
    return array.mean(axis=0), np.cov(array, rowvar=False)


class Evaluator(torch.nn.Module):
    """Features for the Fréchet distance and class predictions for generated rows.

    Args:
        classifier: an MLP classifier trained on the real rows (``blocks`` then ``head``),
            or None for unlabelled data: then the features are the standardised rows themselves.
    """

    def __init__(self, classifier: torch.nn.Module | None = None):
        super().__init__()
        self.classifier = classifier

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(features (N, F), logits (N, C) or None)."""
        if self.classifier is None:
            return x.flatten(1).float(), None
        self.classifier.eval()
        features = self.classifier.blocks(x.flatten(1))
        return features.float(), self.classifier.head(features).float()


class GenerationTask:
    """Generate rows like the training data (optionally of a requested class).

    Metrics: ``frechet`` (lower is better), ``diversity`` (spread of generated features over
    that of real ones; near 0 means collapse), and with class labels ``coverage`` (share of
    classes that receive at least a tenth of their fair share of samples) and, for conditional
    models, ``class_accuracy``.
    """

    name = "generation"
    default_loss = "non_saturating"
    loss_names = ("d_loss", "g_loss")

    def __init__(self, classes: list | None = None, *, evaluator: Evaluator | None = None,
                 discriminator_steps: int = 1):
        self.classes = classes
        self.evaluator = evaluator if evaluator is not None else Evaluator()
        self.discriminator_steps = discriminator_steps

    @property
    def output_size(self) -> int:
        return len(self.classes) if self.classes else 0

    def target_tensor(self, codes: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(codes, dtype=torch.long)

    def build_optimizer(self, model, train_spec, device: str):
        from ..training.adversarial import build_optimizers

        return build_optimizers(model, train_spec, device)

    def train_epoch(self, model, batches, loss_fn, optimizer, **options):
        from ..training.adversarial import train_gan_epoch

        return train_gan_epoch(model, batches, loss_fn, optimizer, discriminator_steps=self.discriminator_steps,
                               **options)

    @torch.no_grad()
    def evaluate(self, model, inputs: tuple, y: torch.Tensor, loss_fn=None) -> dict[str, float]:
        """Compare generated rows with the real rows ``inputs``; conditional models generate the
        same mix of classes as ``y``."""
        real = inputs[0]
        count = max(len(real), MIN_SAMPLES)
        labels = y.cpu().repeat((count + len(y) - 1) // len(y))[:count]
        generator = torch.Generator().manual_seed(SAMPLE_SEED)
        fake = model.sample(count, labels if model.num_classes else None, generator=generator)
        evaluator = self.evaluator.to(real.device)
        real_features, _ = evaluator(real)
        fake_features, logits = evaluator(fake)
        real_mean, real_cov = moments(real_features)
        fake_mean, fake_cov = moments(fake_features)
        result = {
            "frechet": frechet_distance(real_mean, real_cov, fake_mean, fake_cov),
            "diversity": float(np.trace(fake_cov) / max(np.trace(real_cov), 1e-12)),
        }
        if logits is not None:
            predicted = logits.argmax(dim=1).cpu()
            counts = torch.bincount(predicted, minlength=logits.shape[1]).numpy()
            result["coverage"] = float(np.mean(counts >= 0.1 * count / logits.shape[1]))
            if model.num_classes:
                result["class_accuracy"] = float((predicted == labels).float().mean())
        return result
