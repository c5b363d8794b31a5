"""Metric formulas on numpy arrays, shared by tasks and charts (checked against scikit-learn)."""

from __future__ import annotations

import numpy as np

CALIBRATION_BINS = 15  # equal-width bins of the top probability (ECE, reliability charts)


def accuracy(true: np.ndarray, pred: np.ndarray) -> float:
    return float((true == pred).mean()) if len(true) else float("nan")


def f1_macro(true: np.ndarray, pred: np.ndarray) -> float:
    """Macro-averaged F1 over the classes present in ``true`` or ``pred`` (as scikit-learn)."""
    labels, index = np.unique(np.concatenate([true, pred]), return_inverse=True)
    if not len(labels):
        return float("nan")
    k = len(labels)
    return _macro_f1(np.bincount(index[: len(true)] * k + index[len(true):], minlength=k * k).reshape(k, k))


def roc_auc(true: np.ndarray, score: np.ndarray) -> float:
    """Binary ROC AUC from scores of the positive class (Mann-Whitney U, ties averaged)."""
    positives = true == 1
    n_pos, n_neg = int(positives.sum()), int((~positives).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    _, where, counts = np.unique(score, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    ranks = ((ends - counts + 1 + ends) / 2)[where.reshape(-1)]  # the mean rank of each run of ties (1-based)
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def log_loss(true: np.ndarray, probabilities: np.ndarray) -> float:
    """Mean negative log-likelihood of the true classes (probabilities clipped at 1e-12)."""
    return _nll(_picked(probabilities, true)) if len(true) else float("nan")


def brier_score(true: np.ndarray, probabilities: np.ndarray) -> float:
    """Mean over rows of the squared distance between the probabilities and the one-hot truth."""
    return _brier(probabilities, _picked(probabilities, true)) if len(true) else float("nan")


def calibration_bins(true: np.ndarray, probabilities: np.ndarray, bins: int = CALIBRATION_BINS):
    """Rows binned by their top probability (equal-width bins on [0, 1]): per bin the mean
    confidence, the accuracy and the number of rows."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == true
    which = _bin_of(confidence, bins)
    counts = np.bincount(which, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_confidence = np.bincount(which, weights=confidence, minlength=bins) / counts
        hit_rate = np.bincount(which, weights=correct.astype(np.float64), minlength=bins) / counts
    return mean_confidence, hit_rate, counts


def expected_calibration_error(true: np.ndarray, probabilities: np.ndarray, bins: int = CALIBRATION_BINS) -> float:
    """ECE: the row-weighted mean gap between confidence and accuracy over 15 bins of the top
    probability (Guo et al. 2017)."""
    if not len(true):
        return float("nan")
    return _ece(probabilities.max(axis=1), probabilities.argmax(axis=1) == true, bins)


def classification_scores(true: np.ndarray, probabilities: np.ndarray) -> dict[str, float]:
    """accuracy, f1_macro, with two classes roc_auc, and nll, ece and brier of class codes
    ``true`` (0 .. classes - 1) against ``probabilities`` (rows, classes), in one pass that
    shares its intermediates (the argmax, the true classes' probabilities, one confusion
    count): the same numbers as the functions above, at a fraction of their fixed cost, which
    dominates when a few rows are scored every epoch."""
    rows, classes = probabilities.shape
    if not rows:
        nan = float("nan")
        return {"accuracy": nan, "f1_macro": nan, **({"roc_auc": nan} if classes == 2 else {}),
                "nll": nan, "ece": nan, "brier": nan}
    true = true.astype(np.int64, copy=False)
    pred = probabilities.argmax(axis=1)
    correct = pred == true
    pair = true * classes  # (true, pred) as one code, built in place: few copies of a long column
    pair += pred
    counts = np.bincount(pair, minlength=classes * classes).reshape(classes, classes)
    del pair
    picked = _picked(probabilities, true)
    result = {"accuracy": float(correct.sum() / rows), "f1_macro": _macro_f1(counts)}
    if classes == 2:
        result["roc_auc"] = roc_auc(true, probabilities[:, 1])
    result.update(nll=_nll(picked), ece=_ece(probabilities.max(axis=1), correct), brier=_brier(probabilities, picked))
    return result


def _picked(probabilities: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Each row's probability of its true class."""
    return np.take_along_axis(probabilities, true.astype(np.int64, copy=False)[:, None], axis=1)[:, 0]


def _macro_f1(counts: np.ndarray) -> float:
    """Macro F1 from a confusion count (true, pred): per class 2 tp / (its true rows + its
    predicted rows), averaged over the classes present in either."""
    either = counts.sum(axis=0) + counts.sum(axis=1)
    present = either > 0
    return float((2 * counts.diagonal()[present] / either[present]).sum() / present.sum())


def _nll(picked: np.ndarray) -> float:
    return float(-np.log(np.clip(picked, 1e-12, 1.0)).sum() / len(picked))


def _brier(probabilities: np.ndarray, picked: np.ndarray) -> float:
    """The squared distance to the one-hot truth, sum(p^2) - 2 p_true + 1 per row, averaged."""
    rows = len(picked)
    return float(np.einsum("ij,ij->", probabilities, probabilities) / rows - 2 * picked.sum() / rows + 1)


def _ece(confidence: np.ndarray, correct: np.ndarray, bins: int = CALIBRATION_BINS) -> float:
    """Per bin of the top probability, |its rows' confidence - their hits|, summed over bins and
    divided by all rows: the row-weighted mean gap."""
    gaps = np.bincount(_bin_of(confidence, bins), weights=confidence - correct, minlength=bins)
    return float(np.abs(gaps).sum() / len(confidence))


def _bin_of(confidence: np.ndarray, bins: int) -> np.ndarray:
    """Each row's equal-width bin of [0, 1] (a confidence of 1 in the last)."""
    which = (confidence * bins).astype(np.int64)
    return np.minimum(which, bins - 1, out=which)


def forecast_metrics(true: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """MAE, RMSE and MAPE (as a fraction, e.g. 0.05) over all forecast steps."""
    error = pred - true
    return {
        "mae": float(np.abs(error).mean()),
        "rmse": float(np.sqrt((error**2).mean())),
        "mape": float(np.mean(np.abs(error) / np.maximum(np.abs(true), 1e-12))),
    }


def multilabel_scores(true: np.ndarray, chosen: np.ndarray) -> dict[str, float]:
    """Scores of label sets: ``true`` and ``chosen`` are (rows, labels) of 0/1.

    ``f1_micro`` (over every row's every label), ``f1_macro`` (the mean of each label's F1; a label
    neither present nor chosen counts 1), ``jaccard`` (each row's |true ∩ chosen| / |true ∪ chosen|,
    1 for two empty sets, averaged over rows), ``hamming_loss`` (the share of row-label pairs
    wrong) and ``exact_match`` (rows whose set is exactly right).
    """
    true, chosen = true.astype(bool), chosen.astype(bool)
    both = (true & chosen).sum(axis=0).astype(np.float64)
    either_count = true.sum(axis=0) + chosen.sum(axis=0)
    micro = 2 * both.sum() / either_count.sum() if either_count.sum() else 1.0
    per_label = np.where(either_count > 0, 2 * both / np.maximum(either_count, 1), 1.0)
    union = (true | chosen).sum(axis=1)
    jaccard = np.where(union > 0, (true & chosen).sum(axis=1) / np.maximum(union, 1), 1.0)
    return {"f1_micro": float(micro), "f1_macro": float(per_label.mean()), "jaccard": float(jaccard.mean()),
            "hamming_loss": float((true != chosen).mean()), "exact_match": float((true == chosen).all(axis=1).mean())}


def best_thresholds(true: np.ndarray, probabilities: np.ndarray) -> list[float]:
    """Each label's threshold that gives its best F1 on these rows (the midpoint between
    neighbouring probabilities; 0.5 for a label the rows never have)."""
    thresholds = []
    for label in range(true.shape[1]):
        present, scores = true[:, label].astype(bool), probabilities[:, label].astype(np.float64)
        if not present.any():
            thresholds.append(0.5)
            continue
        ordered = np.unique(scores)
        cuts = np.concatenate([[0.0], (ordered[:-1] + ordered[1:]) / 2, [ordered[-1]]])
        best, best_f1 = 0.5, -1.0
        for cut in cuts:
            chosen = scores >= cut
            f1 = 2 * (present & chosen).sum() / (present.sum() + chosen.sum())
            if f1 > best_f1 + 1e-12:
                best, best_f1 = float(cut), f1
        thresholds.append(round(min(max(best, 0.0), 1.0), 6))
    return thresholds


def _exact_share(hypotheses: list[str], references: list[str], what: str) -> float:
    """The share of rows whose text is its reference's exactly (NaN for no rows).

    Raises:
        ValueError: the two lists differ in length (``what``: what the hypotheses are).
    """
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} {what} for {len(references)} references")
    return float(np.mean([h == r for h, r in zip(hypotheses, references)])) if references else float("nan")


def sequence_scores(hypotheses: list[str], references: list[str]) -> dict[str, float]:
    """Decoded sequences against their references: corpus BLEU and chrF as sacreBLEU computes
    them (on the 0-100 scale), and the share of rows decoded exactly.

    Raises:
        ValueError: the two lists differ in length, or sacreBLEU is not installed.
    """
    exact = _exact_share(hypotheses, references, "decoded sequences")
    try:
        import sacrebleu
    except ImportError:
        raise ValueError("BLEU and chrF need the sacrebleu package: pip install 'layerforge[language]'") from None
    return {"bleu": float(sacrebleu.corpus_bleu(hypotheses, [references]).score),
            "chrf": float(sacrebleu.corpus_chrf(hypotheses, [references]).score), "exact_match": exact}


def transcription_scores(hypotheses: list[str], references: list[str]) -> dict[str, float]:
    """Transcripts against their references: word and character error rates over all rows, as
    jiwer computes them (edits over the references' words or characters; 0 is perfect, and
    inserted words can take them past 1), and the share of rows transcribed exactly.

    Raises:
        ValueError: the two lists differ in length, or jiwer is not installed.
    """
    exact = _exact_share(hypotheses, references, "transcripts")
    try:
        import jiwer
    except ImportError:
        raise ValueError("word and character error rates need the jiwer package: pip install 'layerforge[speech]'") \
            from None
    return {"wer": float(jiwer.wer(references, hypotheses)), "cer": float(jiwer.cer(references, hypotheses)),
            "exact_match": exact}


def segmentation_scores(answered: np.ndarray, true: np.ndarray, classes: int) -> dict[str, float]:
    """Masks of class indices (N, H, W) against the true masks, over all their pixels:
    ``mean_iou`` (each class's intersection over union, averaged over the classes either mask
    holds), ``dice`` (twice the intersection over the sum, averaged over the classes but the
    first, the background, that either mask holds; over all classes when there is one) and
    ``pixel_accuracy``; ``iou_<k>`` for each class k either mask holds.

    >>> true = np.array([[[0, 1], [1, 1]]])
    >>> scores = segmentation_scores(np.array([[[0, 1], [0, 1]]]), true, 2)
    >>> scores["mean_iou"], scores["pixel_accuracy"]
    (0.5833333333333333, 0.75)
    """
    answered, true = np.asarray(answered).reshape(-1), np.asarray(true).reshape(-1)
    counts = np.bincount(true.astype(np.int64) * classes + answered, minlength=classes * classes)
    confusion = counts.reshape(classes, classes).astype(np.float64)  # rows: true class; columns: answered
    hit = np.diag(confusion)
    union = confusion.sum(0) + confusion.sum(1) - hit
    held = union > 0
    iou = np.where(held, hit / np.maximum(union, 1), np.nan)
    dice = np.where(held, 2 * hit / np.maximum(union + hit, 1), np.nan)
    foreground = held.copy()
    foreground[0] = classes == 1
    found = {"mean_iou": float(np.nanmean(iou)) if held.any() else 1.0,
             "dice": float(np.nanmean(dice[foreground])) if foreground.any() else 1.0,
             "pixel_accuracy": float(hit.sum() / max(confusion.sum(), 1))}
    found.update({f"iou_{k}": float(iou[k]) for k in range(classes) if held[k]})
    return found


IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)  # COCO's: 0.50, 0.55, ..., 0.95
RECALL_POINTS = np.linspace(0.0, 1.0, 101)  # COCO's 101 recall levels
MOST_DETECTIONS = 100  # COCO's maxDets: the boxes of each class kept per picture, best first


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The intersection over union of each box of ``a`` (n, 4) with each of ``b`` (m, 4), boxes
    as ``x_min, y_min, x_max, y_max``: (n, m).

    >>> box_iou(np.array([[0, 0, 2, 2]]), np.array([[1, 0, 3, 2], [0, 0, 2, 2]])).round(3).tolist()
    [[0.333, 1.0]]
    """
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    width = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    height = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    overlap = width * height
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - overlap
    return np.where(union > 0, overlap / np.where(union > 0, union, 1), 0.0)


def _matched(found: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Whether each found box (best first) is a true positive at each IoU threshold (found,
    thresholds): matched, in order, to the unmatched true box it overlaps most, at least the
    threshold (COCO's rule)."""
    hits = np.zeros((len(found), len(IOU_THRESHOLDS)), bool)
    if not len(found) or not len(true):
        return hits
    overlaps = box_iou(found, true)
    for t, threshold in enumerate(IOU_THRESHOLDS):
        taken = np.zeros(len(true), bool)
        for d in range(len(found)):
            candidates = np.where(taken, -1.0, overlaps[d])
            best = int(np.argmax(candidates))
            if candidates[best] >= min(threshold, 1 - 1e-10):
                taken[best], hits[d, t] = True, True
    return hits


def detection_scores(found: list[np.ndarray], true: list[np.ndarray], classes: int) -> dict[str, float]:
    """COCO's average precision of found boxes against the true ones, over the pictures.

    Args:
        found: per picture, the boxes found (k, 6): ``x_min, y_min, x_max, y_max, class, score``.
        true: per picture, the true boxes (m, 5): ``x_min, y_min, x_max, y_max, class``.
        classes: how many classes.

    Returns:
        ``map`` (AP averaged over the IoU thresholds 0.50 to 0.95 and over the classes that have
        true boxes), ``map_50`` and ``map_75`` (at one threshold), and ``ap_<k>`` and ``ap50_<k>``
        per class k with true boxes: each class's precision, made to fall with recall, read at
        the 101 recall levels and averaged, as COCO does (each picture keeps its best
        ``MOST_DETECTIONS`` boxes of each class; all areas; no crowd boxes).

    >>> true = [np.array([[0, 0, 10, 10, 0]])]
    >>> found = [np.array([[0, 0, 10, 9, 0, 0.9], [20, 20, 30, 30, 0, 0.8]])]
    >>> {name: round(value, 3) for name, value in detection_scores(found, true, 1).items()}
    {'map': 0.9, 'map_50': 1.0, 'map_75': 1.0, 'ap_0': 0.9, 'ap50_0': 1.0}
    """
    precision = np.full((classes, len(IOU_THRESHOLDS), len(RECALL_POINTS)), -1.0)
    for k in range(classes):
        scores, hits, count = [], [], 0
        for boxes, truth in zip(found, true):
            boxes, truth = np.asarray(boxes, np.float64).reshape(-1, 6), np.asarray(truth, np.float64).reshape(-1, 5)
            mine, theirs = boxes[boxes[:, 4] == k], truth[truth[:, 4] == k, :4]
            mine = mine[np.argsort(-mine[:, 5], kind="mergesort")][:MOST_DETECTIONS]
            count += len(theirs)
            scores.append(mine[:, 5])
            hits.append(_matched(mine[:, :4], theirs))
        if not count:
            continue
        scores = np.concatenate(scores)
        order = np.argsort(-scores, kind="mergesort")
        hits = np.concatenate(hits)[order]
        for t in range(len(IOU_THRESHOLDS)):
            right = np.cumsum(hits[:, t])
            wrong = np.cumsum(~hits[:, t])
            recall = right / count
            precise = right / (right + wrong + np.spacing(1))
            precise = np.maximum.accumulate(precise[::-1])[::-1] if len(precise) else precise
            at = np.searchsorted(recall, RECALL_POINTS, side="left")
            read = np.zeros(len(RECALL_POINTS))
            reached = at < len(precise)
            read[reached] = precise[at[reached]]
            precision[k, t] = read
    held = precision[:, 0, 0] > -1
    if not held.any():
        return {"map": 0.0, "map_50": 0.0, "map_75": 0.0}
    per_threshold = precision.mean(axis=2)  # (classes, thresholds)
    scores = {"map": float(per_threshold[held].mean()), "map_50": float(per_threshold[held, 0].mean()),
              "map_75": float(per_threshold[held, 5].mean())}
    for k in np.flatnonzero(held):
        scores[f"ap_{k}"] = float(per_threshold[k].mean())
        scores[f"ap50_{k}"] = float(per_threshold[k, 0])
    return scores


def ranking_scores(recommended: list[np.ndarray], held_out: list[np.ndarray], k: int, catalogue: int,
                   popularity: np.ndarray) -> dict[str, float]:
    """How well each user's top-``k`` list ranks the items the user went on to have, averaged
    over the users with held-out items.

    Args:
        recommended: per user, the items recommended, best first (the first ``k`` are read).
        held_out: per user, the items held out (what the user did next).
        k: the length of the lists scored.
        catalogue: how many items could have been recommended (for ``coverage``).
        popularity: each item's count of training interactions (for ``popularity``).

    Returns:
        ``recall`` (the share of a user's held-out items in the list), ``ndcg`` (the list's
        discounted gain, 1 / log2(position + 1) per hit, over the best a list could reach:
        ``min(k, held out)`` hits first), ``map`` (the precision at each hit's position, summed
        over ``min(k, held out)``), ``hit_rate`` (the share of users with a hit), ``coverage``
        (the share of the catalogue in any list) and ``popularity`` (the mean training
        interactions of the items recommended), each with ``@k`` in its name.

    >>> found = ranking_scores([np.array([3, 1, 2])], [np.array([1, 5])], 3, 10, np.arange(10))
    >>> {name: round(value, 4) for name, value in found.items()}
    {'recall@3': 0.5, 'ndcg@3': 0.3869, 'map@3': 0.25, 'hit_rate@3': 1.0, 'coverage@3': 0.3, 'popularity@3': 2.0}
    """
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    recall, ndcg, average, hits, shown, popular = [], [], [], [], set(), []
    for ranked, truth in zip(recommended, held_out):
        truth = set(np.asarray(truth).tolist())
        if not truth:
            continue
        ranked = np.asarray(ranked)[:k]
        hit = np.array([item in truth for item in ranked.tolist()], bool)
        best = min(k, len(truth))
        recall.append(hit.sum() / len(truth))
        ndcg.append(float((discounts[: len(hit)] * hit).sum() / discounts[:best].sum()))
        precision = np.cumsum(hit) / np.arange(1, len(hit) + 1)
        average.append(float((precision * hit).sum() / best))
        hits.append(bool(hit.any()))
        shown.update(ranked.tolist())
        popular.extend(np.asarray(popularity)[ranked].tolist())
    if not recall:
        raise ValueError("no user has held-out items to score the lists against")
    return {f"recall@{k}": float(np.mean(recall)), f"ndcg@{k}": float(np.mean(ndcg)),
            f"map@{k}": float(np.mean(average)), f"hit_rate@{k}": float(np.mean(hits)),
            f"coverage@{k}": len(shown) / catalogue, f"popularity@{k}": float(np.mean(popular)) if popular else 0.0}
