"""A throwaway PostgreSQL server for tests: Debian's package (``.ci/run`` installs it), started
with trust authentication on a free loopback port in a temporary directory, stopped afterwards."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from contextlib import contextmanager


def _binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


def available() -> str | None:
    """None when a server can be started here, else why not."""
    if not (_binary("initdb") and _binary("pg_ctl")):
        return "PostgreSQL is not installed (apt-get install postgresql)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root without a 'postgres' user to run the server as"
    return None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def server():
    """Yield the SQLAlchemy URL of a fresh server's ``postgres`` database."""
    folder = tempfile.mkdtemp(prefix="lf-postgres-")
    as_user: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        account = pwd.getpwnam("postgres")
        os.chown(folder, account.pw_uid, account.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = os.path.join(folder, "data"), _free_port()
    subprocess.run([*as_user, _binary("initdb"), "-D", data, "-U", "layerforge", "--auth=trust", "-E", "UTF8"],
                   check=True, capture_output=True)
    log = os.path.join(folder, "server.log")
    subprocess.run([*as_user, _binary("pg_ctl"), "-D", data, "-l", log, "-w", "-o",
                    f"-h 127.0.0.1 -p {port} -k {folder} -c fsync=off", "start"], check=True, capture_output=True)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        yield f"postgresql+psycopg2://layerforge@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_user, _binary("pg_ctl"), "-D", data, "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)
