"""The Predictor: the one path from raw rows to decoded outputs. It is built from a run's
manifest and weights alone (no training data, no spec), and the command line, ``Run``, and later
the HTTP service and exports all predict through it."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from .. import tasks
from ..codecs.masks import write_masks
from ..codecs.tables import with_kept
from ..data.kinds import get as get_kind
from ..errors import CheckpointError, DataError, LayerforgeError, SpecError, unknown_name
from ..figures.pictures import image_grid
from ..memory import keep_freed_memory
from ..models.check import checked_build
from ..models.protocol import finite_outputs, in_fastest_layout
from ..tasks.base import answer_outputs
from ..training.checkpoint import load_weights
from .manifest import Manifest, read_manifest
from .store import MODEL, WEIGHTS


def _tensors(arrays: tuple[np.ndarray, ...]) -> tuple[torch.Tensor, ...]:
    """Float arrays as the default float type, integers (token ids, lengths) as int64."""
    parts = []
    for array in arrays:
        tensor = torch.as_tensor(np.asarray(array))
        parts.append(tensor.to(torch.get_default_dtype()) if tensor.is_floating_point() else tensor.long())
    return tuple(parts)


def _answers(method):
    """A method whose results users read: no output that is not a finite number passes
    (``finite_outputs``), and neither does a NaN loss or latent code."""
    import functools

    @functools.wraps(method)
    def checked(self, *args, **kwargs):
        with finite_outputs():
            result = method(self, *args, **kwargs)
        _finite_result(result)
        return result

    return checked


def indexed_like(table, rows):
    """``table`` with the index of ``rows`` when they are a DataFrame of as many rows (a user's
    own row labels stay with their predictions); otherwise as it is."""
    index = getattr(rows, "index", None)
    if hasattr(rows, "columns") and index is not None and len(index) == len(table):
        table.index = index
    return table


def _finite_result(result) -> None:
    """Decoding (a regression's scale, a forecast's level) can overflow what the network gave."""
    if isinstance(result, dict):
        bad = [name for name, value in result.items() if isinstance(value, float) and not np.isfinite(value)]
        if bad:
            raise DataError(f"{bad[0]} on these rows is not a finite number: some rows lie far outside the values "
                            "the model was trained on; check them")
    elif isinstance(result, np.ndarray) and result.dtype.kind == "f":
        _finite_rows(result, "predictions")
    elif hasattr(result, "select_dtypes"):  # a table
        _finite_rows(result.select_dtypes("number").to_numpy(dtype=np.float64), "predictions")


def _finite_rows(values: np.ndarray, what: str) -> None:
    bad = np.flatnonzero(~np.isfinite(values.reshape(len(values), -1)).all(axis=1))
    if len(bad):
        raise DataError(f"the model's {what} for row {bad[0] + 1} are not finite numbers: that row lies far "
                        "outside the values the model was trained on; check it")


class Predictor:
    """Raw rows in, decoded outputs out, for one trained model.

    Args:
        manifest: the run's model.json.
        model: the trained network (evaluation mode).
        task: the task object from the manifest.
        encoder: the fitted encoder from the manifest.

    Use ``Predictor.load(run_dir)``.
    """

    def __init__(self, manifest: Manifest, model: torch.nn.Module, task: tasks.Task, encoder):
        self.manifest, self.model, self.task, self.encoder = manifest, model, task, encoder

    @classmethod
    def load(cls, run_dir: str | Path, manifest: Manifest | None = None) -> Predictor:
        """The predictor of a run directory (its model.json and model.safetensors).

        Raises:
            CheckpointError: the run has no final weights, or they do not fit its manifest.
        """
        run_dir = Path(run_dir)
        manifest = manifest or read_manifest(run_dir / MODEL)
        where = run_dir / MODEL
        if manifest.task not in tasks.TASKS:
            raise CheckpointError(f"{where}: 'task': {unknown_name('task', manifest.task, tasks.TASKS)}")
        task_class = tasks.get(manifest.task)
        missing = [name for name in task_class.manifest_fields if getattr(manifest, name) is None]
        if missing:
            raise CheckpointError(f"{where}: a {manifest.task} run needs '{missing[0]}', which the file lacks")
        try:
            encoder = get_kind(manifest.preprocessing.kind).encoder(manifest.preprocessing, manifest.target)
            task = task_class.from_manifest(manifest, encoder, run_dir)
            reads = encoder.inputs.describe()
        except (LayerforgeError, ValueError, TypeError, KeyError, AttributeError, IndexError) as error:
            said = " ".join(str(error).split())[:300] or type(error).__name__
            raise CheckpointError(f"{where} does not describe a task and data layerforge can rebuild: {said}") from None
        record = manifest.model
        if manifest.features is not None and list(encoder.features or []) != manifest.features:
            raise CheckpointError(f"{where}: 'features' ({len(manifest.features)} names) do not match the columns its "
                                  f"preprocessing reads ({len(encoder.features or [])})")
        if manifest.inputs.blocks is None:  # recorded before tables' columns were (no codes, no column tokens)
            reads.pop("blocks", None)
            reads.pop("numbers", None)
        if reads != manifest.inputs.describe():
            raise CheckpointError(f"{where}: 'inputs' ({manifest.inputs.describe()}) do not match what its "
                                  f"preprocessing gives ({reads})")
        if (task.output_size, task.num_classes) != (record.output_size, record.num_classes):
            raise CheckpointError(f"{where}: the task asks for {task.output_size} outputs and {task.num_classes} "
                                  f"classes, the model records {record.output_size} and {record.num_classes}")
        try:
            model = checked_build(record.spec, manifest.inputs, record.output_size, record.num_classes)
        except SpecError as error:
            raise CheckpointError(f"{where}: its model cannot be rebuilt here: {error.problems[0]}") from None
        weights_path = run_dir / WEIGHTS
        if not weights_path.is_file():
            raise CheckpointError(
                f"{run_dir} has no {WEIGHTS}: the run did not finish; continue it with "
                f"`layerforge train --resume {run_dir}`"
            )
        try:
            model.load_state_dict(load_weights(weights_path, (manifest.files or {}).get(WEIGHTS)))
        except RuntimeError as error:
            raise CheckpointError(f"{weights_path} does not fit the model in {MODEL}: {error}") from None
        model = in_fastest_layout(model, torch.device("cpu")).eval()
        keep_freed_memory()  # every batch of rows frees and takes the same activations again
        return cls(manifest, model, task, encoder)

    def searching(self, beam_size: int | None = None) -> Predictor:
        """This predictor with answers written by a beam search of ``beam_size`` (seq2seq runs;
        None: as the run writes them).

        Raises:
            DataError: a beam size for a run whose answers are not written a token at a time.
        """
        task = self.task.searching(beam_size)
        return self if task is self.task else Predictor(self.manifest, self.model, task, self.encoder)

    # -- inputs ----------------------------------------------------------------------------------

    def encode(self, data, *, unknown: str | None = None, ignore_extra: bool = False):
        """Model inputs (tensors) for new rows, and their raw labels when ``data`` has them.

        Args:
            data: what the data kind reads: a DataFrame or table file, an array, an .npz file,
                an image file or folder, texts, or a series' history.
            unknown: 'error' or 'bucket' for categories unseen in training (default: the run's).
            ignore_extra: drop columns the model does not know instead of raising.

        Raises:
            DataError: rows the model cannot read, named by column, row or file.
        """
        arrays, labels = self.encoder.encode_new(data, unknown=unknown, ignore_extra=ignore_extra)
        return _tensors(arrays), labels

    def targets(self, labels, inputs: tuple, source: str | None = None) -> torch.Tensor:
        """Encoded targets of new rows, or an error saying what evaluation needs (``source``:
        the file they came from, for messages)."""
        if labels is None:
            if self.task.evaluation_needs_targets(self.model):
                raise DataError(self.encoder.missing_labels())
            return self.task.target_tensor(np.zeros(len(inputs[0]), dtype=np.int64))
        return self.task.target_tensor(self.task.encode_targets(labels, source))

    # -- outputs ---------------------------------------------------------------------------------

    def _decided(self, data, required: bool = True):
        """``(rows, groups)``: the rows without the decision's column when the model does not
        read it, and each row's group; ``(data, None)`` when the run has no per-group thresholds
        (or, unless ``required``, the rows lack their column)."""
        decision = self.manifest.decision
        if decision is None:
            return data, None
        return decision.stage().split(self.encoder.codec.read(data), self.manifest.features or [], required=required)

    @_answers
    def predict(self, data, **options) -> np.ndarray:
        """Decoded predictions: class labels (by the run's per-group thresholds when fairness
        mitigation set them), values on the target's scale, the next steps of a series, or an
        autoencoder's anomaly scores."""
        data, groups = self._decided(data)
        inputs, _ = self.encode(data, **options)
        if groups is not None:
            return self._decisions(inputs, groups)
        return self.task.predictions(self.model, inputs)

    def _decisions(self, inputs: tuple, groups: np.ndarray) -> np.ndarray:
        """The classes the run's per-group thresholds pick for encoded rows of these groups."""
        return self.manifest.decision.decide(self.task.classes, self.task.probabilities(self.model, inputs), groups)

    @_answers
    def predict_proba(self, data, **options) -> np.ndarray:
        """Class probabilities (rows, classes), columns in the order of the manifest's classes."""
        inputs, _ = self.encode(self._decided(data, required=False)[0], **options)
        return self.task.probabilities(self.model, inputs)

    @_answers
    def predict_table(self, data, **options):
        """The predictions as a table, one row per input row (what ``layerforge predict`` writes);
        rows given as a DataFrame keep its index."""
        given = data
        data, groups = self._decided(data)
        inputs, _ = self.encode(data, **options)
        table = self.task.prediction_table(self.model, inputs, self.manifest.target)
        if groups is not None:
            table[table.columns[0]] = self._decisions(inputs, groups)
        names = self.encoder.codec.row_names(given)  # images read from files: which file each answer is for
        if names is not None:
            table = type(table)(self.task.decoding().named({name: table[name] for name in table.columns}, names))
        return indexed_like(table, given)

    def recommend(self, users, k: int = 10):
        """Each user's ``k`` best items that the user did not have in training, as a table (a
        recommendation run; ``users``: their keys).

        Raises:
            DataError: a run that does not recommend, or a user it never saw.
        """
        return self.task.recommendations(self.model, self.encoder, users, k)

    @_answers
    def write_pictures(self, data, folder, **options) -> list[Path]:
        """The answers as pictures (a segmentation's masks, a detection's boxes drawn over its
        pictures), one PNG per row in ``folder`` (absent
        or empty), named after the file each row was read from; the files written."""
        inputs, _ = self.encode(data, **options)
        shown = self.encoder.codec.unscale(inputs[0].numpy())
        pictures = self.task.decoding().pictures(answer_outputs(self.model, inputs), shown)
        return write_masks(folder, pictures, self.encoder.codec.row_names(data))

    def predict_pieces(self, data, keep: Sequence[str] = (), **options) -> Iterator:
        """``predict_table`` a piece at a time: a table file in chunks, so that predicting a file
        larger than memory holds one chunk of it (``Encoder.pieces``); other data whole.

        Args:
            keep: columns of the rows copied into the predictions first, as they are (an
                identifier, say); the model does not read those it was not trained on.
        """
        for piece in self.encoder.pieces(data):
            if not keep:
                yield self.predict_table(piece, **options)
                continue
            kept, rest = self.encoder.codec.kept(piece, keep)
            table = self.predict_table(rest, **options)
            columns = with_kept({name: table[name].to_numpy() for name in table.columns}, kept)
            yield type(table)(columns, index=indexed_like(table, piece).index)

    @_answers
    def evaluate(self, data, loss_fn, **options) -> dict[str, float]:
        """Loss and metrics on rows that carry their targets; with per-group thresholds, also
        ``decision_accuracy``: the accuracy of ``predict``'s decisions, when the rows carry the
        thresholds' column (the other metrics read the model's probabilities).

        A table file is read a chunk at a time, so that a file larger than memory can be
        evaluated, when the task is scored on the model's outputs alone
        (``Task.scored_on_outputs``: only the outputs and targets of all rows are kept) or its
        metrics are means over rows (``Task.averaged_over_rows``: each chunk is scored alone)."""
        source = str(data) if isinstance(data, (str, Path)) else None
        if self.task.averaged_over_rows:
            sums, rows = {}, 0
            for piece in self.encoder.pieces(data):
                inputs, labels = self.encode(piece, **options)
                y = self.targets(labels, inputs, source)
                for name, value in self.task.evaluate(self.model, inputs, y, loss_fn).items():
                    sums[name] = sums.get(name, 0.0) + value * len(y)
                rows += len(y)
            return {**{name: total / rows for name, total in sums.items()}, "rows": rows}
        if not self.task.scored_on_outputs:
            inputs, labels = self.encode(data, **options)
            y = self.targets(labels, inputs, source)
            return {**self.task.evaluate(self.model, inputs, y, loss_fn), "rows": int(len(y))}
        outputs, targets, right = [], [], []
        for piece in self.encoder.pieces(data):
            piece, groups = self._decided(piece, required=False)
            inputs, labels = self.encode(piece, **options)
            y = self.targets(labels, inputs, source)
            outputs.append(self.task.outputs_for(self.model, inputs, y))
            targets.append(y)
            if groups is not None and labels is not None:
                right.append(self._decisions(inputs, groups).astype(str) == np.asarray(labels).astype(str))
        outputs, y = (outputs[0], targets[0]) if len(outputs) == 1 else (torch.cat(outputs), torch.cat(targets))
        measured = {**self.task.measure(outputs, y, loss_fn), "rows": int(len(y))}
        if right:
            measured["decision_accuracy"] = float(np.concatenate(right).mean())
        return measured

    @_answers
    def embed(self, data, **options) -> np.ndarray:
        """An autoencoder's latent codes (rows, latent_size)."""
        inputs, _ = self.encode(data, **options)
        codes = self.task.embed(self.model, inputs)
        _finite_rows(codes, "latent codes")
        return codes

    @_answers
    def embed_table(self, data, **options):
        """The codes as columns z0, z1, ..., after the rows' labels when the data has them."""
        import pandas as pd

        inputs, labels = self.encode(data, **options)
        codes = self.task.embed(self.model, inputs)
        _finite_rows(codes, "latent codes")
        frame = pd.DataFrame(codes, columns=[f"z{i}" for i in range(codes.shape[1])])
        if labels is not None:
            frame.insert(0, self.manifest.target, np.asarray(labels))
        return frame

    def sample(self, n: int = 100, *, label=None, seed: int = 0) -> np.ndarray:
        """``n`` generated rows in model space; the same seed gives the same rows."""
        if n < 1:
            raise DataError(f"n must be at least 1, got {n}")
        return self.task.sample(self.model, n, label, seed)

    def write_samples(self, path: str | Path, n: int = 100, *, label=None, seed: int = 0) -> Path:
        """Generate ``n`` rows and write them as a PNG grid (images) or a CSV/Parquet table in the
        data's own scale and columns."""
        import pandas as pd

        from ..data.tabular import write_table

        rows = self.sample(n, label=label, seed=seed)
        path = Path(path)
        if path.suffix.lower() == ".png":
            pictures = self.encoder.pictures(rows)
            if pictures is None:
                raise DataError(f"{path}: these rows are not images; write a .csv instead")
            title = f"{n} samples" + (f" of class {label}" if label is not None else "")
            return image_grid(pictures, path, columns=min(10, len(pictures)), title=title)
        if path.suffix.lower() not in (".csv", ".parquet", ".pq"):
            raise DataError(f"{path}: write samples as .png (images), .csv or .parquet")
        values = self.encoder.unscale(rows)
        frame = values if isinstance(values, pd.DataFrame) else pd.DataFrame(values.reshape(len(rows), -1))
        labels = self.task.sample_labels(self.model, n, label)
        if labels is not None:
            frame.insert(0, self.manifest.target, labels)
        return write_table(frame, path)

    def generate(self, prompt: str = "", length: int = 200, temperature: float = 1.0, top_k: int | None = None,
                 seed: int = 0) -> str:
        """Text that continues ``prompt`` (language models)."""
        return self.task.generate(self.model, self.encoder, prompt, length, temperature, top_k, seed)
