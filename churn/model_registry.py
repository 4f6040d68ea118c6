"""Two rules every model registry follows here, written once over ZenML's registry API.

- **The approved model** (:func:`approved_version`): the newest version whose live
  approval status is ``Approved`` (MLflow: the version's ``approval_status`` tag;
  SageMaker: the package's ModelApprovalStatus, which the flavor reports under the same
  key). Batch inference scores with it and deploy serves only it. A version with no
  recorded bundle sha256 is refused, not skipped: the operator must see it.
- **All or nothing** (:func:`register_all_or_nothing`): a version is created
  ``PendingManualApproval`` (never selected), the caller's follow-up work runs, and only
  then is it given its approval status, as the last write. If anything fails after the
  version exists, it is withdrawn (deleted; if that fails, Rejected). A process killed
  half-way leaves a pending version that nothing serves.

Both take any ZenML ``BaseModelRegistry`` (the MLflow one we use locally, our SageMaker
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


def approved_version(registry: BaseModelRegistry, name: str) -> RegistryModelVersion | None:
    """The approved model of ``name``: its newest Approved version, or None when there is none.

    Raises ``churn.bundle.BundleError`` when that version has no (valid) recorded bundle
    sha256, since nothing could verify what it would load.
    """
    try:
        versions = registry.list_model_versions(
            name=name, metadata=ModelRegistryModelMetadata(approval_status=APPROVED), order_by_date="desc", count=1
        )
    except KeyError:  # the registered model / package group does not exist yet
        return None
    if not versions:
        return None
    version = versions[0]
    metadata = version.metadata.model_dump() if version.metadata else {}
    if metadata.get("approval_status") != APPROVED:  # a registry that ignored the filter
        return None
    require_recorded_sha256(metadata.get("bundle_sha256"), f"the registry's record of {name} version {version.version}")
    return version


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

    Only the approved model (:func:`approved_version`, the newest Approved version) is served.
    """
    if approved is not None and str(approved.version) == str(version):
        return None
    if approval_status != APPROVED or approved is None:
        return f"version {version} is {approval_status}; only Approved models are deployed"
    return (
        f"version {version} is not the approved model (version {approved.version} is); "
        "the approved model is the one deployed"
    )
