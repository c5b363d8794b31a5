"""Sequence, forecast and text data: preparation, training end to end, prediction from the run."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

import layerforge as lf
from layerforge import DataError
from layerforge.data.kinds.forecast import forecast_metrics, seasonal_naive
from layerforge.data.kinds.sequence import fit_scaling, pad, scale
from layerforge.data.kinds.text import Tokenizer
from layerforge.data.prepare import prepare


@pytest.fixture
def waves(tmp_path):
    """Two classes of noisy sine waves with unequal lengths, as .npz with an official test split."""
    rng = np.random.default_rng(0)

    def make(n):
        series, labels = [], []
        for i in range(n):
            label = i % 2
            length = int(rng.integers(20, 40))
            t = np.arange(length)
            series.append(np.sin(t * (0.3 if label else 0.9)) + rng.normal(0, 0.1, length))
            labels.append(["slow", "fast"][label])
        return series, labels

    train, labels = make(120)
    test, test_labels = make(40)
    x, lengths = pad([s[None, :] for s in train])
    x_test, lengths_test = pad([s[None, :] for s in test])
    path = tmp_path / "waves.npz"
    np.savez(path, x=x, y=np.array(labels), x_test=x_test, y_test=np.array(test_labels))
    return path, (x_test, lengths_test, np.array(test_labels))


def test_pad_and_scaler_ignore_padding():
    x, lengths = pad([np.ones((2, 3)), np.full((2, 5), 3.0)])
    assert x.shape == (2, 2, 5) and lengths.tolist() == [3, 5]
    mean, std = fit_scaling(x, lengths)
    assert mean == pytest.approx([2.25, 2.25])  # 3 ones and 5 threes, padding not counted
    scaled = scale(x, mean, std, lengths)
    assert (scaled[0, :, 3:] == 0).all()
    assert pad([np.ones((1, 4)), np.ones((1, 4))])[1] is None


def test_sequence_run_end_to_end(waves, runs_dir, tmp_path):
    path, (x_test, lengths_test, labels) = waves
    spec = {"name": "waves", "data": {"path": str(path), "split": {"val": 0.2}},
            "model": {"type": "cnn", "channels": [16, 16], "kernel_size": 5, "pool": "none", "head": []},
            "train": {"epochs": 15, "batch_size": 16, "optimizer": {"name": "adam", "lr": 0.01}}}
    run = lf.train(spec, runs_dir=runs_dir)
    assert run.meta["inputs"] == {"kind": "sequence", "channels": 1, "length": 39, "variable_length": True}
    assert run.meta["rows"] == {"train": 96, "val": 24, "test": 40}
    assert run.metrics["test"]["accuracy"] >= 0.9
    new = tmp_path / "new.npz"
    np.savez(new, x=x_test, lengths=lengths_test, y=labels)
    code = (f"import layerforge as lf, json\nrun = lf.load_run({str(run.path)!r})\n"
            f"print(json.dumps([run.predict({str(new)!r}).tolist(), run.evaluate({str(new)!r})['accuracy']]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    predicted, accuracy = json.loads(out.stdout)
    assert accuracy == pytest.approx(run.metrics["test"]["accuracy"])
    assert np.mean(np.array(predicted) == labels) == pytest.approx(accuracy)
    with pytest.raises(DataError, match="expected 1 channel"):
        run.predict(np.zeros((2, 3, 39), dtype=np.float32))


def test_sequence_family_errors(waves, tmp_path):
    bad = tmp_path / "bad.npz"
    np.savez(bad, a=np.zeros(3))
    with pytest.raises(DataError, match="needs arrays 'x' and 'y'"):
        prepare(lf.load_spec({"data": {"path": str(bad)}, "model": {"type": "cnn"}}).data, None, 0)


def test_builtin_ucr_set_uses_its_official_split():
    spec = lf.load_spec({"data": {"dataset": "gunpoint", "split": {"val": 0.2}}, "model": {"type": "cnn"}})
    prepared = prepare(spec.data, None, 0)
    assert prepared.rows("test") == 150 and prepared.rows("train") + prepared.rows("val") == 50
    assert prepared.classes == [1, 2] and prepared.inputs_info["length"] == 150


def test_seasonal_naive_and_forecast_metrics():
    values = np.arange(1.0, 31.0)
    naive = seasonal_naive(values, [24], 8, 4)  # repeats steps 21..24 twice
    assert naive.tolist() == [[21, 22, 23, 24, 21, 22, 23, 24]]
    scores = forecast_metrics(np.array([[100.0, 200.0]]), np.array([[110.0, 180.0]]))
    assert scores == pytest.approx({"mae": 15.0, "rmse": np.sqrt((100 + 400) / 2), "mape": 0.1})


def test_forecast_windows_are_chronological(tmp_path, runs_dir):
    t = np.arange(200)
    frame = pd.DataFrame({"month": t, "load": 50 + 0.5 * t + 10 * np.sin(2 * np.pi * t / 12)})
    path = tmp_path / "load.csv"
    frame.to_csv(path, index=False)
    spec = {"data": {"path": str(path), "kind": "forecast", "target": "load", "lookback": 24, "horizon": 6,
                     "season": 12, "test_size": 24, "split": {"val": 0.1}},
            "model": {"type": "mlp", "layers": []},
            "train": {"epochs": 400, "batch_size": "full", "optimizer": {"name": "adam", "lr": 0.02}}}
    prepared = prepare(lf.load_spec(spec).data, None, 0)
    (x_train,), y_train = prepared.splits["train"]
    (x_test,), y_test = prepared.splits["test"]
    assert x_train.shape[1:] == (1, 24) and y_train.shape[1] == 6
    assert y_test.shape == (1, 24)  # one recursive forecast of every held-out step
    scaling = prepared.preprocessing
    assert scaling["mean"][0] == pytest.approx(frame["load"][:158].mean())  # training steps only
    run = lf.train(spec, runs_dir=runs_dir)
    test = run.metrics["test"]
    assert test["mape"] < 0.02 and test["mape"] < test["seasonal_naive_mape"]
    assert run.evaluate()["mape"] == pytest.approx(test["mape"])  # same recursive forecast from the run dir
    (future,) = run.predict(path)  # one history (the file's series): its steps 200..205
    t_next = np.arange(200, 206)
    np.testing.assert_allclose(future, 50 + 0.5 * t_next + 10 * np.sin(2 * np.pi * t_next / 12), rtol=0.03)
    with pytest.raises(DataError, match="a forecast needs the last 24 steps"):
        run.predict(np.ones(10))
    with pytest.raises(lf.SpecError):
        lf.load_spec({**spec, "data": {**spec["data"], "horizon": 0}})


def test_tokenizers_round_trip():
    texts = ["the cat sat", "the dog sat down", "a cat"]
    char = Tokenizer.fit(texts, "char", 100)
    assert char.decode(char.encode("the cat")) == "the cat"
    assert char.encode("z")[0] == 1  # unknown
    word = Tokenizer.fit(texts, "word", 100)
    assert word.decode(word.encode("the cat sat")) == "the cat sat"
    assert Tokenizer.from_json(word.to_json()).encode("dog sat") == word.encode("dog sat")
    bpe = Tokenizer.fit(texts * 20, "bpe", 60)
    assert bpe.decode(bpe.encode("the cat sat")) == "the cat sat"
    assert Tokenizer.from_json(json.loads(json.dumps(bpe.to_json()))).encode("the dog") == bpe.encode("the dog")


def test_text_classification_end_to_end(tmp_path, runs_dir):
    rng = np.random.default_rng(0)
    good = ["great", "lovely", "excellent", "fine", "superb"]
    bad = ["awful", "poor", "terrible", "bad", "dreadful"]
    rows = [{"review": f"the film was {rng.choice(good if i % 2 else bad)} and {rng.choice(['long', 'short'])}",
             "sentiment": "pos" if i % 2 else "neg"} for i in range(200)]
    path = tmp_path / "reviews.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    spec = {"data": {"path": str(path), "text": "review", "target": "sentiment",
                     "tokenizer": {"kind": "word", "max_length": 12}},
            "model": {"type": "rnn", "cell": "lstm", "hidden_size": 16, "embedding_size": 16, "pooling": "max"},
            "train": {"epochs": 15, "batch_size": 16, "optimizer": {"name": "adam", "lr": 0.01}}}
    run = lf.train(spec, runs_dir=runs_dir)
    assert run.metrics["test"]["accuracy"] == 1.0
    assert run.meta["inputs"]["kind"] == "tokens" and "film" in run.meta["preprocessing"]["vocab"]
    new = pd.DataFrame({"review": ["the film was superb", "the film was dreadful and long"]})
    assert run.predict(new).tolist() == ["pos", "neg"]


def test_language_model_trains_and_generates(tmp_path, runs_dir):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("abcabcabd " * 400)
    spec = {"data": {"path": str(corpus), "context": 16, "split": {"val": 0.1, "test": 0.1}},
            "model": {"type": "transformer", "causal": True, "d_model": 32, "num_heads": 2, "num_layers": 1},
            "train": {"epochs": 10, "batch_size": 16, "optimizer": {"name": "adam", "lr": 0.01}}}
    run = lf.train(spec, runs_dir=runs_dir)
    assert run.meta["task"] == "language_model"
    assert run.metrics["test"]["bits_per_token"] < 0.6  # the pattern is nearly deterministic
    text = run.generate("abca", length=20, temperature=0.5, seed=1)
    assert text.startswith("abca") and len(text) == 24
    assert "bcabcab" in text
    assert run.generate("abca", length=20, temperature=0.5, seed=1) == text
    with pytest.raises(DataError, match="temperature must be > 0"):
        run.generate("a", temperature=0)


def test_image_folder_end_to_end(tmp_path, runs_dir):
    from PIL import Image

    rng = np.random.default_rng(0)
    root = tmp_path / "shapes"
    for label in ("bar", "dot"):
        (root / label).mkdir(parents=True)
        for i in range(30):
            canvas = rng.integers(0, 40, (12, 12)).astype(np.uint8)
            if label == "bar":
                canvas[:, 5:7] = 255
            else:
                canvas[5:7, 5:7] = 255
            Image.fromarray(canvas).resize((16, 16)).save(root / label / f"{i}.png")
    spec = {"data": {"path": str(root), "image_size": [12, 12], "split": {"val": 0.2, "test": 0.2},
                     "augment": {"noise": 0.05, "cutout": 2}},
            "model": {"type": "cnn", "channels": [8, 8], "head": []},
            "train": {"epochs": 15, "batch_size": 8, "optimizer": {"name": "adam", "lr": 0.01}}}
    run = lf.train(spec, runs_dir=runs_dir)
    assert run.meta["inputs"] == {"kind": "image", "channels": 1, "height": 12, "width": 12}
    assert run.metrics["test"]["accuracy"] == 1.0
    assert run.predict(root / "bar" / "3.png").tolist() == ["bar"]
    assert run.evaluate(root)["accuracy"] >= 0.95
    with pytest.raises(DataError, match=r"expected images of shape \(1, 12, 12\)"):
        run.predict(np.zeros((2, 3, 12, 12), dtype=np.float32))
    # predictions for image files say which file each is for, on both backends
    table = run.predictor.predict_table(root)
    assert list(table.columns[:2]) == ["file", "label"] and table["file"][0] == "bar/0.png" and len(table) == 60
    assert list(table["file"][:3]) == ["bar/0.png", "bar/1.png", "bar/10.png"]
    assert run.predictor.predict_table(root / "dot" / "7.png")["file"].tolist() == ["7.png"]
    assert run.predictor.predict_table(root / "dot")["file"].tolist()[:2] == ["0.png", "1.png"]
    from layerforge import runtime

    exported = runtime.load(run.export())
    assert list(exported.predict_table(root)["file"]) == table["file"].tolist()
    assert list(exported.predict_table(root)["label"]) == table["label"].tolist()
    with pytest.raises(DataError, match=r"pixels go up to 255, but this run was trained on pixels in \[0, 1\]"):
        run.predict(np.full((1, 12, 12), 255, dtype=np.uint8))


def test_augmentation_keeps_shapes_and_changes_values():
    from layerforge.data.augment import Augment

    torch.manual_seed(0)
    images = torch.randn(6, 3, 10, 10)
    out = Augment(flip=True, shift=2, rotate=15, noise=0.1, scale=0.1, cutout=3)(images)
    assert out.shape == images.shape and not torch.equal(out, images)
    series = torch.randn(6, 2, 30)
    shifted = Augment(shift=3)(series)
    assert shifted.shape == series.shape
    cut = Augment(cutout=5)(torch.ones(4, 1, 20))
    assert (cut == 0).sum(dim=(1, 2)).tolist() == [5, 5, 5, 5]


def test_spec_augment_zeroes_whole_bands_of_frames_and_frequencies():
    from layerforge.data.augment import Augment

    torch.manual_seed(0)
    spectrograms = torch.ones(200, 1, 40, 98)  # (clips, 1, mel bands, frames)
    masked = Augment(time_mask=10, freq_mask=8)(spectrograms)
    frames_gone = (masked == 0).all(dim=2).sum(dim=(1, 2))  # frames zeroed in every band
    bands_gone = (masked == 0).all(dim=3).sum(dim=(1, 2))
    assert frames_gone.max() == 10 and frames_gone.min() == 0 and 3 < frames_gone.float().mean() < 7
    assert bands_gone.max() == 8 and bands_gone.min() == 0
    zeroed = (masked == 0).sum(dim=(1, 2, 3))
    assert (zeroed == frames_gone * 40 + bands_gone * 98 - frames_gone * bands_gone).all()  # bands, nothing else


def test_sequences_from_wide_and_long_tables(tmp_path):
    rng = np.random.default_rng(0)
    wide = pd.DataFrame(rng.normal(size=(10, 6)), columns=[f"t{i}" for i in range(6)])
    wide["kind"] = ["a", "b"] * 5
    wide.to_csv(tmp_path / "wide.csv", index=False)
    spec = lf.load_spec({"data": {"path": str(tmp_path / "wide.csv"), "kind": "sequence", "target": "kind",
                                  "split": {"val": 0.2, "test": 0.2}}, "model": {"type": "cnn"}})
    prepared = prepare(spec.data, None, 0)
    assert prepared.inputs_info == {"kind": "sequence", "channels": 1, "length": 6, "variable_length": False}

    rows = [{"id": s, "step": t, "x": float(t), "y": float(-t), "kind": "ab"[s % 2]}
            for s in range(8) for t in range(3 + s)]
    long = pd.DataFrame(rows).sample(frac=1, random_state=0)  # order must come from 'step'
    long.to_csv(tmp_path / "long.csv", index=False)
    spec = lf.load_spec({"data": {"path": str(tmp_path / "long.csv"), "kind": "sequence", "target": "kind",
                                  "id": "id", "time": "step", "split": {"val": 0.25, "test": 0.25}},
                         "model": {"type": "rnn"}})
    prepared = prepare(spec.data, None, 0)
    assert prepared.inputs_info == {"kind": "sequence", "channels": 2, "length": 10, "variable_length": True}
    (x, lengths), _ = prepared.splits["train"]
    assert x.shape[1:] == (2, 10) and set(lengths.tolist()) <= set(range(3, 11))
    bad = pd.DataFrame(rows).assign(kind=lambda f: np.where(f["step"] == 1, "a", "b"))
    bad.to_csv(tmp_path / "bad.csv", index=False)
    spec = lf.load_spec({"data": {"path": str(tmp_path / "bad.csv"), "kind": "sequence", "target": "kind",
                                  "id": "id", "time": "step"}, "model": {"type": "rnn"}})
    with pytest.raises(DataError, match=r"series '0' \(data.id\) has more than one label"):
        prepare(spec.data, None, 0)


@pytest.mark.parametrize(("name", "channels", "variable"), [("japanese_vowels", 12, True), ("basic_motions", 6, False)])
def test_multivariate_builtins_train_end_to_end(name, channels, variable, runs_dir):
    spec = {"data": {"dataset": name, "split": {"val": 0.2}},
            "model": {"type": "rnn", "cell": "gru", "hidden_size": 32, "pooling": "mean"},
            "train": {"epochs": 8, "batch_size": 16, "optimizer": {"name": "adam", "lr": 0.01}}}
    run = lf.train(spec, runs_dir=runs_dir)
    assert run.meta["inputs"]["channels"] == channels and run.meta["inputs"]["variable_length"] is variable
    chance = 1 / len(run.meta["classes"])
    assert run.metrics["test"]["accuracy"] > 2 * chance


def test_numbers_refuse_what_32_bits_cannot_hold_and_copy_nothing_they_need_not():
    from layerforge.data.arrays import numbers

    images = np.zeros((4, 3, 3), dtype=np.float32)
    assert numbers(images, "x", "a.npz") is images  # float32 and finite: read as it is
    assert numbers(np.arange(6).reshape(2, 3), "x", "a.npz").dtype == np.float32
    with pytest.raises(lf.DataError, match=r"a.npz: 'x' holds values too large for 32-bit numbers \(up to 1e\+39\)"):
        numbers(np.array([[1.0, 1e39]]), "x", "a.npz")
    bad = np.zeros((5, 2))
    bad[2, 1], bad[4, 0] = np.nan, np.inf
    with pytest.raises(lf.DataError, match=r"'x' holds a missing \(NaN\) value in row 3 \(2 in all\)"):
        numbers(bad, "x", "a.npz")
