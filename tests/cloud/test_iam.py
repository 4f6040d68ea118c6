"""IAM: every AWS API call our code made in the cloud tests is allowed by stacks/iam's documents.

``conftest.API_CALLS`` records each call made through ``churn.aws.clients`` (with the role
it was made as: the pipeline's execution role, or the operator running cleanup). This
module runs after the other cloud tests (see conftest) and checks them all.
"""

from __future__ import annotations

import json
import re

import pytest

from churn.aws.clients import ApiCall
from churn.aws.iam import POLICY_DIR, Permission, is_allowed, load_role_policies, permissions_for, policy_values, violations
from tests.cloud.conftest import ACCOUNT, API_CALLS, REGION, ROLE_ARN, stack_config

VALUES = policy_values(stack_config())
POLICIES = load_role_policies(VALUES)
EXPECTED = {("execution", op) for op in (
    "CreateFeatureGroup", "PutRecord", "DescribeFeatureGroup", "StartQueryExecution", "GetQueryExecution",
    "GetObject", "CreateModelPackageGroup", "CreateModelPackage", "UpdateModelPackage", "CreateModel",
    "CreateEndpointConfig", "CreateEndpoint", "UpdateEndpoint", "DescribeEndpoint", "InvokeEndpoint",
    "RegisterScalableTarget", "PutScalingPolicy", "DeregisterScalableTarget", "Publish", "PutObject")} | {
    ("operator", op) for op in ("DeleteEndpoint", "DeleteModelPackage", "DeleteModelPackageGroup", "DeleteSchedule",
                                "DeleteRule", "DeleteObjects")}


def test_every_aws_call_our_code_made_is_allowed_by_the_policies(request):
    if not API_CALLS:
        pytest.skip("run with the other tests/cloud tests: this checks the AWS calls they made")
    assert violations(API_CALLS, POLICIES, ACCOUNT) == []
    ran = {item.module.__name__.rsplit(".", 1)[-1] for item in request.session.items}
    if {"test_feature_store", "test_registry", "test_deployer", "test_alerter", "test_stack_and_cleanup"} <= ran:
        seen = {(call.role, call.operation) for call in API_CALLS}
        assert EXPECTED <= seen, f"the cloud tests no longer exercise {sorted(EXPECTED - seen)}"


def _call(operation: str, params: dict, service: str = "sagemaker", signing: str = "sagemaker", role: str = "execution"):
    return ApiCall(role=role, service=service, signing_name=signing, operation=operation, params=params, region=REGION)


def test_the_policies_are_least_privilege():
    denied = [
        _call("DeleteModelPackageGroup", {"ModelPackageGroupName": "classification-model-group"}),  # operator only
        _call("CreateEndpoint", {"EndpointName": "someone-elses-endpoint", "EndpointConfigName": "x"}),
        _call("PutRecord", {"FeatureGroupName": "another_group", "Record": []}, "sagemaker-featurestore-runtime"),
        _call("PutObject", {"Bucket": VALUES["Bucket"], "Key": "other/prefix/file"}, "s3", "s3"),
        _call("ListObjectsV2", {"Bucket": VALUES["Bucket"], "Prefix": "other/"}, "s3", "s3"),
        _call("Publish", {"TopicArn": f"arn:aws:sns:{REGION}:{ACCOUNT}:another-topic"}, "sns", "sns"),
        _call("CreateModel", {"ModelName": "classification-model-endpoint-v1-x",
                              "ExecutionRoleArn": f"arn:aws:iam::{ACCOUNT}:role/Admin"}),
        _call("DeleteSchedule", {"Name": "someone-elses-schedule", "GroupName": "default"}, "scheduler", "scheduler",
              role="operator"),
    ]
    for call in denied:
        assert violations([call], POLICIES, ACCOUNT), f"{call.operation} {call.params} should be denied"
    assert not is_allowed(POLICIES["execution"], Permission("iam:PassRole", ROLE_ARN, {"iam:PassedToService": "ec2.amazonaws.com"}))
    assert is_allowed(POLICIES["execution"], Permission("iam:PassRole", ROLE_ARN, {"iam:PassedToService": "sagemaker.amazonaws.com"}))
    creates = permissions_for(_call("CreateFeatureGroup", {"FeatureGroupName": "G", "RoleArn": ROLE_ARN}), ACCOUNT)
    assert [p.action for p in creates] == ["sagemaker:CreateFeatureGroup", "iam:PassRole"]


def test_policy_documents_hold_no_account_ids_and_cover_the_spec_sections():
    documents = {path.name: path.read_text() for path in POLICY_DIR.glob("*.json")}
    assert set(documents) == {"execution_role_policy.json", "operator_policy.json", "trust_policy.json"}
    for name, text in documents.items():
        assert not re.search(r"\b\d{12}\b", text), f"{name} holds an account id"
        json.loads(text)
    execution = json.loads(documents["execution_role_policy.json"])
    actions = {a for s in execution["Statement"] for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    spec = {"sagemaker:CreateEndpoint", "sagemaker:UpdateEndpoint", "sagemaker:DescribeFeatureGroup", "sagemaker:GetRecord",
            "sagemaker:PutRecord", "athena:StartQueryExecution", "athena:GetQueryExecution", "athena:GetQueryResults",
            "athena:StopQueryExecution", "glue:GetDatabase", "glue:GetTable", "glue:GetPartitions", "s3:GetObject",
            "s3:PutObject", "s3:DeleteObject", "s3:ListBucket", "sns:Publish", "application-autoscaling:RegisterScalableTarget",
            "application-autoscaling:PutScalingPolicy", "application-autoscaling:DescribeScalingPolicies",
            "application-autoscaling:DescribeScalableTargets", "iam:PassRole", "sagemaker:CreateModelPackage",
            "sagemaker:CreateModelPackageGroup", "sagemaker:DescribeModelPackageGroup", "sagemaker:CreatePipeline"}
    assert spec <= actions, sorted(spec - actions)
