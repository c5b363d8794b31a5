"""What an export measures and records: the rows it proves parity on, decoded agreement, test
metrics through ONNX Runtime, latency, and the runtime's record."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from ..models.protocol import Graph, finite_outputs, predict_outputs
from .onnx import PARITY_ROWS, RTOL, OnnxModule, session


def held_out_rows(run) -> tuple[tuple | None, str | None]:
    """Up to ``PARITY_ROWS`` encoded rows of the run's own data (model inputs), and which they are:
    its test rows first, then validation rows, then training rows (rebuilt from the source, when
    it is still there)."""
    from ..recipes.scaffold import as_tensors

    taken, said = [], []
    for part in ("test", "val", "train"):
        wanted = PARITY_ROWS - sum(len(t[0]) for t in taken)
        if wanted <= 0 or (part != "train" and not run.manifest.rows.get(part)):
            continue
        try:
            inputs, _ = as_tensors(run.held_out(part), run.task, "cpu")
        except DataError:
            continue
        if taken and [t.shape[1:] for t in inputs] != [t.shape[1:] for t in taken[0]]:
            continue
        if len(inputs[0]):
            taken.append(tuple(t[:wanted] for t in inputs))
            said.append(f"{len(taken[-1][0])} {part}")
    if not taken:
        return None, None
    return tuple(torch.cat(parts) for parts in zip(*taken)), " + ".join(said) + " rows"


def seeded_codes(graph: Graph, rows: int) -> tuple[torch.Tensor, ...]:
    """Standard-normal codes (and classes in turn, for a conditional generator), seeded."""
    generator = torch.Generator().manual_seed(0)
    codes = torch.randn(rows, graph.example[0].shape[1], generator=generator)
    if len(graph.example) == 1:
        return (codes,)
    return codes, torch.arange(rows) % max(graph.classes, 1)


def decoded_agreement(task, model, path: Path, graph: Graph, inputs: tuple) -> dict:
    """Whether the task decodes the ONNX outputs exactly as the network's: the same classes (or
    next tokens), or values within the parity tolerance."""
    onnx_model = OnnxModule(path, graph.input_names)
    try:
        ours, theirs = task.predictions(model, inputs), task.predictions(onnx_model, inputs)
        what = "predictions"
    except DataError:  # a language model predicts the next token at every position
        ours = predict_outputs(model, inputs).argmax(-1).numpy()
        theirs = predict_outputs(onnx_model, inputs).argmax(-1).numpy()
        what = "next tokens"
    ours, theirs = np.asarray(ours), np.asarray(theirs)
    if ours.dtype.kind in "fc":
        scale = max(1.0, float(np.abs(ours).max()))
        same = (np.abs(ours - theirs) <= RTOL * scale).reshape(len(ours), -1).all(axis=1)
        what += f" (values within {RTOL:g} of {scale:.3g})"
    else:
        same = (ours == theirs).reshape(len(ours), -1).all(axis=1)
    return {"rows": int(len(same)), "differing": int((~same).sum()), "identical": bool(same.all()), "what": what}


def test_metrics(run, path: Path, graph: Graph, part: str | None = None) -> dict | None:
    """The task's metrics on the run's test rows (else validation rows) from PyTorch and from
    the ONNX file; None when the run keeps no labelled rows."""
    from ..recipes.scaffold import as_tensors

    if not run.task.scored_on_outputs:
        return None
    for name in ([part] if part else ["test", "val"]):
        if not run.manifest.rows.get(name):
            continue
        try:
            inputs, y = as_tensors(run.held_out(name), run.task, "cpu")
        except DataError:
            continue
        loss = run.loss()
        with finite_outputs():
            ours = run.task.evaluate(run.model, inputs, y, loss)
            theirs = run.task.evaluate(OnnxModule(path, graph.input_names), inputs, y, loss)
        return {"part": name, "rows": int(len(y)), "pytorch": _floats(ours), "onnx": _floats(theirs)}
    return None


def _floats(metrics: dict) -> dict:
    return {k: float(v) for k, v in metrics.items()}


def batch_of(inputs: tuple, size: int) -> tuple[np.ndarray, ...]:
    """``size`` rows from ``inputs`` (repeated when there are fewer), as ONNX Runtime's arrays."""
    index = np.arange(size) % len(inputs[0])
    return tuple(np.ascontiguousarray(t.numpy()[index]) for t in inputs)


def latency(path: Path, graph: Graph, inputs: tuple, sizes=(1, 256), budget: float = 0.6,
            threads: int | None = None) -> dict:
    """Milliseconds per call (p50, p99) and rows per second at each batch size."""
    runner = session(path, threads)
    result = {}
    for size in sizes:
        feed = dict(zip(graph.input_names, batch_of(inputs, size)))
        runner.run(None, feed)  # warm up
        times, started = [], time.perf_counter()
        while (time.perf_counter() - started < budget or len(times) < 5) and len(times) < 5000:
            tick = time.perf_counter()
            runner.run(None, feed)
            times.append(time.perf_counter() - tick)
        p50 = float(np.percentile(times, 50))
        result[str(size)] = {"p50_ms": p50 * 1e3, "p99_ms": float(np.percentile(times, 99)) * 1e3,
                             "rows_per_s": size / p50, "calls": len(times)}
    return result


def runtime_record(run, graphs: dict, record: dict) -> dict:
    """What ``layerforge.runtime`` reads: the data's fitted preprocessing, how outputs decode, and
    each graph's file and inputs."""
    manifest = run.manifest
    return {
        "format": record["format"],
        "task": manifest.task,
        "target": manifest.target,
        "inputs": manifest.inputs.describe(),
        "features": manifest.features,
        "preprocessing": manifest.preprocessing.model_dump(mode="json"),
        "decoding": run.task.decoding(),
        "graphs": {name: {"file": entry["file"], "int8": entry.get("int8_file"), "inputs": entry["inputs"],
                          "outputs": entry["outputs"], "reads": entry["reads"]}
                   for name, entry in record["graphs"].items()},
    }
