"""The HTTP service under load, on 127.0.0.1 only: throughput and p50/p99 latency of single-row
requests with 1, 8 and 64 concurrent clients, with and without dynamic batching, on the torch
and onnx backends, for the digits MLP and the digits CNN; then a steady-load soak that watches
the service's resident memory.

Each configuration is a fresh `layerforge serve` process (`--max-batch 64` against
`--max-batch 1`); the clients are keep-alive HTTP/1.1 connections driven by asyncio in this
process, sharing the machine's cores with the service (as on the 2-core CI machine). Every
configuration sends the same number of requests; rounds are interleaved so that drift in the
machine's speed falls on all alike. Prints markdown tables.

    python bench/serve.py [--requests 2000] [--rounds 2] [--soak-seconds 180] [--runs MLP CNN]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import layerforge as lf

ROOT = Path(__file__).resolve().parents[1]
MODELS = {"digits MLP": None, "digits CNN": ROOT / "examples/images/digits_cnn.yaml"}
CLIENTS = (1, 8, 64)
SOAK_BOUND_MIB = 10  # resident memory may grow this much under steady load, no more


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Service:
    """A `layerforge serve` process on a free loopback port."""

    def __init__(self, run: Path, backend: str, max_batch: int):
        self.port = _free_port()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "layerforge", "serve", str(run), "--port", str(self.port), "--backend", backend,
             "--max-batch", str(max_batch)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as probe:
                    probe.sendall(b"GET /readyz HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n")
                    if probe.recv(64).startswith(b"HTTP/1.1 200"):
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError("the service did not start")

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)


async def _client(port: int, request: bytes, count: int, latencies: list, errors: list) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for _ in range(count):
            start = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length"))
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - start)
            if not head.startswith(b"HTTP/1.1 200"):
                errors.append(head.split(b"\r\n")[0].decode())
    finally:
        writer.close()


def load(port: int, name: str, body: bytes, clients: int, requests: int) -> dict:
    """``requests`` single-row requests spread over ``clients`` connections."""
    request = (f"POST /v1/models/{name}/predict HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
               f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    latencies, errors = [], []

    async def main():
        share = [requests // clients + (i < requests % clients) for i in range(clients)]
        await asyncio.gather(*(_client(port, request, n, latencies, errors) for n in share))

    start = time.perf_counter()
    asyncio.run(main())
    seconds = time.perf_counter() - start
    ms = np.asarray(latencies) * 1000
    return {"rps": requests / seconds, "p50": float(np.percentile(ms, 50)), "p99": float(np.percentile(ms, 99)),
            "errors": len(errors)}


def _row(run) -> bytes:
    """One raw row of the run's own test split, as JSON."""
    inputs = np.asarray(run.held_out("test")[0][0][:1], dtype=np.float64)
    state = run.manifest.preprocessing
    if run.manifest.features and state.kind == "table":  # a table: unscale to the raw columns
        values = run.predictor.encoder.unscale(inputs.astype(np.float32))
        return json.dumps({"rows": json.loads(values.to_json(orient="records"))}).encode()
    raw = inputs * np.asarray(state.std)[None, :, None, None] + np.asarray(state.mean)[None, :, None, None]
    return json.dumps({"rows": raw[:, 0].tolist()}).encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests per configuration and round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--soak-seconds", type=float, default=180)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--runs", nargs=2, default=None, metavar=("MLP", "CNN"), help="reuse trained runs")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="lf-bench-serve-"))
    runs = {}
    for (label, spec), given in zip(MODELS.items(), args.runs or [None, None]):
        if given:
            runs[label] = lf.load_run(given)
        else:
            print(f"training {label} ...", file=sys.stderr)
            overrides = [f"train.epochs={args.epochs}"] if args.epochs else []
            runs[label] = lf.train(spec, overrides=overrides, runs_dir=workdir / "runs", progress=False)
        if not (runs[label].path / "export" / "runtime.json").is_file():
            runs[label].export()

    results: dict[tuple, list[dict]] = {}
    for round_ in range(args.rounds):
        for label, run in runs.items():
            body = _row(run)
            for backend in ("torch", "onnx"):
                for batching in (True, False):
                    service = Service(run.path, backend, 64 if batching else 1)
                    try:
                        load(service.port, run.spec.name, body, 8, 200)  # warm up
                        for clients in CLIENTS:
                            found = load(service.port, run.spec.name, body, clients, args.requests)
                            results.setdefault((label, backend, batching, clients), []).append(found)
                            print(f"round {round_ + 1} {label} {backend} batching={batching} clients={clients}: "
                                  f"{found['rps']:.0f} req/s p50 {found['p50']:.2f} ms", file=sys.stderr)
                    finally:
                        service.stop()

    print(f"\n### Single-row requests, {args.requests} per configuration, median of {args.rounds} rounds "
          f"({os.cpu_count()} CPU cores, clients in the same machine)\n")
    print("| model | backend | batching | clients | requests/s | p50 ms | p99 ms | errors |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    for (label, backend, batching, clients), found in results.items():
        med = {key: statistics.median(f[key] for f in found) for key in ("rps", "p50", "p99")}
        errors = sum(f["errors"] for f in found)
        print(f"| {label} | {backend} | {'on' if batching else 'off'} | {clients} | {med['rps']:.0f} | "
              f"{med['p50']:.2f} | {med['p99']:.2f} | {errors} |")
    print("\n| model | backend | 64 clients: batching on / off (throughput) |")
    print("|---|---|---:|")
    for label in runs:
        for backend in ("torch", "onnx"):
            on = statistics.median(f["rps"] for f in results[(label, backend, True, 64)])
            off = statistics.median(f["rps"] for f in results[(label, backend, False, 64)])
            print(f"| {label} | {backend} | {on / off:.2f}x |")

    if args.soak_seconds > 0:
        soak(runs["digits MLP"], args.soak_seconds)


def soak(run, seconds: float) -> None:
    """Steady load (8 clients) for ``seconds``; resident memory sampled every 10 s."""
    service = Service(run.path, "torch", 64)
    body = _row(run)
    try:
        load(service.port, run.spec.name, body, 8, 2000)  # warm up: allocator pools, caches
        samples, served, errors = [(0.0, service.rss_mib())], 0, 0
        start = time.monotonic()
        while time.monotonic() - start < seconds:
            found = load(service.port, run.spec.name, body, 8, 4000)
            served += 4000
            errors += found["errors"]
            samples.append((time.monotonic() - start, service.rss_mib()))
        first, last = samples[0][1], samples[-1][1]
        tail = [rss for _, rss in samples[len(samples) // 2:]]
        print(f"\n### Soak: digits MLP, torch, 8 clients, {samples[-1][0]:.0f} s, {served} requests, {errors} errors\n")
        print("| seconds | resident MiB |\n|---:|---:|")
        for at, rss in samples[:: max(1, len(samples) // 12)] + [samples[-1]]:
            print(f"| {at:.0f} | {rss:.1f} |")
        grown = max(rss for _, rss in samples) - first
        print(f"\nresident memory after warm-up {first:.1f} MiB, at the end {last:.1f} MiB "
              f"(+{last - first:.1f} MiB); over the second half it moved {max(tail) - min(tail):.1f} MiB; "
              f"bound: growth under {SOAK_BOUND_MIB} MiB: {'met' if grown < SOAK_BOUND_MIB else 'NOT MET'}")
    finally:
        service.stop()


if __name__ == "__main__":
    main()
