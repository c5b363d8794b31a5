"""Model families. ``build_model`` is the one place that reads the model section of a spec."""

from __future__ import annotations

from ..errors import SpecError, unknown_name

FAMILIES = ("mlp",)


def build_model(model_spec, input_size: int, output_size: int):
    """Build the ``nn.Module`` a model spec describes for the given input and output sizes."""
    if model_spec.type == "mlp":
        from .mlp import build

        return build(model_spec, input_size, output_size)
    raise SpecError(f"model.type: {unknown_name('model type', model_spec.type, FAMILIES)}")


def count_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())
