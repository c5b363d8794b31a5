"""What a careless or hostile user does, one test per case: every one ends in a result or in
layerforge's own error (exit 2 from the command line) naming the key, file, column or row, never
in a traceback or a silent wrong answer."""

import json
import math
import os
import re
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

import layerforge as lf
from layerforge.cli import app
from layerforge.files import sealed
from layerforge.run.store import list_runs

runner = CliRunner()
IRIS = {"name": "iris", "data": {"dataset": "iris"}, "model": {"layers": [8]}, "train": {"epochs": 3, "batch_size": 16}}


def _cli(*args):
    """(exit code, everything printed); a Python traceback fails the test."""
    result = runner.invoke(app, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"traceback for {args}") from result.exception
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def iris_run(tmp_path_factory):
    return lf.train(IRIS, runs_dir=tmp_path_factory.mktemp("runs"))


@pytest.fixture
def iris_rows(tmp_path):
    from sklearn.datasets import load_iris

    frame = load_iris(as_frame=True).frame.drop(columns=["target"]).head(6)
    frame.columns = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]
    return frame


def _copy(run, tmp_path, name="copy"):
    copy = tmp_path / name
    shutil.copytree(run.path, copy)
    return copy


def _edit_json(path, change, reseal=True):
    """Change a JSON file as someone editing it would; ``reseal`` recomputes its content digest
    (a deliberate edit), so that what comes after the seal is tested too."""
    data = json.loads(path.read_text())
    changed = change(data)
    data = data if changed is None else changed
    if reseal and isinstance(data, dict):
        data = sealed(data)
    path.write_text(json.dumps(data))


# -- lost work and broken promises ---------------------------------------------------------------

@pytest.mark.parametrize("checkpoint_every, promise", [(5, "nothing was saved"), (1, "continue with: layerforge train --resume")])
def test_ctrl_c_promises_only_what_it_keeps(tmp_path, monkeypatch, checkpoint_every, promise):
    import layerforge.api

    class CtrlC(lf.Callback):
        def on_epoch_end(self, trainer, record):
            if record["epoch"] == 2:
                raise KeyboardInterrupt

    real = layerforge.api.train
    monkeypatch.setattr(layerforge.api, "train", lambda *args, **kwargs: real(*args, **kwargs, callbacks=[CtrlC()]))
    (tmp_path / "s.yaml").write_text(yaml.safe_dump({**IRIS, "train": {**IRIS["train"], "checkpoint_every": checkpoint_every}}))
    code, output = _cli("train", tmp_path / "s.yaml", "--runs-dir", tmp_path / "runs")
    assert code == 130 and promise in output, output
    if checkpoint_every == 1:
        monkeypatch.setattr(layerforge.api, "train", real)
        code, output = _cli(*output.split("continue with: layerforge ")[1].split())
        assert code == 0 and len(lf.load_run(next((tmp_path / "runs").iterdir())).history) == 3
    else:
        assert list_runs(tmp_path / "runs") == [] and not list((tmp_path / "runs").iterdir())


# -- silent wrong answers ------------------------------------------------------------------------

@pytest.mark.parametrize("value, says", [(math.inf, "an infinite value in row 3"),
                                         (1e308, r"1e\+308 in row 3 .* too far from the values seen in training")])
def test_an_extreme_value_at_predict_time_is_refused_naming_column_and_row(iris_run, iris_rows, tmp_path, value, says):
    iris_rows.iloc[2, 1] = value
    iris_rows.to_csv(tmp_path / "rows.csv", index=False)
    for command in (["predict", iris_run.path, tmp_path / "rows.csv"], ["evaluate", iris_run.path, "--data", tmp_path / "rows.csv"]):
        code, output = _cli(*command)
        assert code == 2 and "column 'sepal width (cm)'" in output
        assert len(re.findall(says, output)) == 1, output


def test_outputs_that_are_not_numbers_never_reach_the_user(iris_run, iris_rows):
    import torch

    predictor = lf.load_run(iris_run.path).predictor
    with torch.no_grad():
        predictor.model.blocks[0].linear.weight.fill_(3e38)  # every hidden unit overflows
    with pytest.raises(lf.DataError, match=r"outputs for row \d are not finite numbers: that row lies far outside"):
        predictor.predict_proba(iris_rows)
    with pytest.raises(lf.DataError, match="not finite numbers"):
        predictor.predict(iris_rows)


def test_an_infinite_regression_target_is_a_data_error_and_metrics_are_always_json(tmp_path, runs_dir):
    from sklearn.datasets import load_diabetes

    frame = load_diabetes(as_frame=True).frame
    frame.loc[5, "target"] = math.inf
    frame.to_csv(tmp_path / "d.csv", index=False)
    spec = {"data": {"path": str(tmp_path / "d.csv"), "target": "target"}, "train": {"epochs": 2}}
    with pytest.raises(lf.DataError, match=r"column 'target': an infinite value in row 6 \(line 7 of d.csv\)"):
        lf.train(spec, runs_dir=runs_dir)
    frame.loc[5, "target"] = 1e300
    frame.to_csv(tmp_path / "d.csv", index=False)
    with pytest.raises(lf.DataError, match=r"column 'target': .*1e\+300.* (too large to standardise|too far from)"):
        lf.train(spec, runs_dir=runs_dir)
    assert not runs_dir.exists() or list_runs(runs_dir) == []  # refused before any run directory


def test_metrics_with_a_non_finite_number_are_still_valid_json(runs_dir):
    run = lf.train({"data": {"dataset": "diabetes"}, "model": {"layers": [16]},
                    "train": {"epochs": 4, "optimizer": {"name": "sgd", "lr": 10}, "on_divergence": "rollback"}},
                   runs_dir=runs_dir)

    def refuse(constant):
        raise AssertionError(f"{constant} is not JSON")

    for name in ("metrics.json", "diagnosis.json", "model.json"):
        json.loads((run.path / name).read_text(), parse_constant=refuse)
    for line in (run.path / "history.jsonl").read_text().splitlines():
        json.loads(line, parse_constant=refuse)


def test_an_npz_with_more_inputs_than_labels_is_refused(tmp_path):
    np.savez(tmp_path / "s.npz", x=np.zeros((40, 1, 20), np.float32), y=np.arange(30) % 2)
    code, output = _cli("train", "--set", f"data.path={tmp_path / 's.npz'}", "--set", "data.dataset=null",
                        "--set", "data.target=null", "--runs-dir", tmp_path / "runs")
    assert code == 2 and "40" in output and "30" in output, output


def test_a_flipped_bit_in_the_final_weights_is_detected(iris_run, iris_rows, tmp_path):
    copy = _copy(iris_run, tmp_path)
    weights = bytearray((copy / "model.safetensors").read_bytes())
    weights[-5] ^= 0x01  # inside the last tensor's numbers: the file still parses
    (copy / "model.safetensors").write_bytes(bytes(weights))
    with pytest.raises(lf.CheckpointError, match="model.safetensors .*does not match its recorded checksum"):
        lf.load_run(copy).predict(iris_rows)


def _interrupted(runs_dir):
    class Stop(lf.Callback):
        def on_epoch_end(self, trainer, record):
            if record["epoch"] == 2:
                raise KeyboardInterrupt

    with pytest.raises(lf.TrainingInterrupted) as caught:
        lf.train({**IRIS, "train": {**IRIS["train"], "epochs": 4, "checkpoint_every": 1}}, runs_dir=runs_dir,
                 callbacks=[Stop()])
    return caught.value.run_dir


@pytest.mark.parametrize("change, says", [
    (lambda s: s.__setitem__("sha256", None), "sha256: Input should be a valid string"),
    (lambda s: s.__setitem__("epoch", -1), "epoch: Input should be greater than or equal to 0"),
    (lambda s: s.__setitem__("epoch", 10**12), "epoch: Input should be less than or equal to"),
    (lambda s: s.__setitem__("epoch", "two"), "epoch: Input should be a valid integer"),
    (lambda s: s.__delitem__("history"), "history: Field required"),
    (lambda s: s.__setitem__("history", s["history"][:1]), "epoch 2 but 1 epochs of history"),
])
def test_a_tampered_trainer_state_is_refused_naming_the_field(tmp_path, change, says):
    run_dir = _interrupted(tmp_path / "runs")
    (state,) = run_dir.glob("checkpoints/epoch-*/trainer_state.json")
    _edit_json(state, change, reseal=False)
    with pytest.raises(lf.CheckpointError, match="changed or damaged after it was written"):
        lf.train(resume=run_dir)
    _edit_json(state, lambda s: None)  # the same edit, with its seal recomputed
    with pytest.raises(lf.CheckpointError, match=says):
        lf.train(resume=run_dir)


def test_a_stray_word_in_a_numeric_column_is_named(tmp_path, runs_dir, mixed_frame):
    frame = mixed_frame.assign(size=mixed_frame["size"].astype(object))
    frame.loc[7, "size"] = "n/a?"
    frame.to_csv(tmp_path / "m.csv", index=False)
    with pytest.raises(lf.DataError, match=r"column 'size' holds numbers but also 'n/a\?' in row 8 \(line 9 of m.csv\)"):
        lf.train({"data": {"path": str(tmp_path / "m.csv"), "target": "label"}}, runs_dir=runs_dir)


def test_true_or_false_in_a_numeric_column_at_predict_time_is_refused(iris_run, iris_rows, tmp_path):
    rows = iris_rows.astype(object)
    rows.iloc[1, 0] = "true"
    rows.to_csv(tmp_path / "rows.csv", index=False)
    code, output = _cli("predict", iris_run.path, tmp_path / "rows.csv")
    assert code == 2 and "column 'sepal length (cm)': expected numbers, found 'true' in row 2" in output


# -- security --------------------------------------------------------------------------------------

def test_a_spec_name_ending_in_a_newline_is_refused(tmp_path):
    (tmp_path / "s.yaml").write_text('name: "iris\\n"\ndata: {dataset: iris}\n')
    code, output = _cli("train", tmp_path / "s.yaml", "--runs-dir", tmp_path / "runs")
    assert code == 2 and "got 'iris\\n'" in output and not (tmp_path / "runs").exists()


def test_a_tampered_run_cannot_put_markup_into_its_report(iris_run, tmp_path):
    from layerforge.report.html import build_report
    from layerforge.run.store import file_checksums

    def recount(copy, name):  # as someone would who also recomputes the checksums model.json lists
        _edit_json(copy / "model.json", lambda m: m["files"].__setitem__(name, file_checksums(copy)[name]))

    attack = '<script>document.title="owned"</script><img src=x onerror=alert(1)>'
    copy = _copy(iris_run, tmp_path, "metrics")
    _edit_json(copy / "metrics.json", lambda m: m.update(epochs=attack, best_epoch=attack), reseal=False)
    recount(copy, "metrics.json")
    with pytest.raises(lf.CheckpointError, match="metrics.json: epochs: Input should be a valid integer"):
        build_report(copy)
    copy = _copy(iris_run, tmp_path, "diagnosis")
    _edit_json(copy / "diagnosis.json", lambda d: d.__setitem__("findings", [
        {"kind": attack, "severity": "warning", "message": attack, "fix": attack, "evidence": {}}]), reseal=False)
    recount(copy, "diagnosis.json")
    page = build_report(copy).read_text()
    assert "<script" not in page and "<img src=x" not in page and page.count("&lt;script&gt;") >= 3
    assert ("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; "
            "style-src 'unsafe-inline'") in page


# -- tracebacks instead of errors ---------------------------------------------------------------

def test_user_text_is_never_read_as_console_markup(tmp_path):
    code, output = _cli("train", "--set", "data.path=/nowhere/[/bold][red]x.csv", "--runs-dir", tmp_path / "runs")
    assert code == 2 and "/nowhere/[/bold][red]x.csv" in output


def test_a_deeply_nested_or_non_utf8_spec_is_a_spec_error(tmp_path):
    (tmp_path / "deep.yaml").write_text("data: " + "[" * 600 + "]" * 600 + "\n")
    code, output = _cli("train", tmp_path / "deep.yaml")
    assert code == 2 and "nested too deeply" in output
    (tmp_path / "latin1.yaml").write_bytes("name: caf\xe9\n".encode("latin-1"))
    code, output = _cli("train", tmp_path / "latin1.yaml")
    assert code == 2 and "not UTF-8 text (byte 9)" in output


def test_cuda_without_a_gpu_is_one_clear_error(tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # as on a machine without a GPU
    code, output = _cli("train", "--set", "train.device=cuda", "--runs-dir", tmp_path / "runs")
    assert code == 2 and "train.device: 'cuda', but this machine has no CUDA device" in output
    assert "AttributeError" not in output and not (tmp_path / "runs").exists()


def test_a_tiny_gradient_clip_still_gives_a_report(runs_dir):
    run = lf.train({**IRIS, "train": {**IRIS["train"], "clip_grad_norm": 1e-12}}, runs_dir=runs_dir)
    page = (run.path / "report.html").read_text()
    assert 'alt="gradient flow"' in page and run.metrics["epochs"] == 3


@pytest.mark.parametrize("spec, says", [
    ({"data": {"dataset": "digits"}, "model": {"type": "autoencoder", "layers": []}},
     "model.layers: expected at least 1 items"),
    ({"data": {"dataset": "digits_images"}, "model": {"type": "transformer", "patch_size": 16}},
     "model.patch_size: patches of 16 pixels do not fit in 8x8 images"),
    ({"data": {"dataset": "gunpoint"}, "model": {"type": "cnn", "kernel_size": 500, "padding": "valid"}},
     "model.kernel_size: convolution 1 reads 150 steps, shorter than its kernel of 500"),
    ({"data": {"dataset": "digits_images"}, "model": {"type": "cnn", "channels": [8, 8, 8, 8], "kernel_size": 3,
                                                      "padding": "valid", "pool": "max"}},
     "model.kernel_size: convolution 3 reads 1x1 pixels, shorter than its kernel of 3"),
    ({"data": {"dataset": "digits"}, "model": {"layers": [1_000_000_000]}},
     r"model: training this mlp needs about [\d.]+ GiB \(75,000,000,010 parameters"),
])
def test_an_architecture_that_cannot_work_is_a_spec_error_naming_the_key(spec, says, tmp_path, monkeypatch):
    import layerforge.api

    def never(*args, **kwargs):
        raise AssertionError("no run directory should be made")

    monkeypatch.setattr(layerforge.api, "new_run_dir", never)
    with pytest.raises(lf.SpecError, match=says):
        lf.train(spec, runs_dir=tmp_path / "runs")


def test_an_autoencoder_on_a_measured_target_trains_without_calling_it_classes(runs_dir):
    run = lf.train({"data": {"dataset": "diabetes"}, "model": {"type": "autoencoder", "layers": [8], "latent_size": 2},
                    "train": {"epochs": 2}}, runs_dir=runs_dir)
    assert math.isfinite(run.metrics["test"]["mse"]) and "latent_knn_accuracy" not in run.metrics["test"]
    assert run.manifest.classes is None and run.meta["rows"]["test"] == 66  # 15% of 442, all the same


def _png(path, width, height):
    """A valid PNG header claiming ``width`` x ``height`` pixels (a decompression bomb's promise)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))


def test_a_decompression_bomb_image_is_refused(tmp_path):
    from PIL import Image

    for label in ("a", "b"):
        (tmp_path / "images" / label).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.full((8, 8), 40 * i, np.uint8)).save(tmp_path / "images" / label / f"{i}.png")
    _png(tmp_path / "images" / "b" / "bomb.png", 40_000, 40_000)
    code, output = _cli("train", "--set", f"data.path={tmp_path / 'images'}", "--set", "data.dataset=null",
                        "--set", "data.target=null", "--runs-dir", tmp_path / "runs")
    assert code == 2 and "bomb.png" in output, output


@pytest.mark.parametrize("write, says", [
    (lambda p: p.write_bytes(os.urandom(300)), "cannot be read as an .npz file"),
    (lambda p: p.write_bytes(b""), "cannot be read as an .npz file"),
    (lambda p: np.savez(p, x=np.array([{"a": 1}] * 4, dtype=object), y=np.arange(4)), "holds Python objects"),
    (lambda p: np.savez(p, x=np.array([["a", "b"]] * 4), y=np.arange(4)), "not numbers"),
])
def test_a_damaged_npz_is_a_data_error(tmp_path, write, says):
    write(tmp_path / "d.npz")
    code, output = _cli("train", "--set", f"data.path={tmp_path / 'd.npz'}", "--set", "data.dataset=null",
                        "--set", "data.target=null", "--runs-dir", tmp_path / "runs")
    assert code == 2 and says in output, output


def test_a_pipe_or_a_device_as_data_path_is_named_for_what_it_is(tmp_path):
    os.mkfifo(tmp_path / "pipe.csv")
    code, output = _cli("train", "--set", f"data.path={tmp_path / 'pipe.csv'}", "--set", "data.dataset=null")
    assert code == 2 and "pipe.csv is not a regular file (a pipe or a device?)" in output
    code, output = _cli("train", "--set", "data.path=/dev/zero", "--set", "data.dataset=null")
    assert code == 2 and "data.path" in output and "file not found" not in output


def _unwritable(tmp_path):
    """A directory this process cannot write in: read-only for an ordinary user; for root, who
    writes anywhere, the kernel's own /sys."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        (folder / "probe").touch()
    except OSError:
        return folder
    (folder / "probe").unlink()
    folder.chmod(0o755)
    return Path("/sys")


def test_outputs_that_cannot_be_written_are_refused_before_the_work(iris_run, iris_rows, tmp_path):
    iris_rows.to_csv(tmp_path / "rows.csv", index=False)
    (tmp_path / "a-file").write_text("")
    locked = _unwritable(tmp_path)
    cases = [
        (["predict", iris_run.path, tmp_path / "rows.csv", "--out", tmp_path], "is a directory; name a file instead"),
        (["predict", iris_run.path, tmp_path / "rows.csv", "--out", tmp_path / "a-file" / "p.csv"], "is a file, not a directory"),
        (["predict", iris_run.path, tmp_path / "rows.csv", "--out", locked / "p.csv"], "cannot write in"),
        (["evaluate", iris_run.path, "--out", tmp_path], "is a directory"),
        (["compare", iris_run.path, iris_run.path, "--out", locked / "c.html"], "cannot write in"),
        (["lr-find", "--out", tmp_path / "a-file" / "x.png"], "is a file, not a directory"),
        (["train", "--runs-dir", tmp_path / "a-file"], "--runs-dir"),
        (["train", "--runs-dir", locked], "cannot write in the runs directory"),
    ]
    for command, says in cases:
        code, output = _cli(*command)
        assert code == 2 and says in output, (command, output)
    code, output = _cli("predict", iris_run.path, tmp_path / "rows.csv", "--out", tmp_path / "new" / "p.parquet")
    assert code == 0 and len(pd.read_parquet(tmp_path / "new" / "p.parquet")) == 6
    assert (tmp_path / "new" / "p.parquet").stat().st_mode & 0o044  # readable by others, as the umask allows


def test_an_unwritable_runs_directory_is_found_before_the_data_is_read(tmp_path, monkeypatch):
    import layerforge.api

    def never(*args, **kwargs):
        raise AssertionError("the data were read")

    monkeypatch.setattr(layerforge.api, "prepare", never)
    with pytest.raises(lf.CheckpointError, match="cannot write in the runs directory"):
        lf.train(IRIS, runs_dir=_unwritable(tmp_path))


@pytest.mark.parametrize("change, says", [
    (lambda m: [m], "not a layerforge model file: expected a mapping"),
    (lambda m: m.__delitem__("inputs"), "inputs: Field required"),
    (lambda m: m["model"]["spec"].__setitem__("type", "quantum"), "unknown model type 'quantum'"),
    (lambda m: m["model"]["spec"].__setitem__("layers", [-4]), "layers"),
    (lambda m: m["model"]["spec"].__setitem__("layers", [10**9]), "cannot be rebuilt here: model: training this mlp needs"),
    (lambda m: m.__setitem__("task", "regression"), "a regression run needs 'target_scaling'"),
    (lambda m: m.__setitem__("classes", m["classes"][:2]), "the task asks for 2 outputs and 2 classes, the model records 3"),
    (lambda m: m["inputs"].__setitem__("kind", "image"), "inputs"),
    (lambda m: m.__setitem__("features", m["features"][:2]), r"'features' \(2 names\) do not match"),
])
def test_a_tampered_model_json_is_refused_naming_the_field(iris_run, iris_rows, tmp_path, change, says):
    copy = _copy(iris_run, tmp_path)
    _edit_json(copy / "model.json", change, reseal=False)
    with pytest.raises(lf.CheckpointError):
        lf.load_run(copy).predict(iris_rows)
    _edit_json(copy / "model.json", lambda m: None)  # resealed: what the fields say is checked too
    with pytest.raises(lf.CheckpointError, match=says):
        lf.load_run(copy).predict(iris_rows)
    (copy / "model.json").write_bytes(b"\xff\xfe{")
    code, output = _cli("report", copy)
    assert code == 2 and "model.json is corrupt" in output


def test_a_half_written_history_line_breaks_nothing(iris_run, tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    shutil.copytree(iris_run.path, runs / "finished")
    partial = _interrupted(tmp_path / "other")
    shutil.move(partial, runs / "interrupted")
    with open(runs / "interrupted" / "history.jsonl", "a") as file:
        file.write('{"epoch": 3, "train_lo')
    code, output = _cli("runs", "--runs-dir", runs)
    assert code == 0 and "finished" in output and "interrupted" in output
    resumed = lf.train(resume=runs / "interrupted")
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3, 4]


@pytest.mark.parametrize("column, value", [("petal width (cm)", math.inf), ("petal width (cm)", 1e308),
                                           ("petal width (cm)", math.nan)])
def test_data_that_would_make_the_loss_non_finite_are_named_not_blamed_on_the_learning_rate(tmp_path, column, value):
    from sklearn.datasets import load_iris

    frame = load_iris(as_frame=True).frame
    frame.columns = [*frame.columns[:-1], "species"]
    frame[column] = frame[column] if not math.isnan(value) else math.nan  # all-NaN when value is NaN
    if not math.isnan(value):
        frame.loc[10, column] = value
    frame.to_csv(tmp_path / "d.csv", index=False)
    code, output = _cli("train", "--set", f"data.path={tmp_path / 'd.csv'}", "--set", "data.dataset=null",
                        "--set", "data.target=species", "--runs-dir", tmp_path / "runs")
    assert code == 2 and f"column '{column}'" in output and "learning rate" not in output, output
