"""Model families: a closed registry from ``model.type`` to the family's configuration, builder
and the kinds of input it reads. ``build_model`` is the one place that turns a configuration
into a network.

The registry and the configurations are torch-free (specs validate without torch); a family's
network module is imported when the first model of that family is built. Every network is a
``layerforge.models.protocol.Network``: called as ``model(x, lengths=None)``, able to make
example inputs of its own shapes and, when predictive, to expose and replace its head.

Python users add a family with ``register_model(config_class, build, reads=...)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module
from typing import Any

from ..errors import SpecError, unknown_name
from .configs import (
    AutoencoderConfig,
    CenterNetConfig,
    CNNConfig,
    FactorizationConfig,
    FamilyConfig,
    FTTransformerConfig,
    GANConfig,
    MLPConfig,
    PretrainedConfig,
    RNNConfig,
    SequentialConfig,
    TransformerConfig,
    TwoTowerConfig,
    UNetConfig,
)
from .inputs import INPUT_KINDS, Inputs

Builder = Callable[[Any, Inputs, int, int], Any]


@dataclass(frozen=True)
class Family:
    """A model family: its configuration class, ``build(config, inputs, output_size,
    num_classes) -> Network``, the input kinds it reads, and whether it predicts outputs through
    a head (MLP, CNN, RNN, Transformer) or generates rows (autoencoder, GAN)."""

    config: type[FamilyConfig]
    build: Builder
    reads: tuple[str, ...]
    predictive: bool = True

    @property
    def name(self) -> str:
        return self.config.model_fields["type"].default


def _module_builder(module: str, pairs: str | None = None, frames: str | None = None) -> Builder:
    """The ``build`` of ``layerforge.models.<module>``, imported on first use (it imports torch);
    for text pairs, ``pairs`` names the encoder-decoder's builder in ``models.seq2seq``, and for
    a clip's frames to transcribe, ``frames`` the frame reader's in ``models.transcriber``."""

    def build(config, inputs: Inputs, output_size: int, num_classes: int = 0):
        if pairs is not None and inputs.pairs:
            return getattr(import_module(".seq2seq", __name__), pairs)(config, inputs, output_size)
        if frames is not None and inputs.frames:
            return getattr(import_module(".transcriber", __name__), frames)(config, inputs, output_size)
        return import_module(f".{module}", __name__).build(config, inputs, output_size, num_classes)

    build.__name__ = f"build_{module}"
    return build


FAMILIES: dict[str, Family] = {
    "mlp": Family(MLPConfig, _module_builder("mlp"), ("table", "sequence", "image")),
    "cnn": Family(CNNConfig, _module_builder("cnn"), ("sequence", "image")),
    "rnn": Family(RNNConfig, _module_builder("rnn", pairs="build_recurrent", frames="build_recurrent"),
                  ("sequence", "tokens", "pairs", "frames")),
    "transformer": Family(TransformerConfig, _module_builder("transformer", pairs="build_transformer",
                                                             frames="build_transformer"),
                          ("sequence", "image", "tokens", "pairs", "frames")),
    "autoencoder": Family(AutoencoderConfig, _module_builder("autoencoder"), ("table", "sequence", "image"),
                          predictive=False),
    "gan": Family(GANConfig, _module_builder("gan"), ("table", "image"), predictive=False),
    "pretrained": Family(PretrainedConfig, _module_builder("pretrained"), ("image", "tokens")),
    "ft_transformer": Family(FTTransformerConfig, _module_builder("ft_transformer"), ("table",)),
    "unet": Family(UNetConfig, _module_builder("unet"), ("image",)),
    "centernet": Family(CenterNetConfig, _module_builder("detector"), ("image",)),
    "factorization": Family(FactorizationConfig, _module_builder("factorization"), ("interactions",)),
    "sequential": Family(SequentialConfig, _module_builder("sequential"), ("interactions",)),
    "two_tower": Family(TwoTowerConfig, _module_builder("two_tower"), ("interactions",)),
}


def register_model(config: type[FamilyConfig], build: Builder, *, reads: tuple[str, ...],
                   predictive: bool = True) -> None:
    """Make a model family available to specs as ``model: {type: <name>, ...}``.

    Args:
        config: a ``FamilyConfig`` subclass whose ``type`` field defaults to the family's name
            (``type: Literal["toy"] = "toy"``); its fields are the spec keys.
        build: ``build(config, inputs, output_size, num_classes)`` returning a ``Network``.
        reads: the input kinds the family reads (table, sequence, image, tokens).
        predictive: whether the network predicts through a replaceable head.

    Raises:
        ValueError: the name is a built-in family, or ``reads`` names an unknown input kind.
    """
    name = config.model_fields["type"].default
    if name in FAMILIES and FAMILIES[name].config.__module__ == __name__ + ".configs":
        raise ValueError(f"'{name}' is a built-in model family; register yours under another name")
    unknown = [kind for kind in reads if kind not in INPUT_KINDS]
    if unknown:
        raise ValueError(f"unknown input kind {unknown[0]!r} (choices: {', '.join(INPUT_KINDS)})")
    FAMILIES[name] = Family(config, build, tuple(reads), predictive)


def get(name: str) -> Family:
    if name not in FAMILIES:
        raise SpecError(f"model.type: {unknown_name('model type', name, FAMILIES)}")
    return FAMILIES[name]


def config_for(value: Any) -> FamilyConfig:
    """A validated configuration from a configuration or a mapping with its ``type``."""
    if isinstance(value, FamilyConfig):
        return value
    if not isinstance(value, dict) or not isinstance(value.get("type", "mlp"), str):
        raise ValueError("expected a mapping with the model family's name in 'type'")
    return get(value.get("type", "mlp")).config.model_validate(value)


def build_model(config: FamilyConfig | dict, inputs: Inputs | dict, output_size: int, num_classes: int = 0):
    """Build the network ``config`` describes for ``inputs``.

    Args:
        config: a family configuration, or a mapping such as ``{"type": "mlp", "layers": [64]}``.
        inputs: what one row holds (``Inputs`` or its dict).
        output_size: numbers the head produces per row (per position for a language model);
            0 when the output has the input's shape (autoencoders, GANs).
        num_classes: the classes of the data, which a conditional GAN is conditioned on.

    Raises:
        SpecError: the family cannot read ``inputs``, or its options do not fit them.
    """
    config = config_for(config)
    inputs = inputs if isinstance(inputs, Inputs) else Inputs.model_validate(inputs)
    family = get(config.type)
    if inputs.kind not in family.reads:
        suited = [name for name, f in FAMILIES.items() if inputs.kind in f.reads]
        raise SpecError(f"model.type: a {config.type} cannot read {inputs.kind} data; use one of: {', '.join(suited)}")
    model = family.build(config, inputs, output_size, num_classes)
    if inputs.relative:
        from .protocol import RelativeToLevel

        model = RelativeToLevel(model, span=min(inputs.season or 1, inputs.length))
    return model


def count_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())


__all__ = ["FAMILIES", "Family", "FamilyConfig", "Inputs", "build_model", "config_for", "count_parameters",
           "get", "register_model"]
