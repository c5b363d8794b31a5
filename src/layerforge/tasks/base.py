"""The abstract Task: everything the rest of layerforge asks a task.

A task says what a training step means and how its outputs read: the default loss and what
the outputs are compared with, the metrics and whether higher is better, the headline metric,
what can be monitored, how targets are encoded, how outputs decode into predictions and a
prediction table, which training recipe it needs, what is measured and drawn when training
ends, and what it adds to the report. Code outside ``tasks/`` asks these questions of the task
object and never compares a task's name.

Task classes are declared without importing torch or pandas (their methods import them when they
run): a spec names its task, and validating a spec must stay fast.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..decodings import Decoding
from ..errors import DataError
from ..figures import Block, Note


@dataclass
class Finished:
    """What a task measures and draws when training ends.

    Attributes:
        test: extra test metrics.
        pictures: name -> PNG file written under the run directory.
        record: entries for model.json (e.g. an anomaly threshold).
    """

    test: dict[str, float] = field(default_factory=dict)
    pictures: dict[str, Path] = field(default_factory=dict)
    record: dict[str, Any] = field(default_factory=dict)


class Task(ABC):
    """What a run learns to do. One final subclass per task.

    Class attributes:
        name: the spec's ``task``.
        default_loss: the loss when ``train.loss`` is not given.
        trains_on: what it learns from the rows: 'labels' (a value per row from a target
            column, which may be absent for tasks that do not need it), 'future' (the next steps
            of a series) or 'next_tokens' (a corpus). A data kind serves the tasks whose
            ``trains_on`` is what its rows provide (``Kind.targets``).
        target_form: what outputs are compared with, which decides the losses that suit the
            task: 'classes' (logits against class indices), 'values' (numbers against numbers
            of the same shape), 'tokens' (per-position logits against next tokens) or
            'adversarial' (a generator against a discriminator).
        metrics: metric name -> whether higher is better (reported for held-out rows).
        headline: the one metric that sums up a run.
        loss_names: what one training step reports (``train_<name>`` in the history).
        recipe: the training recipe (``layerforge.recipes``) it trains with.
        needs_target: whether the data must name a target column.
        stratify: whether its targets are classes whose proportions splits keep.
        detects_anomalies: whether ``data.anomaly_classes`` applies.
        example: a small spec (data and model sections) that trains it offline in seconds.
        manifest_fields: the fields of model.json it cannot be rebuilt without.
        scored_on_outputs: whether ``evaluate`` needs nothing but the model's forward pass, as
            ``measure(outputs_for(...))``: an exported model, which offers only that, can be
            scored the same way, and rows read a piece at a time by joining the pieces' outputs.
        averaged_over_rows: whether every number ``evaluate`` gives is a mean over rows of one
            size, so that the results of pieces of the rows, weighted by their rows, average to
            the whole's: rows read a piece at a time are scored piece by piece.
        serves: what a request to the HTTP service asks of it: 'rows' (an answer per input row,
            decoded as ``decoding`` says), 'samples' (``sample``) or 'text' (``generate``).
        calibrates: whether ``train.calibrate: temperature`` applies (``calibrate``).
        ensembles: whether runs of this task combine into an ensemble (``ensemble_outputs``).
        moved_targets: what of its targets augmentation moves with the picture
            (``Augment.pair``): 'masks' (a class per pixel), 'boxes', or None.
        attacks: whether adversarial attacks measure it (``layerforge attack``): its headline
            metric on perturbed inputs means something.
        explains: whether attributions explain its answers (``layerforge explain``): a class's
            probability or a predicted value, per input (a detection: the score of a picture's
            best box, ``explained_parts``).
    """

    name: ClassVar[str]
    default_loss: ClassVar[str]
    trains_on: ClassVar[str] = "labels"
    target_form: ClassVar[str]
    metrics: ClassVar[dict[str, bool]]
    headline: ClassVar[str]
    loss_names: ClassVar[tuple[str, ...]] = ("loss",)
    recipe: ClassVar[str] = "supervised"
    needs_target: ClassVar[bool] = True
    stratify: ClassVar[bool] = False
    detects_anomalies: ClassVar[bool] = False
    example: ClassVar[dict[str, Any]]
    manifest_fields: ClassVar[tuple[str, ...]] = ()
    scored_on_outputs: ClassVar[bool] = True
    averaged_over_rows: ClassVar[bool] = False
    serves: ClassVar[str] = "rows"
    calibrates: ClassVar[bool] = False
    ensembles: ClassVar[bool] = False
    moved_targets: ClassVar[str | None] = None
    attacks: ClassVar[bool] = False
    explains: ClassVar[bool] = False
    # the lowest and highest value each metric can take (None: unbounded), where it has them
    metric_bounds: ClassVar[dict[str, tuple[float | None, float | None]]] = {}

    classes: list | None = None

    # -- declarations: answered without data or torch ----------------------------------------

    @property
    def answers_rows(self) -> bool:
        """Whether it answers rows one by one (``serves`` is 'rows'): a codec reads them, a
        backend runs the network and a decoding answers, through every door."""
        return self.serves == "rows"

    @classmethod
    def monitors(cls, has_val: bool) -> list[str]:
        """The values of an epoch record that early stopping and plateau can monitor."""
        names = [f"train_{name}" for name in cls.loss_names]
        if has_val:
            if cls.loss_names == ("loss",):
                names.append("val_loss")
            names += [f"val_{metric}" for metric in cls.metrics]
        return names

    @classmethod
    def metric_names(cls) -> list[str]:
        """What held-out rows are scored on: the task's metrics, and ``loss`` when one training
        step has a single loss (what a search may compare trials on)."""
        return list(cls.metrics) + (["loss"] if cls.loss_names == ("loss",) else [])

    @classmethod
    def higher_is_better(cls, monitor: str) -> bool:
        """Whether a larger value of ``monitor`` ('val_accuracy', 'train_loss', 'r2') is better."""
        metric = monitor.split("_", 1)[1] if monitor.startswith(("train_", "val_", "test_")) else monitor
        return cls.metrics.get(metric, False)

    @classmethod
    def spec_problems(cls, spec) -> list[str]:
        """Problems of a whole spec that come from training for this task."""
        problems = []
        train = spec.train
        if train.discriminator_optimizer is not None:
            problems.append("train.discriminator_optimizer: only a gan has a discriminator; remove it")
        if train.discriminator_steps != 1:
            problems.append("train.discriminator_steps: only a gan has a discriminator; remove it")
        if spec.data.anomaly_classes is not None and not cls.detects_anomalies:
            problems.append("data.anomaly_classes: anomaly detection needs model type autoencoder")
        return problems

    @classmethod
    def chance_loss(cls, classes: int | None) -> tuple[float, str] | None:
        """The training loss of a model that learned nothing, and what such a model does (for
        the doctor's underfitting verdict); None when there is no such yardstick."""
        return None

    # -- building ------------------------------------------------------------------------------

    @classmethod
    @abstractmethod
    def fit(cls, labels, train: np.ndarray, encoder, data_spec, source: str) -> Task:
        """The task for a training run, its target encoding fitted on the data.

        Args:
            labels: each row's raw target (a pandas Series), or None when the data has none.
            train: the training rows.
            encoder: the data's fitted encoder (some tasks read its state).
            data_spec: the spec's data section (some tasks read their options there).
            source: the data's name, for messages.
        """

    @classmethod
    @abstractmethod
    def from_manifest(cls, manifest, encoder, run_dir: Path | None = None) -> Task:
        """The task a run's model.json describes (``encoder``: the data's encoder rebuilt from
        it; ``run_dir`` for files the task keeps there)."""

    @classmethod
    def from_targets(cls, y: np.ndarray) -> Task:
        """The task for raw arrays given to ``Trainer(task=name)``."""
        raise TypeError(f"Trainer(task='{cls.name}') needs a task object built from the data "
                        f"(layerforge.tasks.get('{cls.name}')...)")

    def record(self) -> dict[str, Any]:
        """What model.json keeps about the task's targets (``classes``, ``target_scaling``)."""
        return {"classes": self.classes, "target_scaling": None}

    @property
    def output_size(self) -> int:
        """Numbers the model's head produces per row (0: the output has the input's shape)."""
        return 0

    @property
    def num_classes(self) -> int:
        """The classes of the data (what a conditional model is conditioned on)."""
        return len(self.classes) if self.classes else 0

    # -- targets -------------------------------------------------------------------------------

    def encode_targets(self, labels, source: str | None = None) -> np.ndarray:
        """Training targets from raw labels (a pandas Series) or targets the data made."""
        return np.asarray(labels)

    def own_loss(self, loss_spec) -> Any:
        """The training loss this task builds itself (``(outputs, y) -> loss``), or None when
        ``train.loss`` (or the task's ``default_loss``) names one from the registry."""
        return None

    def target_tensor(self, y: np.ndarray):
        import torch

        return torch.as_tensor(y, dtype=torch.long)

    def evaluation_needs_targets(self, model) -> bool:
        """Whether evaluating new rows with ``model`` needs their targets."""
        return True

    # -- training and evaluation ---------------------------------------------------------------

    def objective(self, loss_fn):
        """The training loss of a batch, ``(model, inputs, y) -> loss``."""

        def loss(model, inputs: tuple, y):
            return loss_fn(model(*inputs), y)

        return loss

    def outputs_for(self, model, inputs: tuple, y):
        """The outputs that are scored against ``y`` (all rows, evaluation mode)."""
        from ..models.protocol import predict_outputs

        return predict_outputs(model, inputs)

    @abstractmethod
    def scores(self, outputs, y) -> dict[str, float]:
        """The task's metrics of ``outputs`` against ``y``."""

    def evaluate(self, model, inputs: tuple, y, loss_fn) -> dict[str, float]:
        """Loss and metrics on held-out rows."""
        return self.measure(self.outputs_for(model, inputs, y), y, loss_fn)

    def measure(self, outputs, y, loss_fn) -> dict[str, float]:
        """Loss and metrics of ``outputs_for``'s outputs against ``y`` (what ``evaluate`` is for
        a task ``scored_on_outputs``)."""
        return {"loss": float(loss_fn(outputs, y)), **self.scores(outputs, y)}

    # -- prediction ----------------------------------------------------------------------------

    def predictions(self, model, inputs: tuple) -> np.ndarray:
        """Decoded predictions for new rows (what ``run.predict`` returns)."""
        raise DataError(f"a {self.name} model does not predict rows")

    def prediction_table(self, model, inputs: tuple, target: str | None):
        """The predictions as a table, one row per input row (``layerforge predict``): the
        decoding's columns of the model's outputs."""
        import pandas as pd

        return pd.DataFrame(self.decoding().columns(answer_outputs(model, inputs), input_arrays(inputs), target))

    def probabilities(self, model, inputs: tuple) -> np.ndarray:
        raise DataError(f"predict_proba is for classification runs; this run does {self.name}")

    def embed(self, model, inputs: tuple) -> np.ndarray:
        raise DataError(f"embed is for reconstruction runs; this run does {self.name}")

    def recommendations(self, model, encoder, users, k: int):
        """Each user's ``k`` best items as a table (recommendation runs)."""
        raise DataError(f"recommend is for recommendation runs; this run does {self.name}")

    # -- explanations --------------------------------------------------------------------------

    def explained(self, model):
        """The network whose outputs (rows, outputs) attributions explain (``layerforge
        explain``): the model itself, or a view of its outputs as one row of numbers each."""
        return model

    def explained_parts(self, model, inputs: tuple, target=None) -> tuple | None:
        """For a task that explains a part of each answer rather than a class or a value: which
        of ``explained(model)``'s outputs to explain per row (a tensor of indices) and what each
        is, in words; None for the others (a class's probability or a value is explained)."""
        return None

    def sample(self, model, n: int, label=None, seed: int = 0) -> np.ndarray:
        raise DataError(f"sample is for generation and reconstruction runs; this run does {self.name}")

    def sample_labels(self, model, n: int, label=None) -> list | None:
        """The class of each of ``n`` samples (conditional generators), or None."""
        return None

    def generate(self, model, encoder, prompt: str, length: int, temperature: float, top_k: int | None,
                 seed: int) -> str:
        raise DataError("generate is for language-model runs (a causal transformer on a text corpus)")

    @classmethod
    def bounds_of(cls, metric: str) -> tuple[float | None, float | None]:
        """The range of ``metric``'s values ((None, None) when the task does not know one)."""
        return cls.metric_bounds.get(metric, (None, None))

    def decoding(self) -> Decoding:
        """How this task's outputs become answers (``layerforge.decodings``): what ``predict``,
        the torch-free runtime and the HTTP service all decode outputs with."""
        return Decoding()

    def searching(self, beam_size: int | None = None) -> Task:
        """This task with its answers written by a beam search of ``beam_size`` (None: as the run
        writes them); see ``Decoding.searching``."""
        self.decoding().searching(beam_size)  # refuses a beam size where answers are not searched for
        return self

    def calibrate(self, model, inputs: tuple, y) -> dict[str, Any]:
        """Fit what makes the outputs' probabilities trustworthy on held-out rows; returns the
        model.json entries it keeps (tasks whose ``calibrates`` is true)."""
        raise DataError(f"train.calibrate is for classification; this run does {self.name}")

    # -- ensembles -------------------------------------------------------------------------------

    def for_ensemble(self) -> Task:
        """The task that reads an ensemble's combined outputs (``ensemble_outputs``)."""
        raise DataError(f"{self.name} runs do not combine into an ensemble")

    def ensemble_outputs(self, members: list[tuple[Task, Any]]):
        """One output tensor for the rows, in ``for_ensemble()``'s terms, from each member's task
        and outputs on the same rows (each member decodes its own scaling): the decoding's rule
        (``Decoding.combine``), which the exported runtime and the service combine by too."""
        if not self.ensembles:
            raise DataError(f"{self.name} runs do not combine into an ensemble")
        return combined_outputs(self.decoding(), members)

    def ensemble_columns(self, members: list[tuple[Task, Any]], combined) -> dict[str, np.ndarray]:
        """Per-row columns that say how much the members disagree (an uncertainty), by the
        decoding's rule (``Decoding.spread``)."""
        return self.decoding().spread(decoded_members(members), combined.cpu().numpy())

    # -- when training ends --------------------------------------------------------------------

    def finish(self, model, tensors: dict, *, encoder, images: Path, history: list[dict]) -> Finished:
        """Extra test metrics, pictures and model.json entries once training ended.

        Args:
            tensors: split name -> (inputs, y) on the model's device: 'train' and the held-out
                splits that have rows.
        """
        return Finished()

    def report_blocks(self, model, held_out, *, encoder, pictures: dict[str, Path], target: str | None) -> list[Block]:
        """What the report's Results section shows (``layerforge.figures`` blocks).

        Args:
            held_out: returns (inputs, y) of the test rows (or validation rows), or None when
                the run has none; called only by tasks that show them (rebuilding them may
                read the source data, and raises DataError when it changed or is gone).
            pictures: the pictures ``finish`` drew.
        """
        return [Note("no results to show for this task")]


class Searched(Task):
    """A task whose answers a search writes from the network's graphs (``search``, a decoding
    whose ``outputs`` runs them: sequence-to-sequence, transcription), so that evaluation
    scores the answers ``predict`` gives, not one forward pass."""

    scored_on_outputs = False
    search: Decoding

    @classmethod
    def of(cls, encoder) -> Searched:
        """The task its data's encoder describes: the search and the targets' tokenizer live in
        the encoder's state, so training and a reloaded run build the same task."""
        raise NotImplementedError

    @classmethod
    def fit(cls, labels, train: np.ndarray, encoder, data_spec, source: str) -> Searched:
        return cls.of(encoder)

    @classmethod
    def from_manifest(cls, manifest, encoder, run_dir: Path | None = None) -> Searched:
        return cls.of(encoder)

    def decoding(self) -> Decoding:
        return self.search

    def searching(self, beam_size: int | None = None) -> Searched:
        found = self.search.searching(beam_size)
        if found is self.search:
            return self
        other = copy.copy(self)
        other.search = found
        return other

    def answer_ids(self, model, inputs: tuple) -> np.ndarray:
        """The answers' token ids, written by the run's search with the network's graphs."""
        return self.search.outputs(graph_runner(model), input_arrays(inputs))

    def loss_weight(self, y) -> int:
        """What a batch of targets weighs in the held-out loss: by default its rows."""
        return len(y)

    def held_out_loss(self, model, inputs: tuple, y, loss_fn) -> float:
        """The training objective over the rows, a batch at a time, each batch weighted by
        ``loss_weight``."""
        import torch

        rows = getattr(model, "evaluation_rows", 1024)
        objective, total, weight = self.objective(loss_fn), 0.0, 0
        model.eval()
        with torch.inference_mode():
            for i in range(0, len(y), rows):
                target = y[i : i + rows]
                count = self.loss_weight(target)
                total += float(objective(model, tuple(t[i : i + rows] for t in inputs), target)) * count
                weight += count
        return total / max(weight, 1)

    def evaluate(self, model, inputs: tuple, y, loss_fn) -> dict[str, float]:
        """The held-out loss, and the scores of the answers the run's search writes."""
        return {"loss": self.held_out_loss(model, inputs, y, loss_fn),
                **self.scores(self.answer_ids(model, inputs), y)}

    def predictions(self, model, inputs: tuple) -> np.ndarray:
        return self.search.predictions(self.answer_ids(model, inputs), inputs)

    def prediction_table(self, model, inputs: tuple, target: str | None):
        import pandas as pd

        return pd.DataFrame(self.search.columns(self.answer_ids(model, inputs), inputs, target))


def answer_outputs(model, inputs: tuple) -> np.ndarray:
    """The model's outputs for encoded rows, as the float32 array decodings read (evaluation
    mode, batched; ``model`` may be an exported graph called like the network)."""
    from ..models.protocol import predict_outputs

    return predict_outputs(model, inputs).float().cpu().numpy()


def graph_runner(model):
    """``run(name, arrays) -> array``: the network's graph ``name`` (``Network.graphs``) on numpy
    inputs, in evaluation mode, a batch of rows at a time; what ``Decoding.outputs`` runs with
    the PyTorch backend."""
    import torch

    from ..models.protocol import Network

    modules = model.graphs() if isinstance(model, Network) else {"model": model}
    parameter = next(model.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    rows = getattr(model, "evaluation_rows", 1024)
    model.eval()

    def run(name: str, arrays: tuple):
        tensors = []
        for array in arrays:
            tensor = torch.as_tensor(np.ascontiguousarray(array)) if not torch.is_tensor(array) else array
            tensors.append((tensor.float() if tensor.is_floating_point() else tensor.long()).to(device))
        with torch.inference_mode():
            parts = [modules[name](*(t[i : i + rows] for t in tensors)) for i in range(0, len(tensors[0]), rows)]
        if not parts:
            return np.zeros((0,), np.float32)
        return torch.cat(parts).float().cpu().numpy()

    return run


def input_arrays(inputs: tuple) -> tuple[np.ndarray, ...]:
    """Encoded inputs (tensors) as arrays, for decodings that read them (anomaly scores)."""
    return tuple(t.detach().cpu().numpy() if hasattr(t, "detach") else np.asarray(t) for t in inputs)


def decoded_members(members) -> list:
    """Each member's decoding and outputs (an array), from its task and outputs (a tensor)."""
    return [(task.decoding(), outputs.detach().float().cpu().numpy()) for task, outputs in members]


def combined_outputs(decoding, members):
    """An ensemble's outputs as a tensor, combined by ``decoding``'s rule."""
    import torch

    return torch.as_tensor(decoding.combine(decoded_members(members)), dtype=members[0][1].dtype)
