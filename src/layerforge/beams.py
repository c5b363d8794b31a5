"""Decoding a sequence a token at a time: greedy search and beam search over a step function.
Numpy only, so that training's evaluation, ``predict`` on either backend, the torch-free runtime
and the service all search the same way; only the step function (the network's decoder, in
PyTorch or as an ONNX graph) differs.

A step function takes the prefixes decoded so far, ``(n, t)`` token ids that all start with the
start token, and for each prefix the source row it belongs to, ``(n,)``; it returns the
log-probabilities of the next token, ``(n, vocabulary)``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Step = Callable[[np.ndarray, np.ndarray], np.ndarray]


def greedy(step: Step, rows: int, *, start: int, end: int, max_length: int) -> list[list[int]]:
    """The likeliest next token at every step, for ``rows`` source rows at once, until each row
    has ended (``end``) or holds ``max_length`` tokens. Returns each row's tokens without the
    start and end tokens.

    >>> table = np.log(np.array([[.1, .2, .7], [.8, .1, .1], [.3, .3, .4]]))  # next token by last token
    >>> greedy(lambda prefixes, rows: table[prefixes[:, -1]], 1, start=0, end=1, max_length=5)
    [[2, 2, 2, 2, 2]]
    """
    prefixes = np.full((rows, 1), start, dtype=np.int64)
    alive = np.ones(rows, dtype=bool)
    found: list[list[int]] = [[] for _ in range(rows)]
    for _ in range(max_length):
        which = np.flatnonzero(alive)
        if not len(which):
            break
        chosen = step(prefixes[which], which).argmax(axis=1)  # (n,)
        for row, token in zip(which, chosen.tolist()):
            if token == end:
                alive[row] = False
            else:
                found[row].append(token)
        column = np.full(rows, end, dtype=np.int64)
        column[which] = chosen
        prefixes = np.concatenate([prefixes, column[:, None]], axis=1)  # (rows, t + 1)
    return found


def beam(step: Step, rows: int, *, start: int, end: int, max_length: int, beam_size: int,
         length_penalty: float = 1.0) -> list[list[int]]:
    """Beam search: for each source row, the ``beam_size`` likeliest prefixes are kept at every
    step; a prefix that ends leaves the beam as a finished sequence, and the ``beam_size`` best
    finished sequences are kept. A sequence's score is the sum of its log-probabilities divided
    by ``length ** length_penalty`` (0: the plain sum, which favours short answers; 1: the mean
    per token); lengths count the end token. A row is done when its prefixes reach
    ``max_length`` tokens, or when it holds ``beam_size`` finished sequences and its best live
    prefix, scored as if it ended at the next token, is no better than the worst of them (a
    prefix that has not ended yet is not dropped for finished sequences that score worse). Its
    answer is the finished sequence, or prefix cut at ``max_length``, with the highest score.

    Returns each row's tokens without the start and end tokens; with ``beam_size`` 1 it is
    ``greedy``'s answer.
    """
    if beam_size < 1:
        raise ValueError(f"beam_size: expected at least 1, got {beam_size}")

    def scored(total: float, length: int) -> float:
        return total / max(length, 1) ** length_penalty

    def ranked(items: list) -> list:
        return sorted(items, key=lambda item: -scored(item[1], len(item[0]) - 1))

    beams = [[((start,), 0.0)] for _ in range(rows)]  # per row: (prefix, summed log-probability)
    finished: list[list[tuple[tuple[int, ...], float]]] = [[] for _ in range(rows)]
    done = [False] * rows
    for _ in range(max_length):
        live = [row for row in range(rows) if beams[row] and not done[row]]
        if not live:
            break
        owners = np.array([row for row in live for _ in beams[row]], dtype=np.int64)
        prefixes = np.array([prefix for row in live for prefix, _ in beams[row]], dtype=np.int64)  # (n, t)
        log_probs = step(prefixes, owners)  # (n, V)
        at = 0
        for row in live:
            candidates = []
            for prefix, total in beams[row]:
                scores = log_probs[at]
                at += 1
                for token in np.argsort(-scores, kind="stable")[:beam_size].tolist():
                    candidates.append((prefix + (token,), total + float(scores[token])))
            candidates.sort(key=lambda item: -item[1])
            kept = []
            for prefix, total in candidates:
                if prefix[-1] == end:
                    finished[row].append((prefix, total))
                else:
                    kept.append((prefix, total))
                if len(kept) == beam_size:
                    break
            finished[row] = ranked(finished[row])[:beam_size]
            beams[row] = kept
            if len(finished[row]) == beam_size and kept:
                worst = scored(finished[row][-1][1], len(finished[row][-1][0]) - 1)
                done[row] = max(scored(total, len(prefix)) for prefix, total in kept) <= worst
    answers = []
    for row in range(rows):
        cut = [item for item in beams[row] if len(item[0]) - 1 == max_length]  # reached the length unended
        pool = finished[row] + cut or beams[row]
        best, _ = ranked(pool)[0]
        answers.append([token for token in best[1:] if token != end])
    return answers


def ctc_greedy(log_probs: np.ndarray, blank: int = 0) -> list[int]:
    """The likeliest token at each frame of one row (frames, vocabulary), repeats merged and
    blanks dropped: connectionist temporal classification's best path.

    >>> ctc_greedy(np.log(np.array([[.1, .9], [.2, .8], [.9, .1], [.3, .7]])))
    [1, 1]
    """
    path = np.asarray(log_probs).argmax(axis=1)
    kept = np.ones(len(path), dtype=bool)
    kept[1:] = path[1:] != path[:-1]
    return [int(t) for t in path[kept & (path != blank)]]


def _adder(grown: dict):
    """``add(prefix, blank_score, token_score)``: log-sums the scores into ``grown[prefix]``."""

    def add(prefix: tuple[int, ...], blank_score: float = -np.inf, token_score: float = -np.inf) -> None:
        old = grown.setdefault(prefix, [-np.inf, -np.inf])
        old[0], old[1] = np.logaddexp(old[0], blank_score), np.logaddexp(old[1], token_score)

    return add


def ctc_beam(log_probs: np.ndarray, beam_size: int, blank: int = 0) -> list[int]:
    """Prefix beam search over one row's frames (frames, vocabulary): the ``beam_size`` likeliest
    labellings are kept at every frame, each scored by the summed probability of all its
    alignments (a path ending in a blank and one ending in its last token, kept apart so that a
    repeated token needs a blank between its two). Returns the likeliest labelling found; with a
    beam as wide as every labelling, the likeliest of all.
    """
    if beam_size < 1:
        raise ValueError(f"beam_size: expected at least 1, got {beam_size}")
    log_probs = np.asarray(log_probs, dtype=np.float64)
    beams: dict[tuple[int, ...], tuple[float, float]] = {(): (0.0, -np.inf)}  # prefix -> (ends blank, ends token)
    candidates = min(beam_size, log_probs.shape[1])
    for frame in log_probs:
        tokens = [int(t) for t in np.argsort(-frame, kind="stable")[: candidates + 1]]
        grown: dict[tuple[int, ...], list[float]] = {}
        add = _adder(grown)
        for prefix, (ends_blank, ends_token) in beams.items():
            total = np.logaddexp(ends_blank, ends_token)
            add(prefix, blank_score=total + frame[blank])
            for token in tokens:
                if token == blank:
                    continue
                if prefix and token == prefix[-1]:
                    add(prefix, token_score=ends_token + frame[token])  # the same token, held
                    add(prefix + (token,), token_score=ends_blank + frame[token])  # repeated after a blank
                else:
                    add(prefix + (token,), token_score=total + frame[token])
        ranked = sorted(grown.items(), key=lambda item: -np.logaddexp(*item[1]))[:beam_size]
        beams = {prefix: (scores[0], scores[1]) for prefix, scores in ranked}
    best = max(beams.items(), key=lambda item: np.logaddexp(*item[1]))[0]
    return list(best)
