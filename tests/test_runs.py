import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml

import layerforge as lf
from layerforge import CheckpointError, DataError


@pytest.fixture
def csv_run(mixed_csv, runs_dir):
    spec = {"name": "mixed", "data": {"path": str(mixed_csv), "target": "label"},
            "model": {"layers": [16]}, "train": {"epochs": 30, "optimizer": {"name": "adam", "lr": 0.02}}}
    return lf.train(spec, runs_dir=runs_dir)


def test_run_directory_contract(csv_run):
    names = {p.name for p in csv_run.path.iterdir()}
    assert names == {"spec.yaml", "model.safetensors", "model.json", "split.json", "heldout.safetensors", "history.jsonl",
                     "metrics.json", "checkpoints", "diagnosis.json", "doctor.jsonl", "report.html", ".lock"}
    assert [p.name for p in (csv_run.path / "checkpoints").iterdir()] == ["epoch-000030"]  # the last one only
    assert {p.name for p in (csv_run.path / "checkpoints" / "epoch-000030").iterdir()} == {
        "last.safetensors", "trainer_state.json"}
    assert csv_run.path.name.startswith("mixed-") and len(csv_run.path.name) == len("mixed-20261123-101500")
    spec = yaml.safe_load((csv_run.path / "spec.yaml").read_text())
    assert spec["task"] == "classification" and spec["train"]["optimizer"]["lr"] == 0.02
    metrics = json.loads((csv_run.path / "metrics.json").read_text())
    assert set(metrics["val"]) == set(metrics["test"]) == {"loss", "accuracy", "f1_macro", "roc_auc", "nll", "ece", "brier"}
    history = [json.loads(line) for line in (csv_run.path / "history.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in history] == list(range(1, 31))
    meta = json.loads((csv_run.path / "model.json").read_text())
    assert meta["classes"] == ["big", "small"] and meta["features"] == ["size", "color", "flag"]
    assert metrics["test"]["accuracy"] > 0.8


def test_a_fresh_process_predicts_the_same_from_the_run_directory_alone(csv_run, mixed_frame, tmp_path):
    rows = mixed_frame.drop(columns=["label"]).head(20)
    path = tmp_path / "rows.csv"
    rows.to_csv(path, index=False)
    here = csv_run.predict_proba(rows)
    code = (
        "import sys, json, layerforge as lf\n"
        f"run = lf.load_run({str(csv_run.path)!r})\n"
        f"print(json.dumps([run.predict({str(path)!r}).tolist(), run.predict_proba({str(path)!r}).tolist()]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path)
    labels, probabilities = json.loads(out.stdout)
    np.testing.assert_array_equal(np.asarray(probabilities, dtype=np.float32), here)
    assert labels == csv_run.predict(rows).tolist()
    assert set(labels) <= {"big", "small"}
    np.testing.assert_allclose(here.sum(axis=1), 1, rtol=1e-5)


def test_prediction_input_errors(csv_run, mixed_frame):
    rows = mixed_frame.drop(columns=["label"]).head(5)
    with pytest.raises(DataError, match="missing column: flag"):
        csv_run.predict(rows.drop(columns=["flag"]))
    with pytest.raises(DataError, match="unexpected column: id"):
        csv_run.predict(rows.assign(id=range(5)))
    assert len(csv_run.predict(rows.assign(id=range(5)), ignore_extra=True)) == 5
    odd = rows.assign(color=["red", "mauve", "blue", "red", "green"])
    with pytest.raises(DataError, match="column 'color': unseen category 'mauve' in row 2"):
        csv_run.predict(odd)
    assert len(csv_run.predict(odd, unknown="bucket")) == 5
    with pytest.raises(DataError, match="expected rows of 3 values"):
        csv_run.predict(np.zeros((2, 5)))
    with pytest.raises(DataError, match="predict_proba is for classification"):
        lf.train({"data": {"dataset": "diabetes"}, "train": {"epochs": 1}},
                 runs_dir=csv_run.path.parent).predict_proba(np.zeros((1, 10)))


def test_evaluate_on_own_test_split_and_on_a_file(csv_run, mixed_frame, tmp_path):
    own = csv_run.evaluate()
    assert own["accuracy"] == pytest.approx(csv_run.metrics["test"]["accuracy"])
    path = tmp_path / "all.csv"
    mixed_frame.to_csv(path, index=False)
    scores = csv_run.evaluate(path)
    assert scores["rows"] == len(mixed_frame) and scores["accuracy"] > 0.8
    with pytest.raises(DataError, match="needs the target column 'label'"):
        csv_run.evaluate(mixed_frame.drop(columns=["label"]))
    odd = mixed_frame.assign(label=["big"] * 119 + ["huge"])
    with pytest.raises(DataError, match=r"'huge' in row 120 is not one of the classes"):
        csv_run.evaluate(odd)


def test_loading_damaged_or_incomplete_runs(csv_run, tmp_path):
    with pytest.raises(CheckpointError, match="run directory not found"):
        lf.load_run(tmp_path / "nope")
    (csv_run.path / "model.safetensors").write_bytes(b"\x00" * 10)
    with pytest.raises(CheckpointError, match="not a valid safetensors file"):
        _ = lf.load_run(csv_run.path).model
    (csv_run.path / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="the run did not finish; continue it with"):
        _ = lf.load_run(csv_run.path).model


def test_a_failed_run_leaves_earlier_runs_untouched(csv_run, runs_dir):
    before = {p.name: p.read_bytes() for p in csv_run.path.rglob("*") if p.is_file()}
    with pytest.raises(lf.SpecError):
        lf.train({"data": {"dataset": "iris"}, "model": {"layers": [0]}}, runs_dir=runs_dir)
    bad = pd.DataFrame({"a": [1, 2], "label": ["x", None]})
    path = runs_dir.parent / "bad.csv"
    bad.to_csv(path, index=False)
    with pytest.raises(DataError):
        lf.train({"data": {"path": str(path), "target": "label"}}, runs_dir=runs_dir)
    after = {p.name: p.read_bytes() for p in csv_run.path.rglob("*") if p.is_file()}
    assert before == after
    assert [p.name for p in runs_dir.iterdir()] == [csv_run.path.name]


def test_list_runs(csv_run, runs_dir):
    from layerforge.run.store import list_runs

    rows = list_runs(runs_dir)
    assert [r["run"] for r in rows] == [csv_run.path.name]
    assert rows[0]["status"] == "complete" and rows[0]["epochs"] == 30


def test_rows_in_memory_train_predict_and_resume(tmp_path):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=300), "c": rng.choice(["a", "b"], 300)},
                         index=[f"r{i}" for i in range(300)])
    frame["y"] = np.where(frame["x"] + (frame["c"] == "a") > 0.5, "yes", "no")
    run = lf.train({"data": {"target": "y"}, "train": {"epochs": 10}}, data=frame, runs_dir=tmp_path)
    assert run.metrics["test"]["accuracy"] > 0.9 and run.spec.data.frame == "DataFrame (300 rows, 3 columns)"
    assert list(run.predictor.predict_table(frame.drop(columns=["y"]).head(3)).index) == ["r0", "r1", "r2"]
    assert lf.load_run(run.path).evaluate()["accuracy"] == run.metrics["test"]["accuracy"]  # kept held-out rows

    x = rng.normal(size=(200, 3))
    arrays = lf.train({"train": {"epochs": 10}}, data=(x, (x[:, 0] > 0).astype(int)), runs_dir=tmp_path)
    assert arrays.task.classes == [0, 1] and arrays.manifest.features == ["x0", "x1", "x2"]
    assert arrays.metrics["test"]["accuracy"] > 0.85
    with pytest.raises(lf.SpecError, match="rows given in memory \\(data=\\) take the place of both"):
        lf.train({"data": {"dataset": "iris"}}, data=frame, runs_dir=tmp_path)
    with pytest.raises(lf.DataError, match="data=: expected a DataFrame or arrays \\(X, y\\), got list"):
        lf.train({"data": {"target": "y"}}, data=[1, 2, 3], runs_dir=tmp_path)

    class Stop(lf.Callback):
        def on_epoch_end(self, trainer, record):
            if record["epoch"] == 2:
                raise KeyboardInterrupt

    with pytest.raises(lf.TrainingInterrupted) as stopped:
        lf.train({"data": {"target": "y"}, "train": {"epochs": 4}}, data=frame, runs_dir=tmp_path / "stopped",
                 callbacks=[Stop()])
    with pytest.raises(lf.DataError, match="this run's rows were given in memory .* pass them again"):
        lf.train(resume=stopped.value.run_dir)
    with pytest.raises(lf.DataError, match="the source data changed since this run was trained"):
        lf.train(resume=stopped.value.run_dir, data=frame.head(200))
    resumed = lf.train(resume=stopped.value.run_dir, data=frame)
    whole = lf.train({"data": {"target": "y"}, "train": {"epochs": 4}}, data=frame, runs_dir=tmp_path / "whole")
    assert resumed.history[-1]["train_loss"] == pytest.approx(whole.history[-1]["train_loss"], rel=1e-6)
