"""The doctor's verdicts on networks built to fail in one known way, and on a healthy one."""

import json

import pytest
import torch

import layerforge as lf
from layerforge.doctor.verdicts import SEVERITIES


def _findings(run):
    return json.loads((run.path / "diagnosis.json").read_text())["findings"]


def _kinds(findings, at_least="warning"):
    return {f["kind"]: f for f in findings if SEVERITIES.index(f["severity"]) >= SEVERITIES.index(at_least)}


def test_deep_sigmoid_network_has_vanishing_gradients_in_its_first_layers(runs_dir):
    spec = {"data": {"dataset": "digits"}, "model": {"layers": [32] * 20, "activation": "sigmoid", "init": "default"},
            "train": {"epochs": 4}}
    finding = _kinds(_findings(lf.train(spec, runs_dir=runs_dir)))["vanishing_gradients"]
    layers = finding["evidence"]["layers"]
    assert layers[:3] == ["blocks.0.linear", "blocks.1.linear", "blocks.2.linear"]
    assert finding["evidence"]["ratio"] < 1e-6
    assert "blocks.0.linear" in finding["message"] and "relu" in finding["fix"]


def _exploding(**train):
    return {"name": "explode", "data": {"dataset": "diabetes"}, "model": {"layers": [64, 64]},
            "train": {"epochs": 15, "optimizer": {"name": "sgd", "lr": 10}, **train}}


def test_learning_rate_10_explodes_and_the_diagnosis_survives_the_failure(runs_dir):
    with pytest.raises(lf.TrainingError, match=r"non-finite .* at epoch 1, step \d+"):
        lf.train(_exploding(), runs_dir=runs_dir)
    run_dir = next(runs_dir.glob("explode-*"))
    diagnosis = json.loads((run_dir / "diagnosis.json").read_text())
    assert diagnosis["worst"] == "error" and "non-finite" in diagnosis["failure"]
    finding = _kinds(diagnosis["findings"], "error")["exploding_gradients"]
    assert "train.optimizer.lr" in finding["fix"] and "rollback" in finding["fix"]


def test_rollback_recovers_from_a_diverging_run(runs_dir):
    run = lf.train(_exploding(on_divergence="rollback"), runs_dir=runs_dir)
    assert all(torch.isfinite(torch.tensor(r["train_loss"])) for r in run.history)
    assert run.metrics["test"]["r2"] > 0.2 and run.metrics["rollbacks"] >= 1
    rollbacks = [f for f in _findings(run) if f["kind"] == "rollback"]
    assert rollbacks[0]["evidence"]["lr_before"] == 10 and rollbacks[0]["evidence"]["lr_after"] == 1
    assert rollbacks[0]["evidence"]["restored_epoch"] == 0 and "non-finite" in rollbacks[0]["message"]
    assert run.history[-1]["lr"] == pytest.approx(10 / 10 ** len(rollbacks))


def test_relu_layers_with_large_negative_bias_are_mostly_dead():
    from sklearn.datasets import load_iris

    x, y = load_iris(return_X_y=True)
    x = (x - x.mean(0)) / x.std(0)
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(4, 64), torch.nn.ReLU(), torch.nn.Linear(64, 64), torch.nn.ReLU(),
                                 torch.nn.Linear(64, 3))
    with torch.no_grad():
        module[0].bias.fill_(-3.0)
        module[2].bias.fill_(-3.0)
    doctor = lf.Doctor()
    trainer = lf.Trainer(task="classification", epochs=5, batch_size=16, callbacks=[doctor])
    trainer.fit(module, (x, y))
    findings = _kinds(lf.diagnose(doctor.measurements, trainer.history_, task="classification", classes=3))
    dead = findings["dead_units"]
    assert dead["evidence"]["fraction"] > 0.5 and dead["evidence"]["layer"] in ("1", "3")
    assert "leaky_relu" in dead["fix"]


@pytest.mark.parametrize("every", [1, 5])
def test_wide_network_on_50_rows_overfits_and_the_doctor_says_when(runs_dir, every):
    spec = {"data": {"dataset": "breast_cancer", "split": {"val": 0.45, "test": 0.46}},
            "model": {"layers": [512, 512]},
            "train": {"epochs": 300, "batch_size": 16, "optimizer": {"name": "adam", "lr": 0.001},
                      "validate_every": every}}
    run = lf.train(spec, runs_dir=runs_dir)
    assert run.meta["rows"]["train"] == 51
    finding = _kinds(_findings(run))["overfitting"]
    validated = [r for r in run.history if "val_loss" in r]
    assert len(validated) == 300 // every
    best = min(validated, key=lambda r: r["val_loss"])["epoch"]
    assert finding["evidence"]["best_epoch"] == best and finding["evidence"]["began"] == best + 1
    assert f"overfitting from epoch {best + 1}" in finding["message"]
    assert "early_stopping" in finding["fix"]


def test_the_default_digits_run_is_healthy(runs_dir):
    run = lf.train(runs_dir=runs_dir)
    findings = _findings(run)
    assert _kinds(findings) == {}, findings
    diagnosis = json.loads((run.path / "diagnosis.json").read_text())
    assert diagnosis["measured_steps"] >= 2 * run.metrics["epochs"] - 1
    assert diagnosis["layers"] == ["blocks.0.linear", "blocks.1.linear", "head"]


def test_doctor_off_writes_no_measurements(runs_dir):
    run = lf.train({"data": {"dataset": "iris"}, "train": {"epochs": 2, "doctor": False}}, runs_dir=runs_dir)
    assert not (run.path / "doctor.jsonl").exists()
    assert json.loads((run.path / "diagnosis.json").read_text())["findings"] == []


def test_a_resumed_run_keeps_the_measurements_of_its_first_epochs(runs_dir):
    class StopAfter(lf.Callback):
        def on_epoch_end(self, trainer, record):
            if record["epoch"] == 2:
                raise KeyboardInterrupt

    spec = {"data": {"dataset": "iris"}, "model": {"layers": [8]}, "train": {"epochs": 4, "batch_size": 16}}
    with pytest.raises(lf.TrainingInterrupted) as caught:
        lf.train(spec, runs_dir=runs_dir, callbacks=[StopAfter()])
    resumed = lf.train(resume=caught.value.run_dir)
    full = lf.train(spec, runs_dir=runs_dir)
    read = [json.loads(line) for line in (resumed.path / "doctor.jsonl").read_text().splitlines()]
    expected = [json.loads(line) for line in (full.path / "doctor.jsonl").read_text().splitlines()]
    assert [(m["epoch"], m["step"]) for m in read] == [(m["epoch"], m["step"]) for m in expected]
    assert read == expected


def _measured(epochs=10, **per_step):
    """Synthetic measurements: two layers, the same values at every measured step."""
    base = {"grad_norm": {"a": 1.0, "b": 1.0}, "grad_rms": {"a": 0.1, "b": 0.1}, "update_ratio": {"a": 1e-3, "b": 1e-3}}
    return [{"epoch": e, "step": 0, "loss": 1.0, **base, **per_step} for e in range(1, epochs + 1)]


def _history(train, val=None):
    return [{"epoch": i + 1, "lr": 0.01, "train_loss": t, **({"val_loss": val[i]} if val else {})}
            for i, t in enumerate(train)]


@pytest.mark.parametrize("make", [
    lambda: torch.relu(torch.randn(16, 32, 12, 12)).contiguous(memory_format=torch.channels_last),
    lambda: torch.sigmoid(torch.randn(64, 100) * 0.01 + 9),  # a spread near float32's resolution at its mean
    lambda: torch.randn(2, 3) + 1e4,
    lambda: torch.tanh(torch.randn(64, 100)).bfloat16(),
])
def test_the_activations_spread_is_torch_std_mean(make):
    from layerforge.doctor.monitor import _std_mean

    torch.manual_seed(0)
    x = make()
    std, mean = _std_mean(x)
    expected_std, expected_mean = torch.std_mean(x.double())
    assert float(std) == pytest.approx(float(expected_std), rel=1e-6)
    assert float(mean) == pytest.approx(float(expected_mean), rel=1e-6)
    assert _std_mean(torch.tensor([3.0])) == (0.0, 3.0)


def test_saturated_tanh_units_are_reported():
    measurements = _measured(activations={"blocks.0.activation": {"saturated": 0.8, "mean": 0.0, "std": 1.0}})
    found = _kinds(lf.diagnose(measurements, _history([1.0] * 10)))
    assert found["saturation"]["evidence"] == {"layer": "blocks.0.activation", "fraction": 0.8}


def test_learning_rate_verdicts_from_the_update_size():
    high = _kinds(lf.diagnose(_measured(update_ratio={"a": 0.5, "b": 0.3}), _history([1.0, 0.9, 0.8])))
    assert "learning_rate_too_high" in high and "40.0%" in high["learning_rate_too_high"]["message"]
    low = _kinds(lf.diagnose(_measured(update_ratio={"a": 1e-8, "b": 1e-8}), _history([1.0, 0.99, 0.99])))
    assert "learning_rate_too_low" in low


def test_underfitting_and_plateau_near_chance_loss():
    found = _kinds(lf.diagnose(_measured(), _history([2.3] * 20), task="classification", classes=10))
    assert {"underfitting", "plateau"} <= set(found)
    assert found["underfitting"]["evidence"]["chance_loss"] == pytest.approx(2.302585, rel=1e-5)
    healthy = lf.diagnose(_measured(), _history([2.3, 1.0, 0.5, 0.3, 0.2, 0.1]), task="classification", classes=10)
    assert _kinds(healthy) == {}


def test_a_large_generalisation_gap_is_overfitting_even_when_validation_loss_never_rises():
    flat = [{"epoch": e, "train_loss": 2.3 * 0.5**e, "val_loss": 2.7 - 0.001 * e} for e in range(1, 21)]
    finding = _kinds(lf.diagnose([], flat, task="classification", classes=10))["overfitting"]
    assert finding["evidence"]["best_val_loss"] == pytest.approx(2.68)
    assert finding["evidence"]["gap"] == pytest.approx(2.68 - 2.3 * 0.5**20)
    assert "generalisation gap" in finding["message"] and "never went below 2.68" in finding["message"]
    healthy = [{"epoch": e, "train_loss": 2.3 * 0.8**e + 0.01, "val_loss": 2.3 * 0.8**e + 0.09} for e in range(1, 21)]
    assert "overfitting" not in _kinds(lf.diagnose([], healthy, task="classification", classes=10))


def test_a_big_network_memorising_40_rows_is_told_it_overfits(runs_dir, tmp_path):
    from sklearn.datasets import load_digits

    frame = load_digits(as_frame=True).frame.sample(40, random_state=0)
    frame.to_csv(tmp_path / "digits40.csv", index=False)
    spec = {"data": {"path": str(tmp_path / "digits40.csv"), "target": "target"},
            "model": {"layers": [1024, 1024]}, "train": {"epochs": 40}}
    run = lf.train(spec, runs_dir=runs_dir)
    assert run.history[-1]["train_loss"] < 1e-3
    assert "overfitting" in _kinds(_findings(run))
