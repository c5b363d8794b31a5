"""Sound as a network reads it: log-mel spectrograms, numpy only, so that training and the
torch-free runtime compute the same numbers from the same samples.

A clip (float samples in [-1, 1], one channel, at ``sample_rate``) is cut into frames of ``n_fft``
samples every ``hop`` samples (the clip padded by reflection at both ends, so that frame ``t`` is
centred on sample ``t * hop``), each frame weighted by a periodic Hann window; the power of each
frame's spectrum is summed into ``mels`` triangular bands evenly spaced on the mel scale
(Slaney's), and its logarithm taken. These are the numbers of librosa's ``melspectrogram`` with
``pad_mode="reflect"`` (centred frames, Slaney mel scale, area-normalised bands), which the tests
compare against.
"""

from __future__ import annotations

import numpy as np

from ..errors import DataError
from .tables import columns_of, named_files, no_kept_columns

FLOOR = 1e-10  # the smallest power the logarithm sees


def hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney's mel scale: linear below 1 kHz, logarithmic above."""
    hz = np.asarray(hz, dtype=np.float64)
    linear = hz / (200.0 / 3)
    step = np.log(6.4) / 27.0
    return np.where(hz >= 1000.0, 15.0 + np.log(np.maximum(hz, 1e-12) / 1000.0) / step, linear)


def mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    step = np.log(6.4) / 27.0
    return np.where(mel >= 15.0, 1000.0 * np.exp(step * (mel - 15.0)), mel * (200.0 / 3))


def mel_filters(sample_rate: int, n_fft: int, mels: int, low_hz: float = 0.0, high_hz: float | None = None
                ) -> np.ndarray:
    """(mels, n_fft // 2 + 1) triangular bands on the mel scale, each scaled to unit area
    (2 / band width in Hz)."""
    high_hz = sample_rate / 2 if high_hz is None else high_hz
    frequencies = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    edges = mel_to_hz(np.linspace(hz_to_mel(low_hz), hz_to_mel(high_hz), mels + 2))  # (mels + 2,)
    widths = np.diff(edges)
    ramps = edges[:, None] - frequencies[None, :]  # (mels + 2, bins)
    rising = -ramps[:-2] / widths[:-1, None]
    falling = ramps[2:] / widths[1:, None]
    bands = np.maximum(0, np.minimum(rising, falling))  # (mels, bins)
    return bands * (2.0 / (edges[2:] - edges[:-2]))[:, None]


def power_spectrogram(samples: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """(n_fft // 2 + 1, frames) power of the centred, Hann-windowed frames' spectra."""
    samples = np.asarray(samples, dtype=np.float64)
    if samples.ndim != 1:
        raise ValueError(f"a clip is one channel of samples; got shape {samples.shape}")
    pad = n_fft // 2
    mode = "reflect" if len(samples) > pad else "constant"
    padded = np.pad(samples, pad, mode=mode)
    count = 1 + (len(padded) - n_fft) // hop
    index = np.arange(n_fft)[None, :] + hop * np.arange(count)[:, None]  # (frames, n_fft)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)  # periodic Hann
    spectrum = np.fft.rfft(padded[index] * window, axis=1)  # (frames, bins)
    return (np.abs(spectrum) ** 2).T


def log_mel(samples: np.ndarray, sample_rate: int, *, n_fft: int = 400, hop: int = 160, mels: int = 40,
            normalise: bool = True) -> np.ndarray:
    """(mels, frames) natural log of the mel-band powers of a clip; with ``normalise`` each band
    is centred and scaled over the clip's frames (per-utterance normalisation), so loudness and
    the microphone's colour matter less.

    >>> tone = np.sin(2 * np.pi * 440 * np.arange(16000) / 16000)
    >>> log_mel(tone, 16000).shape
    (40, 101)
    """
    bands = mel_filters(sample_rate, n_fft, mels) @ power_spectrogram(samples, n_fft, hop)  # (mels, frames)
    found = np.log(np.maximum(bands, FLOOR))
    if normalise:
        found = (found - found.mean(axis=1, keepdims=True)) / (found.std(axis=1, keepdims=True) + 1e-5)
    return found.astype(np.float32)


AUDIO_FILES = (".wav", ".flac", ".ogg")


def resampled(samples: np.ndarray, rate: int, target: int) -> np.ndarray:
    """``samples`` at ``rate`` Hz read at ``target`` Hz by linear interpolation (clips recorded at
    another rate than the training clips')."""
    if rate == target:
        return np.asarray(samples, dtype=np.float64)
    count = max(1, int(round(len(samples) * target / rate)))
    return np.interp(np.arange(count) * (rate / target), np.arange(len(samples)), samples)


def read_clip(path, sample_rate: int) -> np.ndarray:
    """A sound file's samples (its channels averaged) at ``sample_rate``; ``path`` may be the
    file's bytes (a sound file sent to the service).

    Raises:
        DataError: the file cannot be read as sound, or soundfile is not installed.
    """
    import io

    try:
        import soundfile
    except ImportError:
        raise DataError("reading sound files needs soundfile: pip install 'layerforge[speech]'") from None
    sent = isinstance(path, (bytes, bytearray))
    try:
        samples, rate = soundfile.read(io.BytesIO(path) if sent else str(path), dtype="float32", always_2d=True)
    except (RuntimeError, soundfile.LibsndfileError) as error:
        what = "the body" if sent else str(path)
        raise DataError(f"{what}: not a sound file soundfile can read ({error})") from None
    if not len(samples):
        raise DataError(f"{'the body' if sent else path}: the sound file holds no samples")
    return resampled(samples.mean(axis=1), rate, sample_rate)


def list_clips(root) -> tuple[list, list[str]]:
    """The sound files of a folder with one subfolder per class, and their classes."""
    from pathlib import Path

    root = Path(root)
    files, labels = [], []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        for file in sorted(f for f in folder.iterdir() if f.suffix.lower() in AUDIO_FILES):
            files.append(file)
            labels.append(folder.name)
    if not files:
        raise DataError(f"{root}: no sound files ({', '.join(AUDIO_FILES)}) in class folders; put each class's "
                        "clips in a folder named after it")
    return files, labels


TABLE_FILES = (".csv", ".tsv", ".parquet", ".pq", ".json")


class AudioCodec:
    """Encodes sound as the run's features say: clips as arrays of samples (a list, at the run's
    sample rate), a sound file (or its bytes), a folder of sound files, a folder of class
    folders (whose names are the labels), or a table (a file, a DataFrame, JSON rows or columns)
    whose ``column`` names each clip's sound file (relative to the table's folder) and, for
    evaluation, whose target column holds its label; each clip's log-mel spectrogram, normalised
    per clip, padded or cut to the run's frames, as one picture (N, 1, mels, frames).

    Args:
        state: the fitted state (``sample_rate``, ``n_fft``, ``hop``, ``mels``, ``frames``, and
            ``column``: a table's column of sound files).
    """

    kind = "audio"

    def __init__(self, state: dict):
        self.sample_rate, self.n_fft, self.hop = state["sample_rate"], state["n_fft"], state["hop"]
        self.mels, self.frames = state["mels"], state["frames"]
        self.column = state.get("column", "path")

    kept = no_kept_columns("sound clips")

    def pieces(self, rows):
        yield rows

    @staticmethod
    def row_names(rows) -> list[str] | None:
        """The file each clip was read from (relative to the folder given), for clips given as a
        sound file or a folder."""
        from pathlib import Path

        if not isinstance(rows, (str, Path)) or Path(rows).suffix.lower() in TABLE_FILES:
            return None
        path = Path(rows)
        if path.is_file():
            return [path.name]
        if path.is_dir() and any(p.is_dir() for p in path.iterdir()):
            return [file.relative_to(path).as_posix() for file in list_clips(path)[0]]
        if path.is_dir():
            return sorted(p.name for p in path.iterdir() if p.suffix.lower() in AUDIO_FILES)
        return None

    def clips(self, rows, target: str | None = None) -> tuple[list[np.ndarray], list | None]:
        """The clips' samples at the run's sample rate, and their labels where the rows hold them
        (class folders, or a table with the ``target`` column)."""
        from pathlib import Path

        if isinstance(rows, (bytes, bytearray)):  # a sound file's bytes (the service's body)
            return [read_clip(rows, self.sample_rate)], None
        if isinstance(rows, (str, Path)) and Path(rows).suffix.lower() not in TABLE_FILES:
            path = Path(rows)
            if not path.exists():
                raise DataError(f"{path}: no such sound file or folder")
            if path.is_dir() and any(p.is_dir() for p in path.iterdir()):
                files, labels = list_clips(path)
                return [read_clip(file, self.sample_rate) for file in files], labels
            return [read_clip(file, self.sample_rate) for file in _sound_files(path)], None
        if isinstance(rows, (list, tuple)) and (not rows or not isinstance(rows[0], dict)):
            clips = [np.asarray(clip, dtype=np.float64) for clip in rows]
            for number, clip in enumerate(clips, start=1):
                if clip.ndim != 1 or not len(clip) or not np.isfinite(clip).all():
                    raise DataError(f"clip {number}: expected one channel of finite samples at {self.sample_rate} Hz, "
                                    f"got shape {clip.shape}")
            return clips, None
        return self._table_clips(rows, target)

    def _table_clips(self, rows, target: str | None) -> tuple[list[np.ndarray], list | None]:
        from pathlib import Path

        columns = columns_of(rows, [self.column])
        if self.column not in columns.values:
            raise DataError(f"missing column{columns.where.file}: {self.column} (the sound file of each clip)")
        folder = Path(rows).parent if isinstance(rows, (str, Path)) else Path.cwd()
        clips = [read_clip(path, self.sample_rate) for path in named_files(columns, self.column, folder, "sound file")]
        labels = columns.values.get(target) if target else None
        return clips, (list(labels) if labels is not None else None)

    def spectrum(self, clip: np.ndarray) -> np.ndarray:
        """(mels, frames): one clip's normalised log-mel spectrogram, cut at the end to the run's
        frames."""
        return log_mel(clip, self.sample_rate, n_fft=self.n_fft, hop=self.hop, mels=self.mels)[:, :self.frames]

    def features(self, clip: np.ndarray) -> np.ndarray:
        """(1, mels, frames): one clip's spectrogram padded with zeros (the clip's mean, once
        normalised) to the run's frames."""
        found = self.spectrum(clip)
        return np.pad(found, ((0, 0), (0, self.frames - found.shape[1])))[None]

    def encode(self, rows, *, unknown: str | None = None, ignore_extra: bool = False,
               target: str | None = None) -> tuple[tuple[np.ndarray], list | None]:
        clips, labels = self.clips(rows, target)
        x = np.stack([self.features(clip) for clip in clips]) if clips else \
            np.zeros((0, 1, self.mels, self.frames), np.float32)
        return (x.astype(np.float32),), labels


def _sound_files(path) -> list:
    """A sound file, or the sound files of a folder (sorted by name)."""
    from pathlib import Path

    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in AUDIO_FILES)
        if not files:
            raise DataError(f"{path}: no sound files ({', '.join(AUDIO_FILES)})")
        return files
    return [path]


class SpeechCodec(AudioCodec):
    """Encodes speech to transcribe from the rows ``AudioCodec`` reads (a table's target column
    holds the transcripts): each clip becomes its normalised log-mel frames (mels, frames),
    padded with zeros or cut to the run's frames, with the frames it fills:
    ``(x (N, mels, frames), lengths (N,))``."""

    kind = "speech"

    def encode(self, rows, *, unknown: str | None = None, ignore_extra: bool = False,
               target: str | None = None) -> tuple[tuple[np.ndarray, np.ndarray], list | None]:
        clips, labels = self.clips(rows, target)
        x = np.zeros((len(clips), self.mels, self.frames), np.float32)
        lengths = np.ones(len(clips), np.int64)
        for row, clip in enumerate(clips):
            found = self.spectrum(clip)
            x[row, :, : found.shape[1]], lengths[row] = found, found.shape[1]
        return (x, lengths), labels
