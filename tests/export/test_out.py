"""``export --out`` writes only where it may: an absent or empty folder, or an earlier export of
the same run holding only what an export writes. Anything else is refused, exit 2, untouched."""

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import layerforge as lf
from layerforge.cli import app
from layerforge.errors import OutputError


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("out")
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=200), "z": rng.normal(size=200)})
    frame["y"] = np.where(frame["x"] > 0, "up", "down")
    frame.to_csv(folder / "rows.csv", index=False)
    run = lf.train({"data": {"path": str(folder / "rows.csv"), "target": "y"}, "model": {"layers": [4]},
                    "train": {"epochs": 2, "report": False}}, runs_dir=folder / "runs", progress=False)
    other = lf.train({"data": {"path": str(folder / "rows.csv"), "target": "y"}, "model": {"layers": [4]},
                      "train": {"epochs": 1, "report": False}}, runs_dir=folder / "others", progress=False)
    return run, other, folder


def _export(run, out):
    return CliRunner().invoke(app, ["export", str(run.path), "--out", str(out)])


def _snapshot(folder):
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_folder_with_a_users_file_is_refused_and_kept(trained, tmp_path):
    run, _, _ = trained
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    result = _export(run, tmp_path / "mine")
    assert result.exit_code == 2 and "is not empty and is not an earlier export" in " ".join(result.output.split())
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    assert [p.name for p in tmp_path.iterdir()] == ["mine"]  # no building folder left behind


def test_the_runs_folder_and_the_training_csv_are_refused_and_kept(trained):
    run, _, folder = trained
    runs = _snapshot(folder / "runs")
    result = _export(run, folder / "runs")
    assert result.exit_code == 2 and "left as it is" in " ".join(result.output.split())
    result = _export(run, run.path)
    assert result.exit_code == 2
    assert _snapshot(folder / "runs") == runs
    csv = (folder / "rows.csv").read_bytes()
    result = _export(run, folder / "rows.csv")
    assert result.exit_code == 2 and "is a file, not a folder" in " ".join(result.output.split())
    assert (folder / "rows.csv").read_bytes() == csv


def test_an_earlier_export_of_the_same_run_is_replaced_and_no_other(trained, tmp_path):
    run, other, _ = trained
    first = run.export(out=tmp_path / "shipped" / "model")  # a missing parent is created
    assert (first / "runtime.json").is_file()
    again = run.export(out=first)  # the same run's export: replaced
    assert (again / "model.onnx").is_file()
    with pytest.raises(OutputError, match="is not empty and is not an earlier export of"):
        other.export(out=first)
    (first / "README.txt").write_text("how to use it")
    with pytest.raises(OutputError, match="holds README.txt, which no export wrote"):
        run.export(out=first)
    assert (first / "README.txt").read_text() == "how to use it" and (first / "model.onnx").is_file()
    (tmp_path / "empty").mkdir()
    assert (run.export(out=tmp_path / "empty") / "runtime.json").is_file()
