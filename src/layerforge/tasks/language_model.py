"""Language modelling: logits (B, L, V) against the next token ids (B, L)."""

from __future__ import annotations

import math

import numpy as np
import torch


class LanguageModelTask:
    """Predict each next token. Metrics: bits per token (per character with a char tokenizer)
    and perplexity."""

    name = "language_model"
    default_loss = "cross_entropy"

    def __init__(self, vocab_size: int):
        self.vocab_size = vocab_size

    @property
    def output_size(self) -> int:
        return self.vocab_size

    def target_tensor(self, ids: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(ids, dtype=torch.long)

    def metrics(self, outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
        nats = float(torch.nn.functional.cross_entropy(outputs.flatten(0, 1).float(), targets.flatten()))
        return {"bits_per_token": nats / math.log(2), "perplexity": math.exp(min(nats, 50.0))}
