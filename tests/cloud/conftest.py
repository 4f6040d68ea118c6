"""Cloud tests: our AWS backends against the AWS emulator (moto server mode) over real HTTP.

Fixtures (other cloud tests use them too; keep the names):
- ``moto_server`` (session): moto's ThreadedMotoServer on 127.0.0.1 and a free port, with the
  in-process extensions of ``moto_extensions`` in front of it. It points every boto3 client
  at it (AWS_ENDPOINT_URL), with fake credentials, region us-west-2 and botocore's standard
  retries (AWS_MAX_ATTEMPTS=MAX_ATTEMPTS, so injected throttling is retried as in production). Each
  backoff wait is capped at 50 ms here, so a retried call (moto also answers unimplemented calls
  with a retryable 500) costs no seconds; the retry decisions stay botocore's. Yields the endpoint URL.
- ``aws`` (function): resets the emulator (POST /moto-api/reset) and returns the endpoint URL.

Every request that reaches the emulator (from our code, ZenML, the SageMaker SDK or the tests)
first passes ``strict_aws.StrictApp``, which validates it against botocore's service model
(enums, patterns, lengths, item counts, ranges) and refuses it as AWS would; the autouse
fixture ``strict_aws_requests`` fails any test during which such a violation was recorded,
even when the caller swallowed the error.

Every AWS API call our code (``churn.aws.clients``) makes during the session is recorded in
``API_CALLS``; ``test_iam.py`` (ordered last) checks each against ``stacks/iam``'s policies.
Test code itself uses plain boto3 clients (``boto``), which are not recorded.
"""

from __future__ import annotations

import os

import pytest

from churn.net import free_port

REGION = "us-west-2"
ACCOUNT = "123456789012"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/ML-Role-Pipelines"
BUCKET = "churn-mlops-test"
PREFIX = "mlops/classification_model"
API_CALLS: list = []
MAX_ATTEMPTS = 6  # botocore's calls in total per API call, the first included
BACKOFF_CAP_SECONDS = 0.05
_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "AWS_MAX_ATTEMPTS": str(MAX_ATTEMPTS),
    "AWS_RETRY_MODE": "standard",
}
_UNSET = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_DEFAULT_PROFILE")


def pytest_collection_modifyitems(config, items):
    """Run the IAM check after every other cloud test, so it sees all their calls."""
    iam = [item for item in items if item.nodeid.startswith("tests/cloud/test_iam.py")]
    items[:] = [item for item in items if item not in iam] + iam


@pytest.fixture(scope="session")
def moto_server():
    from churn.aws import clients
    from tests.cloud import moto_extensions, strict_aws

    server = moto_extensions.ExtendedMotoServer(port=free_port(), middleware=strict_aws.StrictApp)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    saved = {
        k: os.environ.get(k)
        for k in (*_ENV, *_UNSET, "AWS_ENDPOINT_URL", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE")
    }
    os.environ.update(_ENV)
    os.environ["AWS_ENDPOINT_URL"] = url
    os.environ["AWS_CONFIG_FILE"] = os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    for key in _UNSET:
        os.environ.pop(key, None)
    clients.reset_clients()
    from botocore.retries.standard import ExponentialBackoff

    botocore_delay = ExponentialBackoff.delay_amount
    ExponentialBackoff.delay_amount = lambda self, context: min(botocore_delay(self, context), BACKOFF_CAP_SECONDS)
    remove = clients.add_call_observer(API_CALLS.append)
    try:
        yield url
    finally:
        if os.environ.get("STRICT_AWS_SEEN"):  # which operations the session sent, for coverage review
            with open(os.environ["STRICT_AWS_SEEN"], "a") as out:
                out.writelines(f"{s} {o} {n}\n" for (s, o), n in sorted(strict_aws.operations_seen().items()))
        remove()
        ExponentialBackoff.delay_amount = botocore_delay
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        clients.reset_clients()


@pytest.fixture(autouse=True)
def strict_aws_requests():
    """Fail the test if any request that reached the emulator broke the AWS service model.

    Collected after the test (its session fixtures' set-up included), so a violation fails the
    test even when the code under test caught the ValidationException.
    """
    from tests.cloud import strict_aws

    yield
    violations = strict_aws.take_violations()
    if violations:
        pytest.fail(
            "requests that AWS would refuse (strict emulator):\n  " + "\n  ".join(map(str, violations)), pytrace=False
        )


@pytest.fixture
def aws(moto_server):
    """A fresh emulator (all state reset); returns its endpoint URL."""
    import requests

    requests.post(f"{moto_server}/moto-api/reset", timeout=30).raise_for_status()
    return moto_server


def boto(service: str):
    """A plain boto3 client on the emulator, for test setup/inspection (not recorded)."""
    import boto3

    return boto3.client(service, region_name=REGION, endpoint_url=os.environ["AWS_ENDPOINT_URL"])


@pytest.fixture
def bucket(aws):
    boto("s3").create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    return BUCKET


@pytest.fixture
def sns_inbox(aws):
    """An SNS topic with an SQS queue subscribed; returns (topic_arn, read_messages)."""
    import json

    sns, sqs = boto("sns"), boto("sqs")
    topic = sns.create_topic(Name="ml-model-pipeline-failures")["TopicArn"]
    queue_url = sqs.create_queue(QueueName="alerts-inbox")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)

    def read() -> list:
        messages = []
        while True:
            batch = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get(
                "Messages", []
            )
            if not batch:
                return messages
            for message in batch:
                messages.append(json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])

    return topic, read


def stack_config(**overrides) -> dict:
    """A SageMaker stack config for the emulator (the example file's keys)."""
    config = {
        "region": REGION,
        "bucket": BUCKET,
        "prefix": PREFIX,
        "role_arn": ROLE_ARN,
        "sns_topic_arn": f"arn:aws:sns:{REGION}:{ACCOUNT}:ml-model-pipeline-failures",
        "endpoint_name": "classification-model-endpoint",
        "model_package_group": "classification-model-group",
        "feature_group_name": "mlops_poc_churn_classification_feature",
        "athena_query_results": f"s3://{BUCKET}/athena-query-results/",
    }
    config.update(overrides)
    return config


FAST = {"poll_initial_seconds": 0.01, "poll_max_seconds": 0.05}


@pytest.fixture(scope="session")
def sagemaker_stack(moto_server):
    """A SageMaker stack (unique name) registered by our recipe, not activated; returns the ZenML Stack."""
    import uuid
    from pathlib import Path

    from zenml.client import Client
    from zenml.enums import StackComponentType as T
    from zenml.stack import Stack
    from zenml.utils import source_utils

    from stacks.sagemaker.recipe import setup_sagemaker_stack

    source_utils.set_custom_source_root(str(Path(__file__).resolve().parents[2]))
    name = f"sagemaker-test-{uuid.uuid4().hex[:8]}"
    setup_sagemaker_stack(
        stack_config(stack_name=name),
        activate=False,
        overrides={T.FEATURE_STORE: FAST, T.MODEL_DEPLOYER: {**FAST, "deploy_timeout_seconds": 30.0}},
    )
    return Stack.from_model(Client().get_stack(name))


@pytest.fixture
def active_stack(sagemaker_stack):
    """The SageMaker stack active for one test; the stack active before is restored."""
    from zenml.client import Client

    client = Client()
    before = client.active_stack_model.name
    client.activate_stack(sagemaker_stack.name)
    yield client.active_stack
    client.activate_stack(before)
