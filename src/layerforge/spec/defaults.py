"""The built-in default: what ``layerforge train`` runs with no arguments (examples/digits.yaml)."""

from __future__ import annotations

from typing import Any

# An MLP on scikit-learn's digits.
DEFAULT_SPEC: dict[str, Any] = {
    "name": "digits-mlp",
    "seed": 0,
    "data": {"dataset": "digits", "target": "label", "split": {"val": 0.15, "test": 0.15, "stratify": True}},
    "task": "classification",
    "model": {"type": "mlp", "layers": [256, 128], "activation": "relu", "dropout": 0.1,
              "norm": "batch", "init": "kaiming"},
    "train": {
        "epochs": 60,
        "batch_size": 64,
        "loss": {"name": "cross_entropy", "label_smoothing": 0.05},
        "optimizer": {"name": "adamw", "lr": 0.003, "weight_decay": 0.01},
        "schedule": {"name": "cosine", "warmup_epochs": 1},
        "clip_grad_norm": 1.0,
        "early_stopping": {"monitor": "val_loss", "patience": 15, "restore_best": True},
        "device": "auto",
    },
}
