"""Text: tokenizers (char, word, BPE) fitted on the training rows, and text classification from
a table's text column. Vocabularies are JSON, saved in model.json."""

from __future__ import annotations

from typing import Literal

import numpy as np

from ...codecs.texts import Tokenizer, encode_texts
from ...errors import DataError
from ...models.configs import pretrained_path
from ...models.inputs import Inputs
from .base import Encoder, Kind, Source, State
from .table import resolve_target


def fit_tokenizer(texts: list[str], options) -> Tokenizer:
    """The tokenizer ``data.tokenizer`` asks for: fitted on ``texts``, or (kind 'pretrained') the
    tokenizer.json of the pretrained model ``options.source``, whose ids its embeddings were
    trained on."""
    if options.kind != "pretrained":
        return Tokenizer.fit(texts, options.kind, options.vocab_size, options.lowercase)
    if options.source is None:
        raise DataError("data.tokenizer.source: a pretrained tokenizer names its model (a directory, or "
                        "all-MiniLM-L6-v2)")
    path = pretrained_path(options.source, "data.tokenizer.source") / "tokenizer.json"
    if not path.is_file():
        raise DataError(f"data.tokenizer.source: {path} is missing; save the model's tokenizer there with "
                        "tokenizer.save_pretrained (a fast tokenizer writes tokenizer.json)")
    try:
        import tokenizers  # noqa: F401
    except ImportError:
        raise DataError("a pretrained tokenizer needs the 'tokenizers' package: pip install 'layerforge[text]'") \
            from None
    return Tokenizer("pretrained", bpe_json=path.read_text(encoding="utf-8"), lowercase=options.lowercase)


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

def _schema(source: Source) -> list | None:
    """The table's columns as this kind reads them: the text, and the others left out (said when
    training starts: ``data.text`` reads one column)."""
    from ..columns import Column

    others = source.facts.get("others") or []
    if not others:
        return None
    column = source.facts["column"]
    why = f"data.text reads only '{column}'; remove data.text to read every column by its type"
    return [Column(column, "text", missing=None, distinct=None, detail="tokens"),
            Column(", ".join(others), "-", "left out", None, None, warnings=[why]),
            Column(str(source.target), "category", "target", None, None)]


class TextKind(Kind):
    name = "text"
    reads = "tokens"
    state = TextState

    def load(self, data_spec, *, target_required: bool = True) -> Source:
        """A CSV/Parquet table with a text column (``data.text``) and a label."""
        from ..tabular import fingerprint_frame, read_table

        frame = read_table(data_spec.path, text=[data_spec.text] if data_spec.text else [])
        source = data_spec.path
        target = resolve_target(data_spec, frame, source)
        column = data_spec.text
        if column is None or column not in frame.columns:
            columns = ", ".join(map(str, frame.columns))
            raise DataError(f"data.text: name the column that holds the text (columns: {columns})")
        texts = frame[column].fillna("").astype(str).tolist()
        others = [str(name) for name in frame.columns if name not in (column, target)]
        return Source(source, len(frame), texts, fingerprint_frame(frame[[column, target]]), target, frame[target],
                      facts={"column": column, "others": others})

    def fit(self, source: Source, train: np.ndarray, data_spec) -> TextEncoder:
        options = data_spec.tokenizer
        tokenizer = fit_tokenizer([source.payload[i] for i in train], options)
        state = TextState(**tokenizer.to_json(), max_length=options.max_length, text=source.facts["column"])
        encoder = TextEncoder(state, source.target)
        encoder.schema = _schema(source)
        return encoder

    def encoder(self, state: TextState, target: str | None) -> TextEncoder:
        return TextEncoder(state, target)
