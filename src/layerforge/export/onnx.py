"""One graph of a network to one self-contained ONNX file, through PyTorch's own exporters, and
the parity check that proves the file computes what the network computes.

A network says which graphs it offers (``Network.export_graphs``) and which exporters to try
(``Network.exporters``); the first exporter whose file passes the parity check is kept. Known
exporter bugs (packed sequences, attention reshapes fixed to the example's length, batch sizes
taken as constants) show up here as failed parity, never as wrong answers later.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import ExportError
from ..models.protocol import Graph

# Outputs agree when |onnx - torch| <= RTOL * max(1, max |torch|). float32 carries 7 digits; a
# dot product of K terms summed in another order (ONNX Runtime's kernels against PyTorch's)
# moves by about sqrt(K) * 6e-8 of its scale, under 1e-5 for the widths and depths layerforge
# builds. 1e-4 leaves a tenfold margin, while the exporter bugs this check exists for (a gate
# exported wrongly, padding attended to, a length fixed) move outputs by 1e-2 and more.
RTOL = 1e-4
DEFAULT_OPSET = {"torchscript": 17, "dynamo": 18}
PARITY_ROWS = 512
BATCHES = (1, 7, 64)


@dataclass
class Exported:
    """A graph written to ``path`` by ``exporter``, and how it compared with the network."""

    path: Path
    exporter: str
    parity: dict
    tried: list[dict]


class OnnxModule(torch.nn.Module):
    """An ONNX Runtime session called like the network it was exported from, so that a task
    decodes and scores its outputs with the same code it uses for the network."""

    def __init__(self, path: str | Path, input_names: list[str], threads: int | None = None):
        super().__init__()
        self.session = session(path, threads)
        self.input_names = input_names
        self.anchor = torch.nn.Parameter(torch.zeros(0), requires_grad=False)  # tasks ask for a device

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        feed = {name: _array(t) for name, t in zip(self.input_names, inputs) if t is not None}
        return torch.from_numpy(self.session.run(None, feed)[0])


def session(path: str | Path, threads: int | None = None):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _array(tensor: torch.Tensor) -> np.ndarray:
    array = tensor.detach().cpu().numpy()
    return array.astype(np.float32) if array.dtype.kind == "f" else array.astype(np.int64)


@contextlib.contextmanager
def quiet():
    """The exporters print progress and warnings meant for PyTorch developers; a user sees our
    summary and, on failure, the first line of what went wrong."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript",
                                                    "torch.fx.experimental.symbolic_shapes", "torch._export")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    root = logging.getLogger()
    silent, root_level = logging.NullHandler(), root.level
    root.addHandler(silent)  # ONNX Runtime's quantizer warns through the root logger: no default handler for it
    root.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(io.StringIO()), _native_output_dropped(), torch.no_grad():
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)
        root.removeHandler(silent)
        root.setLevel(root_level)


@contextlib.contextmanager
def _native_output_dropped():
    """The exporters' C++ side writes graphs and warnings straight to file descriptors 1 and 2."""
    import os
    import sys

    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    saved = [os.dup(1), os.dup(2)]
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 1)
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, null):
            os.close(fd)


def write_graph(graph: Graph, exporter: str, path: Path, opset: int | None) -> None:
    """Export ``graph`` with ``exporter`` to ``path`` as one file (weights inside)."""
    module = graph.module.eval()
    opset = opset or DEFAULT_OPSET[exporter]
    outputs = {name: {0: "batch"} for name in graph.output_names}
    with quiet():
        if exporter == "torchscript":
            torch.onnx.export(module, graph.example, str(path), input_names=graph.input_names,
                              output_names=graph.output_names, dynamic_axes={**graph.dynamic, **outputs},
                              opset_version=opset, dynamo=False)
        elif exporter == "dynamo":
            dims: dict[str, torch.export.Dim] = {}
            shapes = []
            for name, example in zip(graph.input_names, graph.example):
                axes = {}
                for axis, label in graph.dynamic.get(name, {}).items():
                    limit = {"max": int(example.shape[axis])} if label == "steps" else {}
                    if label in graph.limits:
                        limit = {"max": graph.limits[label]}
                    axes[axis] = dims.setdefault(label, torch.export.Dim(label, min=1, **limit))
                shapes.append(axes or None)
            program = torch.onnx.export(module, graph.example, input_names=graph.input_names,
                                        output_names=graph.output_names, dynamic_shapes=tuple(shapes),
                                        opset_version=opset, dynamo=True, optimize=True)
            program.save(str(path), external_data=False)
        else:
            raise ExportError(f"unknown exporter '{exporter}' (choices: torchscript, dynamo)")
    self_contained(path)


def self_contained(path: Path) -> None:
    """Move weights an exporter wrote beside the graph (``.onnx.data``) into it: many consumers
    read one file only."""
    import onnx

    siblings = [p for p in path.parent.iterdir() if p.name.startswith(path.name) and p != path]
    model = onnx.load(str(path), load_external_data=bool(siblings))
    external = any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer)
    if external or siblings:
        onnx.save_model(model, str(path), save_as_external_data=False)
        for sibling in siblings:
            sibling.unlink()


def _first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = lines[0] if lines else type(error).__name__
    return (text[:240] + " ...") if len(text) > 240 else text


def compare(graph: Graph, path: Path, rows: tuple[torch.Tensor, ...]) -> dict:
    """Outputs of ``path`` against the network's on ``rows``, at several batch sizes (and, for
    inputs of unequal lengths, cut to each batch's longest row or to shorter prompts).

    Returns:
        max_abs_diff, max_rel_diff (the largest difference over the largest output), the
        batches and steps tried, and ``passed``.
    """
    onnx_module = OnnxModule(path, graph.input_names)
    module = graph.module.eval()
    worst, scale, shapes = 0.0, 0.0, []
    for batch in _batches(graph, rows):
        with torch.no_grad():
            expected = module(*batch).float().cpu().numpy()
        got = onnx_module(*batch).numpy()
        if got.shape != expected.shape:
            return {"passed": False, "why": f"outputs of shape {list(got.shape)}, expected {list(expected.shape)}",
                    "shapes": shapes + [list(batch[0].shape)]}
        difference = np.nan_to_num(np.abs(got - expected), nan=np.inf)  # a NaN anywhere fails, in any batch
        worst = max(worst, float(difference.max()) if got.size else 0.0)
        scale = max(scale, float(np.abs(expected).max()) if expected.size else 0.0)
        shapes.append(list(batch[0].shape))
    relative = worst / max(scale, 1.0)
    passed = relative <= RTOL
    result = {"passed": passed, "max_abs_diff": worst, "max_rel_diff": relative, "tolerance": RTOL,
              "shapes": shapes}
    if not passed:
        result["why"] = (f"outputs differ by up to {worst:.3g} ({relative:.2g} of their scale {max(scale, 1.0):.3g}; "
                         f"allowed {RTOL:g})")
    return result


def _batches(graph: Graph, rows: tuple[torch.Tensor, ...]):
    """Batches of 1, 7 and 64 rows; steps cut where the graph's steps are dynamic."""
    x_axes = graph.dynamic.get(graph.input_names[0], {})
    steps_axis = next((axis for axis, label in x_axes.items() if label == "steps"), None)
    n = len(rows[0])
    start = 0
    for size in BATCHES:
        if start >= n:
            start = 0
        batch = tuple(t[start : start + size] for t in rows)
        start += size
        if steps_axis is None:
            yield batch
        elif len(batch) > 1:  # lengths given: cut the padding beyond the batch's longest row
            longest = int(batch[1].max())
            yield (batch[0].narrow(steps_axis, 0, longest),) + batch[1:]
        else:  # prompts of several lengths
            full = batch[0].shape[steps_axis]
            for steps in sorted({full, max(1, full // 2), 1}, reverse=True):
                yield (batch[0].narrow(steps_axis, 0, steps),)


def export_graph(graph: Graph, exporters: tuple[str, ...], path: Path, rows: tuple[torch.Tensor, ...],
                 opset: int | None) -> Exported:
    """Try each exporter in turn; keep the first file that passes the parity check.

    Raises:
        ExportError: no exporter gave a file that computes what the network computes; names
            the graph, what each exporter did, and what to try.
    """
    tried = []
    for exporter in exporters:
        try:
            write_graph(graph, exporter, path, opset)
        except ExportError:
            raise
        except Exception as error:  # the exporters raise many types; each is reported, the next one tried
            tried.append({"exporter": exporter, "error": _first_line(error)})
            path.unlink(missing_ok=True)
            continue
        try:
            parity = compare(graph, path, rows)
        except Exception as error:  # ONNX Runtime refusing the file (a shape fixed during export)
            parity = {"passed": False, "why": f"ONNX Runtime failed on it: {_first_line(error)}"}
        if parity["passed"]:
            return Exported(path, exporter, parity, tried)
        tried.append({"exporter": exporter, "error": parity["why"]})
        path.unlink(missing_ok=True)
    said = "; ".join(f"{t['exporter']}: {t['error']}" for t in tried)
    raise ExportError(
        f"the {graph.name} graph ({_layers(graph.module)}) cannot be exported faithfully: {said}. Try another "
        "--opset, or a model family whose layers export (see README, 'Export')"
    )


def _layers(module: torch.nn.Module) -> str:
    """The kinds of layer a module holds, for messages."""
    containers = (torch.nn.Sequential, torch.nn.ModuleList, torch.nn.ModuleDict)
    kinds = sorted({type(m).__name__ for m in module.modules() if m is not module and not isinstance(m, containers)})
    return "layers: " + ", ".join(kinds[:12]) + (", ..." if len(kinds) > 12 else "")
