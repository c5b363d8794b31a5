"""Ensembles: runs combined into one run directory that predict, evaluate and report accept."""

import json
import subprocess
import sys

import numpy as np
import pytest

import layerforge as lf
from layerforge.data.prepare import load_source
from layerforge.evaluation.ensemble import build_ensemble
from layerforge.spec.load import load_spec

from ..conftest import tiny_spec


def _rows(spec, n=25):
    source = load_source(load_spec(spec).data)
    return source.payload.drop(columns=[source.target]).iloc[:n], source


def test_a_cv_ensemble_averages_its_folds_probabilities(tmp_path):
    spec = tiny_spec(epochs=4)
    cv = lf.cross_validate(spec, 3, runs_dir=tmp_path)
    ens = lf.ensemble(cv.path)
    assert ens.manifest.ensemble.made_from == "cross-validation" and len(ens.members) == 3
    assert ens.path.parent == cv.path and (ens.path / "members").is_dir()
    rows, source = _rows(spec)
    each = np.stack([member.predict_proba(rows) for member in ens.members])
    assert np.allclose(ens.predict_proba(rows), each.mean(axis=0), atol=1e-6)
    assert (ens.predict(rows) == np.asarray(ens.manifest.classes, dtype=object)[each.mean(0).argmax(1)]).all()
    table = ens.predictor.predict_table(rows)
    votes = each.argmax(axis=2)
    assert np.allclose(table["disagreement"], (votes != each.mean(0).argmax(1)).mean(axis=0))
    # scored on the test rows every fold held out, beside each member on the same rows
    test = ens.metrics["test"]
    assert test["rows"] == cv.runs[0].manifest.rows["test"] == 24
    assert ens.evaluate() == pytest.approx(test)
    for member, run in zip(ens.metrics["members"].values(), cv.runs):
        assert member["accuracy"] == pytest.approx(run.metrics["test"]["accuracy"])
    # averaging probabilities never raises the negative log-likelihood above the members' mean
    assert test["nll"] <= np.mean([m["nll"] for m in ens.metrics["members"].values()]) + 1e-9
    frame = source.payload.iloc[:40]
    assert ens.evaluate(frame)["accuracy"] == pytest.approx(
        np.mean(ens.predict(frame.drop(columns=[source.target])) == frame[source.target].to_numpy()))
    page = (ens.path / "report.html").read_text()
    assert "Members" in page and "reliability diagram" in page
    reloaded = lf.load_run(ens.path)  # a run directory like any other, checksums and all
    assert np.allclose(reloaded.predict_proba(rows), ens.predict_proba(rows))


def test_a_regression_ensemble_returns_its_spread_as_uncertainty(tmp_path):
    spec = {"name": "diab", "data": {"dataset": "diabetes"}, "model": {"layers": [8]}, "train": {"epochs": 3}}
    ens = lf.ensemble(spec, seeds=2, runs_dir=tmp_path)
    assert ens.manifest.ensemble.made_from == "seeds"
    first, second = (json.loads((m.path / "split.json").read_text())["parts"] for m in ens.members)
    assert first == second  # one split: the members differ only in initialisation
    rows, _ = _rows(spec)
    each = np.stack([member.predict(rows) for member in ens.members])
    assert np.allclose(ens.predict(rows), each.mean(axis=0), rtol=1e-5)
    table = ens.predictor.predict_table(rows)
    assert np.allclose(table["uncertainty"], each.std(axis=0), rtol=1e-4, atol=1e-6)
    assert ens.metrics["test"]["rows"] == ens.members[0].manifest.rows["test"]


def test_ensembles_refuse_what_they_cannot_combine(tmp_path):
    iris = lf.train(tiny_spec(epochs=1), runs_dir=tmp_path)
    diabetes = lf.train({"data": {"dataset": "diabetes"}, "model": {"layers": [4]}, "train": {"epochs": 1}},
                        runs_dir=tmp_path)
    with pytest.raises(lf.DataError, match="at least two runs"):
        lf.ensemble([iris.path])
    with pytest.raises(lf.DataError, match="task .* differs"):
        lf.ensemble([iris.path, diabetes.path], runs_dir=tmp_path)
    other = lf.train(tiny_spec(epochs=1), runs_dir=tmp_path, overrides=["seed=3"])
    ens = lf.ensemble([iris.path, other.path], runs_dir=tmp_path)  # different splits: few shared test rows
    with pytest.raises(lf.DataError, match="is itself an ensemble"):
        lf.ensemble([ens.path, iris.path], runs_dir=tmp_path)
    with pytest.raises(lf.DataError, match="not offered by ensembles"):
        ens.embed(_rows(tiny_spec())[0])
    assert not list(tmp_path.glob(".*.tmp"))


def test_the_command_builds_from_runs_and_predicts(tmp_path):
    runs = [lf.train(tiny_spec(epochs=2), runs_dir=tmp_path / "runs", overrides=[f"seed={s}",
                                                                                 "data.split.seed=0"])
            for s in (1, 2)]
    done = subprocess.run([sys.executable, "-m", "layerforge", "ensemble", *(str(r.path) for r in runs), "-q",
                           "--runs-dir", str(tmp_path / "ens")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    path = done.stdout.strip().splitlines()[-1]
    rows, _ = _rows(tiny_spec(), 5)
    rows.to_csv(tmp_path / "rows.csv", index=False)
    predicted = subprocess.run([sys.executable, "-m", "layerforge", "predict", path, str(tmp_path / "rows.csv")],
                               capture_output=True, text=True, timeout=300)
    assert predicted.returncode == 0, predicted.stderr
    header = predicted.stdout.splitlines()[0]
    assert "proba_setosa" in header and "disagreement" in header and len(predicted.stdout.splitlines()) == 6


@pytest.mark.parametrize("spec", [tiny_spec(epochs=3), {"name": "diab", "data": {"dataset": "diabetes"},
                                                        "model": {"layers": [8]}, "train": {"epochs": 3}}],
                         ids=["classification", "regression"])
def test_an_ensemble_exports_and_serves_what_it_predicts(spec, tmp_path):
    """Each member exported with its own codec and graph; the runtime and the service (either
    backend) combine them as the ensemble's task does, and the export proved it on the run's own
    raw rows."""
    from fastapi.testclient import TestClient

    from layerforge import runtime
    from layerforge.serving import create_app

    ens = lf.ensemble(spec, seeds=2, runs_dir=tmp_path)
    folder = ens.export()
    proof = json.loads((folder / "parity.json").read_text())
    assert proof["pipeline"]["identical"] and proof["pipeline"]["rows"] > 0
    assert sorted(proof["members"]) == sorted(ens.manifest.ensemble.members)
    rows, _ = _rows(spec, 30)
    ours = ens.predictor.predict_table(rows)
    exported = runtime.load(folder)
    theirs = exported.predict_table(rows)
    assert list(theirs) == list(ours.columns)  # the members' spread too: disagreement or uncertainty
    for column in ours.columns:
        if ours[column].dtype.kind == "f":
            np.testing.assert_allclose(theirs[column], ours[column], rtol=1e-4, atol=1e-5)
        else:
            assert list(theirs[column]) == list(ours[column])
    records = json.loads(rows.to_json(orient="records"))
    for backend in ("torch", "onnx"):
        with TestClient(create_app([f"e={ens.path}"], backend=backend)) as client:
            answered = client.post("/v1/models/e/predict", json={"rows": records})
            assert answered.status_code == 200, answered.text
            found = [a["prediction"] for a in answered.json()["predictions"]]
            if ours[ours.columns[0]].dtype.kind == "f":
                np.testing.assert_allclose(found, ours[ours.columns[0]], rtol=1e-4)
            else:
                assert found == list(ours[ours.columns[0]])
            info = client.get("/v1/models/e").json()["versions"]
            assert (info["graph_sha256"] is None) == (backend == "torch")


def test_the_same_model_twice_is_not_an_ensemble(tmp_path):
    import shutil

    run = lf.train({"data": {"dataset": "iris"}, "model": {"layers": [4]}, "train": {"epochs": 1}}, runs_dir=tmp_path)
    with pytest.raises(lf.DataError, match="is given twice: an ensemble combines different models"):
        build_ensemble([run.path, run.path], runs_dir=tmp_path / "ens")
    shutil.copytree(run.path, tmp_path / "copy")
    with pytest.raises(lf.DataError, match="hold the same weights"):
        build_ensemble([run.path, tmp_path / "copy"], runs_dir=tmp_path / "ens")
    assert not (tmp_path / "ens").exists()
