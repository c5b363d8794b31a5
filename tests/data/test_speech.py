"""Speech made offline with eSpeak NG: words last as long as speech does, different voices and
speeds sound different, a set of clips is made once and read back from the cache (the same clips
each time), and log-mel features of a spoken word."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("espeakng_loader")  # the speech extra (in dev)

from layerforge.codecs.audio import log_mel  # noqa: E402
from layerforge.data import speech  # noqa: E402
from layerforge.errors import DataError  # noqa: E402


def test_a_word_is_spoken_and_voices_differ():
    seven, rate = speech.synthesize("seven", "en-US+m3")
    assert rate == 22050 and 0.3 < len(seven) / rate < 1.5 and np.abs(seven).max() > 0.1
    again, _ = speech.synthesize("seven", "en-US+m3")
    assert abs(len(again) - len(seven)) < 0.01 * rate  # eSpeak NG varies by a few samples
    others = [speech.synthesize("seven", voice)[0] for voice in ("en-GB-x-rp+f2", "en-GB-scotland+croak")]
    assert all(len(o) != len(seven) or not np.allclose(o, seven) for o in others)
    slow, _ = speech.synthesize("seven", "en-US+m3", rate=120)
    assert len(slow) > len(seven) * 1.2  # slower speech lasts longer
    assert len(set(speech.voices())) == len(speech.ACCENTS) * len(speech.VARIANTS)
    with pytest.raises(DataError, match="voice 'klingon': expected an accent"):
        speech.synthesize("seven", "klingon")
    with pytest.raises(DataError, match="rate: expected 80 to 450"):
        speech.synthesize("seven", rate=10)


def test_a_set_of_clips_is_made_once_then_read_from_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LAYERFORGE_CACHE", str(tmp_path))
    made = speech.spoken(["yes", "no"], ["en-US+m1", "en-029+f1"], rates=(175,), pitches=(40, 60), seed=3)
    assert len(made["clips"]) == 8 and made["labels"][:2] == ["yes", "yes"] and made["voices"][-1] == "en-029+f1"
    assert len(list((tmp_path / "speech").glob("*.npz"))) == 1
    monkeypatch.setattr(speech, "synthesize", lambda *a, **k: pytest.fail("spoken again instead of read"))
    again = speech.spoken(["yes", "no"], ["en-US+m1", "en-029+f1"], rates=(175,), pitches=(40, 60), seed=3)
    assert again["labels"] == made["labels"] and again["voices"] == made["voices"]
    assert all(np.array_equal(a, b) for a, b in zip(again["clips"], made["clips"]))
    features = log_mel(made["clips"][0], made["sample_rate"], n_fft=551, hop=220)  # 25 ms frames every 10 ms
    assert features.shape[0] == 40 and features.shape[1] == 1 + len(made["clips"][0]) // 220
