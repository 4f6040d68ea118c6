"""Application Auto Scaling for an endpoint's variant: target tracking on invocations per instance.

Configured only for non-burstable instance types; t2/t3/t3a/t4g are skipped with a logged
reason, as the spec requires (and a target left from an earlier deployment is removed).
SageMaker deletes a target's policies with it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

from churn.aws.clients import AwsError, aws_errors, client
from churn.config import DeploySettings

log = logging.getLogger(__name__)
VARIANT = "AllTraffic"  # the one production variant our endpoints have
BURSTABLE = re.compile(r"^ml\.(t2|t3|t3a|t4g)\.")
SCALABLE_DIMENSION = "sagemaker:variant:DesiredInstanceCount"


def _print(message: str) -> None:
    print(message, flush=True)


def autoscaling_decision(instance_type: str, enabled: bool) -> tuple[bool, str]:
    """(configure autoscaling?, why) for an instance type."""
    if not enabled:
        return False, "autoscaling is disabled in config (enable_autoscaling: false)"
    if BURSTABLE.match(instance_type):
        return False, (
            f"autoscaling skipped: {instance_type} is a burstable instance type (t2/t3/t3a/t4g), "
            "which SageMaker endpoint autoscaling does not support; use e.g. ml.m5.xlarge to autoscale"
        )
    return True, f"autoscaling configured for {instance_type}"


def resource_id(endpoint_name: str) -> str:
    """The scalable target's id: ``endpoint/<name>/variant/AllTraffic``."""
    return f"endpoint/{endpoint_name}/variant/{VARIANT}"


class EndpointAutoscaling:
    """One region's Application Auto Scaling, for our endpoints' variant.

    Args:
        region: the AWS region.
        profile: the AWS profile, or None for the environment's credentials.
        scale_in_cooldown: seconds after a scale-in before another.
        scale_out_cooldown: seconds after a scale-out before another.
        error_class: what a failed call raises (the caller's error, as ``aws_errors`` takes it).
        progress: where progress lines go.
    """

    def __init__(
        self,
        region: str,
        profile: str | None = None,
        *,
        scale_in_cooldown: int = 300,
        scale_out_cooldown: int = 60,
        error_class: type = AwsError,
        progress: Callable[[str], None] = _print,
    ):
        self.region, self.profile = region, profile
        self.scale_in_cooldown, self.scale_out_cooldown = scale_in_cooldown, scale_out_cooldown
        self.error_class, self.progress = error_class, progress

    @property
    def _scaling(self):
        return client("application-autoscaling", self.region, self.profile)

    def configure(self, endpoint_name: str, settings: DeploySettings) -> dict[str, Any]:
        """Register autoscaling for non-burstable instance types; otherwise log why not (and remove it).

        Args:
            endpoint_name: the endpoint whose variant scales.
            settings: the instance type and the autoscaling keys.

        Returns:
            ``enabled`` and ``reason``, and when enabled what was registered (capacities, policy, resource id).

        Raises:
            error_class: an Application Auto Scaling call failed.
        """
        enabled, reason = autoscaling_decision(settings.inference_instance_type, settings.enable_autoscaling)
        if not enabled:
            log.warning("%s (endpoint %s)", reason, endpoint_name)
            self.progress(reason)
            self.deregister(endpoint_name)
            return {"enabled": False, "reason": reason}
        return {"enabled": True, "reason": reason, **self.register(endpoint_name, settings)}

    def register(self, endpoint_name: str, s: DeploySettings) -> dict[str, Any]:
        """Register the variant as a scalable target with a target-tracking policy; what was registered."""
        target = resource_id(endpoint_name)
        policy = f"{endpoint_name}-invocations-per-instance"
        with aws_errors(f"configuring autoscaling for '{endpoint_name}'", self.error_class):
            self._scaling.register_scalable_target(
                ServiceNamespace="sagemaker",
                ResourceId=target,
                ScalableDimension=SCALABLE_DIMENSION,
                MinCapacity=s.autoscaling_min_capacity,
                MaxCapacity=s.autoscaling_max_capacity,
            )
            self._scaling.put_scaling_policy(
                PolicyName=policy,
                ServiceNamespace="sagemaker",
                ResourceId=target,
                ScalableDimension=SCALABLE_DIMENSION,
                PolicyType="TargetTrackingScaling",
                TargetTrackingScalingPolicyConfiguration={
                    "TargetValue": float(s.target_invocations_per_instance),
                    "PredefinedMetricSpecification": {"PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"},
                    "ScaleInCooldown": self.scale_in_cooldown,
                    "ScaleOutCooldown": self.scale_out_cooldown,
                },
            )
        self.progress(
            f"Autoscaling: {s.autoscaling_min_capacity}-{s.autoscaling_max_capacity} instances, target "
            f"{s.target_invocations_per_instance:g} invocations/instance/minute"
        )
        return {
            "min_capacity": s.autoscaling_min_capacity,
            "max_capacity": s.autoscaling_max_capacity,
            "policy_name": policy,
            "resource_id": target,
        }

    def has_target(self, endpoint_name: str) -> bool:
        """Whether the endpoint's variant is a scalable target."""
        target = resource_id(endpoint_name)
        with aws_errors(f"checking autoscaling of {target}", self.error_class):
            return bool(
                self._scaling.describe_scalable_targets(
                    ServiceNamespace="sagemaker", ResourceIds=[target], ScalableDimension=SCALABLE_DIMENSION
                )["ScalableTargets"]
            )

    def deregister(self, endpoint_name: str) -> bool:
        """Remove the scalable target (SageMaker deletes its policies with it); True if there was one."""
        if not self.has_target(endpoint_name):
            return False
        target = resource_id(endpoint_name)
        with aws_errors(f"removing autoscaling of {target}", self.error_class):
            self._scaling.deregister_scalable_target(
                ServiceNamespace="sagemaker", ResourceId=target, ScalableDimension=SCALABLE_DIMENSION
            )
        return True
