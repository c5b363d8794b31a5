"""What every layerforge network offers: the ``Network`` base of all model families.

* ``model(x, lengths=None)``: the forward pass (``lengths`` for padded sequences and texts).
* ``example_inputs(batch)``: random inputs of the shapes the network reads.
* ``trace(inputs, labels)``: run every layer once (layer summaries).
* Predictive families (MLP, CNN, RNN, Transformer) also expose ``features(x, lengths)``, the
  representation their last layer reads, and ``output_layer``, that last layer, which
  ``reset_head(n)`` replaces with a fresh one of ``n`` outputs (new classes, transfer learning).
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn

from ..errors import DataError
from ..nn.init import init_linear
from .inputs import Inputs

_FINITE_OUTPUTS = contextvars.ContextVar("finite_outputs", default=False)


@contextmanager
def finite_outputs() -> Iterator[None]:
    """Within the block, ``predict_outputs`` refuses outputs that are not finite numbers,
    naming the row (predictions for users: a NaN must never pass as an answer; training watches
    for divergence in its own way)."""
    token = _FINITE_OUTPUTS.set(True)
    try:
        yield
    finally:
        _FINITE_OUTPUTS.reset(token)


def _check_finite(outputs: torch.Tensor, first_row: int) -> None:
    bad = torch.nonzero(~torch.isfinite(outputs.reshape(len(outputs), -1).float()).all(dim=1))
    if len(bad):
        raise DataError(f"the model's outputs for row {first_row + int(bad[0]) + 1} are not finite numbers: "
                        f"that row lies far outside the values the model was trained on; check it")


def example_inputs(inputs: Inputs, batch: int = 2, *, seed: int = 0, device=None) -> tuple[torch.Tensor, ...]:
    """Random model inputs of the right shapes for ``inputs``; lengths are included (all full)
    when the inputs carry them. Drawn from their own generator: the global RNG is untouched."""
    generator = torch.Generator().manual_seed(seed)
    if inputs.interactions:  # a user's index and an item's, each from 1 (0: one the data did not hold)
        parts = (torch.randint(1, inputs.users, (batch,), generator=generator),
                 torch.randint(1, inputs.items, (batch,), generator=generator))
        return tuple(p.to(device) for p in parts) if device is not None else parts
    if inputs.tokens or inputs.pairs:
        x = torch.randint(1, inputs.vocab_size, (batch, inputs.length), generator=generator)
    else:
        x = torch.randn(batch, *inputs.shape, generator=generator)
    parts = (x,)
    if inputs.variable_length:
        parts += (torch.full((batch,), inputs.length, dtype=torch.long),)
    if inputs.pairs:  # the target's first tokens (teacher forcing)
        parts += (torch.randint(1, inputs.target_vocab_size, (batch, inputs.target_length - 1), generator=generator),)
    return tuple(p.to(device) for p in parts) if device is not None else parts


EVALUATION_ROWS = 1024  # rows per evaluation batch, unless a network says fewer


def among_scores(users: torch.Tensor, vectors: Callable[[torch.Tensor], torch.Tensor],
                 among: torch.Tensor) -> torch.Tensor:
    """Each row's products ``users[b] · vectors(among[b, n])`` (B, N), each distinct item's
    vector made once: a batch's candidates (items drawn for it, or the batch's own items) are
    one product of the users against them, not B x N vectors.

    >>> table = torch.eye(3)
    >>> among_scores(torch.tensor([[1.0, 2, 3]]), lambda items: table[items], torch.tensor([[2, 0, 2]])).tolist()
    [[3.0, 1.0, 3.0]]
    """
    unique, back = torch.unique(among, return_inverse=True)
    return torch.gather(users @ vectors(unique).T, 1, back)


@dataclass
class Graph:
    """One computation a network offers for export (``Network.export_graphs``).

    Attributes:
        name: the file it is written to (``<name>.onnx``) and what it is called in parity.json.
        module: the module that computes it, called with ``example`` inputs.
        example: example inputs (tensors), one per name in ``input_names``.
        input_names, output_names: the names the exported graph's inputs and outputs carry.
        dynamic: input name -> axes that may vary (axis -> name): the batch, and the steps of
            sequences and texts of unequal lengths.
        reads: what its first input holds: 'rows' (the data's encoded rows) or 'codes' (latent
            codes, drawn from a standard normal when sampling).
        classes: how many classes a 'labels' input takes (conditional generators), else 0.
        from_rows: makes the graph's inputs from the data's encoded rows, when they are not the
            rows themselves (a decoder's: the encoder's outputs and answers begun), or None.
        limits: dynamic axis name -> the most it may hold (the positions a network has).
    """

    name: str
    module: nn.Module
    example: tuple
    input_names: list[str]
    output_names: list[str] = field(default_factory=lambda: ["outputs"])
    dynamic: dict[str, dict[int, str]] = field(default_factory=dict)
    reads: str = "rows"
    classes: int = 0
    from_rows: Callable | None = None
    limits: dict[str, int] = field(default_factory=dict)

    @property
    def reads_rows(self) -> bool:
        """Whether it reads the data's encoded rows (rather than latent codes)."""
        return self.reads == "rows"


class Call(nn.Module):
    """A module whose forward is one method of ``network`` (first element of a tuple result)."""

    def __init__(self, network: nn.Module, method: str):
        super().__init__()
        self.network, self.method = network, method

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        result = getattr(self.network, self.method)(*inputs)
        return result[0] if isinstance(result, tuple) else result


class Network(nn.Module):
    """The base of every model family.

    Args:
        inputs: what one row of input holds; kept so the network can describe and exercise itself.
    """

    def __init__(self, inputs: Inputs):
        super().__init__()
        self.inputs = inputs

    def example_inputs(self, batch: int = 2, seed: int = 0) -> tuple[torch.Tensor, ...]:
        device = next(self.parameters()).device
        return example_inputs(self.inputs, batch, seed=seed, device=device)

    def graphs(self) -> dict[str, nn.Module]:
        """The computations a backend runs by name (what ``Decoding.outputs`` asks for): by
        default 'model', the forward pass."""
        return {"model": self}

    def hold(self, constants: dict) -> None:
        """Keep what the training data holds besides its rows (``Encoder.constants``: numpy
        arrays by name), before training; by default nothing is kept."""

    def trace(self, inputs: tuple, labels: torch.Tensor | None = None) -> None:
        """Run every layer once on ``inputs`` (``labels``: the classes, for conditional models)."""
        self(*inputs)

    # -- export ------------------------------------------------------------------------------

    # the ONNX exporters to try, in order, until one passes the parity check: 'torchscript'
    # (traces the forward pass) or 'dynamo' (torch.export)
    exporters: tuple[str, ...] = ("torchscript", "dynamo")

    def export_graphs(self) -> list[Graph]:
        """What an export writes: by default the forward pass, rows to outputs, with a dynamic
        batch (and dynamic steps when rows have unequal lengths)."""
        example = self.example_inputs(2)
        names = ["x", "lengths"][: len(example)]
        dynamic = {name: {0: "batch"} for name in names}
        if self.inputs.variable_length:
            dynamic["x"][1 if self.inputs.tokens else 2] = "steps"
        return [Graph("model", self, example, names, dynamic=dynamic)]

    # -- predictive families ----------------------------------------------------------------

    def features(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """The representation the output layer reads: (B, F), or (B, T, F) per position."""
        raise TypeError(f"a {type(self).__name__} generates rows; it has no feature extractor and head")

    @property
    def output_layer(self) -> nn.Linear:
        """The last layer: features to one number per output."""
        raise TypeError(f"a {type(self).__name__} generates rows; it has no output layer")

    @property
    def evaluation_rows(self) -> int:
        """Rows per batch when evaluating: many, where a row's activations are small."""
        return EVALUATION_ROWS

    def token_embedding(self) -> nn.Embedding | None:
        """The layer that turns token ids into vectors (where token attributions are taken), or
        None when the network does not read tokens."""
        embed = getattr(self, "embed", None)
        return embed if isinstance(embed, nn.Embedding) else None

    def manifest_options(self) -> dict:
        """Options model.json keeps beside the spec's, which rebuilding the network needs (a
        pretrained backbone's architecture, so the run rebuilds without its source)."""
        return {}

    def feature_keys(self) -> list[str]:
        """The state-dict keys of the feature extractor, in the order the layers run: what
        ``model.freeze: [features]`` freezes, and what transfer learning loads in order when the
        two networks name their layers differently. Default: everything but the output layer."""
        try:
            head = self.output_layer
        except TypeError:
            return list(self.state_dict())
        prefix = next(n for n, m in self.named_modules() if m is head) + "."
        return [key for key in self.state_dict() if not key.startswith(prefix)]

    def reset_head(self, output_size: int) -> None:
        """Replace the output layer by a freshly initialised one with ``output_size`` outputs."""
        old = self.output_layer
        name = next(n for n, m in self.named_modules() if m is old)
        parent_name, _, child = name.rpartition(".")
        parent = self.get_submodule(parent_name) if parent_name else self
        new = nn.Linear(old.in_features, output_size).to(old.weight.device, old.weight.dtype)
        init_linear(new, "xavier", "identity")
        parent._modules[child] = new


class DenseHeaded(Network):
    """A predictive network whose head is a dense stack (``self.head``, the output layer last)
    reading what ``pooled`` makes of the inputs: the CNN, RNN and Transformer families."""

    head: nn.Sequential

    def pooled(self, x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        """The representation the dense head reads: (B, F), or (B, T, F) per position."""
        raise NotImplementedError

    def features(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        return self.head[:-1](self.pooled(x, lengths))  # the head's hidden layers

    @property
    def output_layer(self) -> nn.Linear:
        return self.head[-1]

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.pooled(x, lengths))


def channels_last_pays(model: nn.Module, device: torch.device) -> bool:
    """Whether ``model`` has 2-D convolutions that run faster on feature maps stored channels
    last: on CUDA, and on x86-64 CPUs through oneDNN (measured on two cores: a training step of
    the CNNs tried 1.1-2.3x faster, evaluating 1.8-3x; other CPUs were not measured)."""
    if not any(isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) for m in model.modules()):
        return False
    if device.type == "cuda":
        return True
    import platform

    return (device.type == "cpu" and platform.machine().lower() in ("x86_64", "amd64")
            and torch.backends.mkldnn.is_available())


def in_fastest_layout(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` with its 4-D weights stored channels last where ``channels_last_pays`` (a
    convolution then reads its inputs in that layout, whatever theirs); unchanged otherwise."""
    return model.to(memory_format=torch.channels_last) if channels_last_pays(model, device) else model


def channels_last_inputs(inputs: tuple) -> tuple:
    """``inputs`` with images (4-D tensors) stored channels last, so a model in that layout
    does not convert every batch again."""
    return tuple(t.contiguous(memory_format=torch.channels_last) if t.dim() == 4 else t for t in inputs)


@torch.no_grad()
def predict_outputs(model: nn.Module, inputs, batch_size: int | None = None) -> torch.Tensor:
    """Model outputs for all rows of ``inputs`` (a tensor or tuple of tensors) in evaluation
    mode, batched to bound memory (by default the rows the network says fit its activations
    in cache, ``Network.evaluation_rows``; 1024 for anything else)."""
    batch_size = batch_size or getattr(model, "evaluation_rows", EVALUATION_ROWS)
    model.eval()
    inputs = tuple(inputs) if isinstance(inputs, (tuple, list)) else (inputs,)
    rows = len(inputs[0])
    parts = [model(*(t[i : i + batch_size] for t in inputs)) for i in range(0, rows, batch_size)]
    if _FINITE_OUTPUTS.get():
        for start, part in zip(range(0, rows, batch_size), parts):
            _check_finite(part, start)
    return torch.cat(parts)


class RelativeToLevel(Network):
    """Run ``model`` on a window taken relative to its recent level, then add the level back.

    For forecasting: the network sees the shape of the recent past, not its level, so it can
    follow a trend beyond the levels seen in training. The level is the mean of the target
    (channel 0) over the last ``span`` steps: a whole season when there is one, so that the
    level does not swing with the season.
    """

    def __init__(self, model: Network, span: int = 1):
        super().__init__(model.inputs)
        self.model, self.span = model, span

    def _shifted(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        level = x[:, :1, -self.span :].mean(dim=-1, keepdim=True)  # (B, 1, 1)
        shift = torch.zeros_like(x[:1, :, :1])  # (1, C, 1): only the target channel moves
        shift[:, 0] = 1.0
        return x - level * shift, level[:, :, 0]  # (B, C, L), (B, 1)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        shifted, level = self._shifted(x)
        return self.model(shifted, lengths) + level  # (B, horizon)

    def features(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        return self.model.features(self._shifted(x)[0], lengths)

    @property
    def output_layer(self) -> nn.Linear:
        return self.model.output_layer

    @property
    def exporters(self) -> tuple[str, ...]:
        return self.model.exporters
