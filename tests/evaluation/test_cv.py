"""`layerforge cv`: k folds (stratified, grouped, in time order), out-of-fold predictions, and a
summary with each metric's mean, spread and 95% interval; the test rows stay out of every fold."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import layerforge as lf
from layerforge.data.prepare import load_source
from layerforge.data.splits import ExpandingWindow, GroupedKFold, KFold, Stratified, from_ranges
from layerforge.spec.load import load_spec

from ..conftest import tiny_spec
from ..training.test_trainer import StopAfter


def _parts(run):
    record = json.loads((run.path / "split.json").read_text())
    return {name: from_ranges(ranges) for name, ranges in record["parts"].items()}


def test_folds_cover_the_training_rows_once_and_never_the_test_rows(tmp_path):
    found = lf.cross_validate(tiny_spec(epochs=3), 3, runs_dir=tmp_path)
    parts = [_parts(run) for run in found.runs]
    test = parts[0]["test"]
    plain = Stratified(0.15, 0.15, 0).split(150, np.repeat([0, 1, 2], 50))["test"]
    assert np.array_equal(test, plain)  # the rows a plain run of the spec tests on
    assert all(np.array_equal(p["test"], test) for p in parts)
    vals = np.concatenate([p["val"] for p in parts])
    assert len(vals) == len(np.unique(vals)) == 150 - len(test)
    assert not np.intersect1d(vals, test).size
    for p in parts:
        assert not np.intersect1d(p["train"], p["val"]).size
        assert len(p["train"]) + len(p["val"]) + len(test) == 150
        assert set(np.bincount(np.repeat([0, 1, 2], 50)[p["val"]]).tolist()) <= {14, 15}  # stratified
    # every training row predicted once, by the fold that did not train on it
    oof = found.oof
    assert sorted(oof["row"]) == sorted(vals) and set(oof["fold"]) == {1, 2, 3}
    labels = pd.Series(np.asarray(["setosa", "versicolor", "virginica"])[np.repeat([0, 1, 2], 50)])
    assert (oof["true"].to_numpy() == labels.to_numpy()[oof["row"].to_numpy()]).all()
    probabilities = oof[[c for c in oof if c.startswith("proba_")]].to_numpy()
    assert np.allclose(probabilities.sum(axis=1), 1, atol=1e-5)
    first = oof[oof["fold"] == 1]
    source = load_source(load_spec(tiny_spec()).data)
    raw = source.payload.drop(columns=[source.target]).iloc[first["row"].to_numpy()]
    assert np.allclose(found.runs[0].predict_proba(raw), first[[c for c in oof if c.startswith("proba_")]], atol=1e-6)
    assert np.array_equal(pd.read_csv(found.path / "oof.csv")["row"], oof["row"])
    # the summary is the folds' numbers
    accuracy = found.summary["val"]["accuracy"]
    values = [run.metrics["val"]["accuracy"] for run in found.runs]
    assert accuracy["values"] == values and accuracy["mean"] == pytest.approx(np.mean(values))
    assert accuracy["std"] == pytest.approx(np.std(values, ddof=1))
    low, high = accuracy["ci95"]
    assert low <= accuracy["mean"] <= high and high - low == pytest.approx(2 * 4.302653 * accuracy["std"] / 3 ** 0.5,
                                                                           rel=1e-4)
    saved = json.loads((found.path / "cv.json").read_text())
    assert saved["summary"]["val"]["accuracy"]["mean"] == accuracy["mean"] and saved["plan"]["plan"] == "kfold"
    page = (found.path / "cv.html").read_text()
    assert "per-fold val_loss" in page and "fold spread" in page and "95% interval" in page


def test_repeats_deal_the_folds_anew_on_the_same_test_rows(tmp_path):
    found = lf.cross_validate(tiny_spec(epochs=1), 2, repeats=2, runs_dir=tmp_path)
    parts = [_parts(run) for run in found.runs]
    assert len(found.runs) == 4 and set(found.oof["repeat"]) == {1, 2}
    assert all(np.array_equal(p["test"], parts[0]["test"]) for p in parts)
    assert not np.array_equal(parts[0]["val"], parts[2]["val"])
    assert len(found.oof) == 2 * (150 - len(parts[0]["test"]))


def test_groups_stay_together_and_are_not_a_feature(tmp_path):
    rng = np.random.default_rng(0)
    n = 120
    frame = pd.DataFrame({"x": rng.normal(size=n), "z": rng.normal(size=n),
                          "patient": rng.integers(0, 12, n).astype(str)})
    frame["y"] = np.where(frame["x"] + 0.1 * rng.normal(size=n) > 0, "a", "b")
    path = tmp_path / "grouped.csv"
    frame.to_csv(path, index=False)
    spec = {"name": "grouped", "data": {"path": str(path), "target": "y", "groups": "patient"},
            "model": {"layers": [4]}, "train": {"epochs": 2}}
    found = lf.cross_validate(spec, 3, runs_dir=tmp_path / "runs")
    patient = frame["patient"].to_numpy()
    for run in found.runs:
        parts = _parts(run)
        owners = [set(patient[parts[name]]) for name in ("train", "val", "test")]
        assert not (owners[0] & owners[1]) and not (owners[0] & owners[2]) and not (owners[1] & owners[2])
        assert run.manifest.features == ["x", "z"]
        assert run.manifest.split.plan["plan"] == "grouped_kfold" and "groups" not in run.manifest.split.plan
    spec["data"]["groups"] = "nope"
    with pytest.raises(lf.DataError, match="data.groups"):
        lf.cross_validate(spec, 3, runs_dir=tmp_path / "runs")
    spec["data"]["groups"] = "patient"
    with pytest.raises(lf.DataError, match="12 groups cannot fill 20 folds"):
        lf.cross_validate(spec, 20, runs_dir=tmp_path / "runs")


def test_grouped_plan_balances_rows_and_keeps_groups_whole():
    groups = tuple(np.repeat(list("abcdefgh"), [30, 5, 5, 10, 10, 20, 15, 5]))
    folds = [GroupedKFold(3, k, seed=1, test=0.0, groups=groups).split(100) for k in range(3)]
    vals = [set(np.asarray(groups)[f["val"]]) for f in folds]
    assert set().union(*vals) == set("abcdefgh") and sum(len(v) for v in vals) == 8
    assert max(len(f["val"]) for f in folds) - min(len(f["val"]) for f in folds) <= 10


def test_expanding_window_never_trains_on_the_future():
    folds = [ExpandingWindow(3, k, test_rows=20).split(100) for k in range(3)]
    for parts in folds:
        assert parts["train"].max() < parts["val"].min() and parts["val"].max() < 80
        assert parts["test"].tolist() == list(range(80, 100))
    assert [len(p["train"]) for p in folds] == [20, 40, 60] and [len(p["val"]) for p in folds] == [20, 20, 20]
    assert KFold(3, 0, seed=0).describe()["plan"] == "kfold"


def test_forecasting_cross_validates_in_time_order(tmp_path):
    pytest.importorskip("sktime")
    spec = {"name": "air", "data": {"dataset": "airline"}, "model": {"type": "mlp", "layers": [8]},
            "train": {"epochs": 2}}
    found = lf.cross_validate(spec, 2, runs_dir=tmp_path)
    first, second = (_parts(run) for run in found.runs)
    assert first["train"].max() < first["val"].min() and second["train"].max() < second["val"].min()
    assert len(second["train"]) > len(first["train"]) and np.array_equal(first["test"], second["test"])
    assert first["val"].max() < first["test"].min()
    assert "r2" in found.summary["val"] or "mae" in found.summary["val"]
    with pytest.raises(lf.DataError, match="in order"):
        lf.cross_validate(spec, 2, repeats=2, runs_dir=tmp_path)


def test_a_resumed_fold_trains_on_its_own_rows(tmp_path):
    spec = tiny_spec(epochs=3)
    source = load_source(load_spec(spec).data)
    plan = KFold(3, 1, seed=0, test=0.15)
    with pytest.raises(lf.TrainingInterrupted) as caught:
        lf.train(spec, runs_dir=tmp_path, plan=plan, source=source, callbacks=[StopAfter(1)])
    before = _parts_of(caught.value.run_dir)
    run = lf.train(resume=caught.value.run_dir)
    after = _parts(run)
    assert all(np.array_equal(before[k], after[k]) for k in before)
    assert run.manifest.split.plan["plan"] == "kfold"


def _parts_of(path):
    record = json.loads((path / "split.json").read_text())
    return {name: from_ranges(ranges) for name, ranges in record["parts"].items()}


def test_the_command_prints_intervals_and_how_to_ensemble(tmp_path):
    spec = tmp_path / "tiny.yaml"
    spec.write_text("name: tiny\ndata: {dataset: iris}\nmodel: {layers: [8]}\ntrain: {epochs: 2}\n")
    done = subprocess.run([sys.executable, "-m", "layerforge", "cv", str(spec), "--folds", "2", "--runs-dir",
                           str(tmp_path / "runs")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "95% interval" in done.stdout and "val accuracy" in done.stdout and "layerforge ensemble" in done.stdout


def test_intervals_stay_within_the_metrics_range_and_say_when_they_were_cut():
    from layerforge import tasks
    from layerforge.evaluation.cv import interval

    classification = tasks.get("classification")
    accuracy = interval([0.98, 1.0, 0.95, 1.0, 0.99], classification.bounds_of("accuracy"))
    assert accuracy["ci95"][1] == 1.0 and accuracy["clipped_to"] == [0.0, 1.0] and accuracy["ci95"][0] > 0.95
    loss = interval([0.001, 0.02, 0.0005, 0.04, 0.002], classification.bounds_of("loss"))
    assert loss["ci95"][0] == 0.0 and loss["clipped_to"] == [0.0, None]
    inside = interval([0.5, 0.6, 0.55], classification.bounds_of("accuracy"))
    assert "clipped_to" not in inside and inside["ci95"][0] > 0.4
    assert interval([0.98, 1.0, 0.95], tasks.get("regression").bounds_of("r2"))["ci95"][1] == 1.0
