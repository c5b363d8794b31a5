"""Tables larger than memory stream from their file: the same spec keys, held-out rows and a
fitting sample in memory, every training row once per epoch in a fresh order, exact resume, row
errors that name the file's row, and resident memory that does not grow with the file."""

import json
import os
import resource
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import yaml

import layerforge as lf
from layerforge.codecs import tables
from layerforge.data import tablefile
from layerforge.data.prepare import prepare
from layerforge.data.tablefile import TableFile
from layerforge.run.directory import Run
from layerforge.spec.load import load_spec
from layerforge.training.checkpoint import load_weights
from tests.training.test_trainer import StopAfter


def write_parquet(path, rows: int, columns: int, groups: int, seed: int = 0, position: bool = False):
    """A separable two-class table written a row group at a time (never whole in memory)."""
    rng = np.random.default_rng(seed)
    weights = rng.normal(size=columns)
    writer = None
    for group in range(groups):
        start, stop = rows * group // groups, rows * (group + 1) // groups
        x = rng.normal(size=(stop - start, columns)).astype(np.float32)
        frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(columns)])
        if position:
            frame["x0"] = np.arange(start, stop, dtype=np.float32)
        frame["label"] = np.where(x @ weights + 0.3 * rng.normal(size=len(x)) > 0, "yes", "no")
        table = pa.Table.from_pandas(frame, preserve_index=False)
        writer = writer or pq.ParquetWriter(path, table.schema)
        writer.write_table(table)
    writer.close()
    return path


def spec_for(path, **data):
    return {"data": {"path": str(path), "target": "label", **data}, "model": {"layers": [16]},
            "train": {"epochs": 4, "batch_size": 64, "report": False}}


def saved_spec(run):
    return yaml.safe_load((run.path / "spec.yaml").read_text())


def test_a_streamed_table_trains_to_the_accuracy_of_the_same_rows_in_memory(tmp_path):
    path = write_parquet(tmp_path / "rows.parquet", 8000, 12, 8)
    streamed = lf.train(spec_for(path, streaming=True, stream={"held_out_rows": 600, "sample_rows": 2000}),
                        runs_dir=tmp_path / "runs")
    whole = lf.train(spec_for(path, streaming=False), runs_dir=tmp_path / "runs")
    assert streamed.metrics["test"]["accuracy"] > 0.9
    assert streamed.metrics["test"]["accuracy"] >= whole.metrics["test"]["accuracy"] - 0.03
    # validation and test are capped; every other row trains
    assert streamed.manifest.rows == {"train": 6800, "val": 600, "test": 600}
    assert whole.manifest.rows == {"train": 5600, "val": 1200, "test": 1200}
    split = json.loads((streamed.path / "split.json").read_text())
    assert split["plan"] == {"plan": "sampled", "val": 0.15, "test": 0.15, "held_out_rows": 600, "seed": 0,
                             "stratify": True, "shuffle": True}
    assert saved_spec(streamed)["data"]["streaming"] is True
    # held-out rows keep the classes' proportions (stratified)
    labels = pq.read_table(path, columns=["label"]).column(0).to_numpy()
    parts = {name: np.concatenate([np.arange(a, b) for a, b in ranges]) for name, ranges in split["parts"].items()}
    assert abs((labels[parts["test"]] == "yes").mean() - (labels == "yes").mean()) < 0.01
    assert sorted(np.concatenate(list(parts.values())).tolist()) == list(range(8000))
    # held-out rows the run does not keep are read again from the file, by split.json
    kept = streamed.held_out("test")
    (streamed.path / "heldout.safetensors").unlink()
    inputs, y = Run(streamed.path).held_out("test")
    assert np.array_equal(inputs[0], kept[0][0]) and np.array_equal(y, kept[1])
    # the run predicts from its directory like any other
    rows = pd.read_parquet(path).iloc[:50]
    assert (np.asarray(streamed.predict(rows.drop(columns="label"))) == rows["label"].to_numpy()).mean() > 0.8


def test_auto_streams_a_file_too_large_for_the_free_memory(tmp_path, monkeypatch):
    path = write_parquet(tmp_path / "rows.parquet", 3000, 6, 3)
    spec = spec_for(path)
    spec["train"]["epochs"] = 1
    assert saved_spec(lf.train(spec, runs_dir=tmp_path / "runs"))["data"]["streaming"] is False
    monkeypatch.setattr(tablefile, "available_memory", lambda: 100_000)  # the file's values: 3000 x 7 x 8 bytes
    run = lf.train(spec, runs_dir=tmp_path / "runs")
    assert saved_spec(run)["data"]["streaming"] is True
    assert json.loads((run.path / "split.json").read_text())["plan"]["plan"] == "sampled"
    # asked to read it whole, it is refused before reading, with the sizes
    with pytest.raises(lf.DataError, match=r"rows.parquet: does not fit in memory \(about 0 MB of values, 0 MB free\); "
                                           r"stream it from the file instead \(data.streaming: true\)"):
        lf.train({**spec, "data": {**spec["data"], "streaming": False}}, runs_dir=tmp_path / "runs")


def test_free_memory_counts_the_process_own_limit():
    code = ("import resource; from layerforge.data import tablefile; free = tablefile.available_memory(); "
            "used = int(dict(l.split(':', 1) for l in open('/proc/self/status') if ':' in l)['VmData'].split()[0]) * 1024; "
            "resource.setrlimit(resource.RLIMIT_DATA, (used + (100 << 20), resource.RLIM_INFINITY)); "
            "print(free, tablefile.available_memory())")
    before, limited = map(int, subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                              check=True).stdout.split())
    assert before > 200 << 20 and 90 << 20 < limited <= 100 << 20


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_freed_memory_is_kept_for_the_next_step_unless_the_environment_chose(tmp_path):
    code = ("import numpy as np; from layerforge.memory import keep_freed_memory; "
            "data = lambda: int(dict(l.split(':', 1) for l in open('/proc/self/status') if ':' in l)['VmData'].split()[0]); "
            "kept = keep_freed_memory(); before = data(); a = np.ones(20 << 20, np.uint8); during = data(); del a; "
            "print(kept, during - before, data() - before)")

    def run(**env):
        environment = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")} | env
        kept, during, after = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                                             env=environment).stdout.split()
        return kept, round(int(during) / 1024), round(int(after) / 1024)  # MB

    assert run() == ("True", 20, 20)  # 20 MB freed and still held, for the next step's activations
    kept, during, after = run(MALLOC_ARENA_MAX="2")  # a choice of the environment's: malloc as it was
    assert kept == "False" and during == 20 and after == 0


def test_every_epoch_reads_each_training_row_once_in_a_new_order(tmp_path):
    path = write_parquet(tmp_path / "rows.parquet", 5000, 4, 10, position=True)
    spec = load_spec(spec_for(path, streaming=True, features=["x0", "x1"],
                              stream={"workers": 2, "shuffle_buffer": 1500, "held_out_rows": 400}))
    prepared = prepare(spec.data, None, 0)
    stream = prepared.splits["train"]
    assert prepared.streamed("train") and prepared.rows("train") == len(stream) == 4200
    column = prepared.encoder.state.columns[0]
    batches = stream.batches(64, generator=torch.Generator().manual_seed(0))
    orders = []
    for _ in range(2):
        seen = [x[:, 0].double() * column.std + column.mean for (x,), _ in batches]
        assert len(seen) == len(batches) == -(-4200 // 64)
        orders.append(torch.cat(seen).round().long().numpy())
    for order in orders:
        assert sorted(order.tolist()) == prepared.parts["train"].tolist()
    assert not np.array_equal(orders[0], orders[1])
    first = orders[0][:64] // 500  # the row groups the first batch came from
    assert len(set(first.tolist())) >= 2
    again = stream.batches(64, generator=torch.Generator().manual_seed(0))
    assert np.array_equal(torch.cat([x[:, 0] for (x,), _ in again]).numpy(),
                          ((orders[0] - column.mean) / column.std).astype(np.float32))


def test_a_streamed_run_resumes_to_the_weights_of_an_uninterrupted_one(tmp_path):
    path = write_parquet(tmp_path / "rows.parquet", 4000, 8, 6)
    spec = spec_for(path, streaming=True, stream={"workers": 2, "shuffle_buffer": 700})
    spec["train"].update(epochs=4, checkpoint_every=1)
    spec["model"].update(dropout=0.2)
    full = lf.train(spec, runs_dir=tmp_path / "runs")
    with pytest.raises(lf.TrainingInterrupted) as caught:
        lf.train(spec, runs_dir=tmp_path / "runs", callbacks=[StopAfter(2)])
    resumed = lf.train(resume=caught.value.run_dir)
    a, b = load_weights(full.path / "model.safetensors"), load_weights(resumed.path / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [r["train_loss"] for r in full.history] == [r["train_loss"] for r in resumed.history]


def test_a_streamed_csv_trains_and_a_bad_row_far_down_is_named_with_nothing_left_behind(tmp_path):
    rng = np.random.default_rng(1)
    n = 3000
    size = rng.normal(size=n)
    color = rng.choice(["red", "green", "blue"], n)
    frame = pd.DataFrame({"size": size, "color": color,
                          "label": np.where(size + (color == "red") * 1.5 > 0.5, "big", "small")})
    good = tmp_path / "rows.csv"
    frame.to_csv(good, index=False)
    spec = spec_for(good, streaming=True, stream={"sample_rows": 500, "held_out_rows": 300, "chunk_rows": 256})
    spec["train"]["epochs"] = 8
    run = lf.train(spec, runs_dir=tmp_path / "runs")
    assert run.metrics["test"]["accuracy"] > 0.9
    assert [c["categories"] for c in run.manifest.preprocessing.model_dump()["columns"] if c["name"] == "color"] \
        == [["blue", "green", "red"]]

    # readers start at blocks of records found while fingerprinting, also where quoted fields hold
    # separators, doubled quotes and line breaks
    indexed = TableFile.open(good, 256)
    indexed.fingerprint()
    indexed.index_lines(n)
    assert len(indexed.units()) == -(-n // 256)
    quoted = tmp_path / "quoted.csv"
    names = {"red": 'red, "dark"\nand warm', "green": "green\n", "blue": "blue"}
    frame.assign(color=frame["color"].map(names)).to_csv(quoted, index=False)
    assert quoted.read_text().count("\n") > n + 1000
    blocks = TableFile.open(quoted, 256)
    blocks.fingerprint()
    blocks.index_lines(n)
    assert len(blocks.units()) == -(-n // 256)
    read = pd.concat(frame for unit in blocks.units() for frame in blocks.chunks(unit, blocks.names))
    pd.testing.assert_frame_equal(read, pd.read_csv(quoted))
    with pytest.MonkeyPatch.context() as patch:  # quotes opened in one read of the file and closed in the next
        patch.setattr(tablefile, "READ_BYTES", 7)
        small = TableFile.open(quoted, 256)
        small.fingerprint()
        assert np.array_equal(small._offsets, blocks._offsets)
    spec["data"]["path"] = str(quoted)
    quoted_run = lf.train(spec, runs_dir=tmp_path / "runs")
    assert quoted_run.metrics["test"]["accuracy"] > 0.9
    assert [c["categories"] for c in quoted_run.manifest.preprocessing.model_dump()["columns"]
            if c["name"] == "color"] == [["blue", "green\n", 'red, "dark"\nand warm']]

    frame["size"] = frame["size"].astype(object)
    frame.loc[2500, "size"] = "oops"
    bad = tmp_path / "bad.csv"
    frame.to_csv(bad, index=False)
    spec["data"].update(path=str(bad), stream={"sample_rows": 500, "held_out_rows": 300, "chunk_rows": 256})
    with pytest.raises(lf.DataError, match=r"column 'size'.*'oops' in row 2501 \(line 2502 of bad.csv\)"):
        lf.train(spec, runs_dir=tmp_path / "bad-runs")
    assert not (tmp_path / "bad-runs").exists() or not any((tmp_path / "bad-runs").iterdir())


def test_what_a_streamed_table_cannot_do_is_refused_by_name(tmp_path):
    path = write_parquet(tmp_path / "rows.parquet", 1000, 4, 2)
    with pytest.raises(lf.SpecError, match="data.streaming: streams table files"):
        load_spec({"data": {"dataset": "iris", "streaming": True}})
    spec = spec_for(path, streaming=True)
    spec["train"]["batch_size"] = "full"
    with pytest.raises(lf.SpecError, match="train.batch_size: .full. needs every row in memory; the data are streamed"):
        lf.train(spec, runs_dir=tmp_path / "runs")
    with pytest.raises(lf.DataError, match="data.streaming: .* a kfold split needs its rows in memory"):
        lf.cross_validate(spec_for(path, streaming=True), folds=2, runs_dir=tmp_path / "cv")
    with pytest.raises(lf.DataError, match="data.groups: grouped splits need the whole table in memory"):
        lf.train(spec_for(path, streaming=True, groups="x1"), runs_dir=tmp_path / "runs")
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


RUN = textwrap.dedent("""
    import json, resource, sys
    import layerforge as lf
    run = None
    try:
        if sys.argv[1] == "predict":  # predict a file into another, a chunk at a time
            from layerforge.data.tabular import write_table_pieces

            pieces = lf.load_run(sys.argv[2]).predictor.predict_pieces(sys.argv[3])
            outcome = len(write_table_pieces(pieces, sys.argv[4]).read_bytes())
        elif sys.argv[1] == "evaluate":  # score a file, a chunk at a time
            outcome = lf.load_run(sys.argv[2]).evaluate(sys.argv[3])
        else:
            run = lf.train(json.loads(sys.argv[1]), runs_dir=sys.argv[2])
            outcome = run.metrics["test"]["accuracy"]
    except MemoryError:
        outcome = "out of memory"
    except lf.DataError as error:
        outcome = str(error)
    data = [line for line in open("/proc/self/status") if line.startswith("VmData")][0].split()[1]
    print(json.dumps({"outcome": outcome, "vmdata_kb": int(data), "run": run and str(run.path),
                      "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
""")


def _run_limited(spec, runs_dir, limit: int | None = None, command: tuple = ()) -> dict:
    """Train ``spec`` (or, with ``command`` = ('predict', run, data, out) or ('evaluate', run,
    data), predict or evaluate) in a process whose data segment is capped at ``limit`` bytes."""

    def cap():
        if limit is not None:
            resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))

    arguments = list(map(str, command)) if command else [json.dumps(spec), str(runs_dir)]
    done = subprocess.run([sys.executable, "-c", RUN, *arguments], capture_output=True, text=True,
                          preexec_fn=cap, timeout=600)
    lines = done.stdout.strip().splitlines()
    if not lines:  # the process died: under a memory limit, glibc aborts when a new thread's memory is refused
        return {"outcome": f"died ({done.returncode}): {done.stderr.strip()[-500:]}"}
    return json.loads(lines[-1])


@pytest.mark.slow  # trains to a target, or waits out a kill: run with -m slow
def test_a_parquet_file_four_times_the_memory_allowed_trains_with_bounded_memory(tmp_path):
    """The big file's values take about 1 GB as a DataFrame (2M rows x 65 columns); the process
    may use 256 MB more than a small streamed run of the same spec ended with."""
    spec = spec_for(tmp_path / "small.parquet", streaming=True)
    spec["model"]["layers"] = [32]
    spec["train"].update(epochs=1, batch_size=512)
    small = _run_limited(spec | {"data": {**spec["data"], "path": str(write_parquet(tmp_path / "small.parquet",
                                                                                       50_000, 64, 2))}},
                         tmp_path / "runs")
    allowance = 256 << 20
    limit = small["vmdata_kb"] * 1024 + allowance
    big_path = write_parquet(tmp_path / "big.parquet", 2_000_000, 64, 40)
    big = {**spec, "data": {**spec["data"], "path": str(big_path)}}
    streamed = _run_limited(big, tmp_path / "runs", limit)
    assert isinstance(streamed["outcome"], float) and streamed["outcome"] > 0.95, streamed
    assert streamed["peak_rss_kb"] * 1024 < small["peak_rss_kb"] * 1024 + allowance
    # the run predicts the whole file into a Parquet file under the same limit, a chunk at a time
    predicted = _run_limited(None, None, limit, ("predict", streamed["run"], big_path, tmp_path / "predicted.parquet"))
    assert isinstance(predicted["outcome"], int), predicted
    assert pq.ParquetFile(tmp_path / "predicted.parquet").metadata.num_rows == 2_000_000
    assert predicted["peak_rss_kb"] * 1024 < small["peak_rss_kb"] * 1024 + allowance, predicted
    # and scores the whole file under it: each row's outputs and target are kept (not its 64 values)
    # and scored at once, F1, calibration and ROC AUC needing all rows: about 100 bytes a row more
    scored = _run_limited(None, None, limit, ("evaluate", streamed["run"], big_path))
    assert isinstance(scored["outcome"], dict) and scored["outcome"]["rows"] == 2_000_000, scored
    assert scored["outcome"]["accuracy"] > 0.95
    assert scored["peak_rss_kb"] * 1024 < small["peak_rss_kb"] * 1024 + allowance + 128 * 2_000_000, scored
    whole = _run_limited({**big, "data": {**big["data"], "streaming": False}}, tmp_path / "runs", limit)
    # the limit binds: the same table read into memory does not fit under it, which is said before reading
    assert "does not fit in memory" in whole["outcome"], whole


def test_an_image_folder_streams_its_files_decoded_as_they_are_read(tmp_path):
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    root = tmp_path / "digits"
    for i, (image, label) in enumerate(zip(digits.images, digits.target)):
        (root / str(label)).mkdir(parents=True, exist_ok=True)
        Image.fromarray((image * 255 / 16).astype(np.uint8)).save(root / str(label) / f"{i}.png")
    spec = {"data": {"path": str(root), "streaming": True, "stream": {"workers": 2, "held_out_rows": 200}},
            "model": {"type": "cnn", "channels": [16, 32], "head": [64]},
            "train": {"epochs": 12, "batch_size": 64, "optimizer": {"lr": 0.003}, "report": False}}
    streamed = lf.train(spec, runs_dir=tmp_path / "runs")
    whole = lf.train({**spec, "data": {"path": str(root), "streaming": False}}, runs_dir=tmp_path / "runs")
    assert saved_spec(streamed)["data"]["streaming"] is True
    assert streamed.manifest.rows == {"train": 1397, "val": 200, "test": 200}
    assert streamed.metrics["test"]["accuracy"] > 0.93
    assert streamed.metrics["test"]["accuracy"] >= whole.metrics["test"]["accuracy"] - 0.03
    assert streamed.predict(root / "3" / "3.png").tolist() == [3]  # digit folder names are read as numbers
    # a file of another size far into the folder is named when its piece is read
    Image.fromarray(np.zeros((9, 9), np.uint8)).save(root / "9" / "zz.png")
    with pytest.raises(lf.DataError, match=r"zz.png: 9x9 pixels where the first image has 8x8; set data.image_size"):
        lf.train(spec, runs_dir=tmp_path / "bad-runs")


class StopAtStep(lf.Callback):
    def __init__(self, epoch, step):
        self.epoch, self.step = epoch, step

    def on_batch_end(self, trainer, step, loss):
        if trainer.epoch + 1 == self.epoch and step + 1 == self.step:
            raise KeyboardInterrupt


def test_a_run_stopped_mid_epoch_resumes_from_its_position_in_the_stream(tmp_path, monkeypatch):
    from layerforge.recipes import scaffold

    monkeypatch.setattr(scaffold, "CHECKPOINT_SECONDS", 0.0)  # a checkpoint after every step
    path = write_parquet(tmp_path / "rows.parquet", 3000, 8, 5)
    spec = spec_for(path, streaming=True, stream={"workers": 2, "shuffle_buffer": 500})
    spec["train"].update(epochs=3)
    spec["model"].update(dropout=0.2)
    full = lf.train(spec, runs_dir=tmp_path / "runs")
    with pytest.raises(lf.TrainingInterrupted) as caught:
        lf.train(spec, runs_dir=tmp_path / "runs", callbacks=[StopAtStep(2, 17)])
    stopped = caught.value.run_dir
    assert [p.name for p in (stopped / "checkpoints").iterdir()] == ["epoch-000001.step-000000016"]
    state = json.loads((stopped / "checkpoints" / "epoch-000001.step-000000016" / "trainer_state.json").read_text())
    assert state["position"]["step"] == 16 and len(state["position"]["losses"]) == 16
    resumed = lf.train(resume=stopped)
    a, b = load_weights(full.path / "model.safetensors"), load_weights(resumed.path / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [r["train_loss"] for r in full.history] == [r["train_loss"] for r in resumed.history]


def _counted_chunks(monkeypatch, chunk_bytes: int) -> list[int]:
    """Table files read in chunks of about ``chunk_bytes`` of values (Parquet: ``TableFile``;
    CSV: the codec's blocks of text, the same number of values); the list the size of each chunk
    read is appended to."""
    read, chunks, block = [], TableFile.chunks, tables._block

    def counted(self, unit, columns):
        for frame in chunks(self, unit, columns):
            read.append(len(frame))
            yield frame

    def counted_block(header, fields, lines, source, first):
        read.append(len(lines))
        return block(header, fields, lines, source, first)

    monkeypatch.setattr(TableFile, "chunks", counted)
    monkeypatch.setattr(tablefile, "CHUNK_BYTES", chunk_bytes)
    monkeypatch.setattr(tables, "_block", counted_block)
    monkeypatch.setattr(tables, "BLOCK_CELLS", chunk_bytes // 8)
    return read


def test_evaluate_reads_a_large_file_a_chunk_at_a_time_and_scores_it_as_a_whole(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from layerforge.cli import app

    path = write_parquet(tmp_path / "rows.parquet", 5000, 6, 4)
    run = lf.train(spec_for(path), runs_dir=tmp_path / "runs")
    frame = pd.read_parquet(path)
    frame.to_csv(tmp_path / "rows.csv", index=False)
    whole = run.evaluate(frame)  # a DataFrame is one piece
    read = _counted_chunks(monkeypatch, 1200 * 8 * 7)  # 1,200 rows of 7 values a chunk
    for source in ("rows.csv", "rows.parquet"):
        read.clear()
        measured = run.evaluate(tmp_path / source)
        assert max(read) <= 1250 and sum(read) == 5000  # csv: 1,200 rows at a time; parquet: its row groups
        assert measured.keys() == whole.keys() and measured["rows"] == 5000
        for name, value in whole.items():  # f1, ECE and the AUC need every row: scored once, on all of them
            assert measured[name] == pytest.approx(value, abs=1e-6), name
    result = CliRunner().invoke(app, ["evaluate", str(run.path), "--data", str(tmp_path / "rows.csv")])
    assert result.exit_code == 0 and "(5000 rows)" in result.output, result.output
    # a label the model does not know, far into the file, is named by its row
    frame.loc[3500, "label"] = "maybe"
    frame.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(lf.DataError, match=r"'maybe' in row 3501 \(line 3502 of bad.csv\) is not one of the classes"):
        run.evaluate(tmp_path / "bad.csv")


def test_an_autoencoder_scores_encodes_and_flags_a_large_file_a_chunk_at_a_time(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from layerforge.cli import app

    path = write_parquet(tmp_path / "rows.parquet", 5000, 6, 4)
    spec = {"data": {"path": str(path), "target": "label", "anomaly_classes": ["yes"]},
            "model": {"type": "autoencoder", "variant": "variational", "layers": [8], "latent_size": 2},
            "train": {"epochs": 2, "batch_size": 64, "report": False}}
    run = lf.train(spec, runs_dir=tmp_path / "runs")
    frame = pd.read_parquet(path)
    frame.to_csv(tmp_path / "rows.csv", index=False)
    whole, codes, (scores, flags) = run.evaluate(frame), run.embed(frame), run.anomalies(frame)  # one piece each
    read = _counted_chunks(monkeypatch, 1200 * 8 * 7)  # 1,200 rows of 7 values a chunk
    measured = run.evaluate(tmp_path / "rows.csv")
    assert max(read) <= 1250 and sum(read) == 5000 and measured["rows"] == 5000
    assert measured.keys() == whole.keys() == {"loss", "mse", "noisy_mse", "kl", "rows"}
    for name in ("loss", "mse", "kl"):  # means over rows: the chunks' means, weighted by their rows
        assert measured[name] == pytest.approx(whole[name], rel=1e-5), name
    assert measured["noisy_mse"] == pytest.approx(whole["noisy_mse"], rel=0.05)  # each chunk draws its own noise
    read.clear()
    assert np.allclose(run.embed(tmp_path / "rows.csv"), codes, atol=1e-6) and len(read) == 5
    read.clear()
    chunked_scores, chunked_flags = run.anomalies(tmp_path / "rows.parquet")
    assert np.allclose(chunked_scores, scores, rtol=1e-5) and (chunked_flags == flags).all()
    assert max(read) <= 1250 and sum(read) == 5000  # parquet: its row groups, in chunks
    read.clear()
    result = CliRunner().invoke(app, ["embed", str(run.path), str(tmp_path / "rows.csv"), "--out",
                                      str(tmp_path / "codes.csv")])
    assert result.exit_code == 0 and len(read) == 5, result.output
    written = pd.read_csv(tmp_path / "codes.csv")
    assert written["label"].tolist() == frame["label"].tolist()
    assert np.allclose(written[["z0", "z1"]].to_numpy(), codes, atol=1e-5)


def test_predict_reads_a_large_file_a_chunk_at_a_time_and_writes_it_whole_or_not_at_all(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from layerforge.cli import app

    path = write_parquet(tmp_path / "rows.parquet", 5000, 6, 4)
    run = lf.train(spec_for(path), runs_dir=tmp_path / "runs")
    rows = pd.read_parquet(path).drop(columns="label")
    rows.to_csv(tmp_path / "rows.csv", index=False)
    whole = run.predictor.predict_table(rows)
    read = _counted_chunks(monkeypatch, 1200 * 8 * 6)  # 1,200 rows of 6 values a chunk
    for source, out in (("rows.csv", "p.parquet"), ("rows.parquet", "p.csv")):
        read.clear()
        result = CliRunner().invoke(app, ["predict", str(run.path), str(tmp_path / source), "--out",
                                          str(tmp_path / out)])
        assert result.exit_code == 0, result.output
        assert max(read) <= 1250 and sum(read) == 5000  # csv: 1,200 rows at a time; parquet: its row groups
        written = pd.read_parquet(tmp_path / out) if out.endswith("parquet") else pd.read_csv(tmp_path / out)
        assert written["label"].tolist() == whole["label"].tolist()
        assert np.allclose(written.drop(columns="label").to_numpy(), whole.drop(columns="label").to_numpy())
    stdout = CliRunner().invoke(app, ["predict", str(run.path), str(tmp_path / "rows.csv")]).stdout
    # run.predict and predict_proba read a file the same way
    read.clear()
    assert run.predict(tmp_path / "rows.csv").tolist() == whole["label"].tolist() and len(read) == 5
    assert np.allclose(run.predict_proba(tmp_path / "rows.parquet"), run.predict_proba(rows), atol=1e-6)
    assert stdout.splitlines()[0] == ",".join(whole.columns) and len(stdout.splitlines()) == 5001
    # a bad value far into the file is named by its row; the earlier output file is left as it was
    rows["x2"] = rows["x2"].astype(object)
    rows.loc[3500, "x2"] = "oops"
    rows.to_csv(tmp_path / "bad.csv", index=False)
    before = (tmp_path / "p.csv").read_bytes()
    result = CliRunner().invoke(app, ["predict", str(run.path), str(tmp_path / "bad.csv"), "--out",
                                      str(tmp_path / "p.csv")])
    assert result.exit_code == 2 and "row 3501 (line 3502 of bad.csv)" in result.output, result.output
    assert (tmp_path / "p.csv").read_bytes() == before and not list(tmp_path.glob(".p.csv.*"))
