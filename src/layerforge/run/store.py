"""The run directory's layout: file names, a fresh directory per run, the resolved spec, the
record of which rows went to which split, and the list of runs in a directory.

```
runs/<name>-<YYYYmmdd-HHMMSS>/
  spec.yaml  model.safetensors  model.json  split.json  history.jsonl  metrics.json  checkpoints/
  diagnosis.json  doctor.jsonl  report.html  images/  evaluator.safetensors
```
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from pydantic import BaseModel, ValidationError
from safetensors import SafetensorError
from safetensors.numpy import load, save

from ..data.splits import from_ranges, to_ranges
from ..errors import CheckpointError, DataError
from ..files import (
    SEAL,
    atomic_write,
    is_locked,
    make_dir,
    read_json,
    read_jsonl,
    remove,
    rename,
    sealed,
    sha256_file,
    writable_directory,
    write_json,
)
from ..training.checkpoint import STATE, checkpoint_dirs
from .records import SplitFile

SPEC, WEIGHTS, MODEL, HISTORY, METRICS, CHECKPOINTS = (
    "spec.yaml", "model.safetensors", "model.json", "history.jsonl", "metrics.json", "checkpoints",
)
DIAGNOSIS, DOCTOR_LOG, REPORT, SPLIT, IMAGES = "diagnosis.json", "doctor.jsonl", "report.html", "split.json", "images"
HELD_OUT = "heldout.safetensors"
# the held-out rows are kept in the run directory up to this size; larger ones are rebuilt from
# the source (split.json says which rows they are)
HELD_OUT_LIMIT = 64 * 2**20
SPLIT_FORMAT = "layerforge.split/1"
# a run's directory holds this file until its process is done with it; left behind by a process
# killed before its first checkpoint, it marks a directory with nothing worth keeping
PARTIAL = ".partial"
STALE_SECONDS = 60


def usable_runs_dir(runs_dir: str | Path) -> Path:
    """``runs_dir``, created if needed, checked to be a writable directory (before any data is
    read, so that a bad ``--runs-dir`` costs nothing)."""
    runs_dir = Path(runs_dir)
    if runs_dir.exists() and not runs_dir.is_dir():
        raise CheckpointError(f"--runs-dir {runs_dir} is a file, not a directory")
    try:
        runs_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise CheckpointError(f"cannot create the runs directory {runs_dir}: {error.strerror}") from None
    reason = writable_directory(runs_dir)
    if reason is not None:
        raise CheckpointError(f"cannot write in the runs directory {runs_dir} ({reason}); choose another with "
                              "--runs-dir")
    return runs_dir


def new_run_dir(runs_dir: str | Path, name: str, spec=None) -> Path:
    """Create a fresh run directory, marked partial and holding its ``spec`` from its first
    instant (it is built under a hidden name and renamed into place), so that any run directory
    one can see can be resumed; never reuses an existing one."""
    runs_dir = usable_runs_dir(runs_dir)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    building = runs_dir / f".{name}-{stamp}-{os.getpid()}.tmp"
    make_dir(building)
    atomic_write(building / PARTIAL, "")
    if spec is not None:
        write_spec(building / SPEC, spec)
    for attempt in range(1, 1000):
        path = runs_dir / (f"{name}-{stamp}" if attempt == 1 else f"{name}-{stamp}-{attempt}")
        if path.exists():
            continue
        rename(building, path)
        return path
    raise CheckpointError(f"cannot create a new run directory in {runs_dir}")


def has_checkpoint(run_dir: Path) -> bool:
    directory = Path(run_dir) / CHECKPOINTS
    return bool(checkpoint_dirs(directory)) or (directory / STATE).is_file()


def is_orphan(run_dir: Path) -> bool:
    """A directory whose process died before its first checkpoint: partial, no checkpoint, no
    weights, no process holding it, and not just created."""
    marker = Path(run_dir) / PARTIAL
    return (marker.is_file() and not has_checkpoint(run_dir) and not (Path(run_dir) / WEIGHTS).is_file()
            and not is_locked(run_dir) and time.time() - marker.stat().st_mtime > STALE_SECONDS)


def clear_orphans(runs_dir: Path) -> list[Path]:
    """Remove the directories of runs killed before their first checkpoint (and run directories
    killed while being created); returns them."""
    now = time.time()
    gone = [path for path in Path(runs_dir).iterdir() if path.is_dir() and (
        is_orphan(path) or (path.name.startswith(".") and path.name.endswith(".tmp")
                            and now - path.stat().st_mtime > STALE_SECONDS))]
    for path in gone:
        remove(path)
    return gone


def clear_leftovers(run_dir: Path) -> None:
    """Remove what interrupted writes left in a run directory (temporary files and checkpoint
    directories that were never completed). Call it holding the run's lock."""
    for path in sorted(Path(run_dir).rglob(".*.tmp"), reverse=True):
        remove(path)
    for older in checkpoint_dirs(Path(run_dir) / CHECKPOINTS)[1:]:  # a crash came before their removal
        remove(older)


def resumed(run_dir: Path) -> None:
    """A process trains in the run directory again: it is partial until that process is done."""
    atomic_write(Path(run_dir) / PARTIAL, "")


def finished(run_dir: Path) -> None:
    """The process is done with the run directory (it finished, failed with a diagnosis, or was
    interrupted after a checkpoint)."""
    remove(Path(run_dir) / PARTIAL)


def write_spec(path: Path, spec) -> None:
    atomic_write(path, yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False))


def answer_state(run_dir: str | Path) -> dict[str, str | None]:
    """What a run answers with, as digests: its weights' SHA-256, and model.json's content but for
    the checksums of the files it lists (a rebuilt report changes those, not the answers)."""
    run_dir = Path(run_dir)
    found: dict[str, str | None] = {}
    try:
        manifest = read_json(run_dir / MODEL)
    except Exception:  # noqa: BLE001 - a missing or broken model.json matches no export
        manifest = None
    body = {key: value for key, value in manifest.items() if key not in ("files", SEAL)} \
        if isinstance(manifest, dict) else None
    found[MODEL] = sealed(body)[SEAL] if body is not None else None
    weights = run_dir / WEIGHTS
    found[WEIGHTS] = sha256_file(weights) if weights.is_file() else None
    return found


def run_files(run_dir: Path) -> list[str]:
    """The files a run wrote (paths relative to it, in order), but for checkpoints and
    TensorBoard logs (they verify or belong elsewhere), hidden files, and model.json (which lists
    the others and cannot list itself)."""
    run_dir = Path(run_dir)
    names = []
    for path in sorted(run_dir.rglob("*")):
        relative = path.relative_to(run_dir)
        if (path.is_file() and path.name != MODEL and not any(part.startswith(".") for part in relative.parts)
                and relative.parts[0] not in (CHECKPOINTS, "tensorboard")):
            names.append(relative.as_posix())
    return names


def file_checksums(run_dir: Path) -> dict[str, str]:
    """SHA-256 of every file a finished run wrote (``run_files``)."""
    return {name: sha256_file(Path(run_dir) / name) for name in run_files(run_dir)}


def verified(run_dir: Path, name: str, checksums: dict[str, str] | None) -> Path:
    """``run_dir / name``, checked against the SHA-256 model.json lists for it (when the run
    finished and listed its files).

    Raises:
        CheckpointError: the file is missing or changed since the run wrote it.
    """
    path = Path(run_dir) / name
    expected = (checksums or {}).get(name)
    if expected is not None:
        if not path.is_file():
            raise CheckpointError(f"{path} is missing (model.json lists it among the run's files)")
        if sha256_file(path) != expected:
            raise CheckpointError(f"{path} does not match its checksum in model.json: it was changed or damaged "
                                  "after the run wrote it; it was not used")
    return path


def read_record(run_dir: Path, name: str, record: type[BaseModel], checksums: dict[str, str] | None):
    """A JSON file of the run, verified and validated as ``record``.

    Raises:
        CheckpointError: missing, changed, corrupt or malformed (naming the file and field).
    """
    path = verified(run_dir, name, checksums)
    raw = read_json(path)
    try:
        return record.model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "(the whole file)"
        raise CheckpointError(f"{path}: {field}: {first['msg']} ({error.error_count()} problem(s)); "
                              "it was not used") from None


def write_held_out(run_dir: Path, prepared) -> bool:
    """Keep the encoded validation and test rows (inputs and targets) in heldout.safetensors, so
    that evaluating and reporting on them needs no source data. Skipped, returning False, when
    they exceed ``HELD_OUT_LIMIT``."""
    arrays = {}
    for part in ("val", "test"):
        inputs, y = prepared.splits[part]
        if len(y):
            arrays.update({f"{part}.input.{i}": np.ascontiguousarray(x) for i, x in enumerate(inputs)})
            arrays[f"{part}.y"] = np.ascontiguousarray(y)
    if not arrays or sum(a.nbytes for a in arrays.values()) > HELD_OUT_LIMIT:
        return False
    atomic_write(Path(run_dir) / HELD_OUT, save(arrays))
    return True


def read_held_out(run_dir: Path, part: str, checksums: dict[str, str] | None):
    """(inputs, y) of ``part`` as heldout.safetensors keeps them, or None when it does not."""
    path = Path(run_dir) / HELD_OUT
    if not path.is_file():
        return None
    try:
        arrays = load(verified(run_dir, HELD_OUT, checksums).read_bytes())
    except SafetensorError as error:
        raise CheckpointError(f"{path} is not a valid safetensors file ({error}); it was not used") from None
    inputs = tuple(arrays[f"{part}.input.{i}"] for i in range(len(arrays)) if f"{part}.input.{i}" in arrays)
    if f"{part}.y" not in arrays or not inputs or any(len(x) != len(arrays[f"{part}.y"]) for x in inputs):
        return None
    return inputs, arrays[f"{part}.y"]


def write_split(run_dir: Path, prepared) -> dict[str, Any]:
    """Record which rows went to which part, with the source's fingerprint (split.json), and
    return what model.json says of it."""
    record = {"format": SPLIT_FORMAT, "source": prepared.source.label, "rows": prepared.source.rows,
              "fingerprint": prepared.source.fingerprint, "plan": prepared.plan.describe(),
              "parts": {name: to_ranges(rows) for name, rows in prepared.parts.items()}}
    write_json(run_dir / SPLIT, record, compact=True)  # rows drawn at random: a range for about every other row
    return {"file": SPLIT, "fingerprint": record["fingerprint"], "plan": record["plan"]}


def recorded_parts(run_dir: Path, checksums: dict[str, str] | None = None) -> tuple[str, dict] | None:
    """The source fingerprint and the row positions of each part, as split.json records them,
    without reading the source; None when the run has no split.json."""
    if not (Path(run_dir) / SPLIT).is_file():
        return None
    record = read_record(run_dir, SPLIT, SplitFile, checksums).model_dump()
    return record["fingerprint"], {name: from_ranges(ranges) for name, ranges in record["parts"].items()}


def read_split(run_dir: Path, source, checksums: dict[str, str] | None = None) -> dict:
    """The rows of each part as the run recorded them, for ``source`` loaded again.

    Raises:
        DataError: ``source`` is not the data the run was trained on (it changed since).
        CheckpointError: split.json is damaged or does not fit the source.
    """
    record = read_record(run_dir, SPLIT, SplitFile, checksums).model_dump()
    if record["fingerprint"] != source.fingerprint or record["rows"] != source.rows:
        raise DataError(
            f"the source data changed since this run was trained: {source.label} now holds {source.rows} rows "
            f"with fingerprint {source.fingerprint[:12]}..., the run was trained on {record['rows']} rows with "
            f"{record['fingerprint'][:12]}...; its split cannot be rebuilt. Evaluate on a file instead "
            "(layerforge evaluate RUN --data FILE)"
        )
    parts = {name: from_ranges(ranges) for name, ranges in record["parts"].items()}
    if any(len(rows) and (rows.min() < 0 or rows.max() >= source.rows) for rows in parts.values()):
        raise CheckpointError(f"{run_dir / SPLIT}: lists rows beyond the {source.rows} rows of the source")
    return parts


def list_runs(runs_dir: str | Path) -> list[dict[str, Any]]:
    """Summaries of the run directories in ``runs_dir``, newest first."""
    runs_dir = Path(runs_dir)
    rows = []
    if not runs_dir.is_dir():
        return rows
    for path in sorted(runs_dir.iterdir(), key=lambda p: p.stat().st_mtime, reverse=True):
        if not (path / MODEL).is_file() or is_orphan(path):
            continue
        try:
            meta = json.loads((path / MODEL).read_text(encoding="utf-8"))
            metrics = json.loads((path / METRICS).read_text(encoding="utf-8")) if (path / METRICS).is_file() else {}
            history = read_jsonl(path / HISTORY)
        except (OSError, ValueError, CheckpointError):
            rows.append({"run": path.name, "path": str(path), "task": None, "epochs": 0, "status": "unreadable",
                         "metrics": {}})
            continue
        if not isinstance(meta, dict) or not isinstance(metrics, dict):
            rows.append({"run": path.name, "path": str(path), "task": None, "epochs": 0, "status": "unreadable",
                         "metrics": {}})
            continue
        status = "complete" if metrics else "training" if is_locked(path) else "incomplete"
        rows.append({"run": path.name, "path": str(path), "task": meta.get("task"), "epochs": len(history),
                     "status": status, "metrics": metrics})
    return rows
