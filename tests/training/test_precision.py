"""train.precision (bf16 autocast on CPUs and GPUs, fp16 with a loss scaler on GPUs) and
train.compile: the same training, in other arithmetic or compiled."""

import json

import pytest
import torch
from safetensors.torch import load_file

import layerforge as lf

DIGITS = {"data": {"dataset": "digits"}, "model": {"layers": [64]}, "train": {"epochs": 15}}


def _with(**train):
    return {**DIGITS, "train": {**DIGITS["train"], **train}}


def test_bf16_autocast_trains_as_well_and_keeps_fp32_weights(runs_dir):
    exact = lf.train(DIGITS, runs_dir=runs_dir)
    half = lf.train(_with(precision="bf16"), runs_dir=runs_dir)
    first = exact.history[0]["train_loss"], half.history[0]["train_loss"]
    assert first[0] != first[1] and first[1] == pytest.approx(first[0], rel=0.01)  # bf16 did run, and close
    assert half.metrics["test"]["accuracy"] >= exact.metrics["test"]["accuracy"] - 0.02
    assert {t.dtype for t in load_file(half.path / "model.safetensors").values()} == {torch.float32}


def test_fp16_without_a_gpu_is_refused_before_a_run_directory_exists(runs_dir):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(lf.SpecError, match="train.precision: fp16 needs a CUDA GPU"):
        lf.train(_with(precision="fp16"), runs_dir=runs_dir)
    assert not runs_dir.exists() or not [p for p in runs_dir.iterdir() if not p.name.startswith(".")]
    with pytest.raises(lf.SpecError, match="train.precision: applies to one network trained with one loss"):
        lf.load_spec({"data": {"dataset": "digits"}, "model": {"type": "gan"}, "train": {"precision": "bf16"}})


@pytest.mark.slow
def test_a_compiled_network_trains_the_same_and_reports_its_compile_time(runs_dir):
    exact = lf.train(DIGITS, runs_dir=runs_dir)
    compiled = lf.train(_with(compile=True), runs_dir=runs_dir)
    assert [r["train_loss"] for r in compiled.history] == pytest.approx([r["train_loss"] for r in exact.history],
                                                                        rel=1e-4)
    assert compiled.metrics["compile_seconds"] > 0
    assert set(load_file(compiled.path / "model.safetensors")) == set(load_file(exact.path / "model.safetensors"))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_reduced_precision_on_a_gpu_trains_a_cnn(runs_dir, precision):
    spec = {"data": {"dataset": "digits_images"}, "model": {"type": "cnn", "channels": [32, 64]},
            "train": {"epochs": 10, "device": "cuda", "precision": precision}}
    run = lf.train(spec, runs_dir=runs_dir)
    assert run.metrics["test"]["accuracy"] >= 0.95


def test_the_loss_scale_survives_a_resume(runs_dir, monkeypatch):
    """fp16's scaler (here beside bf16 autocast on a CPU, where it scales the same way): its
    scale grows every 3 steps, and a resumed run continues from the checkpointed scale."""
    from layerforge.training.precision import Precision

    monkeypatch.setattr(Precision, "of", classmethod(lambda cls, name, device: cls(
        "cpu", torch.bfloat16, torch.amp.GradScaler("cpu", init_scale=2.0**4, growth_interval=3))))

    class Scales(lf.Callback):
        def __init__(self, stop=None):
            self.scales, self.stop = [], stop

        def on_epoch_end(self, trainer, record):
            self.scales.append(trainer.precision.scaler.get_scale())
            if record["epoch"] == self.stop:
                raise KeyboardInterrupt

    spec = _with(precision="bf16", epochs=4, checkpoint_every=1, batch_size=256)
    full = Scales()
    lf.train(spec, runs_dir=runs_dir, callbacks=[full])
    assert full.scales[0] > 2.0**4 and full.scales == sorted(full.scales)  # it grew
    with pytest.raises(lf.TrainingInterrupted) as caught:
        lf.train(spec, runs_dir=runs_dir, callbacks=[Scales(stop=2)])
    state = json.loads(next((caught.value.run_dir / "checkpoints").iterdir()).joinpath("trainer_state.json")
                       .read_text())
    assert state["loss_scale"]["scale"] == full.scales[1]
    resumed = Scales()
    lf.train(resume=caught.value.run_dir, callbacks=[resumed])
    assert resumed.scales == full.scales[2:]
