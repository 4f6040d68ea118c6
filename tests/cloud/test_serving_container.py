"""The emulator's InvokeEndpoint runs our containers as SageMaker runs our image: ``serve`` per container.

A model whose container Environment does not carry the registered bundle's SHA-256 (or carries
another one) never serves: its ``serve`` refuses to start, as the real image does (tests/container),
and the endpoint answers with the refusal instead of a prediction.
"""

from __future__ import annotations

import botocore.exceptions
import pytest

from tests.cloud.conftest import BUCKET, ROLE_ARN, boto

ENDPOINT = "integrity-endpoint"


def _serve(container: dict, name: str) -> None:
    sm = boto("sagemaker")
    sm.create_model(ModelName=name, ExecutionRoleArn=ROLE_ARN, PrimaryContainer=container)
    sm.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            {"VariantName": "AllTraffic", "ModelName": name, "InstanceType": "ml.m5.large", "InitialInstanceCount": 1}
        ],
    )
    sm.create_endpoint(EndpointName=ENDPOINT, EndpointConfigName=name)
    for _ in range(5):
        if sm.describe_endpoint(EndpointName=ENDPOINT)["EndpointStatus"] == "InService":
            return
    raise AssertionError("the endpoint did not become InService")


def test_a_container_without_the_registered_sha256_does_not_serve(aws, bucket, trained_bundle, tmp_path):
    from churn.aws.packaging import build_model_tarball, serving_containers

    bundle, split = trained_bundle
    sha = bundle.save(tmp_path / "bundle")
    built = build_model_tarball(tmp_path / "bundle", tmp_path / "model.tar.gz")
    boto("s3").upload_file(str(tmp_path / "model.tar.gz"), BUCKET, "integrity/model.tar.gz")
    container = serving_containers(
        built["info"],
        "123456789012.dkr.ecr.us-west-2.amazonaws.com/churn-mlops:t",
        f"s3://{BUCKET}/integrity/model.tar.gz",
        sha,
    )[0]
    rows = split.test.iloc[:3].to_csv(index=False).encode()

    _serve({**container, "Environment": {**container["Environment"], "CHURN_BUNDLE_SHA256": "0" * 64}}, "wrong")
    runtime = boto("sagemaker-runtime")
    with pytest.raises(botocore.exceptions.ClientError) as refused:
        runtime.invoke_endpoint(EndpointName=ENDPOINT, ContentType="text/csv", Body=rows)
    message = str(refused.value)
    assert "ModelError" in message and "did not pass its /ping health check" in message
    assert f"has SHA-256 {sha}, but the registry recorded {'0' * 64}" in message

    boto("sagemaker").delete_endpoint(EndpointName=ENDPOINT)
    _serve(container, "right")  # the registered hash: it serves, answering as the bundle does
    answer = runtime.invoke_endpoint(EndpointName=ENDPOINT, ContentType="text/csv", Body=rows)["Body"].read().decode()
    assert answer.split() == [str(v) for v in bundle.predict(split.test.iloc[:3])]
