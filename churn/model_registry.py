"""The rules every model registry follows here, written once over ZenML's registry API.

- **The model to serve** (:func:`model_to_serve`), the one rule deploy, batch scoring, the
  champion gate, ``run.py approve|reject|promote`` and ``run.py reconcile`` use:

      the version carrying the champion marker, if that version is Approved and no version
      numbered above the marker's watermark is Approved; otherwise the newest Approved version.

  The champion marker is the version metadata ``champion_over`` (MLflow: a version tag;
  SageMaker: a model package CustomerMetadataProperty), written by :func:`promote` with the
  highest version number the group had then (the watermark). So a promotion pins a version,
  even an older one (a rollback), until a version registered after the promotion is approved
  (by a training run, ``run.py approve`` or, on SageMaker, in Studio). The live approval status
  is MLflow's ``approval_status`` version tag / SageMaker's ModelApprovalStatus, which the
  flavor reports under the same key. A chosen version with no recorded bundle sha256 is
  refused, not skipped: the operator must see it. Locally the MLflow alias ``champion`` is
  moved to the model to serve whenever our code changes it (:func:`mark_served`),
  and removed when no version is Approved (:func:`unmark_served`).
- **All or nothing** (:func:`register_all_or_nothing`): a version is created
  ``PendingManualApproval`` (never selected), the caller's follow-up work runs, and only
  then is it given its approval status, as the last write. If anything fails after the
  version exists, it is withdrawn (deleted; if that fails, Rejected). A process killed
  half-way leaves a pending version that nothing serves.
- **Approval** (:func:`set_approval`, :func:`promote`): the manual steps of the spec's
  approval workflow, checked against what the registry holds (unknown group or version,
  promoting a Rejected version: :class:`ApprovalError` naming it).

All take any ZenML ``BaseModelRegistry`` (the MLflow one we use locally, our SageMaker
flavor), so no backend is named here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from zenml.model_registries.base_model_registry import (
    BaseModelRegistry,
    ModelRegistryModelMetadata,
    ModelVersionStage,
    RegistryModelVersion,
)

from churn.bundle import require_recorded_sha256

log = logging.getLogger(__name__)
T = TypeVar("T")

APPROVED, PENDING, REJECTED = "Approved", "PendingManualApproval", "Rejected"
# Spec approval statuses -> registry stages (MLflow 3 aliases: champion / staging / archived).
APPROVAL_STAGES = {
    APPROVED: ModelVersionStage.PRODUCTION,
    PENDING: ModelVersionStage.STAGING,
    REJECTED: ModelVersionStage.ARCHIVED,
}


class RegistrationError(RuntimeError):
    """Registration failed after the version was created; the version was withdrawn."""


class ApprovalError(ValueError):
    """An approval, rejection or promotion that names a group or version the registry does not have, or cannot do."""


CHAMPION_ALIAS = "champion"  # MLflow: the alias ZenML's MLflow registry gives the PRODUCTION stage
CHAMPION_MARKER = "champion_over"  # version metadata: the group's highest version number when it was promoted


def _meta(version: RegistryModelVersion) -> dict[str, Any]:
    return version.metadata.model_dump() if version.metadata else {}


def _number(version: RegistryModelVersion) -> int:
    return int(str(version.version)) if str(version.version).isdigit() else -1


def versions_of(registry: BaseModelRegistry, name: str, status: str | None = None) -> list[RegistryModelVersion]:
    """Every version of ``name`` (with ``status``: those with that approval status), newest (highest number) first.

    The status is filtered by the registry (MLflow: a tag filter; SageMaker: ListModelPackages'
    ModelApprovalStatus), so only those versions are read.

    Raises:
        ApprovalError: the registry has no registered model / model package group ``name``.
    """
    wanted = None if status is None else ModelRegistryModelMetadata(approval_status=status)
    try:
        registry.get_model(name)
        versions = registry.list_model_versions(name=name, metadata=wanted) or []
    except KeyError as error:
        raise ApprovalError(f"the registry has no model (package group) named {name!r}") from error
    return sorted(versions, key=_number, reverse=True)


def choose_model_to_serve(versions: list[RegistryModelVersion]) -> RegistryModelVersion | None:
    """The model to serve among ``versions`` (the rule in this module's docstring), or None when none is Approved.

    :func:`model_to_serve` passes the Approved versions only: a marker left on a version no longer
    Approved (rejected in SageMaker Studio) then pins nothing, as it pins nothing among all versions.
    """
    approved = [v for v in versions if _meta(v).get("approval_status") == APPROVED]
    if not approved:
        return None
    newest = max(approved, key=_number)
    marked = [v for v in versions if str(_meta(v).get(CHAMPION_MARKER) or "").isdigit()]
    if marked:  # the latest promotion (highest watermark) counts; a stale marker left by a crash does not
        pin = max(marked, key=lambda v: (int(_meta(v)[CHAMPION_MARKER]), _number(v)))
        if _meta(pin).get("approval_status") == APPROVED and _number(newest) <= int(_meta(pin)[CHAMPION_MARKER]):
            return pin
    return newest


def model_to_serve(registry: BaseModelRegistry, name: str) -> RegistryModelVersion | None:
    """The model to serve of ``name`` (see the module docstring), or None when it has no Approved version.

    Args:
        registry: Any ZenML ``BaseModelRegistry`` (the active stack's).
        name: The registered model / model package group.

    Returns:
        The version deploy serves and batch scores, or None (also when ``name`` does not exist yet).

    Raises:
        churn.bundle.BundleError: That version has no (valid) recorded bundle sha256.
    """
    try:
        version = choose_model_to_serve(versions_of(registry, name, APPROVED))  # the rule reads Approved ones
    except ApprovalError:  # the registered model / package group does not exist yet
        return None
    if version is not None:
        require_recorded_sha256(
            _meta(version).get("bundle_sha256"), f"the registry's record of {name} version {version.version}"
        )
    return version


def find_version(registry: BaseModelRegistry, name: str, version: str) -> RegistryModelVersion:
    """Version ``version`` of ``name``.

    Raises:
        ApprovalError: No model ``name``, or it has no version ``version`` (the message lists the ones it has).
    """
    versions = versions_of(registry, name)
    for candidate in versions:
        if str(candidate.version) == str(version):
            return candidate
    have = ", ".join(str(v.version) for v in sorted(versions, key=_number)) or "none"
    raise ApprovalError(f"{name} has no version {version!r} (its versions: {have})")


def set_approval(
    registry: BaseModelRegistry, name: str, version: str, status: str, reason: str = ""
) -> RegistryModelVersion:
    """Give ``version`` of ``name`` the approval status ``status``; idempotent.

    The registry's stage follows (MLflow: the ``champion``/``staging``/``archived`` alias;
    SageMaker: ModelApprovalStatus, with ``reason`` as its ApprovalDescription). ``reason`` is
    kept as the version's ``approval_description`` metadata. Rejecting a version also removes
    its champion marker.

    Raises:
        ApprovalError: Unknown model or version, or ``status`` is not an approval status.
    """
    if status not in APPROVAL_STAGES:
        raise ApprovalError(f"approval status must be one of {', '.join(APPROVAL_STAGES)}, got {status!r}")
    found = find_version(registry, name, version)
    fields = {"approval_status": status, "approval_description": reason or f"{status} with run.py"}
    updated = registry.update_model_version(
        name=name,
        version=str(found.version),
        stage=APPROVAL_STAGES[status],
        metadata=ModelRegistryModelMetadata(**fields),
    )
    if status == REJECTED and _meta(found).get(CHAMPION_MARKER):
        updated = registry.update_model_version(
            name=name, version=str(found.version), remove_metadata=[CHAMPION_MARKER]
        )
    return updated


def promote(registry: BaseModelRegistry, name: str, version: str) -> RegistryModelVersion:
    """Make ``version`` of ``name`` the model to serve, also when it is older than others (a rollback).

    A PendingManualApproval version is approved first. The version gets the champion marker with
    the group's highest version number as its watermark; the markers of other versions are removed
    after that (until then the new one wins: it has the highest watermark).

    Raises:
        ApprovalError: Unknown model or version, or the version is Rejected (approve it first).
    """
    found = find_version(registry, name, version)
    status = _meta(found).get("approval_status")
    if status == REJECTED:
        raise ApprovalError(
            f"{name} version {found.version} is Rejected; approve it first "
            f"(`python run.py approve {name} {found.version}`) if it should be served again"
        )
    if status != APPROVED:
        set_approval(registry, name, str(found.version), APPROVED)
    versions = versions_of(registry, name)
    watermark = max(_number(v) for v in versions)
    promoted = registry.update_model_version(
        name=name, version=str(found.version), metadata=ModelRegistryModelMetadata(**{CHAMPION_MARKER: str(watermark)})
    )
    for other in versions:
        if str(other.version) != str(found.version) and _meta(other).get(CHAMPION_MARKER):
            registry.update_model_version(name=name, version=str(other.version), remove_metadata=[CHAMPION_MARKER])
    return promoted


def mark_served(registry: BaseModelRegistry, name: str, version: RegistryModelVersion) -> None:
    """Record in the registry that ``version`` is the model to serve: its stage becomes PRODUCTION.

    MLflow: the ``champion`` alias moves to it (``models:/<name>@champion`` loads the model to
    serve). SageMaker: the version is Approved already, so nothing changes.
    """
    registry.update_model_version(name=name, version=str(version.version), stage=ModelVersionStage.PRODUCTION)


def unmark_served(registry: BaseModelRegistry, name: str) -> None:
    """Record in the registry that ``name`` has no model to serve.

    MLflow: the ``champion`` alias is removed (ZenML's MLflow registry only sets aliases, so rejecting the
    last Approved version would leave ``models:/<name>@champion`` on it). SageMaker: nothing to remove
    (the registry has no alias; ModelApprovalStatus says it all).
    """
    client = getattr(registry, "mlflow_client", None)  # the MLflow registry's client, on its tracking URI
    if client is None:
        return
    from mlflow.exceptions import MlflowException

    try:
        client.get_model_version_by_alias(name, CHAMPION_ALIAS)
    except MlflowException:  # no such alias: nothing to remove
        return
    client.delete_registered_model_alias(name, CHAMPION_ALIAS)


approved_version = model_to_serve  # the name callers used before promotion existed


def version_bundle_uri(version: RegistryModelVersion) -> str:
    """Where a version's bundle is: its ``bundle_uri`` tag, else its source (versions registered before the
    source became an MLflow model wrapping the bundle, and registries whose source is the bundle itself)."""
    metadata = version.metadata.model_dump() if version.metadata else {}
    return str(metadata.get("bundle_uri") or version.model_source_uri)


def verified_bundle(name: str, version: RegistryModelVersion, directory: str) -> tuple[Any, str]:
    """A registered version's bundle (a ``churn.bundle.ModelBundle``) and its sha256, verified; read-only.

    The bundle is fetched from the version's source URI into ``directory`` (path, file:// or s3://, as
    batch scoring does) and loaded only if its bytes hash to the version's recorded ``bundle_sha256``.

    Raises:
        churn.bundle.BundleError: No (valid) sha256 is recorded, or the bundle's bytes differ from it.
        Exception: The storage's error when the bundle cannot be fetched.
    """
    metadata = version.metadata.model_dump() if version.metadata else {}
    sha256 = require_recorded_sha256(
        metadata.get("bundle_sha256"), f"the registry's record of {name} version {version.version}"
    )
    from churn.batch import fetch_bundle

    return fetch_bundle(version_bundle_uri(version), directory, expected_sha256=sha256), sha256


def withdraw(registry: BaseModelRegistry, name: str, version: str, reason: str) -> str:
    """Delete a version whose registration failed, or reject it when it cannot be deleted; never raises."""
    try:
        registry.delete_model_version(name=name, version=version)
        log.warning("withdrew %s version %s (deleted): %s", name, version, reason)
        return "deleted"
    except Exception as error:  # noqa: BLE001
        log.warning("could not delete %s version %s (%s); rejecting it", name, version, error)
    try:
        registry.update_model_version(name=name, version=version, stage=APPROVAL_STAGES[REJECTED])
        registry.update_model_version(
            name=name, version=version, metadata=ModelRegistryModelMetadata(approval_status=REJECTED)
        )
        return "rejected"
    except Exception as error:  # noqa: BLE001
        log.error(
            "could not reject %s version %s either (%s); it stays %s and is never served", name, version, error, PENDING
        )
        return f"left {PENDING}"


def register_all_or_nothing(
    registry: BaseModelRegistry,
    name: str,
    model_source_uri: str,
    metadata: Mapping[str, Any],
    approval_status: str,
    description: str = "",
    then: Callable[[RegistryModelVersion], T] | None = None,
) -> tuple[RegistryModelVersion, T | None]:
    """Register a version of ``name``, run ``then(version)``, and only then approve it.

    ``metadata`` is the version's lineage (it must carry ``bundle_sha256``); its
    ``approval_status`` is ``approval_status`` once the registration completed. On any
    failure after the version exists, the version is withdrawn and the error re-raised.
    """
    if approval_status not in APPROVAL_STAGES:
        raise ValueError(f"approval_status must be one of {', '.join(APPROVAL_STAGES)}, got {approval_status!r}")
    require_recorded_sha256(metadata.get("bundle_sha256"), "the registration's metadata")
    staged = ModelRegistryModelMetadata(**{**metadata, "approval_status": PENDING})
    try:
        version = registry.register_model_version(
            name=name, model_source_uri=model_source_uri, metadata=staged, description=description
        )
    except RuntimeError as error:
        if "already exists" not in str(error):
            raise
        # two first registrations at once: the other run created the registered model between the registry's
        # existence check and its create, so it exists now; no version was created by the failed call
        version = registry.register_model_version(
            name=name, model_source_uri=model_source_uri, metadata=staged, description=description
        )
    try:
        result = then(version) if then is not None else None
        # the stage first, the approval_status last: that write is what makes the version selectable
        registry.update_model_version(name=name, version=version.version, stage=APPROVAL_STAGES[approval_status])
        committed = registry.update_model_version(
            name=name, version=version.version, metadata=ModelRegistryModelMetadata(approval_status=approval_status)
        )
    except BaseException as error:
        outcome = withdraw(registry, name, str(version.version), f"{type(error).__name__}: {error}")
        log.error(
            "registration of %s version %s failed after it was created; version %s", name, version.version, outcome
        )
        raise
    return committed, result


def withdraw_run_registrations(registry: BaseModelRegistry, name: str, run_id: str, step_name: str) -> list:
    """Withdraw the versions of ``name`` that step ``step_name`` of run ``run_id`` registered.

    The failure hook calls this: a step that registered a version and then failed (its
    outputs could not be saved, say) leaves nothing registered. Returns what was withdrawn.
    """
    try:
        versions = (
            registry.list_model_versions(
                name=name,
                metadata=ModelRegistryModelMetadata(zenml_pipeline_run_uuid=run_id, zenml_step_name=step_name),
            )
            or []
        )
    except KeyError:
        return []
    return [
        (str(v.version), withdraw(registry, name, str(v.version), f"step {step_name} of run {run_id} failed"))
        for v in versions
    ]


def not_the_approved_model(version: str, approval_status: str, approved: RegistryModelVersion | None) -> str | None:
    """Why ``version`` (just registered as ``approval_status``) must not be deployed, or None when it may.

    Only the model to serve (:func:`model_to_serve`) is served.
    """
    if approved is not None and str(approved.version) == str(version):
        return None
    if approval_status != APPROVED or approved is None:
        return f"version {version} is {approval_status}; only Approved models are deployed"
    return (
        f"version {version} is not the model to serve (version {approved.version} is); "
        "the model to serve is the one deployed"
    )


def reconcile(
    registry: BaseModelRegistry,
    deployer: Any,
    name: str,
    endpoint_name: str,
    settings: Any = None,
    deploy: bool = True,
) -> dict[str, Any]:
    """Make ``endpoint_name`` serve the model to serve of ``name``; idempotent.

    Deploys through the stack's model deployer (``deploy_bundle``, the deploy step's call) when
    the endpoint serves another version (or nothing), also an older one (a rollback: the deployer's
    "never replace a newer version" guard is lifted with ``allow_older``).

    Args:
        registry: The active stack's model registry.
        deployer: The active stack's model deployer (``stacks.contracts.EndpointDeployer``).
        name: The registered model / model package group.
        endpoint_name: Its endpoint (the pipeline config's ``endpoint_name``).
        settings: ``churn.config.DeploySettings`` for a deployment (None: the defaults).
        deploy: False: only report what would be deployed.

    Returns:
        ``{"model_name", "endpoint_name", "to_serve", "served_before", "action", "endpoint"}``; ``action`` is
        ``deployed``, ``unchanged`` (already serving it), ``not deployed`` (``deploy`` False) or
        ``nothing to serve`` (no Approved version: whatever the endpoint serves keeps serving).

    Raises:
        churn.bundle.BundleError: The model to serve has no recorded bundle sha256.
        stacks.contracts.DeploymentError: The deployer could not serve it (the previous model keeps serving).
    """
    outcome = _reconcile_once(registry, deployer, name, endpoint_name, settings, deploy)
    if outcome["action"] != "deployed":
        return outcome
    settled = settle(registry, deployer, name, endpoint_name, outcome["to_serve"], settings)
    return outcome if settled is None else {**settled, "served_before": outcome["served_before"]}


RACE_TRIES = 3  # deploys after a race before giving up (each one settles a promotion made during the last)


def settle(
    registry: BaseModelRegistry,
    deployer: Any,
    name: str,
    endpoint_name: str,
    deployed_version: str,
    settings: Any = None,
) -> dict[str, Any] | None:
    """After ``deployed_version`` was deployed: if the model to serve changed meanwhile, serve that instead.

    The model to serve is chosen before ``deploy_bundle``, outside any lock: an approve, promote or
    reconcile made while a deployment ran could be undone by it. So it is read again after the deploy
    and, when it changed, reconciled (at most :data:`RACE_TRIES` times).

    Args:
        registry: The active stack's model registry.
        deployer: The active stack's model deployer.
        name: The registered model / model package group.
        endpoint_name: Its endpoint.
        deployed_version: The version just deployed.
        settings: ``churn.config.DeploySettings`` for a deployment (None: the defaults).

    Returns:
        The last reconcile's outcome (see :func:`reconcile`), or None when the model to serve did not change
        (or no version is Approved any more: the endpoint keeps serving, the next reconcile says so).

    Raises:
        churn.bundle.BundleError: The model to serve has no recorded bundle sha256.
        stacks.contracts.DeploymentError: The deployer could not serve it.
    """
    outcome = None
    for _ in range(RACE_TRIES):
        now = model_to_serve(registry, name)
        if now is None or str(now.version) == str(deployed_version):
            return outcome
        log.warning("the model to serve of %s changed to v%s during a deploy; serving it", name, now.version)
        outcome = _reconcile_once(registry, deployer, name, endpoint_name, settings, True)
        if outcome["action"] != "deployed":
            return outcome
        deployed_version = outcome["to_serve"]
    return outcome


def _reconcile_once(
    registry: BaseModelRegistry, deployer: Any, name: str, endpoint_name: str, settings: Any, deploy: bool
) -> dict[str, Any]:
    chosen = model_to_serve(registry, name)
    current = next((e for e in deployer.list_endpoints() if e.get("endpoint_name") == endpoint_name), None)
    served = str(current["version"]) if current and current.get("model_name") == name else None
    outcome: dict[str, Any] = {
        "model_name": name,
        "endpoint_name": endpoint_name,
        "to_serve": None if chosen is None else str(chosen.version),
        "served_before": served,
        "endpoint": current,
    }
    if chosen is None:
        unmark_served(registry, name)  # models:/<name>@champion must not load a Rejected version
        return {**outcome, "action": "nothing to serve"}
    mark_served(registry, name, chosen)
    if served == str(chosen.version) and current.get("running", True):
        return {**outcome, "action": "unchanged"}
    if not deploy:
        return {**outcome, "action": "not deployed"}
    metadata = _meta(chosen)
    endpoint = deployer.deploy_bundle(
        endpoint_name=endpoint_name,
        model_name=name,
        version=str(chosen.version),
        bundle_uri=version_bundle_uri(chosen),
        sha256=str(metadata["bundle_sha256"]),
        settings=settings,
        metadata={
            "mlflow_run_id": metadata.get("mlflow_run_id"),
            "zenml_run_id": metadata.get("zenml_pipeline_run_uuid"),
        },
        allow_older=True,  # the model to serve may be older than what serves (a promotion: a rollback)
    )
    return {**outcome, "action": "deployed", "endpoint": endpoint}
