"""DeployEndpoint: serve the registered version through the stack's model deployer."""

from __future__ import annotations

from typing import Annotated

from zenml import log_metadata, step
from zenml.client import Client

from churn.artifacts import Deployment, Registration
from churn.config import DeploySettings
from churn.model_control import record_deployment, warn_only
from churn.model_registry import model_to_serve, not_the_approved_model, settle
from materializers.artifact_materializer import TypedArtifactMaterializer


@step(enable_cache=False, output_materializers=TypedArtifactMaterializer)
def deploy(
    registration: Registration, endpoint_name: str, deploy_enabled: bool = True, deploy_settings: dict | None = None
) -> Annotated[Deployment, "deployment"]:
    """Create or update the endpoint with the version just registered, if it is the model to serve.

    Only the model to serve (``churn.model_registry.model_to_serve``: approved, and not superseded by a
    promotion) is deployed (spec, Model Approval Workflow); if an approve/promote changed the model to
    serve while this deployed, that one is deployed after it (``churn.model_registry.settle``). A failed
    deployment raises (and alerts); the previously deployed model keeps serving.

    Args:
        registration: What RegisterModel registered (or why nothing was).
        endpoint_name: The endpoint to create or update.
        deploy_enabled: The config's ``deploy`` (False: register only).
        deploy_settings: The pipeline config's deploy keys (``churn.config.deploy_settings``).

    Returns:
        What is served now, or why nothing was deployed.

    Raises:
        RuntimeError: The active stack has no model deployer.
        DeploymentError: The deployer could not serve the version (the previous one keeps serving).
    """
    if not registration.registered:
        print(f"Not deployed: {registration.reason}")
        return Deployment.skipped(registration.reason or "not registered")
    registry = Client().active_stack.model_registry
    approved = model_to_serve(registry, registration.model_name)  # the one rule
    refusal = not_the_approved_model(registration.version, registration.approval_status, approved)
    if refusal:
        print(f"Not deployed: {refusal}")
        return Deployment.skipped(refusal)
    if not deploy_enabled:
        return Deployment.skipped("deployment disabled in config (deploy: false)")
    deployer = Client().active_stack.model_deployer
    if deployer is None:
        raise RuntimeError("the active stack has no model deployer; run `python run.py stack setup local`")
    unused = deployer.unused_settings()
    if unused:
        print(f"note: {', '.join(unused)} have no effect on this stack's model deployer ({deployer.flavor})")
    settings = DeploySettings(**(deploy_settings or {}))
    endpoint = deployer.deploy_bundle(
        endpoint_name=endpoint_name,
        model_name=registration.model_name,
        version=registration.version,
        bundle_uri=registration.bundle_uri,
        sha256=registration.sha256,
        settings=settings,
        metadata={"mlflow_run_id": registration.mlflow_run_id, "zenml_run_id": registration.zenml_run_id},
    )
    # approved/promoted while this deployed? then the endpoint ends on the model to serve (churn.model_registry)
    settled = settle(registry, deployer, registration.model_name, endpoint_name, registration.version, settings)
    if settled is not None and settled["action"] == "deployed":
        endpoint = settled["endpoint"]
    deployment = Deployment.of_endpoint(endpoint)
    log_metadata(metadata={"deployment": deployment.model_dump(mode="json", exclude_none=True)})
    # the ZenML model version of what now serves: stage production, with the endpoint (none recorded: no-op)
    warn_only(
        f"the deployment of {registration.model_name} v{endpoint['version']} on its ZenML model version",
        record_deployment,
        registration.model_name,
        str(endpoint["version"]),
        endpoint_name=endpoint_name,
        endpoint_url=deployment.url,
    )
    print(f"Endpoint {endpoint_name} serves {registration.model_name} v{endpoint['version']} at {deployment.url}")
    return deployment
