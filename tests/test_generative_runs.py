"""Autoencoder and GAN runs end to end on digits: metrics, pictures, codes, anomaly scores,
samples, resume and the warnings a failing GAN gives."""


import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

import layerforge as lf
from layerforge.cli import app
from layerforge.data.builtin import load
from layerforge.training.checkpoint import load_weights


def _ae(runs_dir, epochs=8, name="ae", **model):
    spec = {"name": name, "data": {"dataset": "digits"},
            "model": {"type": "autoencoder", "layers": [64], "latent_size": 4, **model},
            "train": {"epochs": epochs, "batch_size": 64, "optimizer": {"name": "adam", "lr": 0.003}}}
    return spec, lf.train(spec, runs_dir=runs_dir)


def _gan(epochs=3, **model):
    return {"name": "gan", "data": {"dataset": "digits"},
            "model": {"type": "gan", "latent_size": 8, "generator": [32], "discriminator": [32], **model},
            "train": {"epochs": epochs, "batch_size": 64,
                      "optimizer": {"name": "adam", "lr": 0.001, "betas": [0.5, 0.999]}}}


def _strip(history):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in history]


def test_autoencoder_run_gives_codes_scores_pictures_and_knn_accuracy(runs_dir, tmp_path):
    _, run = _ae(runs_dir)
    assert run.meta["task"] == "reconstruction" and run.spec.task == "reconstruction"
    test = run.metrics["test"]
    assert test["mse"] < 0.6 and test["noisy_mse"] > test["mse"]
    assert test["latent_knn_accuracy"] > 0.8  # 4-D codes of an 8-epoch model already separate digits
    for picture in ("reconstructions", "latent"):
        path = run.path / run.metrics["pictures"][picture]
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = load("digits").head(7)
    codes = run.embed(rows)
    assert codes.shape == (7, 4)
    scores = run.predict(rows)
    assert scores.shape == (7,) and (scores > 0).all()
    with pytest.raises(lf.DataError, match="no anomaly threshold"):
        run.anomalies(rows)
    with pytest.raises(lf.DataError, match="variational"):
        run.sample(4)
    csv = tmp_path / "rows.csv"
    rows.to_csv(csv, index=False)
    out = tmp_path / "codes.csv"
    result = CliRunner().invoke(app, ["embed", str(run.path), str(csv), "--out", str(out)])
    assert result.exit_code == 0, result.output
    written = pd.read_csv(out)
    assert list(written.columns) == ["label", "z0", "z1", "z2", "z3"]
    np.testing.assert_allclose(written[["z0", "z1", "z2", "z3"]].to_numpy(), codes, rtol=1e-5)


def test_denoising_recovers_noisy_inputs_better_than_plain(runs_dir):
    noise = {"kind": "gaussian", "amount": 0.5}
    _, plain = _ae(runs_dir, epochs=25, latent_size=16, layers=[128], noise=noise)
    _, denoising = _ae(runs_dir, epochs=25, latent_size=16, layers=[128], noise=noise, variant="denoising")
    assert denoising.metrics["test"]["noisy_mse"] < 0.9 * plain.metrics["test"]["noisy_mse"]


def test_anomaly_classes_are_held_out_and_scored(runs_dir, tmp_path):
    spec = {"name": "anomaly", "data": {"dataset": "digits", "anomaly_classes": [9]},
            "model": {"type": "autoencoder", "layers": [64], "latent_size": 8, "threshold_quantile": 0.9},
            "train": {"epochs": 10, "optimizer": {"name": "adam", "lr": 0.003}}}
    run = lf.train(spec, runs_dir=runs_dir)
    from layerforge.data.prepare import prepare

    prepared = prepare(run.spec.data, "reconstruction", run.spec.seed)
    nine = prepared.classes.index(9)
    assert not (prepared.splits["train"][1] == nine).any() and not (prepared.splits["val"][1] == nine).any()
    assert (prepared.splits["test"][1] == nine).sum() == 180  # every 9 of the dataset
    test = run.metrics["test"]
    assert test["anomaly_rows"] == 180 and test["anomaly_roc_auc"] > 0.75
    val_scores = run.predict(pd.DataFrame(prepared.splits["val"][0][0]).pipe(_unscaled, run))
    assert run.meta["anomaly"]["threshold"] == pytest.approx(np.quantile(val_scores, 0.9), rel=1e-4)
    scores, flags = run.anomalies(load("digits"))
    assert flags.dtype == bool and flags.mean() < 0.5
    assert (run.path / run.metrics["pictures"]["anomaly_scores"]).is_file()
    with pytest.raises(lf.DataError, match=r"data.anomaly_classes: 11 is not a class of digits"):
        lf.train({**spec, "data": {"dataset": "digits", "anomaly_classes": [11]}}, runs_dir=runs_dir)


def _unscaled(frame, run):
    """Standardised rows back to pixel columns, as a user would pass them."""
    from layerforge.data.tabular import Preprocessor

    return Preprocessor.from_json(run.meta["preprocessing"]).inverse_transform(frame.to_numpy())


def test_variational_autoencoder_samples_are_reproducible(runs_dir, tmp_path):
    _, run = _ae(runs_dir, epochs=5, variant="variational", beta=0.5)
    assert run.metrics["test"]["kl"] > 0
    a, b, c = run.sample(6, seed=1), run.sample(6, seed=1), run.sample(6, seed=2)
    assert a.shape == (6, 64) and np.array_equal(a, b) and not np.array_equal(a, c)
    assert (run.path / "images" / "samples.png").is_file()
    table = run.write_samples(tmp_path / "s.csv", 5)
    assert list(pd.read_csv(table).columns)[:2] == ["pixel_0_0", "pixel_0_1"]


def test_conditional_gan_run_metrics_samples_and_save_load(runs_dir, tmp_path):
    run = lf.train(_gan(epochs=3, conditional=True, ema=0.9), runs_dir=runs_dir)
    record = run.history[-1]
    assert {"train_d_loss", "train_g_loss", "val_frechet", "val_class_accuracy", "val_coverage",
            "val_diversity"} <= set(record)
    assert run.metrics["test"]["real_frechet"] < run.metrics["test"]["frechet"]
    assert run.meta["evaluator"]["test_accuracy"] > 0.9  # the judge itself is a good digits classifier
    assert (run.path / "evaluator.safetensors").is_file()
    assert (run.path / run.metrics["pictures"]["samples"]).is_file()
    assert (run.path / run.metrics["pictures"]["frechet"]).is_file()
    # a fresh process sees the same samples for a seed
    again = lf.load_run(run.path)
    assert np.array_equal(run.sample(10, seed=3), again.sample(10, seed=3))
    assert np.array_equal(again.sample(10, label=4, seed=3), again.sample(10, label="4", seed=3))
    assert again.evaluate()["frechet"] == pytest.approx(run.metrics["test"]["frechet"], rel=1e-6)
    result = CliRunner().invoke(app, ["sample", str(run.path), "--n", "20", "--label", "3", "--out",
                                      str(tmp_path / "threes.csv")])
    assert result.exit_code == 0, result.output
    assert set(pd.read_csv(tmp_path / "threes.csv")["label"]) == {3}
    with pytest.raises(lf.DataError, match="label 12 is not a class"):
        run.sample(3, label=12)
    with pytest.raises(lf.DataError, match="use sample"):
        run.predict(load("digits").head(2))


@pytest.mark.parametrize(("loss", "blocks"), [("non_saturating", "mlp"), ("hinge", "mlp"),
                                              ("wasserstein_gp", "mlp"), ("hinge", "cnn")])
def test_every_gan_loss_trains_with_finite_losses(runs_dir, loss, blocks):
    spec = _gan(epochs=2, spectral_norm=loss == "hinge")
    spec["train"]["loss"] = loss
    spec["train"]["discriminator_steps"] = 2 if loss == "wasserstein_gp" else 1
    spec["train"]["discriminator_optimizer"] = {"name": "adam", "lr": 0.002, "betas": [0.0, 0.9]}
    if blocks == "cnn":
        spec["data"] = {"dataset": "digits_images"}
        spec["model"].update(blocks="cnn", generator=[16, 8], discriminator=[8, 16])
    run = lf.train(spec, runs_dir=runs_dir)
    for record in run.history:
        assert np.isfinite(record["train_d_loss"]) and np.isfinite(record["train_g_loss"])
    assert np.isfinite(run.metrics["test"]["frechet"])


def test_gan_resume_gives_the_weights_of_an_uninterrupted_run(runs_dir):
    class StopAfter(lf.Callback):
        def on_epoch_end(self, trainer, record):
            if record["epoch"] == 2:
                raise KeyboardInterrupt

    spec = _gan(epochs=4, conditional=True, ema=0.9, spectral_norm=True)
    spec["train"]["schedule"] = {"name": "cosine"}
    spec["train"]["discriminator_optimizer"] = {"name": "adam", "lr": 0.002}
    full = lf.train(spec, runs_dir=runs_dir)
    with pytest.raises(lf.TrainingInterrupted) as caught:
        lf.train(spec, runs_dir=runs_dir, callbacks=[StopAfter()])
    resumed = lf.train(resume=caught.value.run_dir)
    a, b = load_weights(full.path / "model.safetensors"), load_weights(resumed.path / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert _strip(full.history) == _strip(resumed.history)
    assert full.metrics["test"] == resumed.metrics["test"]


def test_a_gan_whose_discriminator_wins_is_reported(runs_dir):
    spec = _gan(epochs=5)
    spec["train"]["optimizer"] = {"name": "adam", "lr": 1e-6}
    spec["train"]["discriminator_optimizer"] = {"name": "adam", "lr": 0.01}
    spec["model"]["discriminator"] = [256, 128]
    run = lf.train(spec, runs_dir=runs_dir)
    kinds = {f["kind"]: f for f in run.metrics["findings"]}
    assert "discriminator_wins" in kinds
    assert "discriminator_optimizer.lr" in kinds["discriminator_wins"]["message"]


def test_a_healthy_gan_has_no_findings(runs_dir):
    run = lf.train(_gan(epochs=4, conditional=True), runs_dir=runs_dir)
    assert run.metrics["findings"] == []


def test_an_unlabelled_table_trains_an_autoencoder_and_a_gan(runs_dir, tmp_path):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(200, 5)) @ rng.normal(size=(5, 5)), columns=list("abcde"))
    path = tmp_path / "unlabelled.csv"
    frame.to_csv(path, index=False)
    ae = lf.train({"data": {"path": str(path)}, "model": {"type": "autoencoder", "latent_size": 2},
                   "train": {"epochs": 2}}, runs_dir=runs_dir)
    assert ae.meta["target"] is None and ae.embed(frame).shape == (200, 2)
    gan = lf.train({"data": {"path": str(path)}, "model": {"type": "gan", "latent_size": 4},
                    "train": {"epochs": 2}}, runs_dir=runs_dir)
    assert "coverage" not in gan.metrics["test"] and np.isfinite(gan.metrics["test"]["frechet"])
    samples = gan.write_samples(tmp_path / "rows.csv", 7)
    assert list(pd.read_csv(samples).columns) == list("abcde")
    with pytest.raises(lf.DataError, match="not images; write a .csv"):
        gan.write_samples(tmp_path / "rows.png", 7)


def test_generative_spec_errors():
    from layerforge.spec.load import load_spec

    cases = [
        ({"model": {"type": "gan"}, "task": "classification"}, "task: a gan is trained for task 'generation'"),
        ({"model": {"type": "mlp"}, "train": {"discriminator_optimizer": "adam"}},
         "train.discriminator_optimizer: only a gan has a discriminator"),
        ({"model": {"type": "mlp"}, "data": {"dataset": "digits", "anomaly_classes": [9]}},
         "data.anomaly_classes: anomaly detection needs model type autoencoder"),
        ({"model": {"type": "autoencoder", "beta": 2}}, "model.beta: beta weighs the KL term"),
        ({"model": {"type": "autoencoder", "noise": {"kind": "mask", "amount": 1.5}}}, "model.noise.amount"),
        ({"model": {"type": "gan"}, "train": {"early_stopping": True}}, "a gan has no validation loss"),
        ({"model": {"type": "gan"}, "train": {"loss": "cross_entropy"}}, "does not suit task 'generation'"),
        ({"model": {"type": "autoencoder", "blocks": "cnn"}}, "cnn blocks read sequences or images"),
    ]
    for change, message in cases:
        spec = {"data": {"dataset": "digits"}, **change}
        with pytest.raises(lf.SpecError, match=message.replace(".", r"\.").replace("(", r"\(")):
            load_spec(spec)
    spec = load_spec({"data": {"dataset": "digits"}, "model": {"type": "gan"},
                      "train": {"early_stopping": {"monitor": "val_frechet"}}})
    assert spec.task == "generation"
    with pytest.raises(lf.SpecError, match="model.generator: 4 blocks double the size 4 times"):
        lf.train({"data": {"dataset": "digits_images"}, "model": {"type": "gan", "blocks": "cnn",
                                                                  "generator": [8, 8, 8, 8]}})


def test_gan_early_stopping_on_the_frechet_distance_keeps_the_best_generator(runs_dir):
    spec = _gan(epochs=8)
    spec["train"]["early_stopping"] = {"monitor": "val_frechet", "patience": 2, "min_delta": 1e9}
    run = lf.train(spec, runs_dir=runs_dir)
    assert run.metrics["stopped_early"] and run.metrics["epochs"] == 3 and run.metrics["best_epoch"] == 1
    # the restored weights are epoch 1's: validating them again gives epoch 1's distance
    assert run.metrics["val"]["frechet"] == pytest.approx(run.history[0]["val_frechet"], rel=1e-9)


def test_convolutional_autoencoder_on_digit_images(runs_dir):
    spec = {"data": {"dataset": "digits_images"},
            "model": {"type": "autoencoder", "blocks": "cnn", "channels": [8, 16], "latent_size": 8,
                      "variant": "variational", "beta": 0.5},
            "train": {"epochs": 4, "optimizer": {"name": "adam", "lr": 0.003}}}
    run = lf.train(spec, runs_dir=runs_dir)
    assert run.metrics["test"]["mse"] < 1.0 and run.metrics["test"]["latent_knn_accuracy"] > 0.5
    assert set(run.metrics["pictures"]) == {"reconstructions", "latent", "samples"}
    samples = run.sample(3, seed=0)
    assert samples.shape == (3, 1, 8, 8)


def test_generative_runs_without_held_out_rows_still_finish(runs_dir):
    split = {"val": 0, "test": 0}
    ae = lf.train({"data": {"dataset": "iris", "split": split},
                   "model": {"type": "autoencoder", "layers": [8], "latent_size": 2}, "train": {"epochs": 2}},
                  runs_dir=runs_dir)
    assert "test" not in ae.metrics and (ae.path / ae.metrics["pictures"]["latent"]).is_file()
    gan = lf.train({"data": {"dataset": "digits", "split": split},
                    "model": {"type": "gan", "generator": [8], "discriminator": [8]}, "train": {"epochs": 2}},
                   runs_dir=runs_dir)
    assert (gan.path / gan.metrics["pictures"]["samples"]).is_file() and (gan.path / "report.html").is_file()
