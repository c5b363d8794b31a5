"""Speech recognition on the built-in ``spoken_numbers``: strings of 2 to 6 digits read out by
eSpeak NG voices, the test clips spoken by the 10 voices never heard in training. The examples in
examples/speech/ (``spoken_numbers_crnn``, ``spoken_numbers_transformer``), each over several
seeds, and the CRNN without SpecAugment (``crnn_plain``: what the masks are worth on unheard
voices).

Each run trains once; its test clips are then transcribed by the best path and by CTC prefix beam
search of ``--beam`` with the same network. Prints the median over the seeds of the word and
character error rates (jiwer) and the share of clips transcribed exactly for each search, each
seed's word error rate, and the wall time of training.

Run: ``python bench/transcription.py [--seeds 3] [--models crnn,crnn_plain,transformer] [--beam 4]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

import layerforge as lf
from layerforge.metrics import transcription_scores
from layerforge.tasks.base import graph_runner, input_arrays

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "speech"
MODELS = {"crnn": ("spoken_numbers_crnn", []),
          "crnn_plain": ("spoken_numbers_crnn", ["data.augment.time_mask=0", "data.augment.freq_mask=0"]),
          "transformer": ("spoken_numbers_transformer", [])}


def measured(name: str, seed: int, beam: int, runs: Path) -> dict:
    example, overrides = MODELS[name]
    spec = lf.load_spec(EXAMPLES / f"{example}.yaml", overrides=[f"seed={seed}", *overrides])
    started = time.perf_counter()
    run = lf.train(spec, runs_dir=runs)
    seconds = time.perf_counter() - started
    model, task = run.predictor.model, run.predictor.task
    inputs, y = run.held_out("test")
    references = task.references(y)
    found = {"seconds": seconds, "epochs": run.metrics["epochs"]}
    for label, size in (("path", 1), (f"beam{beam}", beam)):
        search = task.decoding().searching(size)
        started = time.perf_counter()
        answers = search.texts(search.outputs(graph_runner(model), input_arrays(inputs)))
        found[label] = {**transcription_scores(answers, references), "seconds": time.perf_counter() - started}
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--beam", type=int, default=4)
    args = parser.parse_args()
    print(f"{'model':<12} {'search':<7} {'wer':>7} {'cer':>7} {'exact':>7} {'decode s':>9}  wer per seed; train s")
    with tempfile.TemporaryDirectory() as folder:
        for name in args.models.split(","):
            results = [measured(name, seed, args.beam, Path(folder)) for seed in range(args.seeds)]
            for label in ("path", f"beam{args.beam}"):
                median = {key: float(np.median([r[label][key] for r in results]))
                          for key in ("wer", "cer", "exact_match", "seconds")}
                seeds = " ".join(f"{r[label]['wer']:.4f}" for r in results)
                train = " ".join(f"{r['seconds']:.0f}" for r in results)
                print(f"{name:<12} {label:<7} {median['wer']:>7.4f} {median['cer']:>7.4f} "
                      f"{median['exact_match']:>7.3f} {median['seconds']:>9.1f}  {seeds}; {train}", flush=True)


if __name__ == "__main__":
    main()
