"""The approval workflow on the SageMaker stack, against the emulator (every request validated by botocore).

``run.py approve|reject|promote`` set ModelApprovalStatus (+ ApprovalDescription) with UpdateModelPackage and
deploy the model to serve to the endpoint; an approval made outside our CLI (as SageMaker Studio does it:
UpdateModelPackage ModelApprovalStatus=Approved) reaches the endpoint through ``run.py reconcile``.
"""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from churn.model_registry import model_to_serve, register_all_or_nothing
from tests.cloud.conftest import boto

# the stack's own names (configs/rf.yaml): the IAM documents grant exactly these (tests/cloud/test_iam.py)
GROUP = "classification-model-group"
ENDPOINT = "classification-model-endpoint"


@pytest.fixture
def saved_bundle(trained_bundle, tmp_path):
    bundle, _ = trained_bundle
    return str(tmp_path / "bundle"), bundle.save(tmp_path / "bundle")


def _register(registry, bundle, status: str, run: str) -> str:
    uri, sha256 = bundle
    lineage = {"bundle_sha256": sha256, "zenml_pipeline_run_uuid": f"run-{run}", "zenml_pipeline_name": "test"}
    version, _ = register_all_or_nothing(registry, GROUP, uri, lineage, status)
    return str(version.version)


def _run(*args: str, ok: bool = True) -> str:
    from run import cli

    result = CliRunner().invoke(cli, [*args, "--endpoint", ENDPOINT], catch_exceptions=False)
    assert (result.exit_code == 0) == ok, result.output
    return result.output


def _package(version: str) -> dict:
    sm = boto("sagemaker")
    summaries = sm.list_model_packages(ModelPackageGroupName=GROUP)["ModelPackageSummaryList"]
    arn = next(s["ModelPackageArn"] for s in summaries if str(s["ModelPackageVersion"]) == version)
    return sm.describe_model_package(ModelPackageName=arn)


def _endpoint_version() -> str:
    """The version the endpoint's model serves, read from SageMaker (endpoint -> config -> its tags)."""
    sm = boto("sagemaker")
    config = sm.describe_endpoint(EndpointName=ENDPOINT)["EndpointConfigName"]
    arn = sm.describe_endpoint_config(EndpointConfigName=config)["EndpointConfigArn"]
    return {t["Key"]: t["Value"] for t in sm.list_tags(ResourceArn=arn)["Tags"]}["churn:model-version"]


def test_approve_reject_promote_and_a_studio_approval_reach_the_endpoint(aws, bucket, active_stack, saved_bundle):
    registry = active_stack.model_registry
    v1 = _register(registry, saved_bundle, "Approved", "1")
    v2 = _register(registry, saved_bundle, "PendingManualApproval", "2")
    assert "serves" in _run("reconcile", "--group", GROUP) and _endpoint_version() == v1

    out = _run("approve", GROUP, v2, "--reason", "looked at the report")
    assert f"serves {GROUP} v{v2} (was v{v1})" in out and _endpoint_version() == v2
    assert _package(v2)["ModelApprovalStatus"] == "Approved"
    assert _package(v2)["ApprovalDescription"] == "looked at the report"

    out = _run("promote", GROUP, v1)  # rollback
    assert f"serves {GROUP} v{v1} (was v{v2})" in out and _endpoint_version() == v1
    assert _package(v1)["CustomerMetadataProperties"]["champion_over"] == v2

    out = _run("reject", GROUP, v1)  # the served version: the next model to serve replaces it
    assert f"serves {GROUP} v{v1}" not in out and f"serves {GROUP} v{v2} (was v{v1})" in out
    assert _package(v1)["ModelApprovalStatus"] == "Rejected" and _endpoint_version() == v2
    assert "champion_over" not in _package(v1).get("CustomerMetadataProperties", {})

    # an approval made in Studio: UpdateModelPackage outside our code; the reconcile deploys it
    v3 = _register(registry, saved_bundle, "PendingManualApproval", "3")
    boto("sagemaker").update_model_package(
        ModelPackageArn=_package(v3)["ModelPackageArn"], ModelApprovalStatus="Approved"
    )
    assert model_to_serve(registry, GROUP).version == v3 and _endpoint_version() == v2
    assert f"serves {GROUP} v{v3} (was v{v2})" in _run("reconcile", "--group", GROUP)
    assert _endpoint_version() == v3
    assert "already serves" in _run("reconcile", "--group", GROUP)  # idempotent

    out = _run("approve", GROUP, "42", ok=False)
    assert f"{GROUP} has no version '42' (its versions: 1, 2, 3)" in out


def test_the_model_to_serve_reads_only_the_approved_packages(aws, bucket, active_stack, saved_bundle):
    """ListModelPackages filters ModelApprovalStatus=Approved: a group's many rejected/pending packages are not read."""
    from tests.cloud import strict_aws

    registry = active_stack.model_registry
    approved = _register(registry, saved_bundle, "Approved", "a")
    for run in ("r1", "r2", "p1"):
        _register(registry, saved_bundle, "Rejected" if run.startswith("r") else "PendingManualApproval", run)

    def describes() -> int:
        return strict_aws.operations_seen().get(("sagemaker", "DescribeModelPackage"), 0)

    before = describes()
    assert model_to_serve(registry, GROUP).version == approved
    assert describes() - before == 1  # the one Approved package, not the four
