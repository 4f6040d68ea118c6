"""SageMaker endpoints: create or update, wait, roll back, autoscale, invoke, delete.

A deployment creates a model and an endpoint config with one unique name
(``<endpoint>-v<version>-<time>-<rand>``), then creates the endpoint or points it at the
new config, and polls (with backoff, bounded) until it settles. An update that does
not end InService on the new config is rolled back to the previous endpoint config
(UpdateEndpoint, or delete + create when SageMaker refuses to update a Failed endpoint)
and the deployment fails with a DeploymentError naming the reason; the new model and
config are removed, so nothing half-deployed is left behind.

The model's containers are the registered package's (``churn.aws.packaging.serving_containers``):
one for a bundle that scores in process, a serial inference pipeline for an Autopilot bundle.

Autoscaling (Application Auto Scaling, target tracking on
SageMakerVariantInvocationsPerInstance) is configured only for non-burstable instance
types; t2/t3/t3a/t4g are skipped with a logged reason, as the spec requires.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from churn.aws import packaging, s3
from churn.aws.athena import Polling
from churn.aws.clients import AwsError, aws_errors, client, error_code, explain
from churn.aws.registry import RegistryError, ModelPackageClient
from churn.bundle import BundleError
from churn.config import DeploySettings

log = logging.getLogger(__name__)
VARIANT = "AllTraffic"
BURSTABLE = re.compile(r"^ml\.(t2|t3|t3a|t4g)\.")
TRANSITIONAL = ("Creating", "Updating", "SystemUpdating", "RollingBack", "Deleting")
SCALABLE_DIMENSION = "sagemaker:variant:DesiredInstanceCount"


class DeploymentError(AwsError):
    """A deployment that did not happen; the previous endpoint config (if any) is still serving."""


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
    image_uri: Optional[str] = None   # None: churn.image's default (the stack's ECR repository)
    polling: Polling = field(default_factory=lambda: Polling(initial=5.0, factor=1.5, maximum=30.0, timeout=1800.0))
    keep_previous: int = 1
    profile: Optional[str] = None


@dataclass
class InvocationResponse:
    """What ``invoke`` returns: the same shape as a ``requests`` response for our callers."""

    status_code: int
    text: str
    headers: Dict[str, str]


def autoscaling_decision(instance_type: str, enabled: bool) -> Tuple[bool, str]:
    """(configure autoscaling?, why) for an instance type."""
    if not enabled:
        return False, "autoscaling is disabled in config (enable_autoscaling: false)"
    if BURSTABLE.match(instance_type):
        return False, (f"autoscaling skipped: {instance_type} is a burstable instance type (t2/t3/t3a/t4g), "
                       "which SageMaker endpoint autoscaling does not support; use e.g. ml.m5.xlarge to autoscale")
    return True, f"autoscaling configured for {instance_type}"


def check_instance_type(instance_type: str) -> None:
    """Refuse an instance type SageMaker real-time endpoints do not offer, before creating anything."""
    import botocore
    import botocore.session

    offered = botocore.session.get_session().get_service_model("sagemaker").shape_for(
        "ProductionVariantInstanceType").enum
    if instance_type not in offered:
        burstable = ", ".join(t for t in offered if BURSTABLE.match(t))
        raise DeploymentError(
            f"{instance_type} is not an instance type SageMaker real-time endpoints offer (botocore "
            f"{botocore.__version__}); use e.g. ml.m5.xlarge (autoscaling) or a burstable one ({burstable}, "
            "no autoscaling)")


def unique_name(endpoint_name: str, version: str) -> str:
    stamp = time.strftime("%y%m%d%H%M%S", time.gmtime())
    return f"{endpoint_name[:34].rstrip('-')}-v{str(version)[:6]}-{stamp}-{uuid.uuid4().hex[:4]}"


def _name_pattern(endpoint_name: str) -> re.Pattern:
    return re.compile(rf"^{re.escape(endpoint_name[:34].rstrip('-'))}-v\w+-\d{{12}}-[0-9a-f]{{4}}$")


def _print(message: str) -> None:
    print(message, flush=True)


def _tags(values: Mapping[str, Any]) -> List[Dict[str, str]]:
    clean = re.compile(r"[^A-Za-z0-9 _.:/=+\-@]")
    return [{"Key": k, "Value": clean.sub("_", str(v))[:256]} for k, v in values.items() if v not in (None, "")]


class SageMakerEndpoints:
    def __init__(self, settings: EndpointSettings, progress: Callable[[str], None] = _print):
        self.settings = settings
        self.progress = progress

    @property
    def _sm(self):
        return client("sagemaker", self.settings.region, self.settings.profile)

    @property
    def _scaling(self):
        return client("application-autoscaling", self.settings.region, self.settings.profile)

    @property
    def registry(self) -> ModelPackageClient:
        s = self.settings
        return ModelPackageClient(s.region, s.bucket, s.prefix, image_uri=s.image_uri, profile=s.profile,
                                  progress=self.progress)

    def runtime_url(self, endpoint_name: str) -> str:
        domain = "amazonaws.com.cn" if self.settings.region.startswith("cn-") else "amazonaws.com"
        return f"https://runtime.sagemaker.{self.settings.region}.{domain}/endpoints/{endpoint_name}/invocations"

    def console_url(self, endpoint_name: str) -> str:
        region = self.settings.region
        return f"https://{region}.console.aws.amazon.com/sagemaker/home?region={region}#/endpoints/{endpoint_name}"

    # -- status ---------------------------------------------------------------------
    def describe(self, endpoint_name: str) -> Optional[dict]:
        try:
            return self._sm.describe_endpoint(EndpointName=endpoint_name)
        except Exception as error:  # noqa: BLE001
            if error_code(error) == "ValidationException" and "could not find" in str(error).lower():
                return None
            raise DeploymentError(str(explain(error, f"describing endpoint '{endpoint_name}'"))) from None

    def wait(self, endpoint_name: str, what: str, gone: bool = False) -> Optional[dict]:
        """Poll until the endpoint leaves the transitional states (or is gone); bounded by the timeout."""
        started, status = time.monotonic(), None
        for wait in self.settings.polling.waits():
            status = self.describe(endpoint_name)
            if status is None:
                if gone:
                    return None
                raise DeploymentError(f"endpoint '{endpoint_name}' disappeared while {what}")
            if status["EndpointStatus"] not in TRANSITIONAL and not gone:
                self.progress(f"Endpoint '{endpoint_name}' is {status['EndpointStatus']} "
                              f"({time.monotonic() - started:.0f}s {what})")
                return status
            time.sleep(wait)
        state = status["EndpointStatus"] if status else "unknown"
        raise DeploymentError(f"endpoint '{endpoint_name}' was still {state} after "
                              f"{self.settings.polling.timeout:.0f}s {what}")

    # -- deploy ---------------------------------------------------------------------
    def _artifact(self, endpoint_name: str, model_name: str, version: str, bundle_uri: str, sha256: str) -> dict:
        """The registered model package's containers when it holds this bundle; else package the bundle."""
        try:
            package = self.registry.get_package(model_name, version)
        except (KeyError, RegistryError):
            package = None
        if package is not None:
            properties = package.get("CustomerMetadataProperties") or {}
            if properties.get("bundle_sha256") == sha256:
                containers = [{k: c[k] for k in ("Image", "ModelDataUrl", "Environment") if c.get(k)}
                              for c in package["InferenceSpecification"]["Containers"]]
                return {"containers": containers, "model_data_url": containers[0].get("ModelDataUrl", ""),
                        "model_package_arn": package["ModelPackageArn"]}
            self.progress(f"warning: model package {model_name} v{version} holds bundle "
                          f"{properties.get('bundle_sha256', '?')[:12]}, not {sha256[:12]}; packaging the bundle itself")
        destination = s3.join(f"s3://{self.settings.bucket}", self.settings.prefix, "endpoints", endpoint_name,
                              sha256[:16], "model.tar.gz")
        packaged = packaging.package_and_upload(bundle_uri, destination, self.settings.region, sha256, self.settings.profile)
        containers = packaging.serving_containers(packaged["info"], self.registry.image_uri, packaged["model_data_url"],
                                                  str(packaged["bundle_sha256"]), {"SAGEMAKER_REGION": self.settings.region})
        return {"containers": containers, "model_data_url": packaged["model_data_url"], "model_package_arn": None}

    def deploy(self, endpoint_name: str, model_name: str, version: str, bundle_uri: str, sha256: str,
               metadata: Optional[Mapping[str, Any]] = None, settings: Optional[DeploySettings] = None) -> Dict[str, Any]:
        """Serve ``model_name`` ``version`` at ``endpoint_name`` as ``settings`` say (the pipeline's deploy keys).

        Phases: check, model + endpoint config, endpoint create/update, wait (rolling back a
        failed update), autoscaling, prune. A failure before the endpoint serves the new config
        removes the new model and config.
        """
        settings = settings or DeploySettings()
        version = str(version)
        check_instance_type(settings.inference_instance_type)
        artifact = self._artifact_or_refuse(endpoint_name, model_name, version, bundle_uri, sha256)
        name = unique_name(endpoint_name, version)
        tags = _tags({"managed-by": "churn-mlops", "churn:endpoint": endpoint_name, "churn:model-name": model_name,
                      "churn:model-version": version, "churn:bundle-sha256": sha256,
                      "churn:model-package-arn": artifact["model_package_arn"], **(metadata or {})})
        self._create_model(name, artifact["containers"], tags, settings)
        previous: Optional[str] = None
        try:
            self._create_endpoint_config(name, tags, settings)
            current = self._ready_for_change(endpoint_name)
            previous, scaling_removed = self._switch(endpoint_name, name, current, settings)
            final = self._await_serving(endpoint_name, name, previous, scaling_removed, f"{model_name} v{version}", settings)
        except BaseException:
            self._discard_unused(endpoint_name, name)
            raise
        autoscaling = self.configure_autoscaling(endpoint_name, settings)
        self._prune(endpoint_name, keep={name, previous} if self.settings.keep_previous else {name})
        return {"endpoint_name": endpoint_name, "url": self.console_url(endpoint_name),
                "invocations_url": self.runtime_url(endpoint_name), "endpoint_arn": final["EndpointArn"],
                "endpoint_config_name": name, "sagemaker_model_name": name, "previous_endpoint_config": previous or "",
                "model_name": model_name, "version": version, "sha256": sha256,
                "model_data_url": artifact["model_data_url"], "model_package_arn": artifact["model_package_arn"] or "",
                "containers": [c["Image"] for c in artifact["containers"]],
                "instance_type": settings.inference_instance_type, "autoscaling": autoscaling}

    def _artifact_or_refuse(self, endpoint_name: str, model_name: str, version: str, bundle_uri: str,
                            sha256: str) -> dict:
        try:
            return self._artifact(endpoint_name, model_name, version, bundle_uri, sha256)
        except BundleError as error:
            raise DeploymentError(f"{model_name} v{version} was not deployed: {error}") from None

    def _create_model(self, name: str, containers: List[dict], tags: List[Dict[str, str]],
                      settings: DeploySettings) -> None:
        """One container: the bundle serves itself; several: a serial inference pipeline (an Autopilot bundle)."""
        layout = ({"PrimaryContainer": containers[0]} if len(containers) == 1 else
                  {"Containers": containers, "InferenceExecutionConfig": {"Mode": "Serial"}})
        self.progress(f"Creating model and endpoint config '{name}' ({settings.inference_instance_type} "
                      f"x{settings.initial_instance_count}"
                      f"{f', {len(containers)} containers in series' if len(containers) > 1 else ''})")
        with aws_errors(f"creating SageMaker model '{name}'", DeploymentError):
            self._sm.create_model(ModelName=name, ExecutionRoleArn=self.settings.role_arn, Tags=tags, **layout)

    def _create_endpoint_config(self, name: str, tags: List[Dict[str, str]], settings: DeploySettings) -> None:
        with aws_errors(f"creating endpoint config '{name}'", DeploymentError):
            self._sm.create_endpoint_config(EndpointConfigName=name, Tags=tags, ProductionVariants=[{
                "VariantName": VARIANT, "ModelName": name, "InstanceType": settings.inference_instance_type,
                "InitialInstanceCount": settings.initial_instance_count, "InitialVariantWeight": 1.0}])

    def _ready_for_change(self, endpoint_name: str) -> Optional[dict]:
        """The endpoint once no earlier change is in progress; None if absent (a broken one is deleted)."""
        current = self.describe(endpoint_name)
        if current is not None and current["EndpointStatus"] in TRANSITIONAL:
            self.progress(f"Endpoint '{endpoint_name}' is {current['EndpointStatus']}; waiting before updating it")
            current = self.wait(endpoint_name, "waiting for an earlier change to finish")
        if current is not None and current["EndpointStatus"] in ("Failed", "UpdateRollbackFailed", "OutOfService"):
            self.progress(f"Endpoint '{endpoint_name}' is {current['EndpointStatus']} "
                          f"({current.get('FailureReason', 'no reason given')}); replacing it")
            self._delete_endpoint_and_wait(endpoint_name)
            current = None
        return current

    def _switch(self, endpoint_name: str, name: str, current: Optional[dict],
                settings: DeploySettings) -> Tuple[Optional[str], bool]:
        """Create the endpoint on config ``name``, or update it; (previous config, autoscaling removed?)."""
        if current is None:
            self.progress(f"Creating endpoint '{endpoint_name}'")
            with aws_errors(f"creating endpoint '{endpoint_name}'", DeploymentError):
                self._sm.create_endpoint(EndpointName=endpoint_name, EndpointConfigName=name, Tags=_tags(
                    {"managed-by": "churn-mlops", "churn:endpoint": endpoint_name}))
            return None, False
        previous = current["EndpointConfigName"]
        scaling_removed, retain = self._prepare_update(endpoint_name, previous, settings.inference_instance_type)
        self.progress(f"Updating endpoint '{endpoint_name}': {previous} -> {name}")
        with aws_errors(f"updating endpoint '{endpoint_name}'", DeploymentError):
            self._sm.update_endpoint(EndpointName=endpoint_name, EndpointConfigName=name,
                                     RetainAllVariantProperties=retain)
        return previous, scaling_removed

    def _await_serving(self, endpoint_name: str, name: str, previous: Optional[str], scaling_removed: bool,
                       what: str, settings: DeploySettings) -> dict:
        """Wait until the endpoint serves ``name``; otherwise roll back (or delete a new endpoint) and raise."""
        final = self.wait(endpoint_name, "deploying")
        if final is not None and final["EndpointStatus"] == "InService" and final["EndpointConfigName"] == name:
            return final
        reason = (final or {}).get("FailureReason") or f"status {(final or {}).get('EndpointStatus')}"
        if previous is not None:
            self._rollback(endpoint_name, previous)
            if scaling_removed:
                self._register_scaling(endpoint_name, settings)
            raise DeploymentError(f"endpoint '{endpoint_name}' update to {what} failed ({reason}); rolled back to "
                                  f"the previous endpoint config '{previous}', which is serving again")
        self._delete_endpoint_and_wait(endpoint_name)
        raise DeploymentError(f"endpoint '{endpoint_name}' could not be created with {what} "
                              f"({reason}); the failed endpoint was deleted")

    def _prepare_update(self, endpoint_name: str, previous: str, instance_type: str) -> Tuple[bool, bool]:
        """Before UpdateEndpoint on an autoscaled endpoint: (autoscaling removed?, retain variant properties?).

        SageMaker refuses an update that changes an autoscaled variant's instance type: the
        target is deregistered first (and registered again after the update). A model-only
        change keeps autoscaling and the instance count it chose (RetainAllVariantProperties).
        """
        resource_id = f"endpoint/{endpoint_name}/variant/{VARIANT}"
        if not self._scaling_target(resource_id):
            return False, False
        with aws_errors(f"reading endpoint config '{previous}'", DeploymentError):
            variants = self._sm.describe_endpoint_config(EndpointConfigName=previous)["ProductionVariants"]
        current_type = variants[0].get("InstanceType") if variants else None
        if current_type == instance_type:
            return False, True
        self.progress(f"Instance type changes ({current_type} -> {instance_type}): removing autoscaling "
                      "before the update, as SageMaker requires")
        self._deregister(resource_id)
        return True, False

    def _rollback(self, endpoint_name: str, previous: str) -> None:
        status = self.describe(endpoint_name)
        if status and status["EndpointStatus"] == "InService" and status["EndpointConfigName"] == previous:
            self.progress(f"Endpoint '{endpoint_name}' is back on '{previous}' (rolled back by SageMaker)")
            return
        self.progress(f"Rolling endpoint '{endpoint_name}' back to '{previous}'")
        try:
            self._sm.update_endpoint(EndpointName=endpoint_name, EndpointConfigName=previous,
                                     RetainAllVariantProperties=self._scaling_target(f"endpoint/{endpoint_name}/variant/{VARIANT}"))
        except Exception as error:  # noqa: BLE001 - a Failed endpoint cannot be updated: recreate it
            self.progress(f"  UpdateEndpoint refused ({error_code(error)}); recreating the endpoint on '{previous}'")
            self._delete_endpoint_and_wait(endpoint_name)
            with aws_errors(f"recreating endpoint '{endpoint_name}' on '{previous}'", DeploymentError):
                self._sm.create_endpoint(EndpointName=endpoint_name, EndpointConfigName=previous, Tags=_tags(
                    {"managed-by": "churn-mlops", "churn:endpoint": endpoint_name}))
        restored = self.wait(endpoint_name, "rolling back")
        if restored is None or restored["EndpointStatus"] != "InService":
            raise DeploymentError(f"endpoint '{endpoint_name}' failed and rolling back to '{previous}' failed too "
                                  f"({(restored or {}).get('FailureReason', 'unknown')}); it is not serving")

    def _discard_unused(self, endpoint_name: str, name: str) -> None:
        """Delete a new model/config after a failed deployment, unless the endpoint still uses it."""
        try:
            status = self.describe(endpoint_name)
        except DeploymentError:
            return
        if status is not None and status.get("EndpointConfigName") == name:
            self.progress(f"Endpoint '{endpoint_name}' still uses '{name}'; keeping it")
            return
        self._delete_config_and_model(name)

    def _delete_endpoint_and_wait(self, endpoint_name: str) -> None:
        with aws_errors(f"deleting endpoint '{endpoint_name}'", DeploymentError):
            self._sm.delete_endpoint(EndpointName=endpoint_name)
        self.wait(endpoint_name, "deleting", gone=True)

    def _delete_config_and_model(self, name: str) -> List[str]:
        removed = []
        for kind, call, key in (("endpoint config", self._sm.delete_endpoint_config, "EndpointConfigName"),
                                ("model", self._sm.delete_model, "ModelName")):
            try:
                call(**{key: name})
                removed.append(f"{kind} {name}")
            except Exception as error:  # noqa: BLE001 - already gone is fine
                if "could not find" not in str(error).lower():
                    log.warning("could not delete %s %s: %s", kind, name, explain(error, "cleanup"))
        return removed

    def _own_configs(self, endpoint_name: str) -> List[dict]:
        pattern = _name_pattern(endpoint_name)
        with aws_errors(f"listing endpoint configs of '{endpoint_name}'", DeploymentError):
            configs = [c for page in self._sm.get_paginator("list_endpoint_configs").paginate(
                NameContains=endpoint_name[:34].rstrip("-"), SortBy="CreationTime", SortOrder="Descending")
                for c in page["EndpointConfigs"]]
        return [c for c in configs if pattern.match(c["EndpointConfigName"])]

    def _prune(self, endpoint_name: str, keep: set) -> None:
        for config in self._own_configs(endpoint_name):
            if config["EndpointConfigName"] not in keep:
                self._delete_config_and_model(config["EndpointConfigName"])

    # -- autoscaling ----------------------------------------------------------------
    def configure_autoscaling(self, endpoint_name: str, settings: Optional[DeploySettings] = None) -> Dict[str, Any]:
        """Register autoscaling for non-burstable instance types; otherwise log why not (and remove it)."""
        settings = settings or DeploySettings()
        enabled, reason = autoscaling_decision(settings.inference_instance_type, settings.enable_autoscaling)
        if not enabled:
            log.warning("%s (endpoint %s)", reason, endpoint_name)
            self.progress(reason)
            self._deregister(f"endpoint/{endpoint_name}/variant/{VARIANT}")
            return {"enabled": False, "reason": reason}
        return {"enabled": True, "reason": reason, **self._register_scaling(endpoint_name, settings)}

    def _register_scaling(self, endpoint_name: str, s: DeploySettings) -> Dict[str, Any]:
        resource_id = f"endpoint/{endpoint_name}/variant/{VARIANT}"
        policy = f"{endpoint_name}-invocations-per-instance"
        with aws_errors(f"configuring autoscaling for '{endpoint_name}'", DeploymentError):
            self._scaling.register_scalable_target(
                ServiceNamespace="sagemaker", ResourceId=resource_id, ScalableDimension=SCALABLE_DIMENSION,
                MinCapacity=s.autoscaling_min_capacity, MaxCapacity=s.autoscaling_max_capacity)
            self._scaling.put_scaling_policy(
                PolicyName=policy, ServiceNamespace="sagemaker", ResourceId=resource_id,
                ScalableDimension=SCALABLE_DIMENSION, PolicyType="TargetTrackingScaling",
                TargetTrackingScalingPolicyConfiguration={
                    "TargetValue": float(s.target_invocations_per_instance),
                    "PredefinedMetricSpecification": {"PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"},
                    "ScaleInCooldown": self.settings.scale_in_cooldown,
                    "ScaleOutCooldown": self.settings.scale_out_cooldown})
        self.progress(f"Autoscaling: {s.autoscaling_min_capacity}-{s.autoscaling_max_capacity} instances, target "
                      f"{s.target_invocations_per_instance:g} invocations/instance/minute")
        return {"min_capacity": s.autoscaling_min_capacity, "max_capacity": s.autoscaling_max_capacity, "policy_name": policy,
                "resource_id": resource_id}

    def _scaling_target(self, resource_id: str) -> bool:
        with aws_errors(f"checking autoscaling of {resource_id}", DeploymentError):
            return bool(self._scaling.describe_scalable_targets(
                ServiceNamespace="sagemaker", ResourceIds=[resource_id], ScalableDimension=SCALABLE_DIMENSION
            )["ScalableTargets"])

    def _deregister(self, resource_id: str) -> bool:
        """Remove the scalable target (SageMaker deletes its policies with it); True if there was one."""
        if not self._scaling_target(resource_id):
            return False
        with aws_errors(f"removing autoscaling of {resource_id}", DeploymentError):
            self._scaling.deregister_scalable_target(ServiceNamespace="sagemaker", ResourceId=resource_id,
                                                     ScalableDimension=SCALABLE_DIMENSION)
        return True

    # -- use / inspect / delete -----------------------------------------------------
    def invoke(self, endpoint_name: str, body: bytes, content_type: str = "text/csv", accept: str = "text/csv",
               probabilities: bool = False) -> InvocationResponse:
        runtime = client("sagemaker-runtime", self.settings.region, self.settings.profile)
        kwargs: Dict[str, Any] = {"EndpointName": endpoint_name, "Body": body, "ContentType": content_type,
                                  "Accept": "application/json" if probabilities else accept}
        if probabilities:
            kwargs["CustomAttributes"] = "probabilities=true"
        try:
            response = runtime.invoke_endpoint(**kwargs)
        except Exception as error:  # noqa: BLE001
            if error_code(error) == "ModelError":
                details = error.response  # type: ignore[attr-defined]
                return InvocationResponse(int(details.get("OriginalStatusCode", 400)),
                                          details.get("OriginalMessage", str(error)), {})
            if error_code(error) == "ValidationError" or error_code(error) == "ValidationException":
                raise DeploymentError(f"endpoint '{endpoint_name}' cannot be invoked in {self.settings.region}: "
                                      f"{explain(error, 'InvokeEndpoint')}; run the training pipeline to deploy it") from None
            raise DeploymentError(str(explain(error, f"invoking endpoint '{endpoint_name}'"))) from None
        headers = {"Content-Type": response.get("ContentType", "")}
        if response.get("CustomAttributes"):
            headers["X-Amzn-SageMaker-Custom-Attributes"] = response["CustomAttributes"]
        return InvocationResponse(200, response["Body"].read().decode("utf-8"), headers)

    def list(self) -> List[Dict[str, Any]]:
        """Endpoints that serve a config we created, with what they serve."""
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
                tags = {t["Key"]: t["Value"] for t in self._sm.list_tags(ResourceArn=config["EndpointConfigArn"])["Tags"]}
            except Exception as error:  # noqa: BLE001 - not ours (no permission) or gone meanwhile: skip it
                if "AccessDenied" in str(error) or "could not find" in str(error).lower():
                    continue
                raise DeploymentError(str(explain(error, f"reading endpoint '{name}'"))) from None
            if tags.get("churn:endpoint") != name:
                continue
            out.append({"endpoint_name": name, "running": status["EndpointStatus"] == "InService",
                        "status": status["EndpointStatus"], "url": self.runtime_url(name),
                        "endpoint_config_name": status["EndpointConfigName"],
                        "model_name": tags.get("churn:model-name", "?"), "version": tags.get("churn:model-version", "?"),
                        "sha256": tags.get("churn:bundle-sha256", "")})
        return out

    def delete(self, endpoint_name: str) -> List[str]:
        """Remove the endpoint, its autoscaling, and every endpoint config/model we created for it."""
        removed = []
        if self._deregister(f"endpoint/{endpoint_name}/variant/{VARIANT}"):
            removed.append(f"autoscaling target of {endpoint_name}")
        if self.describe(endpoint_name) is not None:
            self._delete_endpoint_and_wait(endpoint_name)
            removed.append(f"endpoint {endpoint_name}")
        for config in self._own_configs(endpoint_name):
            removed.extend(self._delete_config_and_model(config["EndpointConfigName"]))
        return removed
