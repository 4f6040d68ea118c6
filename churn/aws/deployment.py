"""One deployment of a model version to a SageMaker endpoint, phase by phase.

This module builds on ``churn.aws.endpoint`` (which imports it only inside ``deploy``).
``SageMakerEndpoints.deploy`` (``churn.aws.endpoint``) runs an ``EndpointDeployment``:

1. ``resolve_artifact``: the registered package when it holds this bundle, else the bundle packaged;
2. ``create_model`` (from the model package when it is Approved, so Studio shows the deployment under
   the version) and ``create_endpoint_config``, both under one unique name
   (``<endpoint>-v<version>-<time>-<rand>``);
3. ``ready_for_change``: wait out an earlier change; a broken endpoint (Failed, ...) is deleted;
4. ``create_or_update_endpoint``: create the endpoint on the new config, or point it at it
   (``prepare_update`` first removes autoscaling when the instance type changes, as SageMaker requires);
5. ``wait_in_service``: poll until the endpoint serves the new config; otherwise ``rollback_on_failure``
   puts the previous config back (UpdateEndpoint, or delete + create when SageMaker refuses to update a
   Failed endpoint) or deletes a new endpoint, and raises a DeploymentError naming the reason;
6. ``attach_autoscaling``, then ``prune`` the configs and models older than the previous one.

A failure before the endpoint serves the new config removes the new model and config
(``discard_unused``), so nothing half-deployed is left behind.

Length: one class, one method per deployment phase (each short and flat); the phases share the
deployment's state (new names, previous config, autoscaling), so they stay in one module.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NoReturn

from churn.aws.autoscaling import VARIANT
from churn.aws.clients import aws_errors, error_code
from churn.aws.endpoint import (
    TRANSITIONAL,
    DeploymentError,
    SageMakerEndpoints,
    check_instance_type,
    model_layout,
    tag_list,
    unique_name,
)
from churn.bundle import BundleError
from churn.config import DeploySettings

BROKEN = ("Failed", "UpdateRollbackFailed", "OutOfService")


class EndpointDeployment:
    """Serves ``model_name`` ``version`` at ``endpoint_name`` as ``settings`` say; one object per deployment.

    Attributes:
        name: the new model's and endpoint config's name.
        previous: the endpoint config that served before (None until an update starts, or for a new endpoint).
        scaling_removed: whether autoscaling was removed for an instance-type change (restored on rollback).
    """

    def __init__(
        self,
        endpoints: SageMakerEndpoints,
        endpoint_name: str,
        model_name: str,
        version: str,
        sha256: str,
        settings: DeploySettings,
    ):
        self.endpoints, self.endpoint_name = endpoints, endpoint_name
        self.model_name, self.version, self.sha256, self.settings = model_name, str(version), sha256, settings
        self.name = unique_name(endpoint_name, self.version)
        self.previous: str | None = None
        self.scaling_removed = False
        self.progress = endpoints.progress

    @property
    def _sm(self):
        return self.endpoints._sm

    @property
    def what(self) -> str:
        return f"{self.model_name} v{self.version}"

    def run(self, bundle_uri: str, metadata: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Run every phase; the deployment's record.

        Args:
            bundle_uri: where the bundle is (used when no registered package holds it).
            metadata: extra tags for the model and endpoint config.

        Returns:
            The endpoint's name, URLs and ARN, the new config, the previous one, the model served and autoscaling.

        Raises:
            DeploymentError: the instance type is not offered, the bundle cannot be served, or the endpoint did
                not end InService on the new config (the previous config serves again, or a new endpoint is gone).
        """
        check_instance_type(self.settings.inference_instance_type)
        artifact = self.resolve_artifact(bundle_uri)
        tags = tag_list(
            {
                "managed-by": "churn-mlops",
                "churn:endpoint": self.endpoint_name,
                "churn:model-name": self.model_name,
                "churn:model-version": self.version,
                "churn:bundle-sha256": self.sha256,
                "churn:model-package-arn": artifact["model_package_arn"],
                **(metadata or {}),
            }
        )
        self.create_model(artifact, tags)
        try:
            self.create_endpoint_config(tags)
            self.create_or_update_endpoint(self.ready_for_change())
            final = self.wait_in_service()
        except BaseException:
            self.discard_unused()
            raise
        autoscaling = self.attach_autoscaling()
        self.prune()
        return self.record(final, artifact, autoscaling)

    # -- the phases ---------------------------------------------------------------------
    def resolve_artifact(self, bundle_uri: str) -> dict:
        """The containers to serve (``SageMakerEndpoints.serving_artifact``); a bundle error as a DeploymentError."""
        try:
            return self.endpoints.serving_artifact(
                self.endpoint_name, self.model_name, self.version, bundle_uri, self.sha256
            )
        except BundleError as error:
            raise DeploymentError(f"{self.what} was not deployed: {error}") from None

    def create_model(self, artifact: Mapping[str, Any], tags: list[dict[str, str]]) -> None:
        """The model of ``model_layout(artifact)``: from the model package when Approved, else its containers."""
        containers, layout = artifact["containers"], model_layout(artifact)
        self.progress(
            f"Creating model and endpoint config '{self.name}' ({self.settings.inference_instance_type} "
            f"x{self.settings.initial_instance_count}"
            f"{f', {len(containers)} containers in series' if len(containers) > 1 else ''}"
            f"{', from model package ' + artifact['model_package_arn'] if artifact.get('from_package') else ''})"
        )
        with aws_errors(f"creating SageMaker model '{self.name}'", DeploymentError):
            self._sm.create_model(
                ModelName=self.name, ExecutionRoleArn=self.endpoints.settings.role_arn, Tags=tags, **layout
            )

    def create_endpoint_config(self, tags: list[dict[str, str]]) -> None:
        with aws_errors(f"creating endpoint config '{self.name}'", DeploymentError):
            self._sm.create_endpoint_config(
                EndpointConfigName=self.name,
                Tags=tags,
                ProductionVariants=[
                    {
                        "VariantName": VARIANT,
                        "ModelName": self.name,
                        "InstanceType": self.settings.inference_instance_type,
                        "InitialInstanceCount": self.settings.initial_instance_count,
                        "InitialVariantWeight": 1.0,
                    }
                ],
            )

    def ready_for_change(self) -> dict | None:
        """The endpoint once no earlier change is in progress; None if absent (a broken one is deleted)."""
        endpoint_name = self.endpoint_name
        current = self.endpoints.describe(endpoint_name)
        if current is not None and current["EndpointStatus"] in TRANSITIONAL:
            self.progress(f"Endpoint '{endpoint_name}' is {current['EndpointStatus']}; waiting before updating it")
            current = self.endpoints.wait(endpoint_name, "waiting for an earlier change to finish")
        if current is not None and current["EndpointStatus"] in BROKEN:
            self.progress(
                f"Endpoint '{endpoint_name}' is {current['EndpointStatus']} "
                f"({current.get('FailureReason', 'no reason given')}); replacing it"
            )
            self.endpoints.delete_endpoint_and_wait(endpoint_name)
            current = None
        return current

    def create_or_update_endpoint(self, current: dict | None) -> None:
        """Create the endpoint on the new config, or update it (``previous`` is then the config it served)."""
        endpoint_name = self.endpoint_name
        if current is None:
            self.progress(f"Creating endpoint '{endpoint_name}'")
            with aws_errors(f"creating endpoint '{endpoint_name}'", DeploymentError):
                self._sm.create_endpoint(
                    EndpointName=endpoint_name,
                    EndpointConfigName=self.name,
                    Tags=tag_list({"managed-by": "churn-mlops", "churn:endpoint": endpoint_name}),
                )
            return
        previous = current["EndpointConfigName"]
        retain = self.prepare_update(previous)
        self.progress(f"Updating endpoint '{endpoint_name}': {previous} -> {self.name}")
        with aws_errors(f"updating endpoint '{endpoint_name}'", DeploymentError):
            self._sm.update_endpoint(
                EndpointName=endpoint_name, EndpointConfigName=self.name, RetainAllVariantProperties=retain
            )
        self.previous = previous

    def prepare_update(self, previous: str) -> bool:
        """Before UpdateEndpoint on an autoscaled endpoint; whether to retain the variant's properties.

        SageMaker refuses an update that changes an autoscaled variant's instance type: the
        target is deregistered first (``scaling_removed``; registered again after the update). A
        model-only change keeps autoscaling and the instance count it chose (RetainAllVariantProperties).
        """
        if not self.endpoints.autoscaling.has_target(self.endpoint_name):
            return False
        with aws_errors(f"reading endpoint config '{previous}'", DeploymentError):
            variants = self._sm.describe_endpoint_config(EndpointConfigName=previous)["ProductionVariants"]
        current_type = variants[0].get("InstanceType") if variants else None
        instance_type = self.settings.inference_instance_type
        if current_type == instance_type:
            return True
        self.progress(
            f"Instance type changes ({current_type} -> {instance_type}): removing autoscaling "
            "before the update, as SageMaker requires"
        )
        self.endpoints.autoscaling.deregister(self.endpoint_name)
        self.scaling_removed = True
        return False

    def wait_in_service(self) -> dict:
        """The endpoint's description once it serves the new config; otherwise ``rollback_on_failure``."""
        final = self.endpoints.wait(self.endpoint_name, "deploying")
        if final is not None and final["EndpointStatus"] == "InService" and final["EndpointConfigName"] == self.name:
            return final
        self.rollback_on_failure(final)

    def rollback_on_failure(self, final: dict | None) -> NoReturn:
        """Put the previous config back (and its autoscaling), or delete a new endpoint; always raises."""
        endpoint_name = self.endpoint_name
        reason = (final or {}).get("FailureReason") or f"status {(final or {}).get('EndpointStatus')}"
        if self.previous is None:
            self.endpoints.delete_endpoint_and_wait(endpoint_name)
            raise DeploymentError(
                f"endpoint '{endpoint_name}' could not be created with {self.what} "
                f"({reason}); the failed endpoint was deleted"
            )
        self.restore_previous()
        if self.scaling_removed:
            self.endpoints.autoscaling.register(endpoint_name, self.settings)
        raise DeploymentError(
            f"endpoint '{endpoint_name}' update to {self.what} failed ({reason}); rolled back to "
            f"the previous endpoint config '{self.previous}', which is serving again"
        )

    def restore_previous(self) -> None:
        """The endpoint InService on ``previous`` again (SageMaker's own rollback, UpdateEndpoint, or recreated)."""
        endpoint_name, previous = self.endpoint_name, self.previous
        status = self.endpoints.describe(endpoint_name)
        if status and status["EndpointStatus"] == "InService" and status["EndpointConfigName"] == previous:
            self.progress(f"Endpoint '{endpoint_name}' is back on '{previous}' (rolled back by SageMaker)")
            return
        self.progress(f"Rolling endpoint '{endpoint_name}' back to '{previous}'")
        try:
            self._sm.update_endpoint(
                EndpointName=endpoint_name,
                EndpointConfigName=previous,
                RetainAllVariantProperties=self.endpoints.autoscaling.has_target(endpoint_name),
            )
        except Exception as error:  # noqa: BLE001 - a Failed endpoint cannot be updated: recreate it
            self.progress(f"  UpdateEndpoint refused ({error_code(error)}); recreating the endpoint on '{previous}'")
            self.endpoints.delete_endpoint_and_wait(endpoint_name)
            with aws_errors(f"recreating endpoint '{endpoint_name}' on '{previous}'", DeploymentError):
                self._sm.create_endpoint(
                    EndpointName=endpoint_name,
                    EndpointConfigName=previous,
                    Tags=tag_list({"managed-by": "churn-mlops", "churn:endpoint": endpoint_name}),
                )
        restored = self.endpoints.wait(endpoint_name, "rolling back")
        if restored is None or restored["EndpointStatus"] != "InService":
            raise DeploymentError(
                f"endpoint '{endpoint_name}' failed and rolling back to '{previous}' failed too "
                f"({(restored or {}).get('FailureReason', 'unknown')}); it is not serving"
            )

    def attach_autoscaling(self) -> dict[str, Any]:
        """Autoscaling as ``settings`` say (``churn.aws.autoscaling``); what was configured, or why not."""
        return self.endpoints.autoscaling.configure(self.endpoint_name, self.settings)

    def discard_unused(self) -> None:
        """Delete the new model/config after a failed deployment, unless the endpoint still uses it."""
        try:
            status = self.endpoints.describe(self.endpoint_name)
        except DeploymentError:
            return
        if status is not None and status.get("EndpointConfigName") == self.name:
            self.progress(f"Endpoint '{self.endpoint_name}' still uses '{self.name}'; keeping it")
            return
        self.endpoints.delete_config_and_model(self.name)

    def prune(self) -> None:
        """Delete our older configs and models: all but the new one (and the previous one, with ``keep_previous``)."""
        keep = {self.name, self.previous} if self.endpoints.settings.keep_previous else {self.name}
        for config in self.endpoints.own_configs(self.endpoint_name):
            if config["EndpointConfigName"] not in keep:
                self.endpoints.delete_config_and_model(config["EndpointConfigName"])

    def record(self, final: dict, artifact: dict, autoscaling: dict[str, Any]) -> dict[str, Any]:
        endpoints, name = self.endpoints, self.endpoint_name
        return {
            "endpoint_name": name,
            "url": endpoints.console_url(name),
            "invocations_url": endpoints.runtime_url(name),
            "endpoint_arn": final["EndpointArn"],
            "endpoint_config_name": self.name,
            "sagemaker_model_name": self.name,
            "previous_endpoint_config": self.previous or "",
            "model_name": self.model_name,
            "version": self.version,
            "sha256": self.sha256,
            "model_data_url": artifact["model_data_url"],
            "model_package_arn": artifact["model_package_arn"] or "",
            "containers": [c["Image"] for c in artifact["containers"]],
            "instance_type": self.settings.inference_instance_type,
            "autoscaling": autoscaling,
        }
