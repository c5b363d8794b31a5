"""Classification: logits (N, C) against class indices (N,)."""

from __future__ import annotations

import numpy as np
import torch


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


class ClassificationTask:
    """Predict one of ``classes``. The model outputs one logit per class."""

    name = "classification"
    default_loss = "cross_entropy"

    def __init__(self, classes: list):
        self.classes = list(classes)

    @property
    def output_size(self) -> int:
        return len(self.classes)

    def target_tensor(self, codes: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(codes, dtype=torch.long)

    def metrics(self, outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
        """accuracy, f1_macro and, with two classes, roc_auc."""
        probs = outputs.float().softmax(dim=-1).cpu().numpy()
        true = targets.cpu().numpy()
        pred = probs.argmax(axis=1)
        result = {"accuracy": accuracy(true, pred), "f1_macro": f1_macro(true, pred)}
        if len(self.classes) == 2:
            result["roc_auc"] = roc_auc(true, probs[:, 1])
        return result

    def decode(self, outputs: torch.Tensor) -> np.ndarray:
        """Class indices from logits."""
        return outputs.argmax(dim=-1).cpu().numpy()

    def probabilities(self, outputs: torch.Tensor) -> np.ndarray:
        return outputs.float().softmax(dim=-1).cpu().numpy()
