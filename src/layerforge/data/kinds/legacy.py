"""Encoder states as format 1 of model.json kept them, read as format 2: each kind's state
carries what format 1 kept beside it. Kept here, with the kinds whose states these are."""

from __future__ import annotations


def migrate_format_1(raw: dict, data: dict) -> dict:
    """A format-1 model.json as format 2: encoder states carry what format 1 kept beside them
    (the forecast windows, the image shape, the text column), and a GAN's classes move from its
    output size to ``num_classes``."""
    raw = dict(raw)
    state = dict(raw["preprocessing"])
    inputs = dict(raw["inputs"])
    kind = state.get("kind")
    if kind == "table":
        state["unknown_categories"] = data.get("unknown_categories") or "error"
        state["image_shape"] = raw.pop("image_shape", None)
    elif kind == "sequence":
        state["variable_length"] = bool(inputs.get("variable_length"))
    elif kind == "forecast":
        forecast = raw.pop("forecast")
        state.update({key: forecast[key] for key in ("lookback", "horizon", "season", "steps", "test_steps",
                                                     "channels")})
        state["relative"] = bool(inputs.get("relative"))
    elif raw["inputs"]["kind"] == "tokens":
        tokenizer = {"tokenizer": kind, "lowercase": state.get("lowercase", False), "vocab": state.get("vocab"),
                     "bpe": state.get("bpe")}
        if "max_length" in state:  # a classified text column
            state = {"kind": "text", **tokenizer, "max_length": state["max_length"], "text": state["text"]}
            inputs["variable_length"] = True
        else:  # a language model's corpus
            state = {"kind": "corpus", **tokenizer, "context": inputs["length"]}
    raw.pop("text", None)
    raw.pop("image_shape", None)
    model = dict(raw["model"])
    model["num_classes"] = len(raw.get("classes") or [])
    if model["spec"].get("type") == "gan":
        model["output_size"] = 0
    raw.update(format="layerforge.model/2", preprocessing=state, inputs=inputs, model=model)
    return raw
