"""Training-doctor overhead on the default run (an MLP on digits, 60 epochs, 20 steps per epoch).

Two measurements, printed as tables:

1. Wall clock: the default spec trained with the doctor on and off, interleaved round by round in
   one process so that machine noise hits both alike; the training time of a run is the sum of its
   epochs' seconds (data preparation and start-up are not counted). Ratios of medians and of
   minimums (the least disturbed round of each).
2. The doctor's own time: the same run with the doctor's hooks timed from the inside (callbacks
   and forward hooks), as a share of the run's training time. On a noisy shared machine this is
   the sharper of the two.

The target: the doctor makes training at most 5% slower.

    python bench/doctor_overhead.py [--rounds 7] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch

import layerforge as lf
from layerforge.doctor.monitor import Doctor

SPEC_OVERRIDES = ["train.early_stopping=false", "train.report=false"]


class TimedDoctor(Doctor):
    """The doctor, with the time spent in each of its hooks added up."""

    spent = 0.0

    def _timed(self, method, *args):
        started = time.perf_counter()
        try:
            return method(*args)
        finally:
            TimedDoctor.spent += time.perf_counter() - started

    def on_fit_start(self, trainer):
        self._timed(super().on_fit_start, trainer)

    def on_epoch_start(self, trainer, epoch):
        self._timed(super().on_epoch_start, trainer, epoch)

    def on_batch_end(self, trainer, step, loss):
        self._timed(super().on_batch_end, trainer, step, loss)

    def on_epoch_end(self, trainer, record):
        self._timed(super().on_epoch_end, trainer, record)

    def on_fit_end(self, trainer):
        self._timed(super().on_fit_end, trainer)

    def _hook(self, name, module, bounds):
        inner = super()._hook(name, module, bounds)
        return lambda *args: self._timed(inner, *args)


def training_seconds(doctor: bool, runs_dir: str, callbacks=()) -> tuple[float, float]:
    run = lf.train(overrides=[f"train.doctor={str(doctor).lower()}", *SPEC_OVERRIDES], runs_dir=runs_dir,
                   callbacks=list(callbacks))
    return sum(r["seconds"] for r in run.history), run.metrics["test"]["accuracy"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as runs_dir:
        training_seconds(True, runs_dir)  # warm-up: imports, allocator, caches
        rows = []
        for round_ in range(1, args.rounds + 1):
            off, accuracy_off = training_seconds(False, runs_dir)
            on, accuracy_on = training_seconds(True, runs_dir)
            TimedDoctor.spent = 0.0
            timed, _ = training_seconds(False, runs_dir, callbacks=[TimedDoctor()])
            rows.append((round_, off, on, accuracy_off, accuracy_on, TimedDoctor.spent, timed))
    print(f"{'round':>5} {'off (s)':>8} {'on (s)':>7} {'on/off':>7} {'acc off':>8} {'acc on':>7} "
          f"{'doctor (s)':>10} {'share':>6}")
    for round_, off, on, a_off, a_on, spent, timed in rows:
        print(f"{round_:>5} {off:>8.3f} {on:>7.3f} {on / off:>7.3f} {a_off:>8.4f} {a_on:>7.4f} "
              f"{spent:>10.4f} {spent / timed:>6.1%}")
    offs, ons = [r[1] for r in rows], [r[2] for r in rows]
    shares = [r[5] / r[6] for r in rows]
    print(f"wall clock: median on/off {statistics.median(ons) / statistics.median(offs):.3f}, "
          f"min on/off {min(ons) / min(offs):.3f}")
    print(f"doctor's own time: median {statistics.median(shares):.1%} of training time "
          f"(target <= 5%), on {torch.get_num_threads()} threads")


if __name__ == "__main__":
    main()
