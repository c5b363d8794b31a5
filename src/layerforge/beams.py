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
    step; a prefix that ends leaves the beam as a finished sequence. A row is done when it has
    ``beam_size`` finished sequences or its prefixes reach ``max_length`` tokens; its answer is
    the finished sequence or prefix cut at ``max_length`` with the highest score, the sum of
    its log-probabilities divided by ``length ** length_penalty`` (0: the plain sum, which
    favours short answers; 1: the mean per token). Lengths count the end token.

    Returns each row's tokens without the start and end tokens; with ``beam_size`` 1 it is
    ``greedy``'s answer.
    """
    if beam_size < 1:
        raise ValueError(f"beam_size: expected at least 1, got {beam_size}")

    def scored(total: float, length: int) -> float:
        return total / max(length, 1) ** length_penalty

    beams = [[((start,), 0.0)] for _ in range(rows)]  # per row: (prefix, summed log-probability)
    finished: list[list[tuple[tuple[int, ...], float]]] = [[] for _ in range(rows)]
    for _ in range(max_length):
        live = [row for row in range(rows) if beams[row] and len(finished[row]) < beam_size]
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
                if len(kept) == beam_size or len(finished[row]) >= beam_size:
                    break
            beams[row] = kept
    answers = []
    for row in range(rows):
        cut = [item for item in beams[row] if len(item[0]) - 1 == max_length]  # reached the length unended
        pool = finished[row] + cut or beams[row]
        best, _ = max(pool, key=lambda item: scored(item[1], len(item[0]) - 1))
        answers.append([token for token in best[1:] if token != end])
    return answers
