"""SageMaker endpoint deployer flavor (ZenML ships none): create/update, roll back, autoscale.

The deployer contract (``stacks.contracts.EndpointDeployer``: ``deploy_bundle``, ``endpoint_url``,
``invoke``, ``list_endpoints``, ``delete_endpoint``, ``batch_predict``: here a Batch Transform job,
``cleanup``: here everything the stack's endpoints, schedules and, when asked, registry and S3 hold).
The model served is the registered model package's model.tar.gz when the registry is the SageMaker
one; otherwise the deployer packages the bundle itself. The logic is in ``churn.aws.endpoint``; every
AWS error it raises leaves this flavor as the contract's ``DeploymentError``. Each deployment is
recorded as a ZenML service (``stacks.services.sagemaker_endpoint``, status from DescribeEndpoint).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

from pydantic import model_validator
from zenml.model_deployers.base_model_deployer import BaseModelDeployerConfig, BaseModelDeployerFlavor

from churn.aws import endpoint as aws_endpoint
from churn.aws.athena import Polling
from churn.aws.clients import AwsError
from churn.aws.settings import component_check
from churn.config import DEPLOY_KEYS, DeploySettings
from stacks.contracts import CleanupRequest, DeploymentError, EndpointDeployer, split_allow_older

FLAVOR = "churn_sagemaker_endpoint"


@contextmanager
def _as_deployment_error() -> Iterator[None]:
    """The AWS layer's errors (``churn.aws.endpoint.DeploymentError`` included) as the contract's one class."""
    try:
        yield
    except AwsError as error:
        raise DeploymentError(str(error)) from None


class SageMakerEndpointDeployerConfig(BaseModelDeployerConfig):
    """Account-level: ``role_arn`` is the execution role the endpoint's model runs with; ``bucket``/``prefix``
    hold model.tar.gz when the deployer packages a bundle itself.

    How an endpoint is served (instance type, autoscaling) is not here: each deployment gets the
    pipeline's ``DeploySettings`` (``deploy_bundle(..., settings=...)``).
    """

    region: str
    role_arn: str
    bucket: str
    prefix: str = "mlops/classification_model"
    image_uri: str | None = None  # our image (churn.image); None: the stack's ECR default
    deploy_timeout_seconds: float = 1800.0
    batch_timeout_seconds: float = 6 * 3600.0
    poll_initial_seconds: float = 5.0
    poll_max_seconds: float = 30.0
    aws_profile: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _check(cls, values: Any) -> Any:
        return component_check(values)


class SageMakerEndpointDeployer(EndpointDeployer):
    NAME: ClassVar[str] = "Churn SageMaker endpoint"
    FLAVOR: ClassVar[type[BaseModelDeployerFlavor]]
    HONOURED_SETTINGS: ClassVar[tuple[str, ...]] = DEPLOY_KEYS

    @property
    def config(self) -> SageMakerEndpointDeployerConfig:
        return self._config  # type: ignore[return-value]

    @property
    def endpoints(self) -> aws_endpoint.SageMakerEndpoints:
        c = self.config
        return aws_endpoint.SageMakerEndpoints(
            aws_endpoint.EndpointSettings(
                region=c.region,
                role_arn=c.role_arn,
                bucket=c.bucket,
                prefix=c.prefix,
                image_uri=c.image_uri,
                polling=Polling(
                    initial=c.poll_initial_seconds, maximum=c.poll_max_seconds, timeout=c.deploy_timeout_seconds
                ),
                profile=c.aws_profile,
            )
        )

    # -- ZenML services (stacks.services.sagemaker_endpoint) -----------------------------
    CAN_PAUSE: ClassVar[bool] = False  # a SageMaker endpoint is running (and billed) or deleted

    @property
    def service_class(self) -> type[Any]:
        from stacks.services.sagemaker_endpoint import SageMakerEndpointService

        return SageMakerEndpointService

    def service_config(self, entry: Any) -> Any:
        from stacks.services.sagemaker_endpoint import SageMakerEndpointServiceConfig

        return SageMakerEndpointServiceConfig(
            **self.service_fields(entry),
            region=self.config.region,
            aws_profile=self.config.aws_profile,
            endpoint_config_name=str(entry.get("endpoint_config_name") or ""),
            console_url=self.endpoints.console_url(entry["endpoint_name"]),
        )

    # -- the deployer contract our deploy step uses -------------------------------------
    def deploy_bundle(
        self,
        endpoint_name: str,
        model_name: str,
        version: str,
        bundle_uri: str,
        sha256: str,
        metadata: dict[str, Any] | None = None,
        settings: DeploySettings | None = None,
        *,
        allow_older: bool = False,
    ) -> dict[str, Any]:
        """The contract's ``deploy_bundle``; ``allow_older`` is not checked here (an endpoint update serves the
        version asked for) and never becomes a tag."""
        metadata, _ = split_allow_older(metadata, allow_older)
        with _as_deployment_error():
            deployed = self.endpoints.deploy(
                endpoint_name, model_name, str(version), bundle_uri, sha256, metadata, settings or DeploySettings()
            )
        self.record_deployment({"bundle_uri": bundle_uri, **deployed})
        return deployed

    def endpoint_url(self, endpoint_name: str) -> str | None:
        with _as_deployment_error():
            status = self.endpoints.describe(endpoint_name)
        return self.endpoints.runtime_url(endpoint_name) if status and status["EndpointStatus"] == "InService" else None

    def invoke(
        self,
        endpoint_name: str,
        body: bytes,
        content_type: str = "text/csv",
        accept: str = "text/csv",
        probabilities: bool = False,
    ) -> aws_endpoint.InvocationResponse:
        with _as_deployment_error():
            return self.endpoints.invoke(endpoint_name, body, content_type, accept, probabilities)

    def list_endpoints(self) -> list[dict[str, Any]]:
        with _as_deployment_error():
            return self.endpoints.list()

    def batch_predict(
        self,
        features: Any,
        bundle: Any,
        model_version: dict[str, Any],
        location: str,
        output_format: str,
        chunk_rows: int,
        run_id: str,
        *,
        instance_type: str | None = None,
        instance_count: int = 1,
    ) -> dict[str, Any]:
        """A SageMaker Batch Transform job with the serving containers (``churn.aws.transform``).

        Not in-process scoring: the job runs the image's ``serve`` on SageMaker's instances.
        """
        from churn.aws.transform import BatchTransform

        c = self.config
        polling = Polling(initial=c.poll_initial_seconds, maximum=c.poll_max_seconds, timeout=c.batch_timeout_seconds)
        with _as_deployment_error():
            return BatchTransform(self.endpoints, polling).run(
                features,
                bundle.preprocessor.target,
                model_version,
                location,
                output_format,
                chunk_rows,
                run_id,
                instance_type or "ml.m5.xlarge",
                instance_count,
            )

    def stop_endpoint(self, endpoint_name: str) -> bool:
        """A SageMaker endpoint cannot be paused: stopping it deletes it (billing stops)."""
        return bool(self.delete_endpoint(endpoint_name))

    def remove_endpoint(self, endpoint_name: str) -> list[str]:
        """The endpoint, its autoscaling and every endpoint config and model we created for it."""
        with _as_deployment_error():
            return self.endpoints.delete(endpoint_name)

    def cleanup(
        self, request: CleanupRequest, echo: Callable[[str], None], confirm: Callable[[str], bool]
    ) -> list[str]:
        """The request's endpoints with their configs, models and autoscaling, our schedules and pipelines, and
        with ``include_registry`` / ``include_s3`` the model package groups and everything under the prefix."""
        from churn.aws.cleanup import CleanupSettings
        from stacks.sagemaker.cleanup import run_cleanup

        c = self.config
        settings = CleanupSettings(
            region=c.region,
            bucket=c.bucket,
            prefix=c.prefix,
            endpoint_names=list(dict.fromkeys(request.endpoint_names)),
            model_package_groups=list(dict.fromkeys(request.model_package_groups)),
            include_registry=request.include_registry,
            include_s3=request.include_s3,
            profile=c.aws_profile,
        )
        with _as_deployment_error():
            removed = run_cleanup(settings, request.yes, echo=echo, confirm=confirm)
        try:
            self._reconcile()  # drops the ZenML service records of the endpoints removed
        except Exception as error:  # noqa: BLE001 - the cleanup happened; the records follow at the next listing
            echo(f"warning: ZenML service records not updated ({type(error).__name__}: {error})")
        return removed


class SageMakerEndpointDeployerFlavor(BaseModelDeployerFlavor):
    @property
    def name(self) -> str:
        return FLAVOR

    @property
    def config_class(self) -> type[SageMakerEndpointDeployerConfig]:
        return SageMakerEndpointDeployerConfig

    @property
    def implementation_class(self) -> type[SageMakerEndpointDeployer]:
        return SageMakerEndpointDeployer
