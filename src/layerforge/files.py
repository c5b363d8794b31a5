"""Files written safely: atomic replacement, JSON and JSON-lines, directories renamed into place,
locks, checksums.

Every change layerforge makes to a run's files goes through this module: a temporary file in
the same directory, fsync, rename; or a directory built under a temporary name and renamed into
place. A crash leaves the old file or the new one, never half of either. Each change first
passes ``_boundary`` (a seam that crash tests use to stop the process between writes).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .errors import CheckpointError, OutputError


def _boundary(path: Path) -> None:
    """Called before every change to a file or directory; does nothing."""


def atomic_write(path: str | Path, data: bytes | str) -> None:
    """Write ``data`` to ``path`` through a temporary file, fsync and rename."""
    with atomic_file(path) as file:
        file.write(data.encode("utf-8") if isinstance(data, str) else data)


@contextmanager
def atomic_file(path: str | Path) -> Iterator[Any]:
    """A binary file to write ``path`` through, written a piece at a time: a temporary file in
    the same directory, fsynced and renamed over ``path`` when the block ends; removed, leaving
    ``path`` as it was, when the block raises."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            os.fchmod(file.fileno(), _file_mode(path))  # mkstemp's 0600 would hide the file from others
            yield file
            file.flush()
            os.fsync(file.fileno())
        _boundary(path)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    _sync_directory(path.parent)


def _file_mode(path: Path) -> int:
    """The permissions a replaced file keeps, or those a new file gets under the umask."""
    try:
        return path.stat().st_mode & 0o777
    except OSError:
        mask = os.umask(0)
        os.umask(mask)
        return 0o666 & ~mask


def writable_directory(directory: str | Path) -> str | None:
    """None when files can be created in ``directory`` (tried, not guessed from permission bits,
    which say nothing of read-only filesystems or of root); else the reason they cannot."""
    try:
        handle, probe = tempfile.mkstemp(dir=directory, prefix=".write-check.", suffix=".tmp")
    except OSError as error:
        return error.strerror or str(error)
    os.close(handle)
    os.unlink(probe)
    return None


def usable_output(path: str | Path, option: str = "--out", example: str = "out.csv") -> Path:
    """``path`` checked to be a place a result file can be written, before the work that fills
    it: not a directory or a device, inside a directory that exists or can be made, writable.

    Raises:
        OutputError: naming ``option`` and what to do instead (``example``: a file name to suggest).
    """
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{option} {path} is a directory; name a file instead, such as {path / example}")
    if path.exists() and not path.is_file():
        raise OutputError(f"{option} {path} is not a regular file; name a file to write, such as {example}")
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise OutputError(f"{option} {path}: {folder} is a file, not a directory")
    reason = writable_directory(folder)
    if reason is not None:
        raise OutputError(f"{option} {path}: cannot write in {folder} ({reason}); choose another place")
    return path


@contextmanager
def writing(path: str | Path, option: str = "--out") -> Iterator[None]:
    """Turn an operating-system error while writing ``path`` (disk full, a directory that went
    away) into an OutputError naming it; atomic writes leave no half-written file behind."""
    try:
        yield
    except OSError as error:
        raise OutputError(f"{option} {path}: cannot write it ({error.strerror or error})") from None


def _sync_directory(directory: Path) -> None:
    handle = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def finite(value: Any) -> Any:
    """``value`` with every NaN or infinite number replaced by None, so that it is valid JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


SEAL = "content_sha256"


def _content_digest(body: dict) -> str:
    canonical = json.dumps(finite(body), sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def sealed(data: dict) -> dict:
    """``data`` with the SHA-256 of its own content added (under ``SEAL``): a file written from
    it can be checked by ``unsealed`` for any change made after it was written."""
    body = {key: value for key, value in data.items() if key != SEAL}
    return {**body, SEAL: _content_digest(body)}


def unsealed(data: dict, path: str | Path) -> tuple[dict, bool]:
    """``data`` without its seal, and whether it had one.

    Raises:
        CheckpointError: the content does not match its seal (the file was changed or damaged).
    """
    if SEAL not in data:
        return data, False
    body = {key: value for key, value in data.items() if key != SEAL}
    if data[SEAL] != _content_digest(body):
        raise CheckpointError(f"{path} was changed or damaged after it was written (its content does not match "
                              f"its {SEAL}); it was not used")
    return body, True


def write_json(path: str | Path, data: Any, *, compact: bool = False) -> None:
    """Write ``data`` as JSON (non-finite numbers as null: the file is always valid JSON);
    ``compact``: on one line, for large files (indenting takes Python's own encoder, about 15x
    slower than the C one)."""
    layout = {"separators": (",", ":")} if compact else {"indent": 2}
    atomic_write(path, json.dumps(finite(data), allow_nan=False, **layout) + "\n")


def read_json(path: str | Path) -> Any:
    """The JSON in ``path``; a missing or unreadable file is a CheckpointError naming it."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path.parent} is not a complete run directory: {path.name} is missing")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as error:
        raise CheckpointError(f"{path} is corrupt: {error}") from None


def read_jsonl(path: str | Path, *, complete: bool = False) -> list[dict]:
    """The JSON objects of a .jsonl file, one per line (none when the file is missing).

    A last line cut short by a crash is skipped, unless ``complete`` asks for every line.

    Raises:
        CheckpointError: a line that is not a JSON object (the file names the line).
    """
    path = Path(path)
    if not path.is_file():
        return []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as error:
        raise CheckpointError(f"{path} is corrupt: {error}") from None
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (json.JSONDecodeError, RecursionError):
            if number == len(lines) and not complete:
                break  # an append interrupted half-way
            raise CheckpointError(f"{path}: line {number} is not valid JSON") from None
        if not isinstance(record, dict):
            raise CheckpointError(f"{path}: line {number} is not a JSON object")
        records.append(record)
    return records


def jsonl(records: list[dict]) -> str:
    """Records as JSON lines (non-finite numbers as null)."""
    return "".join(json.dumps(finite(r), allow_nan=False) + "\n" for r in records)


def append_jsonl(path: str | Path, records: list[dict]) -> None:
    """Append one JSON line per record."""
    if records:
        path = Path(path)
        _boundary(path)
        with open(path, "a", encoding="utf-8") as file:
            file.write(jsonl(records))


def make_dir(path: str | Path) -> None:
    """Create a directory that must not exist yet (FileExistsError when it does)."""
    path = Path(path)
    _boundary(path)
    path.mkdir()


def remove(path: str | Path) -> None:
    """Remove a file or a whole directory, if it is there."""
    path = Path(path)
    _boundary(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def rename(source: str | Path, target: str | Path) -> None:
    """Move a file or directory to a name that does not exist yet (atomic on one filesystem)."""
    target = Path(target)
    _boundary(target)
    os.rename(source, target)
    _sync_directory(target.parent)


@contextmanager
def locked(directory: str | Path, what: str) -> Iterator[None]:
    """Hold an exclusive lock on ``directory`` (its ``.lock`` file) while the block runs.

    Raises:
        CheckpointError: another process holds it (``what`` says what it is doing there).
    """
    path = Path(directory) / ".lock"
    handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise CheckpointError(f"{directory} is in use by another process ({what}); wait for it to end or "
                                  "stop it") from None
        yield
    finally:
        os.close(handle)  # closing releases the lock, as a crash would


def is_locked(directory: str | Path) -> bool:
    """Whether a live process holds ``directory``'s lock."""
    path = Path(directory) / ".lock"
    if not path.is_file():
        return False
    handle = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(handle)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
