"""Networks that answer every frame of a clip (speech recognition with connectionist temporal
classification): a strided 1-D convolution over the log-mel frames halves their rate, a
recurrent network (a CRNN, as Deep Speech 2 arranges it) or a Transformer encoder reads the
result, and the head gives each remaining frame's logits over the blank (id 0) and the
transcript's tokens.

Past the frames a clip holds, the logits say "blank" for certain: a search then reads the padded
tail as silence, and the CTC loss over every frame equals the loss over the clip's own (a blank
of probability 1 changes no alignment's probability), so neither needs the frame counts.
"""

from __future__ import annotations

import torch
from torch import nn

from ..nn.layers import dense_head, length_mask, sinusoidal_positions
from .inputs import Inputs
from .protocol import DenseHeaded
from .rnn import CELLS, encode_steps

KERNEL = 5
SILENT = -1e4  # the logit of every token but the blank past a clip's frames (finite in fp16)


def frames_after(lengths: torch.Tensor, stride: int) -> torch.Tensor:
    """Output frames of clips of ``lengths`` input frames (a convolution of ``stride``'s)."""
    return lengths if stride == 1 else torch.div(lengths - 1, stride, rounding_mode="floor") + 1


class FrameReader(DenseHeaded):
    """What both frame readers share: the convolution in front, a dense head per frame, and the
    certain blank past each clip's frames. Subclasses give ``read`` (the body)."""

    stride = 2  # input frames per output frame

    def __init__(self, inputs: Inputs, width: int):
        super().__init__(inputs)
        self.front = nn.Sequential(nn.Conv1d(inputs.channels, width, KERNEL, stride=self.stride,
                                             padding=KERNEL // 2), nn.GELU())

    def read(self, h: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The convolution's frames (B, width, T) with their counts (B,) -> features (B, T, F)."""
        raise NotImplementedError

    def _counts(self, x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        if lengths is None:
            lengths = torch.full((len(x),), x.shape[-1], dtype=torch.long, device=x.device)
        return frames_after(lengths.clamp(1, x.shape[-1]), self.stride)

    def pooled(self, x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        return self.read(self.front(x), self._counts(x, lengths))  # (B, T, F): nothing is pooled

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (B, T, V) of each output frame; past a clip's frames, the blank's alone."""
        logits = self.head(self.pooled(x, lengths))
        within = length_mask(self._counts(x, lengths), logits.shape[1])[:, :, None]  # (B, T, 1)
        blank = torch.arange(logits.shape[-1], device=logits.device) == 0
        silence = torch.where(blank, 0.0, SILENT).to(logits.dtype)  # (V,)
        return torch.where(within, logits, silence)


class RecurrentFrames(FrameReader):
    """A CRNN: a convolution halving the frames (``hidden_size`` channels), then a recurrent network (rnn,
    lstm or gru; bidirectional if asked) over the frames, then a dense head per frame.

    Args:
        inputs: a clip's frames (``Inputs`` of kind 'frames').
        output_size: the blank and the transcript's tokens.
        cell, hidden_size, num_layers, bidirectional, dropout, head: see ``RNNConfig``;
            pooling, embedding_size and attention are the classifier's and the
            encoder-decoder's and are not used here.

    Example:
        >>> inputs = Inputs(kind="frames", channels=40, length=60, variable_length=True)
        >>> from .configs import RNNConfig
        >>> model = RecurrentFrames(inputs, 12, **RNNConfig(cell="gru", hidden_size=16).arguments())
        >>> model(*model.example_inputs(3)).shape
        torch.Size([3, 30, 12])
    """

    def __init__(self, inputs: Inputs, output_size: int, *, cell: str, hidden_size: int, num_layers: int,
                 bidirectional: bool, dropout: float, pooling: str, embedding_size: int, head: list[int],
                 attention: str):
        super().__init__(inputs, hidden_size)
        self.embed = None  # encode_steps reads frames as they are
        self.rnn = CELLS[cell](hidden_size, hidden_size, num_layers=num_layers, batch_first=True,
                               bidirectional=bidirectional, dropout=dropout if num_layers > 1 else 0.0)
        features = hidden_size * (2 if bidirectional else 1)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.head = dense_head(features, list(head), output_size, "relu", dropout)

    def read(self, h: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        outputs, _ = encode_steps(self, h, lengths)
        return self.dropout(outputs)


class TransformerFrames(FrameReader):
    """A convolution halving the frames (``d_model`` channels), positions, and a pre-norm Transformer
    encoder over the frames (each attending to its clip's frames only), then a dense head per
    frame.

    Args:
        inputs: a clip's frames (``Inputs`` of kind 'frames').
        output_size: the blank and the transcript's tokens.
        d_model, num_heads, num_layers, ff_size, dropout, positional, head: see
            ``TransformerConfig``; the rest are the classifier's and the encoder-decoder's.
    """

    # TorchScript cannot export the Transformer encoder's fused kernel
    exporters = ("dynamo", "torchscript")

    def __init__(self, inputs: Inputs, output_size: int, *, d_model: int, num_heads: int, num_layers: int,
                 decoder_layers: int | None, ff_size: int | None, dropout: float, positional: str, pooling: str,
                 causal: bool, patch_size: int | None, max_length: int | None, head: list[int]):
        super().__init__(inputs, d_model)
        longest = (inputs.length - 1) // self.stride + 1  # the most frames the encoder reads
        if positional == "learned":
            self.positions = nn.Parameter(torch.randn(longest, d_model) * 0.02)
        else:
            self.register_buffer("positions", sinusoidal_positions(longest, d_model), persistent=False)
        layer = nn.TransformerEncoderLayer(d_model, num_heads, ff_size or 4 * d_model, dropout, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        self.head = dense_head(d_model, list(head), output_size, "gelu", dropout)

    def read(self, h: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        h = self.dropout(h.transpose(1, 2) + self.positions[: h.shape[-1]])  # (B, T, D)
        return self.norm(self.encoder(h, src_key_padding_mask=~length_mask(lengths, h.shape[1])))


def build_recurrent(config, inputs: Inputs, output_size: int) -> RecurrentFrames:
    """The frame reader of an ``rnn`` model on speech to transcribe."""
    return RecurrentFrames(inputs, output_size, **config.arguments())


def build_transformer(config, inputs: Inputs, output_size: int) -> TransformerFrames:
    """The frame reader of a ``transformer`` model on speech to transcribe."""
    return TransformerFrames(inputs, output_size, **config.arguments())
