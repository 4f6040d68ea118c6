"""The SageMaker stack's config: ``configs/sagemaker_stack.example.yaml``'s keys, validated.

The account-level settings are ``churn.aws.settings.SageMakerStackSettings`` (the spec's
pipeline_config.yaml names); the optional ``sagemaker_orchestrator:`` block is
:class:`RemoteExecution`. Nothing here holds an account id or a secret: a value that looks like
an AWS key, or a placeholder left from the example file, is refused by name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from churn.aws.settings import IMAGE_URI as IMAGE
from churn.aws.settings import ROLE_ARN, S3_URI, SageMakerStackSettings, parse_stack_settings, refuse_credentials
from churn.config import INSTANCE_TYPE, ConfigError, _describe, read_yaml_mapping

REMOTE_KEY = "sagemaker_orchestrator"
ECR_REGISTRY = r"^[0-9]{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$"
_PLACEHOLDER = re.compile(r"ACCOUNT_ID|<[^>]+>")


class RemoteExecution(BaseModel):
    """The ``sagemaker_orchestrator:`` block: run the steps as SageMaker pipeline jobs.

    Image: either prebuilt (``image``, default: the stack's ``image_uri``, else
    ``<container_registry_uri>/churn-mlops``; our image from docker/Dockerfile, pushed by ``run.py
    image build --push``; without a tag the content tag of requirements.lock + code is used; no
    build, the code travels through the artifact store) or ``image_builder`` (``local`` Docker or
    ``aws`` CodeBuild builds an image from requirements.lock and pushes it to ``container_registry_uri``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    execution_role_arn: str | None = Field(None, pattern=ROLE_ARN)  # None: the stack's role_arn
    scheduler_role_arn: str | None = Field(None, pattern=ROLE_ARN)  # EventBridge Scheduler starts the pipeline as it
    synchronous: bool = True  # `run.py` waits for the SageMaker pipeline execution
    use_training_step: bool = True  # steps as training jobs (False: processing jobs)
    volume_size_in_gb: int = Field(30, ge=1, le=16384)
    max_runtime_in_seconds: int = Field(86400, ge=1, le=432000)
    environment: dict[str, str] = Field(default_factory=dict)  # extra variables for every step (no secrets)
    artifact_store_path: str | None = Field(None, pattern=S3_URI)  # None: s3://<bucket>/<prefix>/zenml
    container_registry_uri: str = Field(pattern=ECR_REGISTRY)
    image: str | None = Field(None, pattern=IMAGE)
    image_builder: Literal["local", "aws"] | None = None
    code_build_project: str | None = None  # image_builder: aws
    mlflow_tracking_secret: str = Field(pattern=r"^[A-Za-z0-9_.\-]{1,128}$")
    mlflow_tracking_auth: Literal["password", "token"] = "password"

    @model_validator(mode="after")
    def _one_image_path(self) -> RemoteExecution:
        if self.image and self.image_builder:
            raise ValueError(
                "set at most one of 'image' (a prebuilt image: DockerSettings(skip_build=True, "
                "parent_image=image); default: the stack's image_uri) and 'image_builder' "
                "(local or aws: build the image)"
            )
        if self.image_builder == "aws" and not self.code_build_project:
            raise ValueError("image_builder 'aws' needs 'code_build_project' (an AWS CodeBuild project)")
        if self.image and not self.image.startswith(self.container_registry_uri + "/"):
            raise ValueError(
                f"image {self.image!r} is not in container_registry_uri "
                f"{self.container_registry_uri!r} (SageMaker jobs pull from your ECR)"
            )
        return self


def _refuse_placeholders(node: Any, path: str) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            _refuse_placeholders(value, f"{path}.{key}")
    elif isinstance(node, str) and _PLACEHOLDER.search(node):
        raise ConfigError(
            f"'{path}' still holds a placeholder ({node}); put your own value in your copy of the "
            "file (never credentials: those come from the environment, a profile or a role)"
        )


def parse_remote(raw: Any, source: str = "stack config") -> RemoteExecution | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{source}: '{REMOTE_KEY}' must be a mapping of keys to values")
    try:
        refuse_credentials({REMOTE_KEY: dict(raw)})
        _refuse_placeholders(dict(raw), REMOTE_KEY)
        return RemoteExecution(**raw)
    except ConfigError as error:
        raise ConfigError(f"{source}: {error}") from None
    except ValidationError as error:
        raise ConfigError(f"{source}: {REMOTE_KEY}: {_describe(error)}") from None


Config = SageMakerStackSettings | Mapping[str, Any] | str | Path


def load_recipe(config: Config) -> tuple[SageMakerStackSettings, RemoteExecution | None]:
    """The stack settings and the optional remote-execution block, validated."""
    if isinstance(config, SageMakerStackSettings):
        return config, None
    source = "stack config"
    if isinstance(config, (str, Path)):
        source = str(config)
        config = read_yaml_mapping(
            config, what="stack config", hint=" (start from configs/sagemaker_stack.example.yaml)"
        )
    if not isinstance(config, Mapping):
        raise ConfigError(f"{source} must be a mapping of keys to values")
    raw = dict(config)
    block = raw.pop(REMOTE_KEY, None)
    settings = parse_stack_settings(raw, source)
    remote = parse_remote(block, source)
    if remote is not None:
        _check_remote(settings, remote, source)
    return settings, remote


def _check_remote(settings: SageMakerStackSettings, remote: RemoteExecution, source: str) -> None:
    problems = []
    if settings.orchestrator != "default" or settings.artifact_store != "default":
        problems.append(
            f"with '{REMOTE_KEY}' the recipe registers <stack>-orchestrator and <stack>-artifact-store; "
            "remove the 'orchestrator' / 'artifact_store' keys"
        )
    uri = settings.mlflow_tracking_uri or ""
    if not uri.startswith(("http://", "https://")):
        problems.append(
            "SageMaker jobs cannot reach a local MLflow store: set 'mlflow_tracking_uri' to your "
            "MLflow tracking server (http(s)://...)"
        )
    for key in ("training_instance_type", "processing_instance_type"):
        value = getattr(settings, key)
        if value is not None and not re.match(INSTANCE_TYPE, value):
            problems.append(f"'{key}' is not a SageMaker instance type (e.g. ml.m5.xlarge): {value!r}")
    if problems:
        raise ConfigError(f"{source}: " + "; ".join(problems))


def stack_settings(config: Config) -> SageMakerStackSettings:
    """Validated settings from a settings object, a mapping or a YAML file path."""
    return load_recipe(config)[0]
