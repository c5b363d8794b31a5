"""Training-loop overhead: layerforge's Trainer against a hand-written PyTorch loop.

Both train the same MLP (784-128-64-10, batch 128, Adam, lr 1e-3) for one epoch over the same
60,000 random rows held in memory, interleaved round by round in one process so that machine
noise hits both alike. Prints samples/second for each and their ratio (layerforge / hand).

    python bench/overhead.py [--rounds 5] [--rows 60000] [--threads N]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
import torch.nn.functional as F

import layerforge as lf
from layerforge.models import Inputs, build_model


def hand_written_epoch(model, x, y, batch_size, generator, fused=None) -> float:
    """The loop people write by hand: permute, slice, forward, backward, step."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=fused)
    model.train()
    started = time.perf_counter()
    order = torch.randperm(len(x), generator=generator)
    for i in range(0, len(x), batch_size):
        index = order[i : i + batch_size]
        loss = F.cross_entropy(model(x[index]), y[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return time.perf_counter() - started


def layerforge_epoch(model, x, y, batch_size) -> float:
    trainer = lf.Trainer(
        task="classification", epochs=1, batch_size=batch_size, device="cpu",
        optimizer={"name": "adam", "lr": 1e-3},
    )
    started = time.perf_counter()
    trainer.fit(model, (x, y))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--rows", type=int, default=60_000)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(args.rows, 784, generator=generator)
    y = torch.randint(0, 10, (args.rows,), generator=generator)
    torch.manual_seed(0)
    template = build_model({"type": "mlp", "layers": [128, 64]}, Inputs.table(784), 10)

    # one warm-up epoch each (allocator, thread pool), not counted
    hand_written_epoch(copy.deepcopy(template), x, y, 128, generator)
    layerforge_epoch(copy.deepcopy(template), x, y, 128)

    loops = {
        "hand": lambda model: hand_written_epoch(model, x, y, 128, generator),
        "hand+fused": lambda model: hand_written_epoch(model, x, y, 128, generator, fused=True),
        "layerforge": lambda model: layerforge_epoch(model, x, y, 128),
    }
    times: dict[str, list[float]] = {name: [] for name in loops}
    for round_ in range(args.rounds):
        names = list(loops)
        names = names[round_ % 3 :] + names[: round_ % 3]  # rotate who goes first
        for name in names:
            times[name].append(loops[name](copy.deepcopy(template)))

    def rate(times):
        return args.rows / statistics.median(times)

    # Rounds are paired: the loops of a round ran back to back under the same conditions,
    # so the median of per-round ratios is steadier than the ratio of medians.
    def paired(reference):
        return statistics.median(r / o for r, o in zip(times[reference], times["layerforge"]))

    print(f"rows {args.rows}, batch 128, rounds {args.rounds}, torch threads {torch.get_num_threads()}")
    print(f"{'loop':<12}{'samples/s (median)':>20}{'best':>12}{'worst':>12}")
    for name, spent in times.items():
        print(f"{name:<12}{rate(spent):>20,.0f}{args.rows / min(spent):>12,.0f}{args.rows / max(spent):>12,.0f}")
    print(f"ratio layerforge / hand        (median of paired rounds): {paired('hand'):.3f}  (target >= 0.95)")
    print(f"ratio layerforge / hand+fused  (same optimizer kernel):   {paired('hand+fused'):.3f}"
          "  (loop overhead alone)")


if __name__ == "__main__":
    main()
