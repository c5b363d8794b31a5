"""MLflow tracking (train.log: [mlflow]): params, per-epoch metrics, tags, artifacts and a pyfunc
model that predicts what ``layerforge predict`` writes; folds and trials nested under their
cross-validation and study."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_iris
from typer.testing import CliRunner

import layerforge as lf
from layerforge.cli import app

mlflow = pytest.importorskip("mlflow")  # the mlflow extra (in dev, so CI has it)


@pytest.fixture
def store(tmp_path, monkeypatch):
    """A fresh working directory (the default store is ./mlruns) with no MLFLOW_TRACKING_URI."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("LAYERFORGE_MLFLOW_PARENT", raising=False)
    yield tmp_path
    mlflow.set_tracking_uri(None)


def _client(uri: str):
    mlflow.set_tracking_uri(uri)
    return mlflow.MlflowClient(uri)


def test_a_run_is_recorded_and_its_pyfunc_model_predicts_as_layerforge_predict(store):
    frame = load_iris(as_frame=True).frame.rename(columns={"target": "species"})
    frame.to_csv(store / "iris.csv", index=False)
    run = lf.train({"name": "iris-tracked", "data": {"path": "iris.csv", "target": "species"},
                    "train": {"epochs": 4, "log": ["mlflow"]}}, runs_dir="runs")
    uri = f"sqlite:///{store / 'mlruns' / 'mlflow.db'}"
    assert (store / "mlruns" / "mlflow.db").is_file()
    client = _client(uri)
    found = mlflow.search_runs(experiment_names=["iris-tracked"])
    assert len(found) == 1
    row = found.iloc[0]
    assert row["tags.mlflow.runName"] == run.path.name
    assert row["params.train.epochs"] == "4" and row["params.model.type"] == "mlp"
    assert row["params.train.optimizer.lr"] == str(run.spec.train.optimizer.lr)
    assert row["tags.layerforge.task"] == "classification" and row["tags.layerforge.version"] == lf.__version__
    assert row["tags.layerforge.data_fingerprint"] == run.manifest.split.fingerprint
    assert row["metrics.test_accuracy"] == pytest.approx(run.metrics["test"]["accuracy"])
    history = client.get_metric_history(row.run_id, "train_loss")
    assert [m.step for m in history] == [1, 2, 3, 4]
    assert [m.value for m in history] == pytest.approx([r["train_loss"] for r in run.history])
    assert [m.step for m in client.get_metric_history(row.run_id, "val_accuracy")] == [1, 2, 3, 4]
    artifacts = {a.path for a in client.list_artifacts(row.run_id)}
    assert {"report.html", "diagnosis.json", "metrics.json", "spec.yaml", "history.jsonl"} <= artifacts

    rows = frame.drop(columns=["species"]).sample(30, random_state=0)
    rows.to_csv(store / "rows.csv", index=False)
    result = CliRunner().invoke(app, ["predict", str(run.path), "rows.csv"])
    assert result.exit_code == 0, result.output
    expected = pd.read_csv(io.StringIO(result.stdout))
    model = mlflow.pyfunc.load_model(f"runs:/{row.run_id}/model")
    answered = model.predict(pd.read_csv(store / "rows.csv"))
    assert list(answered.columns) == list(expected.columns)
    assert (answered["species"].astype(str).to_numpy() == expected["species"].astype(str).to_numpy()).all()
    np.testing.assert_allclose(answered.drop(columns="species").to_numpy(), expected.drop(columns="species"),
                               rtol=1e-5)
    assert list(model.predict(rows).index) == list(rows.index)  # a DataFrame keeps its index
    with pytest.raises(lf.DataError, match="missing column: petal length"):  # the same words as predict
        model.predict(rows.drop(columns=["petal length (cm)"]))


def test_folds_and_trials_nest_under_their_run_and_the_uri_picks_the_store(store, monkeypatch):
    other = f"sqlite:///{store / 'elsewhere.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", other)
    spec = {"name": "nested", "data": {"dataset": "iris"},
            "train": {"epochs": 2, "report": False, "doctor": False, "log": ["mlflow"]}}
    lf.cross_validate(spec, 2, runs_dir="runs")
    lf.tune({**spec, "search": {"trials": 2, "space": {"train.optimizer.lr": {"log_uniform": [1e-3, 1e-2]}}}},
            runs_dir="runs")
    assert not (store / "mlruns" / "mlflow.db").exists()  # (MLflow keeps artifacts in ./mlruns for any SQLite store)
    _client(other)
    found = mlflow.search_runs(experiment_names=["nested"])
    parents = found[found["tags.layerforge.kind"].notna()]
    assert sorted(parents["tags.layerforge.kind"]) == ["cross-validation", "study"]
    for kind in ("cross-validation", "study"):
        parent = parents[parents["tags.layerforge.kind"] == kind].iloc[0]
        children = found[found["tags.mlflow.parentRunId"] == parent.run_id]
        assert len(children) == 2 and (children["status"] == "FINISHED").all()
    cv = parents[parents["tags.layerforge.kind"] == "cross-validation"].iloc[0]
    folds = found[found["tags.mlflow.parentRunId"] == cv.run_id]
    assert cv["metrics.mean_val_accuracy"] == pytest.approx(folds["metrics.final_val_accuracy"].mean())
