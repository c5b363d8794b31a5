"""Text: tokenizers (char, word, BPE) fitted on the training split, text classification from a
CSV column, and corpora for language modelling. Vocabularies are JSON, saved in model.json."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import numpy as np

from ..errors import DataError

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
        if kind == "bpe":
            from tokenizers import Tokenizer as HFTokenizer

            self.bpe_json = bpe_json
            self._bpe = HFTokenizer.from_str(bpe_json)

    @classmethod
    def fit(cls, texts: list[str], kind: str, vocab_size: int, lowercase: bool = False) -> Tokenizer:
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

    def to_json(self) -> dict[str, Any]:
        state: dict[str, Any] = {"kind": self.kind, "lowercase": self.lowercase}
        if self._bpe is not None:
            state["bpe"] = self.bpe_json
        else:
            state["vocab"] = self.vocab
        return state

    @classmethod
    def from_json(cls, state: dict[str, Any]) -> Tokenizer:
        return cls(state["kind"], state.get("vocab"), state.get("bpe"), state.get("lowercase", False))


def encode_texts(tokenizer: Tokenizer, texts: list[str], max_length: int) -> tuple[np.ndarray, np.ndarray]:
    """Token ids (N, max_length), zero-padded and cut at ``max_length``, and lengths (N,) >= 1."""
    ids = np.zeros((len(texts), max_length), dtype=np.int64)
    lengths = np.ones(len(texts), dtype=np.int64)
    for row, text in enumerate(texts):
        tokens = tokenizer.encode(str(text))[:max_length] or [1]
        ids[row, : len(tokens)] = tokens
        lengths[row] = len(tokens)
    return ids, lengths


def load_corpus(data_spec) -> tuple[str, str]:
    """The text of a language-modelling corpus and a label for messages."""
    from . import builtin

    if data_spec.dataset:
        return builtin.load_text(data_spec.dataset), data_spec.dataset
    from pathlib import Path

    return Path(data_spec.path).read_text(encoding="utf-8"), data_spec.path


def prepare_corpus(data_spec, task: str | None, seed: int):
    """Split a corpus in order (train, then val, then test), fit the tokenizer on the training
    text, and cut each part into blocks of ``context + 1`` tokens: inputs and next tokens."""
    from .prepare import Prepared

    if task not in (None, "language_model"):
        raise DataError(f"a text corpus supports task language_model, not '{task}'")
    text, source = load_corpus(data_spec)
    split = data_spec.split
    n = len(text)
    train_end = int(n * (1 - split.val - split.test))
    val_end = int(n * (1 - split.test))
    parts = {"train": text[:train_end], "val": text[train_end:val_end], "test": text[val_end:]}
    options = data_spec.tokenizer
    tokenizer = Tokenizer.fit([parts["train"]], options.kind, options.vocab_size, options.lowercase)
    context = data_spec.context
    splits = {}
    for name, part in parts.items():
        ids = np.asarray(tokenizer.encode(part), dtype=np.int64)
        blocks = len(ids) // (context + 1)
        if name == "train" and blocks == 0:
            raise DataError(f"{source}: the training text holds fewer than {context + 1} tokens; lower data.context")
        chunk = ids[: blocks * (context + 1)].reshape(blocks, context + 1)
        splits[name] = ((chunk[:, :-1],), chunk[:, 1:])
    characters = {name: len(part) for name, part in parts.items()}
    tokens = {name: int(splits[name][1].size) for name in parts}
    inputs_info = {"kind": "tokens", "vocab_size": tokenizer.vocab_size, "length": context}
    extra = {"text": {"characters": characters, "tokens": tokens, "context": context}}
    return Prepared("language_model", "next_token", None, None, None, inputs_info, tokenizer.to_json(), splits,
                    source, extra=extra)


def prepare_text_classification(data_spec, task: str | None, seed: int):
    """A CSV/Parquet with a text column and a label: tokenized, padded, with lengths."""
    from .prepare import Prepared, classes_of, encode_classes, resolve_target
    from .split import split_indices
    from .tabular import read_table

    if task not in (None, "classification"):
        raise DataError(f"text data supports task classification (or language_model for a corpus), not '{task}'")
    frame = read_table(data_spec.path)
    source = data_spec.path
    target = resolve_target(data_spec, frame, source)
    column = data_spec.text
    if column is None or column not in frame.columns:
        columns = ", ".join(map(str, frame.columns))
        raise DataError(f"data.text: name the column that holds the text (columns: {columns})")
    classes = classes_of(frame[target])
    y = encode_classes(frame[target], classes, source)
    split = data_spec.split
    parts = split_indices(len(frame), split.val, split.test, seed=seed, labels=y if split.stratify else None,
                          shuffle=split.shuffle)
    texts = frame[column].fillna("").astype(str).tolist()
    options = data_spec.tokenizer
    tokenizer = Tokenizer.fit([texts[i] for i in parts["train"]], options.kind, options.vocab_size, options.lowercase)
    ids, lengths = encode_texts(tokenizer, texts, options.max_length)
    splits = {name: ((ids[rows], lengths[rows]), y[rows]) for name, rows in parts.items()}
    inputs_info = {"kind": "tokens", "vocab_size": tokenizer.vocab_size, "length": options.max_length}
    preprocessing = {**tokenizer.to_json(), "max_length": options.max_length, "text": column}
    return Prepared("classification", target, classes, None, None, inputs_info, preprocessing, splits, source,
                    features=[column])
