"""Text pairs: a source text answered by a target text (sequence-to-sequence: translation, date
normalisation, spelling numbers out). Each side has its own tokenizer fitted on the training
rows (``data.tokenizer`` for the source, ``data.target_tokenizer`` for the target, by default
the source's options; ``target_tokenizer: shared``: one tokenizer fitted on both sides), and the
state keeps how answers are decoded (``data.decoding``), so that every door searches for
answers the same way.

Rows come from a table with a source and a target text column (``data.source``,
``data.target``), a parallel text file (``.txt``: a source text, a tab and its target text on
each line, as Tatoeba's exports hold them), or from a built-in set made offline from packages
(``dates``, ``numbers_fr``, ``numbers_de``).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from ...codecs.texts import Tokenizer, parallel_lines
from ...errors import DataError
from ...models.inputs import Inputs
from .. import builtin
from .base import Kind, Source
from .table import resolve_target
from .text import TextEncoder, TextState, fit_tokenizer

# ids the target side adds after its tokenizer's: the start and the end of an answer
TARGET_MARKS = 2


def room(longest: int) -> int:
    """Positions for texts of up to ``longest`` tokens and somewhat longer ones."""
    return longest + max(2, longest // 5)


class PairsState(TextState):
    """The source tokenizer, the length source texts are cut to and the source column (as a text
    classifier's), the target tokenizer (``Tokenizer.to_json``'s fields) and the most target ids
    a row holds (start and end included), and the search that decodes answers."""

    kind: Literal["pairs"] = "pairs"
    target_tokenizer: dict[str, Any]
    target_length: int
    beam_size: int = 1
    length_penalty: float = 1.0
    answer_length: int


class PairsEncoder(TextEncoder):
    state: PairsState

    def __init__(self, state: PairsState, target: str | None = None):
        super().__init__(state, target)
        self.target_tokenizer = Tokenizer.from_json(state.target_tokenizer)

    @property
    def inputs(self) -> Inputs:
        return Inputs(kind="pairs", vocab_size=self.tokenizer.vocab_size, length=self.state.max_length,
                      variable_length=True, target_vocab_size=self.target_tokenizer.vocab_size + TARGET_MARKS,
                      target_length=self.state.target_length)


def _column(frame, name: str | None, side: str, source: str) -> str:
    """The column of one side of the pairs (``data.<side>``, by default the column named ``side``)."""
    name = name or side
    if name not in frame.columns:
        raise DataError(f"data.{side}: {source} has no column '{name}'; name the column that holds the {side} text "
                        f"(columns: {', '.join(map(str, frame.columns[:30]))})")
    return name


class PairsKind(Kind):
    name = "pairs"
    reads = "pairs"
    targets = "sequences"
    state = PairsState

    def load(self, data_spec, *, target_required: bool = True) -> Source:
        """A built-in set of pairs, or a CSV/Parquet table with a source and a target text column."""
        from ..tabular import fingerprint_frame, read_table

        fixed = {}
        if data_spec.dataset:
            frame, test = builtin.load_pairs(data_spec.dataset)
            if test is not None:
                fixed["test"] = test
            label = data_spec.dataset
        elif data_spec.path.lower().endswith(".txt"):  # a parallel text file: source, tab, target
            import pandas as pd

            sources, targets = parallel_lines(data_spec.path)
            if targets is None:
                raise DataError(f"{data_spec.path}: no line holds a tab; a parallel text file holds a source text, a "
                                "tab and its target text on every line")
            frame, label = pd.DataFrame({"source": sources, "target": targets}), data_spec.path
        else:
            names = [name for name in (data_spec.source, data_spec.target) if isinstance(name, str)]
            frame, label = read_table(data_spec.path, text=names), data_spec.path
        column = _column(frame, data_spec.source, "source", label)
        target = resolve_target(data_spec, frame, label) if data_spec.target or data_spec.dataset else \
            _column(frame, None, "target", label)
        if isinstance(target, list):
            raise DataError("data.target: a text pair has one target column")
        if column == target:
            raise DataError(f"data.source: '{column}' is the target column; name the column of the text to answer")
        texts = frame[column].fillna("").astype(str).tolist()
        empty = np.flatnonzero(frame[target].isna().to_numpy() | (frame[target].astype(str).str.strip() == ""))
        if len(empty):
            raise DataError(f"{label}: the target text of row {empty[0] + 1} is empty ({len(empty)} rows); every "
                            "row needs the text that answers it: fill or drop those rows")
        labels = frame[target].astype(str)
        return Source(label, len(frame), texts, fingerprint_frame(frame[[column, target]]), target, labels,
                      fixed=fixed, facts={"column": column})

    def from_frame(self, data_spec, frame, source: str, *, target_required: bool = True) -> Source:
        raise DataError("text pairs are read from a table file (data.path) or a built-in set (dates, numbers_fr, "
                        "numbers_de)")

    def fit(self, source: Source, train: np.ndarray, data_spec) -> PairsEncoder:
        sources = [source.payload[i] for i in train]
        targets = [str(source.labels.iloc[i]) for i in train]
        if data_spec.target_tokenizer == "shared":  # one vocabulary, fitted on both sides
            tokenizer = target_tokenizer = fit_tokenizer(sources + targets, data_spec.tokenizer)
        else:
            tokenizer = fit_tokenizer(sources, data_spec.tokenizer)
            target_tokenizer = fit_tokenizer(targets, data_spec.target_tokenizer or data_spec.tokenizer)
        longest_source = max(len(tokenizer.encode(text)) for text in sources)
        longest_target = max(len(target_tokenizer.encode(text)) for text in targets)
        target_length = room(longest_target) + TARGET_MARKS
        decoding = data_spec.decoding
        answer_length = decoding.max_length or target_length - 1  # tokens after the start, the end included
        if answer_length > target_length - 1:
            raise DataError(f"data.decoding.max_length: the model is built for answers of up to {target_length - 1} "
                            f"tokens (the longest training target has {longest_target}); use at most that")
        state = PairsState(**tokenizer.to_json(), max_length=min(room(longest_source), data_spec.tokenizer.max_length),
                           text=source.facts["column"], target_tokenizer=target_tokenizer.to_json(),
                           target_length=target_length, beam_size=decoding.beam_size,
                           length_penalty=decoding.length_penalty, answer_length=answer_length)
        return PairsEncoder(state, source.target)

    def encoder(self, state: PairsState, target: str | None) -> PairsEncoder:
        return PairsEncoder(state, target)
