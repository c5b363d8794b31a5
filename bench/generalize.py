"""Generalising from little data: single runs, deep ensembles, cross-validation ensembles and
calibration against scikit-learn; then anomaly detection against the classical detectors.

Table 1, on breast_cancer, wine, digits, diabetes and anes96 (statsmodels: a 1996 US election
survey, 944 rows, with categorical columns): for each split seed, on the same test rows,

* the example spec trained once, and once more with ``train.calibrate: temperature``;
* a 5-seed deep ensemble on that split (``layerforge ensemble SPEC --seeds 5``), and a single run
  as the median of its 5 members' scores on the same rows (one run's number is one draw);
* the ensemble of a 5-fold cross-validation (``layerforge cv`` then ``layerforge ensemble``);
* scikit-learn's LogisticRegression (Ridge for regression) and HistGradientBoosting fitted on
  the training and validation rows, encoded as layerforge encodes them.

Test accuracy (R² for regression), NLL and ECE; medians over the split seeds. Goals: each
ensemble's NLL below the single run's on every classification set; temperature scaling brings
digits' ECE under 0.03; an ensemble at or above the better scikit-learn model on >= 3 sets.

Table 2, anomaly detection (ROC AUC of the test rows: held-out normal rows and every row of the
anomalous class): breast_cancer (benign rows learned, malignant held out) and digits (9s held
out). Autoencoders as a new user writes one ([32, 16] with a 4-number code, defaults) and as
``examples/generative`` does, against PCA reconstruction error, IsolationForest and the
distance to the 5 nearest training rows, all fitted on the autoencoder's training rows as it
encodes them. Goal: an autoencoder at or above the best classical score on both.

    python bench/generalize.py [--seeds 3] [--sets breast_cancer wine digits diabetes anes96]
                               [--skip-anomaly] [--skip-generalize]
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

import layerforge as lf
from layerforge.data.prepare import prepare
from layerforge.metrics import expected_calibration_error, log_loss

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = {"breast_cancer": "breast_cancer.yaml", "wine": "wine.yaml", "digits": "digits.yaml",
            "diabetes": "diabetes.yaml"}
FAST = {"checkpoint_every": 100000, "report": False}


def _anes96(folder: Path) -> dict:
    """The anes96 survey as a CSV with two categorical columns (party and education as words)."""
    import statsmodels.api as sm

    frame = sm.datasets.anes96.load_pandas().data.drop(columns=["logpopul"])
    frame["PID"] = frame["PID"].map(lambda v: f"party_{int(v)}")
    frame["educ"] = frame["educ"].map(lambda v: f"educ_{int(v)}")
    frame["vote"] = frame["vote"].map({0.0: "clinton", 1.0: "dole"})
    path = folder / "anes96.csv"
    frame.to_csv(path, index=False)
    return {"name": "anes96-mlp", "seed": 0,
            "data": {"path": str(path), "target": "vote", "categorical": ["PID", "educ"],
                     "split": {"val": 0.15, "test": 0.15}},
            "model": {"type": "mlp", "layers": [32, 16], "dropout": 0.1},
            "train": {"epochs": 150, "batch_size": 32,
                      "optimizer": {"name": "adamw", "lr": 0.002, "weight_decay": 0.01},
                      "early_stopping": {"monitor": "val_loss", "patience": 20, "restore_best": True}}}


def _spec(name: str, folder: Path, seed: int) -> dict:
    spec = _anes96(folder) if name == "anes96" else yaml.safe_load((ROOT / "examples" / EXAMPLES[name]).read_text())
    spec = copy.deepcopy(spec)
    spec["seed"] = seed
    spec["train"] = {**spec.get("train", {}), **FAST}
    return spec


def _scores(metrics: dict, classification: bool) -> dict:
    if classification:
        return {"score": metrics["accuracy"], "nll": metrics["nll"], "ece": metrics["ece"]}
    return {"score": metrics["r2"], "nll": None, "ece": None}


def _sklearn(spec: dict, seed: int) -> dict[str, dict]:
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.metrics import r2_score

    loaded = lf.load_spec(spec)
    prepared = prepare(loaded.data, loaded.task, seed)
    flat = {name: (inputs[0].reshape(len(inputs[0]), -1), y) for name, (inputs, y) in prepared.splits.items()}
    x_fit = np.concatenate([flat["train"][0], flat["val"][0]])
    y_fit = np.concatenate([flat["train"][1], flat["val"][1]])
    x_test, y_test = flat["test"]
    found = {}
    if prepared.task.classes is not None:
        for name, model in (("LogisticRegression", LogisticRegression(max_iter=5000)),
                            ("HistGradientBoosting", HistGradientBoostingClassifier(random_state=seed))):
            probabilities = model.fit(x_fit, y_fit).predict_proba(x_test)
            found[name] = {"score": float(np.mean(probabilities.argmax(1) == y_test)),
                           "nll": log_loss(y_test, probabilities),
                           "ece": expected_calibration_error(y_test, probabilities)}
    else:
        y_fit, y_test = y_fit[:, 0], y_test[:, 0]
        for name, model in (("Ridge", Ridge()),
                            ("HistGradientBoosting", HistGradientBoostingRegressor(random_state=seed))):
            found[name] = {"score": float(r2_score(y_test, model.fit(x_fit, y_fit).predict(x_test))), "nll": None,
                           "ece": None}
    return found


def generalize(sets: list[str], seeds: int, folder: Path) -> dict:
    results: dict[str, dict[str, list[dict]]] = {}
    for name in sets:
        for seed in range(seeds):
            spec = _spec(name, folder, seed)
            runs = folder / f"{name}-{seed}"
            started = time.perf_counter()
            single = lf.train(spec, runs_dir=runs)
            classification = "accuracy" in single.metrics["test"]
            rows = {"single run (the spec's seed)": _scores(single.metrics["test"], classification)}
            if classification:
                calibrated = lf.train(spec, runs_dir=runs, overrides=["train.calibrate=temperature"])
                rows["the same + temperature scaling"] = _scores(calibrated.metrics["test"], True)
            deep = lf.ensemble(spec, seeds=5, runs_dir=runs)
            members = [_scores(m, classification) for m in deep.metrics["members"].values()]
            rows["single run (median of 5 seeds)"] = {k: _median([m[k] for m in members]) for k in members[0]}
            rows["5-seed ensemble"] = _scores(deep.metrics["test"], classification)
            folds = lf.cross_validate(spec, 5, runs_dir=runs)
            rows["5-fold CV ensemble"] = _scores(lf.ensemble(folds.path).metrics["test"], classification)
            assert deep.metrics["test"]["rows"] == single.manifest.rows["test"]  # the same test rows
            rows.update(_sklearn(spec, seed))
            for method, scores in rows.items():
                results.setdefault(name, {}).setdefault(method, []).append(scores)
            print(f"{name} seed {seed}: {time.perf_counter() - started:.0f} s", flush=True)
    return results


def _median(values: list) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def print_generalize(results: dict, seeds: int) -> None:
    print(f"\n### Test scores, median of {seeds} split seeds (accuracy, or R² for diabetes)\n")
    print("| set | method | accuracy / R² | NLL | ECE | per seed |")
    print("|---|---|---|---|---|---|")
    verdicts = {"nll": [], "ece": None, "beats": {"5-seed ensemble": 0, "5-fold CV ensemble": 0}}
    for name, methods in results.items():
        medians = {m: {k: _median([s[k] for s in scores]) for k in ("score", "nll", "ece")}
                   for m, scores in methods.items()}
        for method, scores in methods.items():
            m = medians[method]
            each = " ".join(_cell(s["score"]) for s in scores)
            print(f"| {name} | {method} | {_cell(m['score'])} | {_cell(m['nll'])} | {_cell(m['ece'])} | {each} |")
        learned = [m for m in methods if "ensemble" not in m and not m.startswith(("single", "the same"))]
        best = max(medians[m]["score"] for m in learned)
        for ensemble in verdicts["beats"]:
            if medians[ensemble]["score"] >= best:
                verdicts["beats"][ensemble] += 1
        single = medians["single run (median of 5 seeds)"]["nll"]
        if single is not None:
            for ensemble in verdicts["beats"]:
                verdicts["nll"].append((name, ensemble, medians[ensemble]["nll"] < single))
        if name == "digits":
            verdicts["ece"] = medians["the same + temperature scaling"]["ece"]
    print("\nGoals:")
    lowered = all(ok for _, _, ok in verdicts["nll"])
    print(f"- each ensemble's NLL below a single run's (the median of the 5 seeds' runs, on the same rows) on every "
          f"classification set: {'met' if lowered else 'not met'} "
          f"({', '.join(f'{n} {e}: {ok}' for n, e, ok in verdicts['nll'])})")
    if verdicts["ece"] is not None:
        met = "met" if verdicts["ece"] < 0.03 else "not met"
        print(f"- temperature scaling: digits' test ECE {verdicts['ece']:.3f} ({met}: < 0.03)")
    for ensemble, count in verdicts["beats"].items():
        print(f"- {ensemble} at or above the better scikit-learn model on {count} of {len(results)} sets "
              f"({'met' if count >= 3 else 'not met'}: >= 3)")


# -- anomaly detection ----------------------------------------------------------------------------

ANOMALY = {
    "breast_cancer": ("malignant", {
        "autoencoder [32, 16], code 4 (a new user's)": {"type": "autoencoder", "layers": [32, 16], "latent_size": 4},
        "autoencoder [32, 16], code 4, 300 epochs": ({"type": "autoencoder", "layers": [32, 16], "latent_size": 4},
                                                      {"epochs": 300}),
        "variational [32, 16], code 2, scored by its code": ({"type": "autoencoder", "variant": "variational",
                                                              "layers": [32, 16], "latent_size": 2,
                                                              "anomaly_score": "code"}, {"epochs": 300}),
    }),
    "digits": (9, {
        "autoencoder [32, 16], code 4 (a new user's)": {"type": "autoencoder", "layers": [32, 16], "latent_size": 4},
        "autoencoder [128, 64], code 8 (examples/generative)": (
            {"type": "autoencoder", "layers": [128, 64], "latent_size": 8},
            {"epochs": 150, "batch_size": 64, "optimizer": {"name": "adam", "lr": 0.002}}),
    }),
}


def anomaly(seeds: int, folder: Path) -> dict:
    from sklearn.decomposition import PCA
    from sklearn.ensemble import IsolationForest
    from sklearn.metrics import roc_auc_score
    from sklearn.neighbors import NearestNeighbors

    results: dict[str, dict[str, list[float]]] = {}
    for name, (held, models) in ANOMALY.items():
        for seed in range(seeds):
            classical_done = False
            for label, setting in models.items():
                model, train = setting if isinstance(setting, tuple) else (setting, {})
                spec = {"name": f"{name}-anomaly", "seed": seed, "data": {"dataset": name, "anomaly_classes": [held]},
                        "model": model, "train": {**train, **FAST}}
                run = lf.train(spec, runs_dir=folder / f"anomaly-{name}-{seed}")
                results.setdefault(name, {}).setdefault(label, []).append(run.metrics["test"]["anomaly_roc_auc"])
                if classical_done:
                    continue
                classical_done = True
                loaded = lf.load_spec(spec)
                prepared = prepare(loaded.data, "reconstruction", seed)
                flat = {k: v[0][0].reshape(len(v[0][0]), -1) for k, v in prepared.splits.items()}
                codes = prepared.splits["test"][1]
                held_code = prepared.task.classes.index(held)
                truth = (codes == held_code).astype(int)
                train_rows, test_rows = flat["train"], flat["test"]
                for k in (2, 4, 8):
                    pca = PCA(k).fit(train_rows)
                    error = ((test_rows - pca.inverse_transform(pca.transform(test_rows))) ** 2).mean(1)
                    results[name].setdefault(f"PCA reconstruction error, {k} components", []).append(
                        roc_auc_score(truth, error))
                forest = IsolationForest(random_state=seed).fit(train_rows)
                results[name].setdefault("IsolationForest", []).append(
                    roc_auc_score(truth, -forest.score_samples(test_rows)))
                distance = NearestNeighbors(n_neighbors=5).fit(train_rows).kneighbors(test_rows)[0].mean(1)
                results[name].setdefault("5-nearest-neighbour distance", []).append(roc_auc_score(truth, distance))
            print(f"anomaly {name} seed {seed} done", flush=True)
    return results


def print_anomaly(results: dict, seeds: int) -> None:
    print(f"\n### Anomaly detection: test ROC AUC, median of {seeds} split seeds\n")
    print("| set | detector | ROC AUC | per seed |")
    print("|---|---|---|---|")
    goals = []
    for name, detectors in results.items():
        for detector, values in detectors.items():
            print(f"| {name} | {detector} | {statistics.median(values):.3f} | "
                  f"{' '.join(f'{v:.3f}' for v in values)} |")
        classical = max(statistics.median(v) for d, v in detectors.items() if "autoencoder" not in d
                        and "variational" not in d)
        ours = max(statistics.median(v) for d, v in detectors.items() if "autoencoder" in d or "variational" in d)
        goals.append(f"{name}: best autoencoder {ours:.3f} vs best classical {classical:.3f} "
                     f"({'met' if ours >= classical else 'not met'})")
    print("\nGoal (an autoencoder at or above the best classical detector): " + "; ".join(goals))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--sets", nargs="+", default=["breast_cancer", "wine", "digits", "diabetes", "anes96"])
    parser.add_argument("--skip-anomaly", action="store_true")
    parser.add_argument("--skip-generalize", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        found = {}
        if not args.skip_generalize:
            found["generalize"] = generalize(args.sets, args.seeds, folder)
        if not args.skip_anomaly:
            found["anomaly"] = anomaly(args.seeds, folder)
    if "generalize" in found:
        print_generalize(found["generalize"], args.seeds)
    if "anomaly" in found:
        print_anomaly(found["anomaly"], args.seeds)
    if args.json:
        args.json.write_text(json.dumps(found, indent=1))


if __name__ == "__main__":
    main()
