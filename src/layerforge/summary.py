"""Per-layer summary of the model a spec builds: output shapes and parameter counts."""

from __future__ import annotations

from typing import Any


def summarize(spec: Any = None, overrides=()) -> tuple[list[tuple[str, str, str, int]], int, int]:
    """Build the spec's model on its data and trace one batch of two rows through it.

    Returns:
        Rows of (layer name, layer type, output shape, parameters of the layer itself), the
        total parameter count and the trainable count.
    """
    import torch

    from . import tasks
    from .api import DEFAULT_SPEC
    from .data.prepare import prepare
    from .models import build_model
    from .spec.load import load_spec
    from .training.trainer import as_tensors

    spec = load_spec(DEFAULT_SPEC if spec is None else spec, overrides)
    prepared = prepare(spec.data, spec.task, spec.seed)
    task = tasks.from_meta(prepared.meta())
    torch.manual_seed(spec.seed)
    model = build_model(spec.model, prepared.inputs_info, task.output_size)
    inputs, y = as_tensors(prepared.splits["train"], task, "cpu")
    return layer_table(model, tuple(t[:2] for t in inputs), y[:2])


def layer_table(model, sample: tuple, y=None) -> tuple[list[tuple[str, str, str, int]], int, int]:
    """Trace ``sample`` (a tuple of input tensors; ``y`` the classes of a conditional GAN)
    through ``model``: rows of (layer, type, output shape, own parameters), total, trainable."""
    import torch

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
        if hasattr(model, "discriminator"):  # a GAN: the generators from codes, the discriminator on real rows
            labels = y if model.num_classes else None
            z = torch.randn(len(sample[0]), model.latent_size, device=sample[0].device)
            for generator in (model.generator, model.generator_ema):
                if generator is not None:
                    generator(z, labels)
            model.discriminator(sample[0], labels)
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
