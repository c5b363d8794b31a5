"""Greedy and beam search over a step function, against brute force over every sequence."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from layerforge.beams import beam, greedy

START, END, V = 0, 1, 5


def _markov(seed: int):
    """A step function whose next-token distribution depends on the last token and the row."""
    rng = np.random.default_rng(seed)
    tables = rng.dirichlet(np.full(V, 0.6), size=(3, V))  # (rows, last token, next token)
    tables[:, :, START] = 1e-9  # the start token never comes again
    tables /= tables.sum(axis=2, keepdims=True)
    logs = np.log(tables)
    return lambda prefixes, rows: logs[rows, prefixes[:, -1]], logs


def _best(logs, row: int, max_length: int, length_penalty: float) -> tuple[list[int], float]:
    """Every sequence of at most ``max_length`` tokens (ended, or cut at the length): the best
    by beam search's score."""
    best, best_score = None, -np.inf
    middle = [t for t in range(V) if t not in (START, END)]
    for length in range(0, max_length + 1):
        for body in itertools.product(middle, repeat=length):
            tokens = list(body) + ([END] if length < max_length else [])
            total, last = 0.0, START
            for token in tokens:
                total += logs[row, last, token]
                last = token
            score = total / max(len(tokens), 1) ** length_penalty
            if score > best_score:
                best, best_score = list(body), score
    return best, best_score


@pytest.mark.parametrize("seed", range(6))
def test_a_wide_beam_finds_the_best_sequence_and_a_beam_of_one_is_greedy(seed):
    step, logs = _markov(seed)
    for penalty in (0.0, 1.0):
        wide = beam(step, 3, start=START, end=END, max_length=4, beam_size=V ** 4, length_penalty=penalty)
        for row in range(3):
            assert wide[row] == _best(logs, row, 4, penalty)[0]
    assert beam(step, 3, start=START, end=END, max_length=4, beam_size=1) == \
        greedy(step, 3, start=START, end=END, max_length=4)


def test_beam_search_beats_greedy_where_the_likeliest_first_token_leads_nowhere():
    # from the start, token 2 (0.6) or 3 (0.4); after 2 no next token is likely; after 3 the end is sure
    logs = np.log(np.array([
        [1e-9, 1e-9, 0.6, 0.4, 1e-9],
        [0.2] * 5,
        [1e-9, 0.1, 0.3, 0.3, 0.3],
        [1e-9, 1.0 - 3e-9, 1e-9, 1e-9, 1e-9],
        [1e-9, 0.25, 0.25, 0.25, 0.25],
    ]))
    step = lambda prefixes, rows: logs[prefixes[:, -1]]  # noqa: E731
    assert greedy(step, 1, start=START, end=END, max_length=3) == [[2, 2, 2]]
    assert beam(step, 1, start=START, end=END, max_length=3, beam_size=2, length_penalty=0.0) == [[3]]


def test_greedy_stops_each_row_at_its_end_and_the_step_sees_only_live_rows():
    seen = []

    def step(prefixes, rows):
        seen.append(rows.tolist())
        out = np.full((len(rows), V), -10.0)
        for i, (prefix, row) in enumerate(zip(prefixes, rows)):
            out[i, END if len(prefix) > row else 4] = 0.0  # row r ends after r tokens
        return out

    assert greedy(step, 3, start=START, end=END, max_length=5) == [[], [4], [4, 4]]
    assert seen == [[0, 1, 2], [1, 2], [2]]
    with pytest.raises(ValueError, match="beam_size: expected at least 1"):
        beam(step, 1, start=START, end=END, max_length=2, beam_size=0)


def _labelling_scores(log_probs: np.ndarray, blank: int = 0) -> dict[tuple[int, ...], float]:
    """Every alignment of the frames, summed into the labelling it collapses to (brute force)."""
    frames, vocabulary = log_probs.shape
    found: dict[tuple[int, ...], float] = {}
    for path in itertools.product(range(vocabulary), repeat=frames):
        collapsed = tuple(t for i, t in enumerate(path) if t != blank and (i == 0 or path[i - 1] != t))
        score = float(sum(log_probs[i, t] for i, t in enumerate(path)))
        found[collapsed] = float(np.logaddexp(found.get(collapsed, -np.inf), score))
    return found


@pytest.mark.parametrize("seed", range(8))
def test_ctc_beam_search_finds_the_likeliest_labelling(seed):
    from layerforge.beams import ctc_beam, ctc_greedy

    rng = np.random.default_rng(seed)
    log_probs = np.log(rng.dirichlet(np.full(3, 0.5), size=5))  # 5 frames, blank and 2 tokens
    scores = _labelling_scores(log_probs)
    best = max(scores, key=scores.get)
    assert tuple(ctc_beam(log_probs, beam_size=64)) == best  # as wide as every labelling: exact
    assert scores[tuple(ctc_greedy(log_probs))] <= scores[best]


def test_ctc_greedy_merges_repeats_and_drops_blanks():
    from layerforge.beams import ctc_greedy

    eye = np.log(np.eye(4) * 0.97 + 0.01)
    assert ctc_greedy(eye[[1, 1, 0, 1, 2, 2, 0, 0, 3]]) == [1, 1, 2, 3]
    assert ctc_greedy(eye[[0, 0]]) == []
