"""In-memory batches: slices of tensors that already sit on the training device."""

from __future__ import annotations

import torch


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
    """

    def __init__(self, inputs, y, batch_size: int, *, shuffle: bool = True, generator=None, min_batch: int = 1,
                 weights: torch.Tensor | None = None):
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

    def __len__(self) -> int:
        full, rest = divmod(self.rows, self.batch_size)
        return full + (1 if rest >= self.min_batch and rest > 0 else 0)

    def __iter__(self):
        inputs, y, size = self.inputs, self.y, self.batch_size
        if not self.shuffle:
            for batch in range(len(self)):
                part = slice(batch * size, (batch + 1) * size)
                yield tuple(t[part] for t in inputs), y[part]
            return
        if self.weights is None:
            order = torch.randperm(self.rows, generator=self.generator)
        else:
            order = torch.multinomial(self.weights, self.rows, replacement=True, generator=self.generator)
        order = order.to(y.device, non_blocking=True)
        for batch in range(len(self)):
            index = order[batch * size : (batch + 1) * size]
            yield tuple(t[index] for t in inputs), y[index]
