"""Sequence-to-sequence on the built-in text pairs: the examples in examples/seq2seq/, each over
several seeds, their test rows answered by greedy search and by beam search.

- ``dates``: dates written in 12 locales and 8 formats to ISO 8601; the test rows are 12 pairs of
  locale and format never seen in training;
- ``numbers_fr``, ``numbers_de``: numbers below a million in English words to French or German
  words; the test rows are numbers drawn at random (a tenth of the set).

Each run trains once (its spec's ``data.decoding``, greedy, picks nothing: training minimises the
teacher-forced loss); its test rows are then answered by greedy search and by beam search of
``--beam`` with the same network. Prints the median over the seeds of exact match, BLEU and chrF
(sacreBLEU) for each search, each seed's exact match, and the wall time of training.

Run: ``python bench/seq2seq.py [--seeds 3] [--sets dates,numbers_fr,numbers_de] [--beam 4]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

import layerforge as lf
from layerforge.metrics import sequence_scores
from layerforge.tasks.base import graph_runner, input_arrays

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "seq2seq"
SETS = ("dates", "numbers_fr", "numbers_de")


def measured(name: str, seed: int, beam: int, runs: Path) -> dict:
    spec = lf.load_spec(EXAMPLES / f"{name}.yaml", overrides=[f"seed={seed}"])
    started = time.perf_counter()
    run = lf.train(spec, runs_dir=runs)
    seconds = time.perf_counter() - started
    model, task = run.predictor.model, run.predictor.task
    inputs, y = run.held_out("test")
    references = task.references(y)
    found = {"seconds": seconds, "epochs": run.metrics["epochs"]}
    for label, size in (("greedy", 1), (f"beam{beam}", beam)):
        search = task.decoding().searching(size)
        started = time.perf_counter()
        answers = search.texts(search.outputs(graph_runner(model), input_arrays(inputs)))
        found[label] = {**sequence_scores(answers, references), "seconds": time.perf_counter() - started}
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--sets", default=",".join(SETS))
    parser.add_argument("--beam", type=int, default=4)
    args = parser.parse_args()
    print(f"{'set':<12} {'search':<8} {'exact':>7} {'bleu':>7} {'chrf':>7} {'decode s':>9}  exact per seed; train s")
    with tempfile.TemporaryDirectory() as folder:
        for name in args.sets.split(","):
            results = [measured(name, seed, args.beam, Path(folder)) for seed in range(args.seeds)]
            for label in ("greedy", f"beam{args.beam}"):
                median = {key: float(np.median([r[label][key] for r in results]))
                          for key in ("exact_match", "bleu", "chrf", "seconds")}
                seeds = " ".join(f"{r[label]['exact_match']:.3f}" for r in results)
                train = " ".join(f"{r['seconds']:.0f}" for r in results)
                print(f"{name:<12} {label:<8} {median['exact_match']:>7.3f} {median['bleu']:>7.2f} "
                      f"{median['chrf']:>7.2f} {median['seconds']:>9.1f}  {seeds}; {train}", flush=True)


if __name__ == "__main__":
    main()
