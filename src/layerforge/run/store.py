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
import time
from pathlib import Path
from typing import Any

import yaml

from ..data.splits import from_ranges, to_ranges
from ..errors import CheckpointError, DataError
from ..files import atomic_write, read_json, read_jsonl, write_json

SPEC, WEIGHTS, MODEL, HISTORY, METRICS, CHECKPOINTS = (
    "spec.yaml", "model.safetensors", "model.json", "history.jsonl", "metrics.json", "checkpoints",
)
DIAGNOSIS, DOCTOR_LOG, REPORT, SPLIT, IMAGES = "diagnosis.json", "doctor.jsonl", "report.html", "split.json", "images"
SPLIT_FORMAT = "layerforge.split/1"


def new_run_dir(runs_dir: str | Path, name: str) -> Path:
    """Create a fresh, empty run directory; never reuses an existing one."""
    runs_dir = Path(runs_dir)
    runs_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for attempt in range(1, 1000):
        path = runs_dir / (f"{name}-{stamp}" if attempt == 1 else f"{name}-{stamp}-{attempt}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise CheckpointError(f"cannot create a new run directory in {runs_dir}")


def write_spec(path: Path, spec) -> None:
    atomic_write(path, yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False))


def write_split(run_dir: Path, prepared) -> dict[str, Any]:
    """Record which rows went to which part, with the source's fingerprint (split.json), and
    return what model.json says of it."""
    record = {"format": SPLIT_FORMAT, "source": prepared.source.label, "rows": prepared.source.rows,
              "fingerprint": prepared.source.fingerprint, "plan": prepared.plan.describe(),
              "parts": {name: to_ranges(rows) for name, rows in prepared.parts.items()}}
    write_json(run_dir / SPLIT, record)
    return {"file": SPLIT, "fingerprint": record["fingerprint"], "plan": record["plan"]}


def read_split(run_dir: Path, source) -> dict:
    """The rows of each part as the run recorded them, for ``source`` loaded again.

    Raises:
        DataError: ``source`` is not the data the run was trained on (it changed since).
    """
    record = read_json(run_dir / SPLIT)
    if record.get("format") != SPLIT_FORMAT:
        raise CheckpointError(f"{run_dir / SPLIT} is not a {SPLIT_FORMAT} file")
    if record["fingerprint"] != source.fingerprint or record["rows"] != source.rows:
        raise DataError(
            f"the source data changed since this run was trained: {source.label} now holds {source.rows} rows "
            f"with fingerprint {source.fingerprint[:12]}..., the run was trained on {record['rows']} rows with "
            f"{record['fingerprint'][:12]}...; its split cannot be rebuilt. Evaluate on a file instead "
            "(layerforge evaluate RUN --data FILE)"
        )
    return {name: from_ranges(ranges) for name, ranges in record["parts"].items()}


def list_runs(runs_dir: str | Path) -> list[dict[str, Any]]:
    """Summaries of the run directories in ``runs_dir``, newest first."""
    runs_dir = Path(runs_dir)
    rows = []
    if not runs_dir.is_dir():
        return rows
    for path in sorted(runs_dir.iterdir(), key=lambda p: p.stat().st_mtime, reverse=True):
        if not (path / MODEL).is_file():
            continue
        try:
            meta = json.loads((path / MODEL).read_text(encoding="utf-8"))
            metrics = json.loads((path / METRICS).read_text(encoding="utf-8")) if (path / METRICS).is_file() else {}
        except (OSError, json.JSONDecodeError):
            continue
        history = read_jsonl(path / HISTORY)
        rows.append({
            "run": path.name,
            "path": str(path),
            "task": meta.get("task"),
            "epochs": len(history),
            "status": "complete" if metrics else "incomplete",
            "metrics": metrics,
        })
    return rows
