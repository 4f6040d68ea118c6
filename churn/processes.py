"""Liveness of the daemons we start (endpoint servers, the local scheduler) by a held lock.

A daemon takes an exclusive ``flock`` on its lock file for as long as it lives and writes
its pid (and what else callers need) into that file. The kernel drops the lock when the
process dies, however it dies, so a holder found here is alive and the pid is its own:
no stale PID file, no signalling an unrelated process after PID reuse.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from pathlib import Path
from typing import IO

_HELD: list = []  # lock files this process holds for its lifetime


def hold_lock(path: str | os.PathLike, info: dict | None = None, wait_seconds: float = 3.0) -> IO[str] | None:
    """Take the daemon lock at ``path`` for this process's lifetime; None if another process holds it.

    Retries for ``wait_seconds``: a liveness probe holds the lock for an instant.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+")
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() >= deadline:
                handle.close()
                return None
            time.sleep(0.05)
    handle.seek(0)
    handle.truncate()
    handle.write(json.dumps({"pid": os.getpid(), **(info or {})}))
    handle.flush()
    _HELD.append(handle)
    return handle


def lock_holder(path: str | os.PathLike) -> dict | None:
    """What the live holder of the daemon lock at ``path`` wrote ({"pid": ...}), or None if no process holds it."""
    try:
        handle = open(path)
    except FileNotFoundError:
        return None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:  # held: the holder is alive
            text = handle.read()
            try:
                info = json.loads(text) if text else {}
            except ValueError:
                info = {}
            return info if isinstance(info, dict) else {}
        fcntl.flock(handle, fcntl.LOCK_UN)
        return None


def holder_pid(path: str | os.PathLike) -> int | None:
    """The pid of the live process holding the daemon lock at ``path``, or None."""
    info = lock_holder(path)
    pid = info.get("pid") if info else None
    return pid if isinstance(pid, int) else None


def pid_alive(pid: int | None) -> bool:
    """True if ``pid`` is a running process (a zombie, exited but not yet reaped, is not)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return True
