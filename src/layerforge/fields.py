"""Field types and validation helpers shared by every pydantic section (spec sections, model
configurations, the run manifest): bounded numbers, names checked against a registry, and
problems that name the sub-key they concern."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError

from .errors import unknown_name

PositiveInt = Annotated[int, Field(gt=0)]
# float bounds (0.0, not 0) let messages say "a number > 0" even when a user wrote 0
PositiveFloat = Annotated[float, Field(gt=0.0)]
NonNegativeFloat = Annotated[float, Field(ge=0.0)]
Fraction = Annotated[float, Field(ge=0.0, lt=1.0)]
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
FinitePositiveFloat = Annotated[float, Field(gt=0.0, allow_inf_nan=False)]


class Section(BaseModel):
    """A strict section: unknown keys are errors, defaults are validated too."""

    model_config = ConfigDict(extra="forbid", validate_default=True)


def problem(message: str, key: str | None = None) -> PydanticCustomError:
    """A validation problem; ``key`` names the sub-key it concerns, for the error's path."""
    return PydanticCustomError("layerforge", message.replace("{", "(").replace("}", ")"),
                               {"key": key} if key else None)


def raise_first(problems: list[tuple[str, str]]) -> None:
    """Raise the problems of one key (the first one named) as a single validation problem."""
    if problems:
        key = problems[0][0]
        raise problem("; ".join(m if k == key else f"{k}: {m}" for k, m in problems), key)


def known(kind: str, value: str, table: Iterable[str]) -> str:
    """``value`` when it names an entry of ``table``, else a problem listing the valid names."""
    if value not in table:
        raise problem(unknown_name(kind, value, table))
    return value
