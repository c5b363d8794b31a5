"""The standard serving protocols, beside the service's own routes: KServe's V1 protocol and the
Open Inference Protocol (V2, also KServe's and Triton's). Each only translates: a request becomes
the body the own route takes (rows, or a mapping of columns), which goes through the same
validation, batching, codec and decoding, and the answers are written back in the protocol's form.
So a row gets the same answer, or the same error in the same words, through every route.

- KServe V1: ``POST /v1/models/NAME:predict`` with ``{"instances": [...]}`` answers
  ``{"predictions": [...]}``. An instance of a table is a mapping of columns, or a list of values
  in the order of the model's features.
- V2: ``POST /v2/models/NAME/infer`` with typed input tensors: one per column of a table (``BYTES``
  for text and categories; shape ``[rows]`` or ``[rows, 1]``), or one tensor for the rows of
  images, series or texts. The answer has one tensor per answer field: ``prediction``, and, for
  classes, ``probabilities`` (``[rows, classes]``, the classes in the tensor's parameters). The
  binary tensor extension (``Inference-Header-Content-Length``; what ``tritonclient`` sends by
  default) is read too; answers are JSON.
"""

from __future__ import annotations

import json
import math
import struct
from typing import Any

import numpy as np

V2_TYPES = {"BOOL": np.bool_, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32, "UINT64": np.uint64,
            "INT8": np.int8, "INT16": np.int16, "INT32": np.int32, "INT64": np.int64, "FP16": np.float16,
            "FP32": np.float32, "FP64": np.float64, "BYTES": None}


class Refused(Exception):
    """A request the protocol's form does not allow; ``str`` is the words answered."""


# -- KServe V1 ------------------------------------------------------------------------------------

def v1_body(payload: Any, served) -> dict:
    """The own route's body for a V1 ``{"instances": [...]}`` payload."""
    if not isinstance(payload, dict) or not isinstance(payload.get("instances"), list):
        raise Refused('a KServe V1 request is {"instances": [...]}: a list with one instance per row')
    instances = payload["instances"]
    if not instances:
        raise Refused('"instances" is empty: send at least one row')
    if not served.named_columns:
        return {"rows": instances}
    features = list(served.manifest.features or [])
    rows = []
    for number, instance in enumerate(instances, start=1):
        if isinstance(instance, list):  # values in the order of the features
            if len(instance) != len(features):
                raise Refused(f"instance {number} has {len(instance)} values; the model reads {len(features)} "
                              f"columns, in this order: {', '.join(features)} (or send a mapping of columns)")
            instance = dict(zip(features, instance))
        rows.append(instance)
    return {"rows": rows}


# -- Open Inference Protocol (V2) -----------------------------------------------------------------

def v2_request(body: bytes, header_length: str | None) -> dict:
    """A V2 inference request, with any binary tensor data read into each input's ``data``."""
    if header_length is None:
        try:
            request = json.loads(body)
        except (ValueError, RecursionError) as error:
            raise Refused(f"the body is not JSON: {error}") from None
        binary = b""
    else:
        try:
            size = int(header_length)
            request = json.loads(body[:size])
        except (ValueError, RecursionError) as error:
            raise Refused(f"the JSON header of the body (Inference-Header-Content-Length) is not JSON: {error}") \
                from None
        binary = body[size:]
    if not isinstance(request, dict) or not isinstance(request.get("inputs"), list) or not request["inputs"]:
        raise Refused('a V2 inference request is {"inputs": [{"name", "shape", "datatype", "data"}, ...]}')
    if "id" in request and not isinstance(request["id"], str):
        raise Refused('"id" must be a string')
    if "outputs" in request and not (isinstance(request["outputs"], list) and all(
            isinstance(entry, dict) and isinstance(entry.get("name"), str) for entry in request["outputs"])):
        raise Refused('"outputs" must be a list of {"name": ...}')
    offset = 0
    for tensor in request["inputs"]:
        if not isinstance(tensor, dict) or not {"name", "shape", "datatype"} <= set(tensor) \
                or not isinstance(tensor["name"], str):
            raise Refused("each input tensor needs a name (text), a shape and a datatype")
        if tensor["datatype"] not in V2_TYPES:
            raise Refused(f"input '{tensor['name']}': datatype {tensor['datatype']!r} is not one of "
                          f"{', '.join(V2_TYPES)}")
        parameters = tensor.get("parameters") or {}
        if not isinstance(parameters, dict):
            raise Refused(f"input '{tensor['name']}': parameters must be an object")
        size = parameters.get("binary_data_size")
        if size is not None:
            if isinstance(size, bool) or not isinstance(size, int) or size < 0 or offset + size > len(binary):
                raise Refused(f"input '{tensor['name']}': binary_data_size {size!r} does not fit the binary data "
                              f"after the JSON header ({len(binary) - offset} bytes left)")
            tensor["data"] = _from_binary(tensor, binary[offset:offset + size])
            offset += size
        elif not isinstance(tensor.get("data"), list):
            raise Refused(f"input '{tensor['name']}' has no data (a list of its values)")
    return request


def _from_binary(tensor: dict, raw: bytes) -> list:
    if tensor["datatype"] == "BYTES":  # each element: its length (4 bytes, little-endian), then its bytes
        found, at = [], 0
        while at + 4 <= len(raw):
            (length,) = struct.unpack_from("<I", raw, at)
            found.append(raw[at + 4:at + 4 + length].decode("utf-8", errors="replace"))
            at += 4 + length
        return found
    return np.frombuffer(raw, dtype=np.dtype(V2_TYPES[tensor["datatype"]]).newbyteorder("<")).tolist()


def _flat(tensor: dict) -> tuple[list, list[int]]:
    """The tensor's elements in row-major order, checked against its shape."""
    shape = tensor["shape"]
    if not isinstance(shape, list) or not shape or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise Refused(f"input '{tensor['name']}': shape must be a list of sizes, the rows first; got {shape!r}")
    try:
        values = list(_elements(tensor["data"]))
    except RecursionError:
        raise Refused(f"input '{tensor['name']}': its data is nested too deeply") from None
    if len(values) != math.prod(shape):
        raise Refused(f"input '{tensor['name']}': shape {shape} holds {math.prod(shape)} values; its data has "
                      f"{len(values)}")
    if tensor["datatype"] == "BOOL":
        values = [bool(v) if isinstance(v, (bool, int)) else v for v in values]
    return values, shape


def _elements(data):
    """The scalars of nested lists, in order (V2 allows the data flat or nested)."""
    for item in data:
        if isinstance(item, list):
            yield from _elements(item)
        else:
            yield item


def v2_body(request: dict, served) -> dict:
    """The own route's body for a V2 request: a mapping of columns (tables), or the rows of the
    one input tensor."""
    inputs = request["inputs"]
    if served.named_columns:
        columns, rows = {}, None
        for tensor in inputs:
            values, shape = _flat(tensor)
            if len(shape) > 2 or (len(shape) == 2 and shape[1] != 1):
                raise Refused(f"input '{tensor['name']}': a column's tensor has shape [rows] or [rows, 1], "
                              f"not {shape}")
            if rows is not None and shape[0] != rows:
                raise Refused(f"input '{tensor['name']}' has {shape[0]} rows; the inputs before it have {rows}")
            rows = shape[0]
            columns[tensor["name"]] = values
        return {"columns": columns}
    if len(inputs) != 1:
        names = ", ".join(str(t.get("name")) for t in inputs)
        raise Refused(f"this model reads one input tensor (the rows, first axis); got {len(inputs)}: {names}")
    values, shape = _flat(inputs[0])
    return {"rows": np.asarray(values, dtype=object).reshape(shape).tolist() if len(shape) > 1 else values}


def v2_outputs(answers: list[dict], wanted: list | None = None) -> list[dict]:
    """The answers as V2 output tensors: one per answer field (those ``wanted`` asks for)."""
    names = list(answers[0]) if answers else []
    if wanted:
        asked = [entry.get("name") if isinstance(entry, dict) else None for entry in wanted]
        unknown = [name for name in asked if name not in names]
        if unknown:
            raise Refused(f"no output named {unknown[0]!r}; this model answers: {', '.join(names)}")
        names = asked
    return [_tensor(name, [answer.get(name) for answer in answers]) for name in names]


def _tensor(name: str, values: list) -> dict:
    rows = len(values)
    if all(isinstance(v, bool) for v in values):
        return {"name": name, "datatype": "BOOL", "shape": [rows], "data": values}
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return {"name": name, "datatype": "INT64", "shape": [rows], "data": values}
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return {"name": name, "datatype": "FP64", "shape": [rows], "data": [float(v) for v in values]}
    if all(isinstance(v, str) for v in values):
        return {"name": name, "datatype": "BYTES", "shape": [rows], "data": values}
    if all(isinstance(v, dict) for v in values) and values and all(
            list(v) == list(values[0]) and all(isinstance(x, (int, float)) for x in v.values()) for v in values):
        keys = list(values[0])  # e.g. class -> probability: [rows, classes], the classes in the parameters
        return {"name": name, "datatype": "FP64", "shape": [rows, len(keys)],
                "data": [float(v[k]) for v in values for k in keys], "parameters": {"columns": json.dumps(keys)}}
    if all(isinstance(v, list) for v in values) and values and len({len(v) for v in values}) == 1 and all(
            isinstance(x, (int, float)) and not isinstance(x, bool) for v in values for x in v):
        return {"name": name, "datatype": "FP64", "shape": [rows, len(values[0])],
                "data": [float(x) for v in values for x in v]}
    # anything else (a set of labels, several targets): each row's answer as JSON text
    return {"name": name, "datatype": "BYTES", "shape": [rows], "data": [json.dumps(v) for v in values],
            "parameters": {"content": "json"}}


def v2_metadata(served, row_schema: dict | None, example_answers: list[dict]) -> dict:
    """``GET /v2/models/NAME``: the model's name, versions, platform, input and output tensors."""
    return {"name": served.name, "versions": ["1"], "platform": "layerforge",
            "inputs": _input_tensors(served, row_schema),
            "outputs": [{"name": t["name"], "datatype": t["datatype"], "shape": [-1, *t["shape"][1:]]}
                        for t in v2_outputs(example_answers)]}


def _input_tensors(served, row_schema: dict | None) -> list[dict]:
    if served.named_columns and row_schema is not None:
        found = []
        properties = row_schema.get("properties", {})
        for name in served.manifest.features or list(properties):
            kinds = _json_types(properties.get(name, {}), row_schema)
            datatype = ("BOOL" if kinds == {"boolean"} else "FP64" if kinds and kinds <= {"number", "integer"}
                        else "BYTES")
            found.append({"name": name, "datatype": datatype, "shape": [-1]})
        return found
    shape = _array_shape(row_schema or {}, row_schema or {})
    datatype = "BYTES" if (row_schema or {}).get("type") == "string" else "FP32"
    return [{"name": "input", "datatype": datatype, "shape": [-1, *shape]}]


def _json_types(schema: dict, root: dict) -> set[str]:
    if "$ref" in schema:
        schema = root.get("$defs", {}).get(schema["$ref"].rsplit("/", 1)[-1], {})
    if "anyOf" in schema:
        return set().union(*(_json_types(part, root) for part in schema["anyOf"])) - {"null"}
    if "enum" in schema or "const" in schema:
        values = schema.get("enum", [schema.get("const")])
        return {"boolean" if isinstance(v, bool) else "number" if isinstance(v, (int, float)) else "string"
                for v in values}
    return {schema["type"]} if isinstance(schema.get("type"), str) else set()


def _array_shape(schema: dict, root: dict) -> list[int]:
    """The sizes of a row's nested arrays (-1 where they vary)."""
    if "$ref" in schema:
        schema = root.get("$defs", {}).get(schema["$ref"].rsplit("/", 1)[-1], {})
    if schema.get("type") != "array":
        return []
    size = schema.get("minItems", -1) if schema.get("minItems") == schema.get("maxItems") else -1
    return [size, *_array_shape(schema.get("items", {}), root)]
