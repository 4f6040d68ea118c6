"""Two `run.py --variant rf` processes at once on one local stack (same ZenML config).

They race to register and deploy the same endpoint: the end state must be the newest
registered version served, by exactly one server process for the endpoint.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

pytestmark = pytest.mark.pipeline
REPO = Path(__file__).resolve().parents[1]
MODEL = "classification-model-group"


def _server_processes(endpoint_dir: Path) -> list:
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"churn.serving.server" in cmdline and str(endpoint_dir).encode() in cmdline:
                found.append(int(proc.name))
    return found


def test_two_runs_at_once_end_with_the_newest_version_served_by_one_server(session_dir):
    from zenml.client import Client
    from zenml.utils import source_utils

    from pipelines.ingestion import churn_feature_ingestion
    from stacks.local import setup_local_stack

    source_utils.set_custom_source_root(str(REPO))
    setup_local_stack(activate=True)
    stack = Client().active_stack
    if stack.feature_store.record_count("mlops_poc_churn_classification_feature") == 0:
        churn_feature_ingestion(feature_group_name="mlops_poc_churn_classification_feature")
    # MLflow creates its sqlite tables on first use, and two processes doing that at once fail
    # ("table spans already exists"): create them first, as any earlier run on the stack has.
    import mlflow

    mlflow.MlflowClient(stack.experiment_tracker.get_tracking_uri()).search_experiments()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    runs = [
        subprocess.Popen(
            [sys.executable, "run.py", "--variant", "rf"],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for _ in range(2)
    ]
    outputs = [run.communicate(timeout=900)[0].decode(errors="replace") for run in runs]
    deployer = stack.model_deployer
    try:
        assert [run.returncode for run in runs] == [0, 0], "\n\n".join(o[-3000:] for o in outputs)
        newest = max(int(v.version) for v in stack.model_registry.list_model_versions(name=MODEL))
        url = deployer.endpoint_url("classification-model-endpoint")
        assert requests.get(url + "/ping", timeout=10).headers["X-Model-Version"] == str(newest)
        endpoint_dir = deployer.root / "classification-model-endpoint"
        assert len(_server_processes(endpoint_dir)) == 1  # no orphan server
    finally:
        deployer.stop_endpoint("classification-model-endpoint")
    assert _server_processes(deployer.root / "classification-model-endpoint") == []
