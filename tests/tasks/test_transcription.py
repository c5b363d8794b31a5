"""Transcription: a table of sound files and their transcripts trains a CRNN by CTC; every door
(the run, the command line, the exported runtime, the service) writes the same transcripts, by
the best path or by beam search; the CTC loss over the padded frames is the loss over each
clip's own; bad tables and specs are refused by name."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("espeakng_loader")  # the speech extra (in dev)
pytest.importorskip("jiwer")
soundfile = pytest.importorskip("soundfile")

import torch  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

import layerforge as lf  # noqa: E402
from layerforge import runtime  # noqa: E402
from layerforge.cli import app  # noqa: E402
from layerforge.data import speech  # noqa: E402
from layerforge.errors import DataError  # noqa: E402
from layerforge.metrics import transcription_scores  # noqa: E402
from layerforge.models import Inputs  # noqa: E402
from layerforge.models.configs import RNNConfig  # noqa: E402
from layerforge.models.transcriber import RecurrentFrames, frames_after  # noqa: E402
from layerforge.serving import create_app  # noqa: E402
from layerforge.training import losses  # noqa: E402

WORDS = ("yes", "no", "stop")
VOICES = [f"{accent}+{variant}" for accent in ("en-US", "en-GB-x-rp") for variant in ("m1", "m3", "f2", "f4")]


def _said(root, name: str, text: str, voice: str, rate: int) -> str:
    samples, sample_rate = speech.synthesize(text, voice, rate=rate)
    soundfile.write(root / name, samples, sample_rate)
    return name


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """A table of 120 clips of one to three of three words, by 8 voices, and a folder of new
    clips by a voice never heard in training."""
    root = tmp_path_factory.mktemp("speech")
    (root / "clips").mkdir()
    (root / "new").mkdir()
    rng = np.random.default_rng(0)
    rows = []
    for voice in VOICES:
        for i in range(15):
            text = " ".join(rng.choice(WORDS, rng.integers(1, 4)))
            rows.append({"path": _said(root, f"clips/{voice}-{i}.wav", text, voice, int(rng.choice([150, 200]))),
                         "transcript": text})
    pd.DataFrame(rows).to_csv(root / "clips.csv", index=False)
    new = [("yes no", "a.wav"), ("stop", "b.wav"), ("no stop yes", "c.flac")]
    for text, name in new:
        _said(root, f"new/{name}", text, "en-US+m5", 175)
    pd.DataFrame({"path": [f"new/{name}" for _, name in new], "transcript": [t for t, _ in new]}).to_csv(
        root / "new.csv", index=False)
    return root


@pytest.fixture(scope="module")
def run(clips, tmp_path_factory):
    spec = {"name": "yes-no-stop", "data": {"path": str(clips / "clips.csv"), "kind": "speech",
                                            "split": {"val": 0.1, "test": 0.2}, "decoding": {"beam_size": 3}},
            "model": {"type": "rnn", "cell": "gru", "hidden_size": 32, "bidirectional": True},
            "train": {"epochs": 14, "batch_size": 8, "optimizer": {"name": "adam", "lr": 0.01}, "report": False}}
    found = lf.train(spec, runs_dir=tmp_path_factory.mktemp("runs"), progress=False)
    found.export()
    return found


def test_a_table_of_clips_learns_to_transcribe_them(run):
    assert run.manifest.task == "transcription" and run.manifest.inputs.kind == "frames"
    assert run.manifest.inputs.channels == 40
    test = run.metrics["test"]
    assert test["wer"] <= 0.35 and test["cer"] <= 0.2 and test["exact_match"] >= 0.5
    assert set(run.history[-1]) >= {"train_loss", "val_loss", "val_wer", "val_cer", "val_exact_match"}
    assert run.history[-1]["train_loss"] < run.history[0]["train_loss"] / 4


def test_every_door_writes_the_same_transcripts(run, clips):
    table = run.predict_table(clips / "new")  # a folder of clips
    assert list(table.columns) == ["file", "transcript"] and table["file"].tolist() == ["a.wav", "b.wav", "c.flac"]
    said = table["transcript"].tolist()
    heard = transcription_scores(said, ["yes no", "stop", "no stop yes"])  # a voice never heard in training
    assert heard["cer"] <= 0.3, said
    by_table = run.predict_table(clips / "new.csv")
    assert by_table["transcript"].tolist() == said
    samples = [soundfile.read(clips / "new" / name)[0] for name in ("a.wav", "b.wav", "c.flac")]
    at_run_rate = [speech_rate(clip) for clip in samples]
    assert list(run.predict(at_run_rate)) == said
    assert set(run.evaluate(clips / "new.csv")) >= {"wer", "cer", "exact_match", "loss"}

    exported = runtime.load(run.path / "export")
    assert pd.DataFrame(exported.predict_table(str(clips / "new")))["transcript"].tolist() == said
    for backend in ("torch", "onnx"):
        with TestClient(create_app([f"m={run.path}"], backend=backend)) as client:
            answered = client.post("/v1/models/m/predict", json={"rows": [clip.tolist() for clip in at_run_rate]})
            assert answered.status_code == 200, answered.text
            assert [a["prediction"] for a in answered.json()["predictions"]] == said
            sent = client.post("/v1/models/m/predict", content=(clips / "new" / "c.flac").read_bytes(),
                               headers={"content-type": "audio/flac"})  # a sound file as the body
            assert sent.status_code == 200, sent.text
            assert sent.json()["predictions"] == [{"prediction": said[2]}]
            noise = client.post("/v1/models/m/predict", content=b"RIFF but not sound",
                                headers={"content-type": "audio/wav"})
            assert noise.status_code == 422 and "the body: not a sound file soundfile can read" in noise.text
    for backend in ("torch", "onnx"):
        out = clips / f"written-{backend}.csv"
        result = CliRunner().invoke(app, ["predict", str(run.path), str(clips / "new"), "--out", str(out),
                                          "--backend", backend, "--beam-size", "1"])
        assert result.exit_code == 0, result.output
        greedy = pd.read_csv(out, keep_default_na=False)["transcript"].tolist()
        assert greedy == run.predictor.searching(1).predict_table(clips / "new")["transcript"].tolist()


def speech_rate(clip: np.ndarray) -> np.ndarray:
    """A clip spoken at eSpeak NG's 22,050 Hz read at the run's 16 kHz, as the codec reads files."""
    from layerforge.codecs.audio import resampled

    return resampled(clip, 22050, 16000)


def test_beam_search_reads_the_frames_at_least_as_well_as_the_best_path(run):
    inputs, y = run.held_out("test")
    task = run.task
    greedy, beam = task.searching(1), task.searching(8)
    assert (greedy.search.beam_size, beam.search.beam_size) == (1, 8)
    model = run.model
    tensors = tuple(torch.as_tensor(np.asarray(part)) for part in inputs)
    y = torch.as_tensor(np.asarray(y))
    by_path = greedy.scores(greedy.answer_ids(model, tensors), y)
    by_beam = beam.scores(beam.answer_ids(model, tensors), y)
    assert by_beam["wer"] <= by_path["wer"] + 1e-9


def test_the_ctc_loss_over_padded_frames_is_the_loss_over_each_clips_own_frames():
    torch.manual_seed(0)
    inputs = Inputs(kind="frames", channels=6, length=30, variable_length=True)
    model = RecurrentFrames(inputs, 5, **RNNConfig(cell="gru", hidden_size=8, bidirectional=True).arguments())
    x, lengths = torch.randn(3, 6, 30), torch.tensor([30, 17, 9])
    targets = torch.tensor([[1, 2, 2, 3], [4, 1, 0, 0], [3, 0, 0, 0]])
    with torch.no_grad():
        logits = model(x, lengths)
        ours = losses.get("ctc", "transcription")(logits, targets)
    kept = frames_after(lengths, model.stride)
    log_probs = torch.stack([torch.nn.functional.pad(row[: int(n)].log_softmax(-1), (0, 0, 0, logits.shape[1] - int(n)))
                             for row, n in zip(logits, kept)]).transpose(0, 1)
    reference = torch.nn.functional.ctc_loss(log_probs, targets, kept, (targets != 0).sum(1), blank=0)
    assert float(ours) == pytest.approx(float(reference), rel=1e-5)
    assert torch.equal(logits[1, int(kept[1]):].argmax(-1), torch.zeros(logits.shape[1] - int(kept[1]),
                                                                         dtype=torch.long))


def test_bad_tables_and_specs_are_refused_by_name(clips, tmp_path):
    base = {"data": {"path": str(clips / "clips.csv"), "kind": "speech"}, "model": {"type": "rnn"},
            "train": {"epochs": 1, "report": False}}
    frame = pd.read_csv(clips / "clips.csv")
    frame.loc[4, "transcript"] = ""
    frame.to_csv(clips / "empty.csv", index=False)
    with pytest.raises(DataError, match=r"the transcript of row 5 is empty"):
        lf.train({**base, "data": {**base["data"], "path": str(clips / "empty.csv")}}, runs_dir=tmp_path)
    frame = pd.read_csv(clips / "clips.csv")
    frame.loc[2, "path"] = "clips/gone.wav"
    frame.to_csv(clips / "gone.csv", index=False)
    with pytest.raises(DataError, match=r"row 3: sound file not found: .*gone\.wav"):
        lf.train({**base, "data": {**base["data"], "path": str(clips / "gone.csv")}}, runs_dir=tmp_path)
    with pytest.raises(DataError, match=r"data.source: .* has no column 'file'"):
        lf.train({**base, "data": {**base["data"], "source": "file"}}, runs_dir=tmp_path)
    with pytest.raises(lf.SpecError, match="only beam_size applies"):
        lf.load_spec({**base, "data": {**base["data"], "decoding": {"length_penalty": 0.6}}})
    with pytest.raises(lf.SpecError, match="speech data supports tasks transcription"):
        lf.load_spec({**base, "task": "classification"})
    with pytest.raises(lf.SpecError, match="model.patch_size: a transcriber reads a clip's frames"):
        lf.load_spec({**base, "model": {"type": "transformer", "patch_size": 4}})
    with pytest.raises(lf.SpecError, match="a cnn cannot read speech data"):
        lf.load_spec({**base, "model": {"type": "cnn"}})


def test_a_transformer_transcriber_exports_with_any_number_of_frames(clips, tmp_path):
    spec = {"name": "said-tf", "data": {"path": str(clips / "clips.csv"), "kind": "speech",
                                        "split": {"val": 0.1, "test": 0.2}},
            "model": {"type": "transformer", "d_model": 16, "num_heads": 2, "num_layers": 1},
            "train": {"epochs": 2, "batch_size": 16, "report": False}}
    run = lf.train(spec, runs_dir=tmp_path, progress=False)
    parity = run.export() / "parity.json"
    assert parity.is_file()
    said = run.predict_table(clips / "new")["transcript"].tolist()
    assert pd.DataFrame(runtime.load(run.path / "export").predict_table(str(clips / "new")))["transcript"].tolist() \
        == said
