"""A run directory is enough: copied elsewhere with its source data gone, it predicts, evaluates
its own test split and rebuilds its report."""

import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

import layerforge as lf
from layerforge.cli import app
from layerforge.report.html import build_report


def _copy_without_source(run, source, tmp_path):
    copy = tmp_path / "elsewhere" / run.path.name
    shutil.copytree(run.path, copy)
    source.unlink()
    return lf.load_run(copy)


def test_a_copied_table_run_predicts_evaluates_and_reports_without_its_data(mixed_frame, tmp_path, runs_dir):
    source = tmp_path / "rows.csv"
    mixed_frame.to_csv(source, index=False)
    run = lf.train({"data": {"path": str(source), "target": "label"}, "model": {"layers": [8]},
                    "train": {"epochs": 5}}, runs_dir=runs_dir)
    rows = mixed_frame.drop(columns=["label"]).head(9)
    expected = run.predict_proba(rows)
    moved = _copy_without_source(run, source, tmp_path)
    assert not source.exists() and moved.manifest.held_out
    np.testing.assert_array_equal(moved.predict_proba(rows), expected)
    assert moved.evaluate()["accuracy"] == pytest.approx(run.metrics["test"]["accuracy"])
    page = build_report(moved.path).read_text()
    assert 'alt="confusion matrix"' in page and "no results" not in page
    assert lf.load_run(moved.path).manifest.files["report.html"]  # the rebuilt page is listed again
    rows.to_csv(tmp_path / "new.csv", index=False)
    result = CliRunner().invoke(app, ["predict", str(moved.path), str(tmp_path / "new.csv")])
    assert result.exit_code == 0 and result.output.splitlines()[0] == "label,proba_big,proba_small"
    result = CliRunner().invoke(app, ["evaluate", str(moved.path)])
    assert result.exit_code == 0, result.output


def test_a_copied_image_run_reports_without_its_data(tmp_path, runs_dir):
    from sklearn.datasets import load_digits

    digits = load_digits()
    source = tmp_path / "digits.npz"
    np.savez(source, x=(digits.images[:300] / 16.0).astype(np.float32), y=digits.target[:300])
    run = lf.train({"data": {"path": str(source), "kind": "image"}, "model": {"type": "cnn", "channels": [4], "head": []},
                    "train": {"epochs": 3}}, runs_dir=runs_dir)
    moved = _copy_without_source(run, source, tmp_path)
    assert moved.evaluate()["accuracy"] == pytest.approx(run.metrics["test"]["accuracy"])
    assert 'alt="ROC curve"' in build_report(moved.path).read_text()
