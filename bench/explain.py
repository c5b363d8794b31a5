"""Explanations that check themselves: integrated-gradients completeness and the model
randomisation test on the digits (an MLP and a CNN), and on a table where only two of seven
columns decide the label, where those two columns rank for every method; on short reviews whose
sentiment word alone decides the label, how many of the five top tokens are sentiment words.
Medians over seeds.

    python bench/explain.py [--seeds 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

import layerforge as lf
from layerforge.explanations import METHODS, TOKEN_METHODS

FAST = {"checkpoint_every": 100000, "report": False}
GOOD = ["great", "lovely", "excellent", "fine", "superb"]
BAD = ["awful", "poor", "terrible", "bad", "dreadful"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    digits: dict[str, list[dict]] = {}
    planted: dict[str, list[list[str]]] = {}
    text: dict[tuple[str, str], list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for seed in range(args.seeds):
            for name, model in (("MLP [64]", {"type": "mlp", "layers": [64]}),
                                ("CNN [16, 32]", {"type": "cnn", "channels": [16, 32], "head": [64]})):
                run = lf.train({"seed": seed, "data": {"dataset": "digits_images"}, "model": model,
                                "train": {"epochs": 15, **FAST}}, runs_dir=folder)
                found = lf.explain(run, rows=200)
                digits.setdefault(name, []).append({**found.checks, "accuracy": run.metrics["test"]["accuracy"]})
            rng = np.random.default_rng(seed)
            frame = pd.DataFrame({f"x{i}": rng.normal(size=600) for i in range(6)})
            frame["color"] = rng.choice(["red", "green", "blue"], 600)
            frame["label"] = np.where(frame["x1"] + 2 * frame["x4"] > 0, "yes", "no")
            frame.to_csv(folder / f"planted{seed}.csv", index=False)
            run = lf.train({"seed": seed, "data": {"path": str(folder / f"planted{seed}.csv"), "target": "label"},
                            "model": {"layers": [32, 16]}, "train": {"epochs": 30, **FAST}}, runs_dir=folder)
            for method in METHODS:
                found = lf.explain(run, method=method)
                planted.setdefault(method, []).append(sorted(found.importance, key=found.importance.get,
                                                             reverse=True)[:2])
            planted.setdefault("permutation importance", []).append(
                sorted(found.permutation, key=found.permutation.get, reverse=True)[:2])
            rows = [{"review": f"the film was {rng.choice(GOOD if i % 2 else BAD)} and "
                               f"{rng.choice(['long', 'short'])}", "sentiment": "pos" if i % 2 else "neg"}
                    for i in range(300)]
            pd.DataFrame(rows).to_csv(folder / f"reviews{seed}.csv", index=False)
            for name, model in (("GRU", {"type": "rnn", "cell": "gru", "hidden_size": 16, "embedding_size": 16,
                                         "pooling": "max"}),
                                ("Transformer", {"type": "transformer", "d_model": 16, "num_heads": 2,
                                                 "num_layers": 1})):
                run = lf.train({"seed": seed, "data": {"path": str(folder / f"reviews{seed}.csv"), "text": "review",
                                                       "target": "sentiment",
                                                       "tokenizer": {"kind": "word", "max_length": 12}},
                                "model": model, "train": {"epochs": 15, "batch_size": 16,
                                                          "optimizer": {"lr": 0.01}, **FAST}}, runs_dir=folder)
                for method in TOKEN_METHODS:
                    found = lf.explain(run, method=method)
                    top = sorted(found.importance, key=found.importance.get, reverse=True)[:5]
                    text.setdefault((name, method), []).append(
                        {"accuracy": run.metrics["test"]["accuracy"], "sentiment": sum(t in GOOD + BAD for t in top),
                         **{k: v for k, v in found.checks.items() if isinstance(v, float)}})
    print(f"\n### Digits images, integrated gradients on 200 test rows (medians of {args.seeds} seeds)\n")
    print("| model | test accuracy | completeness gap (median row) | worst row | randomisation rank correlation |")
    print("|---|---|---|---|---|")
    for name, rows in digits.items():
        m = {k: statistics.median(r[k] for r in rows) for k in ("accuracy", "completeness_delta_median",
                                                                "completeness_delta_max",
                                                                "randomisation_rank_correlation")}
        print(f"| {name} | {m['accuracy']:.3f} | {m['completeness_delta_median']:.4f} | "
              f"{m['completeness_delta_max']:.4f} | {m['randomisation_rank_correlation']:.3f} |")
    print("\n### Planted table (only x1 and x4 decide), the two top-ranked columns per seed\n")
    print("| method | top two | both right |")
    print("|---|---|---|")
    for method, tops in planted.items():
        right = sum(sorted(top) == ["x1", "x4"] for top in tops)
        print(f"| {method} | {'; '.join(', '.join(t) for t in tops)} | {right} of {len(tops)} |")

    print(f"\n### Reviews (the sentiment word decides), per token; medians of {args.seeds} seeds\n")
    print("| model | method | test accuracy | sentiment words among the top 5 tokens | completeness gap (worst row) "
          "| randomisation rank correlation |")
    print("|---|---|---|---|---|---|")
    for (name, method), rows in text.items():
        worst = [r["completeness_delta_max"] for r in rows if "completeness_delta_max" in r]
        print(f"| {name} | {method} | {statistics.median(r['accuracy'] for r in rows):.3f} | "
              f"{statistics.median(r['sentiment'] for r in rows):g} of 5 | "
              f"{f'{statistics.median(worst):.4f}' if worst else '-'} | "
              f"{statistics.median(r['randomisation_rank_correlation'] for r in rows):.3f} |")


if __name__ == "__main__":
    main()
