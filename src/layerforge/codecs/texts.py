"""Texts: a table's text column (or texts given one by one) to token ids, by the tokenizer fitted
on the training rows (char, word, BPE, or a pretrained model's). Numpy only (the ``tokenizers``
package for BPE and pretrained vocabularies). Training encodes its texts with the same
``encode_texts``.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import numpy as np

from ..errors import DataError
from .cells import is_missing
from .tables import CsvText, columns_of, no_kept_columns, no_row_names, table_pieces

PAD, UNK = "<pad>", "<unk>"
_WORD = re.compile(r"\w+|[^\w\s]", re.UNICODE)


class Tokenizer:
    """Turns text into integer ids. ``kind`` is 'char', 'word' or 'bpe'; id 0 is padding and
    id 1 stands for anything not in the vocabulary."""

    def __init__(self, kind: str, vocab: list[str] | None = None, bpe_json: str | None = None,
                 lowercase: bool = False):
        self.kind, self.lowercase = kind, lowercase
        self.vocab = vocab or []
        self.index = {token: i for i, token in enumerate(self.vocab)}
        self._bpe = None
        if kind in ("bpe", "pretrained"):
            from tokenizers import Tokenizer as HFTokenizer

            self.bpe_json = bpe_json
            self._bpe = HFTokenizer.from_str(bpe_json)
            self._bpe.no_padding()  # ids are cut and padded to max_length by encode_texts
            self._bpe.no_truncation()

    @classmethod
    def fit(cls, texts: list[str], kind: str, vocab_size: int, lowercase: bool = False) -> Tokenizer:
        """A char, word or BPE tokenizer fitted on ``texts``."""
        if kind == "pretrained":
            raise DataError("a pretrained tokenizer is read from its model, not fitted (data.kinds.text.fit_tokenizer)")
        texts = [t.lower() for t in texts] if lowercase else texts
        if kind == "bpe":
            try:
                from tokenizers import Tokenizer as HFTokenizer
                from tokenizers import decoders, models, pre_tokenizers, trainers
            except ImportError:
                raise DataError("BPE tokenization needs the 'tokenizers' package: "
                                "pip install 'layerforge[text]'") from None
            bpe = HFTokenizer(models.BPE(unk_token=UNK))
            bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
            bpe.decoder = decoders.ByteLevel()
            trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[PAD, UNK], show_progress=False)
            bpe.train_from_iterator(texts, trainer)
            return cls("bpe", bpe_json=bpe.to_str(), lowercase=lowercase)
        counts: Counter = Counter()
        for text in texts:
            counts.update(text if kind == "char" else _WORD.findall(text))
        kept = [token for token, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))][: vocab_size - 2]
        return cls(kind, [PAD, UNK, *sorted(kept)], lowercase=lowercase)

    @property
    def vocab_size(self) -> int:
        return self._bpe.get_vocab_size() if self._bpe is not None else len(self.vocab)

    def encode(self, text: str) -> list[int]:
        text = text.lower() if self.lowercase else text
        if self._bpe is not None:
            return self._bpe.encode(text).ids
        pieces = text if self.kind == "char" else _WORD.findall(text)
        return [self.index.get(piece, 1) for piece in pieces]

    def decode(self, ids: list[int]) -> str:
        if self._bpe is not None:
            return self._bpe.decode(ids)
        tokens = [self.vocab[i] if 0 <= i < len(self.vocab) else UNK for i in ids if i != 0]
        return ("" if self.kind == "char" else " ").join(tokens)

    def token(self, i: int) -> str:
        """The token of id ``i`` (``UNK`` for ids outside the vocabulary)."""
        if self._bpe is not None:
            return self._bpe.id_to_token(int(i)) or UNK
        return self.vocab[i] if 0 <= i < len(self.vocab) else UNK

    def to_json(self) -> dict[str, Any]:
        """The tokenizer as state fields: ``tokenizer`` (its kind), ``lowercase`` and the
        vocabulary (``vocab``, or ``bpe``: the tokenizers JSON of a BPE or pretrained tokenizer)."""
        state: dict[str, Any] = {"tokenizer": self.kind, "lowercase": self.lowercase}
        if self._bpe is not None:
            state["bpe"] = self.bpe_json
        else:
            state["vocab"] = self.vocab
        return state

    @classmethod
    def from_json(cls, state) -> Tokenizer:
        """From ``to_json``'s fields (a dict, or a state that holds them)."""
        fields = state if isinstance(state, dict) else state.model_dump()
        return cls(fields["tokenizer"], fields.get("vocab"), fields.get("bpe"), fields.get("lowercase", False))


def encode_texts(tokenizer: Tokenizer, texts: list[str], max_length: int) -> tuple[np.ndarray, np.ndarray]:
    """Token ids (N, max_length), zero-padded and cut at ``max_length``, and lengths (N,) >= 1."""
    ids = np.zeros((len(texts), max_length), dtype=np.int64)
    lengths = np.ones(len(texts), dtype=np.int64)
    for row, text in enumerate(texts):
        tokens = tokenizer.encode(str(text))[:max_length] or [1]
        ids[row, : len(tokens)] = tokens
        lengths[row] = len(tokens)
    return ids, lengths


def text_of(value) -> str:
    """A cell as text: a missing value is the empty text."""
    return "" if is_missing(value) else str(value)


class TextCodec:
    """Encodes texts as the run's tokenizer does: a table (a file, CSV text, a DataFrame, JSON
    rows or columns) with the text column and, for evaluation, the target column; or texts
    given one by one.

    Args:
        state: the fitted state (the tokenizer's fields, ``max_length``, ``text``: the column).
    """

    kind = "text"
    reads = "the text to classify"

    def __init__(self, state: dict):
        self.tokenizer = Tokenizer.from_json(state)
        self.max_length, self.column = state["max_length"], state["text"]

    kept = no_kept_columns("texts")
    row_names = staticmethod(no_row_names)

    @staticmethod
    def pieces(rows):
        yield from table_pieces(rows)

    def encode(self, rows, *, unknown: str | None = None, ignore_extra: bool = False,
               target: str | None = None) -> tuple[tuple[np.ndarray, np.ndarray], list | None]:
        labels = None
        if isinstance(rows, list) and (not rows or not isinstance(rows[0], dict)):
            texts = [text_of(t) for t in rows]
        else:
            columns = columns_of(rows, [self.column])
            if self.column not in columns.values:
                raise DataError(f"missing column{columns.where.file}: {self.column} ({self.reads})")
            texts = [text_of(t) for t in columns.values[self.column]]
            labels = columns.values.get(target) if target else None
        return encode_texts(self.tokenizer, texts, self.max_length), labels


def parallel_lines(path) -> tuple[list[str], list[str] | None]:
    """The pairs of a parallel text file: one pair a line, the source text, a tab and the target
    text (further tab-separated fields, such as Tatoeba's attribution, are left out); the targets
    are None when no line has a tab (source texts alone, to answer).

    Raises:
        DataError: a file that is not UTF-8 text, none of whose lines hold text, or whose lines
            hold a tab in some lines only (named by its line).
    """
    from pathlib import Path

    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as error:
        raise DataError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from None
    numbered = [(number, line) for number, line in enumerate(lines, start=1) if line.strip()]
    if not numbered:
        raise DataError(f"{path}: holds no lines of text")
    tabbed = ["\t" in line for _, line in numbered]
    if not any(tabbed):
        return [line for _, line in numbered], None
    if not all(tabbed):
        number = numbered[tabbed.index(False)][0]
        raise DataError(f"{path}: line {number} holds no tab; a parallel text file holds a source text, a tab and "
                        "its target text on every line")
    fields = [line.split("\t") for _, line in numbered]
    return [f[0] for f in fields], [f[1] for f in fields]


class PairsCodec(TextCodec):
    """Encodes the source texts of sequence-to-sequence pairs as the run's source tokenizer does
    (a table with the source column and, for evaluation, the target column; a parallel text
    file, ``parallel_lines``; or texts one by one): the same reading as ``TextCodec``, of the
    source column."""

    kind = "pairs"
    reads = "the text to answer"

    def encode(self, rows, *, unknown: str | None = None, ignore_extra: bool = False,
               target: str | None = None) -> tuple[tuple[np.ndarray, np.ndarray], list | None]:
        from pathlib import Path

        if isinstance(rows, (str, Path)) and not isinstance(rows, CsvText) and str(rows).lower().endswith(".txt"):
            sources, targets = parallel_lines(rows)
            return encode_texts(self.tokenizer, sources, self.max_length), targets
        return super().encode(rows, unknown=unknown, ignore_extra=ignore_extra, target=target)
