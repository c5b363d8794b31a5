"""Transformer encoders: sequence, image-patch (ViT-style) and token inputs; causal language models."""

from __future__ import annotations

import torch
from torch import nn

from ..nn.layers import dense_head, length_mask, masked_mean, sinusoidal_positions


class Transformer(nn.Module):
    """Pre-norm self-attention encoder with a pooled head, or a causal language model.

    Args:
        inputs: what the model reads: ``{"kind": "sequence", "channels": C}`` (B, C, L),
            ``{"kind": "image", "channels": C}`` (B, C, H, W) with ``patch_size``, or
            ``{"kind": "tokens", "vocab_size": V}`` (B, L) integer ids.
        output_size: classes / outputs of the pooled head; for ``causal`` the vocabulary size.
        causal: each position attends only to earlier ones and predicts the next token (B, L, V).
        max_length: the longest input (positions, patches or tokens) the model accepts.

    Example:
        >>> model = Transformer({"kind": "sequence", "channels": 1}, 10, d_model=32, num_heads=4)
        >>> model(torch.zeros(2, 1, 40)).shape
        torch.Size([2, 10])
    """

    def __init__(self, inputs: dict, output_size: int, *, d_model: int = 64, num_heads: int = 4,
                 num_layers: int = 2, ff_size: int | None = None, dropout: float = 0.1,
                 positional: str = "sinusoidal", pooling: str = "cls", causal: bool = False,
                 patch_size: int | None = None, max_length: int = 1024, head: list[int] = ()):
        super().__init__()
        self.kind, self.causal = inputs["kind"], causal
        self.pooling = "none" if causal else pooling
        if self.kind == "tokens":
            self.embed = nn.Embedding(inputs["vocab_size"], d_model)
        elif self.kind == "image":
            self.embed = nn.Conv2d(inputs["channels"], d_model, patch_size, stride=patch_size)
        else:
            self.embed = nn.Linear(inputs["channels"], d_model)
        self.max_length = max_length + (1 if self.pooling == "cls" else 0)
        if positional == "learned":
            self.positions = nn.Parameter(torch.randn(self.max_length, d_model) * 0.02)
        else:
            self.register_buffer("positions", sinusoidal_positions(self.max_length, d_model), persistent=False)
        self.cls = nn.Parameter(torch.zeros(1, 1, d_model)) if self.pooling == "cls" else None
        layer = nn.TransformerEncoderLayer(d_model, num_heads, ff_size or 4 * d_model, dropout,
                                           activation="gelu", batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        self.head = dense_head(d_model, list(head), output_size, "gelu", dropout)

    def _tokens(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "tokens":
            return self.embed(x)  # (B, L) -> (B, L, D)
        if self.kind == "image":
            return self.embed(x).flatten(2).transpose(1, 2)  # (B, C, H, W) -> (B, patches, D)
        return self.embed(x.transpose(1, 2))  # (B, C, L) -> (B, L, D)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        h = self._tokens(x)  # (B, T, D)
        mask = length_mask(lengths, h.shape[1])  # (B, T) True where real
        if self.cls is not None:
            h = torch.cat([self.cls.expand(len(h), -1, -1), h], dim=1)  # (B, 1 + T, D)
            if mask is not None:
                mask = torch.cat([mask.new_ones(len(h), 1), mask], dim=1)
        if h.shape[1] > self.max_length:
            raise ValueError(f"input of {h.shape[1]} positions is longer than max_length {self.max_length}")
        h = self.dropout(h + self.positions[: h.shape[1]])
        attention_mask = None
        if self.causal:
            attention_mask = nn.Transformer.generate_square_subsequent_mask(h.shape[1], device=h.device)
        h = self.norm(self.encoder(h, mask=attention_mask, is_causal=self.causal,
                                   src_key_padding_mask=None if mask is None else ~mask))
        if self.causal:
            return self.head(h)  # (B, T, V)
        pooled = h[:, 0] if self.pooling == "cls" else masked_mean(h, mask, dim=1)  # (B, D)
        return self.head(pooled)


def build(model_spec, inputs: dict, output_size: int) -> Transformer:
    if model_spec.causal:
        output_size = inputs["vocab_size"]
    length = inputs.get("length", 512)
    if inputs["kind"] == "image" and model_spec.patch_size:
        length = (inputs["height"] // model_spec.patch_size) * (inputs["width"] // model_spec.patch_size)
    return Transformer(inputs, output_size, d_model=model_spec.d_model, num_heads=model_spec.num_heads,
                       num_layers=model_spec.num_layers, ff_size=model_spec.ff_size, dropout=model_spec.dropout,
                       positional=model_spec.positional, pooling=model_spec.pooling, causal=model_spec.causal,
                       patch_size=model_spec.patch_size, max_length=model_spec.max_length or length,
                       head=list(model_spec.head))
