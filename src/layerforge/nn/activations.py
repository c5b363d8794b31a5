"""Activation functions by name. A closed registry: a literal dict and one ``get``."""

from __future__ import annotations

from typing import Any

from ..errors import SpecError, unknown_name

# name -> (torch.nn class name, constructor arguments). torch is imported only in ``get``,
# so that spec validation knows the names without paying for the torch import.
ACTIVATIONS: dict[str, tuple[str, dict[str, Any]]] = {
    "relu": ("ReLU", {}),
    "leaky_relu": ("LeakyReLU", {"negative_slope": 0.01}),
    "elu": ("ELU", {}),
    "selu": ("SELU", {}),
    "sigmoid": ("Sigmoid", {}),
    "tanh": ("Tanh", {}),
    "softmax": ("Softmax", {"dim": -1}),
    "swish": ("SiLU", {}),
    "silu": ("SiLU", {}),
    "gelu": ("GELU", {}),
    "mish": ("Mish", {}),
    "softplus": ("Softplus", {}),
    "identity": ("Identity", {}),
}

# The nonlinearity name torch.nn.init.calculate_gain understands for each activation.
# Smooth ReLU relatives (elu, swish, gelu, mish, softplus) behave like ReLU for variance.
GAIN_NAMES: dict[str, str] = {
    "relu": "relu",
    "leaky_relu": "leaky_relu",
    "elu": "relu",
    "selu": "selu",
    "sigmoid": "sigmoid",
    "tanh": "tanh",
    "softmax": "linear",
    "swish": "relu",
    "silu": "relu",
    "gelu": "relu",
    "mish": "relu",
    "softplus": "relu",
    "identity": "linear",
}


def get(name: str):
    """Return a new activation module for ``name``.

    Raises:
        SpecError: ``name`` is not a known activation.
    """
    if name not in ACTIVATIONS:
        raise SpecError(unknown_name("activation", name, ACTIVATIONS))
    import torch.nn as nn

    class_name, kwargs = ACTIVATIONS[name]
    return getattr(nn, class_name)(**kwargs)
