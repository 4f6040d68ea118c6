"""A small evaluator of the IAM policy documents in ``stacks/iam``: do our calls stay inside them?

Only the IAM tests use it (``tests/cloud/test_iam.py``, the operator checks of the orchestrator and
schedule tests); the product renders the documents (``churn.aws.iam``) and leaves evaluating them to AWS.

``permissions_for(call)`` turns one recorded API call into the IAM action(s) and
resource ARN(s) it needs (including the implied ``iam:PassRole`` of calls that hand a
role to SageMaker); ``is_allowed`` evaluates Allow/Deny statements with wildcards and
the ``StringEquals``/``StringLike`` conditions we use. As in IAM, action names match
case-insensitively and resource ARNs case-sensitively (SageMaker writes names into its ARNs
in lowercase, so ``permissions_for`` and ``policy_values`` lowercase SageMaker names the way
SageMaker does); the only wildcards are ``*`` and ``?``. It is deliberately small: enough
to prove our calls stay inside our documents, not a full IAM engine.

``unmet_requirements`` checks the permissions AWS services exercise on our behalf, listed with
their documentation in ``stacks/iam/REQUIREMENTS.md``, against the documents.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from churn.aws.clients import ApiCall, partition
from churn.aws.iam import POLICY_DIR, fill_placeholders, render_policy

# API operation -> IAM action, where they differ (S3 mostly).
S3_ACTIONS = {
    "HeadObject": "GetObject",
    "ListObjectsV2": "ListBucket",
    "ListObjects": "ListBucket",
    "HeadBucket": "ListBucket",
    "DeleteObjects": "DeleteObject",
    "CreateMultipartUpload": "PutObject",
    "UploadPart": "PutObject",
    "CompleteMultipartUpload": "PutObject",
}
FREE_ACTIONS = {"sts:GetCallerIdentity"}  # needs no permission


@dataclass(frozen=True)
class Permission:
    """One IAM action on one resource ARN, with the condition keys the request carries."""

    action: str
    resource: str
    context: Mapping[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        extra = f" {dict(self.context)}" if self.context else ""
        return f"{self.action} on {self.resource}{extra}"


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def wildcard_match(pattern: str, value: str, case_sensitive: bool = True) -> bool:
    """IAM's matching: ``*`` any run of characters, ``?`` one character, everything else literal."""
    flags = 0 if case_sensitive else re.IGNORECASE
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(body, value, flags | re.DOTALL) is not None


def _condition_holds(condition: Mapping[str, Mapping[str, Any]], context: Mapping[str, str]) -> bool:
    for operator, tests in condition.items():
        for key, expected in tests.items():
            actual = context.get(key)
            if actual is None:
                return False
            options = _as_list(expected)
            if operator == "StringEquals" and actual not in options:
                return False
            if operator == "StringLike" and not any(wildcard_match(o, actual) for o in options):
                return False
            if operator not in ("StringEquals", "StringLike"):
                return False
    return True


def _statement_matches(statement: Mapping[str, Any], permission: Permission) -> bool:
    # action names are case-insensitive, resource ARNs case-sensitive (as IAM evaluates them)
    if not any(
        wildcard_match(a, permission.action, case_sensitive=False) for a in _as_list(statement.get("Action", []))
    ):
        return False
    if not any(wildcard_match(r, permission.resource) for r in _as_list(statement.get("Resource", "*"))):
        return False
    return _condition_holds(statement.get("Condition", {}), permission.context)


def is_allowed(policies: Iterable[Mapping[str, Any]], permission: Permission) -> bool:
    """True when some Allow statement matches and no Deny does."""
    if permission.action in FREE_ACTIONS:
        return True
    statements = [s for policy in policies for s in _as_list(policy.get("Statement", []))]
    if any(s.get("Effect") == "Deny" and _statement_matches(s, permission) for s in statements):
        return False
    return any(s.get("Effect") == "Allow" and _statement_matches(s, permission) for s in statements)


def permissions_for(call: ApiCall, account: str, workgroup: str = "primary") -> list[Permission]:
    """The IAM permission(s) an API call needs."""
    p, region, op, params = partition(call.region), call.region, call.operation, call.params
    prefix = call.signing_name
    if prefix == "s3":
        if op == "ListBuckets":
            return [Permission("s3:ListAllMyBuckets", "*")]
        action = f"s3:{S3_ACTIONS.get(op, op)}"
        bucket, key = params.get("Bucket", ""), params.get("Key")
        if op == "DeleteObjects":
            return [Permission(action, f"arn:{p}:s3:::{bucket}/{o['Key']}") for o in params["Delete"]["Objects"]]
        if key is not None:
            return [Permission(action, f"arn:{p}:s3:::{bucket}/{key}")]
        return [Permission(action, f"arn:{p}:s3:::{bucket}", {"s3:prefix": params.get("Prefix", "")})]
    if prefix == "sagemaker":
        return _sagemaker(op, params, f"arn:{p}:sagemaker:{region}:{account}")
    if prefix == "athena":
        return [
            Permission(
                f"athena:{op}", f"arn:{p}:athena:{region}:{account}:workgroup/{params.get('WorkGroup', workgroup)}"
            )
        ]
    if prefix == "sns":
        return [Permission(f"sns:{op}", params.get("TopicArn", "*"))]
    if prefix == "scheduler":
        name = params.get("Name")
        resource = (
            f"arn:{p}:scheduler:{region}:{account}:schedule/{params.get('GroupName', 'default')}/{name}"
            if name
            else "*"
        )
        needed = [Permission(f"scheduler:{op}", resource)]
        role = (params.get("Target") or {}).get("RoleArn")
        if role:  # the schedule's target runs as this role
            needed.append(Permission("iam:PassRole", role, {"iam:PassedToService": "scheduler.amazonaws.com"}))
        return needed
    if prefix == "events":
        name = params.get("Name") or params.get("Rule")
        return [Permission(f"events:{op}", f"arn:{p}:events:{region}:{account}:rule/{name}" if name else "*")]
    return [Permission(f"{prefix}:{op}", "*")]


def _sagemaker(op: str, params: Mapping[str, Any], base: str) -> list[Permission]:
    def arn(kind: str, name: str) -> str:
        return f"{base}:{kind}/{name}".lower() if not name.startswith("arn:") else name.lower()

    action = f"sagemaker:{op}"
    needed: list[Permission] = []
    if "FeatureGroupName" in params:
        needed.append(Permission(action, arn("feature-group", params["FeatureGroupName"])))
    elif op in ("CreateModelPackage",):
        needed.append(Permission(action, arn("model-package", params["ModelPackageGroupName"] + "/*")))
    elif "ModelPackageGroupName" in params and op != "ListModelPackages":
        needed.append(Permission(action, arn("model-package-group", params["ModelPackageGroupName"])))
    elif "ModelPackageName" in params or "ModelPackageArn" in params:
        needed.append(
            Permission(action, arn("model-package", params.get("ModelPackageName") or params["ModelPackageArn"]))
        )
    elif "EndpointName" in params:
        needed.append(Permission(action, arn("endpoint", params["EndpointName"])))
        if "EndpointConfigName" in params:
            needed.append(Permission(action, arn("endpoint-config", params["EndpointConfigName"])))
    elif "EndpointConfigName" in params:
        needed.append(Permission(action, arn("endpoint-config", params["EndpointConfigName"])))
    elif "ModelName" in params:
        needed.append(Permission(action, arn("model", params["ModelName"])))
    elif "PipelineName" in params:
        needed.append(Permission(action, arn("pipeline", params["PipelineName"])))
    elif "PipelineExecutionArn" in params:
        needed.append(Permission(action, params["PipelineExecutionArn"].lower()))
    elif "ResourceArn" in params:
        needed.append(Permission(action, params["ResourceArn"].lower()))
    else:
        needed.append(Permission(action, "*"))
    for container in [params.get("PrimaryContainer") or {}, *(params.get("Containers") or [])]:
        if op == "CreateModel" and container.get("ModelPackageName"):  # a model created from a package
            needed.append(Permission(action, arn("model-package", container["ModelPackageName"])))
    role = params.get("ExecutionRoleArn") or params.get("RoleArn")
    if role:
        needed.append(Permission("iam:PassRole", role, {"iam:PassedToService": "sagemaker.amazonaws.com"}))
    return needed


def violations(
    calls: Iterable[ApiCall],
    policies_by_role: Mapping[str, list[Mapping[str, Any]]],
    account: str,
    workgroup: str = "primary",
) -> list[str]:
    """One line per (role, permission) that the role's documents do not allow."""
    problems: dict[str, None] = {}
    for call in calls:
        policies = policies_by_role.get(call.role)
        if policies is None:
            problems[f"{call.role}: no policy document for this role ({call.service}.{call.operation})"] = None
            continue
        for permission in permissions_for(call, account, workgroup):
            if not is_allowed(policies, permission):
                problems[f"{call.role}: {permission} (from {call.service}.{call.operation})"] = None
    return list(problems)


def load_role_policies(values: Mapping[str, str]) -> dict[str, list[dict]]:
    """The documents per role: the execution role's, the operator's (which also has the execution role's),
    and the scheduler role's."""
    execution = render_policy("execution_role_policy", values)
    operator = render_policy("operator_policy", values)
    return {
        "execution": [execution],
        "operator": [execution, operator],
        "scheduler": [render_policy("scheduler_role_policy", values)],
    }


# requirement role -> the document that must grant it (trust documents: who may assume the role)
REQUIREMENT_DOCUMENTS = {
    "execution": "execution_role_policy",
    "scheduler": "scheduler_role_policy",
    "execution-trust": "trust_policy",
    "scheduler-trust": "scheduler_trust_policy",
}


@dataclass(frozen=True)
class Requirement:
    """One row of stacks/iam/REQUIREMENTS.md: a permission an AWS service exercises on our behalf."""

    id: str
    role: str
    permission: Permission
    why: str
    source: str


def load_requirements(values: Mapping[str, str], path: Path | None = None) -> list[Requirement]:
    """The requirements table, placeholders filled."""
    rows = []
    for line in (path or POLICY_DIR / "REQUIREMENTS.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.startswith("|") or len(cells) != 7 or cells[0] in ("id", "---"):
            continue
        id_, role, action, resource, context, why, source = cells
        what = f"requirement {id_}"
        pairs = dict(item.split("=", 1) for item in context.split(",")) if context != "-" else {}
        filled = {k.strip(): fill_placeholders(v.strip(), values, what) for k, v in pairs.items()}
        permission = Permission(action, fill_placeholders(resource, values, what), filled)
        rows.append(Requirement(id_, role, permission, why, source))
    return rows


def _trusts(document: Mapping[str, Any], service: str) -> bool:
    return any(
        s.get("Effect") == "Allow"
        and "sts:AssumeRole" in _as_list(s.get("Action", []))
        and service in _as_list((s.get("Principal") or {}).get("Service", []))
        for s in _as_list(document.get("Statement", []))
    )


def unmet_requirements(
    values: Mapping[str, str], documents: Mapping[str, Mapping[str, Any]] | None = None
) -> list[str]:
    """One line per requirement of stacks/iam/REQUIREMENTS.md that its document does not grant.

    ``documents``: document name -> rendered document (default: the ones in stacks/iam, rendered with ``values``).
    """
    documents = documents or {name: render_policy(name, values) for name in REQUIREMENT_DOCUMENTS.values()}
    problems = []
    for requirement in load_requirements(values):
        name = REQUIREMENT_DOCUMENTS.get(requirement.role)
        if name is None:
            problems.append(f"{requirement.id}: unknown role {requirement.role!r}")
            continue
        if requirement.role.endswith("-trust"):
            granted = _trusts(documents[name], requirement.permission.resource)
        else:
            granted = is_allowed([documents[name]], requirement.permission)
        if not granted:
            problems.append(
                f"{requirement.id}: {requirement.role} lacks {requirement.permission} "
                f"({requirement.why}; {requirement.source})"
            )
    return problems
