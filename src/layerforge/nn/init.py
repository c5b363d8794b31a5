"""Weight initialisation schemes by name."""

from __future__ import annotations

from collections.abc import Callable

from ..errors import SpecError, unknown_name
from .activations import GAIN_NAMES


def _gain(activation: str) -> float:
    import torch.nn as nn

    return nn.init.calculate_gain(GAIN_NAMES.get(activation, "linear"))


def _kaiming(weight, activation: str) -> None:
    import torch.nn as nn

    nonlinearity = GAIN_NAMES.get(activation, "linear")
    nn.init.kaiming_normal_(weight, nonlinearity=nonlinearity)


def _xavier(weight, activation: str) -> None:
    import torch.nn as nn

    nn.init.xavier_uniform_(weight, gain=_gain(activation))


def _orthogonal(weight, activation: str) -> None:
    import torch.nn as nn

    nn.init.orthogonal_(weight, gain=_gain(activation))


def _normal(weight, activation: str) -> None:
    import torch.nn as nn

    nn.init.normal_(weight, mean=0.0, std=0.02)


# name -> function(weight, activation) or None for PyTorch's own default initialisation.
INITS: dict[str, Callable | None] = {
    "kaiming": _kaiming,
    "xavier": _xavier,
    "orthogonal": _orthogonal,
    "normal": _normal,
    "default": None,
}


def get(name: str) -> Callable | None:
    """Return the initialiser ``name`` (``None`` means keep PyTorch's default)."""
    if name not in INITS:
        raise SpecError(unknown_name("init", name, INITS))
    return INITS[name]


def init_linear(layer, scheme: str, activation: str) -> None:
    """Initialise a linear layer's weight with ``scheme`` and zero its bias (unless 'default')."""
    initialiser = get(scheme)
    if initialiser is None:
        return
    initialiser(layer.weight, activation)
    if layer.bias is not None:
        layer.bias.data.zero_()
