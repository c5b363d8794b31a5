"""Speech to transcribe: clips, each with the text said in it. A clip is read as its log-mel
frames (``codecs.audio``, numpy, the same numbers in training and in the runtime) with the
frames it holds, and a network answers every frame (``Inputs`` of kind 'frames'); the
transcripts' tokenizer (``data.target_tokenizer``, by default characters) is fitted on the
training rows, and the state keeps how answers are searched for (``data.decoding.beam_size``).

Clips come from a table with a column of sound files (``data.source``, default ``path``,
relative to the table's folder) and a column of transcripts (``data.target``, default
``transcript``), or from the built-in ``spoken_numbers``, spoken offline by eSpeak NG, whose
test clips are voices never heard in training.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ...codecs.audio import SpeechCodec, read_clip, resampled
from ...errors import DataError
from ...models.inputs import Inputs
from .. import builtin
from .audio import HOP, LONGEST, MELS, N_FFT, SAMPLE_RATE, AudioState
from .base import Encoder, Kind, Source
from .pairs import room
from .text import fit_tokenizer


class SpeechState(AudioState):
    """How clips become frames (as a keyword spotter's), the table's column of sound files, the
    transcripts' tokenizer (``Tokenizer.to_json``'s fields), the most tokens a training target
    holds, and the search's beam."""

    kind: Literal["speech"] = "speech"
    column: str
    tokenizer: dict[str, Any]
    target_length: int
    beam_size: int = 1


class SpeechEncoder(Encoder):
    state: SpeechState

    @property
    def inputs(self) -> Inputs:
        return Inputs(kind="frames", channels=self.state.mels, length=self.state.frames, variable_length=True)

    def encode(self, source: Source, parts: dict[str, np.ndarray]):
        codec = SpeechCodec(self.state.model_dump())
        return {name: (codec.encode([source.payload[i] for i in rows])[0], source.labels.iloc[rows])
                for name, rows in parts.items()}

    def missing_labels(self) -> str:
        return f"evaluation data needs transcripts: a table with a '{self.target}' column beside '{self.state.column}'"


def _column(frame, name: str | None, default: str, what: str, option: str, source: str) -> str:
    name = name or default
    if name not in frame.columns:
        raise DataError(f"{option}: {source} has no column '{name}'; name the column that holds {what} (columns: "
                        f"{', '.join(map(str, frame.columns[:30]))})")
    return name


class SpeechKind(Kind):
    name = "speech"
    reads = "frames"
    targets = "transcripts"
    state = SpeechState

    def load(self, data_spec, *, target_required: bool = True) -> Source:
        """The built-in spoken set, or a table of sound files and their transcripts."""
        import pandas as pd

        fixed, column = {}, data_spec.source or "path"
        if data_spec.dataset:
            clips, transcripts, rate, test = builtin.load_transcribed(data_spec.dataset)
            clips = [resampled(clip, rate, SAMPLE_RATE) for clip in clips]
            fixed["test"], label, target = test, data_spec.dataset, builtin.DATASETS[data_spec.dataset].target
        else:
            from ..tabular import read_table

            label = data_spec.path
            frame = read_table(label, text=[name for name in (data_spec.source, data_spec.target)
                                            if isinstance(name, str)])
            column = _column(frame, data_spec.source, "path", "each clip's sound file", "data.source", label)
            if isinstance(data_spec.target, list):
                raise DataError("data.target: a clip has one transcript column")
            target = _column(frame, data_spec.target, "transcript", "each clip's transcript", "data.target", label)
            empty = np.flatnonzero(frame[target].isna().to_numpy() | (frame[target].astype(str).str.strip() == ""))
            if len(empty):
                raise DataError(f"{label}: the transcript of row {empty[0] + 1} is empty ({len(empty)} rows); every "
                                "clip needs the text said in it: fill or drop those rows")
            folder = Path(label).parent
            clips = []
            for row, name in enumerate(frame[column].tolist()):
                path = Path(str(name)) if Path(str(name)).is_absolute() else folder / str(name)
                if not path.is_file():
                    raise DataError(f"{label}: row {row + 1}: sound file not found: {path}")
                clips.append(read_clip(path, SAMPLE_RATE))
            transcripts = frame[target].astype(str).tolist()
        longest = max(len(c) for c in clips) / SAMPLE_RATE
        if longest > LONGEST:
            raise DataError(f"{label}: a clip lasts {longest:.0f} s; cut clips to at most {LONGEST:.0f} s")
        digest = hashlib.sha256()
        for clip, text in zip(clips, transcripts):
            digest.update(np.asarray(clip, dtype=np.float32).tobytes())
            digest.update(f"\x1f{text}\x1e".encode())
        return Source(label, len(clips), clips, digest.hexdigest(), target, pd.Series(transcripts, name=target),
                      fixed=fixed, facts={"column": column})

    def fit(self, source: Source, train: np.ndarray, data_spec) -> SpeechEncoder:
        longest = max(len(source.payload[i]) for i in train)
        transcripts = [str(source.labels.iloc[i]) for i in train]
        tokenizer = fit_tokenizer(transcripts, data_spec.target_tokenizer or data_spec.tokenizer)
        most = max(len(tokenizer.encode(text)) for text in transcripts)
        state = SpeechState(sample_rate=SAMPLE_RATE, n_fft=N_FFT, hop=HOP, mels=MELS, frames=1 + longest // HOP,
                            column=source.facts["column"], tokenizer=tokenizer.to_json(), target_length=room(most),
                            beam_size=data_spec.decoding.beam_size)
        return SpeechEncoder(state, source.target)

    def encoder(self, state: SpeechState, target: str | None) -> SpeechEncoder:
        return SpeechEncoder(state, target)
