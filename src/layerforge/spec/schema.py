"""The spec: pydantic models for every section. Keys equal the constructor arguments they feed.

Names that resolve through registries (activations, inits, losses, optimizers, schedules,
built-in datasets) are checked here, so a spec is validated completely before anything is built.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from ..data.builtin import DATASETS
from ..errors import unknown_name
from ..nn.activations import ACTIVATIONS
from ..nn.init import INITS
from ..tasks import TASKS
from ..training import losses as _losses
from ..training.optim import OPTIMIZERS, SCHEDULES, check_params

PositiveInt = Annotated[int, Field(gt=0)]
PositiveFloat = Annotated[float, Field(gt=0)]
NonNegativeFloat = Annotated[float, Field(ge=0)]
Fraction = Annotated[float, Field(ge=0, lt=1)]


def _problem(message: str, key: str | None = None) -> PydanticCustomError:
    """A validation problem; ``key`` names the sub-key it concerns, for the error's path."""
    return PydanticCustomError("layerforge", message.replace("{", "(").replace("}", ")"),
                               {"key": key} if key else None)


def _raise_first(problems: list[tuple[str, str]]) -> None:
    if problems:
        key = problems[0][0]
        raise _problem("; ".join(m if k == key else f"{k}: {m}" for k, m in problems), key)


def _check_name(kind: str, value: str, table) -> str:
    if value not in table:
        raise _problem(unknown_name(kind, value, table))
    return value


def _known_activation(value: str) -> str:
    return _check_name("activation", value, ACTIVATIONS)


def _known_init(value: str) -> str:
    return _check_name("init", value, INITS)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class SplitSpec(_Section):
    """Fractions of the rows held out for validation and test."""

    val: Fraction = 0.15
    test: Fraction = 0.15
    stratify: bool = True
    shuffle: bool = True

    @model_validator(mode="after")
    def _fractions_leave_training_rows(self):
        if self.val + self.test >= 1:
            raise ValueError(
                f"val + test must be below 1 so rows remain for training, got "
                f"{self.val} + {self.test}"
            )
        return self


class AugmentSpec(_Section):
    """Batch-wise augmentation of training inputs (sequences and images)."""

    flip: bool = False
    shift: Annotated[int, Field(ge=0)] = 0
    rotate: Annotated[float, Field(ge=0, le=180)] = 0.0
    noise: NonNegativeFloat = 0.0
    scale: Fraction = 0.0
    cutout: Annotated[int, Field(ge=0)] = 0


class TokenizerSpec(_Section):
    """How text becomes token ids; fitted on the training split."""

    kind: Literal["char", "word", "bpe"] = "char"
    vocab_size: Annotated[int, Field(ge=3)] = 2000
    max_length: PositiveInt = 256
    lowercase: bool = False


class DataSpec(_Section):
    """Where the rows come from and which column is the target."""

    dataset: str | None = None
    path: str | None = None
    kind: Literal["table", "sequence", "image", "forecast", "text", "corpus"] | None = None
    target: str | None = None
    features: list[str] | None = None
    drop: list[str] = []
    categorical: list[str] = []
    unknown_categories: Literal["error", "bucket"] = "error"
    split: SplitSpec = SplitSpec()
    augment: AugmentSpec | None = None
    # forecasting
    lookback: PositiveInt | None = None
    horizon: PositiveInt = 1
    season: PositiveInt | None = None
    test_size: PositiveInt | None = None
    log: bool = False
    relative: bool = False
    # sequences in long format: one row per time step
    id: str | None = None
    time: str | None = None
    # images
    image_size: tuple[PositiveInt, PositiveInt] | None = None
    channels: Literal[1, 3] | None = None
    # text
    text: str | None = None
    tokenizer: TokenizerSpec = TokenizerSpec()
    context: PositiveInt = 128
    # anomaly detection: rows of these target classes are kept out of training and validation
    anomaly_classes: list[int | str] | None = None

    @field_validator("dataset")
    @classmethod
    def _known_dataset(cls, value):
        return value if value is None else _check_name("dataset", value, DATASETS)

    @field_validator("path")
    @classmethod
    def _existing_file(cls, value, info: ValidationInfo):
        if value is None:
            return value
        path = Path(value).expanduser()
        base = (info.context or {}).get("base_dir")
        if not path.is_absolute() and base is not None:
            path = Path(base) / path
        if path.is_dir():
            return str(path.resolve())  # a folder of images, one subfolder per class
        if path.suffix.lower() not in (".csv", ".tsv", ".parquet", ".pq", ".npz", ".txt"):
            raise _problem(f"expected a .csv, .tsv, .parquet, .npz or .txt file, or a folder of images, got '{value}'")
        if not path.is_file():
            raise _problem(f"file not found: {path}")
        return str(path.resolve())

    @model_validator(mode="after")
    def _one_source(self):
        if (self.dataset is None) == (self.path is None):
            choices = ", ".join(sorted(DATASETS))
            raise ValueError(
                "give exactly one of 'dataset' (a built-in: "
                f"{choices}) or 'path' (a .csv or .parquet file)"
            )
        return self


class MLPSpec(_Section):
    """A feedforward network: hidden layers of ``activation(Wx + b)``."""

    type: Literal["mlp"] = "mlp"
    layers: list[PositiveInt] = [128, 64]
    activation: str = "relu"
    dropout: Fraction = 0.0
    norm: Literal["none", "batch", "layer"] = "none"
    init: str = "kaiming"

    _known_activation = field_validator("activation")(_known_activation)
    _known_init = field_validator("init")(_known_init)


class CNNSpec(_Section):
    """Convolution blocks (1-D for sequences, 2-D for images), global pooling, dense head."""

    type: Literal["cnn"] = "cnn"
    channels: list[PositiveInt] = [32, 64, 128]
    kernel_size: PositiveInt | list[PositiveInt] = 3
    stride: PositiveInt = 1
    padding: Literal["same", "valid"] | Annotated[int, Field(ge=0)] = "same"
    dilation: PositiveInt = 1
    pool: Literal["max", "avg", "none"] = "max"
    pool_size: PositiveInt = 2
    norm: Literal["none", "batch", "layer"] = "batch"
    activation: str = "relu"
    dropout: Fraction = 0.0
    residual: bool = False
    head: list[PositiveInt] = [128]
    init: str = "kaiming"

    _known_activation = field_validator("activation")(_known_activation)
    _known_init = field_validator("init")(_known_init)

    @model_validator(mode="after")
    def _kernel_per_block(self):
        if isinstance(self.kernel_size, list) and len(self.kernel_size) != len(self.channels):
            raise _problem(
                f"give one kernel size per block: channels has {len(self.channels)} entries, "
                f"kernel_size has {len(self.kernel_size)}", "kernel_size",
            )
        if self.padding == "same" and self.stride != 1:
            raise _problem("padding 'same' needs stride 1; use padding: valid or a number", "padding")
        return self


class RNNSpec(_Section):
    """A recurrent encoder (rnn, lstm, gru), pooling over time, dense head."""

    type: Literal["rnn"] = "rnn"
    cell: Literal["rnn", "lstm", "gru"] = "lstm"
    hidden_size: PositiveInt = 64
    num_layers: PositiveInt = 1
    bidirectional: bool = False
    dropout: Fraction = 0.0
    pooling: Literal["last", "mean", "max", "attention"] = "last"
    embedding_size: PositiveInt = 64
    head: list[PositiveInt] = []


class TransformerSpec(_Section):
    """A pre-norm self-attention encoder; ``causal: true`` makes it a language model."""

    type: Literal["transformer"] = "transformer"
    d_model: PositiveInt = 64
    num_heads: PositiveInt = 4
    num_layers: PositiveInt = 2
    ff_size: PositiveInt | None = None
    dropout: Fraction = 0.1
    positional: Literal["sinusoidal", "learned"] = "sinusoidal"
    pooling: Literal["cls", "mean"] = "cls"
    causal: bool = False
    patch_size: PositiveInt | None = None
    max_length: PositiveInt | None = None
    head: list[PositiveInt] = []

    @model_validator(mode="after")
    def _heads_divide_width(self):
        if self.d_model % self.num_heads:
            raise _problem(f"d_model ({self.d_model}) must be a multiple of num_heads ({self.num_heads})", "num_heads")
        if self.positional == "sinusoidal" and self.d_model % 2:
            raise _problem("sinusoidal positions need an even d_model", "d_model")
        return self


class NoiseSpec(_Section):
    """Input corruption: ``gaussian`` adds noise of standard deviation ``amount`` (inputs are
    standardised); ``mask`` sets a fraction ``amount`` of the inputs to their mean."""

    kind: Literal["gaussian", "mask"] = "gaussian"
    amount: Annotated[float, Field(gt=0, le=5)] = 0.3

    @model_validator(mode="after")
    def _mask_is_a_fraction(self):
        if self.kind == "mask" and self.amount >= 1:
            raise _problem(f"a mask hides a fraction of the inputs; expected a number < 1, got {self.amount}", "amount")
        return self


class AutoencoderSpec(_Section):
    """An encoder to ``latent_size`` numbers and a decoder back; ``plain``, ``denoising`` or
    ``variational``. ``layers`` (mlp) or ``channels`` (cnn) give the encoder; the decoder mirrors it."""

    type: Literal["autoencoder"] = "autoencoder"
    variant: Literal["plain", "denoising", "variational"] = "plain"
    blocks: Literal["mlp", "cnn"] = "mlp"
    layers: list[PositiveInt] = [128, 64]
    channels: list[PositiveInt] = [16, 32]
    kernel_size: PositiveInt = 3
    latent_size: PositiveInt = 8
    activation: str = "relu"
    norm: Literal["none", "batch", "layer"] = "none"
    dropout: Fraction = 0.0
    init: str = "kaiming"
    noise: NoiseSpec = NoiseSpec()
    beta: NonNegativeFloat = 1.0
    threshold_quantile: Annotated[float, Field(gt=0, lt=1)] = 0.95

    _known_activation = field_validator("activation")(_known_activation)
    _known_init = field_validator("init")(_known_init)

    @model_validator(mode="after")
    def _options_fit_variant(self):
        if self.beta != 1.0 and self.variant != "variational":
            raise _problem(f"beta weighs the KL term of a variational autoencoder; this one is {self.variant}",
                           "beta")
        if self.kernel_size % 2 == 0:
            raise _problem(f"expected an odd kernel size (it keeps the length), got {self.kernel_size}",
                           "kernel_size")
        return self


class GANSpec(_Section):
    """A generator from ``latent_size`` random numbers (plus a class when ``conditional``) and a
    discriminator, from mlp layers or DCGAN-style cnn blocks."""

    type: Literal["gan"] = "gan"
    blocks: Literal["mlp", "cnn"] = "mlp"
    latent_size: PositiveInt = 32
    conditional: bool = False
    generator: list[PositiveInt] = [128, 256]
    discriminator: list[PositiveInt] = [256, 128]
    generator_activation: str = "relu"
    discriminator_activation: str = "leaky_relu"
    norm: Literal["none", "batch", "layer"] = "batch"
    dropout: Fraction = 0.0
    spectral_norm: bool = False
    ema: Annotated[float, Field(ge=0, lt=1)] | None = None

    _known_generator_activation = field_validator("generator_activation")(_known_activation)
    _known_discriminator_activation = field_validator("discriminator_activation")(_known_activation)


ModelSpec = Annotated[MLPSpec | CNNSpec | RNNSpec | TransformerSpec | AutoencoderSpec | GANSpec,
                      Field(discriminator="type")]


def _name_shorthand(value: Any) -> Any:
    """Let ``optimizer: adam`` stand for ``optimizer: {name: adam}``."""
    return {"name": value} if isinstance(value, str) else value


class LossSpec(BaseModel):
    """A loss by name, plus its parameters (user-registered losses take any keys)."""

    model_config = ConfigDict(extra="allow")
    name: str
    label_smoothing: Fraction | None = None
    delta: PositiveFloat | None = None
    margin: PositiveFloat | None = None
    gp_weight: NonNegativeFloat | None = None

    _shorthand = model_validator(mode="before")(_name_shorthand)

    @model_validator(mode="after")
    def _known_loss(self):
        problems = _losses.check(self.name, self.params(), task=None)
        if problems:
            raise _problem("; ".join(problems))
        return self

    def params(self) -> dict[str, Any]:
        """The keys given besides ``name``."""
        data = self.model_dump(exclude={"name"}, exclude_none=True)
        return {k: v for k, v in data.items() if k in self.model_fields_set or k in (self.model_extra or {})}


class OptimizerSpec(_Section):
    """An optimizer by name; only the keys given are passed on, so torch defaults apply."""

    name: str = "adam"
    lr: PositiveFloat = 1e-3
    weight_decay: NonNegativeFloat | None = None
    momentum: Fraction | None = None
    nesterov: bool | None = None
    dampening: Fraction | None = None
    betas: tuple[Fraction, Fraction] | None = None
    eps: PositiveFloat | None = None
    alpha: Fraction | None = None
    centered: bool | None = None
    amsgrad: bool | None = None
    lr_decay: NonNegativeFloat | None = None

    _shorthand = model_validator(mode="before")(_name_shorthand)

    @model_validator(mode="after")
    def _params_fit_optimizer(self):
        _raise_first(check_params("optimizer", OPTIMIZERS, self.name, self.params()))
        return self

    def params(self) -> dict[str, Any]:
        """Keyword arguments for the torch optimizer: lr plus the keys given."""
        given = self.model_dump(include=self.model_fields_set - {"name"}, exclude_none=True)
        return {"lr": self.lr, **given}


class ScheduleSpec(_Section):
    """A learning-rate schedule by name, with optional linear warmup."""

    name: str = "none"
    warmup_epochs: NonNegativeFloat = 0.0
    step_size: PositiveInt | None = None
    gamma: Annotated[float, Field(gt=0, le=1)] | None = None
    min_lr: NonNegativeFloat | None = None
    pct_start: Annotated[float, Field(gt=0, lt=1)] | None = None
    div_factor: PositiveFloat | None = None
    final_div_factor: PositiveFloat | None = None
    monitor: str | None = None
    patience: Annotated[int, Field(ge=0)] | None = None
    factor: Annotated[float, Field(gt=0, lt=1)] | None = None

    _shorthand = model_validator(mode="before")(_name_shorthand)

    @model_validator(mode="after")
    def _params_fit_schedule(self):
        _raise_first(check_params("schedule", SCHEDULES, self.name, self.params()))
        return self

    def params(self) -> dict[str, Any]:
        """The schedule-specific keys given (not name or warmup_epochs)."""
        keys = self.model_fields_set - {"name", "warmup_epochs"}
        return self.model_dump(include=keys, exclude_none=True)


class EarlyStoppingSpec(_Section):
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs."""

    monitor: str = "val_loss"
    patience: PositiveInt = 10
    min_delta: NonNegativeFloat = 0.0
    restore_best: bool = True

    @model_validator(mode="before")
    @classmethod
    def _true_means_defaults(cls, value):
        return {} if value is True else value


class TrainSpec(_Section):
    """How to train: epochs, batches, loss, optimizer, schedule and regularisation."""

    epochs: PositiveInt = 50
    batch_size: PositiveInt | Literal["full"] = 64
    loss: LossSpec | None = None
    optimizer: OptimizerSpec = OptimizerSpec()
    schedule: ScheduleSpec = ScheduleSpec()
    clip_grad_norm: PositiveFloat | None = None
    clip_grad_value: PositiveFloat | None = None
    l1: NonNegativeFloat = 0.0
    l2: NonNegativeFloat = 0.0
    early_stopping: EarlyStoppingSpec | None = None
    device: Literal["auto", "cpu", "cuda"] = "auto"
    checkpoint_every: PositiveInt = 1
    # GANs: the discriminator's own optimizer (default: the same as the generator's) and its
    # updates per generator update
    discriminator_optimizer: OptimizerSpec | None = None
    discriminator_steps: PositiveInt = 1
    # the training doctor (measurements and findings) and what to do when the loss diverges
    doctor: bool = True
    on_divergence: Literal["stop", "rollback"] = "stop"
    report: bool = True  # write report.html when training ends
    log: list[Literal["tensorboard"]] = []  # extra loggers (tensorboard: the tensorboard extra)

    @field_validator("early_stopping", mode="before")
    @classmethod
    def _false_means_off(cls, value):
        return None if value is False else value


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class Spec(_Section):
    """A whole run: data, task, model and training. The smallest spec names only the data."""

    name: str = "run"
    seed: Annotated[int, Field(ge=0)] = 0
    data: DataSpec
    task: str | None = None
    model: ModelSpec = MLPSpec()
    train: TrainSpec = TrainSpec()

    @field_validator("model", mode="before")
    @classmethod
    def _mlp_by_default(cls, value):
        if isinstance(value, dict) and "type" not in value:
            return {"type": "mlp", **value}
        return value

    @field_validator("name")
    @classmethod
    def _usable_as_directory(cls, value):
        if not _NAME.match(value) or len(value) > 80:
            raise _problem(
                f"expected letters, digits, '_', '-' or '.' (it names the run directory), got '{value}'"
            )
        return value

    @field_validator("task")
    @classmethod
    def _known_task(cls, value):
        return value if value is None else _check_name("task", value, TASKS)
