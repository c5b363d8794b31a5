"""Several targets at once: the spec, the weighted loss, and a run answering every target through
every door."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from fastapi.testclient import TestClient

import layerforge as lf
from layerforge import runtime
from layerforge.serving import create_app
from layerforge.tasks import ClassificationTask, RegressionTask
from layerforge.tasks.multitarget import MultiTargetTask


def test_the_spec_names_each_target_once_and_weights_only_its_targets():
    for data, words in [({"target": ["a", "a"]}, "data.target: names 'a' twice"),
                        ({"target": ["a"]}, "data.target: expected a string or at least 2 items"),
                        ({"target": ["a", "b"], "target_weights": {"c": 1}}, "'c' is not one of data.target's"),
                        ({"target": ["a", "b"], "target_weights": {"a": 0}}, "data.target_weights: expected a number > 0")]:
        with pytest.raises(lf.SpecError, match=words):
            lf.load_spec({"data": {"dataset": "iris", **data}})
    with pytest.raises(lf.DataError, match="several target columns are read from tables; this is sequence data"):
        lf.train({"data": {"dataset": "gunpoint", "target": ["a", "b"]}, "model": {"type": "cnn"}})


def test_the_loss_is_each_targets_own_weighted():
    task = MultiTargetTask([("kind", ClassificationTask(["a", "b", "c"])), ("size", RegressionTask([0.0], [1.0]))],
                           {"size": 0.5})
    outputs = torch.randn(6, 4)
    y = torch.tensor([[0, 0.5], [1, -1.0], [2, 0.0], [0, 2.0], [1, 0.1], [2, -0.3]])
    expected = F.cross_entropy(outputs[:, :3], y[:, 0].long()) + 0.5 * F.mse_loss(outputs[:, 3:], y[:, 1:])
    assert float(lf.training.losses.for_task(None, task)(outputs, y)) == pytest.approx(float(expected))
    with pytest.raises(lf.SpecError, match="a multi-target run's loss is each target's own"):
        task.own_loss(lf.load_spec({"data": {"dataset": "iris"}, "train": {"loss": "mse"}}).train.loss)


def _rows(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    kind = np.where(x[:, 0] + x[:, 1] > 0, "up", "down")
    return pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "kind": kind,
                         "size": 3 * x[:, 2] - x[:, 0] + rng.normal(0, 0.1, n)})


def test_a_run_answers_each_target_through_every_door(tmp_path):
    path = tmp_path / "rows.csv"
    _rows(600, 0).to_csv(path, index=False)
    run = lf.train({"data": {"path": str(path), "target": ["kind", "size"]}, "model": {"layers": [32]},
                    "train": {"epochs": 40}}, runs_dir=tmp_path / "runs")
    test = run.metrics["test"]
    assert run.manifest.task == "multitarget" and run.manifest.target == ["kind", "size"]
    assert test["kind_accuracy"] >= 0.9 and test["size_r2"] >= 0.9
    assert test["score"] == pytest.approx((test["kind_accuracy"] + test["size_r2"]) / 2)
    rows = _rows(6, 1).drop(columns=["kind", "size"])
    table = run.predictor.predict_table(rows)
    assert list(table.columns) == ["kind", "kind:proba_down", "kind:proba_up", "size"]
    predicted = run.predict(rows)
    assert predicted.shape == (6, 2) and predicted[:, 0].tolist() == table["kind"].tolist()
    run.export()
    exported = runtime.load(run.path / "export")
    answers = exported.answers(rows.to_dict("records"))
    assert [a["prediction"]["kind"] for a in answers] == table["kind"].tolist()
    np.testing.assert_allclose([a["prediction"]["size"] for a in answers], table["size"], rtol=1e-4)
    with TestClient(create_app([f"m={run.path}"])) as client:
        served = client.post("/v1/models/m/predict", json={"rows": rows.to_dict("records")}).json()["predictions"]
    assert [a["prediction"]["kind"] for a in served] == table["kind"].tolist()
    assert set(served[0]["probabilities"]["kind"]) == {"down", "up"}
    scored = run.evaluate(_rows(100, 2))
    assert scored["kind_accuracy"] >= 0.85 and "size_r2" in scored
    with pytest.raises(lf.DataError, match="the target columns 'kind', 'size'"):
        run.evaluate(_rows(10, 3).drop(columns=["size"]))
