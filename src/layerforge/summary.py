"""Per-layer summary of a model: output shapes and parameter counts."""

from __future__ import annotations

from typing import Any

import torch

from .data.prepare import prepare
from .models.check import checked_build
from .models.protocol import Network
from .spec.defaults import DEFAULT_SPEC
from .spec.load import load_spec


def summarize(spec: Any = None, overrides=()) -> tuple[list[tuple[str, str, str, int]], int, int]:
    """Build the spec's model on its data and trace two example rows through it.

    Returns:
        Rows of (layer name, layer type, output shape, parameters of the layer itself), the
        total parameter count and the trainable count.
    """
    spec = load_spec(DEFAULT_SPEC if spec is None else spec, overrides)
    prepared = prepare(spec.data, spec.task, spec.seed)
    task = prepared.task
    torch.manual_seed(spec.seed)
    model = checked_build(spec.model, prepared.inputs, task.output_size, task.num_classes)
    labels = torch.arange(2) % task.num_classes if task.num_classes else None
    return layer_table(model, model.example_inputs(2), labels)


def layer_table(model, sample: tuple, labels=None) -> tuple[list[tuple[str, str, str, int]], int, int]:
    """Trace ``sample`` (a tuple of input tensors; ``labels`` the classes, for conditional
    models) through ``model``: rows of (layer, type, output shape, own parameters), total,
    trainable. A layerforge network runs every layer (``trace``); any other module its forward."""
    shapes: dict[str, str] = {}

    def record(name):
        def hook(module, args, output):
            value = output[0] if isinstance(output, tuple) else output
            if torch.is_tensor(value):
                shapes[name] = str(tuple(value.shape))
        return hook

    handles = [m.register_forward_hook(record(n)) for n, m in model.named_modules() if n]
    was_training = model.training
    model.eval()
    with torch.no_grad():
        if isinstance(model, Network):
            model.trace(sample, labels)
        else:
            model(*sample)
    for handle in handles:
        handle.remove()
    model.train(was_training)
    rows = []
    for name, module in model.named_modules():
        if not name:
            continue
        own = sum(p.numel() for p in module.parameters(recurse=False))
        leaf = not any(True for _ in module.children())
        if own or leaf:
            rows.append((name, type(module).__name__, shapes.get(name, "-"), own))
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return rows, total, trainable
