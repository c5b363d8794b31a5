"""Fuzzing the OpenAPI schema (schemathesis) against every endpoint of a service that serves a
tabular, an image and a sequence run: no response is a 5xx, and every response conforms to the
schema (status code, content type, body)."""

import numpy as np
import pandas as pd
import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

import layerforge as lf
from layerforge.serving import create_app

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    rng = np.random.default_rng(0)
    n = 120
    frame = pd.DataFrame({"size": rng.normal(10, 3, n), "color": rng.choice(["red", "green", "blue"], n),
                          "flag": rng.random(n) > 0.5})
    frame["label"] = np.where(frame["size"] > 10, "big", "small")
    frame.loc[[3, 7], "size"] = np.nan
    frame.to_csv(root / "table.csv", index=False)
    series = np.sin(np.arange(24)[None, :] * rng.uniform(0.2, 1.0, (80, 1)))
    np.savez(root / "series.npz", x=series, y=np.where(series[:, 1] > 0.5, "up", "down"))
    specs = [
        {"name": "table", "data": {"path": str(root / "table.csv"), "target": "label"}, "model": {"layers": [8]}},
        {"name": "image", "data": {"dataset": "digits_images"}, "model": {"type": "cnn", "channels": [4]}},
        {"name": "series", "data": {"path": str(root / "series.npz")}, "model": {"type": "cnn", "channels": [4]}},
    ]
    runs = [lf.train({**spec, "train": {"epochs": 1}}, runs_dir=root / "runs", progress=False) for spec in specs]
    app = create_app([str(run.path) for run in runs], max_body=64 * 1024)
    with TestClient(app):  # starts the workers; schemathesis sends its requests beside this client
        yield app


@pytest.mark.parametrize("examples", [60, pytest.param(500, marks=pytest.mark.slow)])
def test_fuzzing_the_openapi_schema_finds_no_5xx_and_no_schema_violation(app, examples):
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    tried, operations = [], []
    for result in schema.get_all_operations():
        operation = result.ok()
        operations.append(operation.label)
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):  # valid requests, then invalid ones

            @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
            @given(case=operation.as_strategy(generation_mode=mode))
            def fuzz(case):
                response = case.call_and_validate(checks=CHECKS)
                tried.append(response.status_code)

            try:
                fuzz()
            except Unsatisfiable:  # nothing to get wrong (a GET without parameters)
                assert mode is GenerationMode.NEGATIVE
    assert {"POST /v1/models/table/predict", "POST /v1/models/image/predict", "POST /v1/models/series/predict",
            "POST /v1/models/{name}/predict", "GET /v1/models/{name}", "GET /metrics"} <= set(operations)
    assert not [status for status in tried if status >= 500]
    print(f"\nfuzzed {len(operations)} operations with {len(tried)} requests: "
          f"{ {s: tried.count(s) for s in sorted(set(tried))} }")
    assert len(tried) >= 5 * len(operations)
