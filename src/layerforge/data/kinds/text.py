"""Text: tokenizers (char, word, BPE) fitted on the training rows, and text classification from
a table's text column. Vocabularies are JSON, saved in model.json."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ...errors import DataError
from ...models.configs import pretrained_path
from ...models.inputs import Inputs
from .base import Encoder, Kind, Source, State
from .table import resolve_target

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
    def fit(cls, texts: list[str], kind: str, vocab_size: int, lowercase: bool = False,
            source: str | None = None) -> Tokenizer:
        """A tokenizer fitted on ``texts``, or (kind 'pretrained') the tokenizer.json of the
        pretrained model ``source``, whose ids its embeddings were trained on."""
        if kind == "pretrained":
            return cls._pretrained(source, lowercase)
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

    @classmethod
    def _pretrained(cls, source: str | None, lowercase: bool) -> Tokenizer:
        if source is None:
            raise DataError("data.tokenizer.source: a pretrained tokenizer names its model (a directory, or "
                            "all-MiniLM-L6-v2)")
        path = pretrained_path(source, "data.tokenizer.source") / "tokenizer.json"
        if not path.is_file():
            raise DataError(f"data.tokenizer.source: {path} is missing; save the model's tokenizer there with "
                            "tokenizer.save_pretrained (a fast tokenizer writes tokenizer.json)")
        try:
            import tokenizers  # noqa: F401
        except ImportError:
            raise DataError("a pretrained tokenizer needs the 'tokenizers' package: pip install 'layerforge[text]'") \
                from None
        return cls("pretrained", bpe_json=path.read_text(encoding="utf-8"), lowercase=lowercase)

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


class TokenizerFields(State):
    """A fitted tokenizer, as state fields."""

    tokenizer: Literal["char", "word", "bpe", "pretrained"]
    lowercase: bool = False
    vocab: list[str] | None = None
    bpe: str | None = None


class TextState(TokenizerFields):
    """The tokenizer, the length texts are cut or padded to, and the text column."""

    kind: Literal["text"] = "text"
    max_length: int
    text: str

    def request_row(self, title: str):
        """One text to classify."""
        from typing import Annotated

        from pydantic import Field

        return Annotated[str, Field(title=title, description=f"the '{self.text}' text")]


class TextEncoder(Encoder):
    state: TextState

    def __init__(self, state: TextState, target: str | None = None):
        super().__init__(state, target)
        self.tokenizer = Tokenizer.from_json(state)

    @property
    def inputs(self) -> Inputs:
        return Inputs(kind="tokens", vocab_size=self.tokenizer.vocab_size, length=self.state.max_length,
                      variable_length=True)

    @property
    def features(self) -> list[str]:
        return [self.state.text]

    def missing_labels(self) -> str:
        return f"evaluation data needs the target column '{self.target}'"

    def token_names(self, ids: np.ndarray) -> list[str]:
        return [self.tokenizer.token(i) for i in np.asarray(ids).tolist()]

    def _encoded(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        return encode_texts(self.tokenizer, texts, self.state.max_length)

    def encode(self, source: Source, parts: dict[str, np.ndarray]):
        texts = source.payload
        return {name: (self._encoded([texts[i] for i in rows]), source.labels.iloc[rows])
                for name, rows in parts.items()}

    def encode_new(self, data, *, unknown: str | None = None, ignore_extra: bool = False):
        """Texts: a list of strings, a DataFrame or a table file with the text column (and the
        target column, for evaluation)."""
        import pandas as pd

        from ..tabular import read_table

        column, source = self.state.text, None
        if isinstance(data, (str, Path)):
            data, source = read_table(data), str(data)
        if isinstance(data, pd.DataFrame):
            if column not in data.columns:
                raise DataError(f"missing column{' in ' + source if source else ''}: {column} (the text to classify)")
            frame = data
        else:
            frame = pd.DataFrame({column: [str(t) for t in data]})
        texts = frame[column].fillna("").astype(str).tolist()
        labels = frame[self.target] if self.target in frame.columns else None
        return self._encoded(texts), labels


class TextKind(Kind):
    name = "text"
    reads = "tokens"
    state = TextState

    def load(self, data_spec, *, target_required: bool = True) -> Source:
        """A CSV/Parquet table with a text column (``data.text``) and a label."""
        from ..tabular import fingerprint_frame, read_table

        frame = read_table(data_spec.path)
        source = data_spec.path
        target = resolve_target(data_spec, frame, source)
        column = data_spec.text
        if column is None or column not in frame.columns:
            columns = ", ".join(map(str, frame.columns))
            raise DataError(f"data.text: name the column that holds the text (columns: {columns})")
        texts = frame[column].fillna("").astype(str).tolist()
        return Source(source, len(frame), texts, fingerprint_frame(frame[[column, target]]), target, frame[target],
                      facts={"column": column})

    def fit(self, source: Source, train: np.ndarray, data_spec) -> TextEncoder:
        options = data_spec.tokenizer
        tokenizer = Tokenizer.fit([source.payload[i] for i in train], options.kind, options.vocab_size,
                                  options.lowercase, options.source)
        state = TextState(**tokenizer.to_json(), max_length=options.max_length, text=source.facts["column"])
        return TextEncoder(state, source.target)

    def encoder(self, state: TextState, target: str | None) -> TextEncoder:
        return TextEncoder(state, target)
