"""How much memory this process can still take: the free memory, less under a container's
limit or the process's own (``ulimit -d``/``-v``)."""

from __future__ import annotations

import os
import resource
from pathlib import Path


def available_memory() -> int:
    """Bytes this process could still use: the free memory, or less under a container's limit or
    the process's own."""
    free = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                free = int(line.split()[1]) * 1024
    except OSError:
        pass
    if free is None:
        try:
            free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            free = 8 << 30
    try:  # a container's limit, less what its processes hold (not its page cache, which the kernel reclaims)
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        stat = dict(line.split() for line in Path("/sys/fs/cgroup/memory.stat").read_text().splitlines())
        if limit != "max":
            free = min(free, int(limit) - int(stat["anon"]))
    except (OSError, ValueError, KeyError):
        pass
    return max(min(free, _process_limit()), 0)


def _process_limit() -> int:
    """What this process's own limits (``ulimit -d``/``-v``) still allow it to allocate."""
    room = 1 << 62
    try:
        status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    except OSError:
        return room
    for limit, used in ((resource.RLIMIT_DATA, "VmData"), (resource.RLIMIT_AS, "VmSize")):
        soft = resource.getrlimit(limit)[0]
        if soft != resource.RLIM_INFINITY and used in status:
            room = min(room, soft - int(status[used].split()[0]) * 1024)
    return room
