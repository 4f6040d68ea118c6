"""The strict emulator itself: requests AWS would refuse are refused and named, valid ones pass.

Every request goes over real HTTP to the session's moto server through ``strict_aws.StrictApp``
(plain boto3 clients, whose own validation checks none of these rules). Each test takes the
violations it caused (``take_violations``), so the autouse ``strict_aws_requests`` fixture does
not fail it for them; anything else it left would.
"""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from tests.cloud import strict_aws
from tests.cloud.conftest import ACCOUNT, BUCKET, REGION, ROLE_ARN, boto

GROUP = "classification-model-group"
IMAGE = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/churn-mlops:1"


def _refused(call) -> str:
    with pytest.raises(ClientError) as caught:
        call()
    error = caught.value.response["Error"]
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    return f"{error['Code']}: {error['Message']}"


def _package(**inference) -> dict:
    spec = {
        "Containers": [{"Image": IMAGE, "ModelDataUrl": f"s3://{BUCKET}/m/model.tar.gz"}],
        "SupportedContentTypes": ["text/csv"],
        "SupportedResponseMIMETypes": ["text/csv"],
        "SupportedRealtimeInferenceInstanceTypes": ["ml.m5.large"],
        "SupportedTransformInstanceTypes": ["ml.m5.large"],
    }
    spec.update(inference)
    return {"ModelPackageGroupName": GROUP, "InferenceSpecification": spec, "ModelApprovalStatus": "Approved"}


def test_a_bad_enum_is_refused_and_named(aws):
    sagemaker = boto("sagemaker")
    sagemaker.create_model_package_group(ModelPackageGroupName=GROUP)
    message = _refused(
        lambda: sagemaker.create_model_package(
            **_package(SupportedRealtimeInferenceInstanceTypes=["ml.t2.medium", "ml.t3.medium"])
        )
    )
    assert message.startswith(
        "ValidationException: 1 validation error detected: Value 'ml.t3.medium' at "
        "'InferenceSpecification.SupportedRealtimeInferenceInstanceTypes[1]' failed to satisfy "
        "constraint: enum ProductionVariantInstanceType"
    ), message
    [violation] = strict_aws.take_violations()
    assert (violation.service, violation.operation, violation.path) == (
        "sagemaker",
        "CreateModelPackage",
        "InferenceSpecification.SupportedRealtimeInferenceInstanceTypes[1]",
    )
    assert "ml.t2.medium" in violation.rule  # the valid values like it are shown
    assert (
        sagemaker.list_model_packages(ModelPackageGroupName=GROUP)["ModelPackageSummaryList"] == []
    )  # moto never saw it


def test_a_valid_request_passes(aws):
    sagemaker = boto("sagemaker")
    sagemaker.create_model_package_group(ModelPackageGroupName=GROUP)
    arn = sagemaker.create_model_package(**_package())["ModelPackageArn"]
    assert sagemaker.describe_model_package(ModelPackageName=arn)["ModelApprovalStatus"] == "Approved"
    assert strict_aws.take_violations() == []


def test_a_too_long_name_and_a_pattern_miss_are_refused_and_named(aws):
    sagemaker = boto("sagemaker")
    container = {"Image": IMAGE, "ModelDataUrl": f"s3://{BUCKET}/m/model.tar.gz"}
    message = _refused(
        lambda: sagemaker.create_model(ModelName="m" * 64, ExecutionRoleArn=ROLE_ARN, PrimaryContainer=container)
    )
    assert "at 'ModelName' failed to satisfy constraint: length: at most 63 characters, got 64" in message, message
    message = _refused(
        lambda: sagemaker.create_model(ModelName="churn_model", ExecutionRoleArn=ROLE_ARN, PrimaryContainer=container)
    )
    assert "Value 'churn_model' at 'ModelName' failed to satisfy constraint: pattern ModelName: must match" in message
    violations = strict_aws.take_violations()
    assert [(v.operation, v.path, v.rule.split(":")[0]) for v in violations] == [
        ("CreateModel", "ModelName", "length"),
        ("CreateModel", "ModelName", "pattern ModelName"),
    ]
    assert sagemaker.list_models()["Models"] == []


def test_a_too_long_list_is_refused_and_named(aws):
    tags = [{"Key": f"k{i}", "Value": "v"} for i in range(51)]
    message = _refused(lambda: boto("sagemaker").create_model_package_group(ModelPackageGroupName=GROUP, Tags=tags))
    assert "at 'Tags' failed to satisfy constraint: length: at most 50 items, got 51" in message, message
    [violation] = strict_aws.take_violations()
    assert (violation.operation, violation.path) == ("CreateModelPackageGroup", "Tags")


def test_a_swallowed_refusal_is_still_recorded(aws):
    try:
        boto("sagemaker").create_endpoint(EndpointName="bad name", EndpointConfigName="c")
    except ClientError:
        pass  # code under test that hides the error: the autouse fixture would still fail the test
    assert [str(v) for v in strict_aws.take_violations()] == [
        "sagemaker CreateEndpoint: EndpointName = 'bad name': pattern EndpointName: must match "
        "[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}"
    ]


def test_every_protocol_is_checked(aws):
    """JSON (above), rest-json (Feature Store runtime, scheduler), query (SNS) and rest-xml (S3)."""
    runtime = boto("sagemaker-featurestore-runtime")
    message = _refused(
        lambda: runtime.put_record(
            FeatureGroupName="churn features", Record=[{"FeatureName": "customer_id", "ValueAsString": "CUST_000001"}]
        )
    )
    assert "Value 'churn features' at 'FeatureGroupName'" in message and "pattern FeatureGroupNameOrArn" in message
    message = _refused(
        lambda: boto("scheduler").create_schedule(
            Name="churn-rf",
            ScheduleExpression="cron(0 3 * * ? *)",
            FlexibleTimeWindow={"Mode": "Sometimes"},
            Target={"Arn": "arn:aws:sagemaker:us-west-2:123456789012:pipeline/p", "RoleArn": ROLE_ARN},
        )
    )
    assert "Value 'Sometimes' at 'FlexibleTimeWindow.Mode'" in message and "enum FlexibleTimeWindowMode" in message
    message = _refused(lambda: boto("sns").create_topic(Name="t", Tags=[{"Key": "k" * 129, "Value": "v"}]))
    assert message.startswith("ValidationError:") and "at 'Tags[0].Key'" in message, message
    s3 = boto("s3")
    message = _refused(
        lambda: s3.create_bucket(Bucket="Churn_Bucket", CreateBucketConfiguration={"LocationConstraint": REGION})
    )
    assert message.startswith("InvalidBucketName:") and "bucketnamingrules" in message, message
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    message = _refused(lambda: s3.put_object(Bucket=BUCKET, Key="k" * 1025, Body=b"x"))
    assert message.startswith("KeyTooLongError:"), message
    s3.put_object(Bucket=BUCKET, Key="a/b.csv", Body=b"x", StorageClass="STANDARD")
    message = _refused(lambda: s3.put_object(Bucket=BUCKET, Key="a/c.csv", Body=b"x", StorageClass="CHEAP"))
    assert "at 'StorageClass'" in message and "enum StorageClass" in message, message
    assert [(v.service, v.operation) for v in strict_aws.take_violations()] == [
        ("sagemaker-featurestore-runtime", "PutRecord"),
        ("scheduler", "CreateSchedule"),
        ("sns", "CreateTopic"),
        ("s3", "CreateBucket"),
        ("s3", "PutObject"),
        ("s3", "PutObject"),
    ]


def test_the_rules_on_shapes():
    """Ranges, maps, unions and required members, straight on botocore's shapes."""
    sagemaker = strict_aws.service_model("sagemaker")
    config = sagemaker.shape_for("ProductionVariant")
    found = strict_aws.validate(
        config, {"VariantName": "AllTraffic", "InitialInstanceCount": 0, "InitialVariantWeight": -1.0}
    )
    assert [(path, rule.split(":")[0]) for path, rule, _ in found] == [
        ("InitialInstanceCount", "range InitialTaskCount"),
        ("InitialVariantWeight", "range VariantWeight"),
    ]
    env = sagemaker.shape_for("ContainerDefinition")
    [(path, rule, _)] = strict_aws.validate(env, {"Environment": {"K" * 1025: "v"}})
    assert path.startswith("Environment<key") and "at most 1024" in rule
    assert strict_aws.validate(sagemaker.shape_for("CreateEndpointInput"), {"EndpointName": "e"}) == [
        ("EndpointConfigName", "required member missing", None)
    ]
    union = strict_aws.service_model("sagemaker").shape_for("AutoMLProblemTypeConfig")
    assert "union AutoMLProblemTypeConfig must set exactly one member" in strict_aws.validate(union, {})[0][1]
    # Java's UTF-16 surrogate ranges in the models' patterns read as the supplementary planes
    glue = strict_aws.service_model("glue").shape_for("NameString")
    assert strict_aws.validate(glue, "churn_table\U0001f600") == [] and strict_aws.validate(glue, "a\nb") != []
