"""In-memory batches: slices of tensors that already sit on the training device."""

from __future__ import annotations

import numpy as np
import torch


def as_tensors(data, task, device) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
    """``(x, y)`` or ``((x, lengths), y)`` as tensors on ``device``: float inputs become the
    default float type, integer inputs (token ids, lengths) int64; ``y`` as the task wants it."""
    inputs, y = data
    inputs = inputs if isinstance(inputs, (tuple, list)) else (inputs,)
    tensors = []
    for part in inputs:
        part = part if torch.is_tensor(part) else torch.as_tensor(np.asarray(part))
        floating = part.is_floating_point() or part.dtype == torch.bool
        tensors.append(part.to(device, torch.get_default_dtype() if floating else torch.long))
    y = task.target_tensor(y.cpu().numpy() if torch.is_tensor(y) else np.asarray(y))
    return tuple(tensors), y.to(device)


class InMemoryBatches:
    """Iterate over ``(inputs, y)`` in batches, reshuffled with one permutation per epoch.

    Each epoch draws one permutation; a step gathers its rows with one index (cheaper than
    permuting the whole tensor first: the rows land in cache right before use), and nothing
    crosses between host and device. A final batch of a single row is dropped when
    ``min_batch`` is 2 (batch norm cannot train on one row).

    Args:
        inputs: a tuple of tensors the model takes (``(x,)`` or ``(x, lengths)``) and ``y``,
            all with the same first dimension and already on the training device.
        batch_size: rows per batch.
        shuffle: permute rows each epoch.
        generator: CPU generator that drives the permutations (its state is checkpointed).
        min_batch: smallest batch worth a step.
        weights: one weight per row: each epoch then draws as many rows as there are, with
            replacement, each in proportion to its weight (``train.fairness: reweigh``).
        shard: ``(rank, processes)`` of data-parallel training: every process walks the same
            order, and takes its contiguous part of each batch; ``share`` is then the part's
            size times the processes over the batch's (what its loss is weighted by, so that
            averaged gradients are the whole batch's).
    """

    mid_epoch = False  # epochs are short: checkpoints are taken between them

    def __init__(self, inputs, y, batch_size: int, *, shuffle: bool = True, generator=None, min_batch: int = 1,
                 weights: torch.Tensor | None = None, shard: tuple[int, int] | None = None):
        inputs = tuple(inputs) if isinstance(inputs, (tuple, list)) else (inputs,)
        if any(len(t) != len(y) for t in inputs):
            raise ValueError(f"inputs have {[len(t) for t in inputs]} rows but y has {len(y)}")
        self.inputs, self.y = inputs, y
        self.rows = len(y)
        self.batch_size = max(1, min(batch_size, self.rows))
        self.shuffle = shuffle
        self.generator = generator
        self.min_batch = min_batch
        if weights is not None and len(weights) != self.rows:
            raise ValueError(f"{len(weights)} row weights for {self.rows} rows")
        self.weights = weights
        self.shard, self.share = shard, 1.0
        if shard is not None:
            self.min_batch = max(self.min_batch, shard[1])  # a part for every process

    def __len__(self) -> int:
        full, rest = divmod(self.rows, self.batch_size)
        return full + (1 if rest >= self.min_batch and rest > 0 else 0)

    def __iter__(self):
        inputs, y, size = self.inputs, self.y, self.batch_size
        if not self.shuffle:
            order = None
        elif self.weights is None:
            order = torch.randperm(self.rows, generator=self.generator).to(y.device, non_blocking=True)
        else:
            order = torch.multinomial(self.weights, self.rows, replacement=True, generator=self.generator)
            order = order.to(y.device, non_blocking=True)
        for batch in range(len(self)):
            if order is None:
                index = slice(batch * size, (batch + 1) * size)
            else:
                index = order[batch * size : (batch + 1) * size]
            if self.shard is not None:
                index = self._part(index)
            yield tuple(t[index] for t in inputs), y[index]

    def _part(self, index):
        """This process's contiguous part of a batch, and its ``share``."""
        rank, processes = self.shard
        rows = torch.arange(self.rows, device=self.y.device)[index] if isinstance(index, slice) else index
        part = rows.tensor_split(processes)[rank]
        self.share = len(part) * processes / len(rows)
        return part
