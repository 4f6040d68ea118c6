"""moto 5.2.5 addition: CreateModel from a model package (``ContainerDefinition.ModelPackageName``).

moto stores such a container as given, so the model would have no image to run. Here, as on AWS:
- a container naming ``ModelPackageName`` (ARN, or ``group/version``) stands for the package's
  InferenceSpecification containers, in order (a multi-container package is a serial inference
  pipeline: the model gets them all); an ``Environment`` passed with it is merged over each
  container's own (the SageMaker SDK's ``ModelPackage(env=...)``);
- a versioned package (one in a group) must be Approved: CreateModelPackage's documentation says
  "For versioned models, the value of this parameter must be set to Approved to deploy the model";
  otherwise, and for a package that does not exist, CreateModel answers ValidationException.

The resolved containers keep ``ModelPackageName`` (so DescribeModel names the package, as Studio reads
it) and carry the package's Image/ModelDataUrl/Environment, which the serving emulation of
``moto_extensions`` runs. Installed by ``moto_extensions.install`` (a backend-level patch, so it composes
with moto_extensions' own CreateModel handler).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from moto.sagemaker.exceptions import ValidationError
from moto.sagemaker.models import SageMakerModelBackend

from tests.cloud.moto_extensions import model_package

_ORIGINAL: list[Callable] = []


def _resolve(backend: Any, container: dict[str, Any]) -> list[dict[str, Any]]:
    name = container.get("ModelPackageName")
    if not name:
        return [container]
    package = model_package(backend, name)
    if package.model_package_group_name and package.model_approval_status != "Approved":
        raise ValidationError(
            message=(
                f"Model package {package.arn} has ModelApprovalStatus {package.model_approval_status}: "
                "a versioned model package must be Approved to be deployed."
            )
        )
    extra = dict(container.get("Environment") or {})
    resolved = []
    for spec in (package.inference_specification or {}).get("Containers", []):
        item = {k: spec[k] for k in ("Image", "ModelDataUrl") if spec.get(k)}
        item["Environment"] = {**(spec.get("Environment") or {}), **extra}
        resolved.append({"ModelPackageName": package.arn, **item})
    if not resolved:
        raise ValidationError(message=f"Model package {package.arn} has no inference containers.")
    return resolved


def _create_model(
    self: Any,
    model_name: str,
    execution_role_arn: str,
    primary_container: dict[str, Any] | None,
    vpc_config: dict[str, Any] | None,
    containers: list[dict[str, Any]] | None,
    tags: list[dict[str, str]] | None,
) -> Any:
    if primary_container and primary_container.get("ModelPackageName"):
        resolved = _resolve(self, primary_container)
        primary_container, containers = (resolved[0], None) if len(resolved) == 1 else (None, resolved)
    elif containers:
        containers = [c for container in containers for c in _resolve(self, container)]
    return _ORIGINAL[0](self, model_name, execution_role_arn, primary_container, vpc_config, containers, tags)


def install() -> None:
    if not _ORIGINAL:
        _ORIGINAL.append(SageMakerModelBackend.create_model)
        SageMakerModelBackend.create_model = _create_model


def uninstall() -> None:
    if _ORIGINAL:
        SageMakerModelBackend.create_model = _ORIGINAL.pop()
