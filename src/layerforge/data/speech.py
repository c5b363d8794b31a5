"""Speech made offline with eSpeak NG (the ``espeakng-loader`` wheel ships its library and data;
the ``speech`` extra): words and digit strings spoken by many voices (English accents, each with
eSpeak's voice variants) at several speeds and pitches.

eSpeak NG's samples vary a little from one call to the next (a few samples of length and the
noise of fricatives, whatever its seed), so a set of clips is made once and kept in a cache
folder (``LAYERFORGE_CACHE``, default ``~/.cache/layerforge``): later runs read the same clips
instead of speaking them again.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import threading
from pathlib import Path

import numpy as np

from ..errors import DataError

ACCENTS = ("en-US", "en-GB-x-rp", "en", "en-GB-scotland", "en-029", "en-US-nyc", "en-GB-x-gbclan", "en-GB-x-gbcwmd")
VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5", "croak", "klatt", "klatt2",
            "klatt3", "whisper", "grandpa", "grandma", "aunty", "boris", "david", "ed", "linda", "max", "norbert")
DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
COMMANDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)
_LOCK = threading.Lock()
_ENGINE: dict = {}


def voices() -> list[str]:
    """Every voice this module speaks with: each accent with each variant (``en-US+f3``)."""
    return [f"{accent}+{variant}" for accent in ACCENTS for variant in VARIANTS]


def _engine():
    """The eSpeak NG library, initialised once for synchronous synthesis: (library, sample rate)."""
    if not _ENGINE:
        try:
            import espeakng_loader
        except ImportError:
            raise DataError("speech synthesis needs eSpeak NG: pip install 'layerforge[speech]' (the "
                            "espeakng-loader wheel)") from None
        library = ctypes.CDLL(espeakng_loader.get_library_path())
        rate = library.espeak_Initialize(2, 0, espeakng_loader.get_data_path().encode(), 0)  # 2: synchronous
        if rate <= 0:
            raise DataError("eSpeak NG did not start (espeak_Initialize failed)")
        chunks: list[np.ndarray] = []

        def collect(wav, count, events):
            if count > 0:
                chunks.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())
            return 0

        callback = _CALLBACK(collect)  # kept referenced: eSpeak calls it for every synthesis
        library.espeak_SetSynthCallback(callback)
        _ENGINE.update(library=library, rate=rate, chunks=chunks, callback=callback)
    return _ENGINE


def synthesize(text: str, voice: str = "en-US+m3", *, rate: int = 175, pitch: int = 50) -> tuple[np.ndarray, int]:
    """``text`` spoken by ``voice`` at ``rate`` words a minute and ``pitch`` (0-99): float32
    samples in [-1, 1] and the sample rate (22,050 Hz).

    Raises:
        DataError: an unknown voice, a rate or pitch out of range, or no eSpeak NG.
    """
    if not 80 <= rate <= 450:
        raise DataError(f"rate: expected 80 to 450 words a minute, got {rate}")
    if not 0 <= pitch <= 99:
        raise DataError(f"pitch: expected 0 to 99, got {pitch}")
    accent, _, variant = voice.partition("+")
    if accent not in ACCENTS or (variant and variant not in VARIANTS):
        raise DataError(f"voice {voice!r}: expected an accent ({', '.join(ACCENTS)}), optionally with '+' and a "
                        "variant (e.g. en-US+f3); layerforge.data.speech.voices() lists them")
    engine = _engine()
    library = engine["library"]
    with _LOCK:
        if library.espeak_SetVoiceByName(voice.encode()) != 0:
            raise DataError(f"voice {voice!r} is not one this eSpeak NG has")
        library.espeak_SetParameter(1, rate, 0)  # espeakRATE
        library.espeak_SetParameter(3, pitch, 0)  # espeakPITCH
        engine["chunks"].clear()
        encoded = text.encode("utf-8") + b"\0"
        library.espeak_Synth(encoded, len(encoded), 0, 1, 0, 0, None, None)  # from character 0
        library.espeak_Synchronize()
        samples = np.concatenate(engine["chunks"]) if engine["chunks"] else np.zeros(0, np.int16)
    return (samples.astype(np.float32) / 32768.0), engine["rate"]


def spoken(words: list[str] | tuple[str, ...], speakers: list[str], *, rates=(140, 175, 220), pitches=(35, 50, 65),
           noise: float = 0.01, seed: int = 0) -> dict:
    """Each word spoken by each voice in ``speakers`` at each rate and pitch, with white noise of
    standard deviation ``noise`` added (seeded): ``{"clips": [arrays], "labels": [...],
    "voices": [...], "sample_rate": int}``. Kept in the cache after it is made once."""
    key = hashlib.sha256(json.dumps([list(words), list(speakers), list(rates), list(pitches), noise, seed])
                         .encode()).hexdigest()[:16]
    lines = [(word, voice, rate, pitch) for voice in speakers for word in words for rate in rates for pitch in pitches]
    return said(lines, noise=noise, seed=seed, key=key)


def said(lines: list[tuple[str, str, int, int]], *, noise: float = 0.01, seed: int = 0, key: str | None = None
         ) -> dict:
    """Each line ``(text, voice, rate, pitch)`` spoken, with white noise of standard deviation
    ``noise`` added (seeded): ``{"clips": [arrays], "labels": [texts], "voices": [...],
    "sample_rate": int}``. Kept in the cache (under ``key``, by default a digest of the lines)
    after it is made once."""
    key = key or hashlib.sha256(json.dumps([[list(line) for line in lines], noise, seed]).encode()).hexdigest()[:16]
    folder = Path(os.environ.get("LAYERFORGE_CACHE", Path.home() / ".cache" / "layerforge")) / "speech"
    path = folder / f"{key}.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as kept:
            ends = kept["ends"]
            clips = np.split(kept["samples"], ends[:-1])
            return {"clips": clips, "labels": kept["labels"].tolist(), "voices": kept["voices"].tolist(),
                    "sample_rate": int(kept["sample_rate"])}
    rng = np.random.default_rng(seed)
    clips, labels, said_by, sample_rate = [], [], [], 0
    for text, voice, rate, pitch in lines:
        samples, sample_rate = synthesize(text, voice, rate=rate, pitch=pitch)
        clips.append((samples + noise * rng.standard_normal(len(samples))).astype(np.float32))
        labels.append(text)
        said_by.append(voice)
    folder.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.tmp.npz")
    np.savez(partial, samples=np.concatenate(clips), ends=np.cumsum([len(c) for c in clips]),
             labels=np.array(labels), voices=np.array(said_by), sample_rate=sample_rate)
    partial.replace(path)  # whole or not at all
    return {"clips": clips, "labels": labels, "voices": said_by, "sample_rate": sample_rate}
