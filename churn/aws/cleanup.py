"""Clean up what the SageMaker stack created (spec: Clean Up).

Always: the endpoint(s) with their autoscaling target, the endpoint configs and models
we created for them, the schedules (EventBridge Scheduler schedules and EventBridge
rules) and SageMaker pipelines ZenML's orchestrator created for our pipelines.
Only with ``include_registry``: every model package of the group, then the group.
Only with ``include_s3``: every object under ``s3://<bucket>/<prefix>/``.

``plan_cleanup`` lists what would go (for a confirmation prompt); ``cleanup`` removes it
and returns one line per thing removed. Calls are made as the ``operator`` (a person at
a workstation), whose permissions are in ``stacks/iam/operator_policy.json``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from churn.aws import s3
from churn.aws.clients import acting_as, aws_errors, client, error_code
from churn.aws.endpoint import EndpointSettings, SageMakerEndpoints
from churn.aws.registry import ModelPackageClient

# ZenML names SageMaker pipelines and schedules "<pipeline name with - for _>-<32 hex>".
DEFAULT_SCHEDULE_PREFIXES = ("churn-rf-training-", "churn-automl-training-", "churn-feature-ingestion-")


@dataclass
class CleanupSettings:
    region: str
    bucket: str
    prefix: str
    endpoint_names: Sequence[str] = ()
    model_package_groups: Sequence[str] = ()
    include_registry: bool = False
    include_s3: bool = False
    schedule_prefixes: Sequence[str] = DEFAULT_SCHEDULE_PREFIXES
    profile: str | None = None


@dataclass
class Resource:
    kind: str
    name: str
    detail: dict = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.kind} {self.name}"


def _print(message: str) -> None:
    print(message, flush=True)


def _endpoints(settings: CleanupSettings) -> SageMakerEndpoints:
    return SageMakerEndpoints(
        EndpointSettings(
            region=settings.region,
            role_arn="",
            bucket=settings.bucket,
            prefix=settings.prefix,
            profile=settings.profile,
        ),
        progress=lambda _: None,
    )


def plan_cleanup(settings: CleanupSettings) -> list[Resource]:
    """Everything ``cleanup`` would remove with these settings (nothing is changed)."""
    with acting_as("operator"):
        return _plan(settings)


def _plan(settings: CleanupSettings) -> list[Resource]:
    region, profile = settings.region, settings.profile
    found: list[Resource] = []
    endpoints = _endpoints(settings)
    for name in settings.endpoint_names:
        if endpoints.describe(name) is not None:
            found.append(Resource("endpoint", name))
        for config in endpoints.own_configs(name):
            found.append(Resource("endpoint config + model", config["EndpointConfigName"], {"endpoint": name}))
    scheduler, events, sm = (
        client("scheduler", region, profile),
        client("events", region, profile),
        client("sagemaker", region, profile),
    )
    for prefix in settings.schedule_prefixes:
        with aws_errors(f"listing schedules named {prefix}*"):
            for page in scheduler.get_paginator("list_schedules").paginate(NamePrefix=prefix):
                found.extend(
                    Resource("schedule", s["Name"], {"group": s.get("GroupName", "default")}) for s in page["Schedules"]
                )
        with aws_errors(f"listing EventBridge rules named {prefix}*"):
            found.extend(Resource("eventbridge rule", r["Name"]) for r in events.list_rules(NamePrefix=prefix)["Rules"])
        with aws_errors(f"listing SageMaker pipelines named {prefix}*"):
            # PipelineNamePrefix has PipelineName's pattern (no trailing hyphen); the exact prefix is checked below
            for page in sm.get_paginator("list_pipelines").paginate(PipelineNamePrefix=prefix.rstrip("-")):
                found.extend(
                    Resource("pipeline", p["PipelineName"])
                    for p in page["PipelineSummaries"]
                    if p["PipelineName"].startswith(prefix)
                )
    if settings.include_registry:
        registry = ModelPackageClient(
            region, settings.bucket, settings.prefix, profile=profile, progress=lambda _: None
        )
        for group in settings.model_package_groups:
            try:
                packages = registry.list_packages(group)
            except KeyError:
                continue
            found.extend(Resource("model package", p["ModelPackageArn"]) for p in packages)
            found.append(Resource("model package group", group))
    if settings.include_s3:
        uri = s3.join(f"s3://{settings.bucket}", settings.prefix) + "/"
        keys = s3.list_keys(uri, region, profile)
        if keys:
            found.append(Resource("s3 objects", uri, {"count": len(keys)}))
    return found


def cleanup(
    settings: CleanupSettings, resources: list[Resource] | None = None, progress: Callable[[str], None] = _print
) -> list[str]:
    """Remove ``resources`` (default: what ``plan_cleanup`` finds); return what was removed."""
    with acting_as("operator"):
        return _remove(settings, _plan(settings) if resources is None else resources, progress)


def _remove(settings: CleanupSettings, resources: list[Resource], progress: Callable[[str], None]) -> list[str]:
    region, profile = settings.region, settings.profile
    removed: list[str] = []
    endpoints = _endpoints(settings)
    sm = client("sagemaker", region, profile)

    def done(line: str) -> None:
        removed.append(line)
        progress(f"Removed {line}")

    for resource in resources:
        if resource.kind == "endpoint":
            if endpoints.autoscaling.deregister(resource.name):
                done(f"autoscaling target of endpoint {resource.name}")
            endpoints.delete_endpoint_and_wait(resource.name)
            done(str(resource))
        elif resource.kind == "endpoint config + model":
            for line in endpoints.delete_config_and_model(resource.name):
                done(line)
        elif resource.kind == "schedule":
            with aws_errors(f"deleting schedule {resource.name}"):
                client("scheduler", region, profile).delete_schedule(
                    Name=resource.name, GroupName=resource.detail["group"]
                )
            done(str(resource))
        elif resource.kind == "eventbridge rule":
            events = client("events", region, profile)
            with aws_errors(f"deleting EventBridge rule {resource.name}"):
                targets = [t["Id"] for t in events.list_targets_by_rule(Rule=resource.name)["Targets"]]
                if targets:
                    events.remove_targets(Rule=resource.name, Ids=targets)
                events.delete_rule(Name=resource.name)
            done(str(resource))
        elif resource.kind == "pipeline":
            with aws_errors(f"deleting SageMaker pipeline {resource.name}"):
                sm.delete_pipeline(PipelineName=resource.name, ClientRequestToken=uuid.uuid4().hex)
            done(str(resource))
        elif resource.kind == "model package":
            with aws_errors(f"deleting model package {resource.name}"):
                try:
                    sm.delete_model_package(ModelPackageName=resource.name)
                except Exception as error:  # noqa: BLE001 - already gone is fine
                    if error_code(error) != "ValidationException":
                        raise
            done(str(resource))
        elif resource.kind == "model package group":
            with aws_errors(f"deleting model package group {resource.name}"):
                sm.delete_model_package_group(ModelPackageGroupName=resource.name)
            done(str(resource))
        elif resource.kind == "s3 objects":
            count = s3.delete_prefix(resource.name, region, profile)
            done(f"{count} S3 objects under {resource.name}")
    return removed
