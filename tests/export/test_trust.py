"""Exports that can be trusted: runtime.json seals its own content and records the SHA-256 of
every graph and of the run's files it was made from. An edited runtime.json, a replaced graph or
an export older than a change to its run is refused with one error naming the file, through the
runtime, the command line and the service; the service reports the digest of the graph it serves
and does not start with a model that fails its warm-up."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

import layerforge as lf
from layerforge import runtime
from layerforge.cli import app
from layerforge.errors import CheckpointError
from layerforge.export import current
from layerforge.files import sha256_file
from layerforge.run.manifest import read_manifest
from layerforge.run.store import answer_state
from layerforge.serving import create_app, load_models


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A binary classifier of a table with a group column, exported."""
    folder = tmp_path_factory.mktemp("trust")
    rng = np.random.default_rng(0)
    n = 600
    group = rng.choice(["a", "b"], n)
    x = rng.normal(size=n)
    outcome = np.where(rng.random(n) < 1 / (1 + np.exp(-(2 * x + np.where(group == "a", 0.8, -0.8)))), "yes", "no")
    frame = pd.DataFrame({"x": x, "z": rng.normal(size=n), "group": group, "outcome": outcome})
    frame.to_csv(folder / "rows.csv", index=False)
    run = lf.train({"data": {"path": str(folder / "rows.csv"), "target": "outcome"}, "model": {"layers": [8]},
                    "train": {"epochs": 5, "report": False}}, runs_dir=folder / "runs", progress=False)
    run.export()
    frame.drop(columns="outcome").head(300).to_csv(folder / "new.csv", index=False)
    return run, folder


def _copy(run, tmp_path):
    shutil.copytree(run.path, tmp_path / "run")
    return tmp_path / "run"


def _predict_onnx(path, rows):
    return CliRunner().invoke(app, ["predict", str(path), str(rows), "--backend", "onnx"])


def test_runtime_json_records_the_graphs_and_the_run_it_was_made_from(exported):
    run, _ = exported
    record = json.loads((run.path / "export" / "runtime.json").read_text())
    assert record["format"] == "layerforge.export/2" and len(record["content_sha256"]) == 64
    assert record["graphs"]["model"]["sha256"] == sha256_file(run.path / "export" / "model.onnx")
    assert record["made_from"] == answer_state(run.path)
    assert record["made_from"]["model.safetensors"] == sha256_file(run.path / "model.safetensors")
    assert "content_sha256" in json.loads((run.path / "export" / "parity.json").read_text())


def test_an_edited_runtime_json_is_refused(exported, tmp_path):
    run, folder = exported
    path = _copy(run, tmp_path)
    record = json.loads((path / "export" / "runtime.json").read_text())
    record["decoding"]["temperature"] = -1  # would flip every class
    (path / "export" / "runtime.json").write_text(json.dumps(record))
    with pytest.raises(CheckpointError, match=r"runtime.json was changed or damaged after it was written"):
        runtime.load(path / "export")
    result = _predict_onnx(path, folder / "new.csv")
    assert result.exit_code == 2 and "runtime.json was changed or damaged" in result.output
    record.pop("content_sha256")
    (path / "export" / "runtime.json").write_text(json.dumps(record))  # no seal at all: refused too
    with pytest.raises(CheckpointError, match="export the run again"):
        runtime.load(path / "export")


def test_a_replaced_graph_is_refused(exported, tmp_path):
    run, folder = exported
    path = _copy(run, tmp_path)
    other = _copy(run, tmp_path / "other")
    lf.load_run(other).export(out=other / "again")  # the same network: a file with other bytes is enough
    model = path / "export" / "model.onnx"
    model.write_bytes(model.read_bytes()[:-1] + bytes([model.read_bytes()[-1] ^ 1]))
    with pytest.raises(CheckpointError, match=r"model.onnx does not match its SHA-256 in runtime.json"):
        runtime.load(path / "export")
    result = _predict_onnx(path, folder / "new.csv")
    assert result.exit_code == 2 and "model.onnx does not match its SHA-256" in result.output
    with pytest.raises(CheckpointError, match="model.onnx does not match its SHA-256"):
        load_models([str(path)], backend="onnx")


def test_an_export_older_than_a_change_to_its_run_is_refused(exported, tmp_path):
    """Fairness thresholds set in the run after the export (as layerforge did before mitigation
    made new versions) change its decisions: its export would answer otherwise, so every door
    that reads it through the run refuses it."""
    run, folder = exported
    path = _copy(run, tmp_path)
    version = lf.mitigate_fairness(lf.load_run(path), "group", "demographic_parity", positive="yes").version_dir
    current(path)  # mitigation made a new version: the run and its export are unchanged
    decided = read_manifest(path / "model.json").model_copy(
        update={"decision": read_manifest(version / "model.json").decision})
    decided.write(path / "model.json")  # the thresholds set in place
    words = "this export was made from an earlier state of"
    with pytest.raises(CheckpointError, match=words):
        current(path)
    result = _predict_onnx(path, folder / "new.csv")
    assert result.exit_code == 2 and words in " ".join(result.output.split()) and "layerforge export" in result.output
    with pytest.raises(CheckpointError, match=words):
        load_models([str(path)], backend="onnx")
    lf.load_run(path).export()  # exported again: the thresholds go with it
    assert list(current(path).predict(folder / "new.csv")) == list(lf.load_run(path).predict(folder / "new.csv"))


def test_the_service_reports_the_digest_of_the_graph_it_serves(exported):
    run, _ = exported
    with TestClient(create_app([f"m={run.path}"], backend="onnx")) as client:
        versions = client.get("/v1/models/m").json()["versions"]
    assert versions["graph_sha256"] == sha256_file(run.path / "export" / "model.onnx")
    with TestClient(create_app([f"m={run.path}"])) as client:
        versions = client.get("/v1/models/m").json()["versions"]
    assert versions["graph_sha256"] is None and versions["weights_sha256"] == sha256_file(
        run.path / "model.safetensors")


def test_a_model_that_fails_its_warm_up_stops_the_start(exported, monkeypatch):
    from layerforge.serving import served

    run, _ = exported

    def broken(self, inputs):
        raise RuntimeError("the kernel is missing")

    monkeypatch.setattr(served.TorchBackend, "forward", broken)
    with pytest.raises(CheckpointError, match=r"the model failed its warm-up on the torch backend \(the kernel is "
                                              r"missing\); the service was not started"):
        load_models([str(run.path)])
    result = CliRunner().invoke(app, ["serve", str(run.path), "--port", "0"])
    assert result.exit_code == 2 and "failed its warm-up" in result.output


def test_evaluate_runs_on_the_export_with_the_same_codec_and_decoding(exported, tmp_path):
    """``evaluate --backend onnx`` scores the exported graph on the run's own test rows or a file,
    as parity.json measured it, and refuses an export that no longer answers for the run."""
    run, folder = exported
    parity = json.loads((run.path / "export" / "parity.json").read_text())["metrics"]
    own = run.evaluate(backend="onnx")
    assert own["rows"] == parity["rows"]
    for name, value in parity["onnx"].items():
        assert own[name] == pytest.approx(value, rel=1e-6, abs=1e-9)
    torch_scores = run.evaluate()
    assert own["accuracy"] == torch_scores["accuracy"] and own["loss"] == pytest.approx(torch_scores["loss"], rel=1e-4)
    rows = pd.read_csv(folder / "rows.csv").tail(200)
    rows.to_csv(tmp_path / "scored.csv", index=False)
    on_file = run.evaluate(tmp_path / "scored.csv", backend="onnx")
    assert on_file["rows"] == 200 and on_file["accuracy"] == run.evaluate(tmp_path / "scored.csv")["accuracy"]
    result = CliRunner().invoke(app, ["evaluate", str(run.path), "--backend", "onnx"])
    assert result.exit_code == 0 and "through its ONNX export" in result.output
    with pytest.raises(lf.DataError, match="--int8 needs --backend onnx"):
        run.evaluate(int8=True)

    path = _copy(run, tmp_path)
    retrained = read_manifest(path / "model.json")
    retrained.model_copy(update={"temperature": 2.0}).write(path / "model.json")  # the run changed after its export
    result = CliRunner().invoke(app, ["evaluate", str(path), "--backend", "onnx"])
    assert result.exit_code == 2 and "this export was made from an earlier state" in " ".join(result.output.split())
