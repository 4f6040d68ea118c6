"""ZenML's Model Control Plane for our models: one ZenML model per model package group, one version per run.

The training pipelines run under ``Model(name=<model_package_group>)`` (:func:`run_model`), so each run
gets a ZenML model version with the run's step outputs linked to it (the bundle as its model artifact,
the evaluation report, the registration, the deployment). On top of that links, the version carries
as metadata (:func:`version_metadata`, logged once by the register step):

- ``metrics``: the evaluation's metrics (the ``churn.metrics`` registry), and ``gate`` (passed, message);
- ``registry_version``: the MLflow version locally, the model package version on SageMaker, with
  ``model_package_arn`` when the registry reports one; absent when the gate refused the model;
- ``approval_status``, ``bundle_sha256``, ``mlflow_run_id``;
- ``endpoint``: name and URL, once the version is deployed (:func:`record_deployment`).

**Stages follow approval and deployment** (:func:`stage_for`):

=========================  ==================================================================
registry state             ZenML stage
=========================  ==================================================================
PendingManualApproval      ``none`` (nothing to promote yet; ZenML allows one staging version)
Approved, not deployed     ``staging`` (the candidate "deploy the latest approved" picks)
deployed (serving)         ``production``; the previous production version becomes ``archived``
Rejected                   ``archived`` (even while it still serves: it is on its way out)
=========================  ==================================================================

ZenML keeps at most one version per model in ``staging`` and in ``production``: setting either
archives the version that held it (``force``), which matches "the newest approved is the candidate"
and "one model serves".

The CLI (``run.py approve|reject|promote``) and the deploy step find a version by the registry
version it recorded (:func:`find_version`); versions registered before the Model Control Plane
existed have no ZenML version, and those functions then return None rather than raise.

Why this module imports ZenML: it is the Model Control Plane's API (``zenml.client.Client``),
written once here so the steps and the CLI only call plain functions.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from zenml import Model
from zenml.client import Client
from zenml.enums import ModelStages

from churn.metrics import all_metrics
from churn.model_registry import APPROVED, PENDING, REJECTED
from churn.model_registry import find_version as find_registry_version

T = TypeVar("T")

_STAGE_OF_APPROVAL = {PENDING: ModelStages.NONE, APPROVED: ModelStages.STAGING, REJECTED: ModelStages.ARCHIVED}


def run_model(model_name: str) -> Model:
    """The ZenML model a training run versions into: one per model package group (``model_package_group``).

    Args:
        model_name: The config's ``model_package_group`` (also the registry's model name).

    Returns:
        ``Model(name=model_name)`` without a version, so each run creates the next one.
    """
    return Model(
        name=model_name,
        description=f"Churn classifier registered as {model_name}; one version per training run",
    )


def stage_for(approval_status: str, deployed: bool) -> ModelStages:
    """The ZenML stage of a version with this approval status (see the table in the module docstring).

    Args:
        approval_status: ``Approved``, ``PendingManualApproval`` or ``Rejected``.
        deployed: Whether the version is what the endpoint serves.

    Returns:
        The stage.

    Raises:
        ValueError: ``approval_status`` is none of the three.
    """
    if approval_status not in _STAGE_OF_APPROVAL:
        raise ValueError(f"approval_status must be one of {', '.join(_STAGE_OF_APPROVAL)}, got {approval_status!r}")
    if deployed and approval_status != REJECTED:
        return ModelStages.PRODUCTION
    return _STAGE_OF_APPROVAL[approval_status]


def version_metadata(
    report: Mapping[str, Any],
    gate: Mapping[str, Any],
    registration: Mapping[str, Any] | None = None,
    registry_metadata: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """What a run's ZenML model version records about its model (one ``log_metadata`` call).

    Args:
        report: The evaluation report (its metrics are the ``churn.metrics`` registry's entries).
        gate: ``passed`` and ``message`` of the gate verdict.
        registration: The registration record when the model was registered (None: the gate refused it).
        registry_metadata: The registry's own record of the version (its ``model_package_arn`` is kept).

    Returns:
        The metadata: ``metrics``, ``gate`` and, once registered, ``registry_version``, ``approval_status``,
        ``bundle_sha256``, ``mlflow_run_id`` and the package ARN where there is one.
    """
    metrics = {m.name: report[m.name] for m in all_metrics() if isinstance(report.get(m.name), float)}
    metadata: dict[str, Any] = {
        "metrics": metrics,
        "gate": {"passed": bool(gate["passed"]), "message": gate["message"]},
    }
    if registration:
        metadata.update(
            registry_version=str(registration["version"]),
            approval_status=registration["approval_status"],
            bundle_sha256=registration["sha256"],
            mlflow_run_id=registration["mlflow_run_id"],
        )
        arn = (registry_metadata or {}).get("model_package_arn")
        if arn:
            metadata["model_package_arn"] = arn
    return metadata


def find_version(model_name: str, registry_version: str) -> Any | None:
    """The newest ZenML version of ``model_name`` whose metadata ``registry_version`` is ``registry_version``.

    Args:
        model_name: The ZenML model (= the registry's model name / package group).
        registry_version: The registry's version (MLflow version number, SageMaker package version).

    Returns:
        The ``ModelVersionResponse``, or None when the model or such a version does not exist.
    """
    try:
        found = Client().list_model_versions(
            model=model_name,
            run_metadata=[f"registry_version:equals:{registry_version}"],
            sort_by="desc:number",
            size=1,
        )
    except KeyError:  # no ZenML model of that name (runs before the Model Control Plane)
        return None
    return found.items[0] if found.items else None


def set_stage(model_version: Any, stage: ModelStages) -> str:
    """Put a ZenML model version in ``stage`` (archiving the one that held staging/production).

    Args:
        model_version: The ``ModelVersionResponse``.
        stage: The stage to set.

    Returns:
        The stage's name (``production``, ``staging``, ``archived``, ``none``).
    """
    if model_version.stage != stage.value:
        Client().update_model_version(
            model_name_or_id=model_version.model.id, version_name_or_id=model_version.id, stage=stage, force=True
        )
    return stage.value


def sync_stage(model_name: str, registry_version: str, *, approval_status: str, deployed: bool) -> str | None:
    """Set the stage of the ZenML version that recorded ``registry_version`` from its approval and deployment.

    Args:
        model_name: The ZenML model (= the registry's model name / package group).
        registry_version: The registry's version.
        approval_status: Its approval status now.
        deployed: Whether it is what the endpoint serves now.

    Returns:
        The stage set, or None when no ZenML version recorded that registry version.

    Raises:
        ValueError: ``approval_status`` is not a known status.
    """
    stage = stage_for(approval_status, deployed)
    version = find_version(model_name, str(registry_version))
    return None if version is None else set_stage(version, stage)


def record_deployment(
    model_name: str, registry_version: str, *, endpoint_name: str, endpoint_url: str | None
) -> str | None:
    """Record on the ZenML version of ``registry_version`` that it serves at ``endpoint_name``; stage production.

    Args:
        model_name: The ZenML model (= the registry's model name / package group).
        registry_version: The registry's version now served.
        endpoint_name: The endpoint serving it.
        endpoint_url: Its URL (None when the deployer reports none).

    Returns:
        ``production``, or None when no ZenML version recorded that registry version.
    """
    from zenml import log_metadata

    version = find_version(model_name, str(registry_version))
    if version is None:
        return None
    log_metadata(
        metadata={"endpoint": {"name": endpoint_name, "url": endpoint_url or ""}},
        model_version_id=version.id,
    )
    return set_stage(version, ModelStages.PRODUCTION)


def record_run_version(metadata: Mapping[str, Any], stage: ModelStages | None = None) -> str | None:
    """Inside a step: log ``metadata`` on the run's ZenML model version and, given one, set its ``stage``.

    Args:
        metadata: What to record (:func:`version_metadata`), in one call.
        stage: The stage to set (None: leave it).

    Returns:
        The model version's name (its number), or None when the run has no ZenML model.
    """
    from zenml import get_step_context, log_metadata

    version = get_step_context().model_version
    if version is None:
        return None
    log_metadata(metadata=dict(metadata), model_version_id=version.id)
    if stage is not None:
        set_stage(version, stage)
    return version.name


def version_this_run(model_name: str) -> None:
    """Inside a ``@pipeline`` body: run the pipeline under :func:`run_model` (``model_name`` from the config).

    ``@pipeline(model=...)`` would fix the name when the module is imported; the config names the model
    package group only when the pipeline is called, so the body configures the pipeline being compiled
    (ZenML reads its configuration after the body ran). The model is not part of any step's cache key:
    cached steps are reused and their outputs linked to the new version.

    Args:
        model_name: The config's ``model_package_group``.

    Raises:
        RuntimeError: Called outside a pipeline body.
    """
    from zenml.pipelines.compilation_context import PipelineCompilationContext

    context = PipelineCompilationContext.get()
    if context is None:
        raise RuntimeError("version_this_run is called inside a @pipeline body")
    context.pipeline.configure(model=run_model(model_name))


def warn_only(what: str, record: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
    """Run the bookkeeping call ``record(*args, **kwargs)``; on failure print a warning naming ``what``, return None.

    For what runs after the fact (the endpoint switched, the version committed): a ZenML store or Model
    Control Plane failure then must not fail the step or command, nor withdraw what is already right.

    Args:
        what: What was not recorded, for the warning (e.g. "the deployment of m v3 on the ZenML model").
        record: The call to make.
        *args: Its positional arguments.
        **kwargs: Its keyword arguments.

    Returns:
        What ``record`` returned, or None when it raised.
    """
    try:
        return record(*args, **kwargs)
    except Exception as error:  # noqa: BLE001 - bookkeeping after the fact; say what was not recorded
        print(f"warning: {what} was not recorded: {type(error).__name__}: {error}", file=sys.stderr)
        return None


def follow_reconcile(
    registry: Any, model_name: str, outcome: Mapping[str, Any] | None, changed: tuple[str, str] | None = None
) -> None:
    """The ZenML versions' stages follow a reconcile (``churn.model_registry.reconcile``); warn-only.

    What the endpoint serves now is recorded first (stage production, with the endpoint); then the version
    a command just changed gets the stage of its approval; then the version the deploy replaced leaves
    production. Each is :func:`warn_only`: the registry and the endpoint are already right.

    Args:
        registry: The active stack's model registry (the replaced version's approval status is read there).
        model_name: The registered model / model package group (= the ZenML model).
        outcome: ``reconcile``'s outcome (None: nothing was reconciled, e.g. ``--no-deploy`` without endpoint).
        changed: (registry version, its approval status now) a command just set, or None.
    """
    outcome = outcome or {}
    action, before = outcome.get("action"), outcome.get("served_before")
    served = outcome.get("to_serve") if action in ("deployed", "unchanged") else before
    if action in ("deployed", "unchanged") and served is not None:
        url = (outcome.get("endpoint") or {}).get("url")
        warn_only(
            f"the deployment of {model_name} v{served} on its ZenML model version",
            record_deployment,
            model_name,
            served,
            endpoint_name=outcome["endpoint_name"],
            endpoint_url=url,
        )
    if changed is not None:
        version, status = changed
        stage = warn_only(
            f"the stage of {model_name} v{version} on its ZenML model version",
            sync_stage,
            model_name,
            version,
            approval_status=status,
            deployed=version == served,
        )
        if stage is not None:
            print(f"ZenML model {model_name}: the version of registry v{version} is {stage}.")
    if action == "deployed" and before and before != served and before != (changed or ("",))[0]:

        def leave_production() -> str | None:  # the replaced version's stage from its approval, not deployed
            replaced = find_registry_version(registry, model_name, before)
            status = (replaced.metadata.model_dump() if replaced.metadata else {}).get("approval_status", "")
            return sync_stage(model_name, before, approval_status=status, deployed=False)

        warn_only(
            f"the stage of {model_name} v{before} (no longer served) on its ZenML model version", leave_production
        )
