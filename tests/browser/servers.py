"""The dashboard servers of the browser test, as processes on 127.0.0.1, and the REST calls it checks them with.

* ZenML: the local server is started by the product's own ``churn.dashboard.start_zenml_dashboard``; here
  are its daemon's pid (to stop it whatever happened) and a few REST reads of a local, no-auth server.
* MLflow: ``mlflow ui`` for the stack's tracking URI, in a process group of its own, stopped by pid.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from churn.dashboard import HOST, DashboardError, console_script, quiet_env, wait_for_http
from tests.processes import stop_process_group


# -- ZenML ------------------------------------------------------------------------------
def zenml_server_pid(config_path: str | None = None) -> int | None:
    """The local server daemon's pid, from ``<config>/zen_server/daemon/service.pid`` (None if absent)."""
    root = Path(config_path or os.environ.get("ZENML_CONFIG_PATH") or Path.home() / ".config" / "zenml")
    try:
        return int((root / "zen_server" / "daemon" / "service.pid").read_text().strip())
    except (OSError, ValueError):
        return None


def zenml_run_url(url: str, run_id: str, project: str = "default") -> str:
    """The dashboard page of a pipeline run (its DAG)."""
    return f"{url}/projects/{project}/runs/{run_id}?tab=overview"


def zenml_api(url: str, path: str, **params: Any) -> dict[str, Any]:
    """GET ``/api/v1/<path>`` of a local (no-auth) server."""
    response = requests.get(f"{url}/api/v1/{path.lstrip('/')}", params=params, timeout=30)
    response.raise_for_status()
    return response.json()


def zenml_latest_run(url: str, pipeline_name: str) -> dict[str, Any]:
    """The newest run of ``pipeline_name`` on the server."""
    for run in zenml_api(url, "runs", sort_by="desc:created", size=50)["items"]:
        if run["name"].startswith(f"{pipeline_name}-"):
            return run
    raise DashboardError(f"the ZenML server at {url} has no run of pipeline {pipeline_name!r}")


def zenml_step_output(url: str, run_id: str, step: str, output: str) -> dict[str, Any]:
    """The artifact version a step of a run produced as ``output`` (hydrated step)."""
    steps = zenml_api(url, "steps", pipeline_run_id=run_id, size=100)["items"]
    match = [s for s in steps if s["name"] == step]
    if not match:
        raise DashboardError(f"run {run_id} has no step {step!r}")
    outputs = zenml_api(url, f"steps/{match[0]['id']}", hydrate=True)["resources"]["outputs"]
    if not outputs.get(output):
        raise DashboardError(f"step {step!r} of run {run_id} has no output {output!r}")
    return outputs[output][0]


# -- MLflow -----------------------------------------------------------------------------
@dataclass
class MlflowUI:
    process: subprocess.Popen
    url: str
    backend_store_uri: str

    def wait_ready(self, timeout: float = 120.0) -> MlflowUI:
        wait_for_http(f"{self.url}/health", timeout=timeout, process=self.process)
        return self

    def stop(self) -> None:
        """Stop the UI's process group (SIGTERM, then SIGKILL)."""
        stop_process_group(self.process)


def start_mlflow_ui(
    backend_store_uri: str,
    port: int,
    *,
    log_path: str,
    env: Mapping[str, str] | None = None,
    wait: bool = True,
    timeout: float = 180.0,
) -> MlflowUI:
    """Start ``mlflow ui`` for ``backend_store_uri`` on 127.0.0.1 (its own process group) and, with ``wait``,
    wait until it answers (else call ``.wait_ready()`` later: it takes 15-60 s to import).

    MLflow 3's background job runner (GenAI scorers, trace roll-ups) is off: browsing runs does not need it,
    and it is one more process importing MLflow (about 40% of the start-up time here)."""
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [
                console_script("mlflow"),
                "ui",
                "--backend-store-uri",
                backend_store_uri,
                "--host",
                HOST,
                "--port",
                str(port),
                "--workers",
                "1",
            ],
            env={**quiet_env(env), "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    ui = MlflowUI(process=process, url=f"http://{HOST}:{port}", backend_store_uri=backend_store_uri)
    if wait:
        try:
            ui.wait_ready(timeout)
        except BaseException:
            ui.stop()
            raise
    return ui


def mlflow_run_url(url: str, experiment_id: str, run_id: str) -> str:
    """The MLflow UI page of a run (overview: tags, metrics table, parameters)."""
    return f"{url}/#/experiments/{experiment_id}/runs/{run_id}"
