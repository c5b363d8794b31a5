"""Build a model only once it is known to fit and to run: its parameters and memory are
estimated on PyTorch's meta device first (nothing is allocated), then the real network runs once
on example rows, so that a layer too large for the machine or a shape that does not fit the data
is a spec error naming the model, not a crash deep inside PyTorch."""

from __future__ import annotations

import torch

from ..errors import SpecError
from ..memory import available_memory as host_memory
from . import build_model
from .configs import FamilyConfig
from .inputs import Inputs
from .protocol import Network

# bytes per parameter while training: weights, gradients and two optimizer moments (Adam)
TRAINING_BYTES_PER_PARAMETER = 16


def available_memory(device: torch.device) -> int:
    """Bytes the device can still give: free GPU memory, or what the host still lets this process take."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    return host_memory()


def _gib(count: float) -> str:
    return f"{count / 2**30:.1f} GiB"


def _estimate(config: FamilyConfig, inputs: Inputs, output_size: int, num_classes: int,
              batch_size: int) -> tuple[int, int]:
    """(parameters, bytes to train with batches of ``batch_size``), from a model on the meta device."""
    try:
        with torch.device("meta"):
            model = build_model(config, inputs, output_size, num_classes)
    except SpecError:
        raise
    except Exception as error:  # a configuration PyTorch refuses: say which, in spec terms
        raise SpecError(f"model: a {config.type} with these options cannot be built for {inputs.kind} data "
                        f"({', '.join(f'{k} {v}' for k, v in inputs.describe().items() if k != 'kind')}): "
                        f"{error}") from None
    parameters = sum(p.numel() for p in model.parameters())
    activations = 0
    try:
        outputs = []
        handles = [m.register_forward_hook(lambda m, a, out: outputs.append(out)) for m in model.modules()]
        with torch.device("meta"):
            labels = torch.zeros(batch_size, dtype=torch.long) if num_classes else None
            model.trace(tuple(x.to("meta") for x in _examples(inputs, batch_size)), labels)
        for handle in handles:
            handle.remove()
        activations = sum(o.numel() * o.element_size() for o in outputs if torch.is_tensor(o))
    except Exception:  # some layers cannot run on the meta device (packed sequences); parameters still count
        activations = 0
    return parameters, parameters * TRAINING_BYTES_PER_PARAMETER + 2 * activations


def parameter_count(config: FamilyConfig, inputs: Inputs, output_size: int, num_classes: int = 0) -> int:
    """The parameters of the network ``config`` builds for ``inputs``, counted on the meta device
    (nothing is allocated)."""
    return _estimate(config, inputs, output_size, num_classes, 1)[0]


def latency_ms(config: FamilyConfig, inputs: Inputs, output_size: int, num_classes: int = 0,
               repeats: int = 30) -> float:
    """Median milliseconds of one row's forward pass on this machine's CPU (evaluation mode)."""
    import time

    model = build_model(config, inputs, output_size, num_classes).eval()
    example = model.example_inputs(1)
    times = []
    with torch.inference_mode():
        for i in range(repeats + 5):
            start = time.perf_counter()
            model(*example)
            if i >= 5:  # the first passes plan their kernels
                times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2] * 1000


def _examples(inputs: Inputs, batch: int) -> tuple[torch.Tensor, ...]:
    shape = (batch, *inputs.shape)
    x = torch.zeros(shape, dtype=torch.long) if inputs.tokens else torch.zeros(shape)
    if inputs.variable_length:
        return x, torch.full((batch,), inputs.length, dtype=torch.long)
    return (x,)


def checked_build(config: FamilyConfig, inputs: Inputs, output_size: int, num_classes: int = 0, *,
                  batch_size: int = 1, device: torch.device | str = "cpu") -> Network:
    """``build_model``, after checking that the model fits in memory and runs on ``inputs``.

    Raises:
        SpecError: the configuration cannot be built or run on these inputs, or training it
            would need more memory than ``device`` has (the message says how much).
    """
    device = torch.device(device)
    parameters, needed = _estimate(config, inputs, output_size, num_classes, batch_size)
    available = available_memory(device)
    if needed > available:
        raise SpecError(f"model: training this {config.type} needs about {_gib(needed)} ({parameters:,} parameters, "
                        f"batches of {batch_size}), more than the {_gib(available)} available on {device.type}; use "
                        "smaller layers or a smaller train.batch_size")
    model = build_model(config, inputs, output_size, num_classes)
    was_training = model.training
    model.eval()  # no dropout draws, no batch-norm statistics: training starts from the same state
    try:
        with torch.no_grad():
            labels = torch.arange(2) % num_classes if num_classes else None
            model.trace(model.example_inputs(2), labels)
    except Exception as error:
        raise SpecError(f"model: a {config.type} with these options cannot run on {inputs.kind} data "
                        f"({', '.join(f'{k} {v}' for k, v in inputs.describe().items() if k != 'kind')}): "
                        f"{error}") from None
    model.train(was_training)
    return model
