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

from typing import Any, Literal

import numpy as np

from ...codecs.audio import resampled
from ...models.inputs import Inputs
from .. import builtin
from .audio import HOP, MELS, N_FFT, SAMPLE_RATE, AudioState, clips_source, table_clips
from .base import Encoder, Kind, Source
from .pairs import room
from .text import fit_tokenizer


class SpeechState(AudioState):
    """How clips become frames (as a keyword spotter's), the table's column of sound files, the
    transcripts' tokenizer (``Tokenizer.to_json``'s fields), the most tokens a training target
    holds, and the search's beam."""

    kind: Literal["speech"] = "speech"
    tokenizer: dict[str, Any]
    target_length: int
    beam_size: int = 1


class SpeechEncoder(Encoder):
    state: SpeechState

    @property
    def inputs(self) -> Inputs:
        return Inputs(kind="frames", channels=self.state.mels, length=self.state.frames, variable_length=True)

    def encode(self, source: Source, parts: dict[str, np.ndarray]):
        return {name: (self.codec.encode([source.payload[i] for i in rows])[0], source.labels.iloc[rows])
                for name, rows in parts.items()}

    def missing_labels(self) -> str:
        return f"evaluation data needs transcripts: a table with a '{self.target}' column beside '{self.state.column}'"


class SpeechKind(Kind):
    name = "speech"
    reads = "frames"
    targets = "transcripts"
    state = SpeechState

    def load(self, data_spec, *, target_required: bool = True) -> Source:
        """The built-in spoken set, or a table of sound files and their transcripts."""
        if data_spec.dataset:
            clips, transcripts, rate, test = builtin.load_transcribed(data_spec.dataset)
            clips = [resampled(clip, rate, SAMPLE_RATE) for clip in clips]
            return clips_source(data_spec.dataset, clips, transcripts, builtin.DATASETS[data_spec.dataset].target,
                                data_spec.source or "path", {"test": test})
        clips, transcripts, column, target = table_clips(data_spec, "transcript", "transcript")
        return clips_source(data_spec.path, clips, transcripts, target, column)

    def fit(self, source: Source, train: np.ndarray, data_spec) -> SpeechEncoder:
        longest = max(len(source.payload[i]) for i in train)
        transcripts = [str(source.labels.iloc[i]) for i in train]
        own = data_spec.target_tokenizer not in (None, "shared")  # shared: nothing else is tokenized
        tokenizer = fit_tokenizer(transcripts, data_spec.target_tokenizer if own else data_spec.tokenizer)
        most = max(len(tokenizer.encode(text)) for text in transcripts)
        state = SpeechState(sample_rate=SAMPLE_RATE, n_fft=N_FFT, hop=HOP, mels=MELS, frames=1 + longest // HOP,
                            column=source.facts["column"], tokenizer=tokenizer.to_json(), target_length=room(most),
                            beam_size=data_spec.decoding.beam_size)
        return SpeechEncoder(state, source.target)

    def encoder(self, state: SpeechState, target: str | None) -> SpeechEncoder:
        return SpeechEncoder(state, target)
