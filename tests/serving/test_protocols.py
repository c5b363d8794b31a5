"""The standard protocols beside the own routes: KServe V1 (``:predict`` with instances) and the
Open Inference Protocol V2, driven with Triton's own client against a real ``layerforge serve``
process; the answers equal ``layerforge predict``'s, and errors carry the own route's words."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import httpx
import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

import layerforge as lf
from layerforge.cli import app as cli
from layerforge.serving import create_app

from .test_process import _free_port, _wait_ready


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    """A table with numbers, a category and a text-like category, and its run."""
    root = tmp_path_factory.mktemp("protocols")
    rng = np.random.default_rng(1)
    n = 200
    size = rng.normal(10, 3, n)
    color = rng.choice(["red", "green", "blue"], n)
    label = np.where(size + (color == "red") * 4 > 11.5, "big", "small")
    frame = pd.DataFrame({"size": size, "color": color, "label": label})
    frame.to_csv(root / "train.csv", index=False)
    run = lf.train({"name": "shapes", "data": {"path": str(root / "train.csv"), "target": "label"},
                    "model": {"layers": [16]}, "train": {"epochs": 10, "report": False, "doctor": False}},
                   runs_dir=root / "runs")
    rows = frame.drop(columns="label").sample(20, random_state=0)
    rows.to_csv(root / "rows.csv", index=False)
    result = CliRunner().invoke(cli, ["predict", str(run.path), str(root / "rows.csv")])
    assert result.exit_code == 0, result.output
    return run, rows, pd.read_csv(io.StringIO(result.stdout))


@pytest.fixture(scope="module")
def server(table):
    run, _, _ = table
    port = _free_port()
    url = f"127.0.0.1:{port}"
    process = subprocess.Popen([sys.executable, "-m", "layerforge", "serve", f"shapes={run.path}",
                                "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_ready(f"http://{url}", process)
        yield url
    finally:
        process.terminate()
        process.communicate(timeout=30)


@pytest.mark.parametrize("binary", [True, False])
def test_tritonclient_infers_as_layerforge_predict(server, table, binary):
    import tritonclient.http as triton

    _, rows, expected = table
    client = triton.InferenceServerClient(url=server)
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("shapes")
    metadata = client.get_model_metadata("shapes")
    assert [(i["name"], i["datatype"]) for i in metadata["inputs"]] == [("size", "FP64"), ("color", "BYTES")]
    assert [(o["name"], o["datatype"], o["shape"]) for o in metadata["outputs"]] == [
        ("prediction", "BYTES", [-1]), ("probabilities", "FP64", [-1, 2])]
    size = triton.InferInput("size", [len(rows)], "FP64")
    size.set_data_from_numpy(rows["size"].to_numpy(np.float64), binary_data=binary)
    color = triton.InferInput("color", [len(rows), 1], "BYTES")
    color.set_data_from_numpy(rows["color"].to_numpy(object).reshape(-1, 1), binary_data=binary)
    result = client.infer("shapes", [size, color], request_id="r1",
                          outputs=[triton.InferRequestedOutput("prediction", binary_data=False),
                                   triton.InferRequestedOutput("probabilities", binary_data=False)])
    labels = [v.decode() if isinstance(v, bytes) else v for v in result.as_numpy("prediction").tolist()]
    assert labels == expected["label"].tolist()
    probabilities = result.as_numpy("probabilities")
    assert probabilities.shape == (len(rows), 2)
    classes = json.loads(result.get_output("probabilities")["parameters"]["columns"])
    np.testing.assert_allclose(probabilities[:, classes.index("big")], expected["proba_big"], rtol=1e-5)
    assert result.get_response()["id"] == "r1"


def test_a_kserve_v1_request_answers_as_layerforge_predict(server, table):
    _, rows, expected = table
    records = json.loads(rows.to_json(orient="records"))
    by_mapping = httpx.post(f"http://{server}/v1/models/shapes:predict", json={"instances": records})
    by_values = httpx.post(f"http://{server}/v1/models/shapes:predict",
                           json={"instances": [list(r.values()) for r in records]})
    for response in (by_mapping, by_values):
        assert response.status_code == 200, response.text
        answers = response.json()["predictions"]
        assert [a["prediction"] for a in answers] == expected["label"].tolist()
        np.testing.assert_allclose([a["probabilities"]["big"] for a in answers], expected["proba_big"], rtol=1e-5)


def test_errors_carry_the_words_of_the_own_route(table):
    run, rows, _ = table
    bad = {"size": "huge", "color": "red"}
    with TestClient(create_app([str(run.path)])) as client:
        own = client.post("/v1/models/shapes/predict", json={"rows": [bad]}).json()["error"]
        v1 = client.post("/v1/models/shapes:predict", json={"instances": [bad]})
        v2 = client.post("/v2/models/shapes/infer", json={"inputs": [
            {"name": "size", "shape": [1], "datatype": "BYTES", "data": ["huge"]},
            {"name": "color", "shape": [1], "datatype": "BYTES", "data": ["red"]}]})
        assert v1.status_code == v2.status_code == 400
        assert v1.json()["error"] == own
        assert "column 'size'" in v2.json()["error"] and "'huge'" in v2.json()["error"]
        missing = client.post("/v2/models/shapes/infer", json={"inputs": [
            {"name": "size", "shape": [1], "datatype": "FP64", "data": [3.0]}]})
        own_missing = client.post("/v1/models/shapes/predict", json={"columns": {"size": [3.0]}})
        assert missing.json()["error"] == own_missing.json()["error"]
        assert "missing column: color" in missing.json()["error"]
        assert missing.json()["problems"][0]["field"] == "color"
        shape = client.post("/v2/models/shapes/infer", json={"inputs": [
            {"name": "size", "shape": [2], "datatype": "FP64", "data": [3.0]}]})
        assert shape.json()["error"] == "input 'size': shape [2] holds 2 values; its data has 1"
        count = client.post("/v1/models/shapes:predict", json={"instances": [[1.0]]})
        assert count.json()["error"].startswith("instance 1 has 1 values; the model reads 2 columns, in this order: "
                                                "size, color")
        assert client.post("/v2/models/nope/infer", json={}).status_code == 404
        # curl -d sends application/x-www-form-urlencoded: a JSON body is still read as JSON
        curl = client.post("/v1/models/shapes/predict", content=json.dumps({"rows": [{"size": 1.0, "color": "red"}]}),
                           headers={"content-type": "application/x-www-form-urlencoded"})
        assert curl.status_code == 200


def test_the_api_pages_render_offline_in_a_browser(server, tmp_path):
    """/docs (Swagger UI) and /redoc load only from the service: with every other host unreachable
    and any request elsewhere refused, both pages render the operations, the protocols' included."""
    import os

    from ..report.test_report import BROWSER_ARGS, _chromium

    if _chromium() is None:
        if os.environ.get("LAYERFORGE_REQUIRE_BROWSER"):
            pytest.fail("Chromium is required here (.ci/run installs it: apt-get install chromium)")
        pytest.skip("no Chromium on this machine (apt-get install chromium); .ci/run installs it")
    from playwright.sync_api import sync_playwright

    local = f"http://{server}/"
    elsewhere, errors = [], []
    offline = [*BROWSER_ARGS, "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=_chromium(), args=offline)
        page = browser.new_page(viewport={"width": 1280, "height": 2000})
        page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(local)
                   else (elsewhere.append(route.request.url), route.abort()))
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(local + "docs")
        page.wait_for_selector(".opblock", timeout=30_000)
        operations = page.locator(".opblock-summary-path").all_inner_texts()
        page.screenshot(path=str(tmp_path / "docs.png"))
        page.goto(local + "redoc")
        page.get_by_role("heading", name="Infer with shapes (V2 tensors)").wait_for(timeout=30_000)
        browser.close()
    assert elsewhere == [] and errors == []
    shown = {text.replace("\u200b", "") for text in operations}
    assert {"/v1/models/shapes/predict", "/v1/models/shapes:predict", "/v2/models/shapes/infer",
            "/v2/health/ready"} <= shown
