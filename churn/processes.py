"""Small helpers for the daemons we start (endpoint servers, the local scheduler)."""

from __future__ import annotations

import os
from typing import Optional


def pid_alive(pid: Optional[int]) -> bool:
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
