"""Encoder-decoder networks for text pairs (sequence-to-sequence): the Transformer of Vaswani et
al. (2017), and the recurrent encoder-decoder with attention of Bahdanau et al. (2015) and Luong
et al. (2015), where neural translation started.

Each reads a source text's token ids with their lengths and the answer's first tokens (teacher
forcing: the start token and the target shifted by one), and gives the next token's logits at
every position of the answer. Answers are written a token at a time by a search over two parts
of the network, which are also its two exported graphs: ``encode_rows`` reads the source once,
``next_log_probs`` gives the next token's log-probabilities for answers written so far (each
with its source's encoding). The search itself (``layerforge.beams``) is numpy, shared by every
backend.
"""

from __future__ import annotations

import torch
from torch import nn

from ..nn.layers import length_mask, masked_mean, sinusoidal_positions
from .inputs import Inputs
from .protocol import Graph, Network
from .rnn import CELLS, encode_steps


class _Encoding(nn.Module):
    """The encoder part of an encoder-decoder, as a module of its own (an exported graph)."""

    def __init__(self, network: EncoderDecoder):
        super().__init__()
        self.network = network

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.network.encode_rows(x, lengths)


class _NextToken(nn.Module):
    """The decoder part of an encoder-decoder, as a module of its own (an exported graph)."""

    def __init__(self, network: EncoderDecoder):
        super().__init__()
        self.network = network

    def forward(self, memory: torch.Tensor, lengths: torch.Tensor, prefix: torch.Tensor) -> torch.Tensor:
        return self.network.next_log_probs(memory, lengths, prefix)


class EncoderDecoder(Network):
    """What both encoder-decoders share: the forward pass, the search's two parts and their
    export. Subclasses give ``encode_rows``, ``decode`` and ``out`` (the output layer)."""

    out: nn.Linear

    def encode_rows(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Source ids (B, L) and lengths (B,) -> the encoding the decoder attends to (B, L, D)."""
        raise NotImplementedError

    def decode(self, memory: torch.Tensor, lengths: torch.Tensor, prefix: torch.Tensor) -> torch.Tensor:
        """The features of every position of the answers ``prefix`` (B, T) -> (B, T, F)."""
        raise NotImplementedError

    def features(self, x: torch.Tensor, lengths: torch.Tensor | None = None,
                 prefix: torch.Tensor | None = None) -> torch.Tensor:
        lengths = lengths if lengths is not None else torch.full((len(x),), x.shape[1], device=x.device)
        return self.decode(self.encode_rows(x, lengths), lengths, prefix)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None,
                prefix: torch.Tensor | None = None) -> torch.Tensor:
        """Next-token logits (B, T, V) at every position of the answers ``prefix`` (B, T)."""
        if prefix is None:
            raise TypeError("an encoder-decoder reads the answer's first tokens too (teacher forcing); its answers "
                            "come from a search (layerforge.decodings.Texts)")
        return self.out(self.features(x, lengths, prefix))

    def next_log_probs(self, memory: torch.Tensor, lengths: torch.Tensor, prefix: torch.Tensor) -> torch.Tensor:
        """The log-probabilities of the token after each answer written so far (n, V)."""
        return self.out(self.decode(memory, lengths, prefix)[:, -1]).float().log_softmax(-1)

    def attention(self, x: torch.Tensor, lengths: torch.Tensor, prefix: torch.Tensor) -> torch.Tensor:
        """How much each position of the answers ``prefix`` (B, T) attends to each source
        position (B, T, L), each row summing to 1 over the source's real tokens (the report's
        attention maps)."""
        raise NotImplementedError

    @property
    def output_layer(self) -> nn.Linear:
        return self.out

    def graphs(self) -> dict[str, nn.Module]:
        """The parts a search runs, by name: the names of the exported graphs."""
        return {"encoder": _Encoding(self), "decoder": _NextToken(self)}

    # TorchScript cannot export the Transformer encoder's fused kernel
    exporters = ("dynamo", "torchscript")

    def export_graphs(self) -> list[Graph]:
        x, lengths, _ = self.example_inputs(2)
        parts = self.graphs()
        encoder = Graph("encoder", parts["encoder"], (x, lengths), ["x", "lengths"],
                        dynamic={"x": {0: "batch", 1: "steps"}, "lengths": {0: "batch"}})
        with torch.no_grad():
            memory = parts["encoder"](x, lengths)
        prefix = torch.randint(1, self.inputs.target_vocab_size, (2, 3), generator=torch.Generator().manual_seed(0))
        decoder = Graph("decoder", parts["decoder"], (memory, lengths, prefix), ["memory", "lengths", "prefix"],
                        dynamic={"memory": {0: "batch", 1: "steps"}, "lengths": {0: "batch"},
                                 "prefix": {0: "batch", 1: "answer_steps"}},
                        from_rows=self._decoder_rows, limits={"answer_steps": self.inputs.target_length})
        return [encoder, decoder]

    def _decoder_rows(self, rows: tuple) -> tuple[torch.Tensor, ...]:
        """The decoder graph's inputs for encoded rows: their encoding, and answers of a few
        tokens drawn at random (seeded)."""
        x, lengths = rows[0], rows[1]
        with torch.no_grad():
            memory = self.eval().encode_rows(x, lengths)
        generator = torch.Generator().manual_seed(0)
        steps = min(5, self.inputs.target_length - 1)
        return memory, lengths, torch.randint(1, self.inputs.target_vocab_size, (len(x), steps), generator=generator)


class TransformerSeq2Seq(EncoderDecoder):
    """A pre-norm Transformer encoder over the source and a decoder over the answer, attending to
    the encoding (causal self-attention, cross-attention to the source's real tokens).

    Args:
        inputs: text pairs (``Inputs`` of kind 'pairs').
        output_size: the target vocabulary (with its start and end tokens).
        d_model, num_heads, num_layers (the encoder's), decoder_layers (default: num_layers),
            ff_size, dropout, positional: see ``TransformerConfig``; pooling, causal,
            patch_size, max_length and head are the classifier's and are not used here.

    Example:
        >>> inputs = Inputs(kind="pairs", vocab_size=20, length=12, variable_length=True,
        ...                 target_vocab_size=15, target_length=10)
        >>> from .configs import TransformerConfig
        >>> model = TransformerSeq2Seq(inputs, 15, **TransformerConfig(d_model=16, num_heads=2).arguments())
        >>> model(*model.example_inputs(3)).shape
        torch.Size([3, 9, 15])
    """

    def __init__(self, inputs: Inputs, output_size: int, *, d_model: int, num_heads: int, num_layers: int,
                 decoder_layers: int | None, ff_size: int | None, dropout: float, positional: str, pooling: str,
                 causal: bool, patch_size: int | None, max_length: int | None, head: list[int]):
        super().__init__(inputs)
        self.d_model = d_model
        self.embed = nn.Embedding(inputs.vocab_size, d_model)
        self.target_embed = nn.Embedding(inputs.target_vocab_size, d_model)
        longest = max(inputs.length, inputs.target_length)
        if positional == "learned":
            self.positions = nn.Parameter(torch.randn(longest, d_model) * 0.02)
        else:
            self.register_buffer("positions", sinusoidal_positions(longest, d_model), persistent=False)
        width = ff_size or 4 * d_model
        encoder_layer = nn.TransformerEncoderLayer(d_model, num_heads, width, dropout, activation="gelu",
                                                   batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(encoder_layer, num_layers, enable_nested_tensor=False)
        decoder_layer = nn.TransformerDecoderLayer(d_model, num_heads, width, dropout, activation="gelu",
                                                   batch_first=True, norm_first=True)
        self.decoder = nn.TransformerDecoder(decoder_layer, decoder_layers or num_layers)
        self.encoder_norm, self.decoder_norm = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(d_model, output_size)

    def _placed(self, embedded: torch.Tensor) -> torch.Tensor:
        return self.dropout(embedded * self.d_model ** 0.5 + self.positions[: embedded.shape[1]])

    def encode_rows(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        padding = ~length_mask(lengths, x.shape[1])
        h = self.encoder(self._placed(self.embed(x)), src_key_padding_mask=padding)
        return self.encoder_norm(h)

    def decode(self, memory: torch.Tensor, lengths: torch.Tensor, prefix: torch.Tensor) -> torch.Tensor:
        steps = prefix.shape[1]
        causal = torch.triu(torch.full((steps, steps), float("-inf"), device=prefix.device), diagonal=1)
        h = self.decoder(self._placed(self.target_embed(prefix)), memory, tgt_mask=causal, tgt_is_causal=True,
                         memory_key_padding_mask=~length_mask(lengths, memory.shape[1]))
        return self.decoder_norm(h)


    def attention(self, x: torch.Tensor, lengths: torch.Tensor, prefix: torch.Tensor) -> torch.Tensor:
        """The last decoder layer's attention to the source, averaged over its heads."""
        memory = self.encode_rows(x, lengths)
        steps = prefix.shape[1]
        causal = torch.triu(torch.full((steps, steps), float("-inf"), device=prefix.device), diagonal=1)
        padding = ~length_mask(lengths, memory.shape[1])
        h = self._placed(self.target_embed(prefix))
        *earlier, last = self.decoder.layers
        for layer in earlier:
            h = layer(h, memory, tgt_mask=causal, tgt_is_causal=True, memory_key_padding_mask=padding)
        h = h + last._sa_block(last.norm1(h), causal, None, is_causal=True)
        _, weights = last.multihead_attn(last.norm2(h), memory, memory, key_padding_mask=padding, need_weights=True,
                                         average_attn_weights=True)
        return weights  # (B, T, L)


class RecurrentSeq2Seq(EncoderDecoder):
    """A recurrent encoder (rnn, lstm or gru; bidirectional if asked) and a recurrent decoder of
    the same cell whose every step attends to the encoder's outputs: ``attention: luong`` scores
    a source position by a bilinear form of the decoder's state and the position's output (Luong
    et al.'s "general" score), ``bahdanau`` by a small network of both (Bahdanau et al.'s additive
    score). The decoder starts from the mean of the source's outputs; its output and the
    attended source are combined before the output layer (Luong et al.'s attentional state).

    Args:
        inputs: text pairs (``Inputs`` of kind 'pairs').
        output_size: the target vocabulary (with its start and end tokens).
        cell, hidden_size, num_layers, bidirectional, dropout, embedding_size, attention: see
            ``RNNConfig``; pooling and head are the classifier's and are not used here.
    """

    def __init__(self, inputs: Inputs, output_size: int, *, cell: str, hidden_size: int, num_layers: int,
                 bidirectional: bool, dropout: float, pooling: str, embedding_size: int, head: list[int],
                 attention: str):
        super().__init__(inputs)
        self.embed = nn.Embedding(inputs.vocab_size, embedding_size)
        self.rnn = CELLS[cell](embedding_size, hidden_size, num_layers=num_layers, batch_first=True,
                               bidirectional=bidirectional, dropout=dropout if num_layers > 1 else 0.0)
        features = hidden_size * (2 if bidirectional else 1)
        self.target_embed = nn.Embedding(inputs.target_vocab_size, embedding_size)
        self.decoder = CELLS[cell](embedding_size, features, num_layers=num_layers, batch_first=True,
                                   dropout=dropout if num_layers > 1 else 0.0)
        self.start = nn.Linear(features, features * num_layers)
        self.scoring = attention
        if attention == "bahdanau":
            self.query, self.key = nn.Linear(features, features, bias=False), nn.Linear(features, features)
            self.score = nn.Linear(features, 1, bias=False)
        else:
            self.query = nn.Linear(features, features, bias=False)
        self.combine = nn.Linear(2 * features, features)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(features, output_size)

    # torch.export unrolls the decoder's steps for the example's answer length; TorchScript keeps
    # them one recurrent node of any length
    exporters = ("torchscript", "dynamo")

    def encode_rows(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        outputs, _ = encode_steps(self, x, lengths)
        return outputs  # (B, L, F), zero past each length

    def attend(self, states: torch.Tensor, memory: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The attention weights (B, T, L) of each decoder state over the source's real positions."""
        if self.scoring == "bahdanau":
            scores = self.score(torch.tanh(self.query(states)[:, :, None] + self.key(memory)[:, None])).squeeze(-1)
        else:
            scores = self.query(states) @ memory.transpose(1, 2)
        real = length_mask(lengths, memory.shape[1])[:, None]  # (B, 1, L)
        return scores.masked_fill(~real, float("-inf")).softmax(-1)

    def _states(self, memory: torch.Tensor, lengths: torch.Tensor, prefix: torch.Tensor) -> torch.Tensor:
        """The decoder's recurrent state after each token of the answers begun (B, T, F)."""
        mean = masked_mean(memory, length_mask(lengths, memory.shape[1]), dim=1)  # (B, F)
        layers = self.decoder.num_layers
        first = torch.tanh(self.start(mean)).unflatten(1, (layers, -1)).transpose(0, 1).contiguous()  # (layers, B, F)
        state = (first, torch.zeros_like(first)) if isinstance(self.decoder, nn.LSTM) else first
        return self.decoder(self.dropout(self.target_embed(prefix)), state)[0]

    def decode(self, memory: torch.Tensor, lengths: torch.Tensor, prefix: torch.Tensor) -> torch.Tensor:
        states = self._states(memory, lengths, prefix)  # (B, T, F)
        context = self.attend(states, memory, lengths) @ memory  # (B, T, F)
        return self.dropout(torch.tanh(self.combine(torch.cat([states, context], dim=-1))))

    def attention(self, x: torch.Tensor, lengths: torch.Tensor, prefix: torch.Tensor) -> torch.Tensor:
        memory = self.encode_rows(x, lengths)
        return self.attend(self._states(memory, lengths, prefix), memory, lengths)


def build_transformer(config, inputs: Inputs, output_size: int) -> TransformerSeq2Seq:
    """The encoder-decoder of a ``transformer`` model on text pairs."""
    return TransformerSeq2Seq(inputs, output_size, **config.arguments())


def build_recurrent(config, inputs: Inputs, output_size: int) -> RecurrentSeq2Seq:
    """The encoder-decoder of an ``rnn`` model on text pairs."""
    return RecurrentSeq2Seq(inputs, output_size, **config.arguments())
