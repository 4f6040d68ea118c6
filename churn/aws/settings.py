"""The SageMaker stack's configuration (spec keys), validated up front with clear messages.

No account id or secret lives in the repo: ``configs/sagemaker_stack.example.yaml`` has
placeholders, the real file is the user's. A value that looks like an AWS access key or
secret key is refused (credentials come only from the environment, a profile or a role).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from churn.config import DEPLOY_KEYS, ConfigError, _describe, _refuse_credentials, read_yaml_mapping

REGION = r"^[a-z]{2}(-gov)?-[a-z]+-\d$"
ROLE_ARN = r"^arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]+$"
BUCKET = r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$"
S3_URI = r"^s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9](/.*)?$"
SNS_ARN = r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_-]+$"
ENDPOINT_NAME = r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$"
IMAGE_URI = r"^[a-z0-9][a-z0-9.\-]*(:[0-9]+)?(/[a-z0-9._\-]+)+(:[A-Za-z0-9_.\-]{1,128}|@sha256:[a-f0-9]{64})?$"
_PLACEHOLDER = re.compile(r"ACCOUNT_ID|<[^>]+>")


def refuse_credentials(values: Any) -> Any:
    """pydantic ``mode="before"`` validator: no credential-looking value, no unfilled placeholder."""
    if isinstance(values, dict):
        _refuse_credentials(values)
        misplaced = [key for key in DEPLOY_KEYS if key in values]
        if misplaced:
            raise ConfigError(
                f"{', '.join(misplaced)}: per-pipeline deploy settings, which the stack config does "
                "not set; put them in the pipeline config (configs/rf.yaml, configs/automl.yaml)"
            )
        for key, value in values.items():
            if isinstance(value, str) and _PLACEHOLDER.search(value):
                raise ConfigError(
                    f"'{key}' still holds a placeholder ({value}); put your own value in your copy "
                    "of the file (never credentials: those come from the environment, a profile or a role)"
                )
    return values


class SageMakerStackSettings(BaseModel):
    """Account-level settings of the cloud stack (region, bucket, prefix, roles, topic, image), plus a few of ours.

    How an endpoint is served (inference_instance_type, autoscaling, ...) is per pipeline:
    ``churn.config.DeploySettings``, in the pipeline config; such a key here is refused by name.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    stack_name: str = "sagemaker"
    region: str = Field(pattern=REGION)
    bucket: str = Field(pattern=BUCKET)
    prefix: str = "mlops/classification_model"
    role_arn: str = Field(pattern=ROLE_ARN)
    aws_profile: str | None = None
    # model deployment (names scope the IAM policy and cleanup; how endpoints are served: the pipeline config)
    endpoint_name: str = Field("classification-model-endpoint", pattern=ENDPOINT_NAME)
    automl_endpoint_name: str = Field("automl-classification-endpoint", pattern=ENDPOINT_NAME)
    # our image (docker/Dockerfile) for endpoints, AutoML pipelines, batch and the steps; no tag: the content tag
    # of requirements.lock + code (churn.image); null: <account>.dkr.ecr.<region>.amazonaws.com/churn-mlops
    image_uri: str | None = Field(None, pattern=IMAGE_URI)
    deploy_timeout_seconds: float = Field(1800.0, gt=0)
    # registry
    model_package_group: str = Field("classification-model-group", pattern=ENDPOINT_NAME)
    automl_model_package_group: str = Field("classification-model-automl-group", pattern=ENDPOINT_NAME)
    approval_status: Literal["Approved", "PendingManualApproval", "Rejected"] = "PendingManualApproval"
    # feature store
    feature_group_name: str = Field(
        "mlops_poc_churn_classification_feature", pattern=r"^[a-zA-Z0-9]([-_]*[a-zA-Z0-9]){0,63}$"
    )
    athena_query_results: str | None = Field(None, pattern=S3_URI)
    athena_workgroup: str = "primary"
    offline_store_s3_uri: str | None = Field(None, pattern=S3_URI)
    enable_online_store: bool = True
    ingest_max_workers: int = Field(8, ge=1, le=64)
    query_timeout_seconds: float = Field(600.0, gt=0)
    # alerts
    sns_topic_arn: str | None = Field(None, pattern=SNS_ARN)
    notification_email: str | None = None
    # the rest of the stack
    orchestrator: str = "default"
    artifact_store: str = "default"
    experiment_tracker: str = "mlflow_tracker"
    mlflow_tracking_uri: str | None = None
    # training-side keys of pipeline_config.yaml that may sit in the same file: accepted, unused here
    training_instance_type: str | None = None
    processing_instance_type: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _no_credentials(cls, values: Any) -> Any:
        return refuse_credentials(values)

    @property
    def athena_output(self) -> str:
        return self.athena_query_results or f"s3://{self.bucket}/athena-query-results/"

    @property
    def offline_store(self) -> str:
        return self.offline_store_s3_uri or f"s3://{self.bucket}/{self.prefix.strip('/')}/feature-store"

    def common(self) -> dict[str, Any]:
        return {"region": self.region, "aws_profile": self.aws_profile}

    def feature_store_config(self) -> dict[str, Any]:
        return {
            **self.common(),
            "role_arn": self.role_arn,
            "offline_store_s3_uri": self.offline_store,
            "athena_query_results": self.athena_output,
            "athena_workgroup": self.athena_workgroup,
            "enable_online_store": self.enable_online_store,
            "ingest_max_workers": self.ingest_max_workers,
            "query_timeout_seconds": self.query_timeout_seconds,
        }

    def registry_config(self) -> dict[str, Any]:
        return {
            **self.common(),
            "bucket": self.bucket,
            "prefix": self.prefix,
            "approval_status": self.approval_status,
            "image_uri": self.image_uri,
        }

    def deployer_config(self) -> dict[str, Any]:
        return {
            **self.common(),
            "role_arn": self.role_arn,
            "bucket": self.bucket,
            "prefix": self.prefix,
            "image_uri": self.image_uri,
            "deploy_timeout_seconds": self.deploy_timeout_seconds,
        }

    def alerter_config(self) -> dict[str, Any]:
        if not self.sns_topic_arn:
            raise ConfigError("sns_topic_arn is required for the SNS alerter (failure notifications)")
        return {**self.common(), "sns_topic_arn": self.sns_topic_arn}


def parse_stack_settings(raw: Mapping[str, Any], source: str = "stack config") -> SageMakerStackSettings:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{source} must be a mapping of keys to values")
    try:
        refuse_credentials(dict(raw))
        return SageMakerStackSettings(**raw)
    except ConfigError as error:
        raise ConfigError(f"{source}: {error}") from None
    except ValidationError as error:
        raise ConfigError(f"{source}: {_describe(error)}") from None


def load_stack_settings(path: str | Path, **overrides: Any) -> SageMakerStackSettings:
    raw = read_yaml_mapping(
        path, overrides, what="stack config", hint=" (start from configs/sagemaker_stack.example.yaml)"
    )
    return parse_stack_settings(raw, str(path))


def component_check(values: Any) -> Any:
    """Validator for stack-component configs: refuse credentials, check the common AWS fields."""
    if not isinstance(values, dict):
        return values
    _refuse_credentials(values)
    checks: list[tuple] = [
        ("region", REGION),
        ("role_arn", ROLE_ARN),
        ("bucket", BUCKET),
        ("sns_topic_arn", SNS_ARN),
        ("athena_query_results", S3_URI),
        ("offline_store_s3_uri", S3_URI),
    ]
    for key, pattern in checks:
        value = values.get(key)
        if value is not None and not re.match(pattern, str(value)):
            raise ValueError(f"'{key}' is not valid: {value!r}")
    return values
