"""botocore's standard retry mode covers every boto3 client of our processes, not only ours (issue 13, point 7).

The libraries' clients are made the way ZenML and the SageMaker SDK make them: a plain
``boto3.client(...)`` and ``sagemaker.Session()``'s clients, in a fresh Python process started
through run.py's module (as ``python run.py ...`` starts), with the AWS retry variables unset.
Their throttled calls reach the emulator over HTTP and are counted there.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from churn.aws.clients import MAX_ATTEMPTS, RETRY_MODE, use_standard_retries
from tests.cloud import moto_extensions as emulator

ROOT = Path(__file__).resolve().parents[2]

LIBRARY_CLIENTS = """
import json, sys
sys.path.insert(0, {root!r})
import run  # noqa: F401 - what `python run.py ...` does first
import boto3, sagemaker

plain = boto3.client("sagemaker")                 # how ZenML's SageMaker code makes its clients
sdk = sagemaker.Session(boto3.Session())          # the SageMaker SDK's session
answer = sdk.sagemaker_client.list_endpoints()    # throttled twice by the emulator
print(json.dumps({{"plain": plain.meta.config.retries, "sdk": sdk.sagemaker_client.meta.config.retries,
                  "sdk_s3": sdk.s3_client.meta.config.retries,
                  "retried": answer["ResponseMetadata"]["RetryAttempts"]}}))
"""


def _fresh_process_env(**overrides: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("AWS_RETRY_MODE", "AWS_MAX_ATTEMPTS")}
    env.update(SAGEMAKER_SUPPRESS_V2_WARNING="1", ZENML_ANALYTICS_OPT_IN="false", **overrides)
    return env


def test_the_sdks_and_plain_boto3_clients_of_our_process_retry_a_throttled_call(aws):
    emulator.inject_throttling("sagemaker:ListEndpoints", 2)
    done = subprocess.run(
        [sys.executable, "-c", LIBRARY_CLIENTS.format(root=str(ROOT))],
        env=_fresh_process_env(),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    standard = {"mode": RETRY_MODE, "total_max_attempts": MAX_ATTEMPTS}
    assert seen["plain"] == seen["sdk"] == seen["sdk_s3"] == standard
    assert seen["retried"] == 2
    assert emulator.faults_served() == {"sagemaker:ListEndpoints": 2}
    assert emulator.faults_pending() == {}


def test_a_users_retry_settings_win(aws, monkeypatch):
    import boto3
    import pytest
    from botocore.exceptions import ClientError

    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    monkeypatch.setenv("AWS_RETRY_MODE", "adaptive")
    use_standard_retries()
    plain = boto3.client("sagemaker")
    assert plain.meta.config.retries == {"mode": "adaptive", "total_max_attempts": 2}
    emulator.inject_throttling("sagemaker:ListEndpoints", 2)
    with pytest.raises(ClientError, match=r"ThrottlingException.*reached max retries: 1"):
        plain.list_endpoints()  # 2 calls in total, both throttled: the error surfaces
    assert emulator.faults_served() == {"sagemaker:ListEndpoints": 2}


def test_use_standard_retries_keeps_what_is_set_and_fills_in_the_rest():
    environ = {"AWS_MAX_ATTEMPTS": "3"}
    use_standard_retries(environ)
    assert environ == {"AWS_MAX_ATTEMPTS": "3", "AWS_RETRY_MODE": RETRY_MODE}


def test_the_image_declares_the_same_retry_defaults():
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    declared = dict(re.findall(r"^\s*(?:ENV\s+)?(AWS_RETRY_MODE|AWS_MAX_ATTEMPTS)=(\S+)", dockerfile, re.M))
    assert declared == {"AWS_RETRY_MODE": RETRY_MODE, "AWS_MAX_ATTEMPTS": str(MAX_ATTEMPTS)}
