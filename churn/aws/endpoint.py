"""SageMaker endpoints: status, deploy, invoke, list, delete.

``deploy`` runs the phases in ``churn.aws.deployment`` (model + endpoint config under one unique
name, create or update, wait, roll back a failed update to the previous config, autoscaling,
prune); ``churn.aws.autoscaling`` configures Application Auto Scaling. The model is created from
the registered model package (``PrimaryContainer.ModelPackageName``) when an Approved package holds
the bundle, so Studio lists the deployment under that version; SageMaker then runs the package's
containers (``churn.aws.packaging.serving_containers``: one for a bundle that scores in process, a
serial inference pipeline for an Autopilot bundle), with the Environment registered in them.
Otherwise the containers are given directly (the bundle packaged by the deployer).

Length: one API family (SageMaker endpoints: status, deploy entry, invoke, list, delete) wrapped by
one class; the deploy phases live in ``churn.aws.deployment``.
"""

from __future__ import annotations

import builtins
import logging
import re
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from churn.aws import packaging, s3
from churn.aws.athena import Polling
from churn.aws.autoscaling import BURSTABLE, EndpointAutoscaling
from churn.aws.clients import aws_errors, client, error_code, explain
from churn.aws.registry import ModelPackageClient, RegistryError
from churn.config import DeploySettings
from churn.deployment_error import DeploymentError  # the one class (stacks.contracts re-exports it)

log = logging.getLogger(__name__)
TRANSITIONAL = ("Creating", "Updating", "SystemUpdating", "RollingBack", "Deleting")


@dataclass
class EndpointSettings:
    """Where and as whom endpoints are created (account level). How one endpoint is served
    (instance type, autoscaling) is the pipeline's ``DeploySettings``, passed to ``deploy``."""

    region: str
    role_arn: str
    bucket: str
    prefix: str = "mlops/classification_model"
    scale_in_cooldown: int = 300
    scale_out_cooldown: int = 60
    image_uri: str | None = None  # None: churn.image's default (the stack's ECR repository)
    polling: Polling = field(default_factory=lambda: Polling(initial=5.0, factor=1.5, maximum=30.0, timeout=1800.0))
    keep_previous: int = 1
    profile: str | None = None


def model_layout(artifact: Mapping[str, Any]) -> dict[str, Any]:
    """CreateModel's container arguments for a ``serving_artifact``: the model package when
    ``artifact["from_package"]`` (SageMaker runs all its containers, in series when several, with their
    registered Environment), else the containers: one when the bundle serves itself, several as a serial
    inference pipeline (an Autopilot bundle).

    Args:
        artifact: what ``SageMakerEndpoints.serving_artifact`` returned.

    Returns:
        ``PrimaryContainer`` or ``Containers`` with ``InferenceExecutionConfig``.
    """
    containers = artifact["containers"]
    if artifact.get("from_package"):
        return {"PrimaryContainer": {"ModelPackageName": artifact["model_package_arn"]}}
    if len(containers) == 1:
        return {"PrimaryContainer": containers[0]}
    return {"Containers": containers, "InferenceExecutionConfig": {"Mode": "Serial"}}


@dataclass
class InvocationResponse:
    """What ``invoke`` returns: the same shape as a ``requests`` response for our callers."""

    status_code: int
    text: str
    headers: dict[str, str]


def check_instance_type(instance_type: str) -> None:
    """Refuse an instance type SageMaker real-time endpoints do not offer, before creating anything."""
    import botocore
    import botocore.session

    offered = (
        botocore.session.get_session().get_service_model("sagemaker").shape_for("ProductionVariantInstanceType").enum
    )
    if instance_type not in offered:
        burstable = ", ".join(t for t in offered if BURSTABLE.match(t))
        raise DeploymentError(
            f"{instance_type} is not an instance type SageMaker real-time endpoints offer (botocore "
            f"{botocore.__version__}); use e.g. ml.m5.xlarge (autoscaling) or a burstable one ({burstable}, "
            "no autoscaling)"
        )


def unique_name(endpoint_name: str, version: str) -> str:
    stamp = time.strftime("%y%m%d%H%M%S", time.gmtime())
    return f"{endpoint_name[:34].rstrip('-')}-v{str(version)[:6]}-{stamp}-{uuid.uuid4().hex[:4]}"


def _name_pattern(endpoint_name: str) -> re.Pattern:
    return re.compile(rf"^{re.escape(endpoint_name[:34].rstrip('-'))}-v\w+-\d{{12}}-[0-9a-f]{{4}}$")


def _print(message: str) -> None:
    print(message, flush=True)


def tag_list(values: Mapping[str, Any]) -> list[dict[str, str]]:
    """SageMaker Tags from ``values``: empty values left out, characters SageMaker refuses replaced by ``_``."""
    clean = re.compile(r"[^A-Za-z0-9 _.:/=+\-@]")
    return [{"Key": k, "Value": clean.sub("_", str(v))[:256]} for k, v in values.items() if v not in (None, "")]


class SageMakerEndpoints:
    """One region's SageMaker real-time endpoints that we create: status, deploy, invoke, list, delete."""

    def __init__(self, settings: EndpointSettings, progress: Callable[[str], None] = _print):
        self.settings = settings
        self.progress = progress

    @property
    def _sm(self):
        return client("sagemaker", self.settings.region, self.settings.profile)

    @property
    def autoscaling(self) -> EndpointAutoscaling:
        s = self.settings
        return EndpointAutoscaling(
            s.region,
            s.profile,
            scale_in_cooldown=s.scale_in_cooldown,
            scale_out_cooldown=s.scale_out_cooldown,
            error_class=DeploymentError,
            progress=self.progress,
        )

    @property
    def registry(self) -> ModelPackageClient:
        s = self.settings
        return ModelPackageClient(
            s.region, s.bucket, s.prefix, image_uri=s.image_uri, profile=s.profile, progress=self.progress
        )

    def runtime_url(self, endpoint_name: str) -> str:
        domain = "amazonaws.com.cn" if self.settings.region.startswith("cn-") else "amazonaws.com"
        return f"https://runtime.sagemaker.{self.settings.region}.{domain}/endpoints/{endpoint_name}/invocations"

    def console_url(self, endpoint_name: str) -> str:
        region = self.settings.region
        return f"https://{region}.console.aws.amazon.com/sagemaker/home?region={region}#/endpoints/{endpoint_name}"

    # -- status ---------------------------------------------------------------------
    def describe(self, endpoint_name: str) -> dict | None:
        try:
            return self._sm.describe_endpoint(EndpointName=endpoint_name)
        except Exception as error:  # noqa: BLE001
            if error_code(error) == "ValidationException" and "could not find" in str(error).lower():
                return None
            raise DeploymentError(str(explain(error, f"describing endpoint '{endpoint_name}'"))) from None

    def wait(self, endpoint_name: str, what: str, gone: bool = False) -> dict | None:
        """Poll until the endpoint leaves the transitional states (or is gone); bounded by the timeout."""
        started, status = time.monotonic(), None
        for wait in self.settings.polling.waits():
            status = self.describe(endpoint_name)
            if status is None:
                if gone:
                    return None
                raise DeploymentError(f"endpoint '{endpoint_name}' disappeared while {what}")
            if status["EndpointStatus"] not in TRANSITIONAL and not gone:
                self.progress(
                    f"Endpoint '{endpoint_name}' is {status['EndpointStatus']} "
                    f"({time.monotonic() - started:.0f}s {what})"
                )
                return status
            time.sleep(wait)
        state = status["EndpointStatus"] if status else "unknown"
        raise DeploymentError(
            f"endpoint '{endpoint_name}' was still {state} after {self.settings.polling.timeout:.0f}s {what}"
        )

    # -- deploy ---------------------------------------------------------------------
    def serving_artifact(self, endpoint_name: str, model_name: str, version: str, bundle_uri: str, sha256: str) -> dict:
        """The registered model package's containers when it holds this bundle; else package the bundle.

        Args:
            endpoint_name: names the S3 folder a packaged bundle goes to (``endpoints/<name>/``).
            model_name: the registered model (model package group).
            version: its version.
            bundle_uri: where the bundle is.
            sha256: the bundle's sha256.

        Returns:
            ``containers`` (to serve, in order), ``model_data_url``, ``model_package_arn`` (None when packaged)
            and ``from_package``: whether the model is created from the package (an Approved one holding the
            bundle; its containers carry the bundle's sha256 in their Environment, see ``churn.aws.registry``).

        Raises:
            BundleError: the bundle is not the registered one or cannot be served by our image.
        """
        try:
            package = self.registry.get_package(model_name, version)
        except (KeyError, RegistryError):
            package = None
        if package is not None:
            properties = package.get("CustomerMetadataProperties") or {}
            if properties.get("bundle_sha256") == sha256:
                containers = [
                    {k: c[k] for k in ("Image", "ModelDataUrl", "Environment") if c.get(k)}
                    for c in package["InferenceSpecification"]["Containers"]
                ]
                status = package.get("ModelApprovalStatus")
                if status != "Approved":
                    self.progress(
                        f"warning: model package {model_name} v{version} is {status}; SageMaker creates models "
                        "only from Approved versions, so its containers are served as copies (Studio does not "
                        "list this deployment under the version)"
                    )
                return {
                    "containers": containers,
                    "model_data_url": containers[0].get("ModelDataUrl", ""),
                    "model_package_arn": package["ModelPackageArn"],
                    "from_package": status == "Approved",
                }
            self.progress(
                f"warning: model package {model_name} v{version} holds bundle "
                f"{properties.get('bundle_sha256', '?')[:12]}, not {sha256[:12]}; packaging the bundle itself"
            )
        destination = s3.join(
            f"s3://{self.settings.bucket}",
            self.settings.prefix,
            "endpoints",
            endpoint_name,
            sha256[:16],
            "model.tar.gz",
        )
        packaged = packaging.package_and_upload(
            bundle_uri, destination, self.settings.region, sha256, self.settings.profile
        )
        containers = packaging.serving_containers(
            packaged["info"],
            self.registry.image_uri,
            packaged["model_data_url"],
            str(packaged["bundle_sha256"]),
            {"SAGEMAKER_REGION": self.settings.region},
        )
        return {
            "containers": containers,
            "model_data_url": packaged["model_data_url"],
            "model_package_arn": None,
            "from_package": False,
        }

    def deploy(
        self,
        endpoint_name: str,
        model_name: str,
        version: str,
        bundle_uri: str,
        sha256: str,
        metadata: Mapping[str, Any] | None = None,
        settings: DeploySettings | None = None,
    ) -> dict[str, Any]:
        """Serve ``model_name`` ``version`` at ``endpoint_name`` as ``settings`` say (the pipeline's deploy keys).

        The phases are ``churn.aws.deployment.EndpointDeployment``'s. A failure before the endpoint serves the
        new config removes the new model and config; a failed update leaves the previous config serving.

        Args:
            endpoint_name: the endpoint to create or update.
            model_name: the registered model's name.
            version: its version.
            bundle_uri: where its bundle is (packaged when no registered package holds it).
            sha256: the bundle's sha256, checked before anything is served.
            metadata: extra tags for the model and endpoint config.
            settings: instance type, count and autoscaling; default ``DeploySettings()``.

        Returns:
            The deployment's record: endpoint name, URLs and ARN, new and previous config, model, autoscaling.

        Raises:
            DeploymentError: nothing new serves; the message says why and what serves instead.
        """
        from churn.aws.deployment import EndpointDeployment  # it builds on this module

        deployment = EndpointDeployment(self, endpoint_name, model_name, version, sha256, settings or DeploySettings())
        return deployment.run(bundle_uri, metadata)

    def delete_endpoint_and_wait(self, endpoint_name: str) -> None:
        """DeleteEndpoint, then wait until it is gone."""
        with aws_errors(f"deleting endpoint '{endpoint_name}'", DeploymentError):
            self._sm.delete_endpoint(EndpointName=endpoint_name)
        self.wait(endpoint_name, "deleting", gone=True)

    def delete_config_and_model(self, name: str) -> builtins.list[str]:
        """Delete endpoint config and model ``name`` (already gone is fine); what was removed."""
        removed = []
        for kind, call, key in (
            ("endpoint config", self._sm.delete_endpoint_config, "EndpointConfigName"),
            ("model", self._sm.delete_model, "ModelName"),
        ):
            try:
                call(**{key: name})
                removed.append(f"{kind} {name}")
            except Exception as error:  # noqa: BLE001 - already gone is fine
                if "could not find" not in str(error).lower():
                    log.warning("could not delete %s %s: %s", kind, name, explain(error, "cleanup"))
        return removed

    def own_configs(self, endpoint_name: str) -> builtins.list[dict]:
        """The endpoint configs we created for ``endpoint_name`` (by name pattern), newest first."""
        pattern = _name_pattern(endpoint_name)
        with aws_errors(f"listing endpoint configs of '{endpoint_name}'", DeploymentError):
            configs = [
                c
                for page in self._sm.get_paginator("list_endpoint_configs").paginate(
                    NameContains=endpoint_name[:34].rstrip("-"), SortBy="CreationTime", SortOrder="Descending"
                )
                for c in page["EndpointConfigs"]
            ]
        return [c for c in configs if pattern.match(c["EndpointConfigName"])]

    # -- use / inspect / delete -----------------------------------------------------
    def invoke(
        self,
        endpoint_name: str,
        body: bytes,
        content_type: str = "text/csv",
        accept: str = "text/csv",
        probabilities: bool = False,
    ) -> InvocationResponse:
        runtime = client("sagemaker-runtime", self.settings.region, self.settings.profile)
        kwargs: dict[str, Any] = {
            "EndpointName": endpoint_name,
            "Body": body,
            "ContentType": content_type,
            "Accept": "application/json" if probabilities else accept,
        }
        if probabilities:
            kwargs["CustomAttributes"] = "probabilities=true"
        try:
            response = runtime.invoke_endpoint(**kwargs)
        except Exception as error:  # noqa: BLE001
            if error_code(error) == "ModelError":
                details = error.response  # type: ignore[attr-defined]
                return InvocationResponse(
                    int(details.get("OriginalStatusCode", 400)), details.get("OriginalMessage", str(error)), {}
                )
            if error_code(error) == "ValidationError" or error_code(error) == "ValidationException":
                raise DeploymentError(
                    f"endpoint '{endpoint_name}' cannot be invoked in {self.settings.region}: "
                    f"{explain(error, 'InvokeEndpoint')}; run the training pipeline to deploy it"
                ) from None
            raise DeploymentError(str(explain(error, f"invoking endpoint '{endpoint_name}'"))) from None
        headers = {"Content-Type": response.get("ContentType", "")}
        if response.get("CustomAttributes"):
            headers["X-Amzn-SageMaker-Custom-Attributes"] = response["CustomAttributes"]
        return InvocationResponse(200, response["Body"].read().decode("utf-8"), headers)

    def list(self) -> builtins.list[dict[str, Any]]:
        """Endpoints that serve a config we created, with what they serve.

        An endpoint that cannot be read (its DescribeEndpoint, DescribeEndpointConfig or ListTags fails:
        throttled, expired credentials) is listed with ``status`` ``"Unknown"`` and the reason in ``error``,
        the others as usual; one we may not read (AccessDenied: not ours) or that went meanwhile is left out.

        Returns:
            One dict per endpoint: ``endpoint_name``, ``running``, ``status``, ``url``, ``endpoint_config_name``,
            ``model_name``, ``version``, ``sha256`` (``"?"``/empty when unknown) and, when it could not be read,
            ``error``.

        Raises:
            DeploymentError: ListEndpoints itself failed.
        """
        out = []
        with aws_errors("listing endpoints", DeploymentError):
            endpoints = [e for page in self._sm.get_paginator("list_endpoints").paginate() for e in page["Endpoints"]]
        for summary in endpoints:
            name = summary["EndpointName"]
            try:
                status = self.describe(name)
                if status is None:
                    continue
                config = self._sm.describe_endpoint_config(EndpointConfigName=status["EndpointConfigName"])
                tags = {
                    t["Key"]: t["Value"] for t in self._sm.list_tags(ResourceArn=config["EndpointConfigArn"])["Tags"]
                }
            except Exception as error:  # noqa: BLE001 - reported for this endpoint; the others are still listed
                if "AccessDenied" in str(error) or "could not find" in str(error).lower():
                    continue  # not ours (no permission) or gone meanwhile
                reason = error if isinstance(error, DeploymentError) else explain(error, f"reading endpoint '{name}'")
                out.append(self._entry(name, {"EndpointStatus": "Unknown"}, {}) | {"error": str(reason)})
                continue
            if tags.get("churn:endpoint") == name:
                out.append(self._entry(name, status, tags))
        return out

    def _entry(self, name: str, status: Mapping[str, Any], tags: Mapping[str, str]) -> dict[str, Any]:
        return {
            "endpoint_name": name,
            "running": status["EndpointStatus"] == "InService",
            "status": status["EndpointStatus"],
            "url": self.runtime_url(name),
            "endpoint_config_name": status.get("EndpointConfigName", ""),
            "model_name": tags.get("churn:model-name", "?"),
            "version": tags.get("churn:model-version", "?"),
            "sha256": tags.get("churn:bundle-sha256", ""),
        }

    def delete(self, endpoint_name: str) -> builtins.list[str]:
        """Remove the endpoint, its autoscaling, and every endpoint config/model we created for it."""
        removed = []
        if self.autoscaling.deregister(endpoint_name):
            removed.append(f"autoscaling target of {endpoint_name}")
        if self.describe(endpoint_name) is not None:
            self.delete_endpoint_and_wait(endpoint_name)
            removed.append(f"endpoint {endpoint_name}")
        for config in self.own_configs(endpoint_name):
            removed.extend(self.delete_config_and_model(config["EndpointConfigName"]))
        return removed
