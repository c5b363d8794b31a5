"""The spec: pydantic models for every section. Keys equal the constructor arguments they feed.

Names that resolve through registries (model families, tasks, data kinds, activations, inits,
losses, optimizers, schedules, built-in datasets) are checked here, so a spec is validated
completely before anything is built. The model section is the chosen family's configuration
(``layerforge.models.configs``).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializeAsAny,
    ValidationInfo,
    WrapValidator,
    field_validator,
    model_validator,
)

from .. import tasks
from ..data.builtin import DATASETS
from ..data.kinds import KINDS, kind_of
from ..errors import unknown_name
from ..fields import (
    FiniteFloat,
    FinitePositiveFloat,
    Fraction,
    NonNegativeFloat,
    PositiveFloat,
    PositiveInt,
    known,
    problem,
    raise_first,
)
from ..fields import Section as _Section
from ..models import FAMILIES
from ..models.configs import FamilyConfig, MLPConfig
from ..training import cadence
from ..training import losses as _losses
from ..training.optim import OPTIMIZERS, SCHEDULES, check_params


def _family_config(value: Any, handler, info: ValidationInfo) -> FamilyConfig:
    """The model section, validated by the configuration of the family its ``type`` names."""
    if isinstance(value, FamilyConfig):
        return value
    if not isinstance(value, dict):
        return handler(value)  # reports "expected a mapping"
    family = value.get("type", "mlp")
    if not isinstance(family, str) or family not in FAMILIES:
        raise problem(unknown_name("model type", family, FAMILIES), "type")
    return FAMILIES[family].config.model_validate({"type": family, **value})


# the model section: one family's configuration, chosen by ``type`` (default: mlp)
ModelSpec = Annotated[SerializeAsAny[FamilyConfig], WrapValidator(_family_config)]


class SplitSpec(_Section):
    """Fractions of the rows held out for validation and test."""

    val: Fraction = 0.15
    test: Fraction = 0.15
    stratify: bool = True
    shuffle: bool = True
    seed: int | None = None  # the split's own seed (default: the run's): runs that differ only in initialisation

    def seed_or(self, run_seed: int) -> int:
        """The seed that splits the rows: the split's own, else the run's."""
        return run_seed if self.seed is None else self.seed

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
    # SpecAugment for spectrograms (sound): bands of up to this many frames / frequency bands zeroed
    time_mask: Annotated[int, Field(ge=0)] = 0
    freq_mask: Annotated[int, Field(ge=0)] = 0
    # images: enlarge (a random crop scaled back) or shrink by a factor in [1 - zoom, 1 + zoom]
    zoom: Annotated[float, Field(ge=0, le=0.9)] = 0.0


class StreamSpec(_Section):
    """How a table larger than memory streams (``data.streaming``): rows are read in chunks by
    worker processes, mixed in a shuffle buffer, and encoded by preprocessing fitted on a sample."""

    shuffle_buffer: PositiveInt | Literal["auto"] = "auto"  # rows mixed before batches are cut; auto: 32 MB
    sample_rows: PositiveInt | Literal["auto"] = "auto"  # training rows the preprocessing is fitted on; auto: 16 MB
    held_out_rows: PositiveInt = 20_000  # most rows kept in each of the validation and test parts
    workers: Annotated[int, Field(ge=0)] | Literal["auto"] = "auto"  # reader processes; 0 reads in the loop
    chunk_rows: PositiveInt | Literal["auto"] = "auto"  # rows read at a time; auto: about 8 MB of values


class TokenizerSpec(_Section):
    """How text becomes token ids; fitted on the training split."""

    kind: Literal["char", "word", "bpe", "pretrained"] = "char"
    source: str | None = None  # kind pretrained: the pretrained model whose tokenizer.json is used
    vocab_size: Annotated[int, Field(ge=3)] = 2000
    max_length: PositiveInt = 256
    lowercase: bool = False


class DecodingSpec(_Section):
    """How a sequence-to-sequence model writes its answer a token at a time: greedy search
    (``beam_size`` 1) or beam search, the length penalty of beam search (answers are ranked by
    their summed log-probability over ``length ** length_penalty``) and the most tokens an answer
    may hold (default: the longest the model was trained for); how a detector's boxes are
    answered (``min_score``, ``overlap``)."""

    beam_size: PositiveInt = 1
    # detection: the least score of a box answered, and the IoU above which a better box of its
    # class suppresses it
    min_score: Fraction = 0.3
    overlap: Fraction = 0.5
    length_penalty: Annotated[float, Field(ge=0, le=5, allow_inf_nan=False)] = 1.0
    max_length: PositiveInt | None = None


ColumnType = Literal["number", "binary", "category", "date", "datetime", "text", "set", "vector", "image"]


class DataSpec(_Section):
    """Where the rows come from and which column is the target."""

    dataset: str | None = None
    path: str | None = None
    # rows given in memory (``lf.train(spec, data=frame)``): what they were; set by the library
    frame: Annotated[str, Field(max_length=200)] | None = None
    kind: str | None = None  # a data kind (table, sequence, image, forecast, text, corpus); default: from the file
    # the column to predict, or several (one head each: multi-target)
    target: str | Annotated[list[str], Field(min_length=2)] | None = None
    # multi-target: each target's weight in the loss (default 1 each)
    target_weights: dict[str, Annotated[float, Field(gt=0, allow_inf_nan=False)]] = {}
    # a list: the only feature columns; a mapping: column -> type for the columns it names (number,
    # binary, category, date, datetime, text, set, vector, image), the others typed by their cells
    features: list[str] | dict[str, ColumnType] | None = None
    drop: list[str] = []
    categorical: list[str] = []
    # a table's number columns: standardised, or mapped onto a normal by their training quantiles
    # (heavy tails and outliers)
    numbers: Literal["standard", "quantile"] = "standard"
    groups: str | None = None  # a column naming each row's group: splits keep a group's rows together
    unknown_categories: Literal["error", "bucket"] = "error"
    split: SplitSpec = SplitSpec()
    augment: AugmentSpec | None = None
    # a table file larger than memory: auto streams it when it would not fit (see StreamSpec)
    streaming: Literal["auto"] | bool = "auto"
    stream: StreamSpec = StreamSpec()
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
    # sequence-to-sequence pairs (data.kind: pairs): the source text column (data.target is the
    # target text's), the target side's tokenizer (default: data.tokenizer's options, fitted on
    # the target texts; shared: data.tokenizer fitted on both sides) and how answers are decoded;
    # speech (data.kind: speech): the column of sound files, the transcripts' tokenizer, the beam
    source: str | None = None
    target_tokenizer: TokenizerSpec | Literal["shared"] | None = None  # shared: one vocabulary for both sides
    decoding: DecodingSpec = DecodingSpec()
    # interactions (recommendation, data.kind: interactions): the user and the item column, and
    # the rating column of explicit feedback (none: every row is an interaction); data.time
    # orders each user's interactions, and the split holds each user's latest out
    user: str | None = None
    item: str | None = None
    # (false: every row is an interaction, a built-in's ratings left out; a ranking loss sets it)
    rating: str | Literal[False] | None = None
    # side columns: what the rows say of each user and each item (genres as a set, a year, a
    # title), typed as a table's columns are (data.features maps a column to its type); a
    # two-tower model reads them, each entity's from its latest training row
    user_features: list[str] = []
    item_features: list[str] = []
    # anomaly detection: rows of these target classes are kept out of training and validation
    anomaly_classes: list[int | str] | None = None

    @property
    def targets(self) -> list[str] | None:
        """Several target columns, when ``target`` lists them."""
        return list(self.target) if isinstance(self.target, list) else None

    @property
    def feature_list(self) -> list[str] | None:
        """The only feature columns, when ``features`` lists them."""
        return self.features if isinstance(self.features, list) else None

    @property
    def feature_types(self) -> dict[str, str]:
        """Column -> type, when ``features`` is a mapping."""
        return dict(self.features) if isinstance(self.features, dict) else {}

    @field_validator("dataset")
    @classmethod
    def _known_dataset(cls, value):
        return value if value is None else known("dataset", value, DATASETS)

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, value):
        return value if value is None else known("data kind", value, KINDS)

    @field_validator("path")
    @classmethod
    def _existing_file(cls, value, info: ValidationInfo):
        if value is None:
            return value
        path = Path(value).expanduser()
        context = info.context or {}
        base = context.get("base_dir")
        if not path.is_absolute() and base is not None:
            path = Path(base) / path
        if path.is_dir():
            return str(path.resolve())  # a folder of images, one subfolder per class
        if path.suffix.lower() not in (".csv", ".tsv", ".parquet", ".pq", ".npz", ".txt", ".json"):
            raise problem(f"expected a .csv, .tsv, .parquet, .npz, .txt or COCO .json file, or a folder of class "
                          f"folders (images, or sound clips with data.kind: audio), got '{value}'")
        if context.get("check_files", True):
            if path.exists() and not path.is_file():
                raise problem(f"{path} is not a regular file (a pipe or a device?); point data.path at a file")
            if not path.is_file():
                raise problem(f"file not found: {path}")
        return str(path.resolve())

    @model_validator(mode="after")
    def _targets_once(self):
        if isinstance(self.target, list) and len(set(self.target)) != len(self.target):
            twice = next(t for t in self.target if self.target.count(t) > 1)
            raise problem(f"names '{twice}' twice; list each target column once", "target")
        unknown = [name for name in self.target_weights if name not in (self.targets or [])]
        if unknown:
            raise problem(f"'{unknown[0]}' is not one of data.target's columns ({', '.join(self.targets or [])}); "
                          "weights are for several targets", "target_weights")
        return self

    @model_validator(mode="after")
    def _one_source(self):
        if sum(value is not None for value in (self.dataset, self.path, self.frame)) != 1:
            choices = ", ".join(sorted(DATASETS))
            raise ValueError(
                "give exactly one of 'dataset' (a built-in: "
                f"{choices}) or 'path' (a .csv or .parquet file)"
                + ("; rows given in memory (data=) take the place of both" if self.frame is not None else "")
            )
        return self

    @property
    def named(self) -> bool:
        """Whether the spec names its rows (a built-in, a file, or rows given in memory)."""
        return self.dataset is not None or self.path is not None or self.frame is not None

    @model_validator(mode="after")
    def _streams_files(self):
        if self.streaming is not True:
            return self
        table = self.path is not None and self.path.lower().endswith((".csv", ".tsv", ".parquet", ".pq")) \
            and self.kind in (None, "table") and not self.text
        folder = self.path is not None and "." not in Path(self.path).name and self.kind in (None, "image")
        if not (table or folder):
            raise problem("streams table files (.csv, .tsv, .parquet) and folders of images; built-in data sets, "
                          ".npz arrays, series and text are read into memory: remove it or set it to auto",
                          "streaming")
        return self


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
    # cross_entropy, dice, dice_ce: one weight per class, in the classes' order
    class_weights: Annotated[list[PositiveFloat], Field(min_length=2)] | None = None
    # bpr, sampled_softmax, bce on interactions: items drawn at random per interaction to rank below it
    negatives: Annotated[int, Field(ge=1, le=10_000)] | None = None
    # in_batch: each item's score less the log of its share of the training interactions
    correction: bool | None = None

    _shorthand = model_validator(mode="before")(_name_shorthand)

    @model_validator(mode="after")
    def _known_loss(self):
        problems = _losses.check(self.name, self.params(), task=None)
        if problems:
            raise problem("; ".join(problems))
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
        raise_first(check_params("optimizer", OPTIMIZERS, self.name, self.params()))
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
        raise_first(check_params("schedule", SCHEDULES, self.name, self.params()))
        return self

    def params(self) -> dict[str, Any]:
        """The schedule-specific keys given (not name or warmup_epochs)."""
        keys = self.model_fields_set - {"name", "warmup_epochs"}
        return self.model_dump(include=keys, exclude_none=True)


class AdversarialSpec(_Section):
    """Train on adversarial examples: ``method`` pgd (Madry et al.) or fgsm from a random start
    (fast adversarial training), within ``eps`` in the data's units (pixels in [0, 1] for images,
    standardised values otherwise), replacing a share ``ratio`` of every batch."""

    method: Literal["pgd", "fgsm"] = "pgd"
    eps: PositiveFloat
    steps: PositiveInt = 7
    ratio: Annotated[float, Field(gt=0, le=1)] = 1.0
    norm: Literal["linf", "l2"] = "linf"


class FairnessSpec(_Section):
    """Train so that the groups of the column ``sensitive`` are treated alike: ``reweigh``
    (Kamiran and Calders) draws the training rows with weights that make the label independent of
    the group (a group's rare label is drawn more often)."""

    sensitive: str = Field(min_length=1)
    method: Literal["reweigh"] = "reweigh"


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
    # every N epochs, or 'auto': after the first epoch, then once CHECKPOINT_SECONDS have passed
    # since the last checkpoint, and after the last epoch (short epochs do not pay a write each)
    checkpoint_every: PositiveInt | Literal["auto"] = "auto"
    # validate after every N epochs and after the last; early stopping and a plateau schedule
    # decide on those epochs, their patience still counted in epochs. 'auto': every epoch while
    # early stopping or a plateau schedule watches a val_ metric, else as training.cadence has
    # it (every epoch of a run of up to 100; a longer run about 50 times)
    validate_every: PositiveInt | Literal["auto"] = "auto"
    # GANs: the discriminator's own optimizer (default: the same as the generator's) and its
    # updates per generator update
    discriminator_optimizer: OptimizerSpec | None = None
    discriminator_steps: PositiveInt = 1
    # the training doctor (measurements and findings) and what to do when the loss diverges
    doctor: bool = True
    on_divergence: Literal["stop", "rollback"] = "stop"
    calibrate: Literal["none", "temperature"] = "none"  # temperature scaling on the validation rows
    # transfer learning: each layer further from the output learns at this fraction of the rate of
    # the next one (e.g. 0.5), and the layers of model.freeze learn again from this epoch (1-based)
    discriminative_lr: Annotated[float, Field(gt=0, le=1)] | None = None
    adversarial: AdversarialSpec | None = None
    fairness: FairnessSpec | None = None
    # the arithmetic of the training steps: fp32, or autocast to bf16 (CPUs and GPUs) or fp16
    # (GPUs, with a loss scaler); weights, optimizer state and evaluation stay fp32
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    compile: bool = False  # torch.compile the network for training (the first step's time is reported apart)
    unfreeze_at: PositiveInt | None = None
    report: bool = True  # write report.html when training ends
    log: list[Literal["tensorboard", "mlflow"]] = []  # extra loggers (their extras: tensorboard, mlflow)

    @field_validator("early_stopping", mode="before")
    @classmethod
    def _false_means_off(cls, value):
        return None if value is False else value

    def validation_interval(self) -> int:
        """The epochs from one validation to the next (the last epoch is always validated):
        ``validate_every``, or under 'auto' 1 while early stopping or a plateau schedule decides
        on a validation metric (each epoch may be the best), else ``training.cadence``'s: every
        epoch of a run of up to 100 epochs, about 50 validations of a longer one (a run of many
        epochs of a few steps, where validating costs as much as training)."""
        if self.validate_every != "auto":
            return self.validate_every
        watched = [self.early_stopping.monitor if self.early_stopping is not None else "",
                   (self.schedule.monitor or "val_loss") if self.schedule.name == "plateau" else ""]
        if any(monitor.startswith("val_") for monitor in watched):
            return 1
        return cadence.interval(self.epochs)


class Distribution(_Section):
    """Where a searched key's values come from: exactly one of a range (``uniform``,
    ``log_uniform``, ``int_uniform``, ``log_int_uniform``: [low, high]) or ``choice`` (a list
    of values, any of which the key accepts)."""

    uniform: tuple[FiniteFloat, FiniteFloat] | None = None
    log_uniform: tuple[FinitePositiveFloat, FinitePositiveFloat] | None = None
    int_uniform: tuple[int, int] | None = None
    log_int_uniform: tuple[PositiveInt, PositiveInt] | None = None
    choice: Annotated[list[Any], Field(min_length=1)] | None = None

    @model_validator(mode="after")
    def _one_kind(self):
        given = [name for name in DISTRIBUTIONS if getattr(self, name) is not None]
        if len(given) != 1:
            raise problem(f"give exactly one of {', '.join(DISTRIBUTIONS)}" + (f" (got {', '.join(given)})" if given
                                                                             else ""))
        if given[0] != "choice":
            low, high = getattr(self, given[0])
            if not low < high:
                raise problem(f"expected low < high, got [{low}, {high}]; a fixed value belongs in the spec itself",
                              given[0])
            if not math.isfinite(float(high) - float(low)):
                raise problem(f"the range [{low}, {high}] is wider than a number can hold; narrow it", given[0])
        return self

    @property
    def kind(self) -> str:
        return next(name for name in DISTRIBUTIONS if getattr(self, name) is not None)

    def values_to_check(self) -> list:
        """The values validation tries: each choice, or a range's ends."""
        return list(self.choice) if self.choice is not None else list(getattr(self, self.kind))


DISTRIBUTIONS = ("uniform", "log_uniform", "int_uniform", "log_int_uniform", "choice")


class ArchitectureSpec(_Section):
    """Search the model family's structure (its own space of depths, widths, kernels, cells,
    heads, residual links and normalisation) within a budget measured before training."""

    max_parameters: PositiveInt | None = None
    max_latency_ms: PositiveFloat | None = None  # one row, on this machine's CPU

    @model_validator(mode="before")
    @classmethod
    def _true_means_defaults(cls, value):
        return {} if value is True else value


class SearchSpec(_Section):
    """Hyperparameter and architecture search (``layerforge tune``)."""

    space: dict[str, Distribution] = {}
    architecture: ArchitectureSpec | None = None
    trials: PositiveInt = 20
    timeout: PositiveFloat | None = None  # seconds
    metric: str | None = None  # default: the task's headline metric, on the validation rows
    sampler: Literal["tpe", "random", "cmaes", "grid"] = "tpe"
    pruner: Literal["median", "hyperband", "none"] = "median"
    seed: Annotated[int, Field(ge=0)] | None = None  # default: the spec's seed

    @model_validator(mode="after")
    def _something_to_search(self):
        if not self.space and self.architecture is None:
            raise problem("give a space of keys to search, or architecture: true (or both)")
        return self


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class Spec(_Section):
    """A whole run: data, task, model and training. The smallest spec names only the data."""

    name: str = "run"
    seed: Annotated[int, Field(ge=0)] = 0
    data: DataSpec
    task: str | None = None
    model: ModelSpec = MLPConfig()
    train: TrainSpec = TrainSpec()
    search: SearchSpec | None = None  # read by `layerforge tune`; training ignores it

    @model_validator(mode="after")
    def _a_model_for_the_data(self):
        """Without ``model``: an MLP, or, for data an MLP cannot read (interactions), the first
        family that reads it."""
        if "model" in self.model_fields_set or not self.data.named:
            return self
        reads = kind_of(self.data).reads
        if reads not in FAMILIES[self.model.type].reads:
            found = next((family for family in FAMILIES.values() if reads in family.reads), None)
            if found is not None:
                self.model = found.config()
        return self

    @model_validator(mode="after")
    def _the_data_as_the_loss_reads_it(self):
        """The data section as the loss reads it (``Kind.for_loss``: a ranking loss leaves
        interactions' ratings out)."""
        if self.train.loss is not None and self.data.named:
            self.data = kind_of(self.data).for_loss(self.data, self.train.loss.name)
        return self

    @model_validator(mode="after")
    def _the_backbones_tokenizer(self):
        """A pretrained text backbone reads its own tokenizer's ids: unless the spec chose a
        tokenizer, use the backbone's."""
        source = self.model.tokenizer_source()
        if source is not None and "kind" not in self.data.tokenizer.model_fields_set:
            tokenizer = self.data.tokenizer.model_copy(update={"kind": "pretrained",
                                                                "source": self.data.tokenizer.source or source})
            self.data = self.data.model_copy(update={"tokenizer": tokenizer})
        return self

    @field_validator("name")
    @classmethod
    def _usable_as_directory(cls, value):
        if not _NAME.fullmatch(value) or len(value) > 80:
            raise problem(
                f"expected letters, digits, '_', '-' or '.' (it names the run directory), got {value!r}"
            )
        return value

    @field_validator("task")
    @classmethod
    def _known_task(cls, value):
        return value if value is None else known("task", value, tasks.TASKS)
