"""`train --seeds N`: one spec under several seeds, each metric's median, range and worst seed."""

import json
import statistics
import subprocess
import sys

import pytest

import layerforge as lf

from ..conftest import tiny_spec


def test_seeds_summarise_every_metric_with_its_worst_seed(tmp_path):
    found = lf.train_seeds(tiny_spec(epochs=4), 3, runs_dir=tmp_path)
    assert [run.spec.seed for run in found.runs] == [0, 1, 2]
    assert [run.path.parent for run in found.runs] == [found.path] * 3
    accuracy = found.summary["test"]["accuracy"]
    values = [run.metrics["test"]["accuracy"] for run in found.runs]
    assert accuracy["values"] == values and accuracy["median"] == statistics.median(values)
    assert accuracy["spread"] == max(values) - min(values)
    assert values[[0, 1, 2].index(accuracy["worst_seed"])] == min(values)  # higher is better: the lowest
    loss = found.summary["test"]["loss"]
    assert [r.metrics["test"]["loss"] for r in found.runs][loss["worst_seed"]] == max(loss["values"])
    saved = json.loads((found.path / "seeds.json").read_text())
    assert saved["seeds"] == [0, 1, 2] and saved["summary"]["test"]["accuracy"]["median"] == accuracy["median"]
    page = (found.path / "seeds.html").read_text()
    assert "accuracy ranges from" in page and "val_loss" in page and page.count("<tr>") >= 4  # a row per seed
    with pytest.raises(ValueError, match="seeds: expected at least 2"):
        lf.train_seeds(tiny_spec(), 1, runs_dir=tmp_path)


def test_the_command_prints_the_range_of_the_headline(tmp_path):
    spec = tmp_path / "tiny.yaml"
    spec.write_text("name: tiny\ndata: {dataset: iris}\nmodel: {layers: [8]}\ntrain: {epochs: 3}\n")
    done = subprocess.run([sys.executable, "-m", "layerforge", "train", str(spec), "--seeds", "2", "--runs-dir",
                           str(tmp_path / "runs")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "accuracy ranges from" in done.stdout and "across 2 seeds" in done.stdout and "seeds.json" in done.stdout
    assert "layerforge ensemble" in done.stdout and "--seeds 2" in done.stdout
