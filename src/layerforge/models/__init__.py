"""Model families. ``build_model`` is the one place that reads the model section of a spec.

Every model is called as ``model(x, lengths=None)``; ``inputs`` describes what ``x`` holds:
``{"kind": "table", "features": F}``, ``{"kind": "sequence", "channels": C, "length": L}``,
``{"kind": "image", "channels": C, "height": H, "width": W}`` or
``{"kind": "tokens", "vocab_size": V, "length": L}``.
"""

from __future__ import annotations

from ..errors import SpecError, unknown_name

FAMILIES = ("mlp", "cnn", "rnn", "transformer", "autoencoder", "gan")

# which input kinds each family reads
ACCEPTS = {
    "mlp": ("table", "sequence", "image"),
    "cnn": ("sequence", "image"),
    "rnn": ("sequence", "tokens"),
    "transformer": ("sequence", "image", "tokens"),
    "autoencoder": ("table", "sequence", "image"),
    "gan": ("table", "image"),
}


def build_model(model_spec, inputs: dict, output_size: int):
    """Build the ``nn.Module`` a model spec describes for the given inputs and output size
    (for a conditional gan: the number of classes)."""
    family = model_spec.type
    if family not in FAMILIES:
        raise SpecError(f"model.type: {unknown_name('model type', family, FAMILIES)}")
    if inputs["kind"] not in ACCEPTS[family]:
        suited = [f for f, kinds in ACCEPTS.items() if inputs["kind"] in kinds]
        raise SpecError(f"model.type: a {family} cannot read {inputs['kind']} data; use one of: {', '.join(suited)}")
    from importlib import import_module

    build = import_module(f".{family}", __name__).build  # one module per family, named after it
    model = build(model_spec, inputs, output_size)
    if inputs.get("relative"):
        from ..nn.layers import RelativeToLevel

        model = RelativeToLevel(model, span=min(inputs.get("season") or 1, inputs["length"]))
    return model


def flat_size(inputs: dict) -> int:
    """Numbers per row when an input is flattened (what an MLP reads)."""
    if inputs["kind"] == "table":
        return inputs["features"]
    if inputs["kind"] == "image":
        return inputs["channels"] * inputs["height"] * inputs["width"]
    return inputs["channels"] * inputs["length"]


def count_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())
