"""Transformer encoders: sequence, image-patch (ViT-style) and token inputs; causal language models."""

from __future__ import annotations

import torch
from torch import nn

from ..errors import SpecError
from ..nn.layers import dense_head, length_mask, masked_mean, sinusoidal_positions
from .configs import TransformerConfig
from .inputs import Inputs
from .protocol import DenseHeaded, Graph


def positions_needed(inputs: Inputs, patch_size: int | None) -> int:
    """How many positions the encoder sees: time steps, tokens, or image patches."""
    if inputs.images:
        if not patch_size:
            raise SpecError("model.patch_size: a transformer reads an image as patches; set patch_size")
        if patch_size > min(inputs.height, inputs.width):
            raise SpecError(f"model.patch_size: patches of {patch_size} pixels do not fit in {inputs.height}x"
                            f"{inputs.width} images; use a patch_size of at most {min(inputs.height, inputs.width)}")
        return (inputs.height // patch_size) * (inputs.width // patch_size)
    return inputs.length


class Transformer(DenseHeaded):
    """Pre-norm self-attention encoder with a pooled head, or a causal language model.

    Args:
        inputs: what one row holds: a sequence (B, C, L), an image (B, C, H, W) read as
            ``patch_size`` patches, or token ids (B, L).
        output_size: classes / outputs of the pooled head; for ``causal`` the vocabulary size.
        d_model, ..., head: see ``TransformerConfig`` (the spec's ``model`` keys);
            ``max_length`` defaults to the positions the inputs hold; ``decoder_layers`` is the
            encoder-decoder's (text pairs) and is not used here.

    Example:
        >>> inputs = Inputs(kind="sequence", channels=1, length=40)
        >>> model = Transformer(inputs, 10, **TransformerConfig(d_model=32).arguments())
        >>> model(torch.zeros(2, 1, 40)).shape
        torch.Size([2, 10])
    """

    def __init__(self, inputs: Inputs, output_size: int, *, d_model: int, num_heads: int, num_layers: int,
                 decoder_layers: int | None, ff_size: int | None, dropout: float, positional: str, pooling: str,
                 causal: bool, patch_size: int | None, max_length: int | None, head: list[int]):
        super().__init__(inputs)
        self.tokens, self.images, self.causal = inputs.tokens, inputs.images, causal
        self.pooling = "none" if causal else pooling
        if self.tokens:
            self.embed = nn.Embedding(inputs.vocab_size, d_model)
        elif self.images:
            self.embed = nn.Conv2d(inputs.channels, d_model, patch_size, stride=patch_size)
        else:
            self.embed = nn.Linear(inputs.channels, d_model)
        max_length = max_length or positions_needed(inputs, patch_size)
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
        if self.tokens:
            return self.embed(x)  # (B, L) -> (B, L, D)
        if self.images:
            return self.embed(x).flatten(2).transpose(1, 2)  # (B, C, H, W) -> (B, patches, D)
        return self.embed(x.transpose(1, 2))  # (B, C, L) -> (B, L, D)

    def pooled(self, x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        """(B, D) pooled, or (B, T, D) per position for a causal model."""
        h = self._tokens(x)  # (B, T, D)
        mask = length_mask(lengths, h.shape[1])  # (B, T) True where real
        if self.cls is not None:
            h = torch.cat([self.cls.expand(h.shape[0], -1, -1), h], dim=1)  # (B, 1 + T, D)
            if mask is not None:
                mask = torch.cat([mask.new_ones(h.shape[0], 1), mask], dim=1)
        if h.shape[1] > self.max_length:
            raise ValueError(f"input of {h.shape[1]} positions is longer than max_length {self.max_length}")
        h = self.dropout(h + self.positions[: h.shape[1]])
        attention_mask = None
        if self.causal:
            attention_mask = nn.Transformer.generate_square_subsequent_mask(h.shape[1], device=h.device)
        h = self.norm(self.encoder(h, mask=attention_mask, is_causal=self.causal,
                                   src_key_padding_mask=None if mask is None else ~mask))
        if self.causal:
            return h  # (B, T, D)
        return h[:, 0] if self.pooling == "cls" else masked_mean(h, mask, dim=1)  # (B, D)

    # the TorchScript exporter fixes the steps of attention's reshapes to those of the example
    exporters = ("dynamo",)

    def export_graphs(self) -> list[Graph]:
        graphs = super().export_graphs()
        if self.causal:  # a language model reads prompts of any length up to its context
            graphs[0].dynamic["x"][1] = "steps"
        return graphs


def build(config: TransformerConfig, inputs: Inputs, output_size: int, num_classes: int = 0) -> Transformer:
    return Transformer(inputs, output_size, **config.arguments())
