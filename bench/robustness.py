"""Adversarial robustness on the digits (8x8 images, pixels in [0, 1]): a CNN and an MLP trained
normally and with ``train.adversarial``, attacked with PGD-20 on their test rows.

For each model and seed, interleaved: standard training, then each defence. Clean test accuracy,
PGD-20 accuracy at eps 0.05, 0.1 and 0.2 (L-infinity, pixels), and training time as a ratio of
the standard run's. Medians over ``--seeds``. Goal (CNN): PGD-20 accuracy at eps 0.1 at least
0.85 with clean accuracy at least 0.98, in at most 3x the standard training time.

    python bench/robustness.py [--seeds 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import layerforge as lf

MODELS = {"cnn": {"type": "cnn", "channels": [32, 64], "head": [128]},
          "cnn flatten": {"type": "cnn", "channels": [32, 64], "head": [128], "readout": "flatten", "norm": "none"},
          "mlp": {"type": "mlp", "layers": [256, 128]}}
DEFENCES = {
    "standard": None,
    "fgsm, random start, eps 0.1": {"method": "fgsm", "eps": 0.1},
    "fgsm, random start, eps 0.125": {"method": "fgsm", "eps": 0.125},
    "pgd-3, eps 0.12": {"method": "pgd", "eps": 0.12, "steps": 3},
}
EPS = (0.05, 0.1, 0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=30)
    args = parser.parse_args()
    results: dict[tuple[str, str], list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        lf.train({"data": {"dataset": "digits_images"}, "model": MODELS["cnn"], "train": {"epochs": 1}},
                 runs_dir=Path(tmp))  # warm-up: the first training of a process pays one-time costs
        for model_name, model in MODELS.items():
            for seed in range(args.seeds):
                spec = {"name": f"digits-{model_name.replace(' ', '-')}", "seed": seed,
                        "data": {"dataset": "digits_images"}, "model": model,
                        "train": {"epochs": args.epochs, "optimizer": {"lr": 0.003},
                                  "checkpoint_every": 100000, "report": False}}
                standard_seconds = None
                for defence, adversarial in DEFENCES.items():
                    overrides = [] if adversarial is None else [f"train.adversarial={adversarial}".replace("'", '"')]
                    started = time.perf_counter()
                    run = lf.train(spec, runs_dir=Path(tmp), overrides=overrides)
                    seconds = time.perf_counter() - started
                    standard_seconds = standard_seconds or seconds
                    attacked = lf.attack(run, eps=list(EPS), steps=20)
                    row = {"clean": run.metrics["test"]["accuracy"], "time": seconds / standard_seconds,
                           **{f"pgd {p['eps']:g}": p["pgd"] for p in attacked.points},
                           "checked": attacked.checks.get("stronger_than_fgsm")}
                    results.setdefault((model_name, defence), []).append(row)
                print(f"{model_name} seed {seed} done", flush=True)
    print(f"\n### Digits, PGD-20 (L-infinity, pixels in [0, 1]); medians of {args.seeds} seeds\n")
    print("| model | training | clean | PGD eps 0.05 | PGD eps 0.1 | PGD eps 0.2 | time vs standard | PGD >= FGSM |")
    print("|---|---|---|---|---|---|---|---|")
    for (model_name, defence), rows in results.items():
        m = {k: statistics.median(r[k] for r in rows) for k in rows[0] if k != "checked"}
        print(f"| {model_name} | {defence} | {m['clean']:.3f} | {m['pgd 0.05']:.3f} | {m['pgd 0.1']:.3f} | "
              f"{m['pgd 0.2']:.3f} | {m['time']:.2f}x | {all(r['checked'] for r in rows)} |")
    best = max((statistics.median(r["pgd 0.1"] for r in rows), defence, name)
               for (name, defence), rows in results.items()
               if name.startswith("cnn") and defence != "standard"
               and statistics.median(r["clean"] for r in rows) >= 0.98
               and statistics.median(r["time"] for r in rows) <= 3)
    print(f"\nGoal (CNN: PGD-20 at eps 0.1 >= 0.85, clean >= 0.98, <= 3x time): best {best[0]:.3f} "
          f"({best[2]}, {best[1]}; {'met' if best[0] >= 0.85 else 'not met'})")


if __name__ == "__main__":
    main()
