"""Capabilities share one shape: each declares what it applies to, and returns a typed result
that writes and reads its own JSON, gives the blocks the console and the report draw, and is
found by the report through the registry."""

import json

import numpy as np
import pandas as pd
import pytest

import layerforge as lf
from layerforge.capabilities import CAPABILITIES, RECORDED, ExportParity, Mitigation
from layerforge.errors import CheckpointError
from layerforge.figures import Note, Picture, Table
from layerforge.report.html import build_report


@pytest.fixture(scope="module")
def examined(tmp_path_factory):
    """A classifier of people with every capability's record in its folder (and its version)."""
    folder = tmp_path_factory.mktemp("people")
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=400), "z": rng.normal(size=400), "group": rng.choice(["a", "b"], 400)})
    frame["y"] = np.where(frame["x"] + np.where(frame["group"] == "a", 0.5, -0.5) > 0, "yes", "no")
    frame.to_csv(folder / "people.csv", index=False)
    run = lf.train({"data": {"path": str(folder / "people.csv"), "target": "y"}, "model": {"layers": [8]},
                    "train": {"epochs": 5}}, runs_dir=folder / "runs")
    made = {"explain": lf.explain(run, rows=30).summary(), "attack": lf.attack(run, eps=[0.0, 0.5], steps=3),
            "fairness": lf.audit_fairness(run, ["group"], positive="yes", bootstrap=10)}
    run.export()
    made["export"] = ExportParity.read(run.path)
    made["mitigate"] = lf.mitigate_fairness(run, "group", positive="yes", bootstrap=10)
    return run, made


def test_every_result_reads_back_as_it_was_written_and_gives_blocks(examined):
    run, made = examined
    for name, capability in CAPABILITIES.items():
        found = made[name]
        assert isinstance(found, capability.result)
        where = found.version_dir if name == "mitigate" else run.path
        again = capability.result.read(where)
        assert again.to_json() == json.loads(json.dumps(found.to_json()))  # through JSON and back, unchanged
        blocks = again.blocks()
        assert blocks and all(isinstance(block, (Note, Table, Picture)) for block in blocks)
        assert all(len(row) == len(block.header) for block in blocks if isinstance(block, Table) for row in block.rows)
    assert made["mitigate"].version_dir != run.path and Mitigation.read(run.path) is None


def test_the_report_draws_each_record_the_run_holds_through_the_registry(examined):
    run, made = examined
    page = build_report(run.path).read_text()
    for result in RECORDED:
        held = result.read(run.path) is not None
        assert (f'<h2>{result.title}</h2>' in page) == held
    assert "Fairness mitigation" not in page  # it is the version's, not this run's
    version_page = build_report(made["mitigate"].version_dir).read_text()
    assert "<h2>Fairness mitigation</h2>" in version_page and "<h2>Export</h2>" not in version_page
    table = made["fairness"].blocks()[1]
    assert table.title == "group" and [row[0] for row in table.rows] == ["a", "b"]


def test_a_damaged_record_is_one_error_naming_its_file_and_field(examined, tmp_path):
    import shutil

    run, _ = examined
    copy = tmp_path / "run"
    shutil.copytree(run.path, copy)
    path = copy / "robustness" / "attack.json"
    record = json.loads(path.read_text())
    record["points"][0]["fgsm"] = "high"
    path.write_text(json.dumps(record))
    with pytest.raises(CheckpointError, match=r"attack.json: points.0.fgsm: Input should be a valid number"):
        CAPABILITIES["attack"].result.read(copy)
    page = build_report(copy).read_text()  # the page says so instead of failing
    assert "attack.json cannot be read" in page and "<h2>Explanations</h2>" in page


def test_each_capability_says_what_it_applies_to(examined, tmp_path):
    run, _ = examined
    assert all(capability.applies(run) is None for capability in CAPABILITIES.values())
    values = lf.train({"data": {"dataset": "diabetes"}, "model": {"layers": [4]}, "train": {"epochs": 1}},
                      runs_dir=tmp_path)
    assert CAPABILITIES["explain"].applies(values) is None and CAPABILITIES["attack"].applies(values) is None
    assert CAPABILITIES["fairness"].applies(values) == "fairness metrics compare classifications; this run does " \
                                                       "regression"
    codes = lf.train({"data": {"dataset": "digits"}, "task": "reconstruction", "model": {"type": "autoencoder"},
                      "train": {"epochs": 1}}, runs_dir=tmp_path)
    for name in ("explain", "attack"):
        assert "this run does reconstruction" in CAPABILITIES[name].applies(codes)
    with pytest.raises(lf.DataError, match="explanations are for classification, regression and detection runs; this run "
                                           "does reconstruction"):
        lf.explain(codes)


def test_failed_checks_are_said_as_warnings_with_what_they_mean():
    from layerforge.capabilities import Explanation, Robustness

    shallow = Explanation(method="saliency", rows=10, importance={"x": 1.0},
                          checks={"randomisation_rank_correlation": 0.93, "depends_on_weights": False})
    assert "do not trust it" in shallow.warnings()[0] and "0.93" in shallow.warnings()[0]
    assert Explanation(method="saliency", rows=10, importance={"x": 1.0},
                       checks={"randomisation_rank_correlation": 0.1, "depends_on_weights": True}).warnings() == []
    weak = Robustness(metric="accuracy", units="standardised values", method="pgd", norm="linf", steps=2, rows=9,
                      checks={"stronger_than_fgsm": False, "weaker_at": [0.5], "falls_to_chance": False,
                              "metric_at_largest_eps": 0.8})
    said = weak.warnings()
    assert len(said) == 2 and "try more --steps" in said[0] and "gradients may be masked" in said[1]


def test_explaining_a_regression_with_a_target_class_is_refused(tmp_path):
    values = lf.train({"data": {"dataset": "diabetes"}, "model": {"layers": [4]}, "train": {"epochs": 1}},
                      runs_dir=tmp_path)
    with pytest.raises(lf.DataError, match="--target: this run does regression, which has no classes"):
        lf.explain(values, target="yes", rows=5)
