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
