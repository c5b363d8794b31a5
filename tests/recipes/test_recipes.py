"""The recipes and their scaffold: metric directions come from the task, the learning-rate range
test steps exactly as training does, and a GAN's findings read like the doctor's."""

import json

import numpy as np
import pytest
import torch

import layerforge as lf
from layerforge import tasks
from layerforge.recipes.lr_range import lr_range_test
from layerforge.recipes.scaffold import Scaffold
from layerforge.spec.schema import TrainSpec
from layerforge.training.optim import Schedule


def test_plateau_and_early_stopping_read_the_direction_from_the_task():
    generation = tasks.get("generation")
    assert generation.higher_is_better("val_coverage") and tasks.higher_is_better("val_coverage")
    schedule = Schedule("plateau", 1.0, 10, 4, monitor="val_coverage", patience=0, factor=0.5,
                        higher_is_better=generation.higher_is_better("val_coverage"))
    for coverage in (0.2, 0.4, 0.6, 0.8):  # coverage improving: the rate stays
        schedule.epoch_end({"val_coverage": coverage})
    assert schedule.scale == 1.0
    schedule.epoch_end({"val_coverage": 0.5})  # it fell: now the rate drops
    assert schedule.scale == 0.5
    spec = TrainSpec(schedule={"name": "plateau", "monitor": "val_coverage"},
                     early_stopping={"monitor": "val_coverage"}, device="cpu")
    scaffold = Scaffold(spec, generation())
    model = torch.nn.Linear(2, 2)
    with scaffold.fitting(model, {"optimizer": torch.optim.SGD(model.parameters(), lr=1.0)}, None, 4, has_val=True):
        assert scaffold.schedule_.mode == "max" and scaffold.early_stopping_.higher_is_better


def test_lr_find_steps_exactly_as_training_does():
    spec = {"data": {"dataset": "iris"}, "model": {"layers": [16]}, "train": {"batch_size": 16, "optimizer": "sgd"}}
    free = lr_range_test(spec, steps=60, end=3.0)
    clipped = lr_range_test({**spec, "train": {**spec["train"], "clip_grad_value": 1e-9}}, steps=60, end=3.0)
    penalised = lr_range_test({**spec, "train": {**spec["train"], "l2": 10.0}}, steps=60, end=3.0)
    assert min(free.losses) < 0.7 * free.losses[0]  # the loss falls as the rate grows
    assert min(clipped.losses) > 0.95 * clipped.losses[0]  # gradients clipped to nothing: it cannot fall
    assert penalised.suggestion < 0.01 * free.suggestion  # a huge L2 term diverges at far lower rates
    with pytest.raises(lf.SpecError, match="lr-find follows one training loss; a generation run trains with d_loss"):
        lr_range_test({"data": {"dataset": "digits"}, "model": {"type": "gan"}}, steps=10)


def test_a_gan_reports_its_findings_in_the_doctor_format(runs_dir):
    spec = {"data": {"dataset": "digits"}, "model": {"type": "gan", "latent_size": 8, "generator": [32],
                                                     "discriminator": [256, 128]},
            "train": {"epochs": 5, "optimizer": {"name": "adam", "lr": 1e-6},
                      "discriminator_optimizer": {"name": "adam", "lr": 0.01}}}
    run = lf.train(spec, runs_dir=runs_dir)
    diagnosis = json.loads((run.path / "diagnosis.json").read_text())
    found = {f["kind"]: f for f in diagnosis["findings"]}
    wins = found["discriminator_wins"]
    assert set(wins) == {"kind", "severity", "message", "fix", "evidence"}
    assert wins["severity"] == "warning" and wins["evidence"]["epoch"] >= 1
    assert "train.discriminator_optimizer.lr 0.01" in wins["message"] and "spectral_norm" in wins["fix"]
    assert diagnosis["worst"] == "warning" and run.metrics["doctor"] == {"worst": "warning",
                                                                         "findings": len(diagnosis["findings"])}


def test_trainer_builds_a_task_from_raw_targets_or_asks_for_one():
    x = np.random.default_rng(0).normal(size=(40, 3)).astype(np.float32)
    trainer = lf.Trainer(task="regression", epochs=2, batch_size=8).fit(torch.nn.Linear(3, 1), (x, x[:, :1] * 2))
    assert trainer.scaffold_.task.output_size == 1 and len(trainer.history_) == 2
    with pytest.raises(TypeError, match=r"Trainer\(task='forecasting'\) needs a task object"):
        lf.Trainer(task="forecasting", epochs=1).fit(torch.nn.Linear(3, 1), (x, x[:, :1]))
