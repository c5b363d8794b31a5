"""layerforge explain: attributions per original column, step or pixel, and the checks that say
whether an explanation can be trusted."""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import layerforge as lf
from layerforge.explanations import METHODS


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """Only x1 and x4 decide the label; a categorical column and four other numbers are noise."""
    folder = tmp_path_factory.mktemp("planted")
    rng = np.random.default_rng(0)
    n = 600
    frame = pd.DataFrame({f"x{i}": rng.normal(size=n) for i in range(6)})
    frame["color"] = rng.choice(["red", "green", "blue"], n)
    frame["label"] = np.where(frame["x1"] + 2 * frame["x4"] > 0, "yes", "no")
    frame.to_csv(folder / "planted.csv", index=False)
    run = lf.train({"data": {"path": str(folder / "planted.csv"), "target": "label"}, "model": {"layers": [32, 16]},
                    "train": {"epochs": 30}}, runs_dir=folder / "runs")
    return run, frame


@pytest.mark.parametrize("method", METHODS)
def test_the_two_deciding_columns_rank_first_by_every_method(planted, method):
    run, _ = planted
    found = lf.explain(run, method=method)
    assert sorted(found.importance, key=found.importance.get, reverse=True)[:2] == ["x4", "x1"]
    assert found.names == ["x0", "x1", "x2", "x3", "x4", "x5", "color"]  # one-hots summed into their column
    assert sorted(found.permutation, key=found.permutation.get, reverse=True)[:2] == ["x4", "x1"]
    assert found.checks["depends_on_weights"]


def test_integrated_gradients_is_complete_and_depends_on_the_weights_on_digits(tmp_path):
    for model in ({"type": "mlp", "layers": [64]}, {"type": "cnn", "channels": [16, 32], "head": [64]}):
        run = lf.train({"data": {"dataset": "digits_images"}, "model": model, "train": {"epochs": 8}},
                       runs_dir=tmp_path)
        found = lf.explain(run, rows=100)
        assert found.attributions.shape == (100, 1, 8, 8)
        assert found.checks["completeness_delta_max"] < 1e-2, found.checks  # every row, not only the median
        assert found.checks["randomisation_rank_correlation"] < 0.3 and found.checks["depends_on_weights"]


def test_explain_names_its_mistakes(planted, tmp_path):
    run, frame = planted
    with pytest.raises(lf.DataError, match="--method: expected one of"):
        lf.explain(run, method="lime")
    with pytest.raises(lf.DataError, match="--target: 'maybe' is not a class of this run"):
        lf.explain(run, target="maybe")
    rows = frame.drop(columns="label").head(10)
    found = lf.explain(run, rows, target="yes")
    assert found.targets == ["yes"] * 10 and found.table().shape == (10, 8)
    ae = lf.train({"data": {"dataset": "iris"}, "model": {"type": "autoencoder", "layers": [4], "latent_size": 2},
                   "train": {"epochs": 1}}, runs_dir=tmp_path)
    with pytest.raises(lf.DataError, match="classification, regression and detection runs"):
        lf.explain(ae)


def test_the_command_writes_a_csv_and_a_report_section(planted, tmp_path):
    run, _ = planted
    out = tmp_path / "attributions.csv"
    done = subprocess.run([sys.executable, "-m", "layerforge", "explain", str(run.path), "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "check depends_on_weights: True" in done.stdout and "completeness_delta_median" in done.stdout
    table = pd.read_csv(out)
    assert list(table.columns) == ["target", "x0", "x1", "x2", "x3", "x4", "x5", "color"]
    page = (run.path / "report.html").read_text()
    assert "Explanations" in page and "depends on what was learned" in page


@pytest.fixture(scope="module")
def reviews(tmp_path_factory):
    """The sentiment word alone decides the label; the other words are the same in every row."""
    folder = tmp_path_factory.mktemp("reviews")
    rng = np.random.default_rng(0)
    rows = [{"review": f"the film was {rng.choice(GOOD if i % 2 else BAD)} and {rng.choice(['long', 'short'])}",
             "sentiment": "pos" if i % 2 else "neg"} for i in range(300)]
    pd.DataFrame(rows).to_csv(folder / "reviews.csv", index=False)
    spec = {"data": {"path": str(folder / "reviews.csv"), "text": "review", "target": "sentiment",
                     "tokenizer": {"kind": "word", "max_length": 12}},
            "model": {"type": "transformer", "d_model": 16, "num_heads": 2, "num_layers": 1},
            "train": {"epochs": 15, "batch_size": 16, "optimizer": {"name": "adam", "lr": 0.01}}}
    return lf.train(spec, runs_dir=folder / "runs")


GOOD = ["great", "lovely", "excellent", "fine", "superb"]
BAD = ["awful", "poor", "terrible", "bad", "dreadful"]


@pytest.mark.parametrize("method", ["integrated_gradients", "feature_ablation", "occlusion"])
def test_text_is_explained_per_token_and_the_sentiment_words_rank_first(reviews, method, tmp_path):
    assert reviews.metrics["test"]["accuracy"] == 1.0
    found = lf.explain(reviews, method=method)
    top = sorted(found.importance, key=found.importance.get, reverse=True)[:5]
    assert set(top) <= set(GOOD + BAD), top
    assert found.tokens[0][:3] == ["the", "film", "was"] and len(found.tokens) == reviews.manifest.rows["test"]
    table = found.table()
    assert list(table.columns) == ["row", "target", "position", "token", "attribution"]
    assert len(table) == sum(len(t) for t in found.tokens)
    if method == "integrated_gradients":
        assert found.checks["completeness_delta_max"] < 1e-2 and found.checks["depends_on_weights"], found.checks
        with pytest.raises(lf.DataError, match="token inputs are explained with integrated_gradients, "
                                               "feature_ablation, occlusion; saliency moves inputs"):
            lf.explain(reviews, method="saliency")


def test_an_ensemble_is_explained_as_the_mean_of_its_members_on_shared_rows(planted, tmp_path):
    run, frame = planted
    ens = lf.ensemble({"data": run.spec.data.model_dump(), "model": {"layers": [32, 16]}, "train": {"epochs": 30}},
                      seeds=2, runs_dir=tmp_path)
    found = lf.explain(ens, target="yes")
    members = [lf.explain(member, target="yes") for member in ens.members]
    assert found.checks["members"] == 2 and found.targets == ["yes"] * len(found.attributions)
    np.testing.assert_allclose(found.attributions, np.mean([m.attributions for m in members], axis=0), atol=1e-6)
    assert found.checks["completeness_delta_max"] == max(m.checks["completeness_delta_max"] for m in members)
    assert sorted(found.importance, key=found.importance.get, reverse=True)[:2] == ["x4", "x1"]
    assert sorted(found.permutation, key=found.permutation.get, reverse=True)[:2] == ["x4", "x1"]
    predicted = lf.explain(ens, frame.drop(columns="label").head(20))  # the ensemble's own class per row
    assert predicted.targets == list(ens.predict(frame.drop(columns="label").head(20)))
    from layerforge.report.html import build_report

    assert "Explanations" in build_report(ens.path).read_text()
