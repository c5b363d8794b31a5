"""A run killed (SIGKILL) between any two of its file writes resumes to exactly the weights of a
run that was never interrupted, and leaves nothing half-written behind.

Every change to a run's files passes ``layerforge.files._boundary``; the test counts those
boundaries in an uninterrupted run, then kills a fresh run at each one in turn. Each run happens
in a forked child process (one torch thread, so that results are bitwise comparable)."""

import json
import os
import signal
import sys
import traceback

import pytest
import torch

import layerforge as lf
from layerforge import files
from layerforge.errors import CheckpointError
from layerforge.run import store
from layerforge.training.checkpoint import checkpoint_dirs, load_weights

SPEC = {"name": "crash", "data": {"dataset": "iris"}, "model": {"layers": [8], "dropout": 0.2, "norm": "batch"},
        "train": {"epochs": 3, "batch_size": 16, "report": False, "schedule": {"name": "cosine"}, "checkpoint_every": 1,
                  "early_stopping": {"monitor": "val_loss", "patience": 10, "restore_best": True}}}

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


def _child(work, kill_at: int | None = None, count_to=None) -> bool:
    """Run ``work`` in a forked child; True when it was killed at boundary ``kill_at``."""
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            torch.set_num_threads(1)
            seen = [0]

            def boundary(path):
                seen[0] += 1
                if seen[0] == kill_at:
                    os.kill(os.getpid(), signal.SIGKILL)

            files._boundary = boundary
            work()
            if count_to is not None:
                count_to.write_text(str(seen[0]))
        except BaseException:
            traceback.print_exc(file=sys.stderr)
            code = 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        assert os.WTERMSIG(status) == signal.SIGKILL
        return True
    assert os.WEXITSTATUS(status) == 0, "the child failed (its traceback is above)"
    return False


def _weights(run_dir):
    return load_weights(run_dir / "model.safetensors")


def _history(run_dir):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in files.read_jsonl(run_dir / "history.jsonl")]


def test_a_kill_at_every_write_boundary_resumes_to_the_same_weights(tmp_path, monkeypatch):
    monkeypatch.setattr(store, "STALE_SECONDS", 0)
    lf.train(SPEC, runs_dir=tmp_path / "warm-up")  # import what training needs once, here, for every child
    reference, counted = tmp_path / "reference", tmp_path / "boundaries"
    assert not _child(lambda: lf.train(SPEC, runs_dir=reference), count_to=counted)
    boundaries = int(counted.read_text())
    (expected_dir,) = reference.iterdir()
    expected, expected_history = _weights(expected_dir), _history(expected_dir)
    assert boundaries >= 20

    # a run is done when it removed its partial marker; killed before, it resumes (even to redo its
    # last writes; from its first epoch when no checkpoint was complete yet)
    outcomes = {"resumed": 0, "resumed from the start": 0, "finished before the kill": 0, "trained again": 0}
    for boundary in range(1, boundaries + 1):
        runs = tmp_path / f"kill-{boundary}"
        assert _child(lambda runs=runs: lf.train(SPEC, runs_dir=runs), kill_at=boundary)
        left = sorted(p for p in runs.iterdir() if not p.name.startswith(".")) if runs.exists() else []
        if left and (left[0] / store.SPEC).is_file():
            run_dir = left[0]
            if not (run_dir / store.PARTIAL).is_file():
                outcomes["finished before the kill"] += 1
            else:
                from_start = not store.has_checkpoint(run_dir)
                assert not _child(lambda run_dir=run_dir: lf.train(resume=run_dir))
                outcomes["resumed from the start" if from_start else "resumed"] += 1
        else:
            # killed while its directory was being made: no run appeared, only a hidden temporary one
            assert left == [], f"a visible run directory that cannot be resumed after a kill at {boundary}"
            assert store.list_runs(runs) == []
            assert not _child(lambda runs=runs: lf.train(SPEC, runs_dir=runs))
            (run_dir,) = sorted(runs.iterdir())  # what the killed run left was cleared when the new one started
            outcomes["trained again"] += 1
        weights = _weights(run_dir)
        assert weights.keys() == expected.keys(), boundary
        assert all(torch.equal(weights[k], expected[k]) for k in expected), f"weights differ after a kill at {boundary}"
        assert _history(run_dir) == expected_history, boundary
        assert json.loads((run_dir / "metrics.json").read_text())["test"] == json.loads(
            (expected_dir / "metrics.json").read_text())["test"]
        assert not list(run_dir.rglob(".*.tmp")), f"leftovers after a kill at {boundary}"
        assert len(checkpoint_dirs(run_dir / "checkpoints")) == 1
    assert sum(outcomes.values()) == boundaries and outcomes["resumed"] >= 10, outcomes
    assert outcomes["trained again"] == 4, outcomes  # make it, mark it partial, write its spec, rename it
    print(f"{boundaries} boundaries: {outcomes}")


def test_a_second_process_cannot_train_the_same_run_directory(tmp_path):
    with pytest.raises(lf.TrainingInterrupted) as caught:
        lf.train(SPEC, runs_dir=tmp_path, callbacks=[_StopAfter(1)])
    run_dir = caught.value.run_dir
    with files.locked(run_dir, "a test holds it"):
        with pytest.raises(CheckpointError, match="is in use by another process"):
            lf.train(resume=run_dir)
    run = lf.train(resume=run_dir)
    assert [r["epoch"] for r in run.history] == [1, 2, 3]  # no epoch twice


class _StopAfter(lf.Callback):
    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_end(self, trainer, record):
        if record["epoch"] == self.epoch:
            raise KeyboardInterrupt


def test_an_interrupt_before_the_first_checkpoint_leaves_nothing(tmp_path):
    spec = {**SPEC, "train": {**SPEC["train"], "checkpoint_every": 5}}
    with pytest.raises(lf.TrainingInterrupted) as caught:
        lf.train(spec, runs_dir=tmp_path, callbacks=[_StopAfter(1)])
    assert caught.value.run_dir is None and caught.value.epoch == 1
    assert list(tmp_path.iterdir()) == []
