"""Hermetic test setup: a temporary ZenML config/store per session, analytics off.

The environment is set here, before anything imports ZenML, so no test touches the
user's ~/.config/zenml or any network.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from churn.files import atomic_write_bytes
from churn.net import free_port
from tests.processes import stop_process_group, wait_for_ping

REPO = Path(__file__).resolve().parents[1]
_SESSION_DIR = Path(tempfile.mkdtemp(prefix="churn-tests-"))
os.environ.update(
    {
        "ZENML_CONFIG_PATH": str(_SESSION_DIR / "zenml"),
        "ZENML_ANALYTICS_OPT_IN": "false",
        "ZENML_LOGGING_VERBOSITY": "WARN",
        "ZENML_ENABLE_REPO_INIT_WARNINGS": "false",
        "ZENML_AUTO_OPEN_DASHBOARD": "false",
        "MLFLOW_ENABLE_TELEMETRY": "false",
        "DO_NOT_TRACK": "1",
        "SAGEMAKER_SUPPRESS_V2_WARNING": "1",
        "OMP_NUM_THREADS": "1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
)
ARTIFACTS = REPO / "test-artifacts"


@pytest.fixture(scope="session")
def session_dir() -> Path:
    return _SESSION_DIR


class ServerProcess:
    """Our inference server as a real process on loopback (stopped by pid)."""

    def __init__(self, endpoint_dir: Path, workers: int = 1, max_body_bytes: int | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [
            sys.executable,
            "-m",
            "churn.serving.server",
            "--endpoint-dir",
            str(endpoint_dir),
            "--port",
            str(self.port),
            "--workers",
            str(workers),
        ]
        if max_body_bytes:
            command += ["--max-body-bytes", str(max_body_bytes)]
        self.log = open(Path(endpoint_dir) / "test-server.log", "ab")
        self.process = subprocess.Popen(
            command,
            cwd=REPO,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 60.0) -> None:
        wait_for_ping(self.url, self.process, "server", timeout)

    def stop(self) -> None:
        stop_process_group(self.process)
        self.log.close()


def publish(endpoint_dir, bundle, version: str) -> dict:
    """What the model deployer does: bundle on disk, then the pointer the server watches."""
    bundle_dir = endpoint_dir / "bundles" / f"v{version}"
    record = {"version": version, "sha256": bundle.save(bundle_dir), "bundle_dir": str(bundle_dir)}
    write_pointer(endpoint_dir, record)
    return record


def write_pointer(endpoint_dir, record) -> None:
    atomic_write_bytes(
        endpoint_dir / "current.json", (record if isinstance(record, str) else json.dumps(record)).encode()
    )


def local_stack_fixture(endpoint_name: str):
    """A module-scoped ``stack`` fixture: the local stack set up and active; stops ``endpoint_name`` after the module.

    Use as ``stack = local_stack_fixture(ENDPOINT)`` in a test module.
    """

    @pytest.fixture(scope="module")
    def stack(session_dir):
        from zenml.client import Client
        from zenml.utils import source_utils

        from stacks.local import setup_local_stack

        source_utils.set_custom_source_root(str(REPO))
        setup_local_stack(activate=True)
        active = Client().active_stack
        yield active
        active.model_deployer.stop_endpoint(endpoint_name)

    return stack


@pytest.fixture(scope="session")
def demo_frame():
    from churn.demo_data import generate_customers

    return generate_customers(5000, seed=42)


@pytest.fixture(scope="session")
def trained_bundle(demo_frame):
    """A small RF bundle trained with the same functions the pipeline uses."""
    from churn.preprocessing import Preprocessor, split_train_test
    from churn.training import train_random_forest

    split = split_train_test(demo_frame.iloc[:4000], "churn", 0.2, 42)
    pre = Preprocessor.fit(split.train, "churn")
    bundle = train_random_forest(split.train, pre, {"n_estimators": 30, "max_depth": 8}, 42)
    return bundle, split


def assert_endpoint_serves_registered_bundle(invocations_url: str, registration, rows) -> None:
    """A real CSV request answers exactly as the registered bundle (sha-checked) predicts."""
    import requests

    from churn.bundle import ModelBundle

    bundle = ModelBundle.load(registration.bundle_uri.removeprefix("file://"), expected_sha256=registration.sha256)
    response = requests.post(
        invocations_url, data=rows.to_csv(index=False), headers={"Content-Type": "text/csv"}, timeout=30
    )
    assert response.status_code == 200, response.text
    assert response.text.splitlines() == [str(v) for v in bundle.predict(rows)]
    assert response.headers["X-Model-Version"] == registration.version
