"""Transfer learning with few labels, against training from scratch on the same rows.

1. mnist1d (1-D digit signals): a CNN learns the digits 0-4 from all their rows; then the
   digits 5-9 are learned from 10 labelled rows per class, from scratch or starting from the
   0-4 network (``model.init_from``; its output layer, for other classes, is new), fine-tuned
   whole, with the features frozen, or with discriminative rates. Test: every other 5-9 row.
2. digits (8x8 tables): an autoencoder learns every row without its label (self-supervised);
   a classifier whose hidden layers have the autoencoder's encoder's sizes then learns from 10
   labelled rows per class, from scratch or from the encoder. Test: every row not labelled.

Accuracy on the test rows, median over ``--seeds`` draws of the labelled rows (and model seeds);
the goal is transfer at least 10 points above scratch.

    python bench/transfer.py [--seeds 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import numpy as np

import layerforge as lf

FAST = {"checkpoint_every": 100000, "report": False}
SPLIT = {"val": 0.2, "test": 0.0}


def _overrides(changes: dict) -> list[str]:
    return [f"{key}={value!r}".replace("'", '"') for key, value in changes.items()]


def _few(y: np.ndarray, classes, per_class: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.choice(np.flatnonzero(y == c), per_class, replace=False) for c in classes])


def mnist1d(seeds: int, folder: Path) -> dict[str, list[float]]:
    from mnist1d.data import get_dataset_args, make_dataset

    data = make_dataset(get_dataset_args())  # generated in memory: nothing is downloaded or written
    x = np.concatenate([data["x"], data["x_test"]]).astype(np.float32)[:, None, :]
    y = np.concatenate([data["y"], data["y_test"]])
    low = y < 5
    np.savez(folder / "low.npz", x=x[low], y=y[low])
    model = {"type": "cnn"}
    pretrained = lf.train({"name": "mnist1d-0-4", "data": {"path": str(folder / "low.npz")}, "model": model,
                           "train": {"epochs": 40, "optimizer": {"lr": 0.003}, **FAST}}, runs_dir=folder)
    print(f"pretrained on 0-4: test accuracy {pretrained.metrics['test']['accuracy']:.3f}", flush=True)
    high = np.flatnonzero(~low)
    results: dict[str, list[float]] = {}
    for seed in range(seeds):
        labelled = high[_few(y[high], range(5, 10), 10, seed)]
        test = np.setdiff1d(high, labelled)
        np.savez(folder / f"few{seed}.npz", x=x[labelled], y=y[labelled])
        np.savez(folder / f"test{seed}.npz", x=x[test], y=y[test])
        base = {"name": "mnist1d-5-9", "seed": seed, "data": {"path": str(folder / f"few{seed}.npz"), "split": SPLIT},
                "model": dict(model), "train": {"epochs": 80, "batch_size": 16, "optimizer": {"lr": 0.003}, **FAST}}
        variants = {
            "from scratch": {},
            "init_from the 0-4 run, all layers fine-tuned": {"model.init_from": str(pretrained.path)},
            "init_from, features frozen": {"model.init_from": str(pretrained.path), "model.freeze": ["features"]},
            "init_from, frozen until epoch 20": {"model.init_from": str(pretrained.path),
                                                 "model.freeze": ["features"], "train.unfreeze_at": 20},
            "init_from, discriminative_lr 0.5": {"model.init_from": str(pretrained.path),
                                                 "train.discriminative_lr": 0.5},
        }
        for name, changes in variants.items():
            run = lf.train(base, runs_dir=folder, overrides=_overrides(changes))
            results.setdefault(name, []).append(run.evaluate(folder / f"test{seed}.npz")["accuracy"])
        print(f"mnist1d seed {seed} done", flush=True)
    return results


def digits(seeds: int, folder: Path) -> dict[str, list[float]]:
    from sklearn.datasets import load_digits

    frame = load_digits(as_frame=True).frame
    frame.drop(columns="target").to_csv(folder / "unlabelled.csv", index=False)
    results: dict[str, list[float]] = {}
    for seed in range(seeds):
        encoder = lf.train({"name": "digits-ae", "seed": seed, "data": {"path": str(folder / "unlabelled.csv")},
                            "task": "reconstruction",
                            "model": {"type": "autoencoder", "layers": [128, 64], "latent_size": 32},
                            "train": {"epochs": 60, "optimizer": {"lr": 0.002}, **FAST}}, runs_dir=folder)
        labelled = _few(frame["target"].to_numpy(), range(10), 10, seed)
        frame.iloc[labelled].to_csv(folder / f"few{seed}.csv", index=False)
        frame.drop(index=frame.index[labelled]).to_csv(folder / f"rest{seed}.csv", index=False)
        base = {"name": "digits-few", "seed": seed,
                "data": {"path": str(folder / f"few{seed}.csv"), "target": "target", "split": SPLIT},
                "model": {"type": "mlp", "layers": [128, 64, 32]},
                "train": {"epochs": 100, "batch_size": 16, "optimizer": {"lr": 0.003}, **FAST}}
        variants = {
            "from scratch": {},
            "init_from the autoencoder, all layers fine-tuned": {"model.init_from": str(encoder.path)},
            "init_from the autoencoder, features frozen": {"model.init_from": str(encoder.path),
                                                           "model.freeze": ["features"]},
        }
        for name, changes in variants.items():
            run = lf.train(base, runs_dir=folder, overrides=_overrides(changes))
            results.setdefault(name, []).append(run.evaluate(folder / f"rest{seed}.csv")["accuracy"])
        print(f"digits seed {seed} done", flush=True)
    return results


def _table(title: str, results: dict[str, list[float]]) -> None:
    print(f"\n### {title}\n")
    print("| start | test accuracy (median) | per seed | vs scratch |")
    print("|---|---|---|---|")
    scratch = statistics.median(results["from scratch"])
    for name, values in results.items():
        median = statistics.median(values)
        gain = "" if name == "from scratch" else f"{100 * (median - scratch):+.1f} points"
        print(f"| {name} | {median:.3f} | {' '.join(f'{v:.3f}' for v in values)} | {gain} |")
    best = max(statistics.median(v) for k, v in results.items() if k != "from scratch")
    print(f"\nGoal (transfer at least 10 points above scratch): {100 * (best - scratch):+.1f} points "
          f"({'met' if best - scratch >= 0.10 else 'not met'})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        found_1d = mnist1d(args.seeds, Path(tmp))
        found_digits = digits(args.seeds, Path(tmp))
    _table(f"mnist1d: digits 5-9 from 10 labelled rows per class ({args.seeds} seeds)", found_1d)
    _table(f"digits: 10 labelled rows per class, autoencoder pretraining on unlabelled rows ({args.seeds} seeds)",
           found_digits)


if __name__ == "__main__":
    main()
