"""An ensemble run read back: its ``EnsemblePredictor`` (each member reads the rows with its own
preprocessing; the task combines their outputs) and its score on the test rows every member held
out. ``layerforge.evaluation.ensemble`` builds ensembles."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import tasks
from ..errors import DataError
from ..models.protocol import finite_outputs, predict_outputs
from ..recipes.scaffold import as_tensors
from ..training import losses
from .manifest import read_manifest
from .predictor import Predictor, _answers, indexed_like
from .store import MODEL, recorded_parts

MEMBERS = "members"


class _Outputs(torch.nn.Module):
    """Outputs already computed, row ``i`` for index ``i``: the task's own decoding and scoring
    read an ensemble's combined outputs through it, batched as they batch a model."""

    def __init__(self, outputs: torch.Tensor):
        super().__init__()
        self.outputs = outputs

    def forward(self, index: torch.Tensor) -> torch.Tensor:
        return self.outputs[index]


class EnsemblePredictor(Predictor):
    """The Predictor of an ensemble: each member encodes the rows with its own preprocessing and
    predicts; the task combines their outputs."""

    def __init__(self, manifest, members: list[Predictor]):
        lead = members[0]
        super().__init__(manifest, None, lead.task.for_ensemble(), lead.encoder)
        self.members = members

    @classmethod
    def load(cls, run_dir: str | Path, manifest=None) -> EnsemblePredictor:
        run_dir = Path(run_dir)
        manifest = manifest or read_manifest(run_dir / MODEL)
        members = [Predictor.load(run_dir / member) for member in manifest.ensemble.members]
        same_task([member.manifest for member in members], [str(run_dir / m) for m in manifest.ensemble.members])
        return cls(manifest, members)

    def outputs(self, data, **options) -> tuple[list[tuple[Any, torch.Tensor]], Any]:
        """Each member's (task, outputs) on the rows, and the rows' labels when they have them."""
        found, labels = [], None
        for member in self.members:
            inputs, labels = member.encode(data, **options)
            found.append((member.task, predict_outputs(member.model, inputs)))
        return found, labels

    def combined(self, members) -> tuple[torch.nn.Module, tuple[torch.Tensor]]:
        """A module and inputs from which the ensemble's task reads the combined outputs."""
        outputs = self.members[0].task.ensemble_outputs(members)
        return _Outputs(outputs), (torch.arange(len(outputs)),)

    @_answers
    def predict(self, data, **options) -> np.ndarray:
        return self.task.predictions(*self.combined(self.outputs(data, **options)[0]))

    @_answers
    def predict_proba(self, data, **options) -> np.ndarray:
        return self.task.probabilities(*self.combined(self.outputs(data, **options)[0]))

    @_answers
    def predict_table(self, data, **options):
        """The ensemble's predictions, and how much its members disagree on each row."""
        members, _ = self.outputs(data, **options)
        model, index = self.combined(members)
        table = self.task.prediction_table(model, index, self.manifest.target)
        for name, values in self.members[0].task.ensemble_columns(members, model.outputs).items():
            table[name] = values
        return indexed_like(table, data)

    @_answers
    def evaluate(self, data, loss_fn, **options) -> dict[str, float]:
        members, labels = self.outputs(data, **options)
        model, index = self.combined(members)
        y = self.targets(labels, index, str(data) if isinstance(data, (str, Path)) else None)
        return {**self.task.evaluate(model, index, y, loss_fn), "rows": int(len(y))}

    def _not_for_ensembles(self, what: str):
        raise DataError(f"{what} is not offered by ensembles; ask one member (runs in {MEMBERS}/ of the ensemble)")

    def embed(self, data, **options):
        self._not_for_ensembles("embed")

    def embed_table(self, data, **options):
        self._not_for_ensembles("embed")

    def anomalies(self, data, **options):
        self._not_for_ensembles("anomaly detection")

    def sample(self, n: int = 100, *, label=None, seed: int = 0):
        self._not_for_ensembles("sample")

    def generate(self, *args, **kwargs):
        self._not_for_ensembles("generate")


def same_task(manifests: list, names: list[str]) -> None:
    """Members must predict the same thing the same way: task, target and classes."""
    lead = manifests[0]
    for manifest, name in zip(manifests, names):
        if manifest.ensemble is not None:
            raise DataError(f"{name} is itself an ensemble; list its members instead")
    if not tasks.get(lead.task).ensembles:
        raise DataError(f"{names[0]}: {lead.task} runs do not combine into an ensemble "
                        "(classification and regression do)")
    for manifest, name in zip(manifests[1:], names[1:]):
        for field in ("task", "target", "classes"):
            if getattr(manifest, field) != getattr(lead, field):
                raise DataError(f"{name}: its {field} ({getattr(manifest, field)!r}) differs from {names[0]}'s "
                                f"({getattr(lead, field)!r}); an ensemble's members predict the same thing")


def shared_test_rows(runs: list) -> tuple[np.ndarray, list[np.ndarray]]:
    """The source rows every member tested on and none trained or validated on, and where each
    member keeps them among its own test rows.

    Raises:
        DataError: the members were trained on different data, or share no such row.
    """
    recorded = [recorded_parts(run.path) for run in runs]
    if any(r is None for r in recorded):
        raise DataError("a member has no split.json: the rows it held out are unknown")
    if len({fingerprint for fingerprint, _ in recorded}) > 1:
        raise DataError("the members were trained on different data (their sources' fingerprints differ)")
    common = recorded[0][1]["test"]
    seen = np.zeros(0, dtype=np.int64)
    for _, parts in recorded:
        common = np.intersect1d(common, parts["test"])
        seen = np.union1d(seen, np.union1d(parts["train"], parts["val"]))
    common = np.setdiff1d(common, seen)
    if len(common) == 0:
        raise DataError("the members share no test row that none of them trained or validated on (their splits "
                        "differ); train them on one split (`layerforge ensemble SPEC --seeds N` keeps it fixed) or "
                        "evaluate the ensemble on a file (layerforge evaluate ENSEMBLE --data FILE)")
    return common, [np.searchsorted(parts["test"], common) for _, parts in recorded]


def _take(arrays: tuple, index: np.ndarray) -> tuple:
    return tuple(np.asarray(array)[index] for array in arrays)


def on_shared_rows(runs: list, predictor: EnsemblePredictor) -> dict[str, Any]:
    """The members and the ensemble on the test rows they all held out: ``model`` and ``index``
    (the combined outputs, read by the ensemble's task), the encoded targets ``y``, and
    ``members``, each member's test metrics on those rows by its run's name."""
    rows, where = shared_test_rows(runs)
    members, scores, y = [], {}, None
    with torch.no_grad(), finite_outputs():
        for run, index in zip(runs, where):
            inputs, targets = run.held_out("test")
            tensors, target = as_tensors((_take(inputs, index), np.asarray(targets)[index]), run.task, "cpu")
            outputs = predict_outputs(run.model, tensors)
            members.append((run.task, outputs))
            scores[run.path.name] = {**run.task.evaluate(_Outputs(outputs), (torch.arange(len(outputs)),), target,
                                                         run.loss()), "rows": int(len(rows))}
            y = target if y is None else y
        model, index = predictor.combined(members)
    return {"model": model, "index": index, "y": y, "members": scores}


def score_on_shared_rows(runs: list, predictor: EnsemblePredictor) -> dict[str, Any]:
    """The ensemble's test metrics and each member's, on the rows they all held out."""
    found = on_shared_rows(runs, predictor)
    loss = losses.for_task(runs[0].spec.train.loss, predictor.task)
    with torch.no_grad():
        test = predictor.task.evaluate(found["model"], found["index"], found["y"], loss)
    return {"test": {**test, "rows": int(len(found["y"]))}, "members": found["members"]}
