"""Pipeline configuration: the spec's pipeline_config.yaml keys, validated up front.

An unknown key or an out-of-range value is refused before anything runs, with a
message that names the key (``ConfigError``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import List, Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

# A value that looks like an AWS credential must never be in a config file.
_ACCESS_KEY = re.compile(r"\b(AKIA|ASIA)[A-Z0-9]{16}\b")
_SECRET_KEY = re.compile(r"^[A-Za-z0-9/+=]{40}$")


class ConfigError(ValueError):
    """A configuration file or value that cannot be used."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RandomForestParams(_Strict):
    """The spec's RandomForest hyperparameters."""

    n_estimators: int = Field(100, ge=1, le=5000)
    max_depth: Optional[int] = Field(10, ge=1)
    min_samples_split: int = Field(2, ge=2)
    min_samples_leaf: int = Field(1, ge=1)
    class_weight: Optional[Literal["balanced", "balanced_subsample"]] = None


class PipelineConfig(_Strict):
    """Keys of the spec's pipeline_config.yaml, plus the few we add (gate_metric, ...)."""

    variant: Literal["rf", "automl"] = "rf"
    project_name: str = "classification-model-mlops"
    pipeline_name: str = "classification-model-pipeline"
    # Cloud keys: used by the SageMaker stack; harmless locally.
    region: Optional[str] = None
    bucket: Optional[str] = None
    prefix: str = "mlops/classification_model"
    role_arn: Optional[str] = None
    training_instance_type: str = "ml.m5.xlarge"
    processing_instance_type: str = "ml.m5.xlarge"
    inference_instance_type: str = "ml.m5.xlarge"
    sns_topic_arn: Optional[str] = None
    notification_email: Optional[str] = None
    athena_query_results: Optional[str] = None
    # Model registry
    model_package_group: str = "classification-model-group"
    accuracy_threshold: float = Field(0.5, ge=0.0, le=1.0)
    gate_metric: Literal["accuracy", "precision", "recall", "f1_score", "roc_auc"] = "accuracy"
    approval_status: Literal["Approved", "PendingManualApproval", "Rejected"] = "Approved"
    # Deployment
    endpoint_name: str = Field("classification-model-endpoint", pattern=r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
    deploy: bool = True
    enable_autoscaling: bool = True
    autoscaling_min_capacity: int = Field(1, ge=1)
    autoscaling_max_capacity: int = Field(5, ge=1)
    # Feature store
    feature_group_name: str = Field("mlops_poc_churn_classification_feature", pattern=r"^[a-zA-Z0-9]([-_]*[a-zA-Z0-9]){0,63}$")
    customer_id_start: int = Field(1, ge=0, le=999_999)
    customer_id_end: int = Field(4000, ge=0, le=999_999)
    as_of: Optional[str] = None
    target_column: str = "churn"
    # Preprocessing / training
    test_size: float = Field(0.2, gt=0.0, lt=1.0)
    random_state: int = 42
    hyperparameters: RandomForestParams = RandomForestParams()
    # AutoML variant (spec: automl_training_pipeline.md); the rf variant ignores these keys.
    target_attribute_name: Optional[str] = None  # the spec's name for target_column (kept equal)
    problem_type: str = "BinaryClassification"
    objective_metric_name: Literal["Accuracy", "AUC", "F1", "Precision", "Recall", "BalancedAccuracy", "LogLoss"] = "Accuracy"
    max_runtime_sec: int = Field(3600, ge=1, le=30 * 86400)  # the whole AutoML search
    max_runtime_per_training_job_sec: Optional[int] = Field(None, ge=1)  # one candidate
    max_candidates: Optional[int] = Field(None, ge=1, le=10_000)
    mode: Literal["ENSEMBLING", "HYPERPARAMETER_TUNING", "AUTO"] = "ENSEMBLING"
    ensemble_size: int = Field(3, ge=1, le=10)  # ENSEMBLING: best model of the top N families
    automl_families: Optional[List[Literal["lgbm", "xgboost", "xgb_limitdepth", "rf", "extra_tree", "histgb",
                                           "logistic", "lrl1", "lrl2"]]] = Field(None, min_length=1)
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
                raise ValueError(f"target_attribute_name ({name!r}) and target_column "
                                 f"({data['target_column']!r}) must name the same column")
        return data

    @field_validator("feature_group_name", "endpoint_name", "model_package_group", "target_column")
    @classmethod
    def _names(cls, value: str, info) -> str:  # SageMaker's naming rules, declared in churn.names
        from churn import names

        rule = {"feature_group_name": names.FEATURE_GROUP, "endpoint_name": names.ENDPOINT,
                "model_package_group": names.MODEL_PACKAGE_GROUP, "target_column": names.FEATURE}[info.field_name]
        return rule.check(value)

    @field_validator("problem_type")
    @classmethod
    def _binary_only(cls, value: str) -> str:
        if value != "BinaryClassification":
            raise ValueError("only BinaryClassification is supported (the target is a 0/1 churn flag)")
        return value

    @model_validator(mode="after")
    def _ranges(self) -> "PipelineConfig":
        if self.customer_id_end < self.customer_id_start:
            raise ValueError(
                f"customer_id_end ({self.customer_id_end}) is below customer_id_start "
                f"({self.customer_id_start})"
            )
        if self.autoscaling_max_capacity < self.autoscaling_min_capacity:
            raise ValueError(
                f"autoscaling_max_capacity ({self.autoscaling_max_capacity}) is below "
                f"autoscaling_min_capacity ({self.autoscaling_min_capacity})"
            )
        if self.max_runtime_per_training_job_sec is not None and self.max_runtime_per_training_job_sec > self.max_runtime_sec:
            raise ValueError(
                f"max_runtime_per_training_job_sec ({self.max_runtime_per_training_job_sec}) is above "
                f"max_runtime_sec ({self.max_runtime_sec})"
            )
        return self


def _refuse_credentials(node: object, path: str = "") -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            _refuse_credentials(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            _refuse_credentials(value, f"{path}[{i}]")
    elif isinstance(node, str) and (_ACCESS_KEY.search(node) or _SECRET_KEY.match(node)):
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
            lines.append(f"key '{key}': {item['msg']}{shown}")
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


def read_yaml_mapping(path: str | Path, overrides: dict | None = None, what: str = "config file",
                      hint: str = "") -> dict:
    """A YAML file's top-level mapping with non-None ``overrides`` applied; ConfigError otherwise."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{what} {path} does not exist{hint}")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
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
        return parse_config(raw)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None
