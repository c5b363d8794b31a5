"""One run as the service holds it: its name, what its requests and answers look like (read
from the run's model.json), and the backend that runs its network.

Rows are encoded by the run's codec (``layerforge.codecs``) and answers decoded by its task's
decoding (``layerforge.decodings``), the code ``layerforge predict`` and the ONNX export's runtime
use, so the torch and onnx backends differ only in the forward pass.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..decodings import check_finite_rows
from ..errors import CheckpointError, DataError
from ..export import current
from ..files import finite
from ..tasks.base import graph_runner
from .schema import schema_title

BACKENDS = ("torch", "onnx")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class Encoded(tuple):
    """The model inputs of a request's rows, and each row's group when a decision stage picks
    their classes (``groups``; None otherwise)."""

    def __new__(cls, inputs: tuple, groups: np.ndarray | None = None):
        found = super().__new__(cls, inputs)
        found.groups = groups
        return found

    def part(self, start: int, stop: int) -> Encoded:
        """Rows ``start`` to ``stop`` of these."""
        return Encoded(tuple(array[start:stop] for array in self), None if self.groups is None else
                       self.groups[start:stop])


class TorchBackend:
    """The run's network in PyTorch (inference mode, on the CPU or the run's device)."""

    name = "torch"

    def __init__(self, run):
        import torch

        self.model = run.predictor.model
        self.decoding = run.predictor.task.decoding()
        self._run = graph_runner(self.model)
        self.version = torch.__version__
        self.graph_sha256 = None  # no graph: the run's weights answer

    def forward(self, inputs: tuple[np.ndarray, ...]) -> np.ndarray:
        return self.decoding.outputs(self._run, inputs)


class OnnxBackend:
    """The run's ONNX export (``RUN/export``) through ONNX Runtime."""

    name = "onnx"

    def __init__(self, run_dir: Path | None, int8: bool, runtime=None):
        self.runtime = runtime if runtime is not None else current(run_dir, int8=int8)
        import onnxruntime

        self.version = onnxruntime.__version__
        self.graph_sha256 = self.runtime.graph_sha256

    @classmethod
    def of(cls, runtime) -> OnnxBackend:
        """The backend of an exported runtime already loaded (an ensemble's member)."""
        return cls(None, runtime.int8, runtime)

    def forward(self, inputs: tuple[np.ndarray, ...]) -> np.ndarray:
        return self.runtime.forward(inputs, check=False)


class Members:
    """An ensemble as one model: each member reads the rows with its own codec, runs on its own
    backend, and the ensemble's decoding combines their outputs (``Decoding.combine``), as
    ``layerforge predict`` and the exported runtime combine them. Stands in for the codec and
    the backend of a single run: encoded rows are every member's inputs, one after another."""

    def __init__(self, codecs: list, backends: list, decodings: list, arity: list[int], decoding,
                 graph_sha256: str | None):
        self.codecs, self.backends, self.decodings, self.arity = codecs, backends, decodings, arity
        self.decoding, self.graph_sha256 = decoding, graph_sha256
        self.name, self.version = backends[0].name, backends[0].version

    def read(self, rows):
        return self.codecs[0].read(rows)

    def encode(self, rows, **options):
        found, labels = (), None
        for codec in self.codecs:
            inputs, labels = codec.encode(rows, **options)
            found += tuple(inputs)
        return found, labels

    def forward(self, inputs: tuple[np.ndarray, ...]) -> np.ndarray:
        parts, start = [], 0
        for backend, decoding, count in zip(self.backends, self.decodings, self.arity):
            parts.append((decoding, backend.forward(tuple(inputs[start : start + count]))))
            start += count
        return self.decoding.combine(parts)


class Served:
    """A run the service answers for.

    Args:
        name: the name requests use (``/v1/models/{name}/predict``).
        run_dir: the run directory.
        backend: 'torch' or 'onnx' (the run's export).
        int8: with onnx, the int8 model the export kept.
    """

    def __init__(self, name: str, run_dir: str | Path, backend: str = "torch", int8: bool = False):
        from ..run.directory import load_run

        if not _NAME.match(name):
            raise DataError(f"model name {name!r}: use letters, digits, '.', '_' and '-' (up to 128), "
                            "starting with a letter or digit")
        if backend not in BACKENDS:
            raise DataError(f"--backend: expected one of {', '.join(BACKENDS)}, got {backend!r}")
        self.name, self.run_dir = name, Path(run_dir)
        self.run = load_run(self.run_dir)
        refused = self.run.manifest.runtime_problem()
        if refused:
            raise DataError(f"{self.run_dir}: {refused}")
        files = self.run.manifest.preprocessing.reads_files()
        if files:
            raise DataError(f"{self.run_dir}: its rows name files ({files}), which a request would make the service "
                            "read from this machine; predict with layerforge predict or the runtime instead")
        self.manifest, self.task = self.run.manifest, self.run.task
        if backend == "onnx" and not self.task.answers_rows:
            raise DataError(f"{self.run_dir}: a {self.manifest.task} run generates with PyTorch; serve it with "
                            "--backend torch")
        self.decoding = self.task.decoding()
        self.codec = self.run.predictor.encoder.codec if self.task.answers_rows else None
        self.decision = self.manifest.decision.stage() if self.manifest.decision is not None else None
        if self.manifest.ensemble:  # each member reads and answers on its own backend
            self.backend = self.codec = self._members(OnnxBackend(self.run_dir, int8) if backend == "onnx" else None)
        else:
            self.backend = OnnxBackend(self.run_dir, int8) if backend == "onnx" else TorchBackend(self.run)
        self.recommends = bool(getattr(self.codec, "recommends", False))  # it ranks items for users
        self.row = self.manifest.preprocessing.request_row(schema_title(name, "Row"))
        self._warm_up()
        self.named_columns = isinstance(self.row, type)  # a model of named columns: tables (and CSV)

    def _members(self, exported: OnnxBackend | None) -> Members:
        """An ensemble's members: the members of its export (``exported``), or their runs."""
        members = self.run.members
        if exported is not None:
            backends = [OnnxBackend.of(runtime) for runtime in exported.runtime.members]
        else:
            backends = [TorchBackend(member) for member in members]
        return Members([member.predictor.encoder.codec for member in members], backends,
                       [member.task.decoding() for member in members],
                       [len(member.model.example_inputs(1)) for member in members],  # the inputs each reads
                       self.decoding, exported.graph_sha256 if exported is not None else None)

    def _examples(self, size: int) -> tuple[np.ndarray, ...]:
        """Example inputs of ``size`` rows (every member's, for an ensemble)."""
        models = [member.model for member in self.run.members] if self.manifest.ensemble else [self.run.model]
        return tuple(t.cpu().numpy() for model in models for t in model.example_inputs(size))

    # -- rows -------------------------------------------------------------------------------------

    def encode(self, rows) -> Encoded:
        """Model inputs for the rows of one request (validated list, columns or CSV text), with
        each row's group when the run decides by per-group thresholds.

        Raises:
            DataError: rows the model cannot read, named by column and row.
        """
        groups = None
        if self.decision is not None:
            rows, groups = self.decision.split(self.codec.read(rows), self.manifest.features or [])
        inputs, _ = self.codec.encode(rows, target=self.manifest.target)
        return Encoded(inputs, groups)

    def encode_all(self, payloads: list) -> list:
        """Inputs for the rows of each of several requests, or the error that names what is wrong
        with a request's rows. Requests that list their rows are encoded in one pass (what is left
        per request is slicing); when that pass finds a problem, each is encoded alone so that
        only the requests at fault fail, with their own row numbers."""
        if len(payloads) > 1 and all(isinstance(p, list) for p in payloads):
            try:
                inputs = self.encode([row for rows in payloads for row in rows])
            except DataError:
                pass
            else:
                bounds = np.cumsum([0] + [len(rows) for rows in payloads])
                return [inputs.part(start, stop) for start, stop in zip(bounds, bounds[1:])]
        found = []
        for rows in payloads:
            try:
                found.append(self.encode(rows))
            except Exception as error:  # noqa: BLE001 - answered to the request that sent the rows
                found.append(error)
        return found

    def warm(self, sizes: list[int]) -> None:
        """One forward pass at each batch size on example inputs, so that no request waits while
        the backend plans its work for a new shape."""
        if not self.task.answers_rows:
            return
        for size in sizes:
            self.backend.forward(self._examples(size))

    def _warm_up(self) -> None:
        """One forward pass on an example row, before the service says it is ready: a model that
        cannot answer stops the start instead of failing every request.

        Raises:
            CheckpointError: the backend failed on the example row.
        """
        try:
            self.warm([1])
        except Exception as error:  # noqa: BLE001 - any failure of the backend stops the start, said in one line
            said = " ".join(str(error).split())[:300] or type(error).__name__
            raise CheckpointError(f"{self.run_dir}: the model failed its warm-up on the {self.backend.name} backend "
                                  f"({said}); the service was not started") from None

    def answers(self, outputs: np.ndarray, inputs: Encoded) -> list[dict]:
        """One answer per row; a row whose outputs are not finite is an error naming it."""
        check_finite_rows(outputs)
        decoding = self.decoding if self.decision is None else self.decision.decoding(self.decoding, inputs.groups)
        found = decoding.answers(outputs, inputs)
        for answer in found:
            _finite_answer(answer)
        return found

    def example_answers(self) -> list[dict]:
        """The answers to one example row (what the answer of a request looks like)."""
        if not self.task.answers_rows:
            return []
        inputs = self._examples(1)
        return self.answers(self.backend.forward(inputs), Encoded(inputs))

    # -- generation ---------------------------------------------------------------------------------

    def recommend(self, users: list, k: int) -> list[dict]:
        """Each user's ``k`` best items that the user did not have in training, by the backend:
        ``[{"user": ..., "items": [{"item": ..., "score" or "rating": ...}, ...]}, ...]``.

        Raises:
            DataError: a user the run never saw.
        """
        if isinstance(self.backend, OnnxBackend):
            columns = self.backend.runtime.recommend(users, k)
        else:
            table = self.run.recommend(users, k)
            columns = {name: table[name].tolist() for name in table.columns}
        user, _, item, value = list(columns)
        found: list[dict] = []
        for position, rank in enumerate(columns["rank"]):
            if rank == 1:
                found.append({"user": users[len(found)], "items": []})
            found[-1]["items"].append({"item": columns[item][position], value: float(columns[value][position])})
        return found

    def sample(self, n: int, label, seed: int) -> list[dict]:
        """``n`` generated rows in the data's own scale and columns, with their class when the
        generator is conditional."""
        predictor = self.run.predictor
        rows = predictor.sample(n, label=label, seed=seed)
        values = predictor.encoder.unscale(rows)
        if hasattr(values, "to_json"):  # a table: one mapping per row
            found = [{"prediction": row} for row in json.loads(values.to_json(orient="records"))]
        else:
            found = [{"prediction": row} for row in np.asarray(values, dtype=np.float64).tolist()]
        labels = self.task.sample_labels(predictor.model, n, label)
        for answer, name in zip(found, labels or []):
            answer["label"] = name
        for answer in found:
            _finite_answer(answer)
        return found

    def generate(self, prompt: str, length: int, temperature: float, top_k: int | None, seed: int) -> list[dict]:
        text = self.run.predictor.generate(prompt, length, temperature, top_k, seed)
        return [{"prediction": text}]

    # -- description --------------------------------------------------------------------------------

    def info(self, row_schema: dict) -> dict[str, Any]:
        """What ``GET /v1/models/{name}`` answers."""
        manifest = self.manifest
        return {
            "name": self.name,
            "task": manifest.task,
            "serves": self.task.serves,
            "target": manifest.target,
            "classes": manifest.classes,
            "features": manifest.features,
            "input": row_schema,
            "metrics": finite(self.run.metrics),
            "versions": {
                "layerforge": __version__,
                "model_format": manifest.format,
                "backend": self.backend.name,
                "backend_version": self.backend.version,
                "run": self.run_dir.name,
                "weights_sha256": (manifest.files or {}).get("model.safetensors"),
                "graph_sha256": self.backend.graph_sha256,
            },
        }


def _finite_answer(answer: dict) -> None:
    def bad(value) -> bool:
        if isinstance(value, float):
            return not np.isfinite(value)
        if isinstance(value, dict):
            return any(bad(v) for v in value.values())
        if isinstance(value, list):
            return any(bad(v) for v in value)
        return False

    if bad(answer):
        raise DataError("a prediction is not a finite number: the rows lie far outside the values the model "
                               "was trained on; check them")
