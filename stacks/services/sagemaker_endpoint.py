"""A SageMaker real-time endpoint as a ZenML service; its status is DescribeEndpoint's.

``EndpointStatus`` maps to ZenML's states: InService -> active; Creating, Updating,
SystemUpdating, RollingBack -> pending startup; Deleting -> pending shutdown; OutOfService ->
inactive; Failed -> error (with SageMaker's FailureReason); no such endpoint -> inactive, and
the record is dropped at the next listing. The logs are in CloudWatch; ``get_logs`` says where.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import ClassVar

from zenml.enums import ServiceState
from zenml.models.v2.misc.service import ServiceType

from churn.aws.clients import AwsError
from churn.aws.endpoint import EndpointSettings, SageMakerEndpoints
from churn.deployment_error import DeploymentError
from stacks.flavors.sagemaker_deployer import FLAVOR
from stacks.services.endpoint import EndpointService, EndpointServiceConfig, endpoint_service_type

STATES = {
    "InService": ServiceState.ACTIVE,
    "Creating": ServiceState.PENDING_STARTUP,
    "Updating": ServiceState.PENDING_STARTUP,
    "SystemUpdating": ServiceState.PENDING_STARTUP,
    "RollingBack": ServiceState.PENDING_STARTUP,
    "Deleting": ServiceState.PENDING_SHUTDOWN,
    "OutOfService": ServiceState.INACTIVE,
    "Failed": ServiceState.ERROR,
}


def service_state(described: dict | None) -> tuple[ServiceState, str]:
    """ZenML's state for a DescribeEndpoint answer (None: the endpoint does not exist).

    Args:
        described: DescribeEndpoint's answer, or None.

    Returns:
        (state, message): the message is SageMaker's status, with its FailureReason if any.
    """
    if described is None:
        return ServiceState.INACTIVE, "the endpoint does not exist"
    status = described["EndpointStatus"]
    reason = described.get("FailureReason")
    return STATES.get(status, ServiceState.ERROR), f"SageMaker: {status}" + (f" ({reason})" if reason else "")


class SageMakerEndpointServiceConfig(EndpointServiceConfig):
    """A SageMaker deployment: where the endpoint is and which endpoint config it was given."""

    region: str
    aws_profile: str | None = None
    endpoint_config_name: str = ""
    console_url: str = ""


class SageMakerEndpointService(EndpointService):
    """A SageMaker endpoint, checked with DescribeEndpoint."""

    SERVICE_TYPE: ClassVar[ServiceType] = endpoint_service_type(
        FLAVOR, "churn-sagemaker-endpoint", "SageMaker real-time endpoint serving a churn model package"
    )
    config: SageMakerEndpointServiceConfig

    @property
    def endpoints(self) -> SageMakerEndpoints:
        """The AWS layer for this endpoint's region (only DescribeEndpoint and URLs are used)."""
        settings = EndpointSettings(region=self.config.region, role_arn="", bucket="", profile=self.config.aws_profile)
        return SageMakerEndpoints(settings)

    def check_status(self) -> tuple[ServiceState, str]:
        """The endpoint's DescribeEndpoint status as ZenML's state.

        Returns:
            (state, message); the message also says when the endpoint serves another endpoint config.
        """
        self.status.clear_error()
        try:
            described = self.endpoints.describe(self.config.endpoint_name)
        except (AwsError, DeploymentError) as error:  # throttled, expired credentials, ...: shown, not raised
            return ServiceState.ERROR, f"DescribeEndpoint failed: {error}"
        state, message = service_state(described)
        self.status.exists = described is not None
        runtime = self.endpoints.runtime_url(self.config.endpoint_name).removesuffix("/invocations")
        self.status.url = runtime if state == ServiceState.ACTIVE else None
        self.status.served_version = str(self.config.model_version) if state == ServiceState.ACTIVE else ""
        serving = (described or {}).get("EndpointConfigName")
        if serving and self.config.endpoint_config_name and serving != self.config.endpoint_config_name:
            self.status.served_version = ""
            message += f"; serves endpoint config {serving}, not {self.config.endpoint_config_name}"
        return state, message

    def server_info(self) -> dict[str, str | None]:
        return {
            **super().server_info(),
            "ENDPOINT_CONFIG_NAME": self.config.endpoint_config_name,
            "REGION": self.config.region,
            "CONSOLE_URL": self.config.console_url,
        }

    def get_logs(self, follow: bool = False, tail: int | None = None) -> Generator[str, bool, None]:
        """Where the endpoint's logs are (CloudWatch); nothing is fetched.

        Yields:
            One line naming the log group.
        """
        yield (
            f"SageMaker endpoint logs are in CloudWatch: log group /aws/sagemaker/Endpoints/"
            f"{self.config.endpoint_name} in {self.config.region} ({self.config.console_url})"
        )
