"""SageMaker Model Registry flavor (ZenML ships none): model package groups and versions.

Registered model = model package group; version = model package (SageMaker numbers
them). A version's ``model_source_uri`` is its bundle directory in S3 (as on the MLflow
registry); ``metadata["model_data_url"]`` is the model.tar.gz the endpoint serves, and
``metadata["approval_status"]`` is SageMaker's live approval status. Stages map to approval
statuses: PRODUCTION = Approved, STAGING = PendingManualApproval, ARCHIVED = Rejected.
MLflow stays the experiment tracker: the package carries the MLflow run id, and the active
MLflow run is tagged with the package ARN (``sagemaker_model_package_arn``). The logic is in ``churn.aws.registry``.
"""

from __future__ import annotations

import logging
import tempfile
from datetime import datetime
from typing import Any

from pydantic import model_validator
from zenml.model_registries.base_model_registry import (
    BaseModelRegistry,
    BaseModelRegistryConfig,
    BaseModelRegistryFlavor,
    ModelRegistryModelMetadata,
    ModelVersionStage,
    RegisteredModel,
    RegistryModelVersion,
)

from churn.aws import s3
from churn.aws.clients import AwsError, aws_errors, client
from churn.aws.registry import APPROVAL_STATUSES, RegistryError
from churn.aws.registry import ModelPackageClient as _Registry
from churn.aws.settings import component_check

FLAVOR = "churn_sagemaker_registry"
log = logging.getLogger(__name__)


def _step_evaluation_report() -> dict | None:
    """The running step's ``evaluation_report`` input (the register step's), which ModelQuality is written
    from (metrics, confusion matrix, curves, standard deviations); None outside such a step."""
    from zenml import get_step_context

    try:
        inputs = get_step_context().inputs.get("evaluation_report")
    except RuntimeError:  # not inside a step
        return None
    return dict((inputs[0] if isinstance(inputs, list) else inputs).load()) if inputs else None


STAGE_TO_STATUS = {
    ModelVersionStage.PRODUCTION: "Approved",
    ModelVersionStage.STAGING: "PendingManualApproval",
    ModelVersionStage.ARCHIVED: "Rejected",
    ModelVersionStage.NONE: "PendingManualApproval",
}
STATUS_TO_STAGE = {
    "Approved": ModelVersionStage.PRODUCTION,
    "PendingManualApproval": ModelVersionStage.STAGING,
    "Rejected": ModelVersionStage.ARCHIVED,
}
MLFLOW_TAG = "sagemaker_model_package_arn"


class SageMakerModelRegistryConfig(BaseModelRegistryConfig):
    """``bucket``/``prefix``: where model.tar.gz, evaluation.json and metadata.json go;
    ``approval_status``: used when the registering step does not say."""

    region: str
    bucket: str
    prefix: str = "mlops/classification_model"
    approval_status: str = "PendingManualApproval"
    image_uri: str | None = None  # our image (churn.image); None: the stack's ECR default
    aws_profile: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _check(cls, values: Any) -> Any:
        values = component_check(values)
        if isinstance(values, dict) and values.get("approval_status", "PendingManualApproval") not in APPROVAL_STATUSES:
            raise ValueError(f"approval_status must be one of {', '.join(APPROVAL_STATUSES)}")
        return values


class SageMakerModelRegistry(BaseModelRegistry):
    @property
    def config(self) -> SageMakerModelRegistryConfig:
        return self._config  # type: ignore[return-value]

    @property
    def registry(self) -> _Registry:
        c = self.config
        return _Registry(c.region, c.bucket, c.prefix, image_uri=c.image_uri, profile=c.aws_profile)

    # -- registered models = model package groups ---------------------------------------
    def register_model(
        self, name: str, description: str | None = None, metadata: dict[str, str] | None = None
    ) -> RegisteredModel:
        if self.registry.describe_group(name) is not None:
            from zenml.exceptions import EntityExistsError

            raise EntityExistsError(f"model package group '{name}' already exists")
        group = self.registry.ensure_group(name, description)
        if metadata:
            self._tag_group(group, metadata)
        return RegisteredModel(name=name, description=description, metadata=metadata)

    def delete_model(self, name: str) -> None:
        if self.registry.describe_group(name) is None:
            raise KeyError(f"model package group '{name}' does not exist")
        self.registry.delete_group(name)

    def update_model(
        self,
        name: str,
        description: str | None = None,
        metadata: dict[str, str] | None = None,
        remove_metadata: list[str] | None = None,
    ) -> RegisteredModel:
        group = self.registry.describe_group(name)
        if group is None:
            raise KeyError(f"model package group '{name}' does not exist")
        if description:
            log.warning("SageMaker cannot change a model package group's description; only its tags were updated")
        if metadata:
            self._tag_group(group, metadata)
        if remove_metadata:
            with aws_errors(f"removing tags from '{name}'", RegistryError):
                client("sagemaker", self.config.region, self.config.aws_profile).delete_tags(
                    ResourceArn=group["ModelPackageGroupArn"], TagKeys=list(remove_metadata)
                )
        return self.get_model(name)

    def _tag_group(self, group: dict, metadata: dict[str, str]) -> None:
        with aws_errors(f"tagging '{group['ModelPackageGroupName']}'", RegistryError):
            client("sagemaker", self.config.region, self.config.aws_profile).add_tags(
                ResourceArn=group["ModelPackageGroupArn"],
                Tags=[{"Key": k, "Value": str(v)[:256]} for k, v in metadata.items()],
            )

    def get_model(self, name: str) -> RegisteredModel:
        group = self.registry.describe_group(name)
        if group is None:
            raise KeyError(f"model package group '{name}' does not exist in {self.config.region}")
        return RegisteredModel(name=name, description=group.get("ModelPackageGroupDescription"))

    def list_models(self, name: str | None = None, metadata: dict[str, str] | None = None) -> list[RegisteredModel]:
        groups = self.registry.list_groups(name)
        return [
            RegisteredModel(name=g["ModelPackageGroupName"], description=g.get("ModelPackageGroupDescription"))
            for g in groups
            if name is None or g["ModelPackageGroupName"] == name
        ]

    # -- versions = model packages ------------------------------------------------------
    def register_model_version(
        self,
        name: str,
        version: str | None = None,
        model_source_uri: str | None = None,
        description: str | None = None,
        metadata: ModelRegistryModelMetadata | None = None,
        **kwargs: Any,
    ) -> RegistryModelVersion:
        """Package the bundle (``metadata.bundle_uri``, else ``model_source_uri``) as a new version of ``name``."""
        if not model_source_uri:
            raise ValueError("register_model_version needs model_source_uri (the model bundle directory)")
        if version:
            log.info("SageMaker numbers model package versions itself; ignoring version=%s", version)
        properties = {k: str(v) for k, v in (metadata.model_dump() if metadata else {}).items()}
        status = properties.get("approval_status") or self.config.approval_status
        bundle_uri = properties.get("bundle_uri") or model_source_uri  # the source may be an MLflow model around it
        package = self.registry.register(
            name,
            bundle_uri,
            properties.get("bundle_sha256", ""),
            properties,
            approval_status=status,
            description=description or "",
            evaluation=kwargs.get("evaluation") or _step_evaluation_report(),
        )
        try:
            self._link_mlflow_run(properties.get("mlflow_run_id"), package["ModelPackageArn"])
            return self._version(name, package, resolve=True)
        except BaseException as error:  # created but not reported back: withdraw it, nothing half-registered
            self.registry.withdraw(package["ModelPackageArn"], f"registration did not complete: {type(error).__name__}")
            raise

    def _link_mlflow_run(self, run_id: str | None, arn: str) -> None:
        """Tag the MLflow run with the package ARN (the package already carries the run id)."""
        try:
            import mlflow

            active = mlflow.active_run()
            if active is not None and (run_id is None or active.info.run_id == run_id):
                mlflow.set_tag(MLFLOW_TAG, arn)
            elif run_id:
                mlflow.MlflowClient().set_tag(run_id, MLFLOW_TAG, arn)
        except Exception as error:  # noqa: BLE001 - lineage courtesy; registration already succeeded
            log.warning("could not tag MLflow run %s with %s: %s", run_id, arn, error)

    def delete_model_version(self, name: str, version: str) -> None:
        package = self.registry.get_package(name, version)
        self.registry.delete_package(package["ModelPackageArn"])

    def update_model_version(
        self,
        name: str,
        version: str,
        description: str | None = None,
        metadata: ModelRegistryModelMetadata | None = None,
        remove_metadata: list[str] | None = None,
        stage: ModelVersionStage | None = None,
    ) -> RegistryModelVersion:
        package = self.registry.get_package(name, version)
        arn = package["ModelPackageArn"]
        if stage is not None and STAGE_TO_STATUS[stage] != package.get("ModelApprovalStatus"):
            # the approval's reason (churn.model_registry.set_approval) is SageMaker's ApprovalDescription
            reason = description or (metadata.model_dump().get("approval_description") if metadata else None)
            package = self.registry.set_status(arn, STAGE_TO_STATUS[stage], reason)
        if metadata is not None or remove_metadata:
            properties = {k: str(v) for k, v in (metadata.model_dump() if metadata else {}).items()}
            package = self.registry.update_properties(arn, properties, remove_metadata)
        return self._version(name, package, resolve=False)

    def approve(self, name: str, version: str) -> RegistryModelVersion:
        return self.update_model_version(name, version, stage=ModelVersionStage.PRODUCTION)

    def reject(self, name: str, version: str) -> RegistryModelVersion:
        return self.update_model_version(name, version, stage=ModelVersionStage.ARCHIVED)

    def list_model_versions(
        self,
        name: str | None = None,
        model_source_uri: str | None = None,
        metadata: ModelRegistryModelMetadata | None = None,
        stage: ModelVersionStage | None = None,
        count: int | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        order_by_date: str | None = None,
        **kwargs: Any,
    ) -> list[RegistryModelVersion] | None:
        """Versions of ``name`` (newest first unless ``order_by_date="asc"``); raises KeyError for an unknown group."""
        if name is None:
            raise ValueError("the SageMaker registry lists versions of one model package group: pass name=")
        wanted = {k: str(v) for k, v in (metadata.model_dump() if metadata else {}).items()}
        status = STAGE_TO_STATUS[stage] if stage is not None and stage != ModelVersionStage.NONE else None
        status = status or (wanted["approval_status"] if wanted.get("approval_status") in APPROVAL_STATUSES else None)
        summaries = self.registry.list_packages(name, status=status, newest_first=order_by_date != "asc")
        out: list[RegistryModelVersion] = []
        for summary in summaries:
            created = summary.get("CreationTime")
            if created_after and created and created <= created_after:
                continue
            if created_before and created and created >= created_before:
                continue
            version = self._version(name, self.registry.describe_package(summary["ModelPackageArn"]), resolve=False)
            if model_source_uri and version.model_source_uri != model_source_uri:
                continue
            have = version.metadata.model_dump() if version.metadata else {}
            if any(have.get(k) != v for k, v in wanted.items()):
                continue
            out.append(version)
            if count and len(out) >= count:
                break
        return out

    def get_model_version(self, name: str, version: str) -> RegistryModelVersion:
        return self._version(name, self.registry.get_package(name, version), resolve=True)

    def latest_approved(self, name: str) -> RegistryModelVersion | None:
        """The model to serve of ``name`` by the one rule batch and deploy use, or None.

        See ``churn.model_registry.model_to_serve``: the promoted version (champion marker) while no
        version registered after the promotion is Approved, else the newest Approved; BundleError when
        that version has no recorded bundle sha256.
        """
        from churn.model_registry import model_to_serve

        return model_to_serve(self, name)

    def load_model_version(self, name: str, version: str, **kwargs: Any) -> Any:
        """The version's ModelBundle, loaded from its model.tar.gz (sha256 checked)."""
        from churn.aws.packaging import extract_model_tarball
        from churn.bundle import load_verified, require_recorded_sha256

        model_version = self.get_model_version(name, version)
        lineage = model_version.metadata.model_dump() if model_version.metadata else {}
        where = f"model package {name} version {version}"
        expected = require_recorded_sha256(lineage.get("bundle_sha256"), where)  # refuse before downloading
        data = s3.read_bytes(lineage["model_data_url"], self.config.region, self.config.aws_profile)
        directory = extract_model_tarball(data, tempfile.mkdtemp(prefix="churn-model-"))
        return load_verified(directory, expected, where)

    def get_model_uri_artifact_store(self, model_version: RegistryModelVersion) -> str:
        return model_version.model_source_uri

    def _version(self, name: str, package: dict, resolve: bool) -> RegistryModelVersion:
        try:
            properties = self.registry.metadata(package, resolve=resolve)
        except AwsError:
            properties = dict(package.get("CustomerMetadataProperties") or {})
        container = (package.get("InferenceSpecification") or {}).get("Containers", [{}])[0]
        properties["model_package_arn"] = package["ModelPackageArn"]
        properties["model_data_url"] = container.get("ModelDataUrl", "")
        # the live approval status is SageMaker's; the one asked for at registration is kept beside it
        properties["approval_status_registered"] = properties.get("approval_status", "")
        properties["approval_status"] = package.get("ModelApprovalStatus", "")
        return RegistryModelVersion(
            version=str(package.get("ModelPackageVersion")),
            model_source_uri=properties.get("bundle_uri") or container.get("ModelDataUrl", ""),
            model_format="churn_model_bundle (churn-mlops serving image)",
            model_library="scikit-learn",
            registered_model=RegisteredModel(name=name),
            description=package.get("ModelPackageDescription"),
            created_at=package.get("CreationTime"),
            last_updated_at=package.get("LastModifiedTime") or package.get("CreationTime"),
            stage=STATUS_TO_STAGE.get(package.get("ModelApprovalStatus", ""), ModelVersionStage.NONE),
            metadata=ModelRegistryModelMetadata(**properties),
        )


class SageMakerModelRegistryFlavor(BaseModelRegistryFlavor):
    @property
    def name(self) -> str:
        return FLAVOR

    @property
    def config_class(self) -> type[SageMakerModelRegistryConfig]:
        return SageMakerModelRegistryConfig

    @property
    def implementation_class(self) -> type[SageMakerModelRegistry]:
        return SageMakerModelRegistry
