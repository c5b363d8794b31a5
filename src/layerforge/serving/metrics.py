"""The service's numbers in Prometheus' text format (``GET /metrics``): requests by model, route
and status, request latency and batch sizes as histograms, and queue lengths."""

from __future__ import annotations

import threading
from collections import defaultdict

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class _Histogram:
    def __init__(self, buckets: tuple):
        self.buckets = buckets
        self.counts = [0] * len(buckets)
        self.total, self.sum = 0, 0.0

    def observe(self, value: float) -> None:
        for i, bound in enumerate(self.buckets):
            if value <= bound:
                self.counts[i] += 1
        self.total += 1
        self.sum += value

    def lines(self, name: str, labels: str) -> list[str]:
        sep = "," if labels else ""
        out = [f'{name}_bucket{{{labels}{sep}le="{bound}"}} {count}' for bound, count in zip(self.buckets, self.counts)]
        out.append(f'{name}_bucket{{{labels}{sep}le="+Inf"}} {self.total}')
        out.append(f"{name}_sum{{{labels}}} {self.sum:.6f}")
        out.append(f"{name}_count{{{labels}}} {self.total}")
        return out


def _labels(**values: str) -> str:
    return ",".join(f'{key}="{_escaped(value)}"' for key, value in values.items())


def _escaped(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Metrics:
    """Counters and histograms, safe to update from the event loop and the batch workers."""

    def __init__(self):
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, str, int], int] = defaultdict(int)
        self._latency: dict[str, _Histogram] = {}
        self._batches: dict[str, _Histogram] = {}

    def request(self, model: str, route: str, status: int, seconds: float) -> None:
        with self._lock:
            self._requests[(model, route, status)] += 1
            self._latency.setdefault(route, _Histogram(LATENCY_BUCKETS)).observe(seconds)

    def batch(self, model: str, rows: int) -> None:
        with self._lock:
            self._batches.setdefault(model, _Histogram(BATCH_BUCKETS)).observe(rows)

    def text(self, queues: dict[str, int]) -> str:
        with self._lock:
            lines = ["# HELP layerforge_requests_total HTTP requests answered, by model, route and status.",
                     "# TYPE layerforge_requests_total counter"]
            for (model, route, status), count in sorted(self._requests.items()):
                lines.append(f"layerforge_requests_total{{{_labels(model=model, route=route, status=str(status))}}} "
                             f"{count}")
            lines += ["# HELP layerforge_request_seconds Time from a request's arrival to its answer.",
                      "# TYPE layerforge_request_seconds histogram"]
            for route, histogram in sorted(self._latency.items()):
                lines += histogram.lines("layerforge_request_seconds", _labels(route=route))
            lines += ["# HELP layerforge_batch_rows Rows in each forward pass (dynamic batching).",
                      "# TYPE layerforge_batch_rows histogram"]
            for model, histogram in sorted(self._batches.items()):
                lines += histogram.lines("layerforge_batch_rows", _labels(model=model))
        lines += ["# HELP layerforge_queue_requests Requests waiting for a model's worker.",
                  "# TYPE layerforge_queue_requests gauge"]
        lines += [f"layerforge_queue_requests{{{_labels(model=model)}}} {waiting}" for model, waiting in queues.items()]
        return "\n".join(lines) + "\n"
