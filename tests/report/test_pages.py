"""What a user looks for first on the report pages: the spec as set (the resolved one folded
away), per-class precision and recall, the misclassified rows, an out-of-fold confusion matrix
for cross-validation, a tune page without repeats; and `layerforge runs` telling apart runs
that share a name."""

from __future__ import annotations

import re

from typer.testing import CliRunner

import layerforge as lf
from layerforge.cli import app

SPEC = {"name": "wine-pages", "data": {"dataset": "wine"}, "train": {"epochs": 3, "doctor": False}}


def test_the_run_page_shows_the_spec_as_set_per_class_scores_and_the_wrong_answers(tmp_path):
    run = lf.train(SPEC, runs_dir=tmp_path)
    page = (run.path / "report.html").read_text()
    spec = page[page.index('<section id="spec">'):]
    shown, folded = spec.split("<details>", 1)
    assert "name: wine-pages" in shown and "epochs: 3" in shown and "dataset: wine" in shown
    assert "optimizer" not in shown and "unknown_categories" not in shown  # defaults stay folded away
    assert "the resolved spec" in folded and "unknown_categories: error" in folded
    assert "per class (the weakest recall first)" in page
    table = page[page.index("per class (the weakest recall first)"):]
    assert all(f"<td>{name}</td>" in table for name in run.manifest.classes)
    test = run.metrics["test"]
    wrong = round((1 - test["accuracy"]) * test.get("rows", run.manifest.rows["test"]))
    assert (f"misclassified test rows ({wrong} of " in page) if wrong else ("every test row is classified" in page)
    section = page[page.index('<section id="data">'):page.index('<section id="model">')]
    assert "blocks [[" not in section  # positions of blocks are summarised, not dumped


def test_cv_page_has_the_out_of_fold_confusion_matrix_and_tune_page_no_repeats(tmp_path):
    cv = lf.cross_validate({**SPEC, "train": {"epochs": 2, "report": False, "doctor": False}}, 2, runs_dir=tmp_path)
    page = (cv.path / "cv.html").read_text()
    rows = len(cv.oof)
    assert f"out-of-fold confusion matrix ({rows} rows)" in page
    tuned = lf.tune({**SPEC, "train": {"epochs": 2, "report": False, "doctor": False},
                     "search": {"trials": 3, "space": {"train.optimizer.lr": {"log_uniform": [1e-3, 1e-2]},
                                                       "model.dropout": {"choice": [0.0, 0.3]}}}},
                    runs_dir=tmp_path)
    page = (tuned.path / "report.html").read_text()
    assert "Parameter importances" not in page  # once, as the labelled chart
    trials = page[page.index('<section id="trials">'):]
    header = re.findall(r"<th>([^<]*)</th>", trials)
    assert header[:6] == ["trial", "state", "val accuracy", "test accuracy", "model.dropout", "train.optimizer.lr"]
    assert header[-1] == "why" and "overflow-x: auto" in page


def test_runs_lists_the_keys_that_set_apart_runs_of_one_name(tmp_path):
    for lr in (0.01, 0.001):
        lf.train({**SPEC, "train": {"epochs": 1, "report": False, "doctor": False, "optimizer": {"lr": lr}}},
                 runs_dir=tmp_path)
    result = CliRunner().invoke(app, ["runs", "--runs-dir", str(tmp_path)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "differs" in result.output
    cells = re.sub(r"[\s│┃]+", "", result.output)  # the column folds long values over lines
    assert "train.optimizer.lr=0.01" in cells and "train.optimizer.lr=0.001" in cells
