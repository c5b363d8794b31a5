"""Recurrent networks (RNN, LSTM, GRU) over sequences and token ids, with masks for unequal lengths."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from ..nn.layers import AttentionPool, dense_head, length_mask, masked_max, masked_mean
from .configs import RNNConfig
from .inputs import Inputs
from .protocol import DenseHeaded

CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


def _take_steps(x: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """(B, L, F) with each row's steps in ``order`` (B, L)."""
    return torch.gather(x, 1, order[:, :, None].expand(-1, -1, x.shape[-1]))


def encode_steps(net: nn.Module, x: torch.Tensor, lengths: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, C, L) or token ids (B, L) -> outputs (B, L, F) and final states (B, F), by ``net``'s
    ``embed`` (None for sequences) and recurrent ``rnn``: packed for unequal lengths, unpacked
    while exporting."""
    steps = net.embed(x) if net.embed is not None else x.transpose(1, 2)  # (B, L, C)
    if lengths is not None and torch.onnx.is_in_onnx_export():
        return _unpacked(net, steps, lengths)
    if lengths is not None:
        packed = pack_padded_sequence(steps, lengths.cpu(), batch_first=True, enforce_sorted=False)
        packed_out, state = net.rnn(packed)
        outputs, _ = pad_packed_sequence(packed_out, batch_first=True, total_length=steps.shape[1])
    else:
        outputs, state = net.rnn(steps)
    hidden = state[0] if isinstance(state, tuple) else state  # (layers * directions, B, H)
    if net.rnn.bidirectional:
        final = torch.cat([hidden[-2], hidden[-1]], dim=-1)  # (B, 2H)
    else:
        final = hidden[-1]  # (B, H)
    return outputs, final


def _unpacked(net: nn.Module, steps: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """What the packed path computes, written without packed sequences (which exporters
    cannot follow): each layer and direction runs on its own over the padded steps, the
    reverse direction on every row reversed within its length. Padding comes after a row's
    steps, so the forward direction's outputs up to the length are those of the packed run."""
    rnn, directions = net.rnn, 2 if net.rnn.bidirectional else 1
    time = torch.arange(steps.shape[1], device=steps.device)[None, :]  # (1, L)
    within = time < lengths[:, None]  # (B, L)
    last = (lengths - 1).clamp_min(0)  # (B,)
    reverse = torch.where(within, last[:, None] - time, time)  # (B, L): each row reversed within its length
    layer_input, finals = steps, []
    for layer in range(rnn.num_layers):
        outputs = []
        for direction in range(directions):
            flip = direction == 1
            out, _ = _one_layer(net, layer, direction)(_take_steps(layer_input, reverse) if flip else layer_input)
            finals.append(out[torch.arange(out.shape[0]), last])  # both runs end at their row's length
            outputs.append(_take_steps(out, reverse) if flip else out)
        layer_input = torch.cat(outputs, dim=-1) if directions == 2 else outputs[0]
    outputs = layer_input * within[:, :, None].to(layer_input.dtype)  # (B, L, F), zero past each length
    final = torch.cat(finals[-2:], dim=-1) if directions == 2 else finals[-1]
    return outputs, final


def _one_layer(net: nn.Module, layer: int, direction: int) -> nn.Module:
    """A one-layer, one-direction recurrent module sharing this network's weights of ``layer``
    and ``direction``."""
    rnn = net.rnn
    size = rnn.input_size if layer == 0 else rnn.hidden_size * (2 if rnn.bidirectional else 1)
    options = {"nonlinearity": rnn.nonlinearity} if isinstance(rnn, nn.RNN) else {}
    cell = type(rnn)(size, rnn.hidden_size, batch_first=True, bias=rnn.bias, device="meta", **options)
    suffix = f"_l{layer}" + ("_reverse" if direction else "")
    for name in ("weight_ih", "weight_hh") + (("bias_ih", "bias_hh") if rnn.bias else ()):
        setattr(cell, f"{name}_l0", getattr(rnn, name + suffix))
    return cell


class RNN(DenseHeaded):
    """A recurrent encoder, a pooling over time and a dense head.

    Sequences (B, C, L) are read step by step; token ids (B, L) are first embedded into
    ``embedding_size`` numbers per step.

    Args:
        inputs: what one row holds (a sequence or token ids).
        output_size: logits or regression outputs.
        cell, hidden_size, ..., head: see ``RNNConfig`` (the spec's ``model`` keys);
            ``attention`` is the encoder-decoder's (text pairs) and is not used here.

    Example:
        >>> inputs = Inputs(kind="sequence", channels=1, length=40)
        >>> model = RNN(inputs, 10, **RNNConfig(cell="gru", hidden_size=16).arguments())
        >>> model(torch.zeros(4, 1, 40)).shape
        torch.Size([4, 10])
    """

    def __init__(self, inputs: Inputs, output_size: int, *, cell: str, hidden_size: int, num_layers: int,
                 bidirectional: bool, dropout: float, pooling: str, embedding_size: int, head: list[int],
                 attention: str):
        super().__init__(inputs)
        tokens = inputs.tokens
        step_size = embedding_size if tokens else inputs.channels
        self.embed = nn.Embedding(inputs.vocab_size, embedding_size) if tokens else None
        self.rnn = CELLS[cell](step_size, hidden_size, num_layers=num_layers, batch_first=True,
                                bidirectional=bidirectional, dropout=dropout if num_layers > 1 else 0.0)
        features = hidden_size * (2 if bidirectional else 1)
        self.pooling = pooling
        self.attention = AttentionPool(features) if pooling == "attention" else None
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.head = dense_head(features, list(head), output_size, "relu", dropout)

    def encode(self, x: torch.Tensor, lengths: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, C, L) or token ids (B, L) -> outputs (B, L, F) and final states (B, F)."""
        return encode_steps(self, x, lengths)

    def pooled(self, x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
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
        return self.dropout(pooled)  # (B, F)


def build(config: RNNConfig, inputs: Inputs, output_size: int, num_classes: int = 0) -> RNN:
    return RNN(inputs, output_size, **config.arguments())
