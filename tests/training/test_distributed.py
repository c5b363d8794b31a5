"""Data-parallel training (``layerforge train --nproc N``: torchrun, Gloo on CPUs): two processes
follow one process's run, only the first writes the run directory, and a killed run resumes."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from safetensors.torch import load_file

import layerforge as lf

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="reads processes from /proc")
SPEC = {"name": "ddp", "seed": 0, "data": {"dataset": "digits"}, "model": {"layers": [32]},
        "train": {"epochs": 3, "batch_size": 64, "optimizer": {"name": "adam", "lr": 0.001}, "checkpoint_every": 1}}


def _layerforge(*args, **options):
    return subprocess.Popen([sys.executable, "-m", "layerforge", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True, **options)


def _descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (read from /proc)."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, waiting = [], [pid]
    while waiting:
        found.append(waiting.pop())
        waiting += parents.get(found[-1], [])
    return found


def _weights(runs_dir: Path) -> dict:
    (run,) = [p for p in runs_dir.iterdir() if p.is_dir() and not p.name.startswith(".")]
    return load_file(run / "model.safetensors")


def test_two_processes_reach_the_weights_of_one_with_the_same_global_batch(tmp_path):
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(SPEC))
    done = _layerforge("train", tmp_path / "spec.yaml", "--nproc", 2, "--runs-dir", tmp_path / "two", "--quiet")
    out, err = done.communicate(timeout=300)
    assert done.returncode == 0, err[-3000:]
    assert len(out.strip().splitlines()) == 1  # one process speaks: the run directory
    one = lf.train(SPEC, runs_dir=tmp_path / "one")  # 1257 training rows, batch 64: 20 steps an epoch, 60 in all
    two = lf.load_run(out.strip())
    for name, tensor in _weights(tmp_path / "one").items():
        assert (tensor - _weights(tmp_path / "two")[name]).abs().max() < 1e-5, name
    assert [r["train_loss"] for r in two.history] == pytest.approx([r["train_loss"] for r in one.history], abs=1e-5)
    assert two.metrics["test"]["accuracy"] == pytest.approx(one.metrics["test"]["accuracy"], abs=0.01)


def test_two_processes_streaming_a_file_reach_the_weights_of_one(tmp_path):
    from tests.data.test_streaming import write_parquet

    path = write_parquet(tmp_path / "rows.parquet", 2000, 8, 4)
    spec = {**SPEC, "data": {"path": str(path), "target": "label", "streaming": True, "stream": {"workers": 1}}}
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    done = _layerforge("train", tmp_path / "spec.yaml", "--nproc", 2, "--runs-dir", tmp_path / "two", "--quiet")
    out, err = done.communicate(timeout=300)
    assert done.returncode == 0, err[-3000:]
    one = lf.train(spec, runs_dir=tmp_path / "one")  # every process reads the stream and takes its part of each batch
    assert one.manifest.rows["train"] == lf.load_run(out.strip()).manifest.rows["train"] == 1400
    for name, tensor in _weights(tmp_path / "one").items():
        assert (tensor - _weights(tmp_path / "two")[name]).abs().max() < 1e-5, name


@pytest.mark.slow  # about 40 seconds: three runs of 30 epochs in two processes each
def test_a_killed_two_process_run_resumes_to_the_weights_of_an_uninterrupted_one(tmp_path):
    spec = {**SPEC, "train": {**SPEC["train"], "epochs": 30, "batch_size": 8}}
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    whole = _layerforge("train", tmp_path / "spec.yaml", "--nproc", 2, "--runs-dir", tmp_path / "whole", "--quiet")
    killed = _layerforge("train", tmp_path / "spec.yaml", "--nproc", 2, "--runs-dir", tmp_path / "killed", "--quiet")
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not list((tmp_path / "killed").glob("*/checkpoints/epoch-*")):
        time.sleep(0.02)
    for pid in _descendants(killed.pid):  # torchrun starts its workers in sessions of their own
        os.kill(pid, signal.SIGKILL)
    killed.communicate(timeout=60)
    (run,) = [p for p in (tmp_path / "killed").iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert not (run / "metrics.json").exists()  # it was stopped part way
    resumed = _layerforge("train", "--resume", run, "--nproc", 2, "--quiet")
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err[-3000:]
    out_whole, err_whole = whole.communicate(timeout=300)
    assert whole.returncode == 0, err_whole[-3000:]
    reference = _weights(tmp_path / "whole")
    for name, tensor in load_file(run / "model.safetensors").items():
        assert (tensor - reference[name]).abs().max() < 1e-6, name
    assert len(lf.load_run(run).history) == 30


def test_a_gan_is_refused_in_several_processes(tmp_path):
    spec = {"data": {"dataset": "digits"}, "model": {"type": "gan", "latent_size": 8}, "train": {"epochs": 1}}
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    done = _layerforge("train", tmp_path / "spec.yaml", "--nproc", 2, "--runs-dir", tmp_path / "runs")
    out, err = done.communicate(timeout=300)
    assert done.returncode != 0 and "--nproc: data-parallel training trains one network" in out + err


def _rank_process(launcher: int, rank: int) -> int | None:
    """The training process of ``rank`` under the launcher ``launcher`` (read from /proc)."""
    for pid in _descendants(launcher):
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"RANK={rank}".encode() in environ and pid != launcher:
            return pid
    return None


def test_a_killed_process_is_said_in_one_line_with_the_command_that_resumes(tmp_path):
    spec = {**SPEC, "train": {**SPEC["train"], "epochs": 30, "batch_size": 8}}
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    training = _layerforge("train", tmp_path / "spec.yaml", "--nproc", 2, "--runs-dir", tmp_path / "runs", "--quiet")
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not list((tmp_path / "runs").glob("*/checkpoints/epoch-*")):
        time.sleep(0.02)
    os.kill(_rank_process(training.pid, 1), signal.SIGKILL)
    out, err = training.communicate(timeout=120)
    (run,) = [p for p in (tmp_path / "runs").iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert training.returncode == 1 and "Traceback" not in err and len(err.strip().splitlines()) <= 2, err[-3000:]
    assert "training process 2 of 2 (rank 1) was killed by SIGKILL; the others were stopped" in err
    assert f"Resume from the last checkpoint: layerforge train --resume {run} --nproc 2" in err


def test_more_processes_than_cores_are_refused_with_the_count(tmp_path):
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(SPEC))
    cores = os.cpu_count()
    done = _layerforge("train", tmp_path / "spec.yaml", "--nproc", cores + 1, "--runs-dir", tmp_path / "runs")
    out, err = done.communicate(timeout=120)
    assert done.returncode == 2 and f"--nproc {cores + 1}: this machine has {cores} CPU cores" in err
    assert not (tmp_path / "runs").exists()
