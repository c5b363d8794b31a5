"""``layerforge train --nproc N``: the same command in N processes on this machine, joined into
one process group (the environment ``torchrun`` would give them: RANK, WORLD_SIZE, MASTER_ADDR,
...), watched until they end.

When one process dies (killed, out of memory, a failure of its own), the others are stopped
(their connection to it is gone, and they would wait or fail with the backend's traceback), and
one message says which process ended how and gives the command that resumes the run from its
last checkpoint. ``torchrun ... -m layerforge train SPEC`` still works for launching across
machines.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .distributed import PEER_LOST

GRACE_SECONDS = 10  # how long the other processes get to stop before they are killed
SETTLE_SECONDS = 0.5  # after a first failure, how long the others get to end on their own


@dataclass
class Ended:
    """How a launch ended: its exit code, and what to tell the user (None: the processes spoke)."""

    code: int
    message: str | None = None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _how(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"failed with exit code {code}"


def _new_runs(runs_dir: Path, before: set[str]) -> list[Path]:
    if not runs_dir.is_dir():
        return []
    return [path for path in runs_dir.iterdir()
            if path.is_dir() and not path.name.startswith(".") and path.name not in before]


def launch(nproc: int, arguments: list[str], runs_dir: Path, resume: Path | None) -> Ended:
    """Run ``layerforge train ARGUMENTS`` in ``nproc`` processes and wait for them.

    Returns:
        ``Ended``: 0 when every process finished; otherwise the first failure's code and, when a
        process died or failed on its own (not the first process's reported error), a message
        naming it and the command that resumes the run.
    """
    before = {path.name for path in runs_dir.iterdir()} if runs_dir.is_dir() else set()
    port = free_port()
    threads = str(max(1, (os.cpu_count() or 1) // nproc))
    logs = [tempfile.TemporaryFile(mode="w+") for _ in range(nproc - 1)]  # the others' own words, if they fail
    processes = []
    for rank in range(nproc):
        env = {**os.environ, "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(nproc),
               "LOCAL_WORLD_SIZE": str(nproc), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
               "OMP_NUM_THREADS": threads}
        processes.append(subprocess.Popen([sys.executable, "-m", "layerforge", "train", *arguments], env=env,
                                          stderr=None if rank == 0 else logs[rank - 1]))
    try:
        failed = _watch(processes)
    except BaseException:  # interrupted: stop them all, then let the interruption go on
        _stop(processes)
        raise
    if failed is None:
        return Ended(0)
    time.sleep(SETTLE_SECONDS)  # the others notice the loss now: let them end, to tell cause from effect
    rank, code = _cause(processes)
    _stop(processes)
    if rank == 0 and code > 0 and code != PEER_LOST:  # the first process failed and said why (spec, data, ...)
        return Ended(code)
    said = ""
    if rank > 0 and code > 0:
        logs[rank - 1].seek(0)
        lines = [line for line in logs[rank - 1].read().splitlines() if line.strip()]
        said = f" ({lines[-1].strip()})" if lines else ""
    message = f"training process {rank + 1} of {nproc} (rank {rank}) {_how(code)}{said}; the others were stopped."
    runs = [resume] if resume is not None else _new_runs(runs_dir, before)
    if len(runs) == 1 and any((runs[0] / "checkpoints").glob("epoch-*")):
        message += f" Resume from the last checkpoint: layerforge train --resume {runs[0]} --nproc {nproc}"
    elif len(runs) == 1:
        message += f" It stopped before its first checkpoint ({runs[0]}); train again"
    return Ended(1 if code < 0 else code, message)


def _watch(processes: list[subprocess.Popen]) -> tuple[int, int] | None:
    """Wait until every process ends (None) or one fails: (its rank, its exit code)."""
    while True:
        codes = [process.poll() for process in processes]
        for rank, code in enumerate(codes):
            if code is not None and code != 0:
                return rank, code
        if all(code == 0 for code in codes):
            return None
        time.sleep(0.05)


def _cause(processes: list[subprocess.Popen]) -> tuple[int, int]:
    """Of the processes that failed, the one that failed first in cause: killed by a signal, then
    failed for a reason of its own, then one that only lost its peers (``PEER_LOST``)."""
    failed = [(rank, process.returncode) for rank, process in enumerate(processes)
              if process.poll() is not None and process.returncode != 0]
    return min(failed, key=lambda found: (found[1] >= 0, found[1] == PEER_LOST, found[0]))


def _stop(processes: list[subprocess.Popen]) -> None:
    """End the processes still running: asked first, killed after ``GRACE_SECONDS``."""
    for process in processes:
        if process.poll() is None:
            process.terminate()
    deadline = time.monotonic() + GRACE_SECONDS
    for process in processes:
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


__all__ = ["Ended", "launch"]
