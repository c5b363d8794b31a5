"""What an export measures and records: the rows it proves parity on, decoded agreement, test
metrics through ONNX Runtime, latency, and the runtime's record."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from ..files import sha256_file
from ..models.protocol import Graph, finite_outputs, predict_outputs
from ..run.store import answer_state
from .onnx import PARITY_ROWS, RTOL, OnnxModule, session


def part_rows(run, part: str) -> tuple[tuple, torch.Tensor] | None:
    """(inputs, y) of one part of the run's split as tensors; None when the part has no rows, or
    they are not kept and the source they would be rebuilt from is gone."""
    from ..recipes.scaffold import as_tensors

    if not run.manifest.rows.get(part):
        return None
    try:
        inputs, y = as_tensors(run.held_out(part), run.task, "cpu")
    except DataError:
        return None
    return (inputs, y) if len(y) else None


def held_out_rows(run) -> tuple[tuple | None, str | None]:
    """Up to ``PARITY_ROWS`` encoded rows of the run's own data (model inputs), and which they are:
    its test rows first, then validation rows, then training rows (rebuilt from the source, when
    it is still there)."""
    taken, said = [], []
    for part in ("test", "val", "train"):
        wanted = PARITY_ROWS - sum(len(t[0]) for t in taken)
        rows = part_rows(run, part) if wanted > 0 else None
        if rows is None or (taken and [t.shape[1:] for t in rows[0]] != [t.shape[1:] for t in taken[0]]):
            continue
        taken.append(tuple(t[:wanted] for t in rows[0]))
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


def labelled_rows(run) -> tuple[str, tuple, torch.Tensor] | None:
    """(part, inputs, y): the rows metrics are measured on, the run's test rows or else its
    validation rows; None when there are none, or when the task's metrics need more than the
    forward pass an exported graph offers."""
    if not run.task.scored_on_outputs:
        return None
    for part in ("test", "val"):
        rows = part_rows(run, part)
        if rows is not None:
            return (part, *rows)
    return None


def metrics_of(run, module, labelled: tuple[str, tuple, torch.Tensor]) -> dict[str, float]:
    """The task's loss and metrics of ``module`` (the network, or an ``OnnxModule``) on ``labelled``."""
    _, inputs, y = labelled
    with finite_outputs():
        return {k: float(v) for k, v in run.task.evaluate(module, inputs, y, run.loss()).items()}


def batch_of(inputs: tuple, size: int) -> tuple[np.ndarray, ...]:
    """``size`` rows from ``inputs`` (repeated when there are fewer), as ONNX Runtime's arrays."""
    index = np.arange(size) % len(inputs[0])
    return tuple(np.ascontiguousarray(t.numpy()[index]) for t in inputs)


def timed(call, budget: float, most: int = 5000) -> list[float]:
    """Seconds of each call of ``call`` (after one to warm up) over about ``budget`` seconds."""
    call()
    times, started = [], time.perf_counter()
    while (time.perf_counter() - started < budget or len(times) < 5) and len(times) < most:
        tick = time.perf_counter()
        call()
        times.append(time.perf_counter() - tick)
    return times


def latency(path: Path, graph: Graph, inputs: tuple, sizes=(1, 256), budget: float = 0.6,
            threads: int | None = None) -> dict:
    """Milliseconds per call (p50, p99) and rows per second at each batch size."""
    runner = session(path, threads)
    result = {}
    for size in sizes:
        feed = dict(zip(graph.input_names, batch_of(inputs, size)))
        times = timed(lambda feed=feed: runner.run(None, feed), budget)
        p50 = float(np.percentile(times, 50))
        result[str(size)] = {"p50_ms": p50 * 1e3, "p99_ms": float(np.percentile(times, 99)) * 1e3,
                             "rows_per_s": size / p50, "calls": len(times)}
    return result


def runtime_record(run, graphs: dict, record: dict, folder: Path) -> dict:
    """What ``layerforge.runtime`` reads: the data's fitted preprocessing, how outputs decode,
    each graph's file, inputs and SHA-256, and the SHA-256 of the run's files it was made from
    (``export.current`` refuses the export once they change). Sealed by its writer."""
    manifest = run.manifest

    def digest(name: str | None) -> str | None:
        return sha256_file(folder / name) if name else None

    return {
        "format": record["format"],
        "task": manifest.task,
        "target": manifest.target,
        "inputs": manifest.inputs.describe(),
        "features": manifest.features,
        "preprocessing": manifest.preprocessing.model_dump(mode="json"),
        "decoding": run.task.decoding().to_json(),
        "graphs": {name: {"file": entry["file"], "int8": entry.get("int8_file"), "inputs": entry["inputs"],
                          "outputs": entry["outputs"], "reads": entry["reads"], "sha256": digest(entry["file"]),
                          "int8_sha256": digest(entry.get("int8_file"))}
                   for name, entry in record["graphs"].items()},
        "made_from": answer_state(run.path),
        "decision": manifest.decision.stage().to_json() if manifest.decision is not None else None,
    }
