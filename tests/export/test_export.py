"""Export: every family on the data kinds it reads, exported, reloaded in ONNX Runtime, with
parity proven and decoded predictions identical; the torch-free runtime gives the predictions
of the PyTorch path."""

import json
import subprocess
import sys

import numpy as np
import onnx
import pandas as pd
import pytest

import layerforge as lf
from layerforge.codecs import tables
from layerforge.data.kinds.sequence import pad
from layerforge.errors import ExportError
from layerforge.runtime import RuntimeDataError, load


def _export(spec, runs_dir, **options):
    run = lf.train(spec, runs_dir=runs_dir)
    folder = run.export(**options)
    return run, folder, json.loads((folder / "parity.json").read_text())


def _proven(folder, record, graphs=("model",)):
    """Each graph: a single self-contained file that ONNX Runtime loads, within tolerance."""
    import onnxruntime as ort

    assert set(record["graphs"]) == set(graphs)
    assert not [p.name for p in folder.iterdir() if p.name.endswith(".data")]
    for entry in record["graphs"].values():
        path = folder / entry["file"]
        model = onnx.load(str(path), load_external_data=False)
        assert all(t.data_location != onnx.TensorProto.EXTERNAL for t in model.graph.initializer)
        ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        assert entry["max_rel_diff"] <= entry["tolerance"] == 1e-4
        assert len(entry["shapes"]) >= 3 and {s[0] for s in entry["shapes"]} >= {1, 7}
    if "model" in graphs and "decoded" in record["graphs"]["model"]:
        decoded = record["graphs"]["model"]["decoded"]
        assert decoded["identical"] and decoded["differing"] == 0 and decoded["rows"] > 0


@pytest.fixture
def waves(tmp_path):
    """Two classes of noisy sine waves of unequal lengths (a long-format CSV: one row per step),
    and new series to predict (.npz with lengths)."""
    rng = np.random.default_rng(0)

    def make(n):
        series, labels = [], []
        for i in range(n):
            length = int(rng.integers(12, 30))
            t = np.arange(length)
            series.append(np.sin(t * (0.3 if i % 2 else 0.9))[None, :] + rng.normal(0, 0.1, (1, length)))
            labels.append(["fast", "slow"][i % 2])
        return series, np.array(labels)

    train, labels = make(100)
    steps = [{"id": i, "time": t, "value": float(v), "label": label}
             for i, (s, label) in enumerate(zip(train, labels)) for t, v in enumerate(s[0])]
    path = tmp_path / "waves.csv"
    pd.DataFrame(steps).to_csv(path, index=False)
    new, new_labels = make(30)
    x_new, lengths = pad(new, max(s.shape[-1] for s in train))
    new_path = tmp_path / "new.npz"
    np.savez(new_path, x=x_new, lengths=lengths, y=new_labels)
    return path, new_path


@pytest.fixture
def reviews(tmp_path):
    rng = np.random.default_rng(0)
    good, bad = ["great", "lovely", "superb"], ["awful", "poor", "dreadful"]
    rows = [{"review": " ".join(["the film was", rng.choice(good if i % 2 else bad)] + ["and long"] * int(i % 3)),
             "sentiment": "pos" if i % 2 else "neg"} for i in range(160)]
    path = tmp_path / "reviews.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def _same_predictions(run, folder, data, **runtime):
    """The runtime's prediction table equals the PyTorch path's."""
    ours = run.predictor.predict_table(data)
    theirs = pd.DataFrame(load(folder, **runtime).predict_table(data))
    assert list(theirs.columns) == list(ours.columns)
    for column in ours.columns:
        if ours[column].dtype.kind == "f":
            np.testing.assert_allclose(theirs[column], ours[column], rtol=1e-4, atol=1e-5)
        else:
            assert theirs[column].tolist() == ours[column].tolist()
    return ours


def test_mlp_on_a_table_with_categories_missing_values_and_booleans(mixed_csv, runs_dir, tmp_path, monkeypatch):
    spec = {"data": {"path": str(mixed_csv), "target": "label"}, "model": {"type": "mlp", "layers": [16]},
            "train": {"epochs": 20, "batch_size": 16}}
    run, folder, record = _export(spec, runs_dir, quantize="int8")
    _proven(folder, record)
    assert record["graphs"]["model"]["exporter"] == "torchscript"
    assert record["metrics"]["onnx"]["accuracy"] == pytest.approx(record["metrics"]["pytorch"]["accuracy"])
    int8 = record["int8"]
    assert int8["plan"]["dynamic"] == ["Gemm"] and int8["plan"]["static_qdq"] == []
    assert int8["kept"] == (folder / "model.int8.onnx").exists()
    if not int8["kept"]:
        assert int8["why"]
    whole = _same_predictions(run, folder, mixed_csv)  # read as CSV text by the runtime, by pandas in layerforge
    # a file larger than memory: a block of rows at a time, the same predictions, rows named as in the file
    cells = 4 * len(pd.read_csv(mixed_csv, nrows=1).columns)
    blocks = [block.rows for block in tables.csv_blocks(mixed_csv, cells)]
    assert sum(blocks) == len(whole) and max(blocks) == 4 and len(blocks) == -(-len(whole) // 4)
    monkeypatch.setattr(tables, "BLOCK_CELLS", cells)
    pieces = [pd.DataFrame(table) for table in load(folder).predict_pieces(mixed_csv)]
    assert len(pieces) == len(blocks)
    pd.testing.assert_frame_equal(pd.concat(pieces, ignore_index=True), pd.DataFrame(load(folder).predict_table(mixed_csv)))
    damaged = pd.read_csv(mixed_csv)
    damaged.loc[37, "color"] = "purple"
    damaged.to_csv(tmp_path / "damaged.csv", index=False)
    with pytest.raises(RuntimeDataError, match=r"unseen category 'purple' in row 38 \(line 39 of damaged.csv\)"):
        list(load(folder).predict_pieces(tmp_path / "damaged.csv"))
    frame = pd.read_csv(mixed_csv).drop(columns="label").head(20)
    rows = frame.to_dict("records")  # Python values (NaN, None, booleans) as given through the API
    assert load(folder).predict(rows).tolist() == run.predict(frame).tolist()
    new = tmp_path / "new.csv"
    pd.DataFrame({"size": [10.0, 1e12], "color": ["red", "blue"], "flag": [True, False]}).to_csv(new, index=False)
    with pytest.raises(RuntimeDataError, match=r"column 'size': 1e\+12 in row 2 \(line 3 of .*too far"):
        load(folder).predict(new)
    pd.DataFrame({"size": [10.0], "color": ["purple"], "flag": [True]}).to_csv(new, index=False)
    with pytest.raises(RuntimeDataError, match=r"column 'color': unseen category 'purple' in row 1 \(line 2 of"):
        load(folder).predict(new)
    assert len(load(folder).predict(new, unknown="bucket")) == 1


def test_regression_values_decode_on_the_targets_scale(runs_dir):
    spec = {"data": {"dataset": "diabetes"}, "model": {"type": "mlp", "layers": [32]}, "train": {"epochs": 5}}
    run, folder, record = _export(spec, runs_dir)
    _proven(folder, record)
    assert record["metrics"]["onnx"]["r2"] == pytest.approx(record["metrics"]["pytorch"]["r2"], abs=1e-5)
    assert load(folder).decoding.kind == "values"


def test_cnn_on_images(runs_dir, tmp_path):
    spec = {"data": {"dataset": "digits_images"}, "model": {"type": "cnn", "channels": [8, 16]},
            "train": {"epochs": 2}}
    run, folder, record = _export(spec, runs_dir)
    _proven(folder, record)
    from sklearn.datasets import load_digits

    digits = load_digits()
    new = tmp_path / "new.npz"
    np.savez(new, x=(digits.images[:40] / 16.0).astype(np.float32), y=digits.target[:40])  # as trained: [0, 1]
    _same_predictions(run, folder, new)


@pytest.mark.parametrize("model", [
    {"type": "cnn", "channels": [8, 8], "kernel_size": 5, "pool": "none", "head": []},
    {"type": "rnn", "cell": "gru", "hidden_size": 12, "bidirectional": True, "pooling": "last"},
    {"type": "rnn", "cell": "lstm", "hidden_size": 8, "num_layers": 2, "pooling": "mean"},
    {"type": "transformer", "d_model": 16, "num_heads": 2, "num_layers": 1},
], ids=["cnn-1d", "gru-bidirectional", "lstm-2-layers", "transformer"])
def test_sequences_of_unequal_lengths(model, waves, runs_dir):
    path, new = waves
    spec = {"data": {"path": str(path), "kind": "sequence", "target": "label", "id": "id", "time": "time",
                     "split": {"val": 0.2}}, "model": model,
            "train": {"epochs": 3, "batch_size": 16}}
    run, folder, record = _export(spec, runs_dir)
    _proven(folder, record)
    entry = record["graphs"]["model"]
    assert entry["dynamic"]["x"] == {"0": "batch", "2": "steps"} and entry["inputs"] == ["x", "lengths"]
    assert len({s[2] for s in entry["shapes"]}) > 1  # several lengths proven
    _same_predictions(run, folder, new)


@pytest.mark.parametrize("model", [
    {"type": "rnn", "cell": "lstm", "hidden_size": 8, "embedding_size": 8, "bidirectional": True, "pooling": "max"},
    {"type": "transformer", "d_model": 16, "num_heads": 2, "num_layers": 1, "pooling": "cls"},
], ids=["lstm", "transformer"])
def test_text_classifiers(model, reviews, runs_dir):
    spec = {"data": {"path": str(reviews), "text": "review", "target": "sentiment",
                     "tokenizer": {"kind": "word", "max_length": 12}},
            "model": model, "train": {"epochs": 3, "batch_size": 16}}
    run, folder, record = _export(spec, runs_dir)
    _proven(folder, record)
    assert record["graphs"]["model"]["exporter"] == ("dynamo" if model["type"] == "transformer" else "torchscript")
    _same_predictions(run, folder, reviews)


def test_vision_transformer_and_language_model(runs_dir, tmp_path):
    spec = {"data": {"dataset": "digits_images"},
            "model": {"type": "transformer", "patch_size": 4, "d_model": 16, "num_heads": 2, "num_layers": 1},
            "train": {"epochs": 1}}
    _, folder, record = _export(spec, runs_dir)
    _proven(folder, record)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("abcabcabd " * 200)
    spec = {"data": {"path": str(corpus), "context": 16, "split": {"val": 0.1, "test": 0.1}},
            "model": {"type": "transformer", "causal": True, "d_model": 16, "num_heads": 2, "num_layers": 1},
            "train": {"epochs": 1, "batch_size": 16}}
    _, folder, record = _export(spec, runs_dir)
    _proven(folder, record)
    entry = record["graphs"]["model"]
    assert entry["decoded"]["what"] == "next tokens"
    assert sorted({s[1] for s in entry["shapes"]}) == [1, 8, 16]  # prompts of several lengths


def test_autoencoder_exports_its_halves_and_scores_anomalies(runs_dir, tmp_path):
    spec = {"data": {"dataset": "digits", "anomaly_classes": [9]},
            "model": {"type": "autoencoder", "variant": "variational", "layers": [32], "latent_size": 4},
            "train": {"epochs": 3}}
    run, folder, record = _export(spec, runs_dir)
    _proven(folder, record, graphs=("model", "encoder", "decoder"))
    assert record["graphs"]["decoder"]["reads"] == "codes"
    from layerforge.data import builtin

    rows = builtin.load("digits").drop(columns="label").head(50)
    rows.to_csv(tmp_path / "rows.csv", index=False)
    table = _same_predictions(run, folder, tmp_path / "rows.csv")
    assert list(table.columns) == ["anomaly_score", "anomaly"]
    np.testing.assert_allclose(load(folder).embed(tmp_path / "rows.csv"), run.embed(rows), rtol=1e-4, atol=1e-5)
    samples = load(folder).sample(5, seed=1)
    assert samples.shape == (5, 64) and np.isfinite(samples).all()


def test_conditional_gan_exports_its_generator(runs_dir):
    spec = {"data": {"dataset": "digits"},
            "model": {"type": "gan", "conditional": True, "latent_size": 8, "generator": [32], "discriminator": [32]},
            "train": {"epochs": 1}}
    _, folder, record = _export(spec, runs_dir)
    _proven(folder, record, graphs=("generator",))
    assert record["graphs"]["generator"]["inputs"] == ["codes", "labels"]
    rows = load(folder).sample(20, label_index=3)
    assert rows.shape == (20, 64)


def test_forecasts_export_and_the_runtime_continues_histories(runs_dir, tmp_path):
    t = np.arange(120)
    path = tmp_path / "load.csv"
    pd.DataFrame({"month": t, "load": 50 + 0.5 * t + 10 * np.sin(2 * np.pi * t / 12)}).to_csv(path, index=False)
    spec = {"data": {"path": str(path), "kind": "forecast", "target": "load", "lookback": 24, "horizon": 6,
                     "season": 12, "test_size": 12, "split": {"val": 0.1}},
            "model": {"type": "mlp", "layers": [8]}, "train": {"epochs": 3}}
    run, folder, record = _export(spec, runs_dir)
    _proven(folder, record)
    runtime = load(folder)
    (expected,) = run.predict(path)  # one history: the next 6 steps after the file's last 24
    np.testing.assert_allclose(runtime.predict(str(path))[0], expected, rtol=1e-4)
    history = pd.read_csv(path)["load"].to_numpy()
    answers = runtime.answers([history, history[:-6]])
    np.testing.assert_allclose(answers[0]["prediction"], expected, rtol=1e-4)
    assert len(answers[1]["prediction"]) == 6 and answers[1]["prediction"] != answers[0]["prediction"]
    with pytest.raises(RuntimeDataError, match=r"history 1: a forecast needs the last 24 steps of 1 series \(load\)"):
        runtime.predict([history[:10]])


def test_a_failed_export_names_the_layers_and_keeps_the_earlier_export(reviews, runs_dir, monkeypatch):
    from layerforge.models.transformer import Transformer

    spec = {"data": {"path": str(reviews), "text": "review", "target": "sentiment",
                     "tokenizer": {"kind": "word", "max_length": 12}},
            "model": {"type": "transformer", "d_model": 16, "num_heads": 2, "num_layers": 1},
            "train": {"epochs": 1, "batch_size": 16}}
    run, folder, _ = _export(spec, runs_dir)
    before = (folder / "model.onnx").read_bytes()
    # the TorchScript exporter fixes attention's reshapes to the example's length: parity catches it
    monkeypatch.setattr(Transformer, "exporters", ("torchscript",))
    with pytest.raises(ExportError, match=r"the model graph \(layers: .*MultiheadAttention.*\) cannot be exported "
                                          r"faithfully: torchscript: "):
        run.export()
    assert (folder / "model.onnx").read_bytes() == before
    assert [p.name for p in run.path.iterdir() if p.name.startswith(".export")] == []


def test_command_line_export_and_onnx_backend(runs_dir, tmp_path):
    run = lf.train({"data": {"dataset": "iris"}, "model": {"layers": [8]}, "train": {"epochs": 3}},
                   runs_dir=runs_dir)
    from layerforge.data import builtin

    rows = tmp_path / "rows.csv"
    builtin.load("iris").head(30).to_csv(rows, index=False)
    cli = [sys.executable, "-m", "layerforge"]
    missing = subprocess.run([*cli, "predict", str(run.path), str(rows), "--backend", "onnx"], capture_output=True,
                             text=True)
    assert missing.returncode == 2 and "has no export for --backend onnx: write one with `layerforge export" in missing.stderr
    done = subprocess.run([*cli, "export", str(run.path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(run.path / "export") and "decoded predictions identical" in done.stderr
    page = (run.path / "report.html").read_text()
    assert '<section id="export">' in page and "model.onnx" in page and "p99 ms" in page
    assert lf.load_run(run.path).evaluate()["rows"] == run.manifest.rows["test"]  # the run's seals still hold
    outputs = {}
    for backend in ("torch", "onnx"):
        out = tmp_path / f"{backend}.csv"
        result = subprocess.run([*cli, "predict", str(run.path), str(rows), "--backend", backend, "--out", str(out)],
                                capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        outputs[backend] = pd.read_csv(out)
    assert outputs["onnx"]["species"].tolist() == outputs["torch"]["species"].tolist()
    np.testing.assert_allclose(outputs["onnx"].iloc[:, 1:], outputs["torch"].iloc[:, 1:], atol=1e-5)
    code = (f"import sys; from layerforge.runtime import load; load({str(run.path / 'export')!r}).predict("
            f"{str(rows)!r}); print('torch' in sys.modules, 'pandas' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.split() == ["False", "False"]


@pytest.mark.slow
def test_int8_keeps_the_default_digits_mlp_small_and_accurate(runs_dir):
    run = lf.train(None, runs_dir=runs_dir)
    folder = run.export(quantize="int8")
    int8 = json.loads((folder / "parity.json").read_text())["int8"]
    assert int8["kept"], int8.get("why")
    assert int8["size_ratio"] <= 0.31 and int8["drop"]["value"] <= 1.0
    assert load(folder, int8=True).predict_proba(np.zeros((3, 64))).shape == (3, 10)


def test_int8_is_slower_only_when_every_round_says_so_by_more_than_noise():
    from layerforge.export.quantize import is_slower

    def rounds(*p50s):
        return [{"1": {"p50_ms": value}} for value in p50s]

    floats = rounds(0.0087, 0.0087, 0.0090, 0.0085, 0.0088)
    assert not is_slower(floats, rounds(0.0108, 0.0110, 0.0105, 0.0109, 0.0108), "1")  # 2 us a call: noise
    assert is_slower(rounds(0.20, 0.21, 0.19, 0.20, 0.20), rounds(0.30, 0.31, 0.29, 0.30, 0.30), "1")
    assert not is_slower(rounds(0.20, 0.21, 0.19, 0.20, 0.20), rounds(0.30, 0.31, 0.20, 0.30, 0.30), "1")


def test_keep_int8_keeps_a_smaller_accurate_model_that_is_slower(runs_dir, monkeypatch):
    from layerforge.export import quantize

    monkeypatch.setattr(quantize, "is_slower", lambda *args: True)  # a machine where int8 loses every round
    run = lf.train({"data": {"dataset": "digits"}, "model": {"layers": [64]}, "train": {"epochs": 3}},
                   runs_dir=runs_dir)
    refused = json.loads((run.export(quantize="int8") / "parity.json").read_text())["int8"]
    assert not refused["kept"] and "slower than the float model in every round" in refused["why"]
    assert "--keep-int8 keeps it for its size" in refused["why"]
    kept = json.loads((run.export(quantize="int8", keep_int8=True) / "parity.json").read_text())["int8"]
    assert kept["kept"] and kept["kept_for"].startswith("its size (--keep-int8)")
    assert load(run.path / "export", int8=True).predict_proba(np.zeros((2, 64))).shape == (2, 10)
