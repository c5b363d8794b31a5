"""End-to-end command-line tests, each in a temporary directory."""

import json
import subprocess
import sys

import pandas as pd
import pytest
from typer.testing import CliRunner

import layerforge as lf
from layerforge.cli import app
from tests.training.test_trainer import StopAfter

runner = CliRunner()

SPEC = """\
name: cli-mixed
data:
  path: mixed.csv
  target: label
model:
  layers: [16]
train:
  epochs: 5
  optimizer: {name: adam, lr: 0.02}
"""


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def workdir(tmp_path, mixed_frame, monkeypatch):
    mixed_frame.to_csv(tmp_path / "mixed.csv", index=False)
    (tmp_path / "spec.yaml").write_text(SPEC)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_help_is_fast_and_does_not_import_torch():
    code = "import sys\nfrom layerforge.cli import app\nprint('torch' in sys.modules)\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    result = subprocess.run([sys.executable, "-m", "layerforge", "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    for command in ("train", "evaluate", "predict", "datasets", "runs"):
        assert command in result.stdout


def test_a_mistake_in_the_spec_is_answered_before_torch_is_imported(tmp_path):
    (tmp_path / "bad.yaml").write_text("data: {dataset: iris}\nmodel: {layers: [8], activation: relux}\n")
    code = ("import sys\nfrom layerforge.cli import main\nsys.argv = ['layerforge', 'train', sys.argv[1]]\n"
            "try:\n    main()\nexcept SystemExit as stop:\n    print(stop.code, 'torch' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "bad.yaml")], capture_output=True, text=True)
    assert out.stdout.split()[-2:] == ["2", "False"], out
    assert "did you mean 'relu'" in out.stdout + out.stderr


def test_train_evaluate_predict_runs(workdir):
    result = invoke("train", "spec.yaml", "--set", "train.epochs=8", "--set", "model.dropout=0.1")
    assert result.exit_code == 0, result.output
    assert "test" in result.output and "accuracy" in result.output
    run_dir = next((workdir / "runs").iterdir())
    assert run_dir.name.startswith("cli-mixed-")
    assert lf.load_run(run_dir).spec.train.epochs == 8

    result = invoke("evaluate", run_dir, "--data", "mixed.csv", "--out", "scores.json")
    assert result.exit_code == 0, result.output
    scores = json.loads((workdir / "scores.json").read_text())
    assert scores["rows"] == 120 and 0 <= scores["accuracy"] <= 1
    assert invoke("evaluate", run_dir).exit_code == 0

    pd.read_csv("mixed.csv").drop(columns=["label"]).head(7).to_csv("new.csv", index=False)
    result = invoke("predict", run_dir, "new.csv", "--out", "predictions.csv")
    assert result.exit_code == 0, result.output
    predictions = pd.read_csv("predictions.csv")
    assert list(predictions.columns) == ["label", "proba_big", "proba_small"] and len(predictions) == 7
    stdout = invoke("predict", run_dir, "new.csv")
    assert stdout.output.splitlines()[0] == "label,proba_big,proba_small"

    result = invoke("runs", "--runs-dir", "runs")
    assert result.exit_code == 0 and run_dir.name in result.output and "complete" in result.output


def test_prediction_errors_exit_nonzero_without_traceback(workdir):
    assert invoke("train", "spec.yaml", "-q").exit_code == 0
    run_dir = next((workdir / "runs").iterdir())
    frame = pd.read_csv("mixed.csv").drop(columns=["label"]).head(3)
    frame.assign(color=["red", "teal", "blue"]).to_csv("odd.csv", index=False)
    result = invoke("predict", run_dir, "odd.csv")
    assert result.exit_code == 2
    assert "unseen category 'teal' in row 2 (line 3 of odd.csv)" in result.output
    assert "Traceback" not in result.output
    assert invoke("predict", run_dir, "odd.csv", "--unknown-categories", "bucket").exit_code == 0
    frame.drop(columns=["flag"]).to_csv("short.csv", index=False)
    result = invoke("predict", run_dir, "short.csv")
    assert result.exit_code == 2 and "missing column in short.csv: flag" in result.output


def test_spec_errors_are_printed_all_at_once(workdir):
    (workdir / "bad.yaml").write_text(
        "data: {dataset: iris}\nmodel: {layers: [8, -3], activation: rleu}\ntrain: {optimizer: adma}\n"
    )
    result = invoke("train", "bad.yaml")
    assert result.exit_code == 2
    assert "3 problems in the spec in bad.yaml" in result.output
    assert "model.activation: unknown activation 'rleu' — did you mean 'relu'?" in result.output
    assert "Traceback" not in result.output
    assert not (workdir / "runs").exists() or not any((workdir / "runs").iterdir())


def test_resume_from_the_command_line(workdir):
    with pytest.raises(lf.TrainingInterrupted) as caught:
        lf.train("spec.yaml", runs_dir="runs", callbacks=[StopAfter(2)])
    result = invoke("train", "--resume", caught.value.run_dir, "-q")
    assert result.exit_code == 0, result.output
    assert len(lf.load_run(caught.value.run_dir).history) == 5
    result = invoke("train", "spec.yaml", "--resume", caught.value.run_dir)
    assert result.exit_code == 2 and "not both" in result.output


def test_non_finite_loss_exits_with_a_message(workdir):
    (workdir / "explode.yaml").write_text(
        "data: {dataset: diabetes}\ntrain: {epochs: 3, optimizer: {name: sgd, lr: 1000000.0}}\n"
    )
    result = invoke("train", "explode.yaml")
    assert result.exit_code == 1
    assert "the loss became non-finite (inf) at epoch 1, step" in result.output
    assert "Traceback" not in result.output


def test_datasets_lists_the_builtins():
    result = invoke("datasets")
    assert result.exit_code == 0
    for name in ("digits", "iris", "wine", "breast_cancer", "diabetes"):
        assert name in result.output
    assert "1797" in result.output  # digits rows


def test_version():
    assert invoke("--version").output.strip() == f"layerforge {lf.__version__}"


def test_summary_and_generate_commands(workdir):
    result = invoke("summary", "spec.yaml")
    assert result.exit_code == 0, result.output
    assert "blocks.0.linear" in result.output and "parameters: " in result.output
    assert invoke("train", "spec.yaml", "-q").exit_code == 0
    run_dir = next((workdir / "runs").iterdir())
    result = invoke("generate", run_dir, "--prompt", "x")
    assert result.exit_code == 2 and "generate is for language-model runs" in result.output
    (workdir / "corpus.txt").write_text("hello world. " * 300)
    (workdir / "lm.yaml").write_text(
        "name: lm\ndata: {path: corpus.txt, context: 16}\n"
        "model: {type: transformer, causal: true, d_model: 16, num_heads: 2, num_layers: 1}\n"
        "train: {epochs: 3, batch_size: 8, optimizer: {name: adam, lr: 0.01}}\n"
    )
    assert invoke("train", "lm.yaml", "-q").exit_code == 0
    lm_dir = next(p for p in (workdir / "runs").iterdir() if p.name.startswith("lm-"))
    result = invoke("generate", lm_dir, "--prompt", "hello", "--length", "30", "--temperature", "0.8", "--top-k", "5")
    assert result.exit_code == 0 and result.output.startswith("hello") and len(result.output.rstrip("\n")) == 35


def test_evaluate_on_a_file_labels_its_scores_with_the_file(workdir):
    assert invoke("train", "spec.yaml", "--set", "train.epochs=1").exit_code == 0
    run_dir = next((workdir / "runs").iterdir())
    result = invoke("evaluate", run_dir, "--data", "mixed.csv")
    assert result.exit_code == 0 and "mixed.csv" in result.output.splitlines()[2] and " test " not in result.output


def test_predictions_keep_a_frames_index_and_the_columns_asked_for(workdir):
    assert invoke("train", "spec.yaml", "--set", "train.epochs=1").exit_code == 0
    run_dir = next((workdir / "runs").iterdir())
    run = lf.load_run(run_dir)
    rows = pd.read_csv("mixed.csv").drop(columns=["label"]).head(6)
    rows.index = [f"customer-{i}" for i in range(6)]
    table = run.predictor.predict_table(rows)
    assert list(table.index) == list(rows.index)  # a user's row labels stay with their predictions
    rows.insert(0, "id", [f"c{i:03d}" for i in range(6)])
    rows.to_csv("with_ids.csv", index=False)
    assert invoke("export", run_dir).exit_code == 0
    outputs = []
    for backend in ("torch", "onnx"):
        result = invoke("predict", run_dir, "with_ids.csv", "--keep-columns", "id", "--backend", backend,
                        "--out", f"kept_{backend}.csv")
        assert result.exit_code == 0, result.output
        kept = pd.read_csv(f"kept_{backend}.csv")
        assert list(kept.columns) == ["id", "label", "proba_big", "proba_small"]
        assert list(kept["id"]) == [f"c{i:03d}" for i in range(6)]
        outputs.append(kept)
    assert list(outputs[0]["label"]) == list(outputs[1]["label"])
    missing = invoke("predict", run_dir, "with_ids.csv", "--keep-columns", "ref")
    assert missing.exit_code == 2 and "--keep-columns: column 'ref' is not in the rows" in missing.output
    rows.drop(columns=["id"]).assign(label="x").to_csv("clash.csv", index=False)
    clash = invoke("predict", run_dir, "clash.csv", "--keep-columns", "label")
    assert clash.exit_code == 2 and "'label' is also a column of the predictions" in " ".join(clash.output.split())
