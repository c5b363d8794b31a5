"""The metric formulas equal scikit-learn's, ties and absent classes included."""

import numpy as np
import pytest
from sklearn.metrics import f1_score, roc_auc_score

from layerforge.metrics import (
    accuracy,
    brier_score,
    classification_scores,
    expected_calibration_error,
    f1_macro,
    log_loss,
    roc_auc,
)


@pytest.mark.parametrize("seed", range(5))
def test_f1_macro_and_roc_auc_equal_scikit_learn(seed):
    rng = np.random.default_rng(seed)
    for _ in range(100):
        n = int(rng.integers(1, 80))
        true, pred = rng.integers(0, 4, n), rng.integers(0, 5, n)  # class 4 is predicted but never true
        assert f1_macro(true, pred) == pytest.approx(f1_score(true, pred, average="macro",
                                                              labels=np.union1d(true, pred)), abs=1e-12)
        true, score = rng.integers(0, 2, n), rng.integers(0, 6, n) / 5  # many ties
        if len(set(true)) == 2:
            assert roc_auc(true, score) == pytest.approx(roc_auc_score(true, score), abs=1e-12)
    assert np.isnan(roc_auc(np.ones(4, dtype=int), np.arange(4.0)))


@pytest.mark.parametrize("classes", [2, 3, 10])
def test_the_one_pass_scores_equal_each_metric_alone(classes):
    rng = np.random.default_rng(classes)
    for rows in (1, 7, 500):
        true = rng.integers(0, classes, rows)
        probabilities = rng.dirichlet(np.full(classes, 0.3), rows)  # peaked rows: every calibration bin
        probabilities[0] = np.eye(classes)[true[0]]  # a row exactly right: probability 1
        pred = probabilities.argmax(axis=1)
        expected = {"accuracy": accuracy(true, pred), "f1_macro": f1_macro(true, pred),
                    **({"roc_auc": roc_auc(true, probabilities[:, 1])} if classes == 2 else {}),
                    "nll": log_loss(true, probabilities), "ece": expected_calibration_error(true, probabilities),
                    "brier": brier_score(true, probabilities)}
        scores = classification_scores(true, probabilities)
        assert scores.keys() == expected.keys()
        for name, value in expected.items():
            assert scores[name] == pytest.approx(value, abs=1e-12, nan_ok=True), name
    empty = classification_scores(np.zeros(0, dtype=int), np.zeros((0, classes)))
    assert empty.keys() == expected.keys() and all(np.isnan(v) for v in empty.values())
    perfect = classification_scores(np.arange(classes), np.eye(classes))
    assert perfect["accuracy"] == perfect["f1_macro"] == 1 and perfect["ece"] == perfect["brier"] == perfect["nll"] == 0


def test_transcription_scores_count_word_and_character_edits():
    from layerforge.metrics import transcription_scores

    found = transcription_scores(["three one four", "nine", "two two"], ["three one four", "five", "two"])
    assert found["wer"] == pytest.approx(2 / 5)  # one substitution and one insertion over five reference words
    assert found["exact_match"] == pytest.approx(1 / 3)
    assert found["cer"] == pytest.approx((2 + 4) / (14 + 4 + 3))  # five->nine: 2 letters; " two" inserted: 4
    with pytest.raises(ValueError, match="2 transcripts for 1 references"):
        transcription_scores(["a", "b"], ["a"])
