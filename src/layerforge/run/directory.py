"""A trained run, loaded from its directory: metrics, history, the spec, and predictions through
its ``Predictor``. No pickle anywhere: YAML, JSON and safetensors."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np

from .. import tasks
from ..data.kinds import kind_of
from ..data.prepare import encode_parts, load_source, split_parts, taken
from ..errors import CheckpointError, DataError
from ..export import current, export_run
from ..export.onnx import OnnxModule
from ..files import read_json, read_jsonl
from ..models.protocol import finite_outputs
from ..recipes.scaffold import as_tensors
from ..spec.load import load_spec
from ..training import losses
from .ensemble import EnsemblePredictor, score_on_shared_rows
from .manifest import read_manifest
from .predictor import Predictor
from .records import Metrics
from .store import HISTORY, METRICS, MODEL, SPEC, SPLIT, read_held_out, read_record, read_split, verified


class Run:
    """A trained run loaded from its directory.

    Use ``layerforge.load_run(path)``. Attributes: ``path``, ``manifest`` (model.json, typed),
    ``meta`` (the same as a dict), ``spec``, ``metrics`` (metrics.json), ``history`` (one record
    per epoch), and ``model``, ``task`` and ``predictor`` once used.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_dir():
            raise CheckpointError(f"run directory not found: {self.path}")
        self.manifest = read_manifest(self.path / MODEL)
        self.meta = self.manifest.to_json()
        checksums = self.manifest.files
        self.spec = load_spec(verified(self.path, SPEC, checksums), check_files=False)
        self.metrics = {}
        if (self.path / METRICS).is_file():
            read_record(self.path, METRICS, Metrics, checksums)
            self.metrics = read_json(self.path / METRICS)
        self.history = read_jsonl(verified(self.path, HISTORY, checksums))
        self._predictor = None

    def __repr__(self) -> str:
        return f"Run('{self.path}')"

    @property
    def predictor(self) -> Predictor:
        if self._predictor is None:
            loader = EnsemblePredictor if self.manifest.ensemble else Predictor
            self._predictor = loader.load(self.path, self.manifest)
        return self._predictor

    @property
    def members(self) -> list[Run]:
        """An ensemble's member runs (empty for a single run)."""
        ensemble = self.manifest.ensemble
        return [Run(self.path / member) for member in ensemble.members] if ensemble else []

    @property
    def model(self):
        """The trained ``nn.Module`` (built from model.json, weights from model.safetensors)."""
        return self.predictor.model

    @property
    def task(self) -> tasks.Task:
        return self.predictor.task

    def loss(self):
        """The run's loss (its spec's ``train.loss``, or the task's default)."""
        return losses.for_task(self.spec.train.loss, self.task)

    # -- the run's own rows ------------------------------------------------------------------------

    def held_out(self, part: str = "test"):
        """(inputs, y) of one part of the run's own split: as the run keeps them
        (heldout.safetensors), or rebuilt from its source data with the run's fitted encoder,
        taking the rows split.json records (a run written before split.json existed is split
        again with its seed).

        Raises:
            DataError: the rows are not kept and the source is gone or changed since training.
        """
        if self.manifest.ensemble:
            raise DataError("an ensemble's members each encode the rows their own way; ask a member "
                            "(run.members) for its held-out rows")
        kept = read_held_out(self.path, part, self.manifest.files)
        if kept is not None:
            return kept
        data = self.spec.data
        try:
            source = load_source(data, self.manifest.task)
        except (DataError, OSError) as error:
            raise DataError(f"the run's source data ({self.manifest.source}) is not available: {error}; "
                            "evaluate on a file instead (layerforge evaluate RUN --data FILE)") from None
        if (self.path / SPLIT).is_file():
            parts = read_split(self.path, source, self.manifest.files)
        else:
            _, parts = split_parts(data, kind_of(data), source, tasks.get(self.manifest.task), self.spec.seed)
        parts = {part: parts[part]}
        if source.streamed:  # read just these rows from the file
            source, parts = taken(source, parts)
        predictor = self.predictor
        (inputs, y), = encode_parts(predictor.encoder, predictor.task, source, parts).values()
        return inputs, y

    # -- predictions -----------------------------------------------------------------------------

    def predict(self, data, *, unknown: str | None = None, ignore_extra: bool = False) -> np.ndarray:
        """Predictions for new rows: class labels, values on the target's scale, the next steps of
        a series, or an autoencoder's anomaly scores (its reconstruction errors).

        Args:
            data: a DataFrame, a .csv/.parquet file or an array whose columns are the training
                features in order (tables); arrays, .npz files, image files or folders, texts.
            unknown: 'error' or 'bucket' for categories unseen in training (default: the run's
                ``data.unknown_categories``).
            ignore_extra: drop columns the model does not know instead of raising.

        Raises:
            DataError: missing or unexpected columns, wrong types, unseen categories.
        """
        return self._by_pieces(self.predictor.predict, data, unknown=unknown, ignore_extra=ignore_extra)

    def predict_proba(self, data, *, unknown: str | None = None, ignore_extra: bool = False) -> np.ndarray:
        """Class probabilities, shape (rows, classes) in the order of ``meta['classes']``."""
        return self._by_pieces(self.predictor.predict_proba, data, unknown=unknown, ignore_extra=ignore_extra)

    def predict_table(self, data, *, unknown: str | None = None, ignore_extra: bool = False, keep=()):
        """The predictions as the table ``layerforge predict`` writes: the prediction, and what the
        task adds (each class's probability, an ensemble's spread); a DataFrame's index is kept,
        and files read from a folder are named in a ``file`` column.

        Args:
            keep: columns of the rows copied into the table first, as they are (an identifier).
        """
        import pandas as pd

        pieces = list(self.predictor.predict_pieces(data, keep=keep, unknown=unknown, ignore_extra=ignore_extra))
        return pieces[0] if len(pieces) == 1 else pd.concat(pieces)

    def _by_pieces(self, method, data, **options) -> np.ndarray:
        """``method`` on ``data`` a piece at a time (a table file in chunks, so that only one is
        in memory), its answers joined."""
        answers = [method(piece, **options) for piece in self.predictor.encoder.pieces(data)]
        return answers[0] if len(answers) == 1 else np.concatenate(answers)

    def evaluate(self, data=None, *, unknown: str | None = None, ignore_extra: bool = False,
                 backend: str = "torch", int8: bool = False) -> dict[str, float]:
        """Loss and metrics on ``data`` (which must hold the targets), or on the run's own test
        split when ``data`` is None.

        Args:
            backend: 'torch' (the run's network) or 'onnx' (its export, ``RUN/export``, checked to
                be current; ``int8``: the int8 model the export kept). Rows are encoded and
                answers decoded the same way for both; only the network differs.

        Raises:
            CheckpointError: no export, or one older than the run (``backend='onnx'``).
            DataError: rows without targets, an ensemble on ONNX, or an unknown backend.
        """
        predictor = self._backed(backend, int8)
        if data is not None:
            return predictor.evaluate(data, self.loss(), unknown=unknown, ignore_extra=ignore_extra)
        if self.manifest.ensemble:
            return score_on_shared_rows(self.members, predictor)["test"]
        if not self.manifest.rows.get("test"):
            raise DataError("this run has no test split (data.split.test is 0); pass data to evaluate")
        inputs, y = as_tensors(self.held_out("test"), predictor.task, "cpu")
        with finite_outputs():
            return {**predictor.task.evaluate(predictor.model, inputs, y, self.loss()), "rows": int(len(y))}

    def _backed(self, backend: str, int8: bool) -> Predictor:
        """The run's predictor on ``backend``: torch, or the same codec and decoding with the
        exported graph in place of the network."""
        if backend == "torch":
            if int8:
                raise DataError("--int8 needs --backend onnx")
            return self.predictor
        if backend != "onnx":
            raise DataError(f"--backend: expected torch or onnx, got {backend!r}")
        if self.manifest.ensemble:
            raise DataError("evaluating an ensemble on ONNX is not offered: evaluate it on torch, or its members "
                            "on ONNX")
        runtime = current(self.path, int8=int8)
        graphs = runtime.record["graphs"]
        if list(graphs) != ["model"]:
            raise DataError(f"--backend onnx evaluates runs exported as one graph; this export has "
                            f"{', '.join(graphs)}: evaluate on torch")
        exported = copy.copy(self.predictor)
        exported.model = OnnxModule(runtime.graph_path("model"), graphs["model"]["inputs"])
        return exported

    def embed(self, data, *, unknown: str | None = None, ignore_extra: bool = False) -> np.ndarray:
        """Latent codes of new rows (N, latent_size): an autoencoder as dimensionality reduction.
        A variational model gives each code's mean."""
        return self._by_pieces(self.predictor.embed, data, unknown=unknown, ignore_extra=ignore_extra)

    def recommend(self, users, k: int = 10):
        """Each user's ``k`` best items that the user did not have in training: a table of the
        user, the rank, the item and its score (a predicted rating where the data has ratings).

        Args:
            users: the users' keys, as the data names them.

        Raises:
            DataError: a run that does not recommend, or a user it never saw.

        Example:
            >>> run.recommend([1, 7], k=5)  # doctest: +SKIP
        """
        return self.predictor.recommend(users, k)

    def anomalies(self, data, *, unknown: str | None = None, ignore_extra: bool = False):
        """Anomaly scores and flags: rows whose reconstruction error exceeds the threshold chosen
        on validation rows (``model.threshold_quantile`` of their scores).

        Returns:
            (scores (N,), flags (N,) booleans).
        """
        scores = self.predict(data, unknown=unknown, ignore_extra=ignore_extra)
        return scores, self.predictor.task.anomalies(scores)

    def sample(self, n: int = 100, *, label=None, seed: int = 0) -> np.ndarray:
        """``n`` generated rows in model space (see ``write_samples`` for files): from a GAN, or
        decoded from random codes by a variational autoencoder. The same seed gives the same rows.

        Args:
            label: for a conditional GAN, the class to generate (default: every class in turn).
        """
        return self.predictor.sample(n, label=label, seed=seed)

    def write_samples(self, path: str | Path, n: int = 100, *, label=None, seed: int = 0) -> Path:
        """Generate ``n`` rows and write them as a PNG grid (images) or a CSV/Parquet table."""
        return self.predictor.write_samples(path, n, label=label, seed=seed)

    def generate(self, prompt: str = "", length: int = 200, temperature: float = 1.0,
                 top_k: int | None = None, seed: int = 0) -> str:
        """Sample ``length`` tokens that continue ``prompt`` (language-model runs only).

        Args:
            temperature: divides the logits; below 1 is more conservative.
            top_k: sample only among the k most likely tokens.
            seed: the same seed gives the same text.

        Returns:
            The prompt followed by the generated text.
        """
        return self.predictor.generate(prompt, length, temperature, top_k, seed)


    # -- export -----------------------------------------------------------------------------------

    def export(self, *, quantize: str | None = None, opset: int | None = None, out: str | Path | None = None,
               max_drop: float = 1.0, keep_int8: bool = False, log=None, progress=None) -> Path:
        """Export to ONNX with parity proven on the run's own rows (``RUN/export``); see
        ``layerforge.export.export_run`` for the options. ``layerforge export`` also adds an
        Export section to report.html (``layerforge report RUN`` does too, once exported).

        Returns:
            The export folder: model.onnx (or the family's graphs), runtime.json, parity.json.
        """
        return export_run(self, quantize=quantize, opset=opset, out=out, max_drop=max_drop, keep_int8=keep_int8,
                          log=log, progress=progress)


def load_run(path: str | Path) -> Run:
    """Load a run directory written by ``layerforge.train``.

    Example:
        >>> run = load_run("runs/digits-mlp-20261123-101500")  # doctest: +SKIP
        >>> run.predict(rows)                                    # doctest: +SKIP
    """
    return Run(path)
