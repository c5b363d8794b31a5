"""In-memory batches: slices of tensors that already sit on the training device."""

from __future__ import annotations

import torch


class InMemoryBatches:
    """Iterate over ``(x, y)`` in batches, reshuffled with one permutation per epoch.

    Each epoch draws one permutation; a step gathers its rows with one index (cheaper than
    permuting the whole tensor first: the rows land in cache right before use), and nothing
    crosses between host and device. A final batch of a single row is dropped when
    ``min_batch`` is 2 (batch norm cannot train on one row).

    Args:
        x, y: tensors with the same first dimension, already on the training device.
        batch_size: rows per batch.
        shuffle: permute rows each epoch.
        generator: CPU generator that drives the permutations (its state is checkpointed).
        min_batch: smallest batch worth a step.
    """

    def __init__(self, x, y, batch_size: int, *, shuffle: bool = True, generator=None, min_batch: int = 1):
        if len(x) != len(y):
            raise ValueError(f"x has {len(x)} rows but y has {len(y)}")
        self.x, self.y = x, y
        self.batch_size = max(1, min(batch_size, len(x)))
        self.shuffle = shuffle
        self.generator = generator
        self.min_batch = min_batch

    def __len__(self) -> int:
        full, rest = divmod(len(self.x), self.batch_size)
        return full + (1 if rest >= self.min_batch and rest > 0 else 0)

    def __iter__(self):
        x, y, size = self.x, self.y, self.batch_size
        if not self.shuffle:
            for batch in range(len(self)):
                yield x[batch * size : (batch + 1) * size], y[batch * size : (batch + 1) * size]
            return
        order = torch.randperm(len(x), generator=self.generator).to(x.device, non_blocking=True)
        for batch in range(len(self)):
            index = order[batch * size : (batch + 1) * size]
            yield x[index], y[index]
