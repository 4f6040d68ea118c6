"""SageMaker Model Registry: model package groups and versioned model packages.

A registered version is a model package with
- InferenceSpecification: our image (``churn.image``: built from requirements.lock, started
  as ``serve``) and model.tar.gz in S3 (the bundle, see ``churn.aws.packaging``), the
  bundle's sha256 in the container Environment; for an Autopilot bundle, the serial
  inference pipeline ``packaging.serving_containers`` lays out (our container encoding,
  the best candidate's containers, our container answering), so the package deploys as is.
  The bundle's files are also stored as a directory next to the archive (``bundle_uri``),
  which is the version's ``model_source_uri`` as on every other registry (batch inference
  loads it);
- ModelMetrics: ModelQuality.Statistics is model_quality.json in S3, the Model Monitor model-quality
  document Studio's model-quality view reads (``churn.aws.model_quality``); the flat evaluation.json
  (accuracy, precision, ...) stays next to it (registration.json's ``evaluation_uri``);
- CustomerMetadataProperties: the lineage (MLflow run id, ZenML run id, data fingerprint,
  feature group and range, bundle sha256, ...). Values SageMaker cannot hold there (longer
  than 256 characters or with characters outside its pattern, e.g. the feature query SQL)
  go to metadata.json next to the model, named by the ``metadata_document`` property;
- ModelApprovalStatus: Approved / PendingManualApproval / Rejected.

Everything in S3 is written before the package is created and removed again if creating
it fails; a failure after the package exists (describing it, writing registration.json)
withdraws the package (deleted, or Rejected when it cannot be deleted): nothing is left
half-registered. Callers that must do more after creation (the ZenML flavor, the register
step) create the package PendingManualApproval and approve it as their last act
(``churn.model_registry.register_all_or_nothing``).

Length: about 370 lines, one class for one API family (model package groups and packages:
create, read, update, withdraw, delete); ``register`` is one all-or-nothing transaction in
named phases (stage, create, write registration.json, undo). Splitting it from the reads and
deletes it calls would scatter one resource's rules over two files.
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from churn.aws import packaging, s3
from churn.aws.clients import AwsError, aws_errors, client, error_code, explain
from churn.aws.model_quality import model_quality_document

APPROVAL_STATUSES = ("Approved", "PendingManualApproval", "Rejected")
_PROPERTY = re.compile(r"^[A-Za-z0-9 _.:/=+\-@]{1,256}$")
_PROPERTY_KEY = re.compile(r"^[A-Za-z0-9 _.:/=+\-@]{1,128}$")
MAX_PROPERTIES = 50
# members of ProductionVariantInstanceType (real-time hosting): its only burstables are ml.t2.*, there is no ml.t3
DEFAULT_INSTANCE_TYPES = ["ml.t2.medium", "ml.m5.large", "ml.m5.xlarge", "ml.c5.xlarge"]


# botocore's PipelineExecutionArn pattern (SageMaker Pipelines); ZenML's SageMaker orchestrator hands each
# step its pipeline execution's ARN as ZENML_SAGEMAKER_RUN_ID (sagemaker.workflow ExecutionVariables)
PIPELINE_EXECUTION_ARN = re.compile(r"^arn:aws[a-z\-]*:sagemaker:[a-z0-9\-]*:[0-9]{12}:pipeline/.+/execution/.+$")
PIPELINE_EXECUTION_ENV = "ZENML_SAGEMAKER_RUN_ID"


def pipeline_execution_arn(environ: Mapping[str, str] | None = None) -> str | None:
    """The SageMaker pipeline execution this process runs in, or None (not a SageMaker pipeline step).

    ZenML's SageMaker orchestrator sets ``ZENML_SAGEMAKER_RUN_ID`` to the execution's ARN in every step's
    job; no Describe* answer of the step's own processing or training job carries it. Elsewhere the variable
    is absent (or, for a job run outside a pipeline, not a pipeline execution ARN): None.
    """
    value = (os.environ if environ is None else environ).get(PIPELINE_EXECUTION_ENV, "")
    return value if PIPELINE_EXECUTION_ARN.match(value) else None


class RegistryError(AwsError):
    """A registry operation that failed; nothing was left half-registered."""


def _print(message: str) -> None:
    print(message, flush=True)


def split_properties(metadata: Mapping[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    """(properties SageMaker can hold, everything else) from string-able metadata."""
    fitting: dict[str, str] = {}
    for key, value in metadata.items():
        text = "" if value is None else str(value)
        if _PROPERTY_KEY.match(key) and _PROPERTY.match(text) and len(fitting) < MAX_PROPERTIES - 1:
            fitting[key] = text
    rest = {k: "" if v is None else str(v) for k, v in metadata.items() if k not in fitting}
    return fitting, rest


class ModelPackageClient:
    def __init__(
        self,
        region: str,
        bucket: str,
        prefix: str,
        *,
        image_uri: str | None = None,
        instance_types: list[str] | None = None,
        profile: str | None = None,
        progress: Callable[[str], None] = _print,
    ):
        self.region, self.bucket, self.prefix, self.profile = region, bucket, prefix.strip("/"), profile
        self._image_uri = image_uri
        self.instance_types = instance_types or DEFAULT_INSTANCE_TYPES
        self.progress = progress

    @property
    def _sm(self):
        return client("sagemaker", self.region, self.profile)

    @property
    def image_uri(self) -> str:
        """Our serving image (``churn.image.resolve_image_uri``: the configured one, or the stack's ECR default)."""
        from churn.image import resolve_image_uri

        return resolve_image_uri(self._image_uri, self.region, self.profile)

    def _uri(self, *parts: str) -> str:
        return s3.join(f"s3://{self.bucket}", self.prefix, *parts)

    # -- groups ---------------------------------------------------------------------
    def describe_group(self, group: str) -> dict | None:
        try:
            return self._sm.describe_model_package_group(ModelPackageGroupName=group)
        except Exception as error:  # noqa: BLE001
            if error_code(error) == "ValidationException" and "does not exist" in str(error):
                return None
            raise RegistryError(str(explain(error, f"describing model package group '{group}'"))) from None

    def ensure_group(self, group: str, description: str | None = None) -> dict:
        existing = self.describe_group(group)
        if existing is not None:
            return existing
        self.progress(f"Creating model package group '{group}'")
        with aws_errors(f"creating model package group '{group}'", RegistryError):
            self._sm.create_model_package_group(
                ModelPackageGroupName=group,
                ModelPackageGroupDescription=(description or "churn-mlops models")[:1024],
                Tags=[{"Key": "managed-by", "Value": "churn-mlops"}],
            )
        return self.describe_group(group) or {"ModelPackageGroupName": group}

    def list_groups(self, name_contains: str | None = None) -> list[dict]:
        kwargs = {"NameContains": name_contains} if name_contains else {}
        with aws_errors("listing model package groups", RegistryError):
            return [
                g
                for page in self._sm.get_paginator("list_model_package_groups").paginate(**kwargs)
                for g in page["ModelPackageGroupSummaryList"]
            ]

    # -- register -------------------------------------------------------------------
    def register(
        self,
        group: str,
        bundle_uri: str,
        bundle_sha256: str,
        metadata: Mapping[str, Any],
        approval_status: str = "PendingManualApproval",
        description: str = "",
        evaluation: Mapping[str, Any] | None = None,
        generated_by: str | None = None,
    ) -> dict:
        """Package the bundle, upload it with its evaluation and metadata, create the package; all or nothing.

        Args:
            group: the model package group (created when missing).
            bundle_uri: where the bundle is.
            bundle_sha256: its sha256 (empty: not checked); the packaged bundle must have it.
            metadata: the version's lineage; ``metric_*`` keys are the evaluation when ``evaluation`` is None.
            approval_status: one of ``APPROVAL_STATUSES``.
            description: the package's description.
            evaluation: the metrics for evaluation.json.
            generated_by: MetadataProperties.GeneratedBy, the ARN of what produced the version (Studio links
                it); default ``pipeline_execution_arn()``, the SageMaker pipeline execution this step runs in.
                Left out when neither is known (e.g. the local orchestrator), never a non-ARN.

        Returns:
            DescribeModelPackage's answer for the new package.

        Raises:
            RegistryError: a bad approval status, ``generated_by`` is not an ARN, or an AWS call failed (what
                was written is removed again).
            BundleError: the bundle is not the one ``bundle_sha256`` names, or our image cannot serve it.
        """
        if approval_status not in APPROVAL_STATUSES:
            raise RegistryError(
                f"approval_status must be one of {', '.join(APPROVAL_STATUSES)}, got {approval_status!r}"
            )
        generated_by = generated_by or pipeline_execution_arn()
        if generated_by is not None and not (
            re.match(r"^arn:aws[a-z\-]*:", generated_by) and len(generated_by) <= 1024
        ):
            raise RegistryError(
                "generated_by must be an ARN of at most 1024 characters (Studio links "
                f"MetadataProperties.GeneratedBy), got {generated_by!r}"
            )
        self.ensure_group(group)
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        folder = self._uri("registry", group, f"{stamp}-{(bundle_sha256 or uuid.uuid4().hex)[:12]}")
        metrics = dict(
            evaluation or {k[len("metric_") :]: _number(v) for k, v in metadata.items() if k.startswith("metric_")}
        )
        uploaded: list[str] = []  # what to remove again when the registration fails
        arn = ""
        try:
            staged = self._stage(folder, bundle_uri, bundle_sha256, metadata, metrics, uploaded)
            arn = self._create_package(group, staged, approval_status, description, generated_by)
            package = self.describe_package(arn)
            registration = self._write_registration(
                folder, group, arn, package, staged, approval_status, stamp, uploaded
            )
        except BaseException as error:
            self._undo(arn, uploaded, error)
            if isinstance(error, AwsError) and not isinstance(error, RegistryError):
                raise RegistryError(str(error)) from None
            raise
        self.progress(f"Registered {group} version {registration['version']} ({approval_status}): {arn}")
        return package

    def _stage(
        self,
        folder: str,
        bundle_uri: str,
        bundle_sha256: str,
        metadata: Mapping[str, Any],
        metrics: dict[str, Any],
        uploaded: list[str],
    ) -> dict[str, Any]:
        """Upload model.tar.gz, the bundle, evaluation.json and metadata.json under ``folder`` (each into
        ``uploaded`` once written); the containers, URIs and properties the package is created with."""
        self.progress(f"Packaging bundle {bundle_uri} -> {folder}/model.tar.gz")
        packaged = packaging.package_and_upload(
            bundle_uri,
            s3.join(folder, "model.tar.gz"),
            self.region,
            bundle_sha256 or None,
            self.profile,
            s3.join(folder, "bundle"),
        )
        uploaded.extend(packaged["uploaded"])
        bundle_sha256 = str(packaged["bundle_sha256"])
        containers = packaging.serving_containers(
            packaged["info"],
            self.image_uri,
            packaged["model_data_url"],
            bundle_sha256,
            {"SAGEMAKER_REGION": self.region},
        )
        evaluation_uri = s3.upload_bytes(
            json.dumps(metrics, indent=2, sort_keys=True).encode(),
            s3.join(folder, "evaluation.json"),
            self.region,
            self.profile,
            "application/json",
        )
        uploaded.append(evaluation_uri)
        try:  # what Studio's model-quality view reads; none when the evaluation holds no metric
            quality = model_quality_document(metrics)
        except ValueError as error:
            self.progress(f"warning: no ModelQuality statistics: {error}")
            quality_uri = ""
        else:
            quality_uri = s3.upload_bytes(
                json.dumps(quality, indent=2).encode(),
                s3.join(folder, "model_quality.json"),
                self.region,
                self.profile,
                "application/json",
            )
            uploaded.append(quality_uri)
        document_uri = s3.join(folder, "metadata.json")
        full = {k: "" if v is None else str(v) for k, v in metadata.items()}
        full.update(
            bundle_sha256=bundle_sha256,
            bundle_source_uri=bundle_uri,
            bundle_uri=packaged["bundle_uri"],
            model_data_url=packaged["model_data_url"],
            evaluation_uri=evaluation_uri,
            model_quality_uri=quality_uri,
            serving_containers=" -> ".join(c["Image"].rsplit("/", 1)[-1] for c in containers),
        )
        s3.upload_bytes(
            json.dumps(full, indent=2, sort_keys=True).encode(),
            document_uri,
            self.region,
            self.profile,
            "application/json",
        )
        uploaded.append(document_uri)
        properties, _ = split_properties({**full, "metadata_document": document_uri})
        properties["metadata_document"] = document_uri
        return {
            "containers": containers,
            "bundle_sha256": bundle_sha256,
            "model_data_url": packaged["model_data_url"],
            "bundle_uri": packaged["bundle_uri"],
            "evaluation_uri": evaluation_uri,
            "model_quality_uri": quality_uri,
            "document_uri": document_uri,
            "properties": properties,
        }

    def _create_package(
        self, group: str, staged: Mapping[str, Any], approval_status: str, description: str, generated_by: str | None
    ) -> str:
        """CreateModelPackage from what ``_stage`` uploaded; the package's ARN."""
        quality = (
            {"ModelMetrics": {"ModelQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": uri}}}}
            if (uri := staged["model_quality_uri"])
            else {}
        )
        with aws_errors(f"creating a model package in '{group}'", RegistryError):
            return self._sm.create_model_package(
                ModelPackageGroupName=group,
                ModelPackageDescription=description[:1024],
                InferenceSpecification={
                    "Containers": staged["containers"],
                    "SupportedContentTypes": ["text/csv", "application/json"],
                    "SupportedResponseMIMETypes": ["text/csv", "application/json"],
                    "SupportedRealtimeInferenceInstanceTypes": self.instance_types,
                },
                **quality,
                ModelApprovalStatus=approval_status,
                CustomerMetadataProperties=staged["properties"],
                **({"MetadataProperties": {"GeneratedBy": generated_by}} if generated_by else {}),
                Domain="MACHINE_LEARNING",
                Task="CLASSIFICATION",
                ClientToken=uuid.uuid4().hex[:32],
            )["ModelPackageArn"]

    def _write_registration(
        self,
        folder: str,
        group: str,
        arn: str,
        package: Mapping[str, Any],
        staged: Mapping[str, Any],
        approval_status: str,
        stamp: str,
        uploaded: list[str],
    ) -> dict[str, str]:
        """registration.json (the spec's file) in ``folder`` and as the group-wide latest; the record."""
        registration = {
            "model_package_arn": arn,
            "model_package_group": group,
            "version": str(package.get("ModelPackageVersion")),
            "approval_status": approval_status,
            "model_data_url": staged["model_data_url"],
            "bundle_uri": staged["bundle_uri"],
            "evaluation_uri": staged["evaluation_uri"],
            "metadata_document": staged["document_uri"],
            "registered_at": stamp,
            "bundle_sha256": staged["bundle_sha256"],
        }
        for uri in (s3.join(folder, "registration.json"), self._uri("registration", "registration.json")):
            s3.upload_bytes(
                json.dumps(registration, indent=2).encode(), uri, self.region, self.profile, "application/json"
            )
            if uri.startswith(folder):
                uploaded.append(uri)
        return registration

    def _undo(self, arn: str, uploaded: list[str], error: BaseException) -> None:
        """After a failed registration: withdraw a created package, delete what was uploaded (never raises)."""
        if arn:  # created, but what follows failed: withdraw the package, so nothing is half-registered
            self.withdraw(arn, f"registration did not complete: {type(error).__name__}")
        for uri in uploaded:
            try:
                bucket, key = s3.parse_s3_uri(uri)
                client("s3", self.region, self.profile).delete_object(Bucket=bucket, Key=key)
            except Exception:  # noqa: BLE001 - the registration error is what matters
                pass

    # -- read -----------------------------------------------------------------------
    def describe_package(self, arn: str) -> dict:
        try:
            return self._sm.describe_model_package(ModelPackageName=arn)
        except Exception as error:  # noqa: BLE001
            if error_code(error) == "ValidationException" and "not found" in str(error).lower():
                raise KeyError(f"model package {arn} does not exist") from None
            raise RegistryError(str(explain(error, f"describing model package {arn}"))) from None

    def list_packages(
        self, group: str, status: str | None = None, newest_first: bool = True, limit: int | None = None
    ) -> list[dict]:
        """Package summaries of ``group`` (optionally only one approval status), newest first."""
        if self.describe_group(group) is None:
            raise KeyError(f"model package group '{group}' does not exist in {self.region}")
        kwargs: dict[str, Any] = {
            "ModelPackageGroupName": group,
            "SortBy": "CreationTime",
            "SortOrder": "Descending" if newest_first else "Ascending",
        }
        if status:
            kwargs["ModelApprovalStatus"] = status
        out: list[dict] = []
        with aws_errors(f"listing model packages in '{group}'", RegistryError):
            for page in self._sm.get_paginator("list_model_packages").paginate(**kwargs):
                out.extend(page["ModelPackageSummaryList"])
                if limit and len(out) >= limit:
                    return out[:limit]
        return out

    def get_package(self, group: str, version: str | int) -> dict:
        for summary in self.list_packages(group):
            if str(summary.get("ModelPackageVersion")) == str(version):
                return self.describe_package(summary["ModelPackageArn"])
        raise KeyError(f"model package group '{group}' has no version {version}")

    def latest_approved(self, group: str) -> dict | None:
        try:
            newest = self.list_packages(group, status="Approved", limit=1)
        except KeyError:
            return None
        return self.describe_package(newest[0]["ModelPackageArn"]) if newest else None

    def metadata(self, package: Mapping[str, Any], resolve: bool = True) -> dict[str, str]:
        """The version's lineage: its properties, completed from metadata.json when ``resolve``."""
        properties = dict(package.get("CustomerMetadataProperties") or {})
        document = properties.get("metadata_document")
        if resolve and document:
            try:
                properties = {**json.loads(s3.read_bytes(document, self.region, self.profile)), **properties}
            except AwsError as error:
                self.progress(f"warning: could not read {document}: {error}")
        return properties

    # -- update / delete ------------------------------------------------------------
    def set_status(self, arn: str, status: str, description: str | None = None) -> dict:
        if status not in APPROVAL_STATUSES:
            raise RegistryError(f"approval status must be one of {', '.join(APPROVAL_STATUSES)}, got {status!r}")
        kwargs = {"ModelPackageArn": arn, "ModelApprovalStatus": status}
        if description:
            kwargs["ApprovalDescription"] = description[:1024]
        with aws_errors(f"setting {arn} to {status}", RegistryError):
            self._sm.update_model_package(**kwargs)
        self._record_status(arn, status)
        return self.describe_package(arn)

    def _record_status(self, arn: str, status: str) -> None:
        """Keep the registration records (registration.json, the spec's file) in step with the live status."""
        latest = self._uri("registration", "registration.json")
        try:
            record = json.loads(s3.read_bytes(latest, self.region, self.profile))
        except (AwsError, ValueError):
            return
        if record.get("model_package_arn") != arn or record.get("approval_status") == status:
            return
        record["approval_status"] = status
        body = json.dumps(record, indent=2).encode()
        folder_copy = str(record.get("metadata_document", "")).rsplit("/", 1)[0] + "/registration.json"
        for uri in (folder_copy, latest):
            try:
                s3.upload_bytes(body, uri, self.region, self.profile, "application/json")
            except AwsError as error:
                self.progress(f"warning: could not update {uri} to {status}: {error}")

    def update_properties(self, arn: str, properties: Mapping[str, str], remove: list[str] | None = None) -> dict:
        kwargs: dict[str, Any] = {"ModelPackageArn": arn}
        fitting, _ = split_properties(properties)
        if fitting:
            kwargs["CustomerMetadataProperties"] = fitting
        if remove:
            kwargs["CustomerMetadataPropertiesToRemove"] = list(remove)
        with aws_errors(f"updating {arn}", RegistryError):
            self._sm.update_model_package(**kwargs)
        return self.describe_package(arn)

    def delete_package(self, arn: str) -> None:
        with aws_errors(f"deleting model package {arn}", RegistryError):
            self._sm.delete_model_package(ModelPackageName=arn)

    def withdraw(self, arn: str, reason: str) -> str:
        """Remove a package whose registration failed; if it cannot be deleted, reject it.

        Returns what was done ("deleted", "rejected" or "left pending"); never raises, so
        the registration's own error is what surfaces.
        """
        try:
            self.delete_package(arn)
            self.progress(f"Withdrew {arn}: deleted ({reason})")
            return "deleted"
        except Exception as error:  # noqa: BLE001
            self.progress(f"warning: could not delete {arn} ({error}); rejecting it instead")
        try:
            self.set_status(arn, "Rejected", reason)
            return "rejected"
        except Exception as error:  # noqa: BLE001
            self.progress(
                f"warning: could not reject {arn} either ({error}); it is not Approved unless it was "
                "registered so: check it with `aws sagemaker describe-model-package`"
            )
            return "left pending"

    def delete_group(self, group: str) -> list[str]:
        """Delete every package in ``group``, then the group; returns what was removed."""
        removed = []
        try:
            packages = self.list_packages(group)
        except KeyError:
            return removed
        for summary in packages:
            self.delete_package(summary["ModelPackageArn"])
            removed.append(summary["ModelPackageArn"])
        with aws_errors(f"deleting model package group '{group}'", RegistryError):
            self._sm.delete_model_package_group(ModelPackageGroupName=group)
        removed.append(f"model package group {group}")
        return removed


def _number(value: Any) -> Any:
    try:
        return float(value)
    except (TypeError, ValueError):
        return value
