"""Transcription: answer each clip of speech with the text said in it (speech recognition).

The network gives every frame's logits over the blank and the transcript's tokens, and learns by
connectionist temporal classification (the ``ctc`` loss: every alignment of the frames that
spells the transcript counts). Evaluation writes the transcripts as ``predict`` does, by the
run's search (``data.decoding.beam_size``: the best path, or prefix beam search), and scores
them with word and character error rates (jiwer) and the share transcribed exactly.
"""

from __future__ import annotations

import numpy as np

from ..decodings import Transcripts
from ..figures import Note, Table
from ..metrics import transcription_scores
from .base import Searched

SHOWN_ROWS = 12  # rows of the report's tables


class TranscriptionTask(Searched):
    """Answer each clip with its transcript. Metrics: ``wer`` and ``cer`` (word and character
    error rates: edits over the references' words or characters, lower is better) and
    ``exact_match``, all of the transcripts the run's search writes; the loss is CTC's per
    target token."""

    name = "transcription"
    default_loss = "ctc"
    trains_on = "transcripts"
    target_form = "alignments"
    metrics = {"wer": False, "cer": False, "exact_match": True}
    headline = "wer"
    metric_bounds = {"wer": (0.0, None), "cer": (0.0, None), "exact_match": (0.0, 1.0)}
    example = {"data": {"dataset": "spoken_numbers", "split": {"val": 0.05}},
               "model": {"type": "rnn", "cell": "gru", "hidden_size": 16}}

    def __init__(self, decoding: Transcripts, target_length: int):
        self.search, self.target_length = decoding, target_length

    @classmethod
    def spec_problems(cls, spec) -> list[str]:
        problems = super().spec_problems(spec)
        decoding = spec.data.decoding
        if decoding.max_length is not None or decoding.length_penalty != 1.0:
            problems.append("data.decoding: a transcript is searched for over the clip's frames, which bound its "
                            "length; only beam_size applies (remove max_length and length_penalty)")
        return problems

    @classmethod
    def of(cls, encoder) -> TranscriptionTask:
        """The task of a speech encoder's state: its transcripts' tokenizer and search."""
        state = encoder.state
        return cls(Transcripts(state.tokenizer, state.beam_size), state.target_length)

    @property
    def output_size(self) -> int:
        return self.search.tokenizer.vocab_size  # id 0, the tokenizer's padding, is the blank

    # -- targets -----------------------------------------------------------------------------------

    def encode_targets(self, labels, source: str | None = None) -> np.ndarray:
        """Target ids (rows, target_length): the transcript's tokens (cut to fit), then zeros."""
        tokenizer = self.search.tokenizer
        ids = np.zeros((len(labels), self.target_length), dtype=np.int64)
        for row, text in enumerate(np.asarray(labels, dtype=object).tolist()):
            tokens = tokenizer.encode("" if text is None else str(text))[: self.target_length]
            ids[row, : len(tokens)] = tokens
        return ids

    def references(self, y) -> list[str]:
        """The transcripts of encoded targets (as the tokenizer reads them)."""
        return self.search.texts(np.asarray(y.cpu() if hasattr(y, "cpu") else y))

    # -- evaluation --------------------------------------------------------------------------------

    def scores(self, outputs, y) -> dict[str, float]:
        return transcription_scores(self.search.texts(np.asarray(outputs)), self.references(y))

    def report_blocks(self, model, held_out, *, encoder, pictures, target):
        """The test clips transcribed worst (by character error rate), and a few at random."""
        found = held_out()
        if found is None:
            return [Note("the run has no test or validation rows to show")]
        inputs, y = found
        answers = self.search.texts(self.answer_ids(model, inputs))
        references = self.references(y)
        import jiwer

        errors = [jiwer.cer(r, a) if r else float(bool(a)) for a, r in zip(answers, references)]
        header = ["clip", "transcript", "answer", "CER"]
        worst = np.argsort(errors, kind="stable")[::-1][:SHOWN_ROWS]
        rows = [[int(i) + 1, references[i], answers[i], round(errors[i], 3)] for i in worst if errors[i] > 0]
        blocks = [Table(header, rows, "the clips transcribed worst (highest character error rate)")] if rows else \
            [Note("every clip was transcribed exactly")]
        shown = np.sort(np.random.default_rng(0).permutation(len(answers))[:SHOWN_ROWS])
        blocks.append(Table(header, [[int(i) + 1, references[i], answers[i], round(errors[i], 3)] for i in shown],
                            "clips drawn at random"))
        return blocks
