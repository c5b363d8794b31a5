"""Fairness mitigation: per-group thresholds that predict applies (post-processing), and
reweighing of the training rows (train.fairness)."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

import layerforge as lf
from layerforge.capabilities import Mitigation
from layerforge.data.batches import InMemoryBatches
from layerforge.fairness import remove_mitigation, reweighing
from layerforge.run.decisions import fit_thresholds
from layerforge.run.versions import versions_of


@pytest.fixture
def unaware(biased, tmp_path):
    """A run that does not read the group column (data.drop), trained on the biased table."""
    _, frame = biased
    path = tmp_path / "biased.csv"
    frame.to_csv(path, index=False)
    run = lf.train({"data": {"path": str(path), "target": "outcome", "drop": ["group"]}, "model": {"layers": [16]},
                    "train": {"epochs": 20, "checkpoint_every": 1000}}, runs_dir=tmp_path / "runs")
    return run, frame


def test_thresholds_give_every_group_the_same_rate_on_the_rows_they_were_fitted_on():
    rng = np.random.default_rng(0)
    groups = rng.choice(["a", "b", "c"], 900)
    probability = np.clip(rng.normal(0.5, 0.2, 900) + np.where(groups == "a", 0.2, 0.0), 0, 1)
    truth = rng.random(900) < probability
    thresholds, rate = fit_thresholds(probability, truth, groups, "demographic_parity")
    chosen = probability >= np.array([thresholds[g] for g in groups])
    for group in "abc":
        inside = groups == group
        assert chosen[inside].sum() == round(rate * inside.sum())
    thresholds, rate = fit_thresholds(probability, truth, groups, "true_positive_rate_parity")
    chosen = probability >= np.array([thresholds[g] for g in groups])
    for group in "abc":
        positives = (groups == group) & truth
        assert chosen[positives].sum() == round(rate * positives.sum())


def test_mitigation_cuts_the_parity_gap_in_a_new_version_that_predict_applies(biased, tmp_path):
    trained, frame = biased
    shutil.copytree(trained.path, tmp_path / "run")
    run = lf.load_run(tmp_path / "run")
    files_before = {p.name: p.read_bytes() for p in run.path.iterdir() if p.is_file()}
    done = lf.mitigate_fairness(run, "group", "demographic_parity", positive="approve")
    before = done.before["disparities"]["demographic_parity_difference"]["value"]
    after = done.after["disparities"]["demographic_parity_difference"]["value"]
    assert before > 0.2 and after < 0.3 * before  # the labels carry a gap of about 0.24
    assert done.after["accuracy"] > done.before["accuracy"] - 0.06  # biased labels: parity costs some accuracy
    # the run it was made from is not touched: a new version beside it holds the thresholds
    assert {p.name: p.read_bytes() for p in run.path.iterdir() if p.is_file()} == files_before
    version = done.version_dir
    assert version.parent == run.path.parent and version.name.startswith(f"{run.spec.name}-v-")
    manifest = json.loads((version / "model.json").read_text())
    assert manifest["decision"]["thresholds"] == done.thresholds and manifest["decision"]["column"] == "group"
    assert manifest["version_of"]["of"] == "run" and "demographic_parity" in manifest["version_of"]["change"]
    assert versions_of(run.path) == [version]
    assert Mitigation.read(version).thresholds == done.thresholds and Mitigation.read(run.path) is None

    reloaded = lf.load_run(version)
    rows = frame.drop(columns=["outcome"]).iloc[:400]
    chance = reloaded.predict_proba(rows)[:, reloaded.task.classes.index("approve")]
    cut = rows["group"].map(done.thresholds).to_numpy()
    expected = np.where(chance >= cut, "approve", "deny")
    decided = reloaded.predict(rows)
    assert list(decided) == list(expected)
    assert (decided != np.asarray(reloaded.task.classes, dtype=object)[reloaded.predict_proba(rows).argmax(1)]).any()
    assert list(lf.load_run(run.path).predict(rows)) == list(np.where(chance >= 0.5, "approve", "deny"))
    table = reloaded.predictor.predict_table(rows)
    assert list(table["outcome"]) == list(expected)
    scored = reloaded.evaluate(frame.iloc[:400])
    assert scored["decision_accuracy"] == pytest.approx(np.mean(expected == frame["outcome"].iloc[:400].to_numpy()))
    audited = lf.audit_fairness(reloaded, ["group"], positive="approve").columns["group"]
    assert audited["disparities"]["demographic_parity_difference"]["value"] == pytest.approx(after)

    with pytest.raises(lf.DataError, match="column 'group': group 'c' in row 2 has no decision threshold"):
        reloaded.predict(rows.iloc[:3].assign(group=["a", "c", "b"]))
    plain_path = remove_mitigation(version)
    assert lf.load_run(version).manifest.decision is not None  # the version keeps deciding as it did
    plain = lf.load_run(plain_path)
    assert plain.manifest.decision is None and not (plain_path / "fairness" / "mitigation.json").exists()
    assert list(plain.predict(rows)) == list(np.where(chance >= 0.5, "approve", "deny"))
    assert remove_mitigation(plain_path) is None


def test_a_failed_mitigation_leaves_no_version_behind(biased, tmp_path, monkeypatch):
    trained, _ = biased
    shutil.copytree(trained.path, tmp_path / "runs" / "run")

    def broken(self):
        raise OSError("the disk is full")

    monkeypatch.setattr(Mitigation, "write", broken)
    with pytest.raises(OSError, match="the disk is full"):
        lf.mitigate_fairness(tmp_path / "runs" / "run", "group", positive="approve", bootstrap=0)
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["run"]


def test_a_column_the_model_does_not_read_is_taken_out_before_encoding(unaware):
    run, frame = unaware
    done = lf.mitigate_fairness(run, "group", "true_positive_rate_parity", positive="approve", fit_on="train")
    rows = frame.drop(columns=["outcome"]).iloc[:300]
    chance = run.predict_proba(rows.drop(columns=["group"]))[:, run.task.classes.index("approve")]
    version = lf.load_run(done.version_dir)
    assert list(version.predict(rows)) == list(
        np.where(chance >= rows["group"].map(done.thresholds).to_numpy(), "approve", "deny"))
    assert np.allclose(version.predict_proba(rows.drop(columns=["group"])), version.predict_proba(rows))
    with pytest.raises(lf.DataError, match="column 'group': this run decides by per-group thresholds"):
        version.predict(rows.drop(columns=["group"]))


def test_equalized_odds_thresholds_narrow_both_error_rate_gaps(biased, tmp_path):
    trained, frame = biased
    shutil.copytree(trained.path, tmp_path / "run")
    done = lf.mitigate_fairness(tmp_path / "run", "group", "equalized_odds", positive="approve", bootstrap=0)
    before = done.before["disparities"]["equalized_odds_difference"]["value"]
    assert done.after["disparities"]["equalized_odds_difference"]["value"] < 0.5 * before
    assert done.after["accuracy"] > done.before["accuracy"] - 0.06
    run = lf.load_run(done.version_dir)
    rows = frame.drop(columns=["outcome"]).iloc[:200]
    chance = run.predict_proba(rows)[:, run.task.classes.index("approve")]
    expected = np.where(chance >= rows["group"].map(done.thresholds).to_numpy(), "approve", "deny")
    assert list(run.predict(rows)) == list(expected) and run.manifest.decision.constraint == "equalized_odds"


def test_mitigation_refuses_what_it_cannot_do(biased, tmp_path):
    run, _ = biased
    with pytest.raises(lf.DataError, match="--mitigate: 'equal_everything' is not a constraint"):
        lf.mitigate_fairness(run, "group", "equal_everything")
    with pytest.raises(lf.DataError, match="--sensitive: column 'gender' is not in"):
        lf.mitigate_fairness(run, "gender")
    with pytest.raises(lf.DataError, match="--fit-on: expected val or train"):
        lf.mitigate_fairness(run, "group", fit_on="test")
    three = lf.train({"data": {"dataset": "iris"}, "model": {"layers": [4]}, "train": {"epochs": 1}},
                     runs_dir=tmp_path)
    with pytest.raises(lf.DataError, match="per-group thresholds decide between two classes; this run does "
                                           "classification with 3 classes"):
        lf.mitigate_fairness(three, "sepal length (cm)")
    assert lf.load_run(run.path).manifest.decision is None and versions_of(run.path) == []  # nothing was written


def test_the_command_mitigates_shows_before_and_after_and_removes(biased, tmp_path):
    run, _ = biased
    copy = tmp_path / "run"
    shutil.copytree(run.path, copy)
    command = [sys.executable, "-m", "layerforge", "fairness", str(copy), "--sensitive", "group", "--positive",
               "approve"]
    done = subprocess.run([*command, "--mitigate", "demographic_parity"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    said = " ".join(done.stdout.split())
    assert "demographic parity difference" in said and "selection after" in said
    version, = versions_of(copy)
    assert f"a new version of the run decides by these thresholds: {version}" in said
    page = (version / "report.html").read_text()
    assert "Fairness mitigation" in page and "selection after" in page and "made from run" in page
    assert "Fairness mitigation" not in (copy / "report.html").read_text()
    assert lf.load_run(copy).manifest.decision is None
    command[4] = str(version)
    done = subprocess.run([*command, "--mitigate", "none"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "a new version without the per-group thresholds" in done.stdout
    assert lf.load_run(version).manifest.decision is not None
    plain, = versions_of(version)
    assert lf.load_run(plain).manifest.decision is None


def test_reweighing_makes_the_label_independent_of_the_group_and_narrows_the_gap(biased, tmp_path):
    run, frame = biased
    spec = {"data": {"path": str(tmp_path / "biased.csv"), "target": "outcome"}, "model": {"layers": [16]},
            "train": {"epochs": 20, "checkpoint_every": 1000, "fairness": {"sensitive": "group"}}}
    frame.to_csv(tmp_path / "biased.csv", index=False)
    from layerforge.data.prepare import prepare
    from layerforge.spec.load import load_spec

    prepared = prepare(load_spec(spec).data, None, 0)
    weights = reweighing(load_spec(spec).train.fairness, prepared)
    train = frame.iloc[prepared.parts["train"]]
    approve = (train["outcome"] == "approve").to_numpy()
    for group in "ab":
        inside = (train["group"] == group).to_numpy()
        assert weights[inside & approve].sum() / weights[inside].sum() == pytest.approx(approve.mean(), abs=1e-12)
    reweighed = lf.train(spec, runs_dir=tmp_path / "runs")
    plain = lf.audit_fairness(run, ["group"], positive="approve", bootstrap=0).columns["group"]
    fair = lf.audit_fairness(reweighed, ["group"], positive="approve", bootstrap=0).columns["group"]
    gap = {name: found["disparities"]["demographic_parity_difference"]["value"]
           for name, found in (("plain", plain), ("fair", fair))}
    assert gap["fair"] < 0.6 * gap["plain"]
    assert reweighed.metrics["test"]["accuracy"] > 0.7


def test_reweighing_errors_name_the_field_before_a_run_directory_exists(tmp_path, biased):
    _, frame = biased
    frame.to_csv(tmp_path / "biased.csv", index=False)
    spec = {"data": {"path": str(tmp_path / "biased.csv"), "target": "outcome"},
            "train": {"epochs": 1, "fairness": {"sensitive": "gender"}}}
    with pytest.raises(lf.SpecError, match="train.fairness.sensitive: column 'gender' is not in .*its columns: x, z"):
        lf.train(spec, runs_dir=tmp_path / "runs")
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
    with pytest.raises(lf.SpecError, match="train.fairness: reweighing balances labels across groups; this run "
                                           "does regression"):
        lf.train({"data": {"dataset": "diabetes"}, "train": {"epochs": 1, "fairness": {"sensitive": "sex"}}},
                 runs_dir=tmp_path / "runs")


def test_weighted_batches_draw_rows_in_proportion_and_repeat_with_the_generator():
    x, y = torch.arange(10.0)[:, None], torch.arange(10)
    weights = torch.tensor([0.0] * 5 + [1.0] * 4 + [4.0], dtype=torch.float64)
    drawn = []
    batches = InMemoryBatches((x,), y, 4, generator=torch.Generator().manual_seed(0), weights=weights)
    for _ in range(400):
        drawn += [int(v) for _, part in batches for v in part]
    counts = np.bincount(drawn, minlength=10)
    assert counts[:5].sum() == 0 and len(drawn) == 4000
    assert counts[9] / counts[5:9].mean() == pytest.approx(4.0, rel=0.15)
    again = InMemoryBatches((x,), y, 4, generator=torch.Generator().manual_seed(0), weights=weights)
    assert [int(v) for _, part in again for v in part] == drawn[:10]


def test_a_mitigated_run_exports_and_serves_its_decisions_through_every_door(biased, tmp_path):
    """The thresholds are a stage of the one inference path: the torch Predictor, the exported
    runtime and the service on either backend decide every row alike, and an export made before
    the mitigation is refused rather than answering without it."""
    from fastapi.testclient import TestClient

    from layerforge import runtime
    from layerforge.errors import CheckpointError
    from layerforge.export import current
    from layerforge.serving import create_app

    trained, frame = biased
    shutil.copytree(trained.path, tmp_path / "run")
    original = lf.load_run(tmp_path / "run")
    original.export()
    done = lf.mitigate_fairness(original, "group", "demographic_parity", positive="approve")
    current(original.path)  # the run it was made from is unchanged: its export still answers for it
    run = lf.load_run(done.version_dir)
    with pytest.raises(CheckpointError, match="no export"):
        current(run.path)  # the version starts without the other version's export
    folder = run.export()
    rows = frame.drop(columns=["outcome"]).iloc[:300]
    decided = list(run.predict(rows))
    argmax = np.asarray(run.task.classes, dtype=object)[run.predict_proba(rows).argmax(1)]
    assert (np.asarray(decided) != argmax).sum() > 0  # the thresholds change some decisions
    exported = runtime.load(folder)
    assert list(exported.predict(rows)) == decided
    assert list(exported.predict_table(rows)["outcome"]) == decided
    np.testing.assert_allclose(exported.predict_proba(rows), run.predict_proba(rows), rtol=1e-4, atol=1e-5)
    records = json.loads(rows.to_json(orient="records"))
    for backend in ("torch", "onnx"):
        with TestClient(create_app([f"m={run.path}"], backend=backend)) as client:
            answered = client.post("/v1/models/m/predict", json={"rows": records})
            assert answered.status_code == 200, answered.text
            assert [a["prediction"] for a in answered.json()["predictions"]] == decided
            lacking = client.post("/v1/models/m/predict", json={"rows": [{k: v for k, v in records[0].items()
                                                                          if k != "group"}]})
            assert lacking.status_code == 422 and "column 'group'" in lacking.json()["error"]
