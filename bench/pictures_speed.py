"""The speed of a network's training by ``lf.Trainer`` against a hand-written PyTorch loop of
the same network and loss, interleaved over rounds in one process (bench/segmentation.py and
bench/detection.py measure with it): samples/s after the first epoch, and the median ratio."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import layerforge as lf


def hand_epochs(model, optimizer, loss: Callable, x, y, epochs: int, batch: int = 32) -> list[float]:
    """Seconds of each epoch of a hand-written loop (tensor slicing) of ``loss(outputs, y)``."""
    import torch

    model.train()
    seconds = []
    for _ in range(epochs):
        started = time.perf_counter()
        for index in torch.randperm(len(x)).split(batch):
            value = loss(model(x[index]), y[index])
            optimizer.zero_grad(set_to_none=True)
            value.backward()
            optimizer.step()
        seconds.append(time.perf_counter() - started)
    return seconds


def trainer_epochs(task, model, x, y, epochs: int, optimizer: dict, batch: int = 32) -> list[float]:
    """Seconds of each epoch of ``lf.Trainer``."""
    seconds, started = [], [time.perf_counter()]

    class Timer(lf.Callback):
        def on_epoch_end(self, trainer, record):
            seconds.append(time.perf_counter() - started[0])
            started[0] = time.perf_counter()

    trainer = lf.Trainer(task=task, epochs=epochs, batch_size=batch, optimizer=optimizer, callbacks=[Timer()])
    started[0] = time.perf_counter()
    trainer.fit(model, (x, y))
    return seconds


def compared(title: str, rows: int, rounds: int, hand: Callable[[], list[float]],
             trainer: Callable[[], list[float]]) -> None:
    """Both loops (each a call giving its epochs' seconds) in turn for ``rounds``, a line per
    round as it ends, then samples/s of each and the median ratio."""
    ratios, rates = [], {"hand": [], "lf.Trainer": []}
    for _ in range(rounds):
        found = {"hand": hand(), "lf.Trainer": trainer()}
        for name, seconds in found.items():
            rates[name].append(rows / statistics.median(seconds[1:] or seconds))
        ratios.append(rates["lf.Trainer"][-1] / rates["hand"][-1])
        print(f"round {len(ratios)}: lf.Trainer / hand {ratios[-1]:.3f}", flush=True)
    print(f"\n{title}, {rounds} rounds (samples/s)")
    for name, values in rates.items():
        print(f"{name:<12} {statistics.median(values):>8.1f}  ({' '.join(f'{v:.1f}' for v in values)})")
    print(f"lf.Trainer / hand: {statistics.median(ratios):.3f} (per round: {' '.join(f'{r:.3f}' for r in ratios)})")
