"""Calibration: NLL, ECE and Brier match their formulas (and scikit-learn where it has them);
temperature scaling fitted on validation rows is kept in model.json and used by every path that
gives probabilities (the run, the report's reliability diagram, the torch-free runtime)."""

import json

import numpy as np
import pytest
from sklearn.metrics import brier_score_loss
from sklearn.metrics import log_loss as sk_log_loss

import layerforge as lf
from layerforge.errors import SpecError
from layerforge.metrics import brier_score, expected_calibration_error, log_loss


def test_metrics_against_their_formulas():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(200, 3)) * 3
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    true = rng.integers(0, 3, 200)
    assert log_loss(true, probabilities) == pytest.approx(sk_log_loss(true, probabilities, labels=[0, 1, 2]))
    binary = probabilities[:, :2] / probabilities[:, :2].sum(axis=1, keepdims=True)
    labels = (true == 1).astype(int)
    assert brier_score(labels, binary) == pytest.approx(2 * brier_score_loss(labels, binary[:, 1]))
    # ECE by hand: 15 equal bins of the top probability, |confidence - accuracy| weighted by rows
    confidence, correct = probabilities.max(1), probabilities.argmax(1) == true
    edges = np.minimum((confidence * 15).astype(int), 14)
    expected = sum(abs(confidence[edges == b].mean() - correct[edges == b].mean()) * (edges == b).sum()
                   for b in range(15) if (edges == b).any()) / 200
    assert expected_calibration_error(true, probabilities) == pytest.approx(expected)
    perfect = np.eye(3)[true]
    assert expected_calibration_error(true, perfect) == 0 and brier_score(true, perfect) == 0


def test_temperature_scaling_recovers_the_temperature_of_overconfident_logits():
    import torch

    from layerforge.tasks.classification import ClassificationTask

    rng = np.random.default_rng(0)
    logits = rng.normal(size=(20000, 4)) * 2
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    true = np.array([rng.choice(4, p=row) for row in probabilities])  # calibrated at temperature 1
    task = ClassificationTask([0, 1, 2, 3])
    record = task.calibrate(torch.nn.Identity(), (torch.as_tensor(logits * 5),), torch.as_tensor(true))
    assert record["temperature"] == pytest.approx(5, rel=0.05)
    before = ClassificationTask([0, 1, 2, 3]).scores(torch.as_tensor(logits * 5), torch.as_tensor(true))
    after = task.scores(torch.as_tensor(logits * 5), torch.as_tensor(true))
    assert after["ece"] < 0.02 < before["ece"] and after["nll"] < before["nll"]
    assert after["accuracy"] == before["accuracy"]


def test_temperature_scaling_is_fitted_on_validation_rows_and_used_everywhere(tmp_path):
    spec = {"name": "digits-cal", "data": {"dataset": "digits"},
            "model": {"layers": [64]}, "train": {"epochs": 25, "optimizer": {"name": "adam", "lr": 0.01}}}
    plain = lf.train(spec, runs_dir=tmp_path)
    calibrated = lf.train({**spec, "train": {**spec["train"], "calibrate": "temperature"}}, runs_dir=tmp_path)
    temperature = calibrated.manifest.temperature
    assert plain.manifest.temperature is None and abs(temperature - 1) > 0.05
    assert calibrated.metrics["val"]["nll"] < plain.metrics["val"]["nll"]  # what it minimised
    assert calibrated.metrics["test"]["accuracy"] == plain.metrics["test"]["accuracy"]  # the classes stay
    rows = lf.load_run(calibrated.path)  # a new process: from model.json
    from layerforge.data.builtin import load

    frame = load("digits").drop(columns="label").head(20)
    probabilities = rows.predict_proba(frame)
    logits = rows.predictor.model(__import__("torch").as_tensor(rows.predictor.encode(frame)[0][0])).detach().double()
    np.testing.assert_allclose(probabilities, (logits / temperature).softmax(-1).numpy(), rtol=1e-4, atol=1e-6)
    folder = rows.export()
    runtime = json.loads((folder / "runtime.json").read_text())
    assert runtime["decoding"]["temperature"] == temperature
    from layerforge.runtime import load as runtime_load

    np.testing.assert_allclose(runtime_load(folder).predict_proba(frame), probabilities, rtol=1e-4, atol=1e-6)
    page = (calibrated.path / "report.html").read_text()
    assert f"reliability diagram (temperature {temperature:.3g})" in page


def test_calibration_is_refused_where_it_does_not_apply():
    with pytest.raises(SpecError, match="train.calibrate: temperature scaling is for classification; this run does "
                                        "regression"):
        lf.load_spec({"data": {"dataset": "diabetes"}, "train": {"calibrate": "temperature"}})
    with pytest.raises(SpecError, match="train.calibrate: calibration is fitted on the validation rows"):
        lf.load_spec({"data": {"dataset": "iris", "split": {"val": 0}}, "train": {"calibrate": "temperature"}})
