"""The IAM policy documents in ``stacks/iam``, filled in for a stack config.

Documents use ``{{Name}}`` placeholders (``{{Partition}}``, ``{{Region}}``,
``{{AccountId}}``, ``{{Bucket}}``, ``{{Prefix}}``, ``{{FeatureGroup}}``,
``{{ModelPackageGroup}}``, ``{{EndpointName}}``, ``{{EndpointPrefix}}``, their ``{{AutoML...}}``
counterparts for the AutoML variant, ``{{SnsTopicArn}}``, ``{{RoleArn}}``, ``{{SchedulerRoleArn}}``,
``{{AthenaWorkgroup}}``, ``{{AthenaResultsBucket}}``, ``{{AthenaResultsPrefix}}``) that
``render_policy`` fills from the stack config (``python run.py stack iam``), so no account id is
in the repo. SageMaker writes names into its ARNs in lowercase and IAM compares ARNs
case-sensitively, so ``policy_values`` lowercases SageMaker names the way SageMaker does.

The tests hold every AWS call our code makes against these documents with a small evaluator,
``tests/cloud/iam_check.py``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from churn.aws.clients import partition

POLICY_DIR = Path(__file__).resolve().parents[2] / "stacks" / "iam"
_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")


def policy_values(config: Mapping[str, Any]) -> dict[str, str]:
    """Placeholder values from a SageMaker stack config (see configs/sagemaker_stack.example.yaml)."""
    from churn.aws.clients import account_from_arn
    from churn.aws.s3 import parse_s3_uri

    region = config["region"]
    results = config.get("athena_query_results") or f"s3://{config['bucket']}/athena-query-results/"
    results_bucket, results_prefix = parse_s3_uri(results)
    return {
        "Partition": partition(region),
        "Region": region,
        "AccountId": account_from_arn(config["role_arn"]),
        "Bucket": config["bucket"],
        "Prefix": str(config.get("prefix", "mlops/classification_model")).strip("/"),
        "FeatureGroup": str(config.get("feature_group_name", "mlops_poc_churn_classification_feature")).lower(),
        # SageMaker names appear in its ARNs in lowercase, and IAM compares ARNs case-sensitively
        "ModelPackageGroup": str(config.get("model_package_group", "classification-model-group")).lower(),
        "EndpointName": str(config.get("endpoint_name", "classification-model-endpoint")).lower(),
        "EndpointPrefix": str(config.get("endpoint_name", "classification-model-endpoint"))[:34].rstrip("-").lower(),
        "AutoMLModelPackageGroup": str(
            config.get("automl_model_package_group", "classification-model-automl-group")
        ).lower(),
        "AutoMLEndpointName": str(config.get("automl_endpoint_name", "automl-classification-endpoint")).lower(),
        "AutoMLEndpointPrefix": str(config.get("automl_endpoint_name", "automl-classification-endpoint"))[:34]
        .rstrip("-")
        .lower(),
        "SnsTopicArn": config.get("sns_topic_arn")
        or f"arn:{partition(region)}:sns:{region}:{account_from_arn(config['role_arn'])}:none",
        "RoleArn": config["role_arn"],
        "AthenaWorkgroup": config.get("athena_workgroup", "primary"),
        # the role EventBridge Scheduler starts scheduled runs as (sagemaker_orchestrator block); none: nothing to pass
        "SchedulerRoleArn": (
            config.get("scheduler_role_arn")
            or (config.get("sagemaker_orchestrator") or {}).get("scheduler_role_arn")
            or f"arn:{partition(region)}:iam::{account_from_arn(config['role_arn'])}:role/none"
        ),
        "AthenaResultsBucket": results_bucket,
        "AthenaResultsPrefix": results_prefix.strip("/"),
    }


def fill_placeholders(text: str, values: Mapping[str, str], what: str) -> str:
    """``text`` with its ``{{Name}}`` placeholders replaced by ``values``; KeyError naming ``what`` and the missing."""
    missing = sorted({m for m in _PLACEHOLDER.findall(text) if m not in values})
    if missing:
        raise KeyError(f"{what} needs values for {', '.join(missing)}")
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], text)


def render_policy(name: str, values: Mapping[str, str]) -> dict:
    """Load ``stacks/iam/<name>.json`` with its placeholders filled."""
    return json.loads(fill_placeholders((POLICY_DIR / f"{name}.json").read_text(), values, f"policy {name}"))
