"""The metric formulas equal scikit-learn's, ties and absent classes included."""

import numpy as np
import pytest
from sklearn.metrics import f1_score, roc_auc_score

from layerforge.metrics import f1_macro, roc_auc


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
