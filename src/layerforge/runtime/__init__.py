"""The torch-free runtime of an exported run: raw rows in, decoded predictions out, with numpy
and onnxruntime only (importing it imports neither torch nor pandas).

Example:
    >>> from layerforge.runtime import load          # doctest: +SKIP
    >>> model = load("runs/digits-mlp-20261128-101500/export")
    >>> model.predict("new_rows.csv")                # class labels, values, forecasts or scores
    >>> model.predict_table("new_rows.csv")          # columns as ``layerforge predict`` writes them
    >>> for table in model.predict_pieces("big.csv"):  # a file larger than memory, a block at a time
    ...     ...

It reads ``export/runtime.json`` (the fitted preprocessing, how outputs decode, the graphs) and
the ``.onnx`` files beside it, so an export folder copied to a device is all it needs.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from .. import decodings
from ..codecs import codec_for
from ..codecs.masks import write_masks
from ..codecs.tables import no_row_names, with_kept
from ..errors import CheckpointError, DataError
from ..files import SEAL, sha256_file, unsealed

FORMAT = "layerforge.export/2"  # what layerforge.export writes

RuntimeDataError = DataError  # what the runtime raised before it shared layerforge's codecs

__all__ = ["load", "Runtime", "RuntimeDataError"]


_NOT_FITTING = (KeyError, TypeError, ValueError, AttributeError, IndexError)


class _fitting:
    """Turns what a record that does not fit its graphs or rows raises (a field of the wrong type,
    an array of the wrong size, ONNX Runtime refusing its inputs) into one CheckpointError naming
    runtime.json; layerforge's own errors (a refused row, say) pass as they are."""

    def __init__(self, path: Path, said: str = "does not fit its graphs or these rows"):
        self.path, self.said = path, said

    def __enter__(self):
        return self

    def __exit__(self, kind, error, trace):
        if error is None or isinstance(error, (DataError, CheckpointError)):
            return False
        if isinstance(error, _NOT_FITTING) or type(error).__module__.startswith("onnxruntime"):
            raise CheckpointError(f"{self.path} {self.said} ({type(error).__name__}: {str(error)[:200]}); it was "
                                  "changed after the export was written, or damaged: export the run again") from None
        return False


def _answering(method):
    """A method of ``Runtime`` whose failures from a record that does not fit are one error."""
    import functools

    @functools.wraps(method)
    def checked(self, *args, **options):
        with _fitting(self.folder / "runtime.json"):
            return method(self, *args, **options)

    return checked


class Runtime:
    """One exported run.

    Args:
        folder: the export folder (``RUN/export``).
        int8: use the int8 model when the export kept one (default: float).
        threads: ONNX Runtime's threads (default: its own choice).
    """

    def __init__(self, folder: str | Path, *, int8: bool = False, threads: int | None = None):
        self.folder = Path(folder)
        record_path = self.folder / "runtime.json"
        if not record_path.is_file():
            raise RuntimeDataError(f"{self.folder} is not an export folder: it has no runtime.json "
                                   "(write one with `layerforge export RUN`)")
        try:
            raw = json.loads(record_path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as error:
            raise CheckpointError(f"{record_path}: is not valid JSON ({error}); export the run again") from None
        if not isinstance(raw, dict) or raw.get("format") != FORMAT or SEAL not in raw:
            found = raw.get("format") if isinstance(raw, dict) else None
            raise CheckpointError(f"{record_path}: format {found!r} is not {FORMAT} with its {SEAL} (an export written "
                                  "by an earlier layerforge, or not an export); export the run again with "
                                  "`layerforge export RUN`")
        self.record, _ = unsealed(raw, record_path)
        with _fitting(record_path, "is malformed"):
            self._read(int8, threads)

    def _read(self, int8: bool, threads: int | None) -> None:
        """The runtime's parts from runtime.json's record (``__init__`` turns a malformed record
        into one error naming the file)."""
        import onnxruntime as ort

        record_path = self.folder / "runtime.json"
        self.task, self.target = self.record["task"], self.record["target"]
        try:
            self.decoding = decodings.from_json(self.record["decoding"])
        except DataError as error:
            raise CheckpointError(f"{record_path}: {error}") from None
        ensemble = self.record.get("ensemble")
        # an ensemble's members are exports of their own, each with its codec, graph and decoding
        self.members = [Runtime(self.folder / name, int8=int8, threads=threads) for name in ensemble["members"]] \
            if ensemble else None
        self.codec = self.members[0].codec if self.members else self._codec(self.record["preprocessing"])
        decision = self.record.get("decision")
        self.decision = decodings.Thresholds(**decision) if decision else None
        options = ort.SessionOptions()
        options.log_severity_level = 3
        if threads:
            options.intra_op_num_threads = threads
        self._ort, self._options, self._sessions = ort, options, {}
        self.int8 = int8
        graph = self.record["graphs"].get("model")
        if int8 and not self.members and not (graph and graph.get("int8")):
            raise RuntimeDataError(f"{self.folder} keeps no int8 model (see parity.json for why)")
        # every graph is checked to be the one the export proved, once, before any is used
        self._paths = {name: self.graph_path(name) for name in self.record["graphs"]}

    @staticmethod
    def _codec(state: dict):
        """The codec of the rows the model reads, or one that says why rows are not read one by
        one (a language model continues a corpus)."""
        try:
            return codec_for(state)
        except DataError as error:
            return _NoRows(str(error))

    def _session(self, name: str):
        graphs = self.record["graphs"]
        if name not in graphs:
            raise RuntimeDataError(f"this export has no {name} graph (it has: {', '.join(graphs)})")
        if name not in self._sessions:
            session = self._ort.InferenceSession(str(self._paths[name]), self._options,
                                                 providers=["CPUExecutionProvider"])
            self._sessions[name] = (session, graphs[name]["inputs"])
        return self._sessions[name]

    def graph_path(self, name: str = "model") -> Path:
        """The file of graph ``name`` this runtime runs (the int8 one when asked), checked against
        the SHA-256 runtime.json records for it.

        Raises:
            CheckpointError: the file is missing, or was replaced or damaged after the export.
        """
        entry = self.record["graphs"][name]
        small = self.int8 and name == "model" and entry.get("int8")
        file, expected = (entry["int8"], entry["int8_sha256"]) if small else (entry["file"], entry["sha256"])
        path = self.folder / file
        if not path.is_file():
            raise CheckpointError(f"{path} is missing (runtime.json lists it); export the run again")
        if sha256_file(path) != expected:
            raise CheckpointError(f"{path} does not match its SHA-256 in runtime.json: it was replaced or damaged "
                                  "after the export was written, and was not used; export the run again")
        return path

    @property
    def graph_sha256(self) -> str:
        """The SHA-256 of the model graph this runtime answers with (of an ensemble: of its
        members' digests, in order; of an encoder-decoder: of its graphs' digests)."""
        if self.members:
            return hashlib.sha256("".join(m.graph_sha256 for m in self.members).encode("ascii")).hexdigest()
        graphs = self.record["graphs"]
        if "model" not in graphs:  # an encoder and a decoder: of their digests, by name
            return hashlib.sha256("".join(f"{n}:{graphs[n]['sha256']}" for n in sorted(graphs)).encode()).hexdigest()
        entry = graphs["model"]
        return entry["int8_sha256"] if self.int8 and entry.get("int8") else entry["sha256"]

    def _run(self, name: str, inputs: tuple[np.ndarray, ...], batch_size: int = 1024, check: bool = True) -> np.ndarray:
        session, names = self._session(name)
        parts = []
        for start in range(0, len(inputs[0]), batch_size):
            feed = {n: a[start : start + batch_size] for n, a in zip(names, inputs)}
            parts.append(session.run(None, feed)[0])
        out = np.concatenate(parts) if parts else np.zeros((0,), np.float32)
        if check:
            decodings.check_finite_rows(out)
        return out

    def searching(self, beam_size: int | None = None) -> Runtime:
        """This runtime with answers written by a beam search of ``beam_size`` (exported seq2seq
        runs; None: as the run writes them).

        Raises:
            DataError: a beam size for an export whose answers are not written a token at a time.
        """
        decoding = self.decoding.searching(beam_size)
        if decoding is self.decoding:
            return self
        found = copy.copy(self)
        found.decoding = decoding
        return found

    @_answering
    def encode(self, rows, **options) -> tuple[tuple[np.ndarray, ...], list | None]:
        """Model inputs for raw rows, and their labels when the rows carry the target
        (``options``: ``unknown`` and ``ignore_extra``, as ``layerforge predict`` takes them)."""
        return self.codec.encode(rows, target=self.target, **options)

    def _decided(self, rows, required: bool = True, **options):
        """(inputs, the decoding that answers for them): with a decision stage (fairness
        thresholds), each row's group is read from its column first."""
        if self.decision is None:
            return self.encode(rows, **options)[0], self.decoding
        columns, groups = self.decision.split(self.codec.read(rows), self.record["features"] or [],
                                              required=required)
        return self.encode(columns, **options)[0], self.decision.decoding(self.decoding, groups)

    @_answering
    def _answered(self, rows, required: bool = True, **options):
        """(outputs, inputs, decoding, extra columns) for raw rows: the model's outputs, or an
        ensemble's, combined by its decoding from each member's (each reads the rows with its own
        codec), with the columns that say how much the members disagree."""
        if not self.members:
            inputs, decoding = self._decided(rows, required, **options)
            return decoding.outputs(self._run, inputs), inputs, decoding, {}
        parts, inputs = [], ()
        for member in self.members:
            inputs, _ = member.encode(rows, **options)
            parts.append((member.decoding, member._run("model", inputs)))
        combined = self.decoding.combine(parts)
        return combined, inputs, self.decoding, self.decoding.spread(parts, combined)

    @_answering
    def forward(self, inputs: tuple[np.ndarray, ...], check: bool = True) -> np.ndarray:
        """The model's raw outputs for encoded inputs (what ``encode`` gives): the model graph's,
        or the answers a search writes with the encoder and decoder graphs (``Decoding.outputs``);
        ``check``: raise when a row's outputs are not finite numbers."""
        return self.decoding.outputs(lambda name, arrays: self._run(name, arrays, check=check), inputs)

    def outputs(self, rows, **options) -> np.ndarray:
        """The model's raw outputs (logits, scaled values, reconstructions); an ensemble's
        combined outputs."""
        return self._answered(rows, required=False, **options)[0]

    def predict(self, rows, **options) -> np.ndarray:
        """Decoded predictions: class labels (by the run's per-group thresholds when fairness
        mitigation set them), values on the target's scale, the next steps of each history, or
        anomaly scores."""
        outputs, inputs, decoding, _ = self._answered(rows, **options)
        return decoding.predictions(outputs, inputs)

    def predict_proba(self, rows, **options) -> np.ndarray:
        """Class probabilities (rows, classes), columns in the order of the classes."""
        return self.decoding.probabilities(self.outputs(rows, **options))

    def predict_table(self, rows, **options) -> dict[str, list]:
        """The columns ``layerforge predict`` writes, as name -> values (an ensemble adds how much
        its members disagree: ``disagreement`` or ``uncertainty``)."""
        outputs, inputs, decoding, extra = self._answered(rows, **options)
        return decoding.named({**decoding.columns(outputs, inputs, self.target), **extra}, self.codec.row_names(rows))

    def write_pictures(self, rows, folder, **options) -> list:
        """The answers as pictures (a segmentation's masks, a detection's boxes drawn over its
        pictures), one PNG per row in ``folder`` (absent
        or empty), named after the file each row was read from; the files written."""
        outputs, inputs, decoding, _ = self._answered(rows, **options)
        pictures = decoding.pictures(outputs, self.codec.unscale(inputs[0]))
        return write_masks(folder, pictures, self.codec.row_names(rows))

    def predict_pieces(self, rows, keep=(), **options) -> Iterator[dict[str, list]]:
        """``predict_table`` a block of rows at a time: for a table or text in a .csv or .tsv
        file larger than memory (``codecs.tables.csv_blocks``); other rows come as one table.
        ``keep``: columns of the rows copied into the predictions first, as they are."""
        for block in self.codec.pieces(rows):
            if not keep:
                yield self.predict_table(block, **options)
                continue
            kept, rest = self.codec.kept(block, keep)
            yield with_kept(self.predict_table(rest, **options), kept)

    def answers(self, rows, **options) -> list[dict]:
        """One answer per row, as the HTTP service returns them (``prediction`` and what the
        task adds: ``probabilities``, ``anomaly_score`` and ``anomaly``)."""
        outputs, inputs, decoding, _ = self._answered(rows, **options)
        return decoding.answers(outputs, inputs)

    @_answering
    def recommend(self, users, k: int = 10) -> dict[str, list]:
        """Each user's ``k`` best items that the user did not have in training (an exported
        recommendation run): the columns ``layerforge recommend`` writes. Every item is scored
        by the model graph, a user's pairs at a time.

        Raises:
            DataError: an export that does not recommend, or a user the run never saw.
        """
        codec = self.codec
        if not getattr(codec, "recommends", False):
            raise DataError(f"recommend is for recommendation runs; this export does {self.task}")
        if k < 1:
            raise DataError(f"k: expected at least 1 item per user, got {k}")
        users = list(users)
        indices = codec.user_indices(users)
        every = np.arange(len(codec.items) + 1, dtype=np.int64)
        items, values = [], []
        for start in range(0, len(indices), 16):
            part = indices[start : start + 16]
            outputs = self._run("model", (np.repeat(part, len(every)), np.tile(every, len(part))), batch_size=1 << 16)
            found, kept = codec.top_items(outputs[:, 0].reshape(len(part), len(every)), part, k)
            items.append(found)
            values.append(kept)
        found_items = np.concatenate(items) if items else np.zeros((0, k), np.int64)
        scores = self.decoding.values(np.concatenate(values).reshape(-1, 1)) if values else np.zeros((0, 1))
        return codec.recommendation_columns(users, found_items, scores)

    @_answering
    def embed(self, rows, **options) -> np.ndarray:
        """An autoencoder's codes (rows, latent_size)."""
        inputs, _ = self.encode(rows, **options)
        return self._run("encoder", inputs[:1])

    @_answering
    def sample(self, n: int, *, seed: int = 0, label_index: int | None = None) -> np.ndarray:
        """``n`` rows from standard-normal codes (a GAN's generator or a variational decoder), in
        model space; numpy's generator, so not the same rows as ``layerforge sample``."""
        name = "generator" if "generator" in self.record["graphs"] else "decoder"
        session, names = self._session(name)
        width = session.get_inputs()[0].shape[1]
        codes = np.random.default_rng(seed).standard_normal((n, width)).astype(np.float32)
        inputs = (codes,)
        if len(names) == 2:
            classes = len(getattr(self.decoding, "classes", None) or []) or 1
            labels = np.full(n, label_index, np.int64) if label_index is not None else np.arange(n) % classes
            inputs += (labels.astype(np.int64),)
        return self._run(name, inputs)


class _NoRows:
    """The codec of data that is not read row by row: says so when asked to read rows."""

    def __init__(self, why: str):
        self.why = why

    def encode(self, rows, **options):
        raise DataError(self.why)

    pieces = read = kept = encode
    row_names = staticmethod(no_row_names)


def load(folder: str | Path, *, int8: bool = False, threads: int | None = None) -> Runtime:
    """The runtime of an export folder (see ``Runtime``)."""
    return Runtime(folder, int8=int8, threads=threads)
