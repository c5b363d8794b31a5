"""How much memory this process can still take: the free memory, less under a container's
limit or the process's own (``ulimit -d``/``-v``); and how freed memory is kept for reuse."""

from __future__ import annotations

import ctypes
import os
import platform
import resource
import sys
from pathlib import Path

KEPT_BYTES = 256 << 20  # freed memory malloc keeps for reuse, rather than hand back to the system
MAPPED_BYTES = 32 << 20  # blocks at least this large are mapped anew each time (glibc's largest setting)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_kept = None


def keep_freed_memory() -> bool:
    """Have glibc's malloc keep up to ``KEPT_BYTES`` of freed memory for the next allocation, in
    this process, once; True when it does.

    Training and evaluation free and allocate the same large activations at every step. By
    default malloc hands such memory back to the system and maps it anew, and the first touch
    of each new page is a fault the kernel must serve: a training step of a small CNN on 28x28
    images at batch 128 took 1.3-1.45x as long, and its evaluation up to 3x. This is what
    ``MALLOC_TRIM_THRESHOLD_`` and ``MALLOC_MMAP_THRESHOLD_`` set; when the process's
    environment sets either, or another allocator is preloaded (jemalloc, tcmalloc), that
    choice stands. The memory a run peaks at does not change; after a peak the process holds
    at most ``KEPT_BYTES`` more than it would.
    """
    global _kept
    if _kept is None:
        _kept = False
        chosen = any(name.startswith("MALLOC_") for name in os.environ) or os.environ.get("LD_PRELOAD")
        if sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc" and not chosen:
            try:
                mallopt = ctypes.CDLL(None).mallopt
                _kept = bool(mallopt(_M_MMAP_THRESHOLD, MAPPED_BYTES)) and bool(mallopt(_M_TRIM_THRESHOLD, KEPT_BYTES))
            except (OSError, AttributeError):
                pass
    return _kept


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
