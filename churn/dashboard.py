"""The local ZenML dashboard of ``python run.py dashboard``: ZenML's server on 127.0.0.1, without Docker.

:func:`start_zenml_dashboard` runs ``zenml login --local`` in a subprocess (so a caller can give it
its own ``ZENML_CONFIG_PATH``), with no browser pop-up, skips the onboarding survey and returns the
URL; :func:`stop_zenml_dashboard` runs ``zenml logout --local``. The server serves the sqlite store
of that config: runs made before it started show up in it, and the client is connected to it until
it is stopped. (The browser tooling that drives the dashboards in tests lives in tests/browser/.)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import requests

HOST = "127.0.0.1"
ZENML_PORT = 8237
QUIET_ENV = {
    "ZENML_ANALYTICS_OPT_IN": "false",
    "ZENML_AUTO_OPEN_DASHBOARD": "false",
    "ZENML_ENABLE_REPO_INIT_WARNINGS": "false",
    "MLFLOW_ENABLE_TELEMETRY": "false",
    "DO_NOT_TRACK": "1",
}
ONBOARDING_DONE = {"email_opted_in": False, "user_metadata": {"finished_onboarding_survey": True}}


class DashboardError(RuntimeError):
    """A dashboard process did not start or stop, or did not answer as expected."""


def quiet_env(env: Mapping[str, str] | None = None, config_path: str | None = None) -> dict[str, str]:
    """This process's environment with ``env`` on top, analytics and pop-ups off, and ``ZENML_CONFIG_PATH``."""
    merged = {**os.environ, **(env or {}), **QUIET_ENV}
    if config_path:
        merged["ZENML_CONFIG_PATH"] = str(config_path)
    return merged


def console_script(name: str) -> str:
    """The console script next to this interpreter (the venv's), else the one on PATH."""
    candidate = Path(sys.executable).with_name(name)
    if candidate.is_file():
        return str(candidate)
    found = shutil.which(name)
    if not found:
        raise DashboardError(f"`{name}` is not installed in this environment")
    return found


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def wait_for_http(url: str, timeout: float = 60.0, process: subprocess.Popen | None = None) -> None:
    """Poll ``url`` until it answers HTTP 200 (raise if ``process`` exits first)."""
    deadline, last = time.monotonic() + timeout, "no answer"
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise DashboardError(f"the process behind {url} exited with code {process.returncode}")
        try:
            response = requests.get(url, timeout=2)
            if response.status_code == 200:
                return
            last = f"HTTP {response.status_code}"
        except requests.RequestException as error:
            last = type(error).__name__
        time.sleep(0.25)
    raise DashboardError(f"{url} did not answer within {timeout:.0f}s ({last})")


def skip_onboarding(url: str, timeout: float = 15.0) -> None:
    """Mark the (local, no-auth) server's user as done with the first-visit survey."""
    response = requests.put(f"{url}/api/v1/current-user", json=ONBOARDING_DONE, timeout=timeout)
    if response.status_code != 200:
        raise DashboardError(f"could not skip the onboarding survey: HTTP {response.status_code} {response.text[:200]}")


def start_zenml_dashboard(
    host: str = HOST,
    port: int = ZENML_PORT,
    *,
    config_path: str | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 240.0,
    restart: bool = False,
) -> str:
    """Start the local ZenML server (a daemon, no Docker) and connect the client to it.

    Call it before this process reads the ZenML client configuration (a Client made earlier still
    points at the old store). The daemon outlives this process: stop it with
    :func:`stop_zenml_dashboard` (also after a failure here, which can leave it running).

    Args:
        host: The address to bind (loopback by default).
        port: The port to serve on.
        config_path: The client's ZenML config directory (default: $ZENML_CONFIG_PATH, else ~/.config/zenml).
        env: Extra environment for ``zenml login``.
        timeout: Seconds ``zenml login --local`` may take.
        restart: Pass ``--restart`` (restart a running local server).

    Returns:
        The dashboard URL, ``http://127.0.0.1:8237`` by default.

    Raises:
        DashboardError: ``zenml login`` failed, or the server did not answer.
    """
    command = [console_script("zenml"), "login", "--local", "--ip-address", host, "--port", str(port)]
    if restart:
        command.append("--restart")
    result = subprocess.run(
        command,
        env=quiet_env(env, config_path),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    url = f"http://{host}:{port}"
    if result.returncode != 0:
        raise DashboardError(
            f"`zenml login --local` failed (exit {result.returncode}):\n{_tail(result.stdout + result.stderr)}"
        )
    wait_for_http(f"{url}/health", timeout=60)
    skip_onboarding(url)
    return url


def stop_zenml_dashboard(
    *, config_path: str | None = None, env: Mapping[str, str] | None = None, timeout: float = 120.0
) -> None:
    """``zenml logout --local``: stop the local server and point the client back at its sqlite store.

    Raises:
        DashboardError: ``zenml logout`` failed.
    """
    result = subprocess.run(
        [console_script("zenml"), "logout", "--local"],
        env=quiet_env(env, config_path),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if result.returncode != 0:
        raise DashboardError(
            f"`zenml logout --local` failed (exit {result.returncode}):\n{_tail(result.stdout + result.stderr)}"
        )
