"""How the service runs: its backend, limits and batching (``layerforge serve`` options)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

DEFAULT_MAX_BODY = 1 << 20  # 1 MiB


@dataclass(frozen=True)
class ServeOptions:
    """Args:
        backend: 'torch' (the run) or 'onnx' (its export, through ONNX Runtime).
        int8: with onnx, the int8 model the export kept.
        api_key: when set, /v1 and /metrics need it (``Authorization: Bearer`` or ``X-API-Key``).
        max_batch: most rows one forward pass gathers from concurrent requests (1: no batching).
        batch_wait_ms: longest wait for requests on their way in before a forward pass.
        max_body: largest request body in bytes; larger ones get 413 before they are parsed.
        queue_size: most requests waiting per model; more get 503 with Retry-After.
    """

    backend: str = "torch"
    int8: bool = False
    api_key: str | None = None
    max_batch: int = 64
    batch_wait_ms: float = 2.0
    max_body: int = DEFAULT_MAX_BODY
    queue_size: int = 256

    def problems(self) -> list[str]:
        found = []
        if self.backend not in ("torch", "onnx"):
            found.append(f"--backend: expected torch or onnx, got {self.backend!r}")
        if self.int8 and self.backend != "onnx":
            found.append("--int8 needs --backend onnx")
        for name, least in (("max_batch", 1), ("max_body", 1), ("queue_size", 1)):
            if getattr(self, name) < least:
                found.append(f"--{name.replace('_', '-')}: expected at least {least}, got {getattr(self, name)}")
        if not 0 <= self.batch_wait_ms <= 1000:
            found.append(f"--batch-wait-ms: expected 0 to 1000, got {self.batch_wait_ms}")
        if self.api_key is not None and len(self.api_key) < 16:
            found.append("the API key is shorter than 16 characters; use a long random one "
                         "(python -c 'import secrets; print(secrets.token_urlsafe(32))')")
        return found

    def to_json(self) -> dict:
        return asdict(self)
