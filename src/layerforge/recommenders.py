"""Recommendation's yardsticks: interactions split without leaking, and the simple recommenders
that published neural ones often fail to beat when split and tuned honestly (Dacrema et al.
2019): the most popular items, item-kNN, EASE (Steck 2019) and ALS (Hu et al. 2008, by the
``implicit`` package). Each ranks, for every user, the items the user has not had in training.

Interactions are a user index, an item index and a time per row (``Interactions``); a split
holds each user's latest interactions out (``by_time``), or a random share of each user's
(``per_user``), so that no user's future is in training.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .data.splits import user_tails
from .errors import DataError


@dataclass
class Interactions:
    """Rows of (user, item, time), users and items as indices from 0.

    Attributes:
        users, items: each row's user and item.
        times: each row's time (any numbers that order it), or None.
        user_count, item_count: how many users and items there are.
    """

    users: np.ndarray
    items: np.ndarray
    times: np.ndarray | None
    user_count: int
    item_count: int

    @classmethod
    def indexed(cls, users, items, times=None) -> tuple[Interactions, np.ndarray, np.ndarray]:
        """Interactions from raw user and item keys, and the keys of each index (users, items)."""
        user_keys, user_index = np.unique(np.asarray(users), return_inverse=True)
        item_keys, item_index = np.unique(np.asarray(items), return_inverse=True)
        found = cls(user_index.astype(np.int64), item_index.astype(np.int64),
                    None if times is None else np.asarray(times, np.float64), len(user_keys), len(item_keys))
        return found, user_keys, item_keys

    def matrix(self, rows: np.ndarray | None = None):
        """The users x items matrix of ones (scipy CSR) of ``rows`` (default all), an item seen
        twice counted once."""
        from scipy.sparse import csr_matrix

        rows = np.arange(len(self.users)) if rows is None else rows
        found = csr_matrix((np.ones(len(rows), np.float32), (self.users[rows], self.items[rows])),
                           shape=(self.user_count, self.item_count))
        found.data[:] = 1.0
        return found


def by_time(interactions: Interactions, held: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """(training rows, held-out rows): each user's latest ``held`` share of interactions held out
    (at least one, for users with two or more; ties in time broken by row order).

    Raises:
        DataError: the interactions carry no times.
    """
    if interactions.times is None:
        raise DataError("a split by time needs each interaction's time (data.time)")
    return user_tails(interactions.users, interactions.times, held)


def per_user(interactions: Interactions, held: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(training rows, held-out rows): a random ``held`` share of each user's interactions held
    out (at least one, for users with two or more)."""
    return user_tails(interactions.users, None, held, seed)


class Recommender:
    """Fitted on a users x items matrix of training interactions; ranks unseen items."""

    name = "recommender"

    def fit(self, seen) -> Recommender:
        raise NotImplementedError

    def scores(self, users: np.ndarray, seen) -> np.ndarray:
        """Each user's score for every item (users, items)."""
        raise NotImplementedError

    def recommend(self, users: np.ndarray, seen, k: int, batch: int = 1024) -> np.ndarray:
        """Each user's ``k`` best items not in ``seen`` (the training matrix), best first."""
        found = []
        for start in range(0, len(users), batch):
            part = users[start : start + batch]
            scores = np.asarray(self.scores(part, seen), np.float64)
            rows, columns = seen[part].nonzero()
            scores[rows, columns] = -np.inf
            best = np.argpartition(-scores, min(k, scores.shape[1] - 1), axis=1)[:, :k]
            ranked = np.take_along_axis(scores, best, axis=1)
            found.append(np.take_along_axis(best, np.argsort(-ranked, axis=1, kind="stable"), axis=1))
        return np.concatenate(found) if found else np.zeros((0, k), np.int64)


class MostPopular(Recommender):
    """The items with the most training interactions, the same list for every user."""

    name = "most popular"

    def fit(self, seen) -> MostPopular:
        self.counts = np.asarray(seen.sum(axis=0)).ravel()
        return self

    def scores(self, users: np.ndarray, seen) -> np.ndarray:
        return np.broadcast_to(self.counts, (len(users), len(self.counts))).copy()


class ItemKNN(Recommender):
    """Item-based nearest neighbours: the cosine similarity of items' columns of users (shrunk
    by ``shrink``), each item's ``neighbours`` most similar kept; a user's score of an item is
    the summed similarity to the items the user had."""

    name = "item-kNN"

    def __init__(self, neighbours: int = 400, shrink: float = 10.0):
        self.neighbours, self.shrink = neighbours, shrink

    def fit(self, seen) -> ItemKNN:
        from scipy.sparse import csr_matrix

        counts = (seen.T @ seen).toarray().astype(np.float64)  # co-occurrences (items, items)
        norms = np.sqrt(np.diag(counts))
        similar = counts / (np.outer(norms, norms) + self.shrink + 1e-12)
        np.fill_diagonal(similar, 0.0)
        keep = min(self.neighbours, similar.shape[0] - 1)
        if keep < similar.shape[0] - 1:
            weakest = np.argpartition(-similar, keep, axis=0)[keep:]  # per item (column): all but its best
            np.put_along_axis(similar, weakest, 0.0, axis=0)
        self.similar = csr_matrix(similar)
        return self

    def scores(self, users: np.ndarray, seen) -> np.ndarray:
        return (seen[users] @ self.similar).toarray()


class EASE(Recommender):
    """EASE (Steck 2019): an item-to-item weight matrix in closed form, the least-squares
    reconstruction of the matrix from the other items, with an L2 penalty ``l2`` and no item
    predicting itself: ``P = (XᵀX + l2·I)⁻¹``, ``B = -P / diag(P)``, ``diag(B) = 0``."""

    name = "EASE"

    def __init__(self, l2: float = 500.0):
        self.l2 = l2

    def fit(self, seen) -> EASE:
        gram = (seen.T @ seen).toarray().astype(np.float64)
        gram[np.diag_indices_from(gram)] += self.l2
        inverse = np.linalg.inv(gram)
        self.weights = -inverse / np.diag(inverse)[None, :]
        np.fill_diagonal(self.weights, 0.0)
        return self

    def scores(self, users: np.ndarray, seen) -> np.ndarray:
        return seen[users] @ self.weights


class ALS(Recommender):
    """Alternating least squares for implicit feedback (Hu, Koren and Volinsky 2008), by the
    ``implicit`` package: user and item factors of ``factors`` numbers, confidence 1 + ``alpha``
    for each interaction.

    Raises:
        DataError: the implicit package is missing.
    """

    name = "ALS"

    def __init__(self, factors: int = 32, regularization: float = 0.1, alpha: float = 1.0, iterations: int = 15,
                 seed: int = 0):
        self.factors, self.regularization, self.alpha = factors, regularization, alpha
        self.iterations, self.seed = iterations, seed

    def fit(self, seen) -> ALS:
        try:
            from implicit.cpu.als import AlternatingLeastSquares
        except ImportError:
            raise DataError("the ALS baseline needs the implicit package: pip install 'layerforge[recommend]'") \
                from None
        import threadpoolctl

        with threadpoolctl.threadpool_limits(1, "blas"):  # implicit's own threads; BLAS's would fight them
            model = AlternatingLeastSquares(factors=self.factors, regularization=self.regularization,
                                            alpha=self.alpha, iterations=self.iterations, random_state=self.seed)
            model.fit(seen.tocsr(), show_progress=False)
        self.users_factors, self.items_factors = np.asarray(model.user_factors), np.asarray(model.item_factors)
        return self

    def scores(self, users: np.ndarray, seen) -> np.ndarray:
        return self.users_factors[users] @ self.items_factors.T


BASELINES = {"most_popular": MostPopular, "item_knn": ItemKNN, "ease": EASE, "als": ALS}


__all__ = ["ALS", "BASELINES", "EASE", "Interactions", "ItemKNN", "MostPopular", "Recommender", "by_time", "per_user"]
