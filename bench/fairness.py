"""Fairness mitigation, measured: per-group thresholds (``layerforge fairness --mitigate``) and
training-time reweighing (``train.fairness``), against scikit-learn's logistic regression with
fairlearn's ThresholdOptimizer, on the same rows of every split. Medians over split seeds.

Sets: scikit-learn's diabetes (target above its median = 'high'; sensitive column sex, the two
values of its scaled column) and a synthetic table whose labels favour group 'a' by about 0.24
for the same features (demographic parity there costs accuracy against those biased labels).

    python bench/fairness.py [--seeds 10]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

import layerforge as lf
from layerforge.run.store import recorded_parts

FAST = {"checkpoint_every": 100000, "report": False}


def diabetes(folder: Path) -> tuple[Path, str, str, str]:
    from sklearn.datasets import load_diabetes

    frame = load_diabetes(as_frame=True).frame
    frame["sex"] = np.where(frame["sex"] > 0, "m", "f")
    frame["level"] = np.where(frame["target"] > frame["target"].median(), "high", "low")
    frame.drop(columns=["target"]).to_csv(folder / "diabetes.csv", index=False)
    return folder / "diabetes.csv", "level", "sex", "high"


def planted(folder: Path) -> tuple[Path, str, str, str]:
    rng = np.random.default_rng(0)
    n = 3000
    group = rng.choice(["a", "b"], n)
    x = rng.normal(size=n)
    chance = 1 / (1 + np.exp(-(2 * x + np.where(group == "a", 0.8, -0.8))))
    frame = pd.DataFrame({"x": x, "z": rng.normal(size=n), "group": group,
                          "outcome": np.where(rng.random(n) < chance, "approve", "deny")})
    frame.to_csv(folder / "planted.csv", index=False)
    return folder / "planted.csv", "outcome", "group", "approve"


def parity(chosen: np.ndarray, groups: np.ndarray) -> float:
    rates = [chosen[groups == g].mean() for g in sorted(set(groups))]
    return float(max(rates) - min(rates))


def logistic(frame: pd.DataFrame, parts: dict, target: str, column: str, positive: str, seed: int) -> dict:
    """Logistic regression on the training rows, ThresholdOptimizer fitted on the validation rows."""
    from fairlearn.postprocessing import ThresholdOptimizer
    from sklearn.compose import make_column_transformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    features = [c for c in frame.columns if c != target]
    categorical = [c for c in features if not pd.api.types.is_numeric_dtype(frame[c])]
    numeric = [c for c in features if c not in categorical]
    model = make_pipeline(make_column_transformer((StandardScaler(), numeric), (OneHotEncoder(), categorical)),
                          LogisticRegression(max_iter=1000))
    part = {name: frame.iloc[rows] for name, rows in parts.items()}
    truth = {name: (p[target] == positive).to_numpy() for name, p in part.items()}
    model.fit(part["train"][features], truth["train"])
    chosen = model.predict(part["test"][features])
    groups = part["test"][column].to_numpy()
    optimizer = ThresholdOptimizer(estimator=model, constraints="demographic_parity", prefit=True,
                                   predict_method="predict_proba")
    optimizer.fit(part["val"][features], truth["val"], sensitive_features=part["val"][column])
    after = optimizer.predict(part["test"][features], sensitive_features=groups, random_state=seed).astype(bool)
    return {"accuracy": float(np.mean(chosen == truth["test"])), "parity": parity(chosen, groups),
            "after_accuracy": float(np.mean(after == truth["test"])), "after_parity": parity(after, groups)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=10)
    args = parser.parse_args()
    results: dict[tuple[str, str], list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for set_name, make in (("diabetes (sex)", diabetes), ("planted bias (group)", planted)):
            path, target, column, positive = make(folder)
            frame = pd.read_csv(path)
            for seed in range(args.seeds):
                spec = {"seed": seed, "data": {"path": str(path), "target": target,
                                               "split": {"val": 0.25, "test": 0.25}},
                        "model": {"layers": [32]}, "train": {"epochs": 40, **FAST}}
                run = lf.train(spec, runs_dir=folder / "runs")
                for fit_on in ("val", "train"):
                    for constraint in ("demographic_parity", "true_positive_rate_parity"):
                        done = lf.mitigate_fairness(run, column, constraint, positive=positive, fit_on=fit_on,
                                                    bootstrap=0)  # a new version each time; run is unchanged
                        results.setdefault((set_name, f"thresholds: {constraint}, fitted on {fit_on}"), []).append({
                            "accuracy": done.before["accuracy"],
                            "parity": done.before["disparities"]["demographic_parity_difference"]["value"],
                            "odds": done.before["disparities"]["equalized_odds_difference"]["value"],
                            "after_accuracy": done.after["accuracy"],
                            "after_parity": done.after["disparities"]["demographic_parity_difference"]["value"],
                            "after_odds": done.after["disparities"]["equalized_odds_difference"]["value"]})
                reweighed = lf.train({**spec, "train": {**spec["train"], "fairness": {"sensitive": column}}},
                                     runs_dir=folder / "runs")
                plain = lf.audit_fairness(run, [column], positive=positive, bootstrap=0).columns[column]
                fair = lf.audit_fairness(reweighed, [column], positive=positive, bootstrap=0).columns[column]
                results.setdefault((set_name, "train.fairness: reweigh"), []).append({
                    "accuracy": run.metrics["test"]["accuracy"],
                    "parity": plain["disparities"]["demographic_parity_difference"]["value"],
                    "odds": plain["disparities"]["equalized_odds_difference"]["value"],
                    "after_accuracy": reweighed.metrics["test"]["accuracy"],
                    "after_parity": fair["disparities"]["demographic_parity_difference"]["value"],
                    "after_odds": fair["disparities"]["equalized_odds_difference"]["value"]})
                _, parts = recorded_parts(run.path)
                results.setdefault((set_name, "LogisticRegression + fairlearn ThresholdOptimizer (DP)"), []).append(
                    logistic(frame, parts, target, column, positive, seed))
    print(f"\n### Fairness mitigation (medians of {args.seeds} split seeds; test rows; "
          "DP = demographic-parity difference, EO = equalized-odds difference)\n")
    print("| set | method | accuracy before → after | DP before → after | DP cut | EO before → after |")
    print("|---|---|---|---|---|---|")
    for (set_name, method), rows in results.items():
        m = {k: statistics.median(r[k] for r in rows if k in r) if any(k in r for r in rows) else None
             for k in ("accuracy", "after_accuracy", "parity", "after_parity", "odds", "after_odds")}
        cut = statistics.median(1 - r["after_parity"] / r["parity"] for r in rows if r["parity"] > 0)
        odds = "-" if m["odds"] is None else f"{m['odds']:.3f} → {m['after_odds']:.3f}"
        print(f"| {set_name} | {method} | {m['accuracy']:.3f} → {m['after_accuracy']:.3f} | "
              f"{m['parity']:.3f} → {m['after_parity']:.3f} | {cut:.0%} | {odds} |")


if __name__ == "__main__":
    main()
