"""Seeded train / validation / test splits, stratified by class when asked."""

from __future__ import annotations

import numpy as np


def split_indices(
    n: int,
    val: float,
    test: float,
    *,
    seed: int,
    labels: np.ndarray | None = None,
    shuffle: bool = True,
) -> dict[str, np.ndarray]:
    """Split row positions ``0..n-1`` into sorted 'train', 'val' and 'test' index arrays.

    Args:
        n: number of rows.
        val, test: fractions of rows for validation and test.
        seed: the same seed gives the same split.
        labels: class codes per row; when given, every class is split in the same proportions.
        shuffle: when False the split is chronological: train first, then val, then test.
    """
    if not shuffle:
        n_test, n_val = int(round(n * test)), int(round(n * val))
        n_train = n - n_val - n_test
        order = np.arange(n)
        return {
            "train": order[:n_train],
            "val": order[n_train : n_train + n_val],
            "test": order[n_train + n_val :],
        }
    rng = np.random.default_rng(seed)
    groups = [np.arange(n)] if labels is None else [np.flatnonzero(labels == c) for c in np.unique(labels)]
    parts: dict[str, list[np.ndarray]] = {"train": [], "val": [], "test": []}
    for members in groups:
        members = rng.permutation(members)
        n_test = int(round(len(members) * test))
        n_val = int(round(len(members) * val))
        if n_test + n_val >= len(members):  # keep at least one row of each class for training
            n_test, n_val = min(n_test, max(0, len(members) - 1)), 0
        parts["test"].append(members[:n_test])
        parts["val"].append(members[n_test : n_test + n_val])
        parts["train"].append(members[n_test + n_val :])
    return {name: np.sort(np.concatenate(chunks)) for name, chunks in parts.items()}
