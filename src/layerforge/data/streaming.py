"""Data larger than memory (tables in CSV, TSV or Parquet files, folders of images): the training
rows stream from their files through the training loop, a chunk at a time (``prepare`` keeps
the rest in memory: see ``prepare_streamed``).

Each epoch, reader processes (DataLoader workers, ``data.stream.workers``) read the source's
pieces (Parquet row groups, blocks of a CSV's lines, 256 image files) in an order drawn from the
run's batch generator, keep the training rows and encode them; the training process mixes what
arrives in a shuffle buffer and cuts batches from it. The generator is in every checkpoint, so a
resumed run draws the same orders and batches.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from .. import tasks
from ..errors import DataError
from ..models.inputs import Inputs
from .batches import as_tensors
from .kinds import Encoder, Source

BUFFER_BYTES = 32 << 20  # data.stream.shuffle_buffer: auto mixes about this many bytes of encoded rows
BUFFER_BATCHES = 8  # ... and at least this many batches


class RowStream:
    """The training rows of a streamed source, encoded as they are read.

    Args:
        source: the streamed source (its payload reads pieces: ``StreamedTable``, ``ImageFiles``).
        train: the training rows' positions.
        encoder, task: fitted on the sample (the encoder) and on every training label (the task).
        sample: the encoded sample the preprocessing was fitted on, ``(inputs, y)`` (what
            measures the training rows after training).
        options: ``data.stream``.
        encode_parts: ``layerforge.data.prepare.encode_parts`` (passed in: prepare builds this).
    """

    def __init__(self, source: Source, train: np.ndarray, encoder: Encoder, task: tasks.Task, sample, options,
                 encode_parts):
        self.pieces = source.payload  # units(), read(unit) and take(positions): see StreamedTable
        self.keep = np.zeros(source.rows, dtype=bool)
        self.keep[train] = True
        self.rows = len(train)
        self.encoder, self.task, self.sample, self.options = encoder, task, sample, options
        self.encode_parts = encode_parts

    def __len__(self) -> int:
        return self.rows

    @property
    def inputs(self) -> Inputs:
        return self.encoder.inputs

    def encode(self, positions: np.ndarray, rows: Source):
        """The training rows of a chunk (``rows``, at ``positions`` of the source) as
        ``(inputs, y)`` tensors, or None when it holds none."""
        kept = np.flatnonzero(self.keep[positions])
        if len(kept) == 0:
            return None
        return as_tensors(self.encode_parts(self.encoder, self.task, rows, {"rows": kept})["rows"], self.task, "cpu")

    def workers(self) -> int:
        wanted = self.options.workers
        if wanted == "auto":  # on two cores a reader process only competes with the training steps
            wanted = max(0, min(4, ((os.cpu_count() or 2) - 2) // 2))
        return min(wanted, len(self.pieces.units()))

    def batches(self, batch_size: int, *, generator: torch.Generator, min_batch: int = 1,
                shard: tuple[int, int] | None = None, device=None) -> StreamBatches:
        return StreamBatches(self, batch_size, generator=generator, min_batch=min_batch, shard=shard, device=device)


class _Chunks(torch.utils.data.IterableDataset):
    """What each reader process does in one epoch: its share of the pieces, in the epoch's
    order, as encoded training rows. A row the encoder refuses comes back as its message, so
    the training process raises it as the DataError it is."""

    def __init__(self, stream: RowStream, order: list[int]):
        super().__init__()
        self.stream, self.order = stream, order

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        stream = self.stream
        try:
            for unit in self.order[worker::workers]:
                for positions, rows in stream.pieces.read(unit):
                    encoded = stream.encode(positions, rows)
                    if encoded is not None:
                        yield encoded
        except DataError as error:
            yield str(error)


class StreamBatches:
    """Batches of a ``RowStream``'s rows for one epoch per iteration, like ``InMemoryBatches``.

    Each epoch draws one seed from ``generator``: it orders the pieces and permutes each
    buffer of rows, so the batches depend only on the generator's state (checkpointed). All the
    rows of a buffer (``data.stream.shuffle_buffer``) are permuted together and cut into batches;
    rows left over join the next buffer.

    Args:
        stream: the rows.
        batch_size, min_batch, shard: as ``InMemoryBatches`` takes them.
        device: where batches go (pinned host memory and non-blocking copies on CUDA).
    """

    mid_epoch = True  # epochs may be long: checkpoints may be taken within one (see Scaffold.mid_epoch)

    def __init__(self, stream: RowStream, batch_size: int, *, generator: torch.Generator, min_batch: int = 1,
                 shard: tuple[int, int] | None = None, device=None):
        self.stream, self.rows = stream, stream.rows
        self.batch_size = max(1, min(batch_size, self.rows))
        self.generator, self.min_batch = generator, min_batch
        self.shard, self.share = shard, 1.0
        if shard is not None:
            self.min_batch = max(self.min_batch, shard[1])
        self.device = torch.device(device or "cpu")
        buffer = stream.options.shuffle_buffer
        if buffer == "auto":
            width = max(1, stream.inputs.flat_size) * 4
            buffer = max(BUFFER_BYTES // width, BUFFER_BATCHES * self.batch_size)
        self.buffer_rows = max(buffer, self.batch_size)

    def __len__(self) -> int:
        full, rest = divmod(self.rows, self.batch_size)
        return full + (1 if rest >= self.min_batch and rest > 0 else 0)

    def __iter__(self):
        self.epoch_state = self.generator.get_state()  # what a mid-epoch checkpoint keeps
        seed = int(torch.randint(2**62, (1,), generator=self.generator))
        units = self.stream.pieces.units()
        order = [units[i] for i in np.random.default_rng(seed).permutation(len(units))]
        mixer = torch.Generator().manual_seed(seed)
        workers = self.stream.workers()
        loader = torch.utils.data.DataLoader(
            _Chunks(self.stream, order), batch_size=None, num_workers=workers,
            pin_memory=self.device.type == "cuda", prefetch_factor=2 if workers else None,
            generator=torch.Generator(),  # its worker seeds (unused) must not draw on the global generator
        )
        held: list = []
        rows = 0
        for item in loader:
            if isinstance(item, str):
                raise DataError(item)
            held.append(item)
            rows += len(item[1])
            if rows >= self.buffer_rows:
                held = yield from self._cut(held, mixer, last=False)
                rows = sum(len(y) for _, y in held)
        yield from self._cut(held, mixer, last=True)

    def _cut(self, held: list, mixer: torch.Generator, *, last: bool):
        """Yield the batches of the rows ``held``, permuted together; returns what is left over
        (fewer rows than a batch; nothing when ``last``)."""
        if not held:
            return []
        inputs = [torch.cat([item[0][i] for item in held]) for i in range(len(held[0][0]))]
        y = torch.cat([item[1] for item in held])
        order = torch.randperm(len(y), generator=mixer)
        size = self.batch_size
        full = len(y) // size
        for batch in range(full):
            yield self._placed(inputs, y, order[batch * size : (batch + 1) * size])
        rest = order[full * size :]
        if not last:
            return [(tuple(t[rest] for t in inputs), y[rest])] if len(rest) else []
        if len(rest) >= self.min_batch and len(rest):
            yield self._placed(inputs, y, rest)
        return []

    def _placed(self, inputs, y, index):
        if self.shard is not None:
            rank, processes = self.shard
            part = index.tensor_split(processes)[rank]
            self.share = len(part) * processes / len(index)
            index = part
        if self.device.type != "cuda":
            return tuple(t[index] for t in inputs), y[index]
        # gathered into pinned host memory, copied while the device still works on the last step
        placed = tuple(t[index].pin_memory().to(self.device, non_blocking=True) for t in inputs)
        return placed, y[index].pin_memory().to(self.device, non_blocking=True)
