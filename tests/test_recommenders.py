"""Recommendation's yardsticks: splits hold each user's future out; the ranking metrics have the
values their definitions give; the baselines rank unseen items, as their closed forms say."""

from __future__ import annotations

import numpy as np
import pytest

from layerforge.errors import DataError
from layerforge.metrics import ranking_scores
from layerforge.recommenders import ALS, EASE, Interactions, ItemKNN, MostPopular, by_time, per_user


def _interactions(users=30, items=12, seed=0) -> Interactions:
    """Two tastes: even users like the first half of the items, odd users the second."""
    rng = np.random.default_rng(seed)
    rows = []
    for user in range(users):
        liked = np.arange(items // 2) + (items // 2) * (user % 2)
        for time, item in enumerate(rng.permutation(liked)[: rng.integers(3, items // 2 + 1)]):
            rows.append((user, item, time + rng.uniform()))
    found, _, _ = Interactions.indexed(*zip(*rows))
    return found


def test_a_split_by_time_holds_each_users_latest_interactions_out():
    data = _interactions()
    train, held = by_time(data, held=0.25)
    assert len(np.intersect1d(train, held)) == 0 and len(train) + len(held) == len(data.users)
    for user in range(data.user_count):
        mine_train, mine_held = train[data.users[train] == user], held[data.users[held] == user]
        count = len(mine_train) + len(mine_held)
        assert len(mine_held) == max(1, round(count * 0.25))
        assert data.times[mine_held].min() > data.times[mine_train].max()  # the future only
    train, held = per_user(data, held=0.25, seed=3)
    assert sorted(np.unique(data.users[held]).tolist()) == list(range(data.user_count))
    with pytest.raises(DataError, match="needs each interaction's time"):
        by_time(Interactions(data.users, data.items, None, data.user_count, data.item_count))


def test_the_ranking_metrics_are_what_their_definitions_give():
    popularity = np.array([5, 1, 1, 1, 1, 1])
    found = ranking_scores([np.array([0, 1]), np.array([2, 3]), np.array([4, 5])],
                           [np.array([1]), np.array([0, 2]), np.array([], int)], 2, 6, popularity)
    # user 1: the hit at position 2: recall 1, ndcg 1/log2(3), map 1/2; user 2: hit at 1 of 2 held out
    assert found["recall@2"] == pytest.approx((1 + 0.5) / 2)
    assert found["ndcg@2"] == pytest.approx((1 / np.log2(3) + 1 / (1 + 1 / np.log2(3))) / 2)
    assert found["map@2"] == pytest.approx((0.5 + 0.5) / 2)
    assert found["hit_rate@2"] == 1.0 and found["coverage@2"] == pytest.approx(4 / 6)
    assert found["popularity@2"] == pytest.approx((5 + 1 + 1 + 1) / 4)  # the third user has nothing held out


@pytest.mark.parametrize("recommender", [MostPopular(), ItemKNN(neighbours=4), EASE(l2=1.0), ALS(factors=4, seed=0)],
                         ids=lambda r: r.name)
def test_each_baseline_ranks_only_unseen_items_and_finds_the_taste(recommender):
    pytest.importorskip("implicit") if isinstance(recommender, ALS) else None
    data = _interactions(users=60)
    train, held = by_time(data)
    seen = data.matrix(train)
    users = np.arange(data.user_count)
    lists = recommender.fit(seen).recommend(users, seen, 3)
    assert lists.shape == (data.user_count, 3)
    for user, ranked in enumerate(lists):
        assert not set(ranked.tolist()) & set(data.items[train][data.users[train] == user].tolist())
    scores = ranking_scores(list(lists), [data.items[held][data.users[held] == u] for u in users], 3,
                            data.item_count, np.asarray(seen.sum(axis=0)).ravel())
    if isinstance(recommender, MostPopular):  # the most popular item unseen, first, for everyone
        counts = np.asarray(seen.sum(axis=0)).ravel()
        for user, ranked in enumerate(lists):
            unseen = [i for i in np.argsort(-counts, kind="stable") if not seen[user, i]]
            assert counts[ranked[0]] == counts[unseen[0]]
    else:  # each user's taste is learnt: the first item is in the user's half (held-out items are unseen ones)
        half = np.array([(ranked[0] < 6) == (user % 2 == 0) for user, ranked in enumerate(lists)])
        assert half.mean() > 0.9 and scores["hit_rate@3"] > 0.5, scores


def test_ease_is_its_closed_form():
    data = _interactions(users=20, items=8)
    seen = data.matrix()
    model = EASE(l2=2.0).fit(seen)
    x = seen.toarray().astype(np.float64)
    b = np.zeros((8, 8))
    for j in range(8):  # each item's ridge regression on the others, as a check of the closed form
        others = [i for i in range(8) if i != j]
        a = x[:, others]
        solved = np.linalg.solve(a.T @ a + 2.0 * np.eye(7), a.T @ x[:, j])
        b[others, j] = solved
    # the closed form's weights are the constrained regression's; they agree with the ridge fits up to
    # the constraint's Lagrange term, so compare the ranking each gives
    assert np.allclose(np.diag(model.weights), 0)
    ours, theirs = x @ model.weights, x @ b
    assert np.corrcoef(ours.ravel(), theirs.ravel())[0, 1] > 0.99
