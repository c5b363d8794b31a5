"""Metric formulas on numpy arrays, shared by tasks and charts (checked against scikit-learn)."""

from __future__ import annotations

import numpy as np


def accuracy(true: np.ndarray, pred: np.ndarray) -> float:
    return float((true == pred).mean()) if len(true) else float("nan")


def f1_macro(true: np.ndarray, pred: np.ndarray) -> float:
    """Macro-averaged F1 over the classes present in ``true`` or ``pred`` (as scikit-learn)."""
    labels = np.union1d(true, pred)
    scores = []
    for label in labels:
        tp = np.sum((pred == label) & (true == label))
        fp = np.sum((pred == label) & (true != label))
        fn = np.sum((pred != label) & (true == label))
        scores.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    return float(np.mean(scores)) if scores else float("nan")


def roc_auc(true: np.ndarray, score: np.ndarray) -> float:
    """Binary ROC AUC from scores of the positive class (Mann-Whitney U, ties averaged)."""
    positives = true == 1
    n_pos, n_neg = int(positives.sum()), int((~positives).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(score, kind="mergesort")
    ranks = np.empty(len(score), dtype=np.float64)
    sorted_scores = score[order]
    i = 0
    while i < len(score):  # average ranks over ties
        j = i
        while j + 1 < len(score) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def forecast_metrics(true: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """MAE, RMSE and MAPE (as a fraction, e.g. 0.05) over all forecast steps."""
    error = pred - true
    return {
        "mae": float(np.abs(error).mean()),
        "rmse": float(np.sqrt((error**2).mean())),
        "mape": float(np.mean(np.abs(error) / np.maximum(np.abs(true), 1e-12))),
    }
