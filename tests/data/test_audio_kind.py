"""Sound clips as a data kind: a folder of class folders of WAV files trains a keyword spotter
(log-mel pictures read by a CNN); predictions of a file and a folder carry the file names; the
export and the torch-free runtime give the run's own probabilities; bad sound is refused by name."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("espeakng_loader")  # the speech extra (in dev)
soundfile = pytest.importorskip("soundfile")

import layerforge as lf  # noqa: E402
from layerforge import runtime  # noqa: E402
from layerforge.data import speech  # noqa: E402
from layerforge.errors import DataError  # noqa: E402

WORDS = ("yes", "no", "stop")
VOICES = [f"{accent}+{variant}" for accent in ("en-US", "en-GB-x-rp") for variant in ("m1", "m3", "f2", "f4", "croak")]


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("clips")
    for word in WORDS:
        (root / "train" / word).mkdir(parents=True)
        (root / "new" / word).mkdir(parents=True)
        for voice in VOICES:
            for rate in (150, 210):
                samples, sample_rate = speech.synthesize(word, voice, rate=rate)
                soundfile.write(root / "train" / word / f"{voice}-{rate}.wav", samples, sample_rate)
        samples, sample_rate = speech.synthesize(word, "en-GB-scotland+m2")  # a voice never heard in training
        soundfile.write(root / "new" / word / "scot.flac", samples, sample_rate)
    return root


def test_a_folder_of_clips_trains_predicts_exports_and_runs_without_torch(clips, tmp_path):
    run = lf.train({"name": "kws", "data": {"path": str(clips / "train"), "kind": "audio",
                                            "split": {"val": 0.2, "test": 0.2}},
                    "model": {"type": "cnn"}, "train": {"epochs": 15, "batch_size": 8, "report": False}},
                   runs_dir=tmp_path)
    assert run.manifest.inputs.kind == "image" and run.manifest.inputs.height == 40
    assert run.metrics["test"]["accuracy"] >= 0.8
    table = run.predict_table(clips / "new")
    assert table["file"].tolist() == [f"{word}/scot.flac" for word in sorted(WORDS)]
    assert (table["label"] == [w for w in sorted(WORDS)]).mean() >= 2 / 3
    one = run.predict_table(clips / "new" / "yes" / "scot.flac")
    assert one["file"].tolist() == ["scot.flac"] and one["label"].tolist() == [table["label"].iloc[-1]]
    assert set(run.evaluate(clips / "new")) >= {"accuracy", "loss"}
    folder = run.export()
    exported = runtime.load(folder).predict_table(str(clips / "new"))
    np.testing.assert_allclose(exported["proba_yes"], table["proba_yes"], rtol=1e-4, atol=1e-6)
    samples = soundfile.read(clips / "new" / "no" / "scot.flac")[0]
    with pytest.raises(DataError, match="clip 1: expected one channel of finite samples"):
        run.predict([np.stack([samples, samples])])


def test_bad_sound_is_refused_by_name(clips, tmp_path):
    broken = tmp_path / "broken" / "yes"
    broken.mkdir(parents=True)
    (broken / "a.wav").write_bytes(b"not sound at all")
    spec = {"data": {"path": str(tmp_path / "broken"), "kind": "audio"}, "train": {"epochs": 1}}
    with pytest.raises(DataError, match=r"a\.wav: not a sound file soundfile can read"):
        lf.train(spec, runs_dir=tmp_path / "runs")
    with pytest.raises(DataError, match="no sound files"):
        lf.train({**spec, "data": {"path": str(tmp_path), "kind": "audio"}}, runs_dir=tmp_path / "runs")
    with pytest.raises(lf.SpecError, match="or sound clips with data.kind: audio"):
        lf.train({**spec, "data": {"path": str(clips / "new" / "yes" / "scot.flac"), "kind": "audio"}},
                 runs_dir=tmp_path / "runs")


def test_a_table_of_sound_files_and_labels_trains_and_predicts(clips, tmp_path):
    import pandas as pd

    rows = [{"file": f"train/{word}/{voice}-{rate}.wav", "word": word}
            for word in WORDS for voice in VOICES for rate in (150, 210)]
    pd.DataFrame(rows).to_csv(clips / "clips.csv", index=False)
    run = lf.train({"name": "kws-table", "data": {"path": str(clips / "clips.csv"), "kind": "audio", "source": "file",
                                                  "target": "word", "split": {"val": 0.2, "test": 0.2}},
                    "model": {"type": "cnn"}, "train": {"epochs": 15, "batch_size": 8, "report": False}},
                   runs_dir=tmp_path)
    assert run.manifest.preprocessing.column == "file" and run.metrics["test"]["accuracy"] >= 0.8
    new = pd.DataFrame({"file": [f"new/{word}/scot.flac" for word in sorted(WORDS)]})
    new.to_csv(clips / "new.csv", index=False)
    by_table = run.predict_table(clips / "new.csv")
    assert by_table["word"].tolist() == run.predict_table(clips / "new")["word"].tolist()
    pd.DataFrame({"file": ["new/yes/gone.wav"]}).to_csv(clips / "gone.csv", index=False)
    with pytest.raises(DataError, match=r"row 1 \(line 2 of gone\.csv\): sound file not found"):
        run.predict(clips / "gone.csv")
    with pytest.raises(DataError, match="data.target: .* has no column 'label'"):
        lf.train({"data": {"path": str(clips / "clips.csv"), "kind": "audio", "source": "file"},
                  "model": {"type": "cnn"}, "train": {"epochs": 1}}, runs_dir=tmp_path)
