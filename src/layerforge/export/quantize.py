"""int8 versions of exported graphs through ONNX Runtime's quantization tools, chosen per
operator: linear layers (MatMul, Gemm) and LSTMs dynamically quantized (weights int8,
activations quantized on the fly); convolutions statically quantized as QDQ, calibrated on
training rows (dynamic int8 convolutions run as ConvInteger, which is slower than float on CPUs);
GRU and plain RNN layers left in float, which ONNX Runtime does not quantize.

An int8 model is kept only when its headline metric drops by at most ``max_drop``, it is no
slower than the float model and it is clearly smaller; otherwise parity.json says why it was not
kept. Slower means slower in every one of several interleaved rounds, by more than the clock's
noise and by more than a few microseconds a call (a loaded machine moves a 10-microsecond call by
that much). ``keep_int8`` keeps a smaller, as accurate model even when it is slower.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DataError
from .onnx import OnnxModule, quiet
from .parts import latency, metrics_of, part_rows

LINEAR = ("MatMul", "Gemm", "LSTM")
CONVOLUTIONS = ("Conv",)
FLOAT = ("GRU", "RNN")
CALIBRATION_ROWS = 512
# timings of the same model vary by several percent from one measurement to the next: slower
# means slower by more than this
NOISE = 1.10
# ... and by more than this many milliseconds a call (at batch 1 a few microseconds are noise)
SLOWER_BY_MS = 0.005
ROUNDS = 5  # interleaved latency rounds of each model
# an int8 file above this share of the float one saved nothing (most weights stayed float)
MAX_SIZE_RATIO = 0.9


def operators(path: Path) -> set[str]:
    import onnx

    return {node.op_type for node in onnx.load(str(path)).graph.node}


def _calibration_rows(run) -> tuple[tuple, str]:
    for part in ("train", "val"):
        rows = part_rows(run, part)
        if rows is None:
            continue
        order = np.random.default_rng(0).permutation(len(rows[1]))[:CALIBRATION_ROWS]
        return tuple(t[order] for t in rows[0]), part
    raise DataError("no rows to calibrate on: the run's training data is gone and it kept no validation rows")


class _Reader:
    """Calibration batches for ``quantize_static``."""

    def __init__(self, names: list[str], inputs: tuple, batch: int = 32):
        arrays = [t.numpy().astype(np.float32 if t.is_floating_point() else np.int64) for t in inputs]
        self.batches = iter([{n: a[i : i + batch] for n, a in zip(names, arrays)}
                             for i in range(0, len(arrays[0]), batch)])

    def get_next(self):
        return next(self.batches, None)


def write_int8(run, graph, float_path: Path, int8_path: Path) -> dict:
    """Quantize ``float_path`` to ``int8_path``, operator by operator; returns what was done."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static

    present = operators(float_path)
    plan = {"dynamic": sorted(present & set(LINEAR)), "static_qdq": sorted(present & set(CONVOLUTIONS)),
            "float": sorted(present & set(FLOAT))}
    source = float_path
    if plan["static_qdq"]:
        rows, part = _calibration_rows(run)
        plan["calibrated_on"] = f"{len(rows[0])} {part} rows"
        staged = int8_path.with_suffix(".qdq.onnx")
        with quiet():
            quantize_static(str(source), str(staged), _Reader(graph.input_names, rows),
                            quant_format=QuantFormat.QDQ, op_types_to_quantize=list(CONVOLUTIONS), per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        source = staged
    if plan["dynamic"]:
        with quiet():
            quantize_dynamic(str(source), str(int8_path), op_types_to_quantize=list(LINEAR),
                             weight_type=QuantType.QInt8)
    elif source != float_path:
        source.replace(int8_path)
    if source != float_path and source.exists():
        source.unlink()
    if not int8_path.exists():
        raise DataError("nothing to quantize: the graph has no linear or convolution layers")
    return plan


def _drop(task, metric: str, ours: float, theirs: float) -> tuple[float, str]:
    """How much worse ``theirs`` is, in points for metrics between 0 and 1, else in percent."""
    worse = (ours - theirs) if task.higher_is_better(metric) else (theirs - ours)
    if metric in ("accuracy", "f1_macro", "roc_auc", "r2", "class_accuracy", "coverage"):
        return 100 * worse, "points"
    return 100 * worse / max(abs(ours), 1e-12), "percent"


def quantize_graphs(run, graphs: dict, rows, labelled, float_metrics: dict | None, folder: Path, max_drop: float,
                    say, keep_int8: bool = False) -> dict:
    """An int8 version of the graph that predicts rows (``model``), measured against the float
    one (``float_metrics``: its metrics on ``labelled``) and kept or refused (``keep_int8``: kept
    even when slower, for its size).

    Returns:
        What parity.json records under ``int8``: the plan, sizes, metrics and drop, latency of
        both (measured interleaved), and ``kept``, or ``why`` not.
    """
    if "model" not in graphs or rows is None:
        return {"kept": False, "why": "only a graph that predicts rows is quantized; this run's graphs generate"}
    graph, exported = graphs["model"]
    int8_path = folder / "model.int8.onnx"
    try:
        plan = write_int8(run, graph, exported.path, int8_path)
    except DataError as error:
        say(f"int8: not made: {error}")
        return {"kept": False, "why": str(error)}
    result = {"plan": plan, "bytes": int8_path.stat().st_size, "float_bytes": exported.path.stat().st_size}
    result["size_ratio"] = result["bytes"] / result["float_bytes"]
    headline = run.task.headline
    if labelled is not None and float_metrics and headline in float_metrics["onnx"]:
        result["metrics"] = metrics_of(run, OnnxModule(int8_path, graph.input_names), labelled)
        drop, unit = _drop(run.task, headline, float_metrics["onnx"][headline], result["metrics"][headline])
        result["drop"] = {"metric": headline, "value": drop, "unit": unit, "allowed": max_drop}
    timings = {"float": [], "int8": []}
    for _ in range(ROUNDS):  # interleaved, so both see the same machine
        timings["float"].append(latency(exported.path, graph, rows, budget=0.15))
        timings["int8"].append(latency(int8_path, graph, rows, budget=0.15))
    result["latency"] = {name: _median(runs) for name, runs in timings.items()}
    speed = {size: result["latency"]["float"][size]["p50_ms"] / result["latency"]["int8"][size]["p50_ms"]
             for size in result["latency"]["float"]}
    result["speedup"] = speed
    slower = [size for size in speed if is_slower(timings["float"], timings["int8"], size)]
    why = []
    if "drop" in result and result["drop"]["value"] > max_drop:
        why.append(f"{headline} drops by {result['drop']['value']:.2f} {result['drop']['unit']} "
                   f"(allowed {max_drop:g}; --max-drop)")
    if "drop" not in result:
        why.append("no labelled rows to measure its accuracy on")
    if result["size_ratio"] > MAX_SIZE_RATIO:
        left = ", ".join(plan["float"]) or "layers ONNX Runtime does not quantize"
        why.append(f"it keeps {result['size_ratio']:.0%} of the float size: most weights sit in {left}, left in float")
    if slower and not keep_int8:
        why.append("it is slower than the float model in every round (" + ", ".join(
            f"batch {s}: {speed[s]:.2f}x" for s in slower) + "); --keep-int8 keeps it for its size")
    elif slower:
        result["kept_for"] = "its size (--keep-int8), though slower at batch " + ", ".join(slower)
    result["kept"] = not why
    if why:
        result["why"] = "; ".join(why)
        int8_path.unlink()
        say(f"int8: not kept: {result['why']}")
    else:
        say(f"int8: kept, {result['size_ratio']:.2f} of the float size, {headline} "
            f"{float_metrics['onnx'][headline]:.4f} -> {result['metrics'][headline]:.4f}, "
            + ", ".join(f"batch {s} {v:.2f}x" for s, v in speed.items()))
    return result


def is_slower(float_runs: list[dict], int8_runs: list[dict], size: str) -> bool:
    """Whether int8 is slower at batch ``size``: in every interleaved round, by more than the
    clock's noise (``NOISE``) and by more than ``SLOWER_BY_MS`` a call."""
    return all(small[size]["p50_ms"] > NOISE * big[size]["p50_ms"]
               and small[size]["p50_ms"] - big[size]["p50_ms"] > SLOWER_BY_MS
               for big, small in zip(float_runs, int8_runs))


def _median(runs: list[dict]) -> dict:
    return {size: {key: float(np.median([r[size][key] for r in runs])) for key in runs[0][size]}
            for size in runs[0]}


__all__ = ["quantize_graphs"]
