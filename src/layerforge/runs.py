"""The run directory: create, write and load it. No pickle anywhere: YAML, JSON, safetensors.

```
runs/<name>-<YYYYmmdd-HHMMSS>/
  spec.yaml  model.safetensors  model.json  history.jsonl  metrics.json  checkpoints/
```
A run directory alone is enough to predict and evaluate in a new process.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from .errors import CheckpointError, DataError
from .training.checkpoint import atomic_write

SPEC, WEIGHTS, MODEL, HISTORY, METRICS, CHECKPOINTS = (
    "spec.yaml", "model.safetensors", "model.json", "history.jsonl", "metrics.json", "checkpoints",
)
DIAGNOSIS, DOCTOR_LOG, REPORT = "diagnosis.json", "doctor.jsonl", "report.html"
MODEL_FORMAT = "layerforge.model/1"


def new_run_dir(runs_dir: str | Path, name: str) -> Path:
    """Create a fresh, empty run directory; never reuses an existing one."""
    runs_dir = Path(runs_dir)
    runs_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for attempt in range(1, 1000):
        path = runs_dir / (f"{name}-{stamp}" if attempt == 1 else f"{name}-{stamp}-{attempt}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise CheckpointError(f"cannot create a new run directory in {runs_dir}")


def write_json(path: Path, data: Any) -> None:
    atomic_write(path, json.dumps(data, indent=2, allow_nan=True) + "\n")


def write_spec(path: Path, spec) -> None:
    atomic_write(path, yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False))


def read_json(path: Path) -> Any:
    if not path.is_file():
        raise CheckpointError(f"{path.parent} is not a complete run directory: {path.name} is missing")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise CheckpointError(f"{path} is corrupt: {error}") from None


def read_jsonl(path: Path) -> list[dict]:
    """The JSON objects of a .jsonl file, one per line (none when the file is missing)."""
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


class Run:
    """A trained run loaded from its directory: predict, predict_proba and evaluate.

    Use ``layerforge.load_run(path)``. Attributes: ``path``, ``spec``, ``meta`` (model.json),
    ``metrics`` (metrics.json), ``history`` (list of epoch records) and ``model`` (nn.Module).
    """

    def __init__(self, path: str | Path):
        from .spec.load import load_spec

        self.path = Path(path)
        if not self.path.is_dir():
            raise CheckpointError(f"run directory not found: {self.path}")
        self.meta = read_json(self.path / MODEL)
        if self.meta.get("format") != MODEL_FORMAT:
            raise CheckpointError(f"{self.path / MODEL} is not a {MODEL_FORMAT} file")
        self.spec = load_spec(self.path / SPEC)
        metrics_path = self.path / METRICS
        self.metrics = read_json(metrics_path) if metrics_path.is_file() else {}
        self.history = read_jsonl(self.path / HISTORY)
        self._model = None

    def __repr__(self) -> str:
        return f"Run('{self.path}')"

    @property
    def task(self):
        from . import tasks

        if self.meta["task"] == "generation":
            from .generative import load_evaluator

            return tasks.get("generation", classes=self.meta["classes"], evaluator=load_evaluator(self.path, self.meta))
        return tasks.from_meta(self.meta)

    @property
    def model(self):
        """The trained ``nn.Module`` (built from model.json, weights from model.safetensors)."""
        if self._model is None:
            from pydantic import TypeAdapter

            from .models import build_model
            from .spec.schema import ModelSpec
            from .training.checkpoint import load_weights

            info = self.meta["model"]
            spec = TypeAdapter(ModelSpec).validate_python(info["spec"])
            model = build_model(spec, self.meta["inputs"], info["output_size"])
            weights_path = self.path / WEIGHTS
            if not weights_path.is_file():
                raise CheckpointError(
                    f"{self.path} has no {WEIGHTS}: the run did not finish; continue it with "
                    f"`layerforge train --resume {self.path}`"
                )
            try:
                model.load_state_dict(load_weights(weights_path))
            except RuntimeError as error:
                raise CheckpointError(f"{weights_path} does not fit the model in {MODEL}: {error}") from None
            model.eval()
            self._model = model
        return self._model

    # -- inputs --------------------------------------------------------------------------------

    def _frame(self, data, source: str | None):
        import pandas as pd

        from .data.tabular import read_table

        if isinstance(data, (str, Path)):
            return read_table(data), str(data)
        if isinstance(data, pd.DataFrame):
            return data, source
        array = np.asarray(data)
        if array.ndim == 1:
            array = array[None, :]
        names = self.meta["features"]
        if array.ndim != 2 or array.shape[1] != len(names):
            raise DataError(
                f"expected rows of {len(names)} values ({', '.join(names[:10])}"
                f"{', ...' if len(names) > 10 else ''}), got an array of shape {array.shape}"
            )
        return pd.DataFrame(array, columns=names), source

    def _encode(self, data, *, unknown: str | None, ignore_extra: bool):
        """Model inputs (a tuple of tensors) for new data, and its targets when it has them."""
        kind = self.meta["inputs"]["kind"]
        if kind == "table":
            return self._encode_table(data, unknown, ignore_extra)
        if self.meta["task"] == "forecasting":
            return self._encode_history(data)
        if kind == "tokens":
            return self._encode_text(data)
        if kind == "image":
            return self._encode_images(data)
        return self._encode_sequences(data)

    def _encode_table(self, data, unknown: str | None, ignore_extra: bool):
        import torch

        from .data.tabular import Preprocessor

        frame, source = self._frame(data, None)
        preprocessor = Preprocessor.from_json(self.meta["preprocessing"])
        preprocessor.check_columns(frame, allowed_extra=(self.meta["target"],), ignore_extra=ignore_extra,
                                   source=source)
        x = preprocessor.transform(frame, unknown=unknown or self.spec.data.unknown_categories, source=source)
        target = self.meta["target"]
        y = self._targets(frame[target], source) if target in frame.columns else None
        return (torch.as_tensor(x),), y

    def _encode_sequences(self, data):
        """Series from an array (N, [C,] L), or an .npz (x, optional lengths and y) / .npy file."""
        import torch

        from .data.sequences import SequenceScaler, as_sequences, read_sequences

        if isinstance(data, (str, Path)):
            x, lengths, labels = read_sequences(data)
        else:
            x, lengths, labels = as_sequences(data), None, None
        scaler = SequenceScaler.from_json(self.meta["preprocessing"])
        inputs = (torch.as_tensor(scaler.transform(x, lengths)),)
        if lengths is not None:
            inputs += (torch.as_tensor(lengths),)
        elif self.meta["inputs"].get("variable_length"):
            inputs += (torch.full((len(x),), x.shape[-1], dtype=torch.long),)
        y = None
        if labels is not None:
            import pandas as pd

            y = self._targets(pd.Series(labels, name=self.meta["target"]), str(data))
        return inputs, y

    def _encode_text(self, data):
        """Token ids and lengths for texts: a list of strings, a DataFrame or a table file
        with the text column (and the target column, for evaluation)."""
        import pandas as pd
        import torch

        from .data.tabular import read_table
        from .data.text import Tokenizer, encode_texts

        state = self.meta["preprocessing"]
        if self.meta["task"] == "language_model":
            raise DataError("a language model continues text: use generate (layerforge generate RUN --prompt ...)")
        column, source = state["text"], None
        if isinstance(data, (str, Path)):
            data, source = read_table(data), str(data)
        if isinstance(data, pd.DataFrame):
            if column not in data.columns:
                raise DataError(f"missing column{' in ' + source if source else ''}: {column} (the text to classify)")
            frame = data
        else:
            frame = pd.DataFrame({column: [str(t) for t in data]})
        texts = frame[column].fillna("").astype(str).tolist()
        ids, lengths = encode_texts(Tokenizer.from_json(state), texts, state["max_length"])
        target = self.meta["target"]
        y = self._targets(frame[target], source) if target in frame.columns else None
        return (torch.as_tensor(ids), torch.as_tensor(lengths)), y

    def _encode_history(self, data):
        """The last ``lookback`` steps of a series (an array, or a table with the series'
        columns) as one input window."""
        import torch

        from .data.forecast import SeriesScaler
        from .data.tabular import _to_numbers, read_table

        info = self.meta["forecast"]
        names, lookback = info["channels"], info["lookback"]
        if isinstance(data, (str, Path)):
            frame = read_table(data)
            missing = [n for n in names if n not in frame.columns]
            if missing:
                raise DataError(f"missing column in {data}: {', '.join(missing)} (the series to continue)")
            values = np.stack([_to_numbers(frame[n], n, str(data), boolean=False) for n in names], axis=1)
        else:
            values = np.asarray(data, dtype=np.float64)
            values = values[:, None] if values.ndim == 1 else values
        if len(values) < lookback or values.shape[1] != len(names):
            raise DataError(f"a forecast needs the last {lookback} steps of {len(names)} series "
                            f"({', '.join(names)}); got shape {values.shape}")
        window = SeriesScaler.from_json(self.meta["preprocessing"]).transform(values[-lookback:])  # (L, C)
        return (torch.as_tensor(window.T[None].copy()),), None

    def _encode_images(self, data):
        """Images from an array (N, [C,] H, W), an .npz, an image file or a folder."""
        import pandas as pd
        import torch

        from .data.images import ImageScaler, as_images

        scaler = ImageScaler.from_json(self.meta["preprocessing"])
        labels = None
        if isinstance(data, (str, Path)):
            x, labels = scaler.read(data)
        else:
            x = as_images(data)
        y = None if labels is None else self._targets(pd.Series(labels, name="label"), str(data))
        return (torch.as_tensor(scaler.transform(x)),), y

    def _outputs(self, inputs):
        from .training.loop import predict_outputs

        return predict_outputs(self.model, inputs)

    # -- public --------------------------------------------------------------------------------

    def predict(self, data, *, unknown: str | None = None, ignore_extra: bool = False) -> np.ndarray:
        """Predictions for new rows: class labels, or values on the target's scale; for an
        autoencoder, each row's anomaly score (its reconstruction error; see ``anomalies``).

        Args:
            data: a DataFrame, a path to a .csv/.parquet file, or an array whose columns are
                the training features in order.
            unknown: 'error' or 'bucket' for categories unseen in training (default: the spec's
                ``data.unknown_categories``).
            ignore_extra: drop columns the model does not know instead of raising.

        Raises:
            DataError: missing or unexpected columns, wrong types, unseen categories.
        """
        inputs, _ = self._encode(data, unknown=unknown, ignore_extra=ignore_extra)
        if self.meta["task"] == "generation":
            raise DataError("a GAN generates rows rather than predicting them: use sample (layerforge sample RUN)")
        if self.meta["task"] == "reconstruction":
            from .generative import anomaly_scores

            return anomaly_scores(self.meta, self.model, inputs)
        task, outputs = self.task, self._outputs(inputs)
        if self.meta["task"] == "classification":
            classes = np.asarray(self.meta["classes"], dtype=object)
            return classes[task.decode(outputs)]
        values = task.decode(outputs)
        if self.meta["task"] == "forecasting":
            return values[0]  # the next `horizon` steps
        return values[:, 0] if values.shape[1] == 1 else values

    def predict_proba(self, data, *, unknown: str | None = None, ignore_extra: bool = False) -> np.ndarray:
        """Class probabilities, shape (rows, classes) in the order of ``meta['classes']``."""
        if self.meta["task"] != "classification":
            raise DataError(f"predict_proba is for classification runs; this run does {self.meta['task']}")
        inputs, _ = self._encode(data, unknown=unknown, ignore_extra=ignore_extra)
        return self.task.probabilities(self._outputs(inputs))

    def evaluate(self, data=None, *, unknown: str | None = None, ignore_extra: bool = False) -> dict[str, float]:
        """Loss and metrics on ``data`` (which must hold the target column), or on the run's
        own test split when ``data`` is None."""
        from .training import losses
        from .training.loop import evaluate
        from .training.trainer import as_tensors

        task = self.task
        if data is None:
            from .data.prepare import prepare

            prepared = prepare(self.spec.data, self.meta["task"], self.spec.seed)
            if not prepared.rows("test"):
                raise DataError("this run has no test split (data.split.test is 0); pass data to evaluate")
            inputs, y = as_tensors(prepared.splits["test"], task, "cpu")
        else:
            inputs, targets = self._encode(data, unknown=unknown, ignore_extra=ignore_extra)
            conditional = self.meta["model"]["spec"].get("conditional")
            if targets is None and (self.meta["task"] == "reconstruction"
                                    or (self.meta["task"] == "generation" and not conditional)):
                targets = np.zeros(len(inputs[0]), dtype=np.int64)  # labels are not needed
            if targets is None:
                raise DataError(f"evaluation data needs the target column '{self.meta['target']}'"
                                if self.meta["inputs"]["kind"] == "table" else
                                "evaluation data needs labels: an array 'y' in the .npz file")
            y = task.target_tensor(targets)
        scores = evaluate(self.model, inputs, y, losses.for_task(self.spec.train.loss, task), task)
        return {**scores, "rows": int(len(y))}

    # -- autoencoders and GANs ------------------------------------------------------------------

    def _require(self, *tasks: str, what: str) -> None:
        if self.meta["task"] not in tasks:
            raise DataError(f"{what} is for {' and '.join(tasks)} runs; this run does {self.meta['task']}")

    def embed(self, data, *, unknown: str | None = None, ignore_extra: bool = False) -> np.ndarray:
        """Latent codes of new rows (N, latent_size): an autoencoder as dimensionality reduction.
        A variational model gives each code's mean."""
        from .tasks.reconstruction import encode_all

        self._require("reconstruction", what="embed")
        inputs, _ = self._encode(data, unknown=unknown, ignore_extra=ignore_extra)
        return encode_all(self.model, inputs[0])[0].numpy()

    def anomalies(self, data, *, unknown: str | None = None, ignore_extra: bool = False):
        """Anomaly scores and flags: rows whose reconstruction error exceeds the threshold chosen
        on validation rows (``model.threshold_quantile`` of their scores).

        Returns:
            (scores (N,), flags (N,) booleans).
        """
        self._require("reconstruction", what="anomalies")
        scores = self.predict(data, unknown=unknown, ignore_extra=ignore_extra)
        threshold = (self.meta.get("anomaly") or {}).get("threshold")
        if threshold is None:
            raise DataError("this autoencoder has no anomaly threshold: train it with data.anomaly_classes "
                            "and a validation split, or threshold the scores of predict yourself")
        return scores, scores > threshold

    def _label_codes(self, label, n: int):
        """Class indices for ``n`` samples of class ``label`` (None: the classes in turn)."""
        import torch

        classes = self.meta.get("classes")
        conditional = self.meta["task"] == "generation" and self.meta["model"]["spec"].get("conditional")
        if label is None:
            return torch.arange(n) % len(classes) if conditional else None
        if not conditional:
            raise DataError("--label needs a conditional GAN (model.conditional: true); this model draws "
                            "samples of every class at random")
        from .data.tabular import _category_key

        keys = [_category_key(c) for c in classes]
        if _category_key(label) not in keys:
            raise DataError(f"label {label!r} is not a class of this model (classes: {', '.join(map(str, classes))})")
        return torch.full((n,), keys.index(_category_key(label)), dtype=torch.long)

    def sample(self, n: int = 100, *, label=None, seed: int = 0) -> np.ndarray:
        """``n`` generated rows in model space (see ``write_samples`` for files): from a GAN, or
        decoded from random codes by a variational autoencoder. The same seed gives the same rows.

        Args:
            label: for a conditional GAN, the class to generate (default: every class in turn).
        """
        import torch

        self._require("generation", "reconstruction", what="sample")
        if n < 1:
            raise DataError(f"n must be at least 1, got {n}")
        generator = torch.Generator().manual_seed(seed)
        if self.meta["task"] == "generation":
            return self.model.sample(n, self._label_codes(label, n), generator=generator).numpy()
        if not self.model.variational:
            raise DataError("sampling needs a variational autoencoder (model.variant: variational) or a gan; "
                            "a plain autoencoder's codes do not follow a known distribution")
        if label is not None:
            raise DataError("--label needs a conditional GAN; an autoencoder is not conditioned on classes")
        return self.model.sample(n, generator=generator).numpy()

    def write_samples(self, path: str | Path, n: int = 100, *, label=None, seed: int = 0) -> Path:
        """Generate ``n`` rows and write them as a PNG grid (images) or a CSV/Parquet table."""
        from .generative import write_rows

        rows = self.sample(n, label=label, seed=seed)
        labels = None
        if self.meta["task"] == "generation" and self.meta["model"]["spec"].get("conditional"):
            codes = self._label_codes(label, n).numpy()
            labels = [self.meta["classes"][c] for c in codes]
        title = f"{n} samples" + (f" of class {label}" if label is not None else "")
        return write_rows(self.meta, rows, Path(path), labels=labels, title=title)

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
        import torch

        from .data.text import Tokenizer

        if self.meta["task"] != "language_model":
            raise DataError("generate is for language-model runs (a causal transformer on a text corpus)")
        if temperature <= 0:
            raise DataError("temperature must be > 0 (lower is more conservative, e.g. 0.8)")
        tokenizer = Tokenizer.from_json(self.meta["preprocessing"])
        context = self.meta["inputs"]["length"]
        ids = tokenizer.encode(prompt) or [1]
        model, generator = self.model, torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for _ in range(length):
                logits = model(torch.tensor([ids[-context:]]))[0, -1].float() / temperature  # (V,)
                logits[0] = float("-inf")  # never emit padding
                if top_k:
                    cutoff = torch.topk(logits, min(top_k, len(logits))).values[-1]
                    logits = logits.masked_fill(logits < cutoff, float("-inf"))
                ids.append(int(torch.multinomial(logits.softmax(-1), 1, generator=generator)))
        return tokenizer.decode(ids)

    def _targets(self, series, source):
        from .data.prepare import encode_classes
        from .data.tabular import _to_numbers

        if self.meta["task"] == "classification" or self.meta.get("classes") is not None:
            return encode_classes(series, self.meta["classes"], source)
        scaling = self.meta["target_scaling"]
        values = _to_numbers(series, series.name, source, boolean=False)
        if np.isnan(values).any():
            raise DataError(f"target column '{series.name}' has missing values; fill or drop them")
        return ((values - scaling["mean"][0]) / scaling["std"][0]).astype(np.float32)[:, None]


def load_run(path: str | Path) -> Run:
    """Load a run directory written by ``layerforge.train``.

    Example:
        >>> run = load_run("runs/digits-mlp-20261123-101500")  # doctest: +SKIP
        >>> run.predict(rows)                                    # doctest: +SKIP
    """
    return Run(path)


def list_runs(runs_dir: str | Path) -> list[dict[str, Any]]:
    """Summaries of the run directories in ``runs_dir``, newest first."""
    runs_dir = Path(runs_dir)
    rows = []
    if not runs_dir.is_dir():
        return rows
    for path in sorted(runs_dir.iterdir(), key=lambda p: p.stat().st_mtime, reverse=True):
        if not (path / MODEL).is_file():
            continue
        try:
            meta = json.loads((path / MODEL).read_text(encoding="utf-8"))
            metrics = json.loads((path / METRICS).read_text(encoding="utf-8")) if (path / METRICS).is_file() else {}
        except (OSError, json.JSONDecodeError):
            continue
        history = read_jsonl(path / HISTORY)
        rows.append({
            "run": path.name,
            "path": str(path),
            "task": meta.get("task"),
            "epochs": len(history),
            "status": "complete" if metrics else "incomplete",
            "metrics": metrics,
        })
    return rows
