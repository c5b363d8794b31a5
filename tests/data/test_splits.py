"""Split plans and the split record: loading, splitting and fitting are separate steps, so fold k
of N is prepared from rows read once; split.json says which rows went where, and a run notices
when its source changed."""

import json

import numpy as np
import pytest

import layerforge as lf
from layerforge import DataError
from layerforge.data.kinds.table import TableKind
from layerforge.data.prepare import load_source, prepare
from layerforge.data.splits import Chronological, KFold, Stratified, from_ranges, to_ranges


def test_kfold_prepares_every_fold_from_rows_read_once(monkeypatch):
    loads = []
    original = TableKind.load
    monkeypatch.setattr(TableKind, "load", lambda self, *a, **k: loads.append(1) or original(self, *a, **k))
    spec = lf.load_spec({"data": {"dataset": "iris"}})
    source = load_source(spec.data)
    folds = [prepare(spec.data, None, 0, plan=KFold(5, k, seed=0, test=0.2), source=source) for k in range(5)]
    assert len(loads) == 1
    tests = [f.parts["test"] for f in folds]
    assert all(np.array_equal(tests[0], t) for t in tests) and len(tests[0]) == 30
    vals = [f.parts["val"] for f in folds]
    assert sum(len(v) for v in vals) == 120 and len(np.unique(np.concatenate(vals))) == 120
    assert not np.intersect1d(np.concatenate(vals), tests[0]).size
    for fold in folds:
        assert not np.intersect1d(fold.parts["train"], fold.parts["val"]).size
        assert sorted(np.bincount(fold.splits["val"][1]).tolist()) == [8, 8, 8]  # stratified: 8 of each species
    means = {round(f.preprocessing["columns"][0]["mean"], 6) for f in folds}
    assert len(means) == 5  # each fold's preprocessing is fitted on its own training rows
    with pytest.raises(ValueError, match="fold 5 of 5"):
        KFold(5, 5, seed=0)


def test_plans_are_seeded_and_keep_fixed_parts():
    labels = np.repeat([0, 1, 2], 20)
    a, b = Stratified(0.2, 0.2, 7).split(60, labels), Stratified(0.2, 0.2, 7).split(60, labels)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    fixed = {"test": np.arange(50, 60)}
    parts = Chronological(0.2).split(60, fixed=fixed)
    assert parts["train"].tolist() == list(range(40)) and parts["val"].tolist() == list(range(40, 50))
    assert parts["test"].tolist() == list(range(50, 60))
    rows = np.array([0, 1, 2, 5, 6, 9])
    assert to_ranges(rows) == [[0, 3], [5, 7], [9, 10]] and from_ranges(to_ranges(rows)).tolist() == rows.tolist()
    for n in (0, 1, 2, 1000):  # rows drawn at random: many short ranges, each of plain ints
        drawn = np.sort(np.random.default_rng(n).choice(max(2 * n, 1), size=n, replace=False)) if n else rows[:0]
        ranges = to_ranges(drawn)
        assert all(type(v) is int and a < b for a, b in ranges for v in (a, b))
        assert all(b < c for (_, b), (c, _) in zip(ranges, ranges[1:]))  # apart: no two could be one range
        assert from_ranges(ranges).tolist() == drawn.tolist() and from_ranges(ranges).dtype == np.int64


def _waves(path, n=200):
    rng = np.random.default_rng(0)
    t = np.arange(32)
    labels = np.array(["slow", "fast", "flat"] * (n // 3 + 1))[:n]
    x = np.stack([np.sin(t * {"slow": 0.3, "fast": 1.2, "flat": 0.0}[label]) + rng.normal(0, 0.05, 32)
                  for label in labels])
    np.savez(path, x=x.astype(np.float32), y=labels)
    return labels


def test_anomaly_classes_are_held_out_of_sequences_too(tmp_path, runs_dir):
    labels = _waves(tmp_path / "waves.npz")
    spec = {"data": {"path": str(tmp_path / "waves.npz"), "anomaly_classes": ["fast"]},
            "model": {"type": "autoencoder", "layers": [16], "latent_size": 4},
            "train": {"epochs": 30, "optimizer": {"name": "adam", "lr": 0.01}}}
    prepared = prepare(lf.load_spec(spec).data, "reconstruction", 0)
    fast = prepared.classes.index("fast")
    assert not (prepared.splits["train"][1] == fast).any() and not (prepared.splits["val"][1] == fast).any()
    assert (prepared.splits["test"][1] == fast).sum() == (labels == "fast").sum()
    test = lf.train(spec, runs_dir=runs_dir).metrics["test"]
    assert test["anomaly_rows"] == (labels == "fast").sum() and test["anomaly_roc_auc"] > 0.95


def test_the_split_record_lists_every_row_once(runs_dir):
    run = lf.train({"data": {"dataset": "wine"}, "model": {"layers": [4]}, "train": {"epochs": 1}}, runs_dir=runs_dir)
    record = json.loads((run.path / "split.json").read_text())
    parts = {name: from_ranges(ranges) for name, ranges in record["parts"].items()}
    assert sorted(np.concatenate(list(parts.values())).tolist()) == list(range(178))
    assert {name: len(rows) for name, rows in parts.items()} == run.manifest.rows
    assert record["plan"] == {"plan": "stratified", "val": 0.15, "test": 0.15, "seed": 0}
    assert record["fingerprint"] == run.manifest.split.fingerprint and len(record["fingerprint"]) == 64


def test_a_run_evaluates_its_recorded_split_and_notices_a_changed_source(mixed_frame, tmp_path, runs_dir,
                                                                        monkeypatch):
    from layerforge.run import store

    monkeypatch.setattr(store, "HELD_OUT_LIMIT", 0)  # held-out rows too large to keep: the source is read again
    path = tmp_path / "rows.csv"
    mixed_frame.to_csv(path, index=False)
    run = lf.train({"data": {"path": str(path), "target": "label", "split": {"shuffle": True}},
                    "model": {"layers": [8]}, "train": {"epochs": 5}}, runs_dir=runs_dir)
    assert run.evaluate()["accuracy"] == pytest.approx(run.metrics["test"]["accuracy"])
    rows = mixed_frame.drop(columns=["label"]).head(5)
    before = run.predict(rows).tolist()

    changed = mixed_frame.copy()
    changed.loc[0, "size"] = 99.0
    changed.to_csv(path, index=False)
    with pytest.raises(DataError, match=r"the source data changed since this run was trained: .*rows.csv"):
        lf.load_run(run.path).evaluate()
    shuffled = mixed_frame.sample(frac=1, random_state=1)  # the same rows in another order is a change too
    shuffled.to_csv(path, index=False)
    with pytest.raises(DataError, match="changed since this run was trained"):
        lf.load_run(run.path).evaluate()

    path.unlink()
    again = lf.load_run(run.path)
    with pytest.raises(DataError, match=r"the run's source data \(.*rows.csv\) is not available"):
        again.evaluate()
    assert again.predict(rows).tolist() == before  # predicting needs only the run directory
    from layerforge.report.html import build_report

    page = build_report(run.path).read_text()
    assert "no results: the run&#x27;s source data" in page and "<h2>Model</h2>" in page
