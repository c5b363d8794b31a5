"""Recurrent networks (RNN, LSTM, GRU) over sequences, with masks for unequal lengths."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from ..nn.layers import AttentionPool, dense_head, length_mask, masked_max, masked_mean

_CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


class RNN(nn.Module):
    """A recurrent encoder, a pooling over time and a dense head.

    Args:
        input_size: features per time step (channels of a (B, C, L) sequence).
        cell: 'rnn', 'lstm' or 'gru'.
        pooling: 'last' (final state), 'mean', 'max' or 'attention' over time steps.

    Example:
        >>> model = RNN(1, 10, cell="gru", hidden_size=16)
        >>> model(torch.zeros(4, 1, 40)).shape
        torch.Size([4, 10])
    """

    def __init__(self, input_size: int, output_size: int, *, cell: str = "lstm", hidden_size: int = 64,
                 num_layers: int = 1, bidirectional: bool = False, dropout: float = 0.0, pooling: str = "last",
                 head: list[int] = (), activation: str = "relu", vocab_size: int | None = None):
        super().__init__()
        # token ids (B, L) are embedded into ``input_size`` features per step
        self.embed = nn.Embedding(vocab_size, input_size) if vocab_size else None
        self.rnn = _CELLS[cell](input_size, hidden_size, num_layers=num_layers, batch_first=True,
                                bidirectional=bidirectional, dropout=dropout if num_layers > 1 else 0.0)
        features = hidden_size * (2 if bidirectional else 1)
        self.pooling = pooling
        self.attention = AttentionPool(features) if pooling == "attention" else None
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.head = dense_head(features, list(head), output_size, activation, dropout)

    def encode(self, x: torch.Tensor, lengths: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, C, L) or token ids (B, L) -> outputs (B, L, F) and final states (B, F)."""
        steps = self.embed(x) if self.embed is not None else x.transpose(1, 2)  # (B, L, C)
        if lengths is not None:
            packed = pack_padded_sequence(steps, lengths.cpu(), batch_first=True, enforce_sorted=False)
            packed_out, state = self.rnn(packed)
            outputs, _ = pad_packed_sequence(packed_out, batch_first=True, total_length=steps.shape[1])
        else:
            outputs, state = self.rnn(steps)
        hidden = state[0] if isinstance(state, tuple) else state  # (layers * directions, B, H)
        if self.rnn.bidirectional:
            final = torch.cat([hidden[-2], hidden[-1]], dim=-1)  # (B, 2H)
        else:
            final = hidden[-1]  # (B, H)
        return outputs, final

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        outputs, final = self.encode(x, lengths)
        mask = length_mask(lengths, outputs.shape[1])
        if self.pooling == "last":
            pooled = final
        elif self.pooling == "mean":
            pooled = masked_mean(outputs, mask, dim=1)
        elif self.pooling == "max":
            pooled = masked_max(outputs, mask, dim=1)
        else:
            pooled = self.attention(outputs, mask)
        return self.head(self.dropout(pooled))


def build(model_spec, inputs: dict, output_size: int) -> RNN:
    tokens = inputs["kind"] == "tokens"
    return RNN(model_spec.embedding_size if tokens else inputs["channels"], output_size,
               vocab_size=inputs["vocab_size"] if tokens else None, cell=model_spec.cell,
               hidden_size=model_spec.hidden_size,
               num_layers=model_spec.num_layers, bidirectional=model_spec.bidirectional,
               dropout=model_spec.dropout, pooling=model_spec.pooling, head=list(model_spec.head))
