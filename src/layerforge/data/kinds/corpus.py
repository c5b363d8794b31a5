"""Corpora for language modelling: one text (a .txt file or a built-in), split in order, cut
into blocks of ``data.context`` tokens that predict their next tokens."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Literal

import numpy as np

from ...errors import DataError
from ...models.inputs import Inputs
from .. import builtin
from ..splits import Chronological, ExpandingWindow
from .base import Encoder, Kind, Source
from .text import Tokenizer, TokenizerFields, fit_tokenizer


class CorpusState(TokenizerFields):
    """The tokenizer and the context length (tokens each position may look back on)."""

    kind: Literal["corpus"] = "corpus"
    context: int


class CorpusEncoder(Encoder):
    state: CorpusState

    def __init__(self, state: CorpusState, target: str | None = None):
        super().__init__(state, target)
        self.tokenizer = Tokenizer.from_json(state)

    @property
    def inputs(self) -> Inputs:
        return Inputs(kind="tokens", vocab_size=self.tokenizer.vocab_size, length=self.state.context)

    def encode(self, source: Source, parts: dict[str, np.ndarray]):
        """Each part's characters, tokenized and cut into blocks of ``context + 1`` tokens:
        inputs, and the next token of each position."""
        context, encoded = self.state.context, {}
        for name, rows in parts.items():
            text = source.payload[int(rows[0]) : int(rows[-1]) + 1] if len(rows) else ""
            ids = np.asarray(self.tokenizer.encode(text), dtype=np.int64)
            blocks = len(ids) // (context + 1)
            if name == "train" and blocks == 0:
                raise DataError(f"{source.label}: the training text holds fewer than {context + 1} tokens; "
                                "lower data.context")
            chunk = ids[: blocks * (context + 1)].reshape(blocks, context + 1)
            encoded[name] = ((chunk[:, :-1],), chunk[:, 1:])
        return encoded

    def encode_new(self, data, *, unknown: str | None = None, ignore_extra: bool = False):
        raise DataError("a language model continues text: use generate (layerforge generate RUN --prompt ...)")


class CorpusKind(Kind):
    name = "corpus"
    reads = "tokens"
    targets = "next_tokens"
    state = CorpusState

    def load(self, data_spec, *, target_required: bool = True) -> Source:

        if data_spec.dataset:
            text, source = builtin.load_text(data_spec.dataset), data_spec.dataset
        else:
            text, source = Path(data_spec.path).read_text(encoding="utf-8"), data_spec.path
        fingerprint = hashlib.sha256(text.encode("utf-8")).hexdigest()
        return Source(source, len(text), text, fingerprint, "next_token")

    def plan(self, data_spec, source: Source, seed: int, stratify: bool):
        """A corpus is split in order: the first ``1 - val - test`` of its characters train, the
        next ``val`` validate, the rest test."""
        n, split = source.rows, data_spec.split
        train_end, val_end = int(n * (1 - split.val - split.test)), int(n * (1 - split.test))
        return Chronological(split.val, split.test, test_rows=n - val_end, val_rows=val_end - train_end)

    def cv_plan(self, data_spec, source: Source, seed: int, stratify: bool, folds: int, fold: int, deal: int):
        """Expanding windows over the text before the test part, in order."""
        return ExpandingWindow(folds, fold, test_rows=source.rows - int(source.rows * (1 - data_spec.split.test)))

    def raw_rows(self, source: Source, positions: np.ndarray):
        """None: a corpus is continued, not answered row by row."""
        return None

    def fit(self, source: Source, train: np.ndarray, data_spec) -> CorpusEncoder:
        if len(train) == 0:
            raise DataError(f"{source.label}: no text left for training after the split")
        options = data_spec.tokenizer
        train_text = source.payload[int(train[0]) : int(train[-1]) + 1]
        tokenizer = fit_tokenizer([train_text], options)
        return CorpusEncoder(CorpusState(**tokenizer.to_json(), context=data_spec.context), source.target)

    def encoder(self, state: CorpusState, target: str | None) -> CorpusEncoder:
        return CorpusEncoder(state, target)
