"""Log-mel spectrograms in numpy against librosa's (the reference): the mel scale, the bands,
the power spectrogram and the log-mel of real speech-like signals."""

from __future__ import annotations

import numpy as np
import pytest

from layerforge.codecs.audio import hz_to_mel, log_mel, mel_filters, mel_to_hz, power_spectrogram

librosa = pytest.importorskip("librosa")  # in the dev extra: the reference, not a dependency


def test_the_mel_scale_and_its_bands_are_librosas():
    hz = np.array([0.0, 100.0, 999.0, 1000.0, 4000.0, 8000.0])
    np.testing.assert_allclose(hz_to_mel(hz), librosa.hz_to_mel(hz), rtol=1e-12)
    np.testing.assert_allclose(mel_to_hz(hz_to_mel(hz)), hz, rtol=1e-9, atol=1e-9)
    for rate, n_fft, mels in ((16000, 400, 40), (22050, 512, 64), (8000, 256, 23)):
        np.testing.assert_allclose(mel_filters(rate, n_fft, mels), librosa.filters.mel(sr=rate, n_fft=n_fft, n_mels=mels),
                                   rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("length", [16000, 12345, 300])
def test_the_power_spectrogram_and_log_mel_are_librosas(length):
    rng = np.random.default_rng(length)
    t = np.arange(length) / 16000
    clip = 0.3 * np.sin(2 * np.pi * (200 + 800 * t) * t) + 0.05 * rng.standard_normal(length)  # a chirp in noise
    reference = np.abs(librosa.stft(clip, n_fft=400, hop_length=160, window="hann", center=True,
                                    pad_mode="reflect")) ** 2
    np.testing.assert_allclose(power_spectrogram(clip, 400, 160), reference, rtol=1e-6, atol=1e-9)
    mel = librosa.feature.melspectrogram(y=clip, sr=16000, n_fft=400, hop_length=160, n_mels=40, power=2.0,
                                         pad_mode="reflect")
    np.testing.assert_allclose(log_mel(clip, 16000, normalise=False), np.log(np.maximum(mel, 1e-10)),
                               rtol=1e-4, atol=1e-4)


def test_per_utterance_normalisation_removes_loudness():
    rng = np.random.default_rng(0)
    clip = rng.standard_normal(8000) * (1 + np.sin(np.arange(8000) / 500))  # noise whose loudness swells
    quiet, loud = log_mel(clip * 0.05, 16000), log_mel(clip, 16000)
    np.testing.assert_allclose(quiet, loud, atol=1e-3)
    assert np.allclose(loud.mean(axis=1), 0, atol=1e-4) and np.allclose(loud.std(axis=1), 1, atol=1e-2)
    with pytest.raises(ValueError, match="one channel of samples"):
        log_mel(np.zeros((2, 100)), 16000)
