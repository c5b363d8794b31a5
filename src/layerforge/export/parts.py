"""What an export measures and records: the rows it proves parity on, decoded agreement, test
metrics through ONNX Runtime, latency, and the runtime's record."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from ..data.kinds import kind_of
from ..data.prepare import load_source
from ..errors import DataError
from ..files import sha256_file
from ..models.protocol import Graph, finite_outputs, predict_outputs
from ..run.store import answer_state, recorded_parts
from ..runtime import Runtime
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
    if ours.dtype.kind == "O" and ours.ndim == 2:  # several targets: each column by its own rule
        judged = [_same_answers(ours[:, i], theirs[:, i]) for i in range(ours.shape[1])]
        same = np.all([found for found, _ in judged], axis=0)
        what += "".join(said for _, said in judged)
    else:
        same, said = _same_answers(ours, theirs)
        what += said
    return {"rows": int(len(same)), "differing": int((~same).sum()), "identical": bool(same.all()), "what": what}


def _same_answers(ours: np.ndarray, theirs: np.ndarray) -> tuple[np.ndarray, str]:
    """Per row, whether two decodings agree: values within ``RTOL`` of their scale, anything else
    equal; answers that are arrays (a detector's boxes) of the same shape, each value within
    ``RTOL`` of its own size (at least 1); and what was compared."""
    if ours.dtype.kind == "O" and len(ours) and all(isinstance(v, np.ndarray) for v in ours.ravel()):
        same = np.array([a.shape == b.shape and bool((np.abs(a - b) <= RTOL * np.maximum(1.0, np.abs(a))).all())
                         for a, b in zip(ours, theirs)])
        return same, f" (arrays of the same shape, each value within {RTOL:g} of its size, at least 1)"
    if ours.dtype.kind == "O" and len(ours) and all(isinstance(v, (float, np.floating)) for v in ours.ravel()):
        ours, theirs = ours.astype(np.float64), theirs.astype(np.float64)
    if ours.dtype.kind in "fc":
        scale = max(1.0, float(np.abs(ours).max())) if ours.size else 1.0
        same = (np.abs(ours - theirs) <= RTOL * scale).reshape(len(ours), -1).all(axis=1)
        return same, f" (values within {RTOL:g} of {scale:.3g})"
    return (ours == theirs).reshape(len(ours), -1).all(axis=1), ""


def raw_rows(run, limit: int = PARITY_ROWS) -> tuple[object | None, str]:
    """Up to ``limit`` of the run's own rows as a user passes them to predict (its test rows
    first, then validation and training rows), and which they are; ``(None, why)`` when its
    source is gone or its rows are not answered one by one. An ensemble's are its first member's."""
    lead = run.members[0] if run.manifest.ensemble else run
    recorded = recorded_parts(lead.path, lead.manifest.files)
    if recorded is None:
        return None, "the run has no split.json"
    positions = np.concatenate([recorded[1].get(part, np.zeros(0, np.int64)) for part in ("test", "val", "train")])
    try:
        source = load_source(lead.spec.data, lead.manifest.task)
    except DataError as error:
        return None, f"its source cannot be read again ({error})"
    rows = kind_of(lead.spec.data).raw_rows(source, positions[:limit])
    return (rows, f"{min(len(positions), limit)} of the run's own rows") if rows is not None else \
        (None, "its rows are not answered one by one")


def pipeline_parity(run, folder: Path) -> dict:
    """The run's Predictor against the runtime of the export in ``folder`` on the run's own raw
    rows (``raw_rows``): the same classes and flags, values within ten times the graphs'
    parity tolerance (a decoding scales them)."""
    import pandas as pd

    rows, said = raw_rows(run)
    if rows is None:
        return {"skipped": said}
    try:  # (a held-out row may name a category, user or item training never held: it is read as unknown)
        ours = run.predictor.predict_table(rows, unknown="bucket")
    except DataError as error:  # a generator or a language model answers no rows
        return {"skipped": str(error)}
    theirs = pd.DataFrame(Runtime(folder).predict_table(rows, unknown="bucket"))
    if list(theirs.columns) != list(ours.columns):
        return {"rows": len(ours), "identical": False, "differing": len(ours),
                "what": f"columns {list(theirs.columns)} instead of {list(ours.columns)}"}
    same, tolerance = np.ones(len(ours), dtype=bool), 10 * RTOL
    for column in ours.columns:
        mine, other = ours[column].to_numpy(), theirs[column].to_numpy()
        if mine.dtype.kind == "f":
            scale = max(1.0, float(np.abs(mine).max())) if len(mine) else 1.0
            same &= np.abs(mine - other.astype(np.float64)) <= tolerance * scale
        else:
            same &= mine.astype(str) == other.astype(str)
    found = {"rows": int(len(ours)), "from": said, "identical": bool(same.all()), "differing": int((~same).sum()),
             "what": f"decoded answers; numbers within {tolerance:g} of their scale"}
    if found["identical"] and getattr(run.predictor.encoder.codec, "recommends", False):
        lists = lists_parity(run, folder, tolerance)
        found["lists"] = lists
        if not lists["identical"]:
            found.update(identical=False, differing=lists["differing"], what=lists["what"])
    return found


def lists_parity(run, folder: Path, tolerance: float, users: int = 100, k: int = 20) -> dict:
    """A recommendation run's top-``k`` lists for its first ``users`` users, by the run and by
    the exported runtime: the same items in the same order, their scores within ``tolerance``
    of their scale."""
    import pandas as pd

    keys = run.predictor.encoder.state.user_keys[:users]
    ours = run.predictor.recommend(keys, k)
    theirs = pd.DataFrame(Runtime(folder).recommend(keys, k))
    item, score = ours.columns[2], ours.columns[3]
    same = (ours[item].astype(str).to_numpy() == theirs[item].astype(str).to_numpy())
    scale = max(1.0, float(ours[score].abs().max()))
    same &= np.abs(ours[score].to_numpy() - theirs[score].to_numpy()) <= tolerance * scale
    differing = len(set(ours[run.predictor.encoder.state.user][~same].astype(str)))
    return {"users": len(keys), "identical": differing == 0, "differing": differing,
            "what": f"the top-{k} lists of {len(keys)} users: the same items in order, scores within {tolerance:g}"}


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
