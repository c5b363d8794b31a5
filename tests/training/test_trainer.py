import json

import numpy as np
import pytest
import torch

import layerforge as lf
from layerforge import CheckpointError, TrainingError
from layerforge.training import losses
from layerforge.training.checkpoint import checkpoint_dirs, load_weights
from tests.conftest import tiny_spec


def _strip(history):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in history]


def _weights(run):
    return load_weights(run.path / "model.safetensors")


def test_trainer_fits_your_own_module():
    from sklearn.datasets import load_breast_cancer

    x, y = load_breast_cancer(return_X_y=True)
    x = (x - x.mean(0)) / x.std(0)
    module = torch.nn.Sequential(torch.nn.Linear(30, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
    trainer = lf.Trainer(task="classification", epochs=30, batch_size=32,
                         optimizer={"name": "adam", "lr": 0.01}, early_stopping={"patience": 5})
    assert trainer.fit(module, (x[:450], y[:450]), (x[450:], y[450:])) is trainer
    assert trainer.history_[-1]["val_accuracy"] > 0.93
    assert set(trainer.history_[0]) == {"epoch", "lr", "train_loss", "val_loss", "val_accuracy",
                                        "val_f1_macro", "val_roc_auc", "val_nll", "val_ece", "val_brier", "seconds"}
    with pytest.raises(lf.SpecError, match="train.optimizer.name: unknown optimizer 'adma'"):
        lf.Trainer(optimizer="adma")


def test_same_seed_gives_bitwise_identical_runs(runs_dir):
    spec = tiny_spec(epochs=4, optimizer="sgd")
    spec["model"].update(dropout=0.3, norm="batch")
    a, b = lf.train(spec, runs_dir=runs_dir), lf.train(spec, runs_dir=runs_dir)
    assert a.path != b.path
    assert _strip(a.history) == _strip(b.history)
    wa, wb = _weights(a), _weights(b)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    c = lf.train(spec, overrides=["seed=1"], runs_dir=runs_dir)
    assert _strip(c.history) != _strip(a.history)


class StopAfter(lf.Callback):
    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_end(self, trainer, record):
        if record["epoch"] == self.epoch:
            raise KeyboardInterrupt


@pytest.mark.parametrize("schedule", ["onecycle", "plateau"])
def test_resume_gives_the_weights_of_an_uninterrupted_run(runs_dir, schedule):
    spec = tiny_spec(epochs=7, schedule={"name": schedule, "warmup_epochs": 1},
                     early_stopping={"patience": 20}, optimizer={"name": "adamw", "lr": 0.01})
    spec["model"].update(dropout=0.2, norm="batch")
    full = lf.train(spec, runs_dir=runs_dir)
    with pytest.raises(lf.TrainingInterrupted) as caught:
        lf.train(spec, runs_dir=runs_dir, callbacks=[StopAfter(3)])
    interrupted = caught.value.run_dir
    assert caught.value.epoch == 3 and not (interrupted / "model.safetensors").exists()
    assert len((interrupted / "history.jsonl").read_text().splitlines()) == 3
    resumed = lf.train(resume=interrupted)
    assert resumed.path == interrupted
    wa, wb = _weights(full), _weights(resumed)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert _strip(full.history) == _strip(resumed.history)
    assert full.metrics["test"] == resumed.metrics["test"]
    with pytest.raises(CheckpointError, match="already finished"):
        lf.train(resume=interrupted)


def test_a_resumed_cnn_keeps_its_adam_moments_laid_out_like_its_weights(runs_dir):
    # 2-D convolutions train channels last on the CPU; a checkpoint keeps tensors contiguous, and
    # the fused Adam step reads moments and weights in memory order, so the restored moments must
    # be laid out as the weights are or the resumed run goes astray
    spec = {"data": {"dataset": "digits_images"}, "model": {"type": "cnn", "channels": [4, 8], "head": [8]},
            "train": {"epochs": 3, "batch_size": 64, "optimizer": {"name": "adam", "lr": 0.01}}}
    full = lf.train(spec, runs_dir=runs_dir)
    assert full.model.blocks[1].conv.weight.is_contiguous(memory_format=torch.channels_last)
    with pytest.raises(lf.TrainingInterrupted) as caught:
        lf.train(spec, runs_dir=runs_dir, callbacks=[StopAfter(1)])
    resumed = lf.train(resume=caught.value.run_dir)
    wa, wb = _weights(full), _weights(resumed)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert full.metrics["test"] == resumed.metrics["test"]


def test_channels_last_where_it_was_measured_to_pay(monkeypatch):
    import platform

    from layerforge.models.protocol import channels_last_pays

    conv, dense = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3)), torch.nn.Sequential(torch.nn.Linear(4, 2))
    cpu = torch.device("cpu")
    assert not channels_last_pays(dense, cpu) and not channels_last_pays(dense, torch.device("cuda"))
    assert channels_last_pays(conv, torch.device("cuda"))
    monkeypatch.setattr(platform, "machine", lambda: "x86_64")
    assert channels_last_pays(conv, cpu) == torch.backends.mkldnn.is_available()
    monkeypatch.setattr(platform, "machine", lambda: "arm64")  # not measured there: left as it was
    assert not channels_last_pays(conv, cpu)


def test_resume_refuses_spec_changes_but_may_extend_epochs(runs_dir):
    with pytest.raises(lf.TrainingInterrupted) as caught:
        lf.train(tiny_spec(epochs=4), runs_dir=runs_dir, callbacks=[StopAfter(2)])
    with pytest.raises(lf.SpecError, match="--set model.layers: a resumed run keeps its spec"):
        lf.train(resume=caught.value.run_dir, overrides=["model.layers=[4]"])
    run = lf.train(resume=caught.value.run_dir, overrides=["train.epochs=5"])
    assert run.metrics["epochs"] == 5 and len(run.history) == 5


def test_a_spec_digest_survives_new_keys_and_runs_of_earlier_versions_still_resume(runs_dir):
    """The digest covers what a spec sets (keys that differ from their defaults): a new key with
    a default leaves it as it was; a run written before a key existed (whose model.json holds the
    digest of its whole resolved spec, over the keys its spec.yaml has) still matches."""
    import hashlib
    import json

    import yaml

    from layerforge.run.manifest import spec_digest, spec_matches

    spec = lf.load_spec(tiny_spec(epochs=4))
    assert spec_digest(spec) == spec_digest(lf.load_spec(tiny_spec(epochs=9)))  # epochs may change
    assert spec_digest(spec) != spec_digest(lf.load_spec({**tiny_spec(epochs=4), "seed": 7}))
    written = yaml.safe_load(yaml.safe_dump(spec.model_dump(mode="json")))
    del written["data"]["numbers"]  # a key an earlier version did not have
    old = {key: value for key, value in spec.model_dump(mode="json").items()}
    old["data"] = {key: value for key, value in old["data"].items() if key != "numbers"}
    old["train"] = {key: value for key, value in old["train"].items() if key != "epochs"}
    legacy = hashlib.sha256(json.dumps(old, sort_keys=True).encode("utf-8")).hexdigest()
    assert spec_matches(spec, legacy, written) and spec_matches(spec, spec_digest(spec), written)
    changed = lf.load_spec({**tiny_spec(epochs=4), "seed": 7})
    assert not spec_matches(changed, legacy, written) and not spec_matches(spec, legacy, None)


def test_corrupt_checkpoint_is_detected_not_used(runs_dir):
    with pytest.raises(lf.TrainingInterrupted) as caught:
        lf.train(tiny_spec(epochs=4), runs_dir=runs_dir, callbacks=[StopAfter(2)])
    latest = checkpoint_dirs(caught.value.run_dir / "checkpoints")[0]
    weights = latest / "last.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])  # truncated
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        lf.train(resume=caught.value.run_dir)
    flipped = bytearray(data)
    flipped[-5] ^= 0xFF  # same length, one byte changed
    weights.write_bytes(bytes(flipped))
    with pytest.raises(CheckpointError, match="does not match its recorded checksum"):
        lf.train(resume=caught.value.run_dir)
    (latest / "trainer_state.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="trainer_state.json is corrupt"):
        lf.train(resume=caught.value.run_dir)


def test_checkpoints_by_time_write_the_first_and_last_epochs_of_a_short_run(runs_dir, monkeypatch):
    from layerforge.recipes import scaffold

    saved = []
    original = scaffold.Scaffold.save_checkpoint
    monkeypatch.setattr(scaffold.Scaffold, "save_checkpoint", lambda self: (saved.append(self.epoch), original(self)))
    lf.train(tiny_spec(epochs=12), runs_dir=runs_dir)  # checkpoint_every: auto, epochs of milliseconds
    assert saved == [1, 12]
    monkeypatch.setattr(scaffold, "CHECKPOINT_SECONDS", 0.0)
    saved.clear()
    lf.train(tiny_spec(epochs=4), runs_dir=runs_dir)
    assert saved == [1, 2, 3, 4]
    saved.clear()
    lf.train(tiny_spec(epochs=7, checkpoint_every=3), runs_dir=runs_dir)
    assert saved == [3, 6, 7]


def test_non_finite_loss_stops_with_epoch_and_step_and_keeps_last_checkpoint(runs_dir):
    calls = {"n": 0}

    def factory():
        def loss(output, target):
            calls["n"] += 1
            value = torch.nn.functional.cross_entropy(output, target)
            return value * float("nan") if calls["n"] == 20 else value  # step 20 of training

        return loss

    lf.register_loss("nan_at_20", factory)
    try:
        # iris: 102 training rows, batch 16 -> 7 steps an epoch, plus one validation call
        with pytest.raises(TrainingError, match=r"non-finite \(nan\) at epoch 3, step 4;.*last good checkpoint \(epoch 2\)"):
            lf.train(tiny_spec(epochs=5, loss="nan_at_20", checkpoint_every=1), runs_dir=runs_dir)
    finally:
        losses.LOSSES.pop("nan_at_20")
    run_dir = next(runs_dir.iterdir())
    latest = checkpoint_dirs(run_dir / "checkpoints")[0]
    state = json.loads((latest / "trainer_state.json").read_text())
    assert state["epoch"] == 2 and latest.name == "epoch-000002"
    tensors = load_weights(latest / "last.safetensors", state["sha256"])
    assert all(torch.isfinite(v).all() for k, v in tensors.items() if k.startswith("model."))


def test_early_stopping_restores_the_best_weights(runs_dir):
    spec = tiny_spec(epochs=60, optimizer={"name": "adam", "lr": 0.05},
                     early_stopping={"monitor": "val_loss", "patience": 3, "restore_best": True})
    spec["model"]["layers"] = [64, 64]
    spec["data"]["split"] = {"val": 0.3, "test": 0.1}
    run = lf.train(spec, runs_dir=runs_dir)
    assert run.metrics["stopped_early"] and run.metrics["epochs"] < 60
    best = run.metrics["best_epoch"]
    assert run.metrics["epochs"] == best + 3
    best_val = min(r["val_loss"] for r in run.history)
    assert run.history[best - 1]["val_loss"] == best_val
    assert run.metrics["val"]["loss"] == pytest.approx(best_val, rel=1e-5)


def test_validating_every_few_epochs_keeps_early_stopping_and_the_doctor_in_epochs(runs_dir):
    spec = tiny_spec(epochs=60, optimizer={"name": "adam", "lr": 0.05}, validate_every=3,
                     early_stopping={"monitor": "val_loss", "patience": 6, "restore_best": True})
    spec["model"]["layers"] = [64, 64]
    spec["data"]["split"] = {"val": 0.3, "test": 0.1}
    run = lf.train(spec, runs_dir=runs_dir)
    epochs = run.metrics["epochs"]
    assert [r["epoch"] for r in run.history if "val_loss" in r] == list(range(3, epochs + 1, 3))
    assert all(set(r) & {"val_loss", "val_accuracy"} == set() for r in run.history if r["epoch"] % 3)
    # stopped on a validated epoch, 6 epochs (two validations) after the best one, whose weights it kept
    best = run.metrics["best_epoch"]
    assert run.metrics["stopped_early"] and best % 3 == 0 and epochs == best + 6
    best_val = min(r["val_loss"] for r in run.history if "val_loss" in r)
    assert run.history[best - 1]["val_loss"] == best_val
    assert run.metrics["val"]["loss"] == pytest.approx(best_val, rel=1e-5)
    assert (run.path / "report.html").stat().st_size > 10_000
    # the last epoch is always validated
    short = lf.train(tiny_spec(epochs=5, validate_every=3), runs_dir=runs_dir)
    assert [r["epoch"] for r in short.history if "val_loss" in r] == [3, 5]


def test_validate_every_auto_thins_validation_only_where_nothing_decides_on_it(runs_dir):
    from layerforge.spec.schema import TrainSpec

    assert [TrainSpec(epochs=n).validation_interval() for n in (1, 100, 101, 150, 151, 500)] == [1, 1, 3, 3, 4, 10]
    assert TrainSpec(epochs=500, early_stopping={"monitor": "val_accuracy"}).validation_interval() == 1
    assert TrainSpec(epochs=500, early_stopping={"monitor": "train_loss"}).validation_interval() == 10
    assert TrainSpec(epochs=500, schedule={"name": "plateau"}).validation_interval() == 1  # watches val_loss
    assert TrainSpec(epochs=500, schedule={"name": "plateau", "monitor": "train_loss"}).validation_interval() == 10
    assert TrainSpec(epochs=500, validate_every=1).validation_interval() == 1
    run = lf.train(tiny_spec(epochs=101), runs_dir=runs_dir)
    assert [r["epoch"] for r in run.history if "val_loss" in r] == [*range(3, 101, 3), 101]
    assert run.metrics["val"]["accuracy"] == run.history[-1]["val_accuracy"]  # the last epoch's weights
    # the doctor measures every third epoch too (from the first), and the last
    measured = {m["epoch"] for m in json.loads("[" + ",".join(
        (run.path / "doctor.jsonl").read_text().splitlines()) + "]")}
    assert measured == {1, *range(4, 101, 3), 101}


def test_without_validation_an_epoch_decides_nothing_and_patience_counts_epochs():
    from layerforge.training.callbacks import EarlyStopping
    from layerforge.training.optim import Schedule

    stopping = EarlyStopping("val_loss", patience=6, min_delta=0.0, restore_best=False, higher_is_better=False)
    model = torch.nn.Linear(2, 2)
    seen = [stopping.update(record, model) for record in
            [{"epoch": 1}, {"epoch": 2}, {"epoch": 3, "val_loss": 1.0}, {"epoch": 4}, {"epoch": 6, "val_loss": 1.1}]]
    assert seen == [False] * 5 and (stopping.best_epoch, stopping.wait) == (3, 3)
    assert stopping.update({"epoch": 9, "val_loss": 1.2}, model) and stopping.wait == 6
    plateau = Schedule("plateau", 1.0, 20, 4, patience=2, factor=0.5)
    plateau.epoch_end({"epoch": 3, "val_loss": 1.0})
    plateau.epoch_end({"epoch": 4})
    assert plateau.lr(4, 0) == 1.0
    plateau.epoch_end({"epoch": 6, "val_loss": 1.1})  # 3 epochs without gain > patience 2
    assert plateau.lr(6, 0) == 0.5 and plateau.state_dict()["checked"] == 6


def test_batch_size_modes_and_regularisers(runs_dir):
    full = lf.train(tiny_spec(epochs=2, batch_size="full"), runs_dir=runs_dir)
    single = lf.train(tiny_spec(epochs=1, batch_size=1, optimizer="sgd"), runs_dir=runs_dir)
    assert np.isfinite(full.metrics["test"]["loss"]) and np.isfinite(single.metrics["test"]["loss"])
    plain = lf.train(tiny_spec(epochs=20), runs_dir=runs_dir)
    shrunk = lf.train(tiny_spec(epochs=20, l1=0.01, l2=0.01, clip_grad_value=0.5), runs_dir=runs_dir)

    def weight_norm(run):
        return sum(float(v.abs().sum()) for k, v in _weights(run).items() if k.endswith("weight"))

    assert weight_norm(shrunk) < weight_norm(plain)


def test_regression_metrics_are_on_the_original_scale(runs_dir):
    run = lf.train({"data": {"dataset": "diabetes"}, "model": {"layers": [16]},
                    "train": {"epochs": 30, "optimizer": {"name": "adam", "lr": 0.01}}}, runs_dir=runs_dir)
    assert run.meta["task"] == "regression"
    test = run.metrics["test"]
    assert test["mse"] > 1000  # disease progression varies by tens of units
    assert test["r2"] > 0.3
    from sklearn.datasets import load_diabetes

    frame = load_diabetes(as_frame=True, scaled=False).frame.drop(columns=["target"])
    predicted = run.predict(frame.head(50))
    assert predicted.shape == (50,) and 25 < predicted.mean() < 350  # progression's own range


@pytest.mark.filterwarnings("ignore:The y_prob values do not sum to one")  # fp32 softmax, as the task's
@pytest.mark.parametrize("classes", [2, 4])
def test_classification_scores_match_scikit_learn(classes):
    from sklearn.metrics import accuracy_score, brier_score_loss, f1_score, log_loss, roc_auc_score

    from layerforge.tasks.classification import ClassificationTask

    rng = np.random.default_rng(classes)
    true = rng.integers(0, classes, 200)
    logits = np.round(rng.normal(size=(200, classes)) + 2 * np.eye(classes)[true] * (rng.random((200, 1)) < 0.7), 1)
    scores = ClassificationTask(list(range(classes))).scores(torch.tensor(logits), torch.tensor(true))
    probs = torch.tensor(logits).float().softmax(-1).double().numpy()  # as the task computes them
    pred = probs.argmax(1)
    assert scores["accuracy"] == pytest.approx(accuracy_score(true, pred), abs=1e-12)
    assert scores["f1_macro"] == pytest.approx(f1_score(true, pred, average="macro"), abs=1e-12)
    assert scores["nll"] == pytest.approx(log_loss(true, probs), abs=1e-12)
    onehot = np.eye(classes)[true]
    assert scores["brier"] == pytest.approx(((probs - onehot) ** 2).sum(1).mean(), abs=1e-12)
    if classes == 2:  # many ties among the rounded logits
        assert scores["roc_auc"] == pytest.approx(roc_auc_score(true, probs[:, 1]), abs=1e-12)
        assert scores["brier"] == pytest.approx(2 * brier_score_loss(true, probs[:, 1]), abs=1e-6)  # fp32 sums
    else:
        assert "roc_auc" not in scores


def test_cuda_requested_without_cuda_is_an_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # as on a machine without a GPU
    with pytest.raises(lf.SpecError, match="train.device: 'cuda', but this machine has no CUDA device"):
        lf.Trainer(device="cuda").fit(torch.nn.Linear(2, 2), (np.zeros((4, 2)), np.array([0, 1, 0, 1])))
