"""Sound: clips of speech or other sound, read as log-mel spectrograms (``codecs.audio``, numpy,
the same numbers in training and in the runtime), each one picture (1, mels, frames) that the
image-reading networks (CNNs, vision Transformers, MLPs) classify: keyword spotting.

Clips come from a folder with one subfolder per class (WAV, FLAC or OGG, ``data.kind: audio``),
a table with a column of sound files (``data.source``, default ``path``, relative to the table's
folder) and a label column (``data.target``, default ``label``), or from a built-in set spoken
offline by eSpeak NG, whose test clips are voices never heard in training.
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


def table_clips(data_spec, target_default: str, what: str) -> tuple[list[np.ndarray], list[str], str, str]:
    """The clips a table names (``data.source``, default ``path``: each clip's sound file,
    relative to the table's folder) and its ``what`` column (``data.target``, default
    ``target_default``): (clips at 16 kHz, labels, the file column, the label column).

    Raises:
        DataError: a missing column, an empty label or a sound file that is not there, by row.
    """
    from ..tabular import read_table

    label = data_spec.path
    frame = read_table(label, text=[name for name in (data_spec.source, data_spec.target) if isinstance(name, str)])
    if isinstance(data_spec.target, list):
        raise DataError(f"data.target: a clip has one {what} column")
    found = {}
    for option, name, holds in (("data.source", data_spec.source or "path", "each clip's sound file"),
                                ("data.target", data_spec.target or target_default, f"each clip's {what}")):
        if name not in frame.columns:
            raise DataError(f"{option}: {label} has no column '{name}'; name the column that holds {holds} (columns: "
                            f"{', '.join(map(str, frame.columns[:30]))})")
        found[option] = name
    column, target = found["data.source"], found["data.target"]
    empty = np.flatnonzero(frame[target].isna().to_numpy() | (frame[target].astype(str).str.strip() == ""))
    if len(empty):
        raise DataError(f"{label}: the {what} of row {empty[0] + 1} is empty ({len(empty)} rows); every clip needs "
                        f"its {what}: fill or drop those rows")
    folder, clips = Path(label).parent, []
    for row, name in enumerate(frame[column].tolist()):
        path = Path(str(name)) if Path(str(name)).is_absolute() else folder / str(name)
        if not path.is_file():
            raise DataError(f"{label}: row {row + 1}: sound file not found: {path}")
        clips.append(read_clip(path, SAMPLE_RATE))
    return clips, frame[target].astype(str).tolist(), column, target


def clips_source(label: str, clips: list, labels: list[str], target: str, column: str, fixed=None) -> Source:
    """The rows of clips and their labels (or transcripts), fingerprinted by their samples."""
    import pandas as pd

    longest = max(len(c) for c in clips) / SAMPLE_RATE
    if longest > LONGEST:
        raise DataError(f"{label}: a clip lasts {longest:.0f} s; cut clips to at most {LONGEST:.0f} s")
    digest = hashlib.sha256()
    for clip, said in zip(clips, labels):
        digest.update(np.asarray(clip, dtype=np.float32).tobytes())
        digest.update(f"\x1f{said}\x1e".encode())
    return Source(label, len(clips), clips, digest.hexdigest(), target, pd.Series(labels, name=target),
                  fixed=fixed or {}, facts={"column": column})


class AudioState(State):
    """How clips become pictures: the sample rate they are read at, the spectrogram's frames
    (n_fft samples every hop) and bands, the frames every clip is padded or cut to (the longest
    training clip's), and the column of a table that names each clip's sound file."""

    kind: Literal["audio"] = "audio"
    sample_rate: int
    n_fft: int
    hop: int
    mels: int
    frames: int
    column: str = "path"

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
        """A built-in spoken set, a folder with one subfolder of sound files per class, or a table
        of sound files and their labels."""
        column = data_spec.source or "path"
        if data_spec.dataset:
            clips, labels, rate, test = builtin.load_clips(data_spec.dataset)
            clips = [resampled(clip, rate, SAMPLE_RATE) for clip in clips]
            return clips_source(data_spec.dataset, clips, labels, "label", column, {"test": test})
        path = Path(data_spec.path)
        if path.is_file():
            clips, labels, column, target = table_clips(data_spec, "label", "label")
            return clips_source(data_spec.path, clips, labels, target, column)
        if not path.is_dir():
            raise DataError(f"data.path: {path} is not a folder; sound clips are read from a folder with one "
                            "subfolder per class, or a table with a column of sound files")
        files, labels = list_clips(path)
        return clips_source(data_spec.path, [read_clip(file, SAMPLE_RATE) for file in files], labels, "label",
                            column)

    def fit(self, source: Source, train: np.ndarray, data_spec) -> AudioEncoder:
        longest = max(len(source.payload[i]) for i in train)
        state = AudioState(sample_rate=SAMPLE_RATE, n_fft=N_FFT, hop=HOP, mels=MELS, frames=1 + longest // HOP,
                           column=source.facts["column"])
        return AudioEncoder(state, source.target)

    def raw_rows(self, source: Source, positions: np.ndarray):
        return [np.asarray(source.payload[i]) for i in positions]

    def encoder(self, state: AudioState, target: str | None) -> AudioEncoder:
        return AudioEncoder(state, target)
