"""Pipeline configuration: the spec's pipeline_config.yaml keys, validated up front.

An unknown key or an out-of-range value is refused before anything runs, with a
message that names the key (``ConfigError``). So are a file that is not UTF-8 text and a
key written twice in one mapping (YAML would let the last one win silently).

Where each setting lives (declared once):
- per-pipeline settings, the endpoint's included (``DeploySettings``: instance type,
  autoscaling), in the pipeline config (configs/rf.yaml, configs/automl.yaml); the deploy
  step hands them to the active stack's model deployer;
- account-level settings (region, bucket, prefix, roles, topic, image) in the stack config
  (churn.aws.settings, configs/sagemaker_stack.example.yaml). The spec's pipeline_config.yaml
  also lists some of those; here they are accepted (so the spec's file loads) and reported as
  having no effect (``ineffective_keys``).

Why one module of ~350 lines: it is the spec's one config file as one model (about 45 keys,
each with its range and its validator) plus the one YAML reader every config file goes
through (``read_yaml_mapping``: UTF-8, duplicate keys, credentials, messages naming the key).
The stack config (``churn.aws.settings``) and the batch config (``churn.batch``) reuse both
halves; splitting them would only move the shared reader out of sight of the model it serves.
Which metric may gate is not here: ``churn.metrics`` (``gate_metric`` is checked against it).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from churn.feature_query import _TIMESTAMP

log = logging.getLogger(__name__)

# A value that looks like an AWS credential must never be in a config file. A secret access key
# is 40 random base64 characters: mixed case with digits, often a '/' or '+'. An S3 bucket name
# (lowercase letters, digits, '.', '-') of the same length is not one.
_ACCESS_KEY = re.compile(r"\b(AKIA|ASIA)[A-Z0-9]{16}\b")
_SECRET_KEY = re.compile(r"^[A-Za-z0-9/+=]{40}$")


def _looks_like_secret_key(value: str) -> bool:
    if not _SECRET_KEY.match(value):
        return False
    mixed = any(c.isupper() for c in value) and any(c.islower() for c in value) and any(c.isdigit() for c in value)
    return mixed or "/" in value or "+" in value


INSTANCE_TYPE = r"^ml\.[a-z0-9]+\.[a-z0-9]+$"
CUSTOMER_ID_MAX = 999_999  # customer ids are CUST_000000..CUST_999999 (churn.schema.customer_key)
SEED_MAX = 2**32 - 1  # numpy's and scikit-learn's seed range


class ConfigError(ValueError):
    """A configuration file or value that cannot be used."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RandomForestParams(_Strict):
    """The spec's RandomForest hyperparameters."""

    n_estimators: int = Field(100, ge=1, le=5000)
    max_depth: int | None = Field(10, ge=1)
    min_samples_split: int = Field(2, ge=2)
    min_samples_leaf: int = Field(1, ge=1)
    class_weight: Literal["balanced", "balanced_subsample"] | None = None


class DeploySettings(_Strict):
    """How one pipeline's endpoint is served (the spec's deploy keys): declared here, once.

    They are part of the pipeline config (``PipelineConfig`` inherits them, same flat keys);
    the deploy step passes them to the active stack's model deployer
    (``stacks.contracts.EndpointDeployer.deploy_bundle``). A deployer says which
    of them it honours (``EndpointDeployer.HONOURED_SETTINGS``); the deploy step warns, by name,
    about the others (the local endpoint is one process on this machine: no instance type, no
    autoscaling).
    """

    inference_instance_type: str = Field("ml.m5.xlarge", pattern=INSTANCE_TYPE)
    initial_instance_count: int = Field(1, ge=1, le=100)
    enable_autoscaling: bool = True
    autoscaling_min_capacity: int = Field(1, ge=1)
    autoscaling_max_capacity: int = Field(5, ge=1)
    target_invocations_per_instance: float = Field(70.0, gt=0)  # target tracking, per instance per minute

    @model_validator(mode="after")
    def _capacity(self) -> DeploySettings:
        if self.autoscaling_max_capacity < self.autoscaling_min_capacity:
            raise ValueError(
                f"autoscaling_max_capacity ({self.autoscaling_max_capacity}) is below "
                f"autoscaling_min_capacity ({self.autoscaling_min_capacity})"
            )
        return self


DEPLOY_KEYS = tuple(DeploySettings.model_fields)


def deploy_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """The deploy keys of a PipelineConfig dump (what the pipelines pass to the deploy step)."""
    return {key: config[key] for key in DEPLOY_KEYS if key in config}


# Keys of the spec's pipeline_config.yaml that are account-level (or set per stack): the stack
# config sets them. They are accepted here so that the spec's file loads, and reported by name.
STACK_LEVEL_KEYS = (
    "region",
    "bucket",
    "prefix",
    "role_arn",
    "sns_topic_arn",
    "notification_email",
    "athena_query_results",
    "training_instance_type",
    "processing_instance_type",
)


class PipelineConfig(DeploySettings):
    """Keys of the spec's pipeline_config.yaml, plus the few we add (gate_metric, ...).

    The deploy keys (inference_instance_type, enable_autoscaling, ...) are ``DeploySettings``'.
    """

    variant: Literal["rf", "automl"] = "rf"
    project_name: str = "classification-model-mlops"
    pipeline_name: str = "classification-model-pipeline"
    # Account-level keys of the spec's file (STACK_LEVEL_KEYS): the stack config sets them; no effect here.
    region: str | None = None
    bucket: str | None = None
    prefix: str | None = None
    role_arn: str | None = None
    training_instance_type: str | None = None
    processing_instance_type: str | None = None
    sns_topic_arn: str | None = None
    notification_email: str | None = None
    athena_query_results: str | None = None
    # Model registry
    model_package_group: str = "classification-model-group"
    accuracy_threshold: float = Field(0.5, ge=0.0, le=1.0)
    gate_metric: str = "accuracy"  # a gate metric of churn.metrics
    approval_status: Literal["Approved", "PendingManualApproval", "Rejected"] = "Approved"
    # Deployment
    endpoint_name: str = Field("classification-model-endpoint", pattern=r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
    deploy: bool = True
    # (inference_instance_type, enable_autoscaling, autoscaling_min/max_capacity, ...: DeploySettings)
    # Feature store
    feature_group_name: str = Field(
        "mlops_poc_churn_classification_feature", pattern=r"^[a-zA-Z0-9]([-_]*[a-zA-Z0-9]){0,63}$"
    )
    customer_id_start: int = 1
    customer_id_end: int = 4000
    as_of: str | None = None  # point-in-time read: an ISO-8601 UTC timestamp, e.g. 2026-01-31T00:00:00Z
    target_column: str = "churn"
    # Preprocessing / training
    test_size: float = Field(0.2, gt=0.0, lt=1.0)
    random_state: int = Field(42, ge=0, le=SEED_MAX)
    hyperparameters: RandomForestParams = RandomForestParams()
    # AutoML variant (spec: automl_training_pipeline.md); the rf variant ignores these keys.
    target_attribute_name: str | None = None  # the spec's name for target_column (kept equal)
    problem_type: str = "BinaryClassification"
    objective_metric_name: Literal["Accuracy", "AUC", "F1", "Precision", "Recall", "BalancedAccuracy", "LogLoss"] = (
        "Accuracy"
    )
    # The AutoML budgets, one per engine: the local engine (FLAML, in process) searches for at most
    # max_runtime_sec; the SageMaker Autopilot job gets autopilot_max_runtime_sec
    # (MaxAutoMLJobRuntimeInSeconds; the spec's 3600 s by default).
    max_runtime_sec: int = Field(300, ge=1, le=30 * 86400)  # the local engine's whole search
    autopilot_max_runtime_sec: int = Field(3600, ge=1, le=30 * 86400)  # the Autopilot job's whole search
    max_runtime_per_training_job_sec: int | None = Field(None, ge=1)  # one candidate
    max_candidates: int | None = Field(None, ge=1, le=10_000)
    mode: Literal["ENSEMBLING", "HYPERPARAMETER_TUNING", "AUTO"] = "ENSEMBLING"
    ensemble_size: int = Field(3, ge=1, le=10)  # ENSEMBLING: best model of the top N families
    automl_families: (
        list[Literal["lgbm", "xgboost", "xgb_limitdepth", "rf", "extra_tree", "histgb", "logistic", "lrl1", "lrl2"]]
        | None
    ) = Field(None, min_length=1)
    automl_n_jobs: int = Field(1, ge=1, le=64)

    @model_validator(mode="before")
    @classmethod
    def _target_alias(cls, data: object) -> object:
        """``target_attribute_name`` (spec, AutoML) and ``target_column`` name the same column."""
        if isinstance(data, dict) and data.get("target_attribute_name") is not None:
            name = data["target_attribute_name"]
            if data.get("target_column") is None:
                data = {**data, "target_column": name}
            elif data["target_column"] != name:
                raise ValueError(
                    f"target_attribute_name ({name!r}) and target_column "
                    f"({data['target_column']!r}) must name the same column"
                )
        return data

    @field_validator("gate_metric")
    @classmethod
    def _gate_metric(cls, value: str) -> str:
        from churn.metrics import gate_metric_names

        if value not in gate_metric_names():
            raise ValueError(f"gate_metric must be one of {', '.join(gate_metric_names())}")
        return value

    @field_validator("customer_id_start", "customer_id_end")
    @classmethod
    def _customer_id(cls, value: int) -> int:
        if not 0 <= value <= CUSTOMER_ID_MAX:
            raise ValueError(f"customer ids are 0-{CUSTOMER_ID_MAX:,} (CUST_000000..CUST_999999, six digits)")
        return value

    @field_validator("as_of", mode="before")
    @classmethod
    def _as_of(cls, value: object) -> object:
        """An unquoted YAML timestamp arrives as a datetime: taken as UTC (YAML's rule for no zone)."""
        if isinstance(value, datetime):
            moment = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
            text = moment.strftime("%Y-%m-%dT%H:%M:%S")
            return text + (f".{moment.microsecond:06d}".rstrip("0") if moment.microsecond else "") + "Z"
        if isinstance(value, date):
            raise ValueError(
                f"as_of is a date ({value.isoformat()}); give the moment, e.g. '{value.isoformat()}T00:00:00Z' (UTC)"
            )
        if isinstance(value, str) and not _TIMESTAMP.match(value):
            raise ValueError("as_of must be an ISO-8601 UTC timestamp like 2026-01-31T00:00:00Z")
        return value

    @field_validator("feature_group_name", "endpoint_name", "model_package_group", "target_column")
    @classmethod
    def _names(cls, value: str, info) -> str:  # SageMaker's naming rules, declared in churn.names
        from churn import names

        rule = {
            "feature_group_name": names.FEATURE_GROUP,
            "endpoint_name": names.ENDPOINT,
            "model_package_group": names.MODEL_PACKAGE_GROUP,
            "target_column": names.FEATURE,
        }[info.field_name]
        return rule.check(value)

    @field_validator("problem_type")
    @classmethod
    def _binary_only(cls, value: str) -> str:
        if value != "BinaryClassification":
            raise ValueError("only BinaryClassification is supported (the target is a 0/1 churn flag)")
        return value

    @model_validator(mode="after")
    def _ranges(self) -> PipelineConfig:
        if self.customer_id_end < self.customer_id_start:
            raise ValueError(
                f"customer_id_end ({self.customer_id_end}) is below customer_id_start ({self.customer_id_start})"
            )
        for budget in ("max_runtime_sec", "autopilot_max_runtime_sec"):
            if self.max_runtime_per_training_job_sec is not None and self.max_runtime_per_training_job_sec > getattr(
                self, budget
            ):
                raise ValueError(
                    f"max_runtime_per_training_job_sec ({self.max_runtime_per_training_job_sec}) is above "
                    f"{budget} ({getattr(self, budget)})"
                )
        return self

    def ineffective_keys(self) -> list[str]:
        """Keys set in the config that no stack reads from it (STACK_LEVEL_KEYS: the stack config sets them)."""
        return [key for key in STACK_LEVEL_KEYS if key in self.model_fields_set and getattr(self, key) is not None]


def _refuse_credentials(node: object, path: str = "") -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            _refuse_credentials(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            _refuse_credentials(value, f"{path}[{i}]")
    elif isinstance(node, str) and (_ACCESS_KEY.search(node) or _looks_like_secret_key(node)):
        raise ConfigError(
            f"config key '{path}' looks like an AWS credential; credentials come from the "
            "environment, a profile or a role, never from a config file"
        )


def _describe(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        key = ".".join(str(p) for p in item["loc"]) or "(top level)"
        if item["type"] == "extra_forbidden":
            lines.append(f"unknown key '{key}'")
        else:
            value = item.get("input")
            shown = "" if isinstance(value, dict) else f" (got {value!r})"
            message = item["msg"].removeprefix("Value error, ")
            lines.append(f"key '{key}': {message}{shown}")
    return "; ".join(lines)


def parse_config(raw: dict) -> PipelineConfig:
    """Validate a mapping of config keys, raising ConfigError naming each bad key."""
    if not isinstance(raw, dict):
        raise ConfigError("a pipeline config must be a mapping of keys to values")
    _refuse_credentials(raw)
    try:
        return PipelineConfig(**raw)
    except ValidationError as error:
        raise ConfigError(_describe(error)) from None


class _DuplicateKey(yaml.YAMLError):
    pass


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key written twice in one mapping (YAML lets the last one win)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.setdefault(key, key_node.start_mark.line + 1)
            except TypeError:  # an unhashable key: SafeLoader refuses it with its own message
                continue
            if first != key_node.start_mark.line + 1:
                raise _DuplicateKey(
                    f"key '{key}' appears twice (lines {first} and {key_node.start_mark.line + 1}); "
                    "keep one (YAML would silently use the last)"
                )
        return super().construct_mapping(node, deep=deep)


def _text(path: Path, what: str) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise ConfigError(
            f"{what} {path} is not UTF-8 text (byte 0x{data[error.start]:02x} on line {line}); save it as UTF-8"
        ) from None


def read_yaml_mapping(
    path: str | Path, overrides: dict | None = None, what: str = "config file", hint: str = ""
) -> dict:
    """A YAML file's top-level mapping with non-None ``overrides`` applied; ConfigError otherwise.

    Refused with a message: a missing file, a file that is not UTF-8, invalid YAML, a key
    written twice in one mapping, anything but a mapping at the top.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{what} {path} does not exist{hint}")
    text = _text(path, what)
    try:
        raw = yaml.load(text, Loader=_UniqueKeyLoader) or {}
    except _DuplicateKey as error:
        raise ConfigError(f"{what} {path}: {error}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{what} {path} is not valid YAML: {error}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{what} {path} must hold a mapping of keys to values")
    raw.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return raw


def load_config(path: str | Path, **overrides: object) -> PipelineConfig:
    """Read a YAML config file and validate it (overrides win over the file)."""
    raw = read_yaml_mapping(path, overrides)
    try:
        config = parse_config(raw)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None
    ineffective = config.ineffective_keys()
    if ineffective:
        log.warning(
            "%s: %s have no effect in a pipeline config; the stack config sets them "
            "(configs/sagemaker_stack.example.yaml)",
            path,
            ", ".join(ineffective),
        )
    return config
