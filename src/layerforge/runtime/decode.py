"""Model outputs to predictions with numpy alone, as each task decodes them (runtime.json's
``decoding``: classes, values, forecasts or anomaly scores)."""

from __future__ import annotations

import numpy as np

from .encode import RuntimeDataError


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits.astype(np.float64) - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return (exp / exp.sum(axis=-1, keepdims=True)).astype(np.float32)


def check_finite_rows(outputs: np.ndarray) -> None:
    """Raise naming the first row whose outputs are not all finite numbers."""
    bad = np.flatnonzero(~np.isfinite(outputs.reshape(len(outputs), -1)).all(axis=1)) if len(outputs) else []
    if len(bad):
        raise RuntimeDataError(f"the model's outputs for row {bad[0] + 1} are not finite numbers: that row lies far "
                               "outside the values the model was trained on; check it")


def probabilities(decoding: dict, outputs: np.ndarray) -> np.ndarray:
    """Class probabilities of logits, divided by the run's temperature when it was calibrated."""
    temperature = decoding.get("temperature")
    return softmax(outputs / temperature if temperature else outputs)


def _scores(decoding: dict, outputs: np.ndarray, inputs: tuple) -> np.ndarray:
    squared = (outputs.astype(np.float32) - inputs[0].astype(np.float32)) ** 2
    squared = squared.reshape(len(squared), -1)
    if decoding.get("weights") is not None:
        squared = squared * np.asarray(decoding["weights"], dtype=np.float32)
    return squared.mean(axis=1)


def decoded(decoding: dict, outputs: np.ndarray, inputs: tuple) -> np.ndarray:
    kind = decoding["kind"]
    if kind == "classes":
        return np.asarray(decoding["classes"], dtype=object)[outputs.argmax(axis=1)]
    if kind == "values":
        values = outputs.astype(np.float64) * np.asarray(decoding["std"]) + np.asarray(decoding["mean"])
        return values[:, 0] if values.shape[1] == 1 else values
    if kind == "forecast":
        values = outputs.astype(np.float64) * decoding["std"] + decoding["mean"]
        return np.exp(values) if decoding["log"] else values
    if kind == "anomaly_scores":
        return _scores(decoding, outputs, inputs)
    raise ValueError(f"outputs of kind '{kind}' are not decoded into predictions; use outputs()")


def decode_table(decoding: dict, outputs: np.ndarray, inputs: tuple, target: str | None) -> dict[str, list]:
    """Columns as ``layerforge predict`` writes them."""
    kind = decoding["kind"]
    if kind == "classes":
        found = probabilities(decoding, outputs)
        classes = decoding["classes"]
        table = {target or "prediction": [classes[i] for i in found.argmax(axis=1)]}
        for i, name in enumerate(classes):
            table[f"proba_{name}"] = found[:, i].tolist()
        return table
    if kind == "anomaly_scores":
        scores = _scores(decoding, outputs, inputs)
        table = {"anomaly_score": scores.tolist()}
        if decoding.get("threshold") is not None:
            table["anomaly"] = (scores > decoding["threshold"]).tolist()
        return table
    values = decoded(decoding, outputs, inputs)
    return {target or "prediction": values.tolist()}


def answers(decoding: dict, outputs: np.ndarray, inputs: tuple) -> list[dict]:
    """One answer per row, as the HTTP service returns them: ``prediction`` and what the task
    adds (``probabilities`` per class; ``anomaly_score`` and ``anomaly``)."""
    kind = decoding["kind"]
    if kind == "classes":
        classes = decoding["classes"]
        return [{"prediction": classes[int(row.argmax())],
                 "probabilities": {str(name): float(p) for name, p in zip(classes, row)}}
                for row in probabilities(decoding, outputs).astype(np.float64)]
    if kind == "anomaly_scores":
        scores = _scores(decoding, outputs, inputs).astype(np.float64)
        threshold = decoding.get("threshold")
        return [{"prediction": float(score), "anomaly_score": float(score)}
                | ({} if threshold is None else {"anomaly": bool(score > threshold)}) for score in scores]
    values = decoded(decoding, outputs, inputs)
    return [{"prediction": value} for value in values.tolist()]
