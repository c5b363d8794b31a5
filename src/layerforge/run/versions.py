"""New versions of a finished run: what changes a run's answers after training (fairness
mitigation) makes a new run directory beside it, and the run it was made from keeps answering as
before, with its exports still valid.

A version holds the run's own files (the spec, the weights, the split, the history, the metrics,
the doctor's records; hard links where the filesystem allows, copies otherwise), a model.json
with the change and ``version_of`` (the run it was made from and the digests of what that run
answered with), and its own report. It does not take the other version's capability records
(export, explanations, attacks, fairness audits): they belong to the answers of that version.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from ..capabilities import RESULT_FOLDERS
from ..files import remove
from .manifest import VersionRecord, read_manifest
from .store import MODEL, REPORT, SPEC, answer_state, file_checksums, finished, new_run_dir, run_files


def _carried(run_dir: Path) -> list[str]:
    """The run's files that go into a new version: all it wrote (``run_files``) but the spec and
    the report (written anew) and the capabilities' records."""
    return [name for name in run_files(run_dir)
            if name not in (REPORT, SPEC) and name.split("/", 1)[0] not in RESULT_FOLDERS]


def _place(source: Path, target: Path) -> None:
    """``source`` at ``target``: a hard link (no space; the run's files are replaced, never
    rewritten, so the link cannot change under the other version), or a copy."""
    if not target.parent.is_dir():
        target.parent.mkdir(parents=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def new_version(run, change: str, updates: dict[str, Any], write=None) -> Path:
    """Write a new version of ``run`` beside it: its files, and model.json with ``updates``
    (manifest fields, e.g. ``{"decision": ...}``) and a ``version_of`` record saying ``change``.

    Args:
        write: called with the new directory before it is sealed, to add the change's own
            records (they are listed among its files).

    Returns:
        The new run directory (named after the run's spec with ``-v`` and a timestamp).
    """
    made_from = answer_state(run.path)
    path = new_run_dir(run.path.parent, f"{run.spec.name}-v", spec=None)
    try:
        _place(run.path / SPEC, path / SPEC)
        for name in _carried(run.path):
            _place(run.path / name, path / name)
        if write is not None:
            write(path)
        record = VersionRecord(of=run.path.name, change=change, model_sha256=made_from[MODEL],
                               weights_sha256=made_from.get("model.safetensors"))
        manifest = run.manifest.model_copy(update={**updates, "version_of": record, "files": None})
        manifest.model_copy(update={"files": file_checksums(path)}).write(path / MODEL)
        read_manifest(path / MODEL)  # what was written reads back
    except BaseException:
        remove(path)  # a failed version leaves nothing behind; the run it was made from is untouched
        raise
    finished(path)
    return path


def versions_of(run_dir: str | Path) -> list[Path]:
    """The versions made from ``run_dir`` that sit beside it, oldest first."""
    run_dir = Path(run_dir)
    found = []
    for path in sorted(run_dir.parent.iterdir()):
        if path == run_dir or not (path / MODEL).is_file():
            continue
        try:
            record = read_manifest(path / MODEL).version_of
        except Exception:  # noqa: BLE001 - an unreadable neighbour is not a version of this run
            continue
        if record is not None and record.of == run_dir.name:
            found.append(path)
    return found


__all__ = ["new_version", "versions_of"]
