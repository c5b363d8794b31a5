"""What a model reads: the description of one input row that data kinds produce and model
families are built for. Torch-free, so that specs and run manifests validate without torch."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, model_validator

from ..fields import PositiveInt

INPUT_KINDS = ("table", "sequence", "image", "tokens", "pairs", "frames", "interactions")

# the sizes each kind of input needs
_REQUIRED = {"table": ("features",), "sequence": ("channels", "length"), "image": ("channels", "height", "width"),
             "tokens": ("vocab_size", "length"),
             "pairs": ("vocab_size", "length", "target_vocab_size", "target_length"),
             "frames": ("channels", "length"), "interactions": ("users", "items")}


class Inputs(BaseModel):
    """One row of model input.

    ``table``: ``features`` numbers, shape (F,). ``sequence``: ``channels`` x ``length`` (C, L),
    padded and passed with lengths when ``variable_length``. ``image``: (C, H, W). ``tokens``:
    ``length`` integer ids below ``vocab_size``. ``pairs``: a source text's ``length`` ids below
    ``vocab_size`` (with its length) to be answered by a target text of up to ``target_length``
    ids below ``target_vocab_size`` (sequence-to-sequence). ``frames``: a clip's ``channels``
    numbers (mel bands) at each of ``length`` frames (C, L), padded and passed with the frames it
    holds, answered frame by frame (speech to transcribe). ``interactions``: a user's index below
    ``users`` and an item's below ``items`` (index 0 of each: one the data did not hold), as two
    integer tensors of shape (B,) (recommendation); with side columns, each user's and item's
    encoded columns are ``user_features`` and ``item_features`` numbers wide. Forecasting windows
    are sequences that may be read ``relative`` to their recent level over a ``season``.

    Example:
        >>> Inputs.table(4).shape
        [4]
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["table", "sequence", "image", "tokens", "pairs", "frames", "interactions"]
    features: PositiveInt | None = None
    channels: PositiveInt | None = None
    length: PositiveInt | None = None
    height: PositiveInt | None = None
    width: PositiveInt | None = None
    vocab_size: PositiveInt | None = None
    target_vocab_size: PositiveInt | None = None
    target_length: PositiveInt | None = None
    users: PositiveInt | None = None
    items: PositiveInt | None = None
    # interactions with side columns: the width of each user's and each item's encoded columns
    user_features: PositiveInt | None = None
    item_features: PositiveInt | None = None
    variable_length: bool | None = None
    relative: bool | None = None
    season: PositiveInt | None = None
    # a table's input columns: [first position, width, codes] each; codes > 0 where the column is
    # one category code (0, 1, ...) read through a learned embedding
    blocks: list[tuple[int, int, int]] | None = None
    # a table's positions that hold standardised numbers (which a periodic embedding may read)
    numbers: list[int] | None = None

    @model_validator(mode="after")
    def _sizes_of_the_kind(self):
        missing = [name for name in _REQUIRED[self.kind] if getattr(self, name) is None]
        if missing:
            raise ValueError(f"{self.kind} inputs need {', '.join(missing)}")
        if self.blocks and sum(width for _, width, _ in self.blocks) != self.features:
            raise ValueError(f"the columns' widths add up to {sum(w for _, w, _ in self.blocks)}, not {self.features}")
        return self

    @classmethod
    def table(cls, features: int, blocks: list | None = None, numbers: list[int] | None = None) -> Inputs:
        return cls(kind="table", features=features, blocks=[tuple(b) for b in blocks] if blocks else None,
                   numbers=numbers or None)

    @property
    def columns(self) -> list[tuple[int, int, int]]:
        """A table's input columns (first position, width, codes); one per number when not
        recorded."""
        if self.blocks:
            return list(self.blocks)
        return [(i, 1, 0) for i in range(self.flat_size)]

    @property
    def codes(self) -> list[tuple[int, int]]:
        """(position, number of codes) of each category code read through an embedding."""
        return [(first, codes) for first, _, codes in self.blocks or () if codes]

    @property
    def tokens(self) -> bool:
        """Whether a row is token ids (read through an embedding)."""
        return self.kind == "tokens"

    @property
    def pairs(self) -> bool:
        """Whether a row is a source text's token ids that a target text answers."""
        return self.kind == "pairs"

    @property
    def frames(self) -> bool:
        """Whether a row is a clip's frames, each answered (per-frame outputs: transcription)."""
        return self.kind == "frames"

    @property
    def interactions(self) -> bool:
        """Whether a row is a user and an item (two indices: recommendation)."""
        return self.kind == "interactions"

    @property
    def images(self) -> bool:
        """Whether a row is an image (C, H, W)."""
        return self.kind == "image"

    @property
    def shape(self) -> list[int]:
        """The shape of one row: ``[F]``, ``[C, L]``, ``[C, H, W]``, ``[L]`` (token ids) or ``[]``
        (a user's index; the item's is the second input)."""
        if self.kind == "interactions":
            return []
        if self.kind == "table":
            return [self.features]
        if self.kind == "image":
            return [self.channels, self.height, self.width]
        if self.kind in ("tokens", "pairs"):
            return [self.length]
        return [self.channels, self.length]

    @property
    def flat_size(self) -> int:
        """Numbers per row once flattened (what an MLP reads)."""
        return math.prod(self.shape)

    @property
    def spatial_dims(self) -> int:
        """1 for sequences, 2 for images, 0 otherwise."""
        return {"sequence": 1, "image": 2}.get(self.kind, 0)

    def describe(self) -> dict:
        """The sizes that are set, as model.json records them."""
        return self.model_dump(mode="json", exclude_none=True)
