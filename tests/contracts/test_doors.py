"""One inference path behind every door: for every data kind and the tasks it serves, the same raw
rows give the same decoded answers (or the same error, in the same words) through the torch
Predictor, ``layerforge predict`` on either backend, the torch-free runtime (ONNX float, and int8
where the export kept it) and the HTTP service on either backend.

Hostile rows go through every door too: a byte-order mark, blank lines, a duplicated header,
true/false and ``1_000`` or Arabic-Indic digits in number columns, leading-zero category codes,
float32 categories, nulls, and rows that fall on either side of a block boundary."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

import layerforge as lf
from layerforge import runtime
from layerforge.cli import app
from layerforge.codecs import tables
from layerforge.errors import DataError
from layerforge.serving import create_app

PROBABILITY = 1e-4  # ONNX Runtime against PyTorch: float32 sums in another order


def _table(n: int = 240, seed: int = 0) -> pd.DataFrame:
    """Numbers (some missing), a category of leading-zero codes, a category read from float32
    values, booleans, and a class and a value to predict."""
    rng = np.random.default_rng(seed)
    size = rng.normal(10, 3, n)
    code = rng.choice(["01001", "02002", "A1"], n).astype(object)
    level = rng.choice(np.array([0.1, 0.25, 0.5], np.float32), n)
    flag = rng.random(n) > 0.5
    label = np.where(size + (code == "A1") * 4 + level * 3 > 12, "big", "small")
    value = size * 2 + flag + rng.normal(0, 0.1, n)
    size[[3 % n, 17 % n, 40 % n]] = np.nan
    code[[5 % n, 9 % n]] = None
    return pd.DataFrame({"size": size, "code": code, "level": level, "flag": flag, "label": label, "value": value})


WORDS = ["good", "fine", "poor", "broken", "fast", "slow", "the", "box", "item", "was"]


def _mixed(n: int = 240, seed: int = 0) -> pd.DataFrame:
    """A column of each type the table codec reads beyond numbers and small categories: ISO dates
    and day-first dates, free text, sets, vectors, a category of many values (an embedding), and a
    class to predict."""
    rng = np.random.default_rng(seed)
    days = rng.integers(0, 700, n)
    when = (np.datetime64("2023-01-01") + days).astype(str)
    stamp = [f"{d[8:10]}/{d[5:7]}/{d[:4]} {h:02d}:30" for d, h in zip(when, rng.integers(0, 24, n))]
    notes = [" ".join(rng.choice(WORDS, 5)) for _ in range(n)]
    tags = ["|".join(rng.choice(["gift", "sale", "bulk", "new"], rng.integers(1, 3), replace=False))
            for _ in range(n)]
    point = [f"[{a:.3f}, {b:.3f}]" for a, b in rng.normal(size=(n, 2))]
    shop = [f"shop{i}" for i in rng.integers(0, 80, n)]
    good = np.array([sum(w in ("good", "fine", "fast") for w in t.split()) for t in notes])
    label = np.where(good + (days > 350) >= 2, "keep", "return")
    frame = pd.DataFrame({"when": when, "stamp": stamp, "notes": notes, "tags": tags, "point": point, "shop": shop,
                          "amount": rng.normal(size=n), "label": label})
    frame.loc[[4 % n, 11 % n], "notes"] = None
    return frame


CASES = {
    "table-mixed": lambda root: ({"data": {"path": str(_mixed_csv(root)), "target": "label"},
                                  "model": {"type": "mlp", "layers": [16]}}, "classification"),
    "table-classification": lambda root: ({"data": {"path": str(_parquet(root)), "target": "label",
                                                    "drop": ["value"], "categorical": ["code", "level"]},
                                           "model": {"type": "mlp", "layers": [16]}}, "classification"),
    "table-regression": lambda root: ({"data": {"path": str(_parquet(root)), "target": "value", "drop": ["label"],
                                                "categorical": ["code", "level"]},
                                       "model": {"type": "mlp", "layers": [16]}}, "regression"),
    "table-reconstruction": lambda root: ({"data": {"path": str(_parquet(root)), "target": "label",
                                                    "drop": ["value"], "categorical": ["code", "level"],
                                                    "anomaly_classes": ["big"]},
                                           "model": {"type": "autoencoder", "layers": [8], "latent_size": 2}},
                                          "reconstruction"),
    "sequence-classification": lambda root: ({"data": {"path": str(_waves(root)), "split": {"val": 0.2}},
                                              "model": {"type": "cnn", "channels": [8], "kernel_size": 3}},
                                             "classification"),
    "image-classification": lambda root: ({"data": {"dataset": "digits_images"},
                                           "model": {"type": "mlp", "layers": [16]}}, "classification"),
    "image-reconstruction": lambda root: ({"data": {"dataset": "digits_images"},
                                           "model": {"type": "autoencoder", "layers": [16], "latent_size": 4}},
                                          "reconstruction"),
    "text-classification": lambda root: ({"data": {"path": str(_reviews(root)), "text": "review",
                                                   "target": "sentiment"},
                                          "model": {"type": "rnn", "cell": "gru", "hidden_size": 8,
                                                    "embedding_size": 8}}, "classification"),
    "pairs-seq2seq": lambda root: ({"data": {"path": str(_spelled(root)), "source": "words", "target": "digits",
                                             "decoding": {"beam_size": 2}},
                                    "model": {"type": "rnn", "cell": "gru", "hidden_size": 16,
                                              "embedding_size": 8}}, "seq2seq"),
    "speech-transcription": lambda root: ({"data": {"path": str(_spoken(root)), "kind": "speech",
                                                    "decoding": {"beam_size": 2}},
                                           "model": {"type": "rnn", "cell": "gru", "hidden_size": 16}},
                                          "transcription"),
    "masks-segmentation": lambda root: ({"data": {"path": str(_scenes(root))},
                                         "model": {"type": "unet", "channels": [8, 16]}}, "segmentation"),
    "boxes-detection": lambda root: ({"task": "detection",
                                      "data": {"path": str(_boxes(root)), "kind": "boxes", "decoding": {"min_score": 0.05}},
                                      "model": {"type": "centernet", "channels": [8, 16, 16], "stride": 4,
                                                "head_channels": 8}}, "detection"),
    "interactions-recommendation": lambda root: ({"data": {"path": str(_clicks(root)), "user": "user", "item": "item",
                                                           "time": "time"},
                                                  "model": {"type": "factorization", "factors": 8}},
                                                 "recommendation"),
    "forecast-forecasting": lambda root: ({"data": {"dataset": "airline", "lookback": 12, "horizon": 3,
                                                    "test_size": 12},
                                           "model": {"type": "mlp", "layers": [8]}}, "forecasting"),
}


def _mixed_csv(root):
    path = root / "mixed.csv"
    if not path.exists():
        _mixed().to_csv(path, index=False)
    return path


def _parquet(root):
    path = root / "mixed.parquet"
    if not path.exists():
        _table().to_parquet(path)
    return path


def _clicks(root):
    """Clicks of 60 users on 80 items (the built-in generator's, smaller)."""
    path = root / "clicks.csv"
    if not path.exists():
        from layerforge.data.builtin import clicks

        clicks(users=60, items=80, genres=4).to_csv(path, index=False)
    return path


def _waves(root):
    path = root / "waves.npz"
    if not path.exists():
        rng = np.random.default_rng(0)
        t = np.linspace(0, 6, 20)
        labels = rng.integers(0, 2, 120)
        x = np.sin(t[None] * (1 + labels[:, None])) + rng.normal(0, 0.1, (120, 20))
        np.savez(path, x=x.astype(np.float32), y=labels)
    return path


def _reviews(root):
    path = root / "reviews.csv"
    if not path.exists():
        rng = np.random.default_rng(0)
        good, bad = ["great", "lovely", "superb"], ["awful", "poor", "dreadful"]
        rows = [{"review": " ".join(["the film was", rng.choice(good if i % 2 else bad)]),
                 "sentiment": "pos" if i % 2 else "neg"} for i in range(120)]
        pd.DataFrame(rows).to_csv(path, index=False)
    return path


DIGIT_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def _spelled(root):
    """Text pairs: digits spelled out in words ("three one four") and the digits ("314")."""
    path = root / "spelled.csv"
    if not path.exists():
        rng = np.random.default_rng(0)
        numbers = [rng.integers(0, 10, rng.integers(1, 5)) for _ in range(300)]
        pd.DataFrame({"words": [" ".join(DIGIT_WORDS[d] for d in n) for n in numbers],
                      "digits": ["".join(map(str, n)) for n in numbers]}).to_csv(path, index=False)
    return path


def _spoken(root):
    """Clips of digits said by eSpeak NG voices (at 16 kHz) in a table with their transcripts."""
    path = root / "spoken.csv"
    if not path.exists():
        pytest.importorskip("espeakng_loader")
        import soundfile

        from layerforge.codecs.audio import resampled
        from layerforge.data import speech

        rng, rows = np.random.default_rng(0), []
        (root / "spoken").mkdir()
        for number in range(40):
            text = " ".join(DIGIT_WORDS[d] for d in rng.integers(0, 10, rng.integers(1, 4)))
            samples, rate = speech.synthesize(text, ("en-US+m3", "en-GB-x-rp+f2")[number % 2])
            soundfile.write(root / "spoken" / f"{number}.wav", resampled(samples, rate, 16000), 16000)
            rows.append({"path": f"spoken/{number}.wav", "transcript": text})
        pd.DataFrame(rows).to_csv(path, index=False)
    return path


def _scenes(root):
    """A folder of scenes: 60 pictures of shapes (images/) and their masks (masks/)."""
    path = root / "scenes"
    if not path.exists():
        from PIL import Image

        from layerforge.data.scenes import scenes

        pictures, masks = scenes(60, size=24, seed=0)
        (path / "images").mkdir(parents=True)
        (path / "masks").mkdir()
        for i, (picture, mask) in enumerate(zip(pictures, masks)):
            Image.fromarray((picture.transpose(1, 2, 0) * 255).round().astype(np.uint8)).save(path / "images" / f"{i}.png")
            Image.fromarray(mask, mode="L").save(path / "masks" / f"{i}.png")
    return path


def _boxes(root):
    """A table of boxes: 80 pictures of shapes (images/) and a row per shape's box (boxes.csv)."""
    path = root / "boxes" / "boxes.csv"
    if not path.exists():
        from PIL import Image

        from layerforge.data.scenes import SHAPES, drawn

        pictures, _, boxes = drawn(80, size=24, seed=0)
        (path.parent / "images").mkdir(parents=True)
        rows = []
        for i, (picture, found) in enumerate(zip(pictures, boxes)):
            Image.fromarray((picture.transpose(1, 2, 0) * 255).round().astype(np.uint8)).save(
                path.parent / "images" / f"{i}.png")
            rows += [{"image": f"images/{i}.png", "x_min": b[0], "y_min": b[1], "x_max": b[2], "y_max": b[3],
                      "label": SHAPES[int(b[4])]} for b in found]
        pd.DataFrame(rows).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("doors")


@pytest.fixture(scope="module")
def trained(root):
    """Each case trained briefly and exported (with int8 where it is kept)."""
    found = {}

    def get(case: str):
        if case not in found:
            spec, task = CASES[case](root)
            spec = {"name": case, **spec, "train": {"epochs": 3, "batch_size": 32, "report": False,
                                                     "doctor": False}}
            run = lf.train(spec, runs_dir=root / "runs", progress=False)
            assert run.manifest.task == task
            run.export(quantize="int8" if case.startswith("table") else None)
            found[case] = run
        return found[case]

    return get


def _rows(case: str, run, root) -> tuple:
    """(raw rows as a Python caller or a file gives them, the same rows as JSON rows)."""
    if case.startswith("table"):
        frame = _mixed(12, seed=1).drop(columns=["label"]) if case == "table-mixed" else \
            _table(12, seed=1).drop(columns=["label", "value"])
        path = root / f"{case}-rows.csv"
        frame.to_csv(path, index=False)
        rows = [{k: None if pd.isna(v) else v.item() if isinstance(v, np.generic) else v for k, v in row.items()}
                for row in frame.to_dict("records")]  # Python values, as a JSON client sends them
        return path, rows
    if case.startswith("interactions"):  # pairs of a user and an item, a number-like key among them
        frame = pd.DataFrame({"user": ["u001", "u007", "u007", "u059"], "item": ["i003", "i010", "i079", "i001"]})
        path = root / "pairs.csv"
        frame.to_csv(path, index=False)
        return path, frame.to_dict("records")
    if case.startswith("sequence"):
        x = np.load(_waves(root))["x"][:10]
        return x, x.tolist()
    if case.startswith("masks"):
        x = np.random.default_rng(1).random((4, 3, 24, 24)).astype(np.float32)
        return x, x.tolist()
    if case.startswith("boxes"):  # new scenes
        from layerforge.data.scenes import drawn

        x = drawn(4, size=24, seed=1)[0]
        return x, x.tolist()
    if case.startswith("image"):
        x = np.random.default_rng(1).random((6, 1, 8, 8)).astype(np.float32)
        return x, x.tolist()
    if case.startswith("pairs"):
        texts = ["three one four", "nine", "two two two two", "", "seven eleven"]
        path = root / "spelled-rows.csv"
        pd.DataFrame({"words": texts}).to_csv(path, index=False)
        return path, texts
    if case.startswith("speech"):
        import soundfile

        _spoken(root)
        clips = [soundfile.read(root / "spoken" / f"{number}.wav")[0] for number in (1, 2, 3)]
        longest = max(len(clip) for clip in clips)  # one length, as a V2 tensor holds them
        clips = [np.pad(clip, (0, longest - len(clip))) for clip in clips]
        return clips, [clip.tolist() for clip in clips]
    if case.startswith("text"):
        texts = ["the film was superb", "the film was poor", "", "NA"]
        path = root / "texts.csv"
        pd.DataFrame({"review": texts}).to_csv(path, index=False)
        return path, texts
    history = lf.load_run(run.path).predictor.encoder.scaler.inverse_target(np.linspace(-1, 1, 20))
    return history, [history.tolist()]


def _answers_of_table(table: pd.DataFrame, case: str) -> list:
    """The decoded answer of each row of a prediction table, as the service gives them."""
    first = table.columns[0]
    if "proba_" in " ".join(table.columns):
        return [{"prediction": row[first],
                 "probabilities": {c[len("proba_"):]: row[c] for c in table.columns if c.startswith("proba_")}}
                for _, row in table.iterrows()]
    if first == "anomaly_score":
        return [{"prediction": row["anomaly_score"], "anomaly_score": row["anomaly_score"],
                 **({"anomaly": bool(row["anomaly"])} if "anomaly" in table.columns else {})}
                for _, row in table.iterrows()]
    if case.startswith("forecast"):
        return [{"prediction": table[table.columns[-1]].tolist()}]
    return [{"prediction": value} for value in table[first].tolist()]


def _same(theirs: list, ours: list, tolerance: float) -> None:
    assert len(theirs) == len(ours)
    for a, b in zip(theirs, ours):
        assert a.keys() == b.keys()
        for key in a:
            if isinstance(a[key], list) and a[key] and isinstance(a[key][0], dict):  # a detector's boxes
                _same(a[key], b[key], tolerance)
            elif isinstance(a[key], dict):
                np.testing.assert_allclose([a[key][k] for k in sorted(a[key])], [b[key][k] for k in sorted(b[key])],
                                           rtol=tolerance, atol=tolerance)
            elif isinstance(a[key], (float, list)) and not isinstance(a[key], bool):
                np.testing.assert_allclose(a[key], b[key], rtol=tolerance, atol=tolerance)
            else:
                assert a[key] == b[key], key


def _served(run, backend: str, json_rows: list, csv: str | None = None) -> list:
    with TestClient(create_app([f"m={run.path}"], backend=backend)) as client:
        answered = client.post("/v1/models/m/predict", json={"rows": json_rows})
        assert answered.status_code == 200, answered.text
        found = answered.json()["predictions"]
        if csv is not None:
            by_csv = client.post("/v1/models/m/predict", content=csv, headers={"content-type": "text/csv"})
            assert by_csv.status_code == 200, by_csv.text
            assert by_csv.json()["predictions"] == found
        kserve = client.post("/v1/models/m:predict", json={"instances": json_rows})  # KServe V1
        assert kserve.status_code == 200, kserve.text
        assert kserve.json()["predictions"] == found
        inferred = client.post("/v2/models/m/infer", json={"inputs": _v2_inputs(json_rows)})  # Open Inference V2
        assert inferred.status_code == 200, inferred.text
        _same(_v2_answers(inferred.json()["outputs"]), found, 1e-9)
        return found


def _v2_inputs(json_rows: list) -> list[dict]:
    """V2 input tensors for rows: a tensor per column of a table, else one tensor of the rows."""
    def datatype(values):
        flat = np.asarray(values, dtype=object).reshape(-1).tolist()
        if all(isinstance(v, bool) for v in flat):
            return "BOOL"
        return "BYTES" if any(isinstance(v, str) for v in flat) else "FP64"

    if isinstance(json_rows[0], dict):
        return [{"name": name, "shape": [len(json_rows)], "datatype": datatype([r[name] for r in json_rows]),
                 "data": [r[name] for r in json_rows]} for name in json_rows[0]]
    shape = list(np.asarray(json_rows, dtype=object).shape)
    return [{"name": "input", "shape": shape, "datatype": datatype(json_rows), "data": json_rows}]


def _v2_answers(outputs: list[dict]) -> list[dict]:
    """V2 output tensors back into one answer per row."""
    rows = outputs[0]["shape"][0]
    found = [{} for _ in range(rows)]
    for tensor in outputs:
        data, parameters = tensor["data"], tensor.get("parameters") or {}
        width = len(data) // rows
        for i, answer in enumerate(found):
            values = data[i * width:(i + 1) * width]
            if "columns" in parameters:
                answer[tensor["name"]] = dict(zip(json.loads(parameters["columns"]), values))
            elif parameters.get("content") == "json":
                answer[tensor["name"]] = json.loads(values[0])
            else:
                answer[tensor["name"]] = values if len(tensor["shape"]) > 1 else values[0]
    return found


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_door_gives_the_same_answers(case, trained, root):
    run = trained(case)
    rows, json_rows = _rows(case, run, root)
    torch_table = lf.load_run(run.path).predictor.predict_table(rows)
    ours = _answers_of_table(torch_table, case)
    folder = run.path / "export"
    onnx_table = pd.DataFrame(runtime.load(folder).predict_table(rows))
    assert list(onnx_table.columns) == list(torch_table.columns)
    if case.startswith("boxes"):  # a row per box found; an answer is the picture's boxes
        pd.testing.assert_frame_equal(onnx_table, torch_table, rtol=PROBABILITY, atol=0.01, check_dtype=False)
        found = lf.load_run(run.path).predictor.predict(rows)
        assert len(found) == len(rows) and sum(len(b) for b in found) == len(torch_table) > 0
        ours = [{"prediction": [{**dict(zip(("x_min", "y_min", "x_max", "y_max"), np.round(b[:4], 2))),
                                 "label": run.task.classes[int(b[4])], "score": round(b[5], 6)} for b in boxes]}
                for boxes in found]  # corners to a hundredth of a pixel, as every door answers them
    else:
        _same(_answers_of_table(onnx_table, case), ours, PROBABILITY)
    if case.startswith("masks"):  # the table counts each class's pixels; an answer is the mask itself
        masks = lf.load_run(run.path).predictor.predict(rows)
        assert masks.shape == (len(rows), 24, 24)
        ours = [{"prediction": mask.tolist()} for mask in masks]
    _same(runtime.load(folder).answers(json_rows), ours, PROBABILITY)
    if (folder / "model.int8.onnx").exists():  # int8 is judged on accuracy, not parity: same columns
        assert list(pd.DataFrame(runtime.load(folder, int8=True).predict_table(rows)).columns) == \
            list(torch_table.columns)
    csv = rows.read_text() if case.startswith("table") else None
    _same(_served(run, "torch", json_rows, csv), ours, 1e-6)
    _same(_served(run, "onnx", json_rows, csv), ours, PROBABILITY)
    if case.startswith(("table", "text", "pairs", "interactions")):  # the command line, on either backend, the same
        for backend in ("torch", "onnx"):
            out = root / f"{case}-{backend}.csv"
            result = CliRunner().invoke(app, ["predict", str(run.path), str(rows), "--out", str(out),
                                              "--backend", backend])
            assert result.exit_code == 0, result.output
            written, first = pd.read_csv(out), torch_table.columns[0]
            assert list(written.columns) == list(torch_table.columns)
            if torch_table[first].dtype.kind == "f":
                np.testing.assert_allclose(written[first], torch_table[first], rtol=PROBABILITY, atol=PROBABILITY)
            else:
                written = pd.read_csv(out, dtype=str, keep_default_na=False)  # answers such as "007" as text
                assert written[first].tolist() == torch_table[first].astype(str).tolist()


HOSTILE = {  # the CSV text of each case and what every door answers: rows, or the words of one error
    "bom": ("\ufeffsize,code,level,flag\n12.5,01001,0.1,true\n", 1),
    "blank lines": ("\nsize,code,level,flag\n\n12.5,01001,0.1,true\n\n8,A1,0.25,false\n\n", 2),
    "crlf and quotes": ('size,code,level,flag\r\n"12.5","01001","0.1","true"\r\n', 1),
    "leading zeros alone": ("size,code,level,flag\n12.5,01001,0.1,true\n12.5,02002,0.5,false\n", 2),
    "float32 category": ("size,code,level,flag\n12.5,A1,0.25,1\n", 1),
    "nulls": ("size,code,level,flag\n,,0.1,\n", 1),
    "duplicated header": ("size,code,code,flag\n12.5,A1,A1,true\n", "the header names column 'code' twice"),
    "boolean in a number": ("size,code,level,flag\ntrue,A1,0.1,true\n", "column 'size': expected numbers, found 'true'"),
    "underscores": ("size,code,level,flag\n1_000,A1,0.1,true\n", "column 'size': expected numbers, found '1_000'"),
    "arabic-indic digits": ("size,code,level,flag\n١٢,A1,0.1,true\n", "column 'size': expected numbers, found '١٢'"),
    "no-break space": ("size,code,level,flag\n12\xa0,A1,0.1,true\n", r"column 'size': expected numbers, found '12\xa0'"),
    "yes in a flag": ("size,code,level,flag\n12,A1,0.1,yes\n", "column 'flag': expected true/false values, found 'yes'"),
    "code read as a number": ("size,code,level,flag\n12,1001,0.1,true\n", "column 'code': unseen category '1001'"),
    "short line": ("size,code,level,flag\n12,A1,0.1\n", "line 2 has 3 fields, the header 4"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_rows_get_one_answer_or_one_error_through_every_door(name, trained, root):
    run = trained("table-classification")
    text, expected = HOSTILE[name]
    path = root / f"hostile-{re.sub(r'[^a-z]+', '-', name)}.csv"
    path.write_bytes(text.encode("utf-8"))
    folder = run.path / "export"
    predictor = lf.load_run(run.path).predictor
    doors = {"torch": lambda: predictor.predict_table(path)["label"].tolist(),
             "onnx": lambda: runtime.load(folder).predict_table(path)["label"].tolist(),
             "cli torch": lambda: _cli(run, path, "torch"), "cli onnx": lambda: _cli(run, path, "onnx")}
    service = {backend: TestClient(create_app([f"m={run.path}"], backend=backend)) for backend in ("torch", "onnx")}
    for backend, client in service.items():
        doors[f"service {backend}"] = lambda client=client: _posted(client, text)
    found = {}
    for door, call in doors.items():
        try:
            found[door] = call()
        except DataError as error:
            found[door] = " ".join(str(error).split()).replace(str(path), "FILE").replace(path.name, "FILE")
    for client in service.values():
        client.close()
    if isinstance(expected, int):
        assert all(isinstance(v, list) and len(v) == expected for v in found.values()), found
        assert len({json.dumps(v) for v in found.values()}) == 1, found
    else:
        assert len(set(found.values())) == 1, found  # the same words through every door
        assert expected in next(iter(found.values()))


def _cli(run, path, backend: str) -> list:
    result = CliRunner().invoke(app, ["predict", str(run.path), str(path), "--backend", backend])
    if result.exit_code != 0:
        raise DataError(result.output.strip().removeprefix("error: "))
    lines = result.stdout.strip().splitlines()
    return [line.split(",")[0] for line in lines[1:]]


def _posted(client, text: str) -> list:
    answered = client.post("/v1/models/m/predict", content=text.encode("utf-8"), headers={"content-type": "text/csv"})
    if answered.status_code != 200:
        raise DataError(answered.json()["error"].replace("the CSV body", "FILE"))
    return [a["prediction"] for a in answered.json()["predictions"]]


def test_json_values_follow_the_csv_rules_through_every_door(trained):
    """A JSON true in a number column is refused as the CSV cell true is; a JSON number for a
    category is matched as the CSV cell of its digits; a null is a missing value."""
    run = trained("table-classification")
    folder = run.path / "export"
    predictor = lf.load_run(run.path).predictor
    row = {"size": 12.5, "code": "01001", "level": 0.1, "flag": True}
    cases = [({"size": True}, "column 'size': expected numbers, found True in row 1"),
             ({"size": "1_000"}, "column 'size': expected numbers, found '1_000' in row 1"),
             ({"flag": "yes"}, "column 'flag': expected true/false values, found 'yes' in row 1"),
             ({"flag": "on"}, "column 'flag': expected true/false values, found 'on' in row 1"),
             ({"flag": "t"}, "column 'flag': expected true/false values, found 't' in row 1"),
             ({"code": 1001}, "column 'code': unseen category '1001' in row 1")]
    with TestClient(create_app([f"m={run.path}"])) as client:
        for change, words in cases:
            rows = [{**row, **change}]
            answered = client.post("/v1/models/m/predict", json={"rows": rows})
            assert answered.status_code == 422 and answered.json()["error"].startswith(words), answered.text
            for call in (predictor.predict, runtime.load(folder).predict):
                with pytest.raises(DataError) as raised:
                    call(rows)
                assert " ".join(str(raised.value).split()) == answered.json()["error"]
        same = [{**row, "level": np.float32(0.1)}, {**row, "level": "0.1"}, {**row, "level": 0.1}, {**row, "flag": 1}]
        assert len({p for p in predictor.predict_proba(same)[:, 0].tolist()[:3]}) == 1
        missing = client.post("/v1/models/m/predict", json={"rows": [{**row, "code": None, "size": None}]})
        assert missing.status_code == 200  # training had missing values in both columns
        assert missing.json()["predictions"][0]["prediction"] == predictor.predict([{**row, "code": None,
                                                                                    "size": None}])[0]


def test_a_file_read_in_blocks_answers_each_row_as_the_whole_file_does(trained, root, monkeypatch):
    """Numeric-looking codes in the first block, text codes later: with unseen categories in a
    bucket, identical rows get identical answers in every block and through every door."""
    run = trained("table-classification")
    lines = ["size,code,level,flag"] + ["10,01001,0.1,true"] * 9 + ["10,A1,0.1,true", "10,99999,0.1,true"] * 6
    path = root / "blocks.csv"
    path.write_text("\n".join(lines) + "\n")
    monkeypatch.setattr(tables, "BLOCK_CELLS", 4 * 4)  # four rows a block
    torch_rows = pd.concat(list(lf.load_run(run.path).predictor.predict_pieces(path, unknown="bucket")))
    onnx_rows = pd.concat([pd.DataFrame(t) for t in runtime.load(run.path / "export").predict_pieces(
        path, unknown="bucket")])
    for table in (torch_rows, onnx_rows):
        chance = table["proba_big"].to_numpy()
        assert len(chance) == 21
        np.testing.assert_allclose(chance[:9], chance[0], rtol=1e-6)  # 01001 in every block alike
        np.testing.assert_allclose(chance[10::2], chance[10], rtol=1e-6)  # the unseen 99999 alike
    np.testing.assert_allclose(onnx_rows["proba_big"], torch_rows["proba_big"], rtol=PROBABILITY, atol=PROBABILITY)


MIXED_HOSTILE = {  # a cell of each typed column that is not what its type reads, and the words of the error
    "a date in another form": ("when", "March 5th", "column 'when': 'March 5th' in row 1"),
    "a vector too short": ("point", "[0.5]", "column 'point': row 1 holds 1 numbers"),
    "a vector of words": ("point", "[a, b]", "column 'point': '[a, b]' in row 1 is not a list of numbers"),
    "a time in another form": ("stamp", "5pm", "column 'stamp': '5pm' in row 1 is not a date in the form "
                                               "%d/%m/%Y %H:%M or ISO 8601"),
}


@pytest.mark.parametrize("name", sorted(MIXED_HOSTILE))
def test_a_bad_cell_of_a_typed_column_gets_one_error_through_every_door(name, trained, root):
    run = trained("table-mixed")
    column, cell, words = MIXED_HOSTILE[name]
    frame = _mixed(3, seed=2).drop(columns=["label"])
    frame[column] = frame[column].astype(object)
    frame.loc[0, column] = cell
    path = root / f"mixed-{re.sub(r'[^a-z]+', '-', name)}.csv"
    frame.to_csv(path, index=False)
    rows = [{k: None if pd.isna(v) else v for k, v in row.items()} for row in frame.to_dict("records")]
    predictor, onnx = lf.load_run(run.path).predictor, runtime.load(run.path / "export")
    found = []
    for call in (lambda: predictor.predict(rows), lambda: onnx.predict(rows)):
        with pytest.raises(DataError) as raised:
            call()
        found.append(" ".join(str(raised.value).split()))
    with TestClient(create_app([f"m={run.path}"], backend="onnx")) as client:
        answered = client.post("/v1/models/m/predict", json={"rows": rows})
        assert answered.status_code == 422
        found.append(answered.json()["error"])
    assert len(set(found)) == 1 and found[0].startswith(words), found
    assert re.split(r" (in )?row 1", words)[0] in _cli_error(run, path)  # the command line names the file's line


def _cli_error(run, path) -> str:
    result = CliRunner().invoke(app, ["predict", str(run.path), str(path)])
    assert result.exit_code != 0
    return " ".join(result.output.split())
