"""Sound: clips of speech or other sound, read as log-mel spectrograms (``codecs.audio``, numpy,
the same numbers in training and in the runtime), each one picture (1, mels, frames) that the
image-reading networks (CNNs, vision Transformers, MLPs) classify: keyword spotting.

Clips come from a folder with one subfolder per class (WAV, FLAC or OGG, ``data.kind: audio``),
or from a built-in set spoken offline by eSpeak NG, whose test clips are voices never heard in
training.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Literal

import numpy as np

from ...codecs.audio import AudioCodec, list_clips, read_clip, resampled
from ...errors import DataError
from ...models.inputs import Inputs
from .. import builtin
from .base import Encoder, Kind, Source, State

SAMPLE_RATE, N_FFT, HOP, MELS = 16000, 400, 160, 40  # 25 ms frames every 10 ms
LONGEST = 30.0  # seconds a clip may last


class AudioState(State):
    """How clips become pictures: the sample rate they are read at, the spectrogram's frames
    (n_fft samples every hop) and bands, and the frames every clip is padded or cut to (the
    longest training clip's)."""

    kind: Literal["audio"] = "audio"
    sample_rate: int
    n_fft: int
    hop: int
    mels: int
    frames: int

    def hears(self) -> bool:
        return True

    def request_row(self, title: str):
        """One clip: its samples at the run's sample rate."""
        from typing import Annotated

        from pydantic import Field

        sample = Annotated[float, Field(allow_inf_nan=False, strict=True)]
        return Annotated[list[sample], Field(min_length=1, max_length=int(LONGEST * self.sample_rate), title=title,
                                             description=f"samples in [-1, 1] at {self.sample_rate} Hz")]


class AudioEncoder(Encoder):
    state: AudioState

    @property
    def inputs(self) -> Inputs:
        return Inputs(kind="image", channels=1, height=self.state.mels, width=self.state.frames)

    def encode(self, source: Source, parts: dict[str, np.ndarray]):
        codec = AudioCodec(self.state.model_dump())
        return {name: (codec.encode([source.payload[i] for i in rows])[0], source.labels.iloc[rows])
                for name, rows in parts.items()}

    def pictures(self, rows: np.ndarray) -> np.ndarray:
        return np.asarray(rows)  # the spectrograms, as the report shows misclassified clips


class AudioKind(Kind):
    name = "audio"
    reads = "image"
    state = AudioState

    def load(self, data_spec, *, target_required: bool = True) -> Source:
        """A built-in spoken set, or a folder with one subfolder of sound files per class."""
        import pandas as pd

        fixed = {}
        if data_spec.dataset:
            clips, labels, rate, test = builtin.load_clips(data_spec.dataset)
            clips = [resampled(clip, rate, SAMPLE_RATE) for clip in clips]
            fixed["test"] = test
        else:
            path = Path(data_spec.path)
            if not path.is_dir():
                raise DataError(f"data.path: {path} is not a folder; sound clips are read from a folder with one "
                                "subfolder per class")
            files, labels = list_clips(path)
            clips = [read_clip(file, SAMPLE_RATE) for file in files]
        source = data_spec.dataset or data_spec.path
        longest = max(len(c) for c in clips) / SAMPLE_RATE
        if longest > LONGEST:
            raise DataError(f"{source}: a clip lasts {longest:.0f} s; cut clips to at most {LONGEST:.0f} s")
        digest = hashlib.sha256()
        for clip, label in zip(clips, labels):
            digest.update(np.asarray(clip, dtype=np.float32).tobytes())
            digest.update(f"\x1f{label}\x1e".encode())
        return Source(source, len(clips), clips, digest.hexdigest(), "label", pd.Series(labels, name="label"),
                      fixed=fixed)

    def fit(self, source: Source, train: np.ndarray, data_spec) -> AudioEncoder:
        longest = max(len(source.payload[i]) for i in train)
        state = AudioState(sample_rate=SAMPLE_RATE, n_fft=N_FFT, hop=HOP, mels=MELS, frames=1 + longest // HOP)
        return AudioEncoder(state, source.target)

    def raw_rows(self, source: Source, positions: np.ndarray):
        return [np.asarray(source.payload[i]) for i in positions]

    def encoder(self, state: AudioState, target: str | None) -> AudioEncoder:
        return AudioEncoder(state, target)
