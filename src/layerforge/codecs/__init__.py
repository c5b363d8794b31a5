"""Codecs: raw rows to model inputs, one per data kind, with numpy alone (pandas only where a
Parquet file or a DataFrame is read). Training, ``Predictor``, the torch-free runtime and the HTTP
service all encode rows through them, from the fitted state a run keeps (model.json's
``preprocessing``, runtime.json's copy of it), so every door reads the same cell the same way.

``codec_for(state)`` gives the codec of a state (a dict, as the JSON files keep it).
"""

from __future__ import annotations

from ..errors import DataError
from .arrays import ImageCodec, SequenceCodec
from .audio import AudioCodec, SpeechCodec
from .boxes import BoxesCodec
from .forecast import ForecastCodec
from .interactions import InteractionsCodec
from .masks import MasksCodec
from .tables import TableCodec
from .texts import PairsCodec, TextCodec

CODECS = {"table": TableCodec, "sequence": SequenceCodec, "image": ImageCodec, "text": TextCodec,
          "forecast": ForecastCodec, "audio": AudioCodec,
          "pairs": PairsCodec, "speech": SpeechCodec, "masks": MasksCodec,
          "boxes": BoxesCodec, "interactions": InteractionsCodec}


def codec_for(state: dict):
    """The codec of a fitted state (``state['kind']`` names the data kind).

    Raises:
        DataError: a kind whose rows have no codec (a text corpus is not read row by row).
    """
    kind = state.get("kind", "table")
    if kind not in CODECS:
        raise DataError(f"{kind} data is not read row by row; it has no codec")
    return CODECS[kind](state)


__all__ = ["CODECS", "codec_for"]
