"""Decodings: how a task's outputs become answers, with numpy alone. Each task gives one
(``Task.decoding()``); the run keeps what it needs (model.json rebuilds the task, runtime.json
keeps ``to_json()``), and ``predict``'s table, the runtime's answers and the service's JSON all
come from it, whichever backend computed the outputs.

Example:
    >>> decoding = Classes(["cat", "dog"])
    >>> decoding.predictions(np.array([[0.1, 2.0]], np.float32), ()).tolist()
    ['dog']
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Literal

import numpy as np

from . import beams
from .codecs.cells import group_keys, shown
from .codecs.pictures import drawn_boxes
from .codecs.tables import Columns, named_rows
from .codecs.texts import Tokenizer
from .errors import DataError
from .metrics import box_iou


class Decoding:
    """Outputs of one kind, decoded. Subclasses name their ``kind`` and fields."""

    kind: ClassVar[str] = "outputs"
    writes_pictures: ClassVar[bool] = False  # whether its answers are pictures (``pictures``)
    # what a row of the prediction table is: an 'answer' (one per row, or per step of a forecast)
    # or a 'part' of one (a box found in a picture: none, one or many per row)
    table_rows: ClassVar[str] = "answer"

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind}

    def outputs(self, run: Callable[[str, tuple], np.ndarray], inputs: tuple) -> np.ndarray:
        """The outputs this decoding reads for encoded rows, from a backend that runs the
        network's graphs by name (``run(name, inputs)``: PyTorch or ONNX Runtime): by default
        the 'model' graph on the rows; a sequence-to-sequence decoding searches with the encoder
        and decoder graphs."""
        return run("model", inputs)

    def searching(self, beam_size: int | None = None) -> Decoding:
        """This decoding with answers written by a beam search of ``beam_size`` (None: as the run
        writes them).

        Raises:
            DataError: a beam size for outputs that are not written a token at a time.
        """
        if beam_size is not None:
            raise DataError("--beam-size is for runs that write their answers a token at a time (seq2seq, "
                            "transcription)")
        return self

    def predictions(self, outputs: np.ndarray, inputs: tuple) -> np.ndarray:
        """One prediction per row (``run.predict``)."""
        raise DataError("this run's outputs are not decoded into predictions")

    def columns(self, outputs: np.ndarray, inputs: tuple, target: str | None) -> dict[str, Any]:
        """The prediction table's columns (``layerforge predict``), name -> one value per row."""
        values = self.predictions(outputs, inputs)
        return {target or "prediction": list(values) if values.ndim > 1 else values}

    def named(self, table: dict, names: list[str] | None) -> dict:
        """The prediction table (``columns``) with each row's file first (``file``), when the
        rows were read from files (``names``) and there is one answer per file."""
        return named_rows(table, names)

    def answers(self, outputs: np.ndarray, inputs: tuple) -> list[dict]:
        """One JSON answer per row (the HTTP service): ``prediction`` and what the task adds."""
        return [{"prediction": value} for value in self.predictions(outputs, inputs).tolist()]

    def pictures(self, outputs: np.ndarray, shown: np.ndarray | None = None) -> np.ndarray:
        """The answers as pictures (``layerforge predict ... --out FOLDER`` writes one file each);
        ``shown``: the rows' own pictures (N, C, H, W) in [0, 1], for answers drawn over them.

        Raises:
            DataError: answers that are not pictures.
        """
        raise DataError("this run's answers are rows of a table, not pictures: write them to a file "
                        "(--out predictions.csv)")

    def probabilities(self, outputs: np.ndarray) -> np.ndarray:
        raise DataError("predict_proba is for classification runs")

    def answer_fields(self) -> dict[str, tuple[Any, str]]:
        """The fields of one answer (``answers``), each with its type and what it holds, for the
        service's schema."""
        return {"prediction": (float | list[float], "the prediction")}

    def combine(self, members: list[tuple[Decoding, np.ndarray]]) -> np.ndarray:
        """An ensemble's outputs, in this decoding's terms, from each member's decoding and
        outputs on the same rows (each member decodes its own scaling)."""
        raise DataError(f"outputs decoded as {self.kind} do not combine into an ensemble")

    def spread(self, members: list[tuple[Decoding, np.ndarray]], combined: np.ndarray) -> dict[str, np.ndarray]:
        """Per-row columns that say how much an ensemble's members disagree."""
        return {}


def check_finite_rows(outputs: np.ndarray) -> None:
    """Raise naming the first row whose outputs are not all finite numbers."""
    bad = np.flatnonzero(~np.isfinite(outputs.reshape(len(outputs), -1)).all(axis=1)) if len(outputs) else []
    if len(bad):
        raise DataError(f"the model's outputs for row {bad[0] + 1} are not finite numbers: that row lies far outside "
                        "the values the model was trained on; check it")


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64, returned as float32."""
    shifted = logits.astype(np.float64) - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return (exp / exp.sum(axis=-1, keepdims=True)).astype(np.float32)


class Classes(Decoding):
    """Logits to a class and each class's probability (the softmax, after dividing by the
    run's ``temperature`` when it was calibrated)."""

    kind = "classes"

    def __init__(self, classes: list, temperature: float | None = None):
        if temperature is not None and not (isinstance(temperature, (int, float)) and 0 < temperature < float("inf")):
            raise DataError(f"decoding.temperature: expected a number > 0, got {shown(temperature)}")
        self.classes, self.temperature = list(classes), temperature

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "classes": self.classes, "temperature": self.temperature}

    def probabilities(self, outputs: np.ndarray) -> np.ndarray:
        return softmax(outputs / self.temperature if self.temperature else outputs)

    def answer_fields(self) -> dict[str, tuple[Any, str]]:
        return {"prediction": (Literal[tuple(self.classes)], "the class"),
                "probabilities": (dict[str, float], "class -> probability")}

    def predictions(self, outputs: np.ndarray, inputs: tuple) -> np.ndarray:
        return np.asarray(self.classes, dtype=object)[self.probabilities(outputs).argmax(axis=1)]

    def columns(self, outputs: np.ndarray, inputs: tuple, target: str | None) -> dict[str, Any]:
        found = self.probabilities(outputs)
        table = {target or "prediction": np.asarray(self.classes, dtype=object)[found.argmax(axis=1)]}
        for i, name in enumerate(self.classes):
            table[f"proba_{name}"] = found[:, i]
        return table

    def combine(self, members: list[tuple[Decoding, np.ndarray]]) -> np.ndarray:
        """The log of the members' mean probability (each with its own temperature): logits whose
        softmax is that mean."""
        mean = np.mean([decoding.probabilities(outputs).astype(np.float64) for decoding, outputs in members], axis=0)
        return np.log(np.maximum(mean, 1e-12)).astype(np.float32)

    def spread(self, members: list[tuple[Decoding, np.ndarray]], combined: np.ndarray) -> dict[str, np.ndarray]:
        """``disagreement``: the share of members whose class differs from the ensemble's."""
        chosen = combined.argmax(axis=1)
        votes = [decoding.probabilities(outputs).argmax(axis=1) != chosen for decoding, outputs in members]
        return {"disagreement": np.mean(votes, axis=0)}

    def answers(self, outputs: np.ndarray, inputs: tuple) -> list[dict]:
        found = self.probabilities(outputs)
        chosen = found.argmax(axis=1).tolist()
        return [{"prediction": self.classes[best], "probabilities": dict(zip(map(str, self.classes), row))}
                for best, row in zip(chosen, found.astype(np.float64).tolist())]


class Values(Decoding):
    """Standardised outputs to values on the target's scale (one or several targets)."""

    kind = "values"

    def __init__(self, mean: list[float], std: list[float]):
        self.mean, self.std = [float(m) for m in mean], [float(s) for s in std]

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "mean": self.mean, "std": self.std}

    def values(self, outputs: np.ndarray) -> np.ndarray:
        """(rows, targets) on the targets' scale."""
        return outputs.astype(np.float64) * np.asarray(self.std) + np.asarray(self.mean)

    def predictions(self, outputs: np.ndarray, inputs: tuple) -> np.ndarray:
        values = self.values(outputs)
        return values[:, 0] if values.shape[1] == 1 else values

    def combine(self, members: list[tuple[Decoding, np.ndarray]]) -> np.ndarray:
        """The members' mean on the targets' scale, standardised as this decoding reads outputs."""
        mean = np.mean([decoding.values(outputs) for decoding, outputs in members], axis=0)
        return ((mean - np.asarray(self.mean)) / np.asarray(self.std)).astype(np.float32)

    def spread(self, members: list[tuple[Decoding, np.ndarray]], combined: np.ndarray) -> dict[str, np.ndarray]:
        """``uncertainty``: the members' standard deviation on the target's scale (the first
        target's, when there are several)."""
        return {"uncertainty": np.std([decoding.values(outputs) for decoding, outputs in members], axis=0)[:, 0]}


class Labels(Decoding):
    """Logits to a set of labels: each label whose probability (its sigmoid) reaches the label's
    threshold (tuned on validation rows; 0.5 by default); the set is written with ``separator``
    between labels in a table, and as a list in JSON."""

    kind = "labels"

    def __init__(self, classes: list, thresholds: list[float] | None = None, separator: str = "|"):
        thresholds = [0.5] * len(classes) if thresholds is None else thresholds
        if len(thresholds) != len(classes) or not all(isinstance(t, (int, float)) and 0 <= t <= 1 for t in thresholds):
            raise DataError(f"decoding.thresholds: expected {len(classes)} numbers between 0 and 1, got "
                            f"{shown(thresholds)}")
        self.classes, self.thresholds, self.separator = [str(c) for c in classes], list(thresholds), separator

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "classes": self.classes, "thresholds": self.thresholds,
                "separator": self.separator}

    def probabilities(self, outputs: np.ndarray) -> np.ndarray:
        """Each label's probability (rows, labels): the sigmoid of its logit."""
        return (1 / (1 + np.exp(-outputs.astype(np.float64)))).astype(np.float32)

    def chosen(self, outputs: np.ndarray) -> np.ndarray:
        """(rows, labels) booleans: the labels each row is given."""
        return self.probabilities(outputs) >= np.asarray(self.thresholds, dtype=np.float32)

    def answer_fields(self) -> dict[str, tuple[Any, str]]:
        return {"prediction": (list[str], "the labels"),
                "probabilities": (dict[str, float], "label -> probability")}

    def predictions(self, outputs: np.ndarray, inputs: tuple) -> np.ndarray:
        names = np.asarray(self.classes, dtype=object)
        return np.asarray([self.separator.join(names[row]) for row in self.chosen(outputs)], dtype=object)

    def columns(self, outputs: np.ndarray, inputs: tuple, target: str | None) -> dict[str, Any]:
        found = self.probabilities(outputs)
        table = {target or "prediction": self.predictions(outputs, inputs)}
        for i, name in enumerate(self.classes):
            table[f"proba_{name}"] = found[:, i]
        return table

    def answers(self, outputs: np.ndarray, inputs: tuple) -> list[dict]:
        found, chosen = self.probabilities(outputs), self.chosen(outputs)
        return [{"prediction": [c for c, on in zip(self.classes, row) if on],
                 "probabilities": dict(zip(self.classes, values))}
                for row, values in zip(chosen.tolist(), found.astype(np.float64).tolist())]


class Targets(Decoding):
    """Several targets' outputs side by side (multi-target): each target's slice of the outputs
    decoded by its own decoding, under its name.

    Args:
        parts: each target's ``{"name", "decoding" (its to_json()), "start", "stop"}``.
    """

    kind = "targets"

    def __init__(self, parts: list[dict]):
        if not isinstance(parts, list) or not parts:
            raise DataError("decoding.parts: expected a list of each target's decoding")
        self.parts = [dict(part) for part in parts]
        self.decodings = [from_json(part["decoding"]) for part in self.parts]

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "parts": self.parts}

    def _each(self, outputs: np.ndarray):
        for part, decoding in zip(self.parts, self.decodings):
            yield part["name"], decoding, outputs[:, part["start"] : part["stop"]]

    def answer_fields(self) -> dict[str, tuple[Any, str]]:
        return {"prediction": (dict[str, Any], "target -> its prediction"),
                "probabilities": (dict[str, dict[str, float]], "classification target -> class -> probability")}

    def predictions(self, outputs: np.ndarray, inputs: tuple) -> np.ndarray:
        """(rows, targets) of each target's prediction, as objects."""
        columns = [np.asarray(decoding.predictions(block, inputs), dtype=object)
                   for _, decoding, block in self._each(outputs)]
        return np.stack(columns, axis=1)

    def columns(self, outputs: np.ndarray, inputs: tuple, target: str | None) -> dict[str, Any]:
        table = {}
        for name, decoding, block in self._each(outputs):  # each target's column first, then its probabilities
            found = decoding.columns(block, inputs, name)
            table.update({(key if key == name else f"{name}:{key}"): value for key, value in found.items()})
        return table

    def answers(self, outputs: np.ndarray, inputs: tuple) -> list[dict]:
        answers = [{"prediction": {}, "probabilities": {}} for _ in range(len(outputs))]
        for name, decoding, block in self._each(outputs):
            for answer, found in zip(answers, decoding.answers(block, inputs)):
                answer["prediction"][name] = found["prediction"]
                if "probabilities" in found:
                    answer["probabilities"][name] = found["probabilities"]
        return answers


class Forecast(Decoding):
    """Scaled outputs to the next ``horizon`` steps of the target, on its scale (the exponential
    when the run forecast its logarithm). One history gives a row per step."""

    kind = "forecast"

    def __init__(self, mean: float, std: float, log: bool):
        self.mean, self.std, self.log = float(mean), float(std), bool(log)

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "mean": self.mean, "std": self.std, "log": self.log}

    def answer_fields(self) -> dict[str, tuple[Any, str]]:
        return {"prediction": (list[float], "the next steps")}

    def predictions(self, outputs: np.ndarray, inputs: tuple) -> np.ndarray:
        """(histories, horizon) forecasts."""
        values = outputs.astype(np.float64) * self.std + self.mean
        return np.exp(values) if self.log else values

    def columns(self, outputs: np.ndarray, inputs: tuple, target: str | None) -> dict[str, Any]:
        """``step`` and the forecast, one row per step of each history (``history`` numbers them
        from 1 when there are several)."""
        values = self.predictions(outputs, inputs)
        steps = values.shape[1] if values.ndim == 2 else 0
        table = {} if len(values) == 1 else {"history": np.repeat(np.arange(1, len(values) + 1), steps)}
        return {**table, "step": np.tile(np.arange(1, steps + 1), len(values)), target or "forecast": values.ravel()}


class AnomalyScores(Decoding):
    """Reconstructions to each row's anomaly score (its mean squared error, weighted per input
    when the data's units ask it), and whether it passes the threshold chosen on validation rows."""

    kind = "anomaly_scores"

    def __init__(self, weights: list[float] | None = None, threshold: float | None = None):
        self.weights, self.threshold = weights, threshold

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "weights": self.weights, "threshold": self.threshold}

    def predictions(self, outputs: np.ndarray, inputs: tuple) -> np.ndarray:
        squared = (outputs.astype(np.float32) - inputs[0].astype(np.float32)) ** 2
        squared = squared.reshape(len(squared), -1)
        if self.weights is not None:
            squared = squared * np.asarray(self.weights, dtype=np.float32)
        return squared.mean(axis=1)

    def columns(self, outputs: np.ndarray, inputs: tuple, target: str | None) -> dict[str, Any]:
        return self.scored(self.predictions(outputs, inputs))

    def answer_fields(self) -> dict[str, tuple[Any, str]]:
        fields = {"prediction": (float, "the anomaly score"), "anomaly_score": (float, "the anomaly score")}
        if self.threshold is not None:
            fields["anomaly"] = (bool, "the score exceeds the threshold chosen on validation rows")
        return fields

    def scored(self, scores: np.ndarray) -> dict[str, Any]:
        """The table's columns for these scores: ``anomaly_score``, and ``anomaly`` with a threshold."""
        table = {"anomaly_score": scores}
        if self.threshold is not None:
            table["anomaly"] = scores > self.threshold
        return table

    def answers(self, outputs: np.ndarray, inputs: tuple) -> list[dict]:
        scores = self.predictions(outputs, inputs).astype(np.float64).tolist()
        extra = (lambda s: {}) if self.threshold is None else (lambda s: {"anomaly": s > self.threshold})
        return [{"prediction": score, "anomaly_score": score, **extra(score)} for score in scores]


class Thresholds:
    """A decision stage after a binary classifier's decoding: a row of group ``g`` (its key in
    ``column``, see ``codecs.cells.group_keys``) is decided ``positive`` when the probability of
    ``positive`` reaches ``thresholds[g]``, else ``other``. The probabilities stay the model's.

    The torch Predictor, the runtime and the service all decide with it (fairness mitigation
    sets it; model.json and runtime.json keep ``to_json()``).
    """

    def __init__(self, column: str, positive, other, thresholds: dict[str, float]):
        self.column, self.positive, self.other, self.thresholds = column, positive, other, dict(thresholds)

    def to_json(self) -> dict[str, Any]:
        return {"column": self.column, "positive": self.positive, "other": self.other, "thresholds": self.thresholds}

    def split(self, columns, features: list[str], *, required: bool = True):
        """``(columns for the codec, each row's group)`` of rows read by a codec (``Columns``): the
        decision's column is taken out when the model does not read it. Rows without the column
        give ``(columns, None)`` unless ``required`` (what decisions need; probabilities and
        metrics do not).

        Raises:
            DataError: decisions asked of rows without the column, or a group without a threshold.
        """
        values = getattr(columns, "values", None)
        if not isinstance(values, dict) or self.column not in values:
            if not required:
                return columns, None
            raise DataError(f"column '{self.column}': this run decides by per-group thresholds on it (fairness "
                            "mitigation), so the rows must be a table that carries it; remove the thresholds with "
                            "`layerforge fairness RUN --mitigate none` to predict without it")
        groups = np.asarray(group_keys(values[self.column]), dtype=object)
        unknown = [g for g in dict.fromkeys(groups.tolist()) if g not in self.thresholds]
        if unknown:
            row = int(np.flatnonzero(groups == unknown[0])[0])
            covered = ", ".join(map(repr, sorted(self.thresholds)))
            raise DataError(f"column '{self.column}': group {shown(unknown[0])} in {columns.where(row)} has no "
                            f"decision threshold (the thresholds cover {covered})")
        if self.column not in features:
            columns = Columns({k: v for k, v in values.items() if k != self.column}, columns.where, columns.rows)
        return columns, groups

    def decide(self, classes: list, probabilities: np.ndarray, groups: np.ndarray) -> np.ndarray:
        """Class labels for rows with these probabilities (columns in the order of ``classes``)."""
        return self.decide_by(probabilities[:, [str(c) for c in classes].index(str(self.positive))], groups)

    def decoding(self, decoding: Classes, groups: np.ndarray | None) -> Decoding:
        """``decoding`` with its classes picked by this stage, for rows of these groups (itself
        when the rows' groups are not known: probabilities need none)."""
        return decoding if groups is None else Decided(decoding, self, groups)

    def decide_by(self, chance: np.ndarray, groups: np.ndarray) -> np.ndarray:
        """Class labels for rows whose probability of ``positive`` is ``chance``."""
        cut = np.array([self.thresholds[g] for g in groups], dtype=np.float64)
        return np.where(chance >= cut, self.positive, self.other).astype(object)


class Decided(Decoding):
    """A classification decoding whose classes a decision stage picks (``Thresholds``), for rows
    of known groups: the table's and the answers' ``prediction`` change, the probabilities not."""

    def __init__(self, decoding: Classes, decision: Thresholds, groups: np.ndarray):
        self.decoding, self.decision, self.groups = decoding, decision, groups
        self.kind = decoding.kind

    def probabilities(self, outputs: np.ndarray) -> np.ndarray:
        return self.decoding.probabilities(outputs)

    def predictions(self, outputs: np.ndarray, inputs: tuple) -> np.ndarray:
        return self.decision.decide(self.decoding.classes, self.probabilities(outputs), self.groups)

    def columns(self, outputs: np.ndarray, inputs: tuple, target: str | None) -> dict[str, Any]:
        table = self.decoding.columns(outputs, inputs, target)
        table[next(iter(table))] = self.predictions(outputs, inputs)
        return table

    def answers(self, outputs: np.ndarray, inputs: tuple) -> list[dict]:
        found = self.decoding.answers(outputs, inputs)
        for answer, chosen in zip(found, self.predictions(outputs, inputs).tolist()):
            answer["prediction"] = chosen
        return found


class Samples(Decoding):
    """A generator's outputs are rows in model space, not answers to rows; ``classes`` names
    what a conditional generator is conditioned on."""

    kind = "samples"

    def __init__(self, classes: list | None = None):
        self.classes = classes

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "classes": self.classes}


class NextToken(Decoding):
    """A language model's outputs are next-token logits, read by text generation."""

    kind = "next_token"


class Texts(Decoding):
    """A sequence-to-sequence model's answers: the encoder graph reads the source rows once, then
    the decoder graph gives the next token's log-probabilities for the answers written so far,
    and a search (``layerforge.beams``: greedy, or beam search with a length penalty) writes
    each answer a token at a time until its end token or ``answer_length`` tokens. The outputs
    are the answers' token ids (rows, ``answer_length``), zero after each answer's end; the
    target tokenizer turns them into text.

    Args:
        tokenizer: the target tokenizer's fields (``Tokenizer.to_json``); ids below its
            vocabulary size are its tokens, the next two the start and the end of an answer.
        beam_size, length_penalty, answer_length: the search (``data.decoding``).
    """

    kind = "texts"

    def __init__(self, tokenizer: dict, beam_size: int = 1, length_penalty: float = 1.0, answer_length: int = 64):
        if not (isinstance(beam_size, int) and beam_size >= 1):
            raise DataError(f"beam_size: expected a whole number >= 1, got {shown(beam_size)}")
        self.record, self.tokenizer = dict(tokenizer), Tokenizer.from_json(tokenizer)
        self.beam_size, self.length_penalty, self.answer_length = beam_size, float(length_penalty), int(answer_length)
        self.start = self.tokenizer.vocab_size
        self.end = self.start + 1

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "tokenizer": self.record, "beam_size": self.beam_size,
                "length_penalty": self.length_penalty, "answer_length": self.answer_length}

    def searching(self, beam_size: int | None = None) -> Texts:
        """This decoding with another beam size (None: this one; 1: greedy search)."""
        if beam_size is None or beam_size == self.beam_size:
            return self
        return Texts(self.record, beam_size, self.length_penalty, self.answer_length)

    def outputs(self, run: Callable[[str, tuple], np.ndarray], inputs: tuple) -> np.ndarray:
        x, lengths = inputs[0], inputs[1]
        memory = run("encoder", (x, lengths))
        if not len(x):
            return np.zeros((0, self.answer_length), np.int64)

        def step(prefixes: np.ndarray, owners: np.ndarray) -> np.ndarray:
            scores = run("decoder", (memory[owners], lengths[owners], prefixes)).astype(np.float64)
            scores[:, 0] = scores[:, self.start] = -np.inf  # an answer holds no padding, and starts once
            return scores

        options = {"start": self.start, "end": self.end, "max_length": self.answer_length}
        found = beams.greedy(step, len(x), **options) if self.beam_size == 1 else \
            beams.beam(step, len(x), beam_size=self.beam_size, length_penalty=self.length_penalty, **options)
        ids = np.zeros((len(x), self.answer_length), np.int64)
        for row, tokens in enumerate(found):
            ids[row, : len(tokens)] = tokens
        return ids

    def texts(self, outputs: np.ndarray) -> list[str]:
        """The answers' texts from their token ids."""
        return [self.tokenizer.decode([int(i) for i in row if 0 < i < self.start]) for row in np.asarray(outputs)]

    def predictions(self, outputs: np.ndarray, inputs: tuple) -> np.ndarray:
        return np.asarray(self.texts(outputs), dtype=object)

    def answer_fields(self) -> dict[str, tuple[Any, str]]:
        return {"prediction": (str, "the answer text")}

    def answers(self, outputs: np.ndarray, inputs: tuple) -> list[dict]:
        return [{"prediction": text} for text in self.texts(outputs)]


class Transcripts(Decoding):
    """A transcriber's answers: the network gives every frame's logits over the blank (id 0) and
    the transcript's tokens, and connectionist temporal classification's search reads each
    clip's frames into tokens (``layerforge.beams``: the best path, or prefix beam search over
    ``beam_size`` labellings, each scored by all its alignments). The outputs are the token ids
    (rows, frames), zero after each transcript's end; the tokenizer turns them into text.

    Args:
        tokenizer: the transcripts' tokenizer's fields (``Tokenizer.to_json``).
        beam_size: 1 for the best path; more for prefix beam search.
    """

    kind = "transcripts"

    def __init__(self, tokenizer: dict, beam_size: int = 1):
        if not (isinstance(beam_size, int) and beam_size >= 1):
            raise DataError(f"beam_size: expected a whole number >= 1, got {shown(beam_size)}")
        self.record, self.tokenizer, self.beam_size = dict(tokenizer), Tokenizer.from_json(tokenizer), beam_size

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "tokenizer": self.record, "beam_size": self.beam_size}

    def searching(self, beam_size: int | None = None) -> Transcripts:
        """This decoding with another beam size (None: this one; 1: the best path)."""
        if beam_size is None or beam_size == self.beam_size:
            return self
        return Transcripts(self.record, beam_size)

    def outputs(self, run: Callable[[str, tuple], np.ndarray], inputs: tuple) -> np.ndarray:
        logits = np.asarray(run("model", tuple(inputs)), dtype=np.float64)  # (N, T, V)
        check_finite_rows(logits)
        shifted = logits - logits.max(axis=-1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
        ids = np.zeros(logits.shape[:2], np.int64)
        for row, frames in enumerate(log_probs):
            tokens = beams.ctc_greedy(frames) if self.beam_size == 1 else beams.ctc_beam(frames, self.beam_size)
            ids[row, : len(tokens)] = tokens
        return ids

    def texts(self, outputs: np.ndarray) -> list[str]:
        """The transcripts' texts from their token ids."""
        return [self.tokenizer.decode([int(i) for i in row if i > 0]) for row in np.asarray(outputs)]

    def predictions(self, outputs: np.ndarray, inputs: tuple) -> np.ndarray:
        return np.asarray(self.texts(outputs), dtype=object)

    def answer_fields(self) -> dict[str, tuple[Any, str]]:
        return {"prediction": (str, "the transcript")}

    def answers(self, outputs: np.ndarray, inputs: tuple) -> list[dict]:
        return [{"prediction": text} for text in self.texts(outputs)]


class Masks(Decoding):
    """Class scores of every pixel (N, K, H, W) read as masks: each pixel's likeliest class. A
    prediction is a mask (H, W) of class indices; the prediction table counts each class's
    pixels; ``pictures`` gives the masks as they are written to PNG files.

    Args:
        classes: the name of each class index.
    """

    kind = "masks"
    writes_pictures = True

    def __init__(self, classes: list):
        self.classes = [str(c) for c in classes]

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "classes": self.classes}

    def pictures(self, outputs: np.ndarray, shown: np.ndarray | None = None) -> np.ndarray:
        """The masks (N, H, W) of class indices, uint8, as PNG files hold them."""
        check_finite_rows(outputs)
        return np.asarray(outputs).argmax(axis=1).astype(np.uint8)

    def predictions(self, outputs: np.ndarray, inputs: tuple) -> np.ndarray:
        return self.pictures(outputs).astype(np.int64)

    def columns(self, outputs: np.ndarray, inputs: tuple, target: str | None) -> dict[str, Any]:
        masks = self.pictures(outputs)
        counts = np.stack([(masks == k).sum(axis=(1, 2)) for k in range(len(self.classes))], axis=1)
        return {f"pixels_{name}": counts[:, k] for k, name in enumerate(self.classes)}

    def answer_fields(self) -> dict[str, tuple[Any, str]]:
        return {"prediction": (list[list[int]], "each pixel's class index, row by row (the classes: "
                                                  f"{', '.join(self.classes)})")}

    def answers(self, outputs: np.ndarray, inputs: tuple) -> list[dict]:
        return [{"prediction": mask.tolist()} for mask in self.predictions(outputs, inputs)]


def _peaks(heat: np.ndarray) -> np.ndarray:
    """Where each map (N, K, H, W) is the largest in its 3x3 neighbourhood (a heatmap's peaks)."""
    padded = np.pad(heat, ((0, 0), (0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
    height, width = heat.shape[-2:]
    around = np.max([padded[:, :, dy : dy + height, dx : dx + width] for dy in range(3) for dx in range(3)], axis=0)
    return heat >= around


def suppressed(boxes: np.ndarray, overlap: float) -> np.ndarray:
    """Non-maximum suppression: the rows of ``boxes`` (k, 6: ``x_min, y_min, x_max, y_max,
    class, score``, best first) kept, each box dropped when it overlaps a kept box of its class
    by more than ``overlap`` (IoU)."""
    keep = np.ones(len(boxes), bool)
    overlaps = box_iou(boxes[:, :4], boxes[:, :4])
    same = boxes[:, None, 4] == boxes[None, :, 4]
    for i in range(len(boxes)):
        if keep[i]:
            later = np.arange(len(boxes)) > i
            keep &= ~(later & same[i] & (overlaps[i] > overlap))
    return keep


class Boxes(Decoding):
    """A detector's maps (N, classes + 4, cells down, cells across: each class's heatmap logits,
    then the box's log width and log height in pixels and the logits of its centre's place in
    the cell) read as boxes: the heatmaps' peaks (the largest in their 3x3 neighbourhood) of
    probability at least ``min_score``, at most ``MOST`` per picture, each with its size and
    centre, cut to the picture, then non-maximum suppression within each class (``overlap``).
    A prediction is an array (boxes, 6) of ``x_min, y_min, x_max, y_max, class, score`` in the
    pixels of the picture as the run reads it; the prediction table has a row per box.

    Args:
        classes: the name of each class.
        size: the pictures' height and width.
        min_score: the least score of a box answered (evaluation reads every box down to
            ``SCORED``, as COCO's scoring wants them).
        overlap: the IoU above which a box is suppressed by a better one of its class.
    """

    kind = "boxes"
    table_rows = "part"
    writes_pictures = True  # each picture with its boxes drawn over it
    MOST = 100
    SCORED = 0.01

    def __init__(self, classes: list, size: list[int], min_score: float = 0.3, overlap: float = 0.5):
        self.classes, self.size = [str(c) for c in classes], [int(s) for s in size]
        self.min_score, self.overlap = float(min_score), float(overlap)

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "classes": self.classes, "size": self.size, "min_score": self.min_score,
                "overlap": self.overlap}

    def detections(self, outputs: np.ndarray, min_score: float | None = None) -> list[np.ndarray]:
        """Per picture, its boxes (k, 6), best first (``min_score``: the least score kept;
        default the decoding's)."""
        check_finite_rows(outputs)
        outputs = np.asarray(outputs, np.float64)
        count, height, width = len(self.classes), *self.size
        stride = 2 ** round(np.log2(height / outputs.shape[2]))
        heat = 1.0 / (1.0 + np.exp(-outputs[:, :count]))
        heat = np.where(_peaks(heat), heat, 0.0)
        least = self.min_score if min_score is None else min_score
        limit = np.log(4.0 * max(height, width))
        found = []
        for maps, scores in zip(outputs, heat):
            flat = scores.reshape(-1)
            best = np.argsort(-flat, kind="stable")[: self.MOST]
            best = best[flat[best] >= least]
            k, rows, columns = np.unravel_index(best, scores.shape)
            box_width, box_height = np.exp(np.minimum(maps[count : count + 2, rows, columns], limit))
            inner = 1.0 / (1.0 + np.exp(-maps[count + 2 : count + 4, rows, columns]))
            x, y = (columns + inner[0]) * stride, (rows + inner[1]) * stride
            boxes = np.stack([np.clip(x - box_width / 2, 0, width), np.clip(y - box_height / 2, 0, height),
                              np.clip(x + box_width / 2, 0, width), np.clip(y + box_height / 2, 0, height),
                              k.astype(np.float64), flat[best]], axis=1).reshape(-1, 6)
            found.append(boxes[suppressed(boxes, self.overlap)])
        return found

    def predictions(self, outputs: np.ndarray, inputs: tuple) -> np.ndarray:
        found = np.empty(len(outputs), dtype=object)
        found[:] = self.detections(outputs)
        return found

    def columns(self, outputs: np.ndarray, inputs: tuple, target: str | None) -> dict[str, Any]:
        """A row per box: ``picture`` (the row number, from 1; the file, where pictures are read
        from files: ``named``), the box, its ``label`` and its ``score``."""
        found = self.detections(outputs)
        boxes = np.concatenate(found) if found else np.zeros((0, 6))
        pictures = np.repeat(np.arange(1, len(found) + 1), [len(b) for b in found])
        return {"picture": pictures, **{name: np.round(boxes[:, i], 2) for i, name in enumerate(BOX_COLUMNS)},
                "label": np.array([self.classes[int(k)] for k in boxes[:, 4]], dtype=object),
                "score": np.round(boxes[:, 5], 6)}

    def pictures(self, outputs: np.ndarray, shown: np.ndarray | None = None) -> np.ndarray:
        """Each picture of ``shown`` (N, C, H, W) with its boxes drawn over it: RGB (N, H, W, 3)."""
        if shown is None:
            raise DataError("boxes are drawn over their pictures; give the pictures")
        return np.stack([drawn_boxes(picture, boxes, self.classes)
                         for picture, boxes in zip(shown, self.detections(outputs))])

    def named(self, table: dict, names: list[str] | None) -> dict:
        """The table with each box's picture named by its file (``names``, one per picture)."""
        if names is None:
            return table
        return {**table, "picture": [names[int(row) - 1] for row in table["picture"]]}

    def answer_fields(self) -> dict[str, tuple[Any, str]]:
        return {"prediction": (list[dict[str, float | str]], "the boxes found, best first: x_min, y_min, x_max, "
                                                              "y_max (pixels), label (one of: "
                                                              f"{', '.join(self.classes)}) and score")}

    def answers(self, outputs: np.ndarray, inputs: tuple) -> list[dict]:
        return [{"prediction": [{**{name: round(float(box[i]), 2) for i, name in enumerate(BOX_COLUMNS)},
                                 "label": self.classes[int(box[4])], "score": round(float(box[5]), 6)}
                                for box in boxes]} for boxes in self.detections(outputs)]


BOX_COLUMNS = ("x_min", "y_min", "x_max", "y_max")


DECODINGS: dict[str, type[Decoding]] = {cls.kind: cls for cls in (Decoding, Classes, Labels, Targets, Values,
                                                                   Forecast, AnomalyScores, Samples, NextToken, Texts,
                                                                   Transcripts, Masks, Boxes)}


def from_json(record: dict) -> Decoding:
    """The decoding ``to_json()`` wrote (runtime.json's ``decoding``).

    Raises:
        DataError: a kind no decoding has, or fields it does not take.
    """
    kind = record.get("kind") if isinstance(record, dict) else None
    if kind not in DECODINGS:
        raise DataError(f"decoding: unknown kind {kind!r} (known: {', '.join(DECODINGS)})")
    fields = {key: value for key, value in record.items() if key != "kind"}
    try:
        return DECODINGS[kind](**fields)
    except TypeError as error:
        raise DataError(f"decoding of kind {kind!r}: {error}") from None


__all__ = ["AnomalyScores", "Boxes", "Classes", "DECODINGS", "Decoding", "Forecast", "Labels", "Masks", "NextToken",
           "Samples", "Targets", "Texts", "Thresholds", "Transcripts", "Values", "check_finite_rows", "from_json",
           "softmax"]
