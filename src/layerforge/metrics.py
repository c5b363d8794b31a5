"""Metric formulas on numpy arrays, shared by tasks and charts (checked against scikit-learn)."""

from __future__ import annotations

import numpy as np

CALIBRATION_BINS = 15  # equal-width bins of the top probability (ECE, reliability charts)


def accuracy(true: np.ndarray, pred: np.ndarray) -> float:
    return float((true == pred).mean()) if len(true) else float("nan")


def f1_macro(true: np.ndarray, pred: np.ndarray) -> float:
    """Macro-averaged F1 over the classes present in ``true`` or ``pred`` (as scikit-learn)."""
    labels, index = np.unique(np.concatenate([true, pred]), return_inverse=True)
    if not len(labels):
        return float("nan")
    k = len(labels)
    counts = np.bincount(index[: len(true)] * k + index[len(true):], minlength=k * k).reshape(k, k)  # (true, pred)
    tp = np.diag(counts)
    wrong = counts.sum(axis=0) - tp + counts.sum(axis=1) - tp  # false positives + false negatives
    with np.errstate(invalid="ignore", divide="ignore"):
        scores = np.where(tp + wrong > 0, 2 * tp / (2 * tp + wrong), 0.0)
    return float(scores.mean())


def roc_auc(true: np.ndarray, score: np.ndarray) -> float:
    """Binary ROC AUC from scores of the positive class (Mann-Whitney U, ties averaged)."""
    positives = true == 1
    n_pos, n_neg = int(positives.sum()), int((~positives).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    _, where, counts = np.unique(score, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    ranks = ((ends - counts + 1 + ends) / 2)[where.reshape(-1)]  # the mean rank of each run of ties (1-based)
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def log_loss(true: np.ndarray, probabilities: np.ndarray) -> float:
    """Mean negative log-likelihood of the true classes (probabilities clipped at 1e-12)."""
    if not len(true):
        return float("nan")
    picked = probabilities[np.arange(len(true)), true.astype(np.int64)]
    return float(-np.log(np.clip(picked, 1e-12, 1.0)).mean())


def brier_score(true: np.ndarray, probabilities: np.ndarray) -> float:
    """Mean over rows of the squared distance between the probabilities and the one-hot truth."""
    if not len(true):
        return float("nan")
    onehot = np.zeros_like(probabilities, dtype=np.float64)
    onehot[np.arange(len(true)), true.astype(np.int64)] = 1.0
    return float(((probabilities - onehot) ** 2).sum(axis=1).mean())


def calibration_bins(true: np.ndarray, probabilities: np.ndarray, bins: int = CALIBRATION_BINS):
    """Rows binned by their top probability (equal-width bins on [0, 1]): per bin the mean
    confidence, the accuracy and the number of rows."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == true
    which = np.minimum((confidence * bins).astype(np.int64), bins - 1)
    counts = np.bincount(which, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_confidence = np.bincount(which, weights=confidence, minlength=bins) / counts
        hit_rate = np.bincount(which, weights=correct.astype(np.float64), minlength=bins) / counts
    return mean_confidence, hit_rate, counts


def expected_calibration_error(true: np.ndarray, probabilities: np.ndarray, bins: int = CALIBRATION_BINS) -> float:
    """ECE: the row-weighted mean gap between confidence and accuracy over 15 bins of the top
    probability (Guo et al. 2017)."""
    if not len(true):
        return float("nan")
    confidence, hit_rate, counts = calibration_bins(true, probabilities, bins)
    filled = counts > 0
    return float((np.abs(confidence[filled] - hit_rate[filled]) * counts[filled]).sum() / counts.sum())


def classification_scores(true: np.ndarray, probabilities: np.ndarray) -> dict[str, float]:
    """accuracy, f1_macro, with two classes roc_auc, and nll, ece and brier of class codes
    ``true`` (0 .. classes - 1) against ``probabilities`` (rows, classes), in one pass that
    shares its intermediates: the same numbers as the functions above (to rounding), at a
    fraction of their fixed cost, which dominates when a few rows are scored every epoch."""
    rows, classes = probabilities.shape
    if not rows:
        nan = float("nan")
        return {"accuracy": nan, "f1_macro": nan, **({"roc_auc": nan} if classes == 2 else {}),
                "nll": nan, "ece": nan, "brier": nan}
    true = true.astype(np.int64, copy=False)
    pred = probabilities.argmax(axis=1)
    confidence = probabilities.max(axis=1)
    picked = np.take_along_axis(probabilities, true[:, None], axis=1)[:, 0]
    correct = pred == true
    # F1 of a class: 2 tp / (its true rows + its predicted rows), over the classes present in either
    pair = true * classes  # (true, pred) as one code, built in place: few copies of a long column
    pair += pred
    counts = np.bincount(pair, minlength=classes * classes).reshape(classes, classes)
    del pair
    either = counts.sum(axis=0) + counts.sum(axis=1)
    present = either > 0
    # ECE: per bin of the top probability, |sum of confidence - sum of hits|, over all rows
    which = (confidence * CALIBRATION_BINS).astype(np.int64)
    np.minimum(which, CALIBRATION_BINS - 1, out=which)
    gaps = np.bincount(which, weights=confidence - correct, minlength=CALIBRATION_BINS)
    result = {
        "accuracy": float(correct.sum() / rows),
        "f1_macro": float((2 * counts.diagonal()[present] / either[present]).sum() / present.sum()),
    }
    if classes == 2:
        result["roc_auc"] = roc_auc(true, probabilities[:, 1])
    # Brier: the squared distance to the one-hot truth, sum(p^2) - 2 p_true + 1 per row
    result.update(nll=float(-np.log(np.clip(picked, 1e-12, 1.0)).sum() / rows),
                  ece=float(np.abs(gaps).sum() / rows),
                  brier=float(np.einsum("ij,ij->", probabilities, probabilities) / rows - 2 * picked.sum() / rows + 1))
    return result


def forecast_metrics(true: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """MAE, RMSE and MAPE (as a fraction, e.g. 0.05) over all forecast steps."""
    error = pred - true
    return {
        "mae": float(np.abs(error).mean()),
        "rmse": float(np.sqrt((error**2).mean())),
        "mape": float(np.mean(np.abs(error) / np.maximum(np.abs(true), 1e-12))),
    }
