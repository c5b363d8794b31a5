"""Dynamic batching: the requests for one model that arrive together are answered by one forward
pass, on a worker thread, so the event loop keeps accepting requests meanwhile.

The worker takes the oldest request, then every request already waiting (up to ``max_batch``
rows). When more requests are on their way in (``arriving()``: read but not yet queued) it waits
for them up to ``wait_s``; a lone request is answered at once, so low load pays no wait. The
queue is bounded: when it is full, ``submit`` raises ``Busy`` (the service answers 503 with
Retry-After) instead of letting memory and latency grow without limit.

A forward pass runs on one of a few batch sizes (powers of two up to ``max_batch``; the rows
padded by repeating the last), each warmed once when the worker starts: kernels plan their work
for each new input shape, and on 64 different shapes that costs a pause of hundreds of
milliseconds here and there under load.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np


class Busy(Exception):
    """The model's queue is full."""


@dataclass
class _Job:
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop
    rows: Any = None  # rows to predict (batched with others), or
    call: Callable[[], Any] | None = None  # work done alone (sampling, generating text)
    count: int = 1
    queued: float = field(default_factory=time.perf_counter)

    def resolve(self, result=None, error: BaseException | None = None) -> None:
        def settle():
            if self.future.done():  # the client went away
                return
            if error is not None:
                self.future.set_exception(error)
            else:
                self.future.set_result(result)

        self.loop.call_soon_threadsafe(settle)


class Batcher:
    """The queue and worker thread of one served model.

    Args:
        served: the model (``Served``): ``encode``, ``backend.forward`` and ``answers``.
        max_batch: most rows gathered into one forward pass (1: no batching).
        wait_s: longest wait for requests on their way in.
        queue_size: most requests waiting; more are refused with ``Busy``.
        arriving: how many requests are being read and may join a batch.
        on_batch: called with the rows of each forward pass (for /metrics).
    """

    def __init__(self, served, *, max_batch: int, wait_s: float, queue_size: int,
                 arriving: Callable[[], int] = lambda: 0, on_batch: Callable[[int], None] = lambda rows: None):
        self.served, self.max_batch, self.wait_s, self.queue_size = served, max_batch, wait_s, queue_size
        self._arriving, self._on_batch = arriving, on_batch
        self.sizes = sorted({2 ** i for i in range(max_batch.bit_length()) if 2 ** i < max_batch} | {max_batch})
        self._jobs: deque[_Job] = deque()
        self._ready = threading.Condition()
        self._stopping, self._started = False, False
        self._thread = threading.Thread(target=self._work, name=f"layerforge-serve-{served.name}", daemon=True)

    def start(self) -> None:
        """Start the worker (once; a request also starts it, for apps run without their lifespan)."""
        with self._ready:
            if not self._started:
                self._started = True
                self._thread.start()

    def _warm(self) -> None:
        try:
            self.served.warm(self.sizes)
        except Exception:  # noqa: BLE001 - a cold start is slower, not wrong
            pass

    def stop(self, timeout: float = 30.0) -> None:
        """Answer what is queued, then end the worker."""
        with self._ready:
            self._stopping = True
            self._ready.notify()
            started = self._started
        if started:
            self._thread.join(timeout)

    @property
    def waiting(self) -> int:
        return len(self._jobs)

    async def predict(self, rows, count: int) -> list[dict]:
        """Answers for the rows of one request (batched with others)."""
        return await self._submit(rows=rows, count=count)

    async def run(self, call: Callable[[], Any]) -> Any:
        """The result of ``call`` on the worker (generation, which is not batched)."""
        return await self._submit(call=call)

    async def _submit(self, **job) -> Any:
        loop = asyncio.get_running_loop()
        entry = _Job(loop.create_future(), loop, **job)
        self.start()
        with self._ready:
            if self._stopping or len(self._jobs) >= self.queue_size:
                raise Busy()
            self._jobs.append(entry)
            self._ready.notify()
        return await entry.future

    # -- the worker ---------------------------------------------------------------------------------

    def _work(self) -> None:
        self._warm()
        while True:
            with self._ready:
                while not self._jobs and not self._stopping:
                    self._ready.wait()
                if not self._jobs:
                    return
                first = self._jobs.popleft()
            if first.call is not None:
                self._alone(first)
            else:
                self._batch(self._gather(first))

    def _gather(self, first: _Job) -> list[_Job]:
        batch, rows = [first], first.count
        deadline = time.perf_counter() + self.wait_s
        with self._ready:
            while rows < self.max_batch:
                if self._jobs and self._jobs[0].call is None and rows + self._jobs[0].count <= self.max_batch:
                    job = self._jobs.popleft()
                    batch.append(job)
                    rows += job.count
                    continue
                if self._jobs or self._stopping or self._arriving() <= 0:
                    break
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    break
                self._ready.wait(remaining)
        return batch

    def _alone(self, job: _Job) -> None:
        try:
            job.resolve(job.call())
        except BaseException as error:  # noqa: BLE001 - handed to the request, which answers for it
            job.resolve(error=error)

    def _batch(self, batch: list[_Job]) -> None:
        served = self.served
        encoded = []
        try:
            found = served.encode_all([job.rows for job in batch])
        except Exception as error:  # noqa: BLE001
            found = [error] * len(batch)
        for job, inputs in zip(batch, found):
            if isinstance(inputs, BaseException):
                job.resolve(error=inputs)
            else:
                encoded.append((job, inputs))
        if not encoded:
            return
        try:
            parts = [inputs for _, inputs in encoded]
            inputs = parts[0] if len(parts) == 1 else tuple(np.concatenate(arrays) for arrays in zip(*parts))
            rows = len(inputs[0])
            size = next((size for size in self.sizes if size >= rows), rows)
            if size > rows:  # one of the warmed shapes
                inputs = tuple(np.concatenate([a, np.repeat(a[-1:], size - rows, axis=0)]) for a in inputs)
            outputs = served.backend.forward(inputs)[:rows]
        except BaseException as error:  # noqa: BLE001
            for job, _ in encoded:
                job.resolve(error=error)
            return
        self._on_batch(rows)
        start = 0
        for job, own in encoded:
            stop = start + len(own[0])
            try:
                job.resolve(served.answers(outputs[start:stop], own))
            except BaseException as error:  # noqa: BLE001
                job.resolve(error=error)
            start = stop
