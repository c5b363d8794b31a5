"""Transfer learning: model.init_from, model.freeze, train.unfreeze_at, train.discriminative_lr."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

import layerforge as lf
from layerforge.training.freezing import Freezer, parameter_groups


@pytest.fixture(scope="module")
def digit_halves(tmp_path_factory):
    from sklearn.datasets import load_digits

    folder = tmp_path_factory.mktemp("digits")
    frame = load_digits(as_frame=True).frame
    frame[frame.target < 5].to_csv(folder / "low.csv", index=False)
    high = frame[frame.target >= 5]
    few = pd.concat([group.head(12) for _, group in high.groupby("target")])
    few.to_csv(folder / "few.csv", index=False)
    high.drop(few.index).to_csv(folder / "rest.csv", index=False)
    return folder


def _spec(path, **model):
    return {"name": "t", "data": {"path": str(path), "target": "target"},
            "model": {"type": "mlp", "layers": [32, 16], **model}, "train": {"epochs": 3, "batch_size": 32}}


def _weights(run):
    return load_file(str(run.path / "model.safetensors"))


def test_frozen_features_keep_the_source_weights_and_new_classes_get_a_new_head(tmp_path, digit_halves):
    source = lf.train(_spec(digit_halves / "low.csv"), runs_dir=tmp_path)
    tuned = lf.train(_spec(digit_halves / "few.csv", init_from=str(source.path), freeze=["features"]),
                     runs_dir=tmp_path, overrides=["train.epochs=40", "train.optimizer.lr=0.01"])
    before, after = _weights(source), _weights(tuned)
    for name in ("blocks.0.linear.weight", "blocks.0.linear.bias", "blocks.1.linear.weight"):
        assert torch.equal(before[name], after[name])  # loaded, and frozen for the whole run
    assert before["head.weight"].shape == after["head.weight"].shape  # 5 classes each, but other classes
    assert not torch.equal(before["head.weight"], after["head.weight"])
    record = json.loads((tuned.path / "transfer.json").read_text())
    assert {r["name"] for r in record["loaded"]} == {"blocks.0.linear.weight", "blocks.0.linear.bias",
                                                      "blocks.1.linear.weight", "blocks.1.linear.bias"}
    assert {(r["name"], r["why"]) for r in record["new"]} == {("head.weight", "the output layer of other classes"),
                                                              ("head.bias", "the output layer of other classes")}
    assert tuned.evaluate(digit_halves / "rest.csv")["accuracy"] > 0.3  # chance: 0.2


def test_unfreezing_lets_the_features_learn_again(tmp_path, digit_halves):
    source = lf.train(_spec(digit_halves / "low.csv"), runs_dir=tmp_path)
    spec = _spec(digit_halves / "few.csv", init_from=str(source.path), freeze=["blocks.0"])
    spec["train"].update(epochs=4, unfreeze_at=3)
    tuned = lf.train(spec, runs_dir=tmp_path)
    assert not torch.equal(_weights(source)["blocks.0.linear.weight"], _weights(tuned)["blocks.0.linear.weight"])
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 1))
    freezer = Freezer(model, ["0.weight", "0.bias"], unfreeze_at=3)
    seen = []
    for epoch in range(4):
        freezer.on_epoch_start(None, epoch)
        seen.append(model[0].weight.requires_grad)
    assert seen == [False, False, True, True] and model[1].weight.requires_grad


def test_discriminative_rates_fall_away_from_the_output(tmp_path, digit_halves):
    from layerforge.models.check import checked_build
    from layerforge.models.configs import MLPConfig
    from layerforge.models.inputs import Inputs

    model = checked_build(MLPConfig(layers=[8, 4]), Inputs.table(6), 3, 3)
    groups = parameter_groups(model, 0.01, 0.5)
    assert [g["lr"] for g in groups] == pytest.approx([0.01, 0.005, 0.0025])
    assert groups[0]["params"][0] is model.head.weight
    spec = _spec(digit_halves / "few.csv")
    spec["train"].update(discriminative_lr=0.5, schedule={"name": "cosine"}, optimizer={"name": "adamw", "lr": 0.01})
    run = lf.train(spec, runs_dir=tmp_path)
    assert run.history[0]["lr"] == pytest.approx(0.01, rel=0.2) and run.metrics["test"]["accuracy"] > 0


def test_an_autoencoders_encoder_starts_a_classifier(tmp_path, digit_halves):
    pretrained = lf.train({"name": "ae", "data": {"path": str(digit_halves / "rest.csv"), "target": "target"},
                           "task": "reconstruction",
                           "model": {"type": "autoencoder", "layers": [32, 16], "latent_size": 8},
                           "train": {"epochs": 2}}, runs_dir=tmp_path)
    tuned = lf.train(_spec(digit_halves / "few.csv", layers=[32, 16, 8], init_from=str(pretrained.path),
                           freeze=["features"]), runs_dir=tmp_path)
    record = json.loads((tuned.path / "transfer.json").read_text())
    pairs = {r["name"]: r["from"] for r in record["loaded"]}
    assert pairs == {"blocks.0.linear.weight": "encoder.1.linear.weight", "blocks.0.linear.bias": "encoder.1.linear.bias",
                     "blocks.1.linear.weight": "encoder.2.linear.weight", "blocks.1.linear.bias": "encoder.2.linear.bias",
                     "blocks.2.linear.weight": "to_latent.weight", "blocks.2.linear.bias": "to_latent.bias"}
    assert torch.equal(_weights(pretrained)["to_latent.weight"], _weights(tuned)["blocks.2.linear.weight"])


def test_transfer_mistakes_are_named(tmp_path, digit_halves):
    few = digit_halves / "few.csv"
    with pytest.raises(lf.SpecError, match="model.freeze: 'nope' names no parameter.*blocks.0, blocks.1, head"):
        lf.train(_spec(few, freeze=["nope"]), runs_dir=tmp_path)
    with pytest.raises(lf.SpecError, match="freezes every parameter"):
        lf.train(_spec(few, freeze=["*"]), runs_dir=tmp_path)
    with pytest.raises(lf.DataError, match="model.init_from: .*missing is not a complete run directory"):
        lf.train(_spec(few, init_from=str(tmp_path / "missing")), runs_dir=tmp_path)
    spec = _spec(few)
    spec["train"]["unfreeze_at"] = 2
    with pytest.raises(lf.SpecError, match="train.unfreeze_at: nothing is frozen"):
        lf.train(spec, runs_dir=tmp_path)
    other = lf.train({"data": {"dataset": "iris"}, "model": {"layers": [4]}, "train": {"epochs": 1}},
                     runs_dir=tmp_path)
    with pytest.raises(lf.DataError, match="no tensor of .* fits this model"):
        lf.train(_spec(few, layers=[7], init_from=str(other.path)), runs_dir=tmp_path)
    assert not list((tmp_path).glob("t-*"))  # nothing was written for the refused runs
    assert np.isfinite(other.metrics["test"]["loss"])
