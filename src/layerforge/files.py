"""Files written safely: atomic replacement, JSON and JSON-lines, checksums.

Everything layerforge writes goes through ``atomic_write``: a temporary file in the same
directory, fsync, rename. A crash leaves the old file or the new one, never half of either.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from .errors import CheckpointError


def atomic_write(path: str | Path, data: bytes | str) -> None:
    """Write ``data`` to ``path`` through a temporary file, fsync and rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(payload)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def write_json(path: str | Path, data: Any) -> None:
    atomic_write(path, json.dumps(data, indent=2, allow_nan=True) + "\n")


def read_json(path: str | Path) -> Any:
    """The JSON in ``path``; a missing or unreadable file is a CheckpointError naming it."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path.parent} is not a complete run directory: {path.name} is missing")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CheckpointError(f"{path} is corrupt: {error}") from None


def read_jsonl(path: str | Path) -> list[dict]:
    """The JSON objects of a .jsonl file, one per line (none when the file is missing)."""
    path = Path(path)
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def append_jsonl(path: str | Path, records: list[dict]) -> None:
    """Append one JSON line per record."""
    if records:
        with open(path, "a", encoding="utf-8") as file:
            file.write("".join(json.dumps(r) + "\n" for r in records))


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
