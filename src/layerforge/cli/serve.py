"""``layerforge serve``: serve runs over HTTP: POST /v1/models/NAME/predict, typed from each run (see /docs)."""

from __future__ import annotations

import typer

from .common import Backend, guard


def serve(
    runs: list[str] = typer.Argument(..., help="Run directories to serve (each may be NAME=DIRECTORY)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind; 0.0.0.0 makes the service reachable from other machines."),
    port: int = typer.Option(8000, "--port", min=0, max=65535, help="TCP port."),
    workers: int = typer.Option(1, "--workers", min=1, help="Processes; each loads every model."),
    backend: Backend = typer.Option(Backend.torch, "--backend", help="torch (the run), or onnx: its export through ONNX Runtime."),
    int8: bool = typer.Option(False, "--int8", help="With --backend onnx: the int8 model the export kept."),
    api_key_env: str | None = typer.Option(None, "--api-key-env", help="Environment variable holding the API key clients must send (default: none asked)."),
    max_batch: int = typer.Option(64, "--max-batch", min=1, help="Most rows one forward pass gathers from concurrent requests; 1 turns batching off."),
    batch_wait_ms: float = typer.Option(2.0, "--batch-wait-ms", min=0, max=1000, help="Longest wait for requests on their way in before a forward pass."),
    max_body: int = typer.Option(1 << 20, "--max-body", min=1, help="Largest request body in bytes (413 beyond it)."),
    queue_size: int = typer.Option(256, "--queue-size", min=1, help="Requests that may wait per model before 503."),
) -> None:
    """Serve runs over HTTP: POST /v1/models/NAME/predict, typed from each run (see /docs)."""
    from ..serving import serve as run_service

    guard(lambda: run_service(runs, host=host, port=port, workers=workers, api_key_env=api_key_env,
                               backend=backend.value, int8=int8, max_batch=max_batch, batch_wait_ms=batch_wait_ms,
                               max_body=max_body, queue_size=queue_size))

