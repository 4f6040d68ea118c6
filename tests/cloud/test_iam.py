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
from churn.aws.iam import POLICY_DIR, policy_values, render_policy
from tests.cloud.conftest import ACCOUNT, API_CALLS, REGION, ROLE_ARN, stack_config
from tests.cloud.iam_check import (
    Permission,
    is_allowed,
    load_requirements,
    load_role_policies,
    permissions_for,
    unmet_requirements,
    violations,
)

VALUES = policy_values(stack_config())
POLICIES = load_role_policies(VALUES)
EXPECTED = {
    ("execution", op)
    for op in (
        "CreateFeatureGroup",
        "PutRecord",
        "DescribeFeatureGroup",
        "StartQueryExecution",
        "GetQueryExecution",
        "GetObject",
        "CreateModelPackageGroup",
        "CreateModelPackage",
        "UpdateModelPackage",
        "CreateModel",
        "CreateEndpointConfig",
        "CreateEndpoint",
        "UpdateEndpoint",
        "DescribeEndpoint",
        "InvokeEndpoint",
        "RegisterScalableTarget",
        "PutScalingPolicy",
        "DeregisterScalableTarget",
        "Publish",
        "PutObject",
    )
} | {
    ("operator", op)
    for op in (
        "DeleteEndpoint",
        "DeleteModelPackage",
        "DeleteModelPackageGroup",
        "DeleteSchedule",
        "DeleteRule",
        "DeleteObjects",
    )
}


def test_every_aws_call_our_code_made_is_allowed_by_the_policies(request):
    if not API_CALLS:
        pytest.skip("run with the other tests/cloud tests: this checks the AWS calls they made")
    assert violations(API_CALLS, POLICIES, ACCOUNT) == []
    ran = {item.module.__name__.rsplit(".", 1)[-1] for item in request.session.items}
    if {"test_feature_store", "test_registry", "test_deployer", "test_alerter", "test_stack_and_cleanup"} <= ran:
        seen = {(call.role, call.operation) for call in API_CALLS}
        assert seen >= EXPECTED, f"the cloud tests no longer exercise {sorted(EXPECTED - seen)}"


def _call(
    operation: str, params: dict, service: str = "sagemaker", signing: str = "sagemaker", role: str = "execution"
):
    return ApiCall(role=role, service=service, signing_name=signing, operation=operation, params=params, region=REGION)


def test_the_policies_are_least_privilege():
    denied = [
        _call("DeleteModelPackageGroup", {"ModelPackageGroupName": "classification-model-group"}),  # operator only
        _call("CreateEndpoint", {"EndpointName": "someone-elses-endpoint", "EndpointConfigName": "x"}),
        _call("PutRecord", {"FeatureGroupName": "another_group", "Record": []}, "sagemaker-featurestore-runtime"),
        _call("PutObject", {"Bucket": VALUES["Bucket"], "Key": "other/prefix/file"}, "s3", "s3"),
        _call("ListObjectsV2", {"Bucket": VALUES["Bucket"], "Prefix": "other/"}, "s3", "s3"),
        _call("Publish", {"TopicArn": f"arn:aws:sns:{REGION}:{ACCOUNT}:another-topic"}, "sns", "sns"),
        _call(
            "CreateModel",
            {
                "ModelName": "classification-model-endpoint-v1-x",
                "ExecutionRoleArn": f"arn:aws:iam::{ACCOUNT}:role/Admin",
            },
        ),
        _call(
            "DeleteSchedule",
            {"Name": "someone-elses-schedule", "GroupName": "default"},
            "scheduler",
            "scheduler",
            role="operator",
        ),
    ]
    for call in denied:
        assert violations([call], POLICIES, ACCOUNT), f"{call.operation} {call.params} should be denied"
    assert not is_allowed(
        POLICIES["execution"], Permission("iam:PassRole", ROLE_ARN, {"iam:PassedToService": "ec2.amazonaws.com"})
    )
    assert is_allowed(
        POLICIES["execution"], Permission("iam:PassRole", ROLE_ARN, {"iam:PassedToService": "sagemaker.amazonaws.com"})
    )
    creates = permissions_for(_call("CreateFeatureGroup", {"FeatureGroupName": "G", "RoleArn": ROLE_ARN}), ACCOUNT)
    assert [p.action for p in creates] == ["sagemaker:CreateFeatureGroup", "iam:PassRole"]


def test_policy_documents_hold_no_account_ids_and_cover_the_spec_sections():
    documents = {path.name: path.read_text() for path in POLICY_DIR.glob("*.json")}
    assert set(documents) == {
        "execution_role_policy.json",
        "operator_policy.json",
        "trust_policy.json",
        "scheduler_role_policy.json",
        "scheduler_trust_policy.json",
    }
    for name, text in documents.items():
        assert not re.search(r"\b\d{12}\b", text), f"{name} holds an account id"
        json.loads(text)
    execution = json.loads(documents["execution_role_policy.json"])
    actions = {
        a for s in execution["Statement"] for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    }
    spec = {
        "sagemaker:CreateEndpoint",
        "sagemaker:UpdateEndpoint",
        "sagemaker:DescribeFeatureGroup",
        "sagemaker:GetRecord",
        "sagemaker:PutRecord",
        "athena:StartQueryExecution",
        "athena:GetQueryExecution",
        "athena:GetQueryResults",
        "athena:StopQueryExecution",
        "glue:GetDatabase",
        "glue:GetTable",
        "glue:GetPartitions",
        "s3:GetObject",
        "s3:PutObject",
        "s3:DeleteObject",
        "s3:ListBucket",
        "sns:Publish",
        "application-autoscaling:RegisterScalableTarget",
        "application-autoscaling:PutScalingPolicy",
        "application-autoscaling:DescribeScalingPolicies",
        "application-autoscaling:DescribeScalableTargets",
        "iam:PassRole",
        "sagemaker:CreateModelPackage",
        "sagemaker:CreateModelPackageGroup",
        "sagemaker:DescribeModelPackageGroup",
        "sagemaker:CreatePipeline",
    }
    assert spec <= actions, sorted(spec - actions)


def test_stack_iam_prints_each_document_with_the_stack_configs_values(tmp_path):
    """`run.py stack iam` prints the role's document filled in from the config: the user's bucket and account."""
    import yaml
    from click.testing import CliRunner

    from run import cli

    config = tmp_path / "stack.yaml"
    config.write_text(yaml.safe_dump(stack_config()))
    roles = {"execution": "execution_role_policy", "operator": "operator_policy", "trust": "trust_policy"}
    roles |= {"scheduler": "scheduler_role_policy", "scheduler-trust": "scheduler_trust_policy"}
    for role, document in roles.items():
        printed = CliRunner().invoke(cli, ["stack", "iam", "--config", str(config), "--role", role])
        assert printed.exit_code == 0, printed.output
        assert json.loads(printed.output) == render_policy(document, VALUES) and "{{" not in printed.output
    execution = CliRunner().invoke(cli, ["stack", "iam", "--config", str(config)]).output
    assert f"arn:aws:s3:::{stack_config()['bucket']}/" in execution and f":{ACCOUNT}:" in execution
    missing = CliRunner().invoke(cli, ["stack", "iam", "--config", str(tmp_path / "none.yaml")])
    assert missing.exit_code != 0 and "none.yaml" in missing.output


def test_the_policies_grant_what_aws_services_need():
    """stacks/iam/REQUIREMENTS.md: what AWS services do with our roles (job outputs and code, Application Auto
    Scaling's checks and service-linked role, Autopilot's own jobs and models, Feature Store's offline store and
    Glue table, the scheduler role's trust and StartPipelineExecution), each granted by its document."""
    from stacks.sagemaker.recipe import job_output_uri

    requirements = load_requirements(VALUES)
    assert {
        "job-output",
        "processing-output",
        "job-code",
        "scaling-update-capacity",
        "scaling-linked-role",
        "autopilot-transform",
        "autopilot-models",
        "autopilot-pass-role",
        "offline-store-write",
        "offline-store-glue-create",
        "scheduler-assume",
        "scheduler-start-rf",
    } <= {r.id for r in requirements}
    assert all(r.source.startswith("https://docs.aws.amazon.com/") for r in requirements)
    assert unmet_requirements(VALUES) == []
    # the rows' job output paths are where the stack's run options send the jobs' output
    output = job_output_uri(VALUES["Bucket"], VALUES["Prefix"]).replace("s3://", "arn:aws:s3:::") + "/"
    assert all(
        r.permission.resource.startswith(output)
        for r in requirements
        if r.id.endswith("output") and r.id.startswith(("job", "processing"))
    )


def test_a_requirement_the_documents_miss_is_reported():
    names = ("execution_role_policy", "scheduler_role_policy", "trust_policy", "scheduler_trust_policy")
    documents = {name: render_policy(name, VALUES) for name in names}
    documents["execution_role_policy"] = render_policy("execution_role_policy", {**VALUES, "EndpointName": "another"})
    documents["scheduler_trust_policy"] = documents["trust_policy"]  # trusts SageMaker, not the scheduler
    problems = unmet_requirements(VALUES, documents)
    assert [p.split(":")[0] for p in problems] == [
        "scaling-describe-endpoint",
        "scaling-update-capacity",
        "scheduler-assume",
    ], problems
    assert problems[1].startswith(
        "scaling-update-capacity: execution lacks sagemaker:UpdateEndpointWeightsAndCapacities on "
        f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/classification-model-endpoint"
    )
    assert "endpoint-auto-scaling-prerequisites.html" in problems[1]


def test_arns_match_case_sensitively_and_actions_do_not():
    bucket, prefix = VALUES["Bucket"], VALUES["Prefix"]
    execution = POLICIES["execution"]
    assert is_allowed(execution, Permission("s3:GetObject", f"arn:aws:s3:::{bucket}/{prefix}/data.csv"))
    assert is_allowed(
        execution, Permission("S3:getobject", f"arn:aws:s3:::{bucket}/{prefix}/data.csv")
    )  # actions: any case
    assert not is_allowed(execution, Permission("s3:GetObject", f"arn:aws:s3:::{bucket.upper()}/{prefix}/data.csv"))
    assert not is_allowed(execution, Permission("s3:GetObject", f"arn:aws:s3:::{bucket}/{prefix.upper()}/data.csv"))
    assert not is_allowed(execution, Permission("sns:Publish", VALUES["SnsTopicArn"].upper()))
    # only * and ? are wildcards: a bracket in a policy is literal (fnmatch would read it as a character class)
    assert not is_allowed(
        [{"Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/[ab]"}]}],
        Permission("s3:GetObject", "arn:aws:s3:::b/a"),
    )
    # SageMaker writes names into its ARNs in lowercase: a stack whose names have capitals still gets
    # a policy that matches
    values = policy_values(stack_config(endpoint_name="Churn-Endpoint", model_package_group="Churn-Group"))
    policies = load_role_policies(values)
    create = _call("CreateEndpoint", {"EndpointName": "Churn-Endpoint", "EndpointConfigName": "Churn-Endpoint-v1-x"})
    assert (
        permissions_for(create, ACCOUNT)[0].resource == f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/churn-endpoint"
    )
    assert (
        violations([create, _call("CreateModelPackage", {"ModelPackageGroupName": "Churn-Group"})], policies, ACCOUNT)
        == []
    )
    mixed_case_policy = [
        {
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": "sagemaker:CreateEndpoint",
                    "Resource": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/Churn-Endpoint",
                }
            ]
        }
    ]
    assert (
        violations(
            [_call("CreateEndpoint", {"EndpointName": "Churn-Endpoint"})], {"execution": mixed_case_policy}, ACCOUNT
        )
        != []
    )  # as on AWS: that policy never matches SageMaker's lowercase ARN
