"""The HTTP service: answers equal the run's own predictions for every kind of request; errors
name the field, row and problem; limits, the API key, batching, the bounded queue and
failures behave as documented."""

import asyncio
import base64
import io
import json
import threading

import httpx
import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

import layerforge as lf
from layerforge import tasks
from layerforge.errors import CheckpointError, DataError
from layerforge.serving import ServeOptions, create_app, load_models


def _train(spec, root, name):
    return lf.train({"name": name, **spec}, runs_dir=root / "runs", progress=False)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("serving")


@pytest.fixture(scope="module")
def table_run(root):
    """A table with numbers (some missing), categories (some missing) and booleans."""
    rng = np.random.default_rng(0)
    n = 160
    size = rng.normal(10, 3, n)
    color = rng.choice(["red", "green", "blue"], n).astype(object)
    flag = rng.random(n) > 0.5
    label = np.where(size + (color == "red") * 4 > 11.5, "big", "small")
    size[[3, 17, 40]] = np.nan
    color[[5, 9]] = None
    path = root / "mixed.csv"
    pd.DataFrame({"size": size, "color": color, "flag": flag, "label": label}).to_csv(path, index=False)
    run = _train({"data": {"path": str(path), "target": "label"}, "model": {"layers": [16]},
                  "train": {"epochs": 15}}, root, "mixed")
    return run, path


@pytest.fixture(scope="module")
def client(table_run):
    with TestClient(create_app([str(table_run[0].path)])) as client:
        yield client


ROW = {"size": 12.5, "color": "red", "flag": True}


def test_rows_columns_and_csv_answer_as_the_run_predicts(client, table_run):
    run, path = table_run
    frame = pd.read_csv(path).drop(columns="label").head(25)
    expected = run.predictor.predict_table(frame)
    rows = json.loads(frame.to_json(orient="records"))  # missing values as null
    by_rows = client.post("/v1/models/mixed/predict", json={"rows": rows})
    by_columns = client.post("/v1/models/mixed/predict", json={"columns": {c: [r[c] for r in rows] for c in frame.columns}})
    by_csv = client.post("/v1/models/mixed/predict", content=frame.to_csv(index=False),
                         headers={"content-type": "text/csv"})
    for response in (by_rows, by_columns, by_csv):
        assert response.status_code == 200, response.text
        answers = response.json()["predictions"]
        assert [a["prediction"] for a in answers] == expected["label"].tolist()
        np.testing.assert_allclose([a["probabilities"]["big"] for a in answers], expected["proba_big"], rtol=1e-5)
        assert set(answers[0]) == {"prediction", "probabilities"}
    assert response.headers["x-request-id"]


def test_bad_rows_are_422_naming_field_row_and_problem_in_the_words_of_predict(client, table_run, tmp_path):
    run, _ = table_run
    cases = [
        ({"rows": [ROW, {**ROW, "size": "big"}]}, "size", 2, "column 'size': expected numbers, found 'big' in row 2"),
        ({"rows": [{**ROW, "color": "purple"}]}, "color", 1, "column 'color': unseen category 'purple' in row 1"),
        ({"rows": [{"size": 1.0, "flag": False}]}, "color", None, "missing column: color (the model was trained on"),
        ({"rows": [ROW, {"size": 1.0, "flag": False}]}, "color", 2, "row 2 has no value for column 'color'"),
        ({"rows": [{**ROW, "weight": 3}]}, "weight", None, "unexpected column: weight; remove"),
        ({"rows": [{**ROW, "flag": "maybe"}]}, "flag", 1, "column 'flag': expected true/false values, found 'maybe'"),
    ]
    for body, field, row, words in cases:
        response = client.post("/v1/models/mixed/predict", json=body)
        assert response.status_code == 422, body
        problem = response.json()["problems"][0]
        assert (problem.get("field"), problem.get("row")) == (field, row)
        assert problem["problem"].startswith(words), problem
        assert "data.categorical" not in problem["problem"]  # a training setting means nothing to an API client
    # the same mistakes through `layerforge predict` and the service: the same words
    for mistake in ({"color": "purple"}, {"size": "big"}, {"size": 1e12}):
        bad = tmp_path / "bad.csv"
        pd.DataFrame([ROW, {**ROW, **mistake}]).to_csv(bad, index=False)
        with pytest.raises(DataError) as predicted:
            run.predictor.predict_table(str(bad))
        served = client.post("/v1/models/mixed/predict", content=bad.read_text(), headers={"content-type": "text/csv"})
        assert served.status_code == 422
        assert served.json()["problems"][0]["problem"] == str(predicted.value).replace("bad.csv", "the CSV body")
        with pytest.raises(DataError) as predicted:
            run.predictor.predict_table(pd.DataFrame([ROW, {**ROW, **mistake}]))
        served = client.post("/v1/models/mixed/predict", json={"rows": [ROW, {**ROW, **mistake}]})
        assert served.json()["problems"][0]["problem"] == str(predicted.value), mistake
    assert client.post("/v1/models/mixed/predict", json={"rows": []}).status_code == 422
    assert client.post("/v1/models/mixed/predict", content=b"{not json").status_code == 422
    for text in ("\r\u00d8\u00e0", 'size,color,flag\n1,"red\n'):  # a bare carriage return; an open quote
        broken = client.post("/v1/models/mixed/predict", content=text.encode(), headers={"content-type": "text/csv"})
        assert broken.status_code == 422 and broken.json()["error"].startswith("the CSV body: ")
    unequal = client.post("/v1/models/mixed/predict", json={"columns": {"size": [1, 2], "color": ["red"],
                                                                        "flag": [True, False]}})
    assert unequal.status_code == 422 and "every column needs one value per row" in unequal.json()["error"]


def _known(run):
    from layerforge.data.tabular import MISSING

    column = next(c for c in run.manifest.preprocessing.columns if c.name == "color")
    return ", ".join(c for c in column.categories if c != MISSING)


def test_no_request_reads_a_file(client, table_run):
    """A path where rows belong is a 422, never a file read; CSV is parsed from the body only."""
    run, path = table_run
    for body in ({"rows": str(path)}, {"rows": [str(path)]}, {"columns": str(path)}):
        response = client.post("/v1/models/mixed/predict", json=body)
        assert response.status_code == 422
    response = client.post("/v1/models/mixed/predict", content=str(path), headers={"content-type": "text/csv"})
    assert response.status_code == 422 and response.json()["error"] == "the CSV body: holds no rows"


def test_limits_media_types_unknown_models_and_listing(client):
    big = {"rows": [ROW] * 30_000}  # about 1.3 MB of JSON
    response = client.post("/v1/models/mixed/predict", json=big)
    assert response.status_code == 413 and "1048576 bytes" in response.json()["error"]

    def chunks():  # no Content-Length: counted while it streams
        for _ in range(40):
            yield b" " * 50_000

    assert client.post("/v1/models/mixed/predict", content=chunks()).status_code == 413
    response = client.post("/v1/models/mixed/predict", content=b"<x/>", headers={"content-type": "application/xml"})
    assert response.status_code == 415
    response = client.post("/v1/models/other/predict", json={"rows": [ROW]})
    assert response.status_code == 404 and "this service has: mixed" in response.json()["error"]
    assert client.get("/v1/models/other").status_code == 404
    assert client.get("/v1/models").json() == [{"name": "mixed", "task": "classification"}]
    info = client.get("/v1/models/mixed").json()
    assert info["classes"] == ["big", "small"] and info["features"] == ["size", "color", "flag"]
    assert info["metrics"]["test"]["accuracy"] > 0.5 and info["versions"]["weights_sha256"]
    assert client.get("/healthz").json() == {"status": "ok"} and client.get("/readyz").status_code == 200
    for route in ("/v1/models/{name}/predict", "/v1/models", "/v1/models/{name}"):
        assert f'route="{route}"' in client.get("/metrics").text


def test_openapi_schema_names_columns_types_and_categories(client):
    schema = client.get("/openapi.json").json()
    row = schema["components"]["schemas"]["MixedRow"]
    assert row["required"] == ["size", "color", "flag"] and row["additionalProperties"] is False
    types = {name: {t.get("type") for t in prop["anyOf"]} if "anyOf" in prop else {prop.get("type")}
             for name, prop in row["properties"].items()}
    assert types["size"] == {"number", "null"} and types["flag"] == {"boolean", "null"}
    color = row["properties"]["color"]
    assert sorted(next(t for t in color["anyOf"] if "enum" in t)["enum"]) == ["blue", "green", "red"]
    body = schema["paths"]["/v1/models/mixed/predict"]["post"]["requestBody"]["content"]
    assert set(body) == {"application/json", "text/csv"}
    answer = schema["components"]["schemas"]["MixedAnswer"]["properties"]
    assert answer["prediction"]["enum"] == ["big", "small"]
    assert client.get("/docs").status_code == 200


def test_api_key_is_required_when_configured_and_compared_in_constant_time(table_run):
    key = "k" * 8 + "-0123456789abcdef"
    app = create_app([str(table_run[0].path)], api_key=key)
    with TestClient(app) as client:
        assert client.post("/v1/models/mixed/predict", json={"rows": [ROW]}).status_code == 401
        wrong = client.post("/v1/models/mixed/predict", json={"rows": [ROW]}, headers={"x-api-key": key[:-1] + "x"})
        assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
        assert client.get("/metrics").status_code == 401 and client.get("/v1/models").status_code == 401
        for headers in ({"authorization": f"Bearer {key}"}, {"x-api-key": key}):
            assert client.post("/v1/models/mixed/predict", json={"rows": [ROW]}, headers=headers).status_code == 200
        assert client.get("/healthz").status_code == 200  # for load balancers
        schemes = client.get("/openapi.json").json()["components"]["securitySchemes"]
        assert set(schemes) == {"bearer", "apiKey"}
    with pytest.raises(DataError, match="shorter than 16 characters"):
        create_app([str(table_run[0].path)], api_key="short")


def _concurrently(app, bodies):
    async def main():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://service") as http:
            return await asyncio.gather(*(http.post("/v1/models/mixed/predict", json=b) for b in bodies))

    return asyncio.run(main())


def test_concurrent_requests_share_forward_passes_and_keep_their_order(table_run):
    run, path = table_run
    frame = pd.read_csv(path).drop(columns="label").head(48)
    rows = json.loads(frame.to_json(orient="records"))
    app = create_app([str(run.path)], batch_wait_ms=20)
    bad = {"rows": [ROW, {**ROW, "size": 1e12}]}  # valid JSON, but a value the model cannot read
    responses = _concurrently(app, [{"rows": [row]} for row in rows[:24]] + [bad] + [{"rows": [r]} for r in rows[24:]])
    refused = responses.pop(24)
    assert refused.status_code == 422 and refused.json()["problems"][0]["row"] == 2  # its own row number
    expected = run.predictor.predict_table(frame)["label"].tolist()
    assert [r.json()["predictions"][0]["prediction"] for r in responses] == expected
    numbers = dict(line.rsplit(" ", 1) for line in _metrics(app).splitlines() if line.startswith("layerforge_batch"))
    rows_answered = float(numbers['layerforge_batch_rows_sum{model="mixed"}'])
    passes = int(numbers['layerforge_batch_rows_count{model="mixed"}'])
    assert rows_answered == 48 and passes < 48  # forward passes shared by several requests
    app.state.service.stop()


def _metrics(app):
    with TestClient(app) as client:
        return client.get("/metrics").text


def test_a_full_queue_answers_503_with_retry_after(table_run):
    app = create_app([str(table_run[0].path)], queue_size=2, max_batch=1)
    served = app.state.service.models["mixed"]
    release = threading.Event()
    forward = served.backend.forward
    served.backend.forward = lambda inputs: release.wait(10) and forward(inputs)
    threading.Timer(1.0, release.set).start()
    responses = _concurrently(app, [{"rows": [ROW]}] * 8)
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(200) >= 2 and statuses.count(503) >= 4 and set(statuses) <= {200, 503}
    refused = next(r for r in responses if r.status_code == 503)
    assert refused.headers["retry-after"] == "1" and "queue for mixed is full" in refused.json()["error"]
    app.state.service.stop()


def test_an_internal_failure_is_a_500_with_an_id_and_no_trace(table_run, caplog):
    app = create_app([str(table_run[0].path)])
    served = app.state.service.models["mixed"]

    def broken(inputs):
        raise RuntimeError("secret internals at /home/model")

    served.backend.forward = broken
    with caplog.at_level("ERROR", logger="layerforge.serving"), TestClient(app) as client:
        response = client.post("/v1/models/mixed/predict", json={"rows": [ROW]})
    body = response.json()
    assert response.status_code == 500 and set(body) == {"error", "problems", "id"}
    assert "secret" not in response.text and "Traceback" not in response.text
    assert body["id"] == response.headers["x-request-id"]
    logged = next(r for r in caplog.records if body["id"] in r.getMessage())
    assert "secret internals" in str(logged.exc_info[1])  # the log keeps what the body does not


def test_images_sequences_forecasts_samples_and_text(root):
    from PIL import Image

    images = _train({"data": {"dataset": "digits_images"}, "model": {"type": "cnn", "channels": [4]},
                     "train": {"epochs": 2}}, root, "digits-cnn")
    forecast = _train({**tasks.get("forecasting").example, "train": {"epochs": 2}}, root, "airline")
    gan = _train({"data": {"dataset": "digits"}, "model": {"type": "gan", "latent_size": 4, "generator": [16],
                                                          "discriminator": [16], "conditional": True},
                  "train": {"epochs": 1}}, root, "digits-gan")
    language = _train({**tasks.get("language_model").example, "train": {"epochs": 1}}, root, "docs-lm")
    waves = _waves(root)
    sequences = _train({"data": {"path": str(waves), "kind": "sequence", "target": "label", "id": "id", "time": "time"},
                        "model": {"type": "rnn", "hidden_size": 8}, "train": {"epochs": 2}}, root, "waves")
    app = create_app([str(r.path) for r in (images, forecast, gan, language, sequences)])
    with TestClient(app) as client:
        x = np.asarray(images.held_out("test")[0][0][:3])  # scaled; the service takes raw pixels
        state = images.manifest.preprocessing
        raw = x * np.asarray(state.std)[None, :, None, None] + np.asarray(state.mean)[None, :, None, None]
        answers = _ok(client, "digits-cnn", {"rows": raw[:, 0].tolist()})
        assert [a["prediction"] for a in answers] == images.predict(raw).tolist()
        picture = io.BytesIO()
        Image.fromarray((np.clip(raw[0, 0] / 16, 0, 1) * 255).astype(np.uint8)).save(picture, format="PNG")
        encoded = base64.b64encode(picture.getvalue()).decode()
        assert _ok(client, "digits-cnn", {"rows": [encoded]})[0]["prediction"] in images.manifest.classes
        bad = client.post("/v1/models/digits-cnn/predict", json={"rows": ["bm90IGFuIGltYWdl"]})
        assert bad.status_code == 422 and "image 1: cannot be read as an image (not a PNG or JPEG image)" in bad.json()["error"]

        series = forecast.held_out("test")[0][0]
        window = forecast.predictor.encoder.scaler.inverse_target(np.asarray(series[0, 0]))  # the target's own scale
        steps = _ok(client, "airline", {"rows": [window.tolist()]})[0]["prediction"]
        np.testing.assert_allclose(steps, forecast.predict(window)[0], rtol=1e-4)

        samples = _ok(client, "digits-gan", {"n": 4, "label": 3, "seed": 1})
        assert len(samples) == 4 and {s["label"] for s in samples} == {3} and len(samples[0]["prediction"]) == 64
        assert _ok(client, "digits-gan", {"n": 4, "label": 3, "seed": 1}) == samples  # the same seed, the same rows
        assert client.post("/v1/models/digits-gan/predict", json={"n": 0}).status_code == 422

        text = _ok(client, "docs-lm", {"prompt": "The ", "length": 20, "seed": 0})[0]["prediction"]
        assert text == language.generate("The ", 20, seed=0)

        short, long = np.sin(np.arange(14) * 0.9).tolist(), np.sin(np.arange(28) * 0.3).tolist()
        answers = _ok(client, "waves", {"rows": [short, long]})
        assert [a["prediction"] for a in answers] == sequences.predict(_padded([short, long], sequences)).tolist()
        too_long = client.post("/v1/models/waves/predict", json={"rows": [[0.0] * 500]})
        assert too_long.status_code == 422


def _ok(client, name, body):
    response = client.post(f"/v1/models/{name}/predict", json=body)
    assert response.status_code == 200, response.text
    return response.json()["predictions"]


def _waves(root):
    rng = np.random.default_rng(0)
    steps = []
    for i in range(80):
        length = int(rng.integers(12, 30))
        values = np.sin(np.arange(length) * (0.3 if i % 2 else 0.9)) + rng.normal(0, 0.1, length)
        steps += [{"id": i, "time": t, "value": float(v), "label": ["fast", "slow"][i % 2]}
                  for t, v in enumerate(values)]
    path = root / "waves.csv"
    pd.DataFrame(steps).to_csv(path, index=False)
    return path


def _padded(series, run):
    from layerforge.data.kinds.sequence import pad

    x, lengths = pad([np.asarray(s)[None] for s in series], run.manifest.preprocessing.length, True)
    path = run.path.parent / "padded.npz"
    np.savez(path, x=x, lengths=lengths)
    return path


def test_models_that_cannot_be_served_are_refused_when_the_service_starts(table_run, tmp_path):
    run = table_run[0]
    with pytest.raises(CheckpointError, match="has no export for --backend onnx: write one with `layerforge export"):
        load_models([str(run.path)], backend="onnx")
    with pytest.raises(DataError, match="two runs are named 'mixed'"):
        load_models([str(run.path), str(run.path)])
    assert [m.name for m in load_models([str(run.path), f"second={run.path}"])] == ["mixed", "second"]
    assert ServeOptions(int8=True).problems() == ["--int8 needs --backend onnx"]


def test_texts_values_and_anomaly_scores(root):
    from layerforge.data.builtin import load

    rng = np.random.default_rng(0)
    good, bad = ["great", "lovely", "superb"], ["awful", "poor", "dreadful"]
    reviews = pd.DataFrame([{"review": f"the film was {rng.choice(good if i % 2 else bad)}",
                             "sentiment": "pos" if i % 2 else "neg"} for i in range(120)])
    reviews.to_csv(root / "reviews.csv", index=False)
    text = _train({"data": {"path": str(root / "reviews.csv"), "text": "review", "target": "sentiment"},
                   "model": {"type": "rnn", "hidden_size": 8, "embedding_size": 8}, "train": {"epochs": 3}},
                  root, "reviews")
    values = _train({**tasks.get("regression").example, "train": {"epochs": 3}}, root, "diabetes")
    detector = _train({"data": {"dataset": "digits", "anomaly_classes": [9]},
                       "model": {"type": "autoencoder", "layers": [16], "latent_size": 4}, "train": {"epochs": 2}},
                      root, "digits-ae")
    with TestClient(create_app([str(r.path) for r in (text, values, detector)])) as client:
        said = ["the film was lovely", "the film was awful"]
        answers = _ok(client, "reviews", {"rows": said})
        assert [a["prediction"] for a in answers] == text.predict(said).tolist()
        frame = load("diabetes").drop(columns="progression").head(5)
        answers = _ok(client, "diabetes", {"rows": json.loads(frame.to_json(orient="records"))})
        np.testing.assert_allclose([a["prediction"] for a in answers], values.predict(frame), rtol=1e-4)
        digits = load("digits").drop(columns="label").head(6)
        answers = _ok(client, "digits-ae", {"rows": json.loads(digits.to_json(orient="records"))})
        scores, flags = detector.anomalies(digits)
        np.testing.assert_allclose([a["anomaly_score"] for a in answers], scores, rtol=1e-4)
        assert [a["anomaly"] for a in answers] == flags.tolist()
        assert [a["prediction"] for a in answers] == [a["anomaly_score"] for a in answers]


def test_lf_serve_binds_to_loopback_by_default(table_run, monkeypatch):
    import uvicorn

    started = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: started.update(app=app, **options))
    lf.serve([str(table_run[0].path)], port=8123)
    assert (started["host"], started["port"], started["access_log"]) == ("127.0.0.1", 8123, False)
    assert started["app"].state.service.models["mixed"].backend.name == "torch"
    monkeypatch.setenv("LF_TEST_KEY", "0123456789abcdef0123")
    lf.serve([str(table_run[0].path)], api_key_env="LF_TEST_KEY", max_batch=8)
    service = started["app"].state.service
    assert service.options.api_key == "0123456789abcdef0123" and service.options.max_batch == 8
