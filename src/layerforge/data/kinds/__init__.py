"""Data kinds: a closed registry from a kind's name to the object that loads, splits and
encodes that kind of data. ``kind_of(data_spec)`` says which kind a data spec names, without
reading any data (spec validation uses it)."""

from __future__ import annotations

from ...errors import DataError, unknown_name
from ..builtin import DATASETS
from .audio import AudioKind
from .base import Encoder, Kind, Perturbation, Source, State
from .boxes import BoxesKind
from .corpus import CorpusKind
from .forecast import ForecastKind
from .image import ImageKind
from .interactions import InteractionsKind
from .masks import MasksKind
from .pairs import PairsKind
from .sequence import SequenceKind
from .speech import SpeechKind
from .table import TableKind
from .text import TextKind

KINDS: dict[str, Kind] = {kind.name: kind for kind in (TableKind(), SequenceKind(), ImageKind(), TextKind(),
                                                        CorpusKind(), ForecastKind(), AudioKind(),
                                                        PairsKind(), SpeechKind(), MasksKind(),
                                                        BoxesKind(), InteractionsKind())}


def get(name: str) -> Kind:
    if name not in KINDS:
        raise DataError(unknown_name("data kind", name, KINDS))
    return KINDS[name]


def kind_of(data_spec) -> Kind:
    """The kind a data spec names: a built-in's own, ``data.kind``, or the file's type (a folder
    of class folders is images, .npz sequences, .txt a corpus, a table with ``data.text`` text,
    one with ``data.source`` text pairs, a folder holding images/ pictures to segment, a .json
    file COCO's boxes, a table with ``data.user`` interactions)."""

    if data_spec.dataset:
        return KINDS[DATASETS[data_spec.dataset].kind]
    if data_spec.kind:
        return get(data_spec.kind)
    if data_spec.user is not None or data_spec.item is not None:
        return KINDS["interactions"]  # rows of a user and an item
    if data_spec.frame is not None:  # rows given in memory: a table (of texts with data.text)
        return KINDS["text"] if data_spec.text else KINDS["table"]
    suffix = data_spec.path.lower().rsplit(".", 1)[-1]
    if suffix == "npz":
        return KINDS["sequence"]
    if "." not in data_spec.path.rsplit("/", 1)[-1] or suffix in ("png", "jpg", "jpeg"):
        from pathlib import Path

        if (Path(data_spec.path) / "images").is_dir():
            return KINDS["masks"]  # a folder of scenes: images/ and their masks/
        return KINDS["image"]  # a folder of class subfolders
    if suffix == "txt":
        return KINDS["corpus"]
    if suffix == "json":
        return KINDS["boxes"]  # a COCO file of pictures and their boxes
    if data_spec.source:
        return KINDS["pairs"]
    return KINDS["text"] if data_spec.text else KINDS["table"]


def state_for(value) -> State:
    """A validated encoder state from a state or its dict (model.json's ``preprocessing``)."""
    if isinstance(value, State):
        return value
    if not isinstance(value, dict) or not isinstance(value.get("kind", "table"), str):
        raise ValueError("expected a mapping with the data kind's name in 'kind'")
    return get(value.get("kind", "table")).state.model_validate(value)


__all__ = ["KINDS", "Encoder", "Kind", "Perturbation", "Source", "State", "get", "kind_of", "state_for"]
