"""Throttling injected on AWS calls (over HTTP, by the emulator) is retried with bounded backoff.

botocore's standard retry mode does the retrying.
"""

from __future__ import annotations

import pytest
from zenml.model_registries.base_model_registry import ModelRegistryModelMetadata, ModelVersionStage

from churn.feature_query import FeatureQuery
from stacks.contracts import DeploymentError, FailureAlertParams
from tests.cloud import moto_extensions as emulator
from tests.cloud.conftest import MAX_ATTEMPTS, REGION

GROUP = "mlops_poc_churn_classification_feature"
MODEL = "classification-model-group"
ENDPOINT = "classification-model-endpoint"
THROTTLES = {
    "sagemaker:CreateFeatureGroup": 1,
    "sagemaker:PutRecord": 3,
    "athena:StartQueryExecution": 1,
    "athena:GetQueryExecution": 2,
    "s3:GET": 1,
    "s3:PUT": 2,
    "sagemaker:CreateModelPackage": 2,
    "sagemaker:UpdateModelPackage": 1,
    "sagemaker:CreateModel": 1,
    "sagemaker:CreateEndpoint": 1,
    "sagemaker:DescribeEndpoint": 2,
    "application-autoscaling:RegisterScalableTarget": 1,
    "application-autoscaling:PutScalingPolicy": 1,
    "sns:Publish": 2,
}


def test_throttled_calls_are_retried_and_the_run_completes(
    aws, bucket, sns_inbox, sagemaker_stack, demo_frame, trained_bundle, tmp_path
):
    _, read_inbox = sns_inbox
    for key, times in THROTTLES.items():
        emulator.inject_throttling(key, times)

    store, registry = sagemaker_stack.feature_store, sagemaker_stack.model_registry
    assert store.ingest(GROUP, demo_frame.iloc[:30], "churn")["records"] == 30
    query = FeatureQuery(GROUP, 1, 30)
    emulator.queue_latest_records(aws, query, REGION)
    frame, _ = store.read(query)
    assert len(frame) == 30

    bundle, _ = trained_bundle
    sha256 = bundle.save(tmp_path / "bundle")
    version = registry.register_model_version(
        name=MODEL,
        model_source_uri=str(tmp_path / "bundle"),
        metadata=ModelRegistryModelMetadata(approval_status="PendingManualApproval", bundle_sha256=sha256),
    )
    registry.update_model_version(MODEL, version.version, stage=ModelVersionStage.PRODUCTION)
    deployment = sagemaker_stack.model_deployer.deploy_bundle(
        ENDPOINT, MODEL, version.version, str(tmp_path / "bundle"), sha256
    )
    assert deployment["autoscaling"]["enabled"]
    params = FailureAlertParams(pipeline="churn_rf_training", step="gate", error="ValueError: example")
    assert sagemaker_stack.alerter.post("example alert", params)

    assert emulator.faults_pending() == {}
    assert emulator.faults_served() == THROTTLES  # every injected throttle was met and retried
    assert [m["Subject"] for m in read_inbox()] == ["[Pipeline Failed] churn_rf_training.gate"]


def test_throttling_that_does_not_stop_fails_after_bounded_attempts(aws, sagemaker_stack):
    emulator.inject_throttling("sagemaker:DescribeEndpoint", 100)
    with pytest.raises(DeploymentError, match=rf"ThrottlingException .*still throttled after {MAX_ATTEMPTS} attempts"):
        sagemaker_stack.model_deployer.endpoint_url(ENDPOINT)
    assert emulator.faults_served()["sagemaker:DescribeEndpoint"] == MAX_ATTEMPTS
