"""Recommendation: learn from interactions of users and items, rank for each user the items they
have not had.

A network scores (user, item) pairs (``models.factorization``). With ratings (explicit
feedback) it learns them (MSE by default; outputs are standardised ratings, answers are on the
ratings' scale); without (implicit feedback) it learns to score each interaction above items
drawn at random (BPR by default; ``bce`` and ``sampled_softmax`` too). Held-out interactions are
judged both ways: the ratings' RMSE and MAE where there are ratings, and, for every user with
held-out interactions, the top-``K`` list of items the user did not have in training against
those interactions (Recall, NDCG, MAP and hit rate at K, with the lists' catalogue coverage and
popularity). The simple recommenders (``layerforge.recommenders``) are scored on the same test
interactions, from the same training interactions, so every run shows where it stands.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..decodings import Values
from ..errors import DataError
from ..figures import Note
from ..metrics import ranking_scores
from ..recommenders import BASELINES
from .base import Finished, Task, answer_outputs

K = 20  # the length of the lists the metrics judge
RANKED = ("bpr", "bce", "sampled_softmax", "softmax", "in_batch")  # implicit feedback's losses (``RankedLoss``)
IN_BATCH = 1024  # held-out interactions are scored by ``in_batch`` in groups of this many
RANKING = ("recall", "ndcg", "map", "hit_rate", "coverage", "popularity")


@dataclass(frozen=True)
class RankedLoss:
    """A loss of implicit feedback: each interaction's score (B,) against the scores (B, N) of
    ``negatives`` items drawn at random for it, which the recommendation task draws and scores.
    'bpr': -log σ(positive - negative) (Rendle et al. 2009); 'softmax': cross-entropy of the
    interaction among the drawn items (sampled softmax), or with ``negatives`` 0 among every
    item (a full softmax over the catalogue: the loss ``softmax``); 'bce': the interaction as 1
    and the drawn items as 0; 'in_batch': cross-entropy of the interaction among the batch's
    distinct items (the other interactions' items are its negatives), each item's score less the
    log of its share of the training interactions with ``correction`` (a popular item is in
    more batches, so it would otherwise be pushed down for its popularity: Yi et al. 2019)."""

    kind: str
    negatives: int
    correction: bool = True

    @property
    def in_batch(self) -> bool:
        """Whether the negatives are the batch's other items (the task scores them, not ``__call__``)."""
        return self.kind == "in_batch"

    def __call__(self, positive, negative):
        import torch
        import torch.nn.functional as F

        if self.kind == "bpr":
            return -F.logsigmoid(positive[:, None] - negative).mean()
        if self.kind == "softmax":
            logits = torch.cat([positive[:, None], negative], dim=1)  # (B, 1 + N): the interaction first
            return F.cross_entropy(logits, torch.zeros(len(logits), dtype=torch.long, device=logits.device))
        return F.binary_cross_entropy_with_logits(positive, torch.ones_like(positive)) + \
            F.binary_cross_entropy_with_logits(negative, torch.zeros_like(negative)) * negative.shape[1]


class RecommendationTask(Task):
    """Score (user, item) pairs; rank each user's unseen items.

    Args:
        mean, std: the training ratings' scaling (0 and 1 without ratings).
        rated: whether the data has ratings (explicit feedback).
        codec: the data's codec (``InteractionsCodec``): the users' and items' keys, and each
            user's training items, which rankings leave out.
    """

    name = "recommendation"
    default_loss = "mse"
    trains_on = "interactions"
    target_form = "interactions"
    manifest_fields = ("target_scaling",)
    metrics = {**{f"{name}@{K}": name != "popularity" for name in RANKING}, "rmse": False, "mae": False}
    metric_bounds = {**{f"{name}@{K}": (0.0, 1.0) for name in RANKING if name != "popularity"},
                     f"popularity@{K}": (0.0, None), "rmse": (0.0, None), "mae": (0.0, None)}
    headline = f"ndcg@{K}"
    scored_on_outputs = False
    example = {"data": {"dataset": "clicks"}, "model": {"type": "factorization", "factors": 16},
               "train": {"batch_size": 512}}

    def __init__(self, mean: float, std: float, rated: bool, codec):
        self.mean, self.std, self.rated, self.codec = float(mean), float(std), rated, codec

    @classmethod
    def fit(cls, labels, train: np.ndarray, encoder, data_spec, source: str) -> RecommendationTask:
        if labels is None:
            return cls(0.0, 1.0, False, encoder.codec)
        values = np.asarray(labels, np.float64)[train]
        std = float(values.std())
        return cls(float(values.mean()), std if std > 0 else 1.0, True, encoder.codec)

    @classmethod
    def from_manifest(cls, manifest, encoder, run_dir: Path | None = None) -> RecommendationTask:
        scaling = manifest.target_scaling
        return cls(scaling.mean[0], scaling.std[0], encoder.state.rating is not None, encoder.codec)

    def record(self) -> dict:
        return {"classes": None, "target_scaling": {"mean": [self.mean], "std": [self.std]}}

    @property
    def output_size(self) -> int:
        return 1

    @classmethod
    def chance_loss(cls, classes: int | None) -> tuple[float, str] | None:
        return None

    # -- targets and the loss ----------------------------------------------------------------

    def encode_targets(self, labels, source: str | None = None) -> np.ndarray:
        if not self.rated:
            return np.ones((len(labels), 1), np.float32)
        return ((np.asarray(labels, np.float64) - self.mean) / self.std).astype(np.float32)[:, None]

    def target_tensor(self, y: np.ndarray):
        import torch

        return torch.as_tensor(y, dtype=torch.get_default_dtype()).reshape(len(y), -1)

    def evaluation_needs_targets(self, model) -> bool:
        """Ratings to score the ratings' errors; implicit feedback is scored by its pairs alone."""
        return self.rated

    def own_loss(self, loss_spec):
        """Without ``train.loss`` and ratings: BPR (with ratings: ``default_loss``, MSE). A loss of
        ratings is refused without ratings."""
        if loss_spec is None:
            return None if self.rated else RankedLoss("bpr", 1)
        if not self.rated and loss_spec.name not in RANKED:
            raise DataError(f"train.loss: {loss_spec.name} compares predicted ratings with ratings, and these "
                            f"interactions have none (data.rating); use one of {', '.join(RANKED)}")
        return None

    def objective(self, loss_fn):
        """Ratings: the loss of each pair's output. Implicit feedback: each interaction's score
        against ``negatives`` items drawn at random (from 1: never the unknown item)."""
        if not isinstance(loss_fn, RankedLoss):
            return lambda model, inputs, y: loss_fn(model(*inputs), y) + penalty(model, inputs)
        shares = self.codec.popularity() if loss_fn.in_batch and loss_fn.correction else None
        return lambda model, inputs, y: ranked_loss(model, inputs, loss_fn, shares=shares) + penalty(model, inputs)

    def _held_out_loss(self, model, inputs: tuple, loss_fn, generator) -> float:
        """``loss_fn`` of held-out interactions: ``in_batch`` in groups of ``IN_BATCH`` (as
        training's batches), the others at once."""
        if not loss_fn.in_batch:
            return float(ranked_loss(model, inputs, loss_fn, generator))
        shares = self.codec.popularity() if loss_fn.correction else None
        rows = len(inputs[0])
        found = sum(float(ranked_loss(model, tuple(t[start : start + IN_BATCH] for t in inputs), loss_fn,
                                      shares=shares)) * len(inputs[0][start : start + IN_BATCH])
                    for start in range(0, rows, IN_BATCH))
        return found / max(rows, 1)

    # -- evaluation --------------------------------------------------------------------------

    def evaluate(self, model, inputs: tuple, y, loss_fn) -> dict[str, float]:
        """The held-out loss, the ratings' errors (with ratings) and the top-K lists' scores."""
        import torch

        from ..models.protocol import predict_outputs

        model.eval()
        with torch.inference_mode():
            outputs = predict_outputs(model, inputs)
            if isinstance(loss_fn, RankedLoss):  # the same items drawn every time; outputs are scores, not ratings
                generator = torch.Generator(device=outputs.device).manual_seed(0)
                found = {"loss": self._held_out_loss(model, inputs, loss_fn, generator)}
            else:
                found = {"loss": float(loss_fn(outputs, y)), **self.scores(outputs, y)}
        users, items = (t.cpu().numpy() for t in inputs)
        return {**found, **self.ranking(self.ranked(model, np.unique(users[users > 0]), K)[0], users, items)}

    def scores(self, outputs, y) -> dict[str, float]:
        """The ratings' RMSE and MAE of pairs' outputs (none without ratings)."""
        if not self.rated:
            return {}
        error = (outputs.double().cpu().numpy()[:, 0] - y.double().cpu().numpy()[:, 0]) * self.std
        return {"rmse": float(np.sqrt(np.mean(error**2))), "mae": float(np.mean(np.abs(error)))}

    def ranking(self, lists: np.ndarray, users: np.ndarray, items: np.ndarray) -> dict[str, float]:
        """The scores of each user's list (``lists``: a row per user in ``np.unique(users)``
        order, unknown users left out) against the interactions (``users``, ``items``); an item
        the run never saw counts as missed."""
        known = users > 0
        order = np.argsort(users[known], kind="stable")
        wanted_users, wanted_items = users[known][order], items[known][order].copy()
        unknown = wanted_items == 0  # items the run never saw: each a distinct miss
        wanted_items[unknown] = -1 - np.arange(unknown.sum())
        starts = np.flatnonzero(np.r_[True, wanted_users[1:] != wanted_users[:-1]]) if len(order) else []
        truths = np.split(wanted_items, starts[1:]) if len(order) else []
        popularity = self.codec.popularity()
        found = ranking_scores(list(lists), truths, K, len(popularity) - 1, popularity)
        return {f"{name}@{K}": found[f"{name}@{K}"] for name in RANKING}

    def ranked(self, model, users: np.ndarray, k: int, batch: int = 256) -> tuple[np.ndarray, np.ndarray]:
        """Each user's ``k`` best items (indices, users x k) that the user did not have in
        training, best first (the unknown item 0 never), and the model's outputs for them."""
        import torch

        parameter = next(model.parameters())
        items, outputs = [], []
        model.eval()
        with torch.inference_mode():
            for start in range(0, len(users), batch):
                part = np.asarray(users[start : start + batch], np.int64)
                scores = model.item_scores(torch.as_tensor(part, device=parameter.device)).float().cpu().numpy()
                best, kept = self.codec.top_items(scores, part, k)
                items.append(best)
                outputs.append(kept)
        if not items:
            return np.zeros((0, k), np.int64), np.zeros((0, k), np.float32)
        return np.concatenate(items), np.concatenate(outputs)

    def recommendations(self, model, encoder, users, k: int):
        """A table of each user's ``k`` best items that the user did not have in training: the
        user (as given), the rank from 1, the item, and its score (a predicted rating, on the
        ratings' scale, where the data has ratings).

        Raises:
            DataError: a user the run never saw.
        """
        import pandas as pd

        if k < 1:
            raise DataError(f"k: expected at least 1 item per user, got {k}")
        users = list(users)
        items, outputs = self.ranked(model, self.codec.user_indices(users), k)
        values = self.decoding().values(outputs.reshape(-1, 1))
        return pd.DataFrame(self.codec.recommendation_columns(users, items, values))

    def finish(self, model, tensors: dict, *, encoder, images: Path, history: list[dict]) -> Finished:
        """The simple recommenders' scores on the same test interactions, each fitted on the same
        training interactions (``<baseline>_<metric>`` among the test metrics)."""
        if "test" not in tensors:
            return Finished()
        users, items = (t.cpu().numpy() for t in tensors["test"][0])
        wanted = np.unique(users[users > 0])
        found, seen = {}, encoder.seen()
        for name, make in BASELINES.items():
            try:
                baseline = make().fit(seen)
            except DataError:  # ALS without the implicit package
                continue
            parts = [wanted[i : i + 512] for i in range(0, len(wanted), 512)]
            lists = np.concatenate([self.codec.top_items(baseline.scores(part, seen), part, K)[0] for part in parts])
            found.update({f"{name}_{metric}": value for metric, value in self.ranking(lists, users, items).items()})
        return Finished(test=found)

    # -- answers -----------------------------------------------------------------------------

    def decoding(self) -> Values:
        return Values([self.mean], [self.std])

    def predictions(self, model, inputs: tuple) -> np.ndarray:
        return self.decoding().predictions(answer_outputs(model, inputs), inputs)

    def report_blocks(self, model, held_out, *, encoder, pictures, target):
        return [Note(f"top-{K} lists of each user's unseen items, scored against the user's held-out "
                     "interactions; the baselines' scores are in the metrics table")]


def penalty(model, inputs: tuple):
    """The network's regularisation of the users and items of a batch (``penalty``), or 0."""
    found = getattr(model, "penalty", None)
    return found(*inputs) if found is not None else 0.0


def ranked_loss(model, inputs: tuple, loss_fn, generator=None, shares: np.ndarray | None = None):
    """``loss_fn`` (a ``RankedLoss``) of each interaction's score against items drawn at random
    (from 1: never the unknown item), every item, or the batch's other items (``shares``: each
    item's count of training interactions, for ``in_batch``'s correction)."""
    import torch

    users, items = inputs
    if loss_fn.in_batch:
        unique, back = torch.unique(items, return_inverse=True)  # (U,), each interaction's place in it
        logits = model.item_scores(users, items, among=unique.expand(len(users), -1))  # (B, U)
        if shares is not None:
            counts = torch.as_tensor(shares, device=logits.device, dtype=logits.dtype)[unique]
            logits = logits - torch.log(counts + 1)  # the log of its share, less a constant
        return torch.nn.functional.cross_entropy(logits, back)
    if loss_fn.negatives == 0:  # every item: a full softmax over the catalogue (never the unknown item 0)
        known = items > 0  # a held-out item the run never saw has no place among them
        if not known.any():
            return torch.zeros((), device=items.device)
        users, items = users[known], items[known]
        logits = model.item_scores(users, items)  # (B, items)
        logits = torch.cat([torch.full_like(logits[:, :1], float("-inf")), logits[:, 1:]], dim=1)
        return torch.nn.functional.cross_entropy(logits, items)
    drawn = torch.randint(1, model.inputs.items, (len(users), loss_fn.negatives), device=users.device,
                          generator=generator)
    scores = model.item_scores(users, items, among=torch.cat([items[:, None], drawn], dim=1))  # (B, 1 + N)
    return loss_fn(scores[:, 0], scores[:, 1:])
