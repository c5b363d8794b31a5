"""Speech recognition on the built-in ``spoken_numbers``: strings of 2 to 6 digits read out by
eSpeak NG voices, the test clips spoken by the 10 voices never heard in training. The examples in
examples/speech/ (``spoken_numbers_crnn``, ``spoken_numbers_transformer``), each over several
seeds, and the CRNN without SpecAugment (``crnn_plain``: what the masks are worth on unheard
voices).

Each run trains once; its test clips are then transcribed by the best path and by CTC prefix beam
search of ``--beam`` with the same network. Prints the median over the seeds of the word and
character error rates (jiwer) and the share of clips transcribed exactly for each search, each
seed's word error rate, and the wall time of training; and, by the best path, the word error rate
on 240 digit strings said in two accents no training clip has (New York, Lancaster: 12 voice
variants each), a harder shift than unheard voices of the training accents.

Run: ``python bench/transcription.py [--seeds 3] [--models crnn,crnn_plain,transformer] [--beam 4]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

import layerforge as lf
from layerforge.codecs.audio import resampled
from layerforge.data import builtin, speech
from layerforge.metrics import transcription_scores
from layerforge.tasks.base import graph_runner, input_arrays

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "speech"
MODELS = {"crnn": ("spoken_numbers_crnn", []),
          "crnn_plain": ("spoken_numbers_crnn", ["data.augment.time_mask=0", "data.augment.freq_mask=0"]),
          "transformer": ("spoken_numbers_transformer", [])}


def unheard_accents() -> tuple[list[np.ndarray], list[str]]:
    """240 digit strings said in the New York and Lancaster accents (at 16 kHz) and their texts."""
    rng = np.random.default_rng(1)
    lines = []
    for accent in ("en-US-nyc", "en-GB-x-gbclan"):
        for variant in builtin.SPEAKING["variants"]:
            for _ in range(10):
                text = " ".join(speech.DIGITS[int(d)] for d in rng.integers(0, 10, int(rng.integers(2, 7))))
                lines.append((text, f"{accent}+{variant}", int(rng.choice(builtin.SPEAKING["rates"])),
                              int(rng.choice(builtin.SPEAKING["pitches"]))))
    made = speech.said(lines, seed=1)
    return [resampled(clip, made["sample_rate"], 16000) for clip in made["clips"]], made["labels"]


def measured(name: str, seed: int, beam: int, runs: Path, accents) -> dict:
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
    clips, texts = accents
    found["accents"] = transcription_scores(list(run.predictor.searching(1).predict(clips)), texts)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--beam", type=int, default=4)
    args = parser.parse_args()
    accents = unheard_accents()
    print(f"{'model':<12} {'search':<7} {'wer':>7} {'cer':>7} {'exact':>7} {'decode s':>9}  wer per seed; train s")
    with tempfile.TemporaryDirectory() as folder:
        for name in args.models.split(","):
            results = []
            for seed in range(args.seeds):
                results.append(measured(name, seed, args.beam, Path(folder), accents))
                found = results[-1]
                print(f"  {name} seed {seed}: " + "; ".join(
                    f"{label} wer {found[label]['wer']:.4f} cer {found[label]['cer']:.4f}"
                    for label in ("path", f"beam{args.beam}", "accents")) + f"; {found['seconds']:.0f} s", flush=True)
            for label in ("path", f"beam{args.beam}"):
                median = {key: float(np.median([r[label][key] for r in results]))
                          for key in ("wer", "cer", "exact_match", "seconds")}
                seeds = " ".join(f"{r[label]['wer']:.4f}" for r in results)
                train = " ".join(f"{r['seconds']:.0f}" for r in results)
                print(f"{name:<12} {label:<7} {median['wer']:>7.4f} {median['cer']:>7.4f} "
                      f"{median['exact_match']:>7.3f} {median['seconds']:>9.1f}  {seeds}; {train}", flush=True)
            shifted = [r["accents"]["wer"] for r in results]
            print(f"{name:<12} accents wer {np.median(shifted):.4f} ({' '.join(f'{w:.4f}' for w in shifted)}) on "
                  "two accents never heard, by the best path", flush=True)


if __name__ == "__main__":
    main()
