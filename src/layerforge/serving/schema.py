"""Request and answer types of each served model, made from its model.json: the request names the
columns, their types and allowed categories (or a series', image's or text's shape); the answer
has the task's fields. Pydantic validates requests with them and FastAPI shows them in the
OpenAPI schema and at /docs."""

from __future__ import annotations

import functools
import operator
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, create_model

MAX_SAMPLES = 1000
MAX_TEXT = 2000


def schema_title(name: str, what: str) -> str:
    """A schema title for model ``name``: its words joined in CamelCase."""
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[^A-Za-z0-9]+", name) if part) + what


class Problem(BaseModel):
    """One thing wrong with a request: where (field, row from 1) and what."""

    field: str | None = None
    row: int | None = None
    problem: str


class ErrorBody(BaseModel):
    """Every error the service answers: what happened and how to fix it."""

    error: str
    problems: list[Problem] = Field(default_factory=list)
    id: str | None = Field(None, description="the id the service's log gives this failure (500 only)")


class RecommendRequest(BaseModel):
    """Users to recommend for (their keys, as the data names them) and how many items each."""

    model_config = ConfigDict(extra="forbid")

    users: Annotated[list[str | int], Field(min_length=1, max_length=1000)]
    k: Annotated[int, Field(ge=1, le=1000)] = 10


class ModelEntry(BaseModel):
    name: str
    task: str


def _strict_model(title: str, **fields) -> type[BaseModel]:
    """A request model that refuses keys it does not name."""
    return create_model(title, __config__=ConfigDict(extra="forbid", title=title), **fields)


class Schemas:
    """The request and answer types of one served model.

    Attributes:
        bodies: the JSON request bodies (a key that picks each, and its type).
        answer: one answer's type; ``response``: the whole answer's.
        csv: whether the request may be a CSV table (text/csv).
        sound: whether the request may be one sound file (audio/wav, audio/flac, audio/ogg).
    """

    def __init__(self, served):
        name, task = served.name, served.task
        self.csv = False
        self.sound = served.manifest.preprocessing.hears()  # a clip: also a sound file as the body
        _BODIES[task.serves](self, served)
        self.response = create_model(schema_title(name, "Response"), predictions=(list[self.answer], ...))
        self.adapters = {key: TypeAdapter(body) for key, body in self.bodies.items()}
        if task.answers_rows and served.named_columns:
            # a table's cells are read by its codec, by the same rules as a CSV file's (JSON true in a
            # number column is refused, JSON 1 is the category '1'); the schema above documents them
            self.adapters = {key: TypeAdapter(body) for key, body in _envelopes(name).items()}
        self.row_schema = TypeAdapter(served.row).json_schema() if task.answers_rows else None

    def _rows(self, served) -> None:
        """Rows to answer one by one (and, for a table, a mapping of columns or CSV text)."""
        name, row = served.name, served.row
        rows = _strict_model(schema_title(name, "Rows"),
                             rows=(Annotated[list[row], Field(min_length=1)], Field(description="rows in order")))
        self.bodies = {"rows": rows}
        if served.named_columns:  # a table: also a mapping of columns, or CSV text
            columns = _strict_model(
                schema_title(name, "ColumnValues"),
                **{key: (Annotated[list[info.annotation], Field(min_length=1)],
                         Field(alias=info.alias, description=info.description))
                   for key, info in row.model_fields.items()})
            self.bodies["columns"] = _strict_model(schema_title(name, "Columns"),
                                                   columns=(columns, Field(description="column -> values")))
            self.csv = True
        self.answer = _row_answer(schema_title(name, "Answer"), served.decoding)

    def _samples(self, served) -> None:
        """How many samples to generate, of which class."""
        name, task = served.name, served.task
        label = Literal[tuple(task.classes)] | None if task.classes else None
        fields = {"n": (int, Field(1, ge=1, le=MAX_SAMPLES, description="how many samples")),
                  "seed": (int, Field(0, ge=0, lt=2**63, description="the same seed gives the same samples"))}
        if label is not None:
            fields["label"] = (label, Field(None, description="the class to generate (default: each in turn)"))
        self.bodies = {"n": _strict_model(schema_title(name, "Request"), **fields)}
        answer = {"prediction": (dict[str, Any] | list[Any], Field(description="a sample in the data's scale"))}
        if label is not None:
            answer["label"] = (Literal[tuple(task.classes)] | None, None)
        self.answer = create_model(schema_title(name, "Answer"), **answer)

    def _text(self, served) -> None:
        """A prompt to continue."""
        name = served.name
        fields = {"prompt": (Annotated[str, Field(max_length=MAX_TEXT)], ""),
                  "length": (int, Field(200, ge=1, le=MAX_TEXT, description="tokens to generate")),
                  "temperature": (float, Field(1.0, gt=0, le=10)),
                  "top_k": (int | None, Field(None, ge=1, le=100_000)),
                  "seed": (int, Field(0, ge=0, lt=2**63))}
        self.bodies = {"prompt": _strict_model(schema_title(name, "Request"), **fields)}
        self.answer = create_model(schema_title(name, "Answer"), prediction=(str, ...))

    def body_for(self, payload: Any) -> str:
        """Which body a parsed JSON payload is: the first key it has that picks one."""
        if isinstance(payload, dict):
            for key in self.bodies:
                if key in payload:
                    return key
        return next(iter(self.bodies))

    def response_schema(self, ref_template: str) -> tuple[dict, dict]:
        """The answer's schema and the definitions it refers to."""
        schema = TypeAdapter(self.response).json_schema(ref_template=ref_template, mode="serialization")
        definitions = schema.pop("$defs", {})
        definitions[self.response.__name__] = schema
        return {"$ref": ref_template.format(model=self.response.__name__)}, definitions

    def request_schema(self, ref_template: str) -> tuple[dict, dict]:
        """The JSON request body's schema (one of the bodies) and the definitions it refers to."""
        union = functools.reduce(operator.or_, self.bodies.values())  # one body, or either of them
        schema = TypeAdapter(union).json_schema(ref_template=ref_template)
        return schema, schema.pop("$defs", {})


_BODIES = {"rows": Schemas._rows, "samples": Schemas._samples, "text": Schemas._text}  # by what a task serves


def _envelopes(name: str) -> dict[str, type[BaseModel]]:
    """A table's request bodies with their cells left to the codec: rows of mappings, or a
    mapping of columns."""
    cell_lists = Annotated[list[Any], Field(min_length=1)]
    return {"rows": _strict_model(schema_title(name, "RowsBody"),
                                  rows=(Annotated[list[dict[str, Any]], Field(min_length=1)], ...)),
            "columns": _strict_model(schema_title(name, "ColumnsBody"),
                                     columns=(Annotated[dict[str, cell_lists], Field(min_length=1)], ...))}


def _row_answer(title: str, decoding) -> type[BaseModel]:
    """One answer's type: the decoding's fields."""
    return create_model(title, **{name: (kind, Field(description=about))
                                  for name, (kind, about) in decoding.answer_fields().items()})
