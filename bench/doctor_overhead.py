"""Training-doctor overhead on the default run (an MLP on digits, 60 epochs).

Trains the built-in default spec with the doctor on and off, interleaved round by round in one
process so that machine noise hits both alike, and prints the training time of each (the sum of
the epochs' seconds, so data preparation and start-up are not counted) and their ratio.
The target: the doctor makes training at most 5% slower.

    python bench/doctor_overhead.py [--rounds 5] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile

import torch

import layerforge as lf


def training_seconds(doctor: bool, runs_dir: str) -> tuple[float, float]:
    run = lf.train(overrides=[f"train.doctor={str(doctor).lower()}", "train.early_stopping=false"],
                   runs_dir=runs_dir)
    return sum(r["seconds"] for r in run.history), run.metrics["test"]["accuracy"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as runs_dir:
        training_seconds(True, runs_dir)  # warm-up: imports, allocator, caches
        rows, ratios = [], []
        for round_ in range(1, args.rounds + 1):
            off, accuracy_off = training_seconds(False, runs_dir)
            on, accuracy_on = training_seconds(True, runs_dir)
            ratios.append(on / off)
            rows.append((round_, off, on, on / off, accuracy_off, accuracy_on))
    print(f"{'round':>5} {'doctor off (s)':>15} {'doctor on (s)':>14} {'on/off':>7} {'acc off':>8} {'acc on':>7}")
    for round_, off, on, ratio, a_off, a_on in rows:
        print(f"{round_:>5} {off:>15.3f} {on:>14.3f} {ratio:>7.3f} {a_off:>8.4f} {a_on:>7.4f}")
    median = statistics.median(ratios)
    print(f"median on/off: {median:.3f} ({(median - 1) * 100:+.1f}% training time; target <= +5%)"
          f" on {torch.get_num_threads()} threads")


if __name__ == "__main__":
    main()
