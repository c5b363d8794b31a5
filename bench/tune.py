"""Search against defaults and scikit-learn, on breast_cancer, wine, digits and diabetes.

For each dataset, in one run and on the same split (the spec's seed): the default MLP spec;
30 TPE trials with median pruning; the same 30 TPE trials without pruning (to measure what
pruning saves); 30 random trials; and scikit-learn's LogisticRegression (Ridge for regression)
and HistGradientBoosting fitted on the training and validation rows. Test metric of the trial
chosen on validation, wall time, epochs trained and trials pruned. Prints markdown tables.

    python bench/tune.py [--trials 30] [--datasets breast_cancer wine digits diabetes]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import layerforge as lf
from layerforge.data.prepare import prepare

SPACE = {
    "train.optimizer.lr": {"log_uniform": [1e-4, 3e-2]},
    "train.optimizer.weight_decay": {"log_uniform": [1e-5, 1e-1]},
    "train.batch_size": {"choice": [16, 32, 64]},
    "model.layers": {"choice": [[64], [128, 64], [256, 128], [256, 128, 64]]},
    "model.dropout": {"uniform": [0.0, 0.5]},
    "model.activation": {"choice": ["relu", "gelu", "tanh"]},
    "model.norm": {"choice": ["none", "batch"]},
}
TRAIN = {"epochs": 60, "optimizer": {"name": "adamw"},
         "early_stopping": {"monitor": "val_loss", "patience": 10, "restore_best": True}}


def _spec(dataset: str, name: str, search: dict | None = None) -> dict:
    spec = {"name": name, "seed": 0, "data": {"dataset": dataset}, "train": dict(TRAIN)}
    if search:
        spec["search"] = search
    return spec


def _baselines(dataset: str) -> dict[str, float]:
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.metrics import accuracy_score, r2_score

    prepared = prepare(lf.load_spec(_spec(dataset, "x")).data, None, 0)
    (x_train,), y_train = prepared.splits["train"]
    (x_val,), y_val = prepared.splits["val"]
    (x_test,), y_test = prepared.splits["test"]
    x_fit = np.concatenate([x_train, x_val]).reshape(len(x_train) + len(x_val), -1)
    y_fit = np.concatenate([y_train, y_val])
    x_test = x_test.reshape(len(x_test), -1)
    found = {}
    if prepared.task.name == "classification":
        for name, model in (("LogisticRegression", LogisticRegression(max_iter=5000)),
                            ("HistGradientBoosting", HistGradientBoostingClassifier(random_state=0))):
            start = time.perf_counter()
            model.fit(x_fit, y_fit)
            found[name] = (accuracy_score(y_test, model.predict(x_test)), time.perf_counter() - start)
    else:
        y_fit, y_test = y_fit.ravel(), np.asarray(y_test).ravel()
        for name, model in (("Ridge", Ridge()),
                            ("HistGradientBoosting", HistGradientBoostingRegressor(random_state=0))):
            start = time.perf_counter()
            model.fit(x_fit, y_fit)
            found[name] = (r2_score(y_test, model.predict(x_test)), time.perf_counter() - start)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--datasets", nargs="+", default=["breast_cancer", "wine", "digits", "diabetes"])
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="lf-bench-tune-"))
    rows, savings = [], []
    for dataset in args.datasets:
        start = time.perf_counter()
        default = lf.train(_spec(dataset, f"{dataset}-default"), runs_dir=workdir / "runs")
        metric = "accuracy" if "accuracy" in default.metrics["test"] else "r2"
        rows.append((dataset, "default spec", default.metrics["test"][metric], time.perf_counter() - start,
                     len(default.history), "-"))
        searches = {"TPE, median pruning": ("tpe", "median"), "TPE, no pruning": ("tpe", "none"),
                    "random, no pruning": ("random", "none")}
        epochs = {}
        for label, (sampler, pruner) in searches.items():
            study = f"{dataset}-{sampler}-{pruner}"
            search = {"space": SPACE, "trials": args.trials, "sampler": sampler, "pruner": pruner, "seed": 0}
            start = time.perf_counter()
            print(f"{dataset}: {label} ...", file=sys.stderr)
            tuned = lf.tune(_spec(dataset, study, search), runs_dir=workdir / "studies")
            seconds = time.perf_counter() - start
            import optuna

            trials = optuna.load_study(study_name=study,
                                       storage=f"sqlite:///{tuned.path / 'study.db'}").get_trials(deepcopy=False)
            epochs[label] = sum(t.user_attrs.get("epochs", 0) for t in trials)
            best = lf.load_run(tuned.best_run)
            rows.append((dataset, f"{label} ({args.trials})", best.metrics["test"][metric], seconds, epochs[label],
                         tuned.counts["pruned"]))
        for name, (score, seconds) in _baselines(dataset).items():
            rows.append((dataset, f"scikit-learn {name}", score, seconds, "-", "-"))
        savings.append((dataset, epochs["TPE, median pruning"], epochs["TPE, no pruning"]))

    print(f"\n### Test metric of the trial chosen on validation ({args.trials} trials per search)\n")
    print("| dataset | method | test metric | wall s | epochs trained | trials pruned |")
    print("|---|---|---:|---:|---:|---:|")
    for dataset, method, score, seconds, epochs, pruned in rows:
        print(f"| {dataset} | {method} | {score:.4f} | {seconds:.1f} | {epochs} | {pruned} |")
    print("\n| dataset | epochs with median pruning | without | saved |")
    print("|---|---:|---:|---:|")
    for dataset, pruned, unpruned in savings:
        print(f"| {dataset} | {pruned} | {unpruned} | {1 - pruned / unpruned:.0%} |")
    print(f"\nmedian saving: {statistics.median(1 - p / u for _, p, u in savings):.0%}")


if __name__ == "__main__":
    main()
