"""Sequence-to-sequence: answer a source text with a target text (translation, date
normalisation, numbers in words), a token at a time.

Training reads each answer with teacher forcing: the network sees the start token and the
target's tokens before each position, and is scored by cross-entropy against the next token
(with label smoothing; padding after the end is ignored). Evaluation writes the answers as
``predict`` does, by the run's search (``data.decoding``: greedy or beam search), and scores
them against the targets with sacreBLEU's BLEU and chrF and the share answered exactly.
"""

from __future__ import annotations

import numpy as np

from ..decodings import Texts
from ..errors import SpecError
from ..figures import Note, Picture, Table
from ..metrics import sequence_scores
from .base import Searched, input_arrays

LABEL_SMOOTHING = 0.1
SHOWN_ROWS = 12  # rows of the report's tables
MAPPED_ROWS = 3  # rows whose attention the report draws


class Seq2SeqTask(Searched):
    """Answer each source text with a target text. Metrics: ``bleu`` and ``chrf`` (sacreBLEU,
    0-100) and ``exact_match`` (the share of rows answered exactly), all of the answers the
    run's search writes; the loss is the teacher-forced cross-entropy per token."""

    name = "seq2seq"
    default_loss = "cross_entropy"
    trains_on = "sequences"
    target_form = "tokens"
    metrics = {"bleu": True, "chrf": True, "exact_match": True}
    headline = "bleu"
    metric_bounds = {"bleu": (0.0, 100.0), "chrf": (0.0, 100.0), "exact_match": (0.0, 1.0)}
    example = {"data": {"dataset": "dates", "split": {"val": 0.05}},
               "model": {"type": "rnn", "cell": "gru", "hidden_size": 16, "embedding_size": 8}}

    def __init__(self, decoding: Texts, target_length: int):
        self.search, self.target_length = decoding, target_length

    @classmethod
    def of(cls, encoder) -> Seq2SeqTask:
        """The task of a pairs encoder's state: its target tokenizer and search."""
        state = encoder.state
        return cls(Texts(state.target_tokenizer, state.beam_size, state.length_penalty, state.answer_length),
                   state.target_length)

    @property
    def output_size(self) -> int:
        return self.search.end + 1

    # -- targets and training --------------------------------------------------------------------

    def encode_targets(self, labels, source: str | None = None) -> np.ndarray:
        """Target ids (rows, target_length): the start token, the text's tokens (cut to fit), the
        end token, then padding."""
        tokenizer, room = self.search.tokenizer, self.target_length - 2
        ids = np.zeros((len(labels), self.target_length), dtype=np.int64)
        for row, text in enumerate(np.asarray(labels, dtype=object).tolist()):
            tokens = tokenizer.encode("" if text is None else str(text))[:room]
            ids[row, 0] = self.search.start
            ids[row, 1 : 1 + len(tokens)] = tokens
            ids[row, 1 + len(tokens)] = self.search.end
        return ids

    def own_loss(self, loss_spec):
        """Cross-entropy per answer token (padding ignored), with label smoothing (default 0.1)."""
        if loss_spec is not None and loss_spec.name != self.default_loss:
            raise SpecError("train.loss: a seq2seq run learns by cross-entropy on each next token; remove train.loss "
                            "or set its label_smoothing")
        import torch.nn.functional as F

        smoothing = LABEL_SMOOTHING if loss_spec is None or loss_spec.label_smoothing is None \
            else loss_spec.label_smoothing

        def loss(outputs, y):
            return F.cross_entropy(outputs.flatten(0, 1).float(), y.flatten(), ignore_index=0,
                                   label_smoothing=smoothing)

        return loss

    def objective(self, loss_fn):
        """Teacher forcing: the answer's tokens before each position in, the next one scored."""

        def loss(model, inputs: tuple, y):
            return loss_fn(model(*inputs, y[:, :-1]), y[:, 1:])

        return loss

    # -- evaluation and answers ------------------------------------------------------------------

    def references(self, y) -> list[str]:
        """The target texts of encoded targets (as the target tokenizer reads them)."""
        return self.search.texts(np.asarray(y.cpu() if hasattr(y, "cpu") else y)[:, 1:])

    def scores(self, outputs, y) -> dict[str, float]:
        return sequence_scores(self.search.texts(np.asarray(outputs)), self.references(y))

    def loss_weight(self, y) -> int:
        """The loss is per answer token (padding after the end ignored): a batch weighs its tokens."""
        return int((y[:, 1:] != 0).sum())

    def report_blocks(self, model, held_out, *, encoder, pictures, target):
        """The test rows answered worst (by chrF), and a few answered at random."""
        found = held_out()
        if found is None:
            return [Note("the run has no test or validation rows to show")]
        inputs, y = found
        answers = self.search.texts(self.answer_ids(model, inputs))
        references = self.references(y)
        sources = [encoder.tokenizer.decode(row[: int(n)].tolist())
                   for row, n in zip(np.asarray(inputs[0].cpu()), np.asarray(inputs[1].cpu()))]
        import sacrebleu

        chrf = [sacrebleu.sentence_chrf(a, [r]).score for a, r in zip(answers, references)]
        worst = np.argsort(chrf, kind="stable")[:SHOWN_ROWS]
        header = ["source", "target", "answer", "chrF"]
        rows = [[sources[i], references[i], answers[i], round(chrf[i], 1)] for i in worst if chrf[i] < 100]
        blocks = [Table(header, rows, "the rows answered worst (lowest chrF)")] if rows else \
            [Note("every row shown was answered exactly")]
        shown = np.random.default_rng(0).permutation(len(answers))[:SHOWN_ROWS]
        blocks.append(Table(header, [[sources[i], references[i], answers[i], round(chrf[i], 1)] for i in shown],
                            "rows drawn at random"))
        blocks.append(Picture("attention maps of three rows drawn at random", self.attention_picture(
            model, inputs, shown[:MAPPED_ROWS], encoder)))
        return blocks

    def attention_picture(self, model, inputs: tuple, rows: np.ndarray, encoder) -> bytes:
        """The attention of each token of the answers to ``rows`` (and of their end) to the
        source's tokens, as the network computed while writing them."""
        import torch

        from ..figures.charts import attention_maps

        x, lengths = (torch.as_tensor(array[rows]) for array in input_arrays(inputs[:2]))
        ids = self.answer_ids(model, (x, lengths))
        maps = []
        device = next(model.parameters()).device
        for row, answer in enumerate(ids):
            tokens = [int(t) for t in answer if t]
            prefix = torch.tensor([[self.search.start, *tokens]], device=device)
            with torch.inference_mode():
                weights = model.attention(x[row : row + 1].to(device), lengths[row : row + 1].to(device), prefix)
            length = int(lengths[row])
            maps.append((weights[0, :, :length].float().cpu().numpy(),
                         [encoder.tokenizer.token(int(t)) for t in x[row, :length]],
                         [self.search.tokenizer.token(t) for t in tokens] + ["</s>"]))
        return attention_maps(maps)
