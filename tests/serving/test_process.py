"""`layerforge serve` as a real uvicorn process on a free loopback port: it binds to 127.0.0.1 by
default, answers, logs each request as one JSON line, and on SIGTERM finishes the request in
flight before it exits."""

import json
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

import layerforge as lf

from ..conftest import tiny_spec


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_ready(url: str, process: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the service exited: {process.communicate()[1][-2000:]}")
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError("the service did not become ready")


def test_a_uvicorn_process_serves_logs_and_drains_on_sigterm(tmp_path):
    run = lf.train(tiny_spec(epochs=5), runs_dir=tmp_path / "runs", progress=False)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen([sys.executable, "-m", "layerforge", "serve", str(run.path), "--port", str(port)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_ready(url, process)
        features = run.manifest.features
        rows = [dict(zip(features, values)) for values in ([5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3])]
        response = httpx.post(f"{url}/v1/models/tiny/predict", json={"rows": rows})
        assert response.status_code == 200
        import pandas as pd

        expected = run.predict(pd.DataFrame(rows)).tolist()
        assert [a["prediction"] for a in response.json()["predictions"]] == expected

        # a request in flight when SIGTERM arrives: its headers are in, its body not yet
        body = json.dumps({"rows": rows}).encode()
        with socket.create_connection(("127.0.0.1", port)) as raw:
            raw.sendall(f"POST /v1/models/tiny/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body[:10])
            time.sleep(0.3)
            process.send_signal(signal.SIGTERM)
            time.sleep(0.3)
            raw.sendall(body[10:])
            answer = b""
            while chunk := raw.recv(65536):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
        assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["predictions"][1]["prediction"] == expected[1]
        assert process.wait(timeout=30) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once drained
    finally:
        if process.poll() is None:
            process.kill()
    _, log = process.communicate()
    assert f"http://127.0.0.1:{port}" in log  # loopback unless told otherwise
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert any(entry["path"] == "/v1/models/tiny/predict" and entry["status"] == 200 and entry["ms"] > 0
               for entry in lines)


@pytest.mark.parametrize("arguments, words", [
    (["--api-key-env", "LAYERFORGE_TEST_UNSET_KEY"], "the environment variable LAYERFORGE_TEST_UNSET_KEY is not set"),
    (["--backend", "onnx"], "has no export for --backend onnx"),
])
def test_the_command_refuses_what_it_cannot_serve_before_it_binds(tmp_path, arguments, words):
    run = lf.train(tiny_spec(epochs=1), runs_dir=tmp_path / "runs", progress=False)
    done = subprocess.run([sys.executable, "-m", "layerforge", "serve", str(run.path), "--port", str(_free_port()),
                           *arguments], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and words in done.stderr
