"""Language modelling: logits (B, L, V) against the next token ids (B, L)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..decodings import NextToken
from ..errors import DataError
from ..figures import Passage
from .base import Task


class LanguageModelTask(Task):
    """Predict each next token. Metrics: bits per token (per character with a char tokenizer)
    and perplexity."""

    name = "language_model"
    default_loss = "cross_entropy"
    trains_on = "next_tokens"
    target_form = "tokens"
    metrics = {"bits_per_token": False, "perplexity": False}
    headline = "bits_per_token"
    serves = "text"
    example = {"data": {"dataset": "python_docs", "context": 16, "split": {"val": 0.05, "test": 0.9}},
               "model": {"type": "transformer", "causal": True, "d_model": 16, "num_heads": 2, "num_layers": 1}}

    def __init__(self, vocab_size: int):
        self.vocab_size = vocab_size

    @classmethod
    def spec_problems(cls, spec) -> list[str]:
        problems = super().spec_problems(spec)
        if spec.model.implied_task() != cls.name:
            problems.append("model: language modelling of a text corpus needs type: transformer with causal: true")
        return problems

    @classmethod
    def fit(cls, labels, train: np.ndarray, encoder, data_spec, source: str) -> LanguageModelTask:
        return cls(encoder.inputs.vocab_size)

    @classmethod
    def from_manifest(cls, manifest, encoder, run_dir: Path | None = None) -> LanguageModelTask:
        return cls(manifest.inputs.vocab_size)

    @property
    def output_size(self) -> int:
        return self.vocab_size

    def scores(self, outputs, y) -> dict[str, float]:
        import torch

        nats = float(torch.nn.functional.cross_entropy(outputs.flatten(0, 1).float(), y.flatten()))
        return {"bits_per_token": nats / math.log(2), "perplexity": math.exp(min(nats, 50.0))}

    def decoding(self) -> NextToken:
        return NextToken()

    def generate(self, model, encoder, prompt: str, length: int, temperature: float, top_k: int | None,
                 seed: int) -> str:
        """Sample ``length`` tokens that continue ``prompt``; the same seed gives the same text.

        Args:
            temperature: divides the logits; below 1 is more conservative.
            top_k: sample only among the k most likely tokens.
        """
        import torch

        if temperature <= 0:
            raise DataError("temperature must be > 0 (lower is more conservative, e.g. 0.8)")
        tokenizer, context = encoder.tokenizer, encoder.inputs.length
        ids = tokenizer.encode(prompt) or [1]
        generator = torch.Generator().manual_seed(seed)
        device = next(model.parameters()).device
        model.eval()
        with torch.no_grad():
            for _ in range(length):
                logits = model(torch.tensor([ids[-context:]], device=device))[0, -1].float().cpu() / temperature  # (V,)
                logits[0] = float("-inf")  # never emit padding
                if top_k:
                    cutoff = torch.topk(logits, min(top_k, len(logits))).values[-1]
                    logits = logits.masked_fill(logits < cutoff, float("-inf"))
                ids.append(int(torch.multinomial(logits.softmax(-1), 1, generator=generator)))
        return tokenizer.decode(ids)

    def report_blocks(self, model, held_out, *, encoder, pictures, target):

        sample = self.generate(model, encoder, "", length=300, temperature=0.8, top_k=20, seed=0)
        return [Passage("A sample (temperature 0.8, top-k 20, seed 0):", sample)]
