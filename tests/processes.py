"""Processes tests and benchmarks start: stop by process group, wait for ``/ping``, MLflow's serve command.

Importable without side effects (tests/conftest.py sets the test environment on import), so bench/ uses it too.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def stop_process_group(process: subprocess.Popen) -> None:
    """Stop a process started with start_new_session=True, and its children: SIGTERM, then SIGKILL after 10 s."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def wait_for_ping(
    url: str, process: subprocess.Popen, what: str, timeout: float = 60.0, log: Path | None = None
) -> None:
    """Wait until ``url``/ping answers 200; RuntimeError if ``process`` exits first, TimeoutError after ``timeout``
    (both end with the last 2,000 characters of ``log`` when given)."""
    import requests

    def tail() -> str:
        return f": {log.read_text(errors='replace')[-2000:]}" if log is not None else ""

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}{tail()}")
        try:
            if requests.get(url + "/ping", timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{what} did not become ready{tail()}")


def mlflow_serve_command(model_uri: str, port: int) -> list[str]:
    """``mlflow models serve`` of ``model_uri`` on 127.0.0.1:``port``, in this environment, one worker."""
    return [
        sys.executable,
        *("-m", "mlflow", "models", "serve", "-m", model_uri, "-h", "127.0.0.1", "-p", str(port)),
        *("--env-manager", "local", "-w", "1"),
    ]
