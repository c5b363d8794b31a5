"""Generation (GANs): quality metrics that need no downloaded weights.

Generated rows are judged in the feature space of a classifier trained on the same real data
(a ``Judge``, trained by the GAN recipe when the run starts): the Fréchet distance between real
and generated features, and for labelled data the share of generated rows the classifier
assigns to the requested class and how many classes appear at all (a mode-collapse check).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..codecs.cells import shown
from ..data.labels import category_key, checked_classes, encode_classes
from ..decodings import Samples
from ..errors import CheckpointError, DataError
from ..figures import Note, Picture
from ..models import build_model
from ..models.configs import MLPConfig
from .base import Finished, Task

# Codes for evaluation come from this seed: every epoch is judged on the same codes.
SAMPLE_SEED = 1234
MIN_SAMPLES = 1000
JUDGE_FILE = "evaluator.safetensors"
# The classifier whose features the quality metrics use: small, quick, trained on real rows.
JUDGE_LAYERS = [128, 64]
JUDGE_DROPOUT = 0.2


def frechet_distance(mean_a: np.ndarray, cov_a: np.ndarray, mean_b: np.ndarray, cov_b: np.ndarray) -> float:
    """``|m_a - m_b|^2 + tr(C_a + C_b - 2 (C_a C_b)^(1/2))`` between two Gaussians."""
    values, vectors = np.linalg.eigh(cov_a)
    root_a = (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T
    middle = np.linalg.eigvalsh(root_a @ cov_b @ root_a)  # same eigenvalues as C_a C_b, symmetric
    cross = np.sqrt(np.clip(middle, 0, None)).sum()
    diff = mean_a - mean_b
    return float(diff @ diff + np.trace(cov_a) + np.trace(cov_b) - 2 * cross)


def moments(features) -> tuple[np.ndarray, np.ndarray]:
    array = features.detach().double().cpu().numpy()
    return array.mean(axis=0), np.cov(array, rowvar=False)


def judge_classifier(inputs, num_classes: int, layers: list[int] = JUDGE_LAYERS):
    """The (untrained) MLP classifier that judges generated rows."""
    return build_model(MLPConfig(layers=list(layers), dropout=JUDGE_DROPOUT), inputs, num_classes)


def load_judge(run_dir: Path, layers: list[int] | None, inputs, num_classes: int, sha256: str | None = None):
    """The judge a run saved (``layers``: its hidden layers, from model.json's ``evaluator``;
    ``sha256``: its file's checksum when the run listed it), or the plain one for unlabelled data
    (None)."""
    from ..models.gan import Judge
    from ..training.checkpoint import load_weights

    if layers is None:
        return Judge()
    weights = load_weights(Path(run_dir) / JUDGE_FILE, sha256)
    try:
        classifier = judge_classifier(inputs, num_classes, layers)
        classifier.load_state_dict(weights)
    except (RuntimeError, ValueError, TypeError) as error:
        raise CheckpointError(f"{Path(run_dir) / JUDGE_FILE} does not fit the judge model.json describes "
                              f"('evaluator': layers {layers}): {str(error).splitlines()[0]}") from None
    return Judge(classifier)


class GenerationTask(Task):
    """Generate rows like the training data (optionally of a requested class).

    Metrics: ``frechet`` (lower is better), ``diversity`` (spread of generated features over
    that of real ones; near 0 means collapse), and with class labels ``coverage`` (share of
    classes that receive at least a tenth of their fair share of samples) and, for conditional
    models, ``class_accuracy``.
    """

    name = "generation"
    default_loss = "non_saturating"
    target_form = "adversarial"
    metrics = {"frechet": False, "class_accuracy": True, "coverage": True, "diversity": True}
    headline = "frechet"
    scored_on_outputs = False  # samples come from the generator, not the forward pass
    serves = "samples"
    example = {"data": {"dataset": "digits"},
               "model": {"type": "gan", "latent_size": 4, "generator": [16], "discriminator": [16]}}
    loss_names = ("d_loss", "g_loss")
    recipe = "gan"
    needs_target = False
    stratify = True

    def __init__(self, classes: list | None = None, *, judge=None):
        self.classes, self.judge = classes, judge

    @classmethod
    def spec_problems(cls, spec) -> list[str]:
        problems = []
        train, data = spec.train, spec.data
        if spec.data.anomaly_classes is not None:
            problems.append("data.anomaly_classes: anomaly detection needs model type autoencoder")
        if train.l1 or train.l2:
            problems.append("train.l1/l2: not used for a gan; use train.optimizer.weight_decay instead")
        if data.augment is not None:
            problems.append("data.augment: augmenting only the real images of a gan teaches the generator "
                            "the augmentations; remove it")
        if train.early_stopping is not None and train.early_stopping.monitor == "val_loss":
            problems.append("train.early_stopping.monitor: a gan has no validation loss; monitor val_frechet")
        return problems

    @classmethod
    def fit(cls, labels, train: np.ndarray, encoder, data_spec, source: str) -> GenerationTask:
        return cls(checked_classes(labels) if labels is not None else None)

    @classmethod
    def from_manifest(cls, manifest, encoder, run_dir: Path | None = None) -> GenerationTask:
        layers = manifest.evaluator.layers if manifest.evaluator else None
        judge = load_judge(run_dir, layers, manifest.inputs, len(manifest.classes or []),
                           (manifest.files or {}).get(JUDGE_FILE))
        return cls(manifest.classes, judge=judge)

    def encode_targets(self, labels, source: str | None = None) -> np.ndarray:
        if self.classes is None:
            return np.zeros(len(labels), dtype=np.int64)
        return encode_classes(labels, self.classes, source)

    def evaluation_needs_targets(self, model) -> bool:
        return model.num_classes > 0  # a conditional generator is asked for the rows' classes

    def scores(self, outputs, y) -> dict[str, float]:  # evaluate() is overridden: it generates
        raise NotImplementedError

    def evaluate(self, model, inputs: tuple, y, loss_fn=None) -> dict[str, float]:
        """Compare generated rows with the real rows ``inputs``; conditional models generate the
        same mix of classes as ``y``."""
        import torch

        from ..models.gan import Judge

        real = inputs[0]
        count = max(len(real), MIN_SAMPLES)
        labels = y.cpu().repeat((count + len(y) - 1) // len(y))[:count]
        generator = torch.Generator().manual_seed(SAMPLE_SEED)
        fake = model.sample(count, labels if model.num_classes else None, generator=generator)
        judge = (self.judge if self.judge is not None else Judge()).to(real.device)
        real_features, _ = judge(real)
        fake_features, logits = judge(fake)
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

    # -- generating ------------------------------------------------------------------------------

    def _label_codes(self, model, n: int, label):
        """Class indices for ``n`` samples of class ``label`` (None: the classes in turn)."""
        import torch

        conditional = model.num_classes > 0
        if label is None:
            return torch.arange(n) % len(self.classes) if conditional else None
        if not conditional:
            raise DataError("--label needs a conditional GAN (model.conditional: true); this model draws "
                            "samples of every class at random")
        keys = [category_key(c) for c in self.classes]
        if category_key(label) not in keys:
            raise DataError(f"label {shown(label)} is not a class of this model "
                            f"(classes: {', '.join(map(str, self.classes))})")
        return torch.full((n,), keys.index(category_key(label)), dtype=torch.long)

    def sample(self, model, n: int, label=None, seed: int = 0) -> np.ndarray:
        import torch

        generator = torch.Generator().manual_seed(seed)
        return model.sample(n, self._label_codes(model, n, label), generator=generator).cpu().numpy()

    def sample_labels(self, model, n: int, label=None) -> list | None:
        codes = self._label_codes(model, n, label)
        return None if codes is None else [self.classes[c] for c in codes.tolist()]

    def decoding(self) -> Samples:
        return Samples(self.classes)

    def predictions(self, model, inputs: tuple) -> np.ndarray:
        raise DataError("a GAN generates rows rather than predicting them: use sample (layerforge sample RUN)")

    # -- when training ends ----------------------------------------------------------------------

    def finish(self, model, tensors: dict, *, encoder, images: Path, history: list[dict]) -> Finished:
        """The real-data floor of the Fréchet distance, the sample grid and the Fréchet curve."""
        import torch

        from ..figures import pictures as draw

        finished = Finished()
        train_x = tensors["train"][0][0]
        if "test" in tensors:
            judge = self.judge.to(train_x.device)
            train_features, _ = judge(train_x)
            test_features, _ = judge(tensors["test"][0][0])
            # how far the real test rows are from the real training rows: the best a generator can hope for
            finished.test["real_frechet"] = frechet_distance(*moments(train_features), *moments(test_features))
        if model.num_classes:
            labels = torch.arange(model.num_classes).repeat_interleave(10)
            title = "generated samples, one row per class"
        else:
            labels, title = None, "generated samples"
        count = len(labels) if labels is not None else 100
        samples = model.sample(count, labels, generator=torch.Generator().manual_seed(SAMPLE_SEED)).cpu().numpy()
        seen = encoder.pictures(samples)
        if seen is not None:
            rows = [str(c) for c in self.classes] if model.num_classes and self.classes else None
            real = encoder.pictures(train_x[:1000].cpu().numpy())
            finished.pictures["samples"] = draw.image_grid(seen, images / "samples.png", columns=10, row_labels=rows,
                                                           title=title, value_range=draw.display_range(real))
        epochs = [r["epoch"] for r in history if "val_frechet" in r]
        if epochs:
            values = [r["val_frechet"] for r in history if "val_frechet" in r]
            finished.pictures["frechet"] = draw.curve(epochs, {"validation": values}, images / "frechet.png",
                                                      ylabel="Fréchet distance (lower is better)",
                                                      title="generated vs real rows")
        return finished

    def report_blocks(self, model, held_out, *, encoder, pictures, target):

        shown = [Picture(name, path.read_bytes()) for name, path in pictures.items() if path.is_file()]
        return shown or [Note("no pictures for this kind of data")]
