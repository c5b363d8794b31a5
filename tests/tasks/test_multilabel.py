"""Multi-label classification: its metrics against scikit-learn's, thresholds tuned on validation
rows, and a run answering sets of labels through every door."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score, hamming_loss, jaccard_score

import layerforge as lf
from layerforge import runtime
from layerforge.metrics import best_thresholds, multilabel_scores


def test_the_metrics_are_scikit_learns():
    rng = np.random.default_rng(0)
    true, chosen = rng.random((200, 5)) > 0.6, rng.random((200, 5)) > 0.5
    true[:, 4] = False  # a label no row has
    scores = multilabel_scores(true, chosen)
    assert scores["f1_micro"] == pytest.approx(f1_score(true, chosen, average="micro"))
    assert scores["f1_macro"] == pytest.approx(f1_score(true, chosen, average="macro", zero_division=1.0))
    assert scores["jaccard"] == pytest.approx(jaccard_score(true, chosen, average="samples", zero_division=1.0))
    assert scores["hamming_loss"] == pytest.approx(hamming_loss(true, chosen))
    assert scores["exact_match"] == pytest.approx((true == chosen).all(axis=1).mean())


def test_each_threshold_gives_its_label_the_best_f1():
    true = np.array([[1, 0], [1, 0], [0, 0], [0, 1]])
    probabilities = np.array([[0.30, 0.9], [0.25, 0.8], [0.10, 0.7], [0.05, 0.95]])
    thresholds = best_thresholds(true, probabilities)
    assert thresholds[0] == pytest.approx(0.175)  # between the last present (0.25) and the first absent (0.10)
    assert thresholds[1] == pytest.approx(0.925)


def _tagged(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    tags = [("|".join(t for t, on in (("warm", a > 0), ("wet", b > 0.3), ("windy", a + c > 1)) if on))
            for a, b, c in x]
    return pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "weather": tags})


def test_a_run_learns_sets_of_labels_and_answers_them_through_every_door(tmp_path):
    path = tmp_path / "weather.csv"
    _tagged(1000, 0).to_csv(path, index=False)
    run = lf.train({"data": {"path": str(path), "target": "weather"}, "model": {"layers": [32]},
                    "train": {"epochs": 40, "doctor": False}}, runs_dir=tmp_path / "runs")
    assert run.manifest.task == "multilabel" and run.manifest.classes == ["warm", "wet", "windy"]
    assert run.metrics["test"]["f1_micro"] >= 0.9 and run.metrics["test"]["hamming_loss"] <= 0.1
    thresholds = run.manifest.labels.thresholds
    assert len(thresholds) == 3 and all(0 < t < 1 for t in thresholds)
    rows = _tagged(8, 1).drop(columns=["weather"])
    table = run.predictor.predict_table(rows)
    assert list(table.columns) == ["weather", "proba_warm", "proba_wet", "proba_windy"]
    chosen = table[["proba_warm", "proba_wet", "proba_windy"]].to_numpy() >= np.array(thresholds)
    names = np.array(["warm", "wet", "windy"])
    assert table["weather"].tolist() == ["|".join(names[row]) for row in chosen]
    run.export()
    exported = runtime.load(run.path / "export")
    assert exported.predict(rows).tolist() == table["weather"].tolist()
    answers = exported.answers(rows.to_dict("records"))
    assert ["|".join(a["prediction"]) for a in answers] == table["weather"].tolist()
    scored = run.evaluate(path)
    assert scored["f1_micro"] >= 0.9
    bad = _tagged(5, 2)
    bad.loc[2, "weather"] = "warm|snowy"
    bad.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(lf.DataError, match=r"target column 'weather': label 'snowy' in row 3.* is not one of the "
                                           r"run's labels \(warm, wet, windy\)"):
        run.evaluate(tmp_path / "bad.csv")
