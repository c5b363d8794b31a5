"""Sequence-to-sequence: text pairs from a table, answers written by the run's search, the
teacher-forced loss, and what a spec may and may not ask of an encoder-decoder."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import layerforge as lf
from layerforge.data.builtin import load_pairs
from layerforge.data.pairs import held_out_styles
from layerforge.decodings import Texts, from_json
from layerforge.errors import DataError, SpecError

WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def _spelled(path, rows: int = 600, seed: int = 0):
    """Digits spelled out in words ("three one four") and the digits ("314")."""
    rng = np.random.default_rng(seed)
    numbers = [rng.integers(0, 10, rng.integers(1, 6)) for _ in range(rows)]
    frame = pd.DataFrame({"words": [" ".join(WORDS[d] for d in n) for n in numbers],
                          "digits": ["".join(map(str, n)) for n in numbers]})
    frame.to_csv(path, index=False)
    return frame


SPEC = {"model": {"type": "rnn", "cell": "gru", "hidden_size": 48, "embedding_size": 16, "bidirectional": True},
        "train": {"epochs": 25, "batch_size": 32, "optimizer": {"name": "adam", "lr": 0.01}, "report": False}}


@pytest.fixture(scope="module")
def spelled_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("pairs")
    _spelled(root / "spelled.csv")
    spec = {"data": {"path": str(root / "spelled.csv"), "source": "words", "target": "digits",
                     "tokenizer": {"kind": "word"}, "target_tokenizer": {"kind": "char"},
                     "decoding": {"beam_size": 3}}, **SPEC}
    return lf.train(spec, runs_dir=root / "runs")


def test_an_encoder_decoder_learns_to_write_spelled_digits(spelled_run, tmp_path):
    run = spelled_run
    assert run.manifest.task == "seq2seq" and run.metrics["test"]["exact_match"] >= 0.9
    assert run.predict(["three one four", "nine nine zero"]).tolist() == ["314", "990"]
    table = run.predict_table(pd.DataFrame({"words": ["seven", "two eight"]}, index=[10, 11]))
    assert table["digits"].tolist() == ["7", "28"] and table.index.tolist() == [10, 11]
    # evaluation on new rows that carry their targets decodes them with the same search
    fresh = _spelled(tmp_path / "fresh.csv", rows=80, seed=5)
    scores = run.evaluate(str(tmp_path / "fresh.csv"))
    assert scores["rows"] == len(fresh) and scores["exact_match"] >= 0.9 and 0 <= scores["chrf"] <= 100


def test_beam_search_answers_at_least_as_likely_as_greedy(spelled_run):
    task, model = spelled_run.predictor.task, spelled_run.predictor.model
    inputs, _ = spelled_run.held_out("test")
    from layerforge.tasks.base import graph_runner, input_arrays

    run, arrays = graph_runner(model), input_arrays(inputs)
    greedy, beam = task.decoding().searching(1), task.decoding().searching(4)
    assert beam.beam_size == 4 and task.decoding().beam_size == 3

    def log_likelihood(ids: np.ndarray) -> np.ndarray:  # of each answer and its end, by the network
        memory = run("encoder", arrays[:2])
        total = np.zeros(len(ids))
        for row, answer in enumerate(ids):
            tokens = [int(t) for t in answer if t] + [greedy.end]
            prefix = np.array([[greedy.start] + tokens], np.int64)
            for step, token in enumerate(tokens):
                scores = run("decoder", (memory[row : row + 1], arrays[1][row : row + 1], prefix[:, : step + 1]))
                total[row] += scores[0, token]
        return total

    found_greedy, found_beam = greedy.outputs(run, arrays), beam.outputs(run, arrays)
    assert (log_likelihood(found_beam) >= log_likelihood(found_greedy) - 1e-4).mean() >= 0.95


def test_targets_are_the_start_the_tokens_the_end_and_padding():
    texts = Texts({"tokenizer": "char", "vocab": ["<pad>", "<unk>", "1", "2"], "lowercase": False},
                  answer_length=5)
    from layerforge.tasks.seq2seq import Seq2SeqTask

    task = Seq2SeqTask(texts, target_length=6)
    ids = task.encode_targets(pd.Series(["12", "2212121", "x"]))
    assert ids.tolist() == [[4, 2, 3, 5, 0, 0], [4, 3, 3, 2, 3, 5], [4, 1, 5, 0, 0, 0]]
    assert task.output_size == 6 and task.references(ids) == ["12", "2212", "<unk>"]
    # padding after the end costs nothing: only the tokens up to the end are scored
    loss = task.own_loss(None)
    logits = torch.zeros(1, 5, 6)
    logits[0, torch.arange(3), torch.tensor([2, 3, 5])] = 50.0
    padded = torch.tensor([[2, 3, 5, 0, 0]])
    assert float(loss(logits, padded)) == pytest.approx(float(loss(logits[:, :3], padded[:, :3])))
    assert from_json(texts.to_json()).to_json() == texts.to_json()


def test_a_search_over_a_step_table_finds_what_it_should():
    # the decoder's log-probabilities depend only on the last token: 0 pad, 1 unk, 2 "a", 3 "b", 4 start, 5 end
    table = np.log(np.array([[1e-9, 1e-9, .3, .3, 1e-9, .4]] * 4 + [[1e-9, 1e-9, .55, .45, 1e-9, 1e-9]] * 2))

    def run(name, arrays):
        if name == "encoder":
            return np.zeros((len(arrays[0]), 1, 1), np.float32)
        return table[arrays[2][:, -1]]

    texts = Texts({"tokenizer": "char", "vocab": ["<pad>", "<unk>", "a", "b"]}, answer_length=4)
    rows = (np.ones((2, 1), np.int64), np.ones(2, np.int64))
    assert texts.texts(texts.outputs(run, rows)) == ["a", "a"]  # after the start: a (.55), then the end (.4)
    assert texts.outputs(run, (np.zeros((0, 1), np.int64), np.zeros(0, np.int64))).shape == (0, 4)


def test_pairs_from_a_table_name_their_columns_and_refuse_empty_targets(tmp_path):
    frame = _spelled(tmp_path / "spelled.csv", rows=50)
    base = {"model": {"type": "rnn", "hidden_size": 8, "embedding_size": 8}, "train": {"epochs": 1}}
    with pytest.raises(DataError, match="data.source: .* has no column 'word'"):
        lf.train({"data": {"path": str(tmp_path / "spelled.csv"), "source": "word", "target": "digits"}, **base},
                 runs_dir=tmp_path / "runs")
    frame.loc[7, "digits"] = None
    frame.to_csv(tmp_path / "holes.csv", index=False)
    with pytest.raises(DataError, match="target text of row 8 is empty"):
        lf.train({"data": {"path": str(tmp_path / "holes.csv"), "source": "words", "target": "digits"}, **base},
                 runs_dir=tmp_path / "runs")
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_a_spec_asks_only_what_its_data_and_model_take(tmp_path):
    _spelled(tmp_path / "spelled.csv", rows=50)
    pairs = {"path": str(tmp_path / "spelled.csv"), "source": "words", "target": "digits"}
    with pytest.raises(SpecError, match="model.decoder_layers: is for text pairs"):
        lf.load_spec({"data": {"dataset": "iris"}, "model": {"type": "transformer", "decoder_layers": 2}})
    with pytest.raises(SpecError, match="model.attention: is the encoder-decoder's"):
        lf.load_spec({"data": {"dataset": "mnist1d"}, "model": {"type": "rnn", "attention": "bahdanau"}})
    with pytest.raises(SpecError, match="cannot read pairs data"):
        lf.load_spec({"data": pairs, "model": {"type": "mlp"}})
    with pytest.raises(DataError, match="data.decoding.max_length: the model is built for answers of up to"):
        lf.train({"data": {**pairs, "decoding": {"max_length": 500}}, "model": {"type": "rnn"},
                  "train": {"epochs": 1}}, runs_dir=tmp_path / "runs")


def test_the_dates_test_rows_are_styles_never_seen_in_training():
    frame, test = load_pairs("dates")
    held = set(held_out_styles())
    assert set(frame["style"].iloc[test]) == held
    train = frame.drop(index=test)
    assert not held & set(train["style"])
    locales = {style.split("/")[0] for style in held}
    formats = {style.split("/", 1)[1] for style in held}
    assert locales <= {s.split("/")[0] for s in train["style"]} and formats <= {s.split("/", 1)[1] for s in train["style"]}


@pytest.mark.parametrize("model", [{"type": "rnn", "cell": "lstm", "hidden_size": 8, "embedding_size": 8,
                                    "bidirectional": True, "num_layers": 2, "attention": "bahdanau"},
                                   {"type": "transformer", "d_model": 16, "num_heads": 2, "num_layers": 1}])
def test_padding_after_a_source_changes_nothing_and_answers_see_only_their_past(model):
    from layerforge.models import Inputs, build_model

    inputs = Inputs(kind="pairs", vocab_size=20, length=10, variable_length=True, target_vocab_size=12,
                    target_length=8)
    torch.manual_seed(0)
    network = build_model(model, inputs, 12).eval()
    x, lengths = torch.randint(1, 20, (3, 10)), torch.tensor([4, 10, 1])
    prefix = torch.randint(1, 12, (3, 6))
    junk = x.clone()
    junk[0, 4:], junk[2, 1:] = 7, 3  # other tokens after each row's length
    with torch.no_grad():
        logits = network(x, lengths, prefix)
        assert torch.allclose(logits, network(junk, lengths, prefix), atol=1e-5)
        changed = prefix.clone()
        changed[:, 4:] = 1  # later answer tokens do not reach earlier positions
        assert torch.allclose(logits[:, :4], network(x, lengths, changed)[:, :4], atol=1e-5)
        step = network.next_log_probs(network.encode_rows(x, lengths), lengths, prefix[:, :3])
        assert torch.allclose(step, logits[:, 2].log_softmax(-1), atol=1e-5)


def test_predict_writes_answers_by_the_beam_asked_for_through_either_backend(spelled_run, tmp_path):
    from typer.testing import CliRunner

    from layerforge import runtime
    from layerforge.cli import app

    run = spelled_run
    rows = tmp_path / "rows.csv"
    pd.DataFrame({"words": ["three one four", "nine nine zero", "seven"]}).to_csv(rows, index=False)
    run.export()
    found = {}
    for backend in ("torch", "onnx"):
        for beam in ("1", "5"):
            out = tmp_path / f"{backend}-{beam}.csv"
            result = CliRunner().invoke(app, ["predict", str(run.path), str(rows), "--out", str(out), "--backend",
                                              backend, "--beam-size", beam])
            assert result.exit_code == 0, result.output
            found[backend, beam] = pd.read_csv(out, dtype=str)["digits"].tolist()
    assert found["torch", "1"] == found["onnx", "1"] == ["314", "990", "7"]
    assert found["torch", "5"] == found["onnx", "5"]
    greedy = run.predictor.searching(1)
    assert greedy.task.decoding().beam_size == 1 and run.predictor.task.decoding().beam_size == 3
    assert runtime.load(run.path / "export").searching(1).predict(rows).tolist() == ["314", "990", "7"]


def test_a_beam_size_for_a_run_that_does_not_search_is_refused(tmp_path):
    from layerforge.errors import DataError as Refused

    run = lf.train({"data": {"dataset": "iris"}, "model": {"layers": [8]}, "train": {"epochs": 1}}, runs_dir=tmp_path)
    with pytest.raises(Refused, match="--beam-size is for runs that write their answers a token at a time"):
        run.predictor.searching(4)
    assert run.predictor.searching(None) is run.predictor


def test_a_parallel_text_file_trains_with_one_vocabulary_for_both_sides(tmp_path):
    frame = _spelled(tmp_path / "spelled.csv")
    lines = [f"{words}\t{digits}\tCC-BY 2.0 (France) Attribution" for words, digits in zip(frame["words"],
                                                                                          frame["digits"])]
    (tmp_path / "spelled.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    spec = {"data": {"path": str(tmp_path / "spelled.txt"), "kind": "pairs", "target_tokenizer": "shared"}, **SPEC}
    run = lf.train(spec, runs_dir=tmp_path / "runs")
    state = run.manifest.preprocessing
    assert state.target_tokenizer["vocab"] == state.vocab and "3" in state.vocab and "t" in state.vocab
    assert run.metrics["test"]["exact_match"] >= 0.9, run.metrics["test"]
    (tmp_path / "ask.txt").write_text("three one four\nnine nine zero\n", encoding="utf-8")
    assert list(run.predict(tmp_path / "ask.txt")) == list(run.predict(["three one four", "nine nine zero"]))
    assert set(run.evaluate(tmp_path / "spelled.txt")) >= {"exact_match", "bleu"}
    (tmp_path / "torn.txt").write_text("one\t1\ntwo 2\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"torn\.txt: line 2 holds no tab"):
        lf.train({**spec, "data": {**spec["data"], "path": str(tmp_path / "torn.txt")}}, runs_dir=tmp_path / "runs")
