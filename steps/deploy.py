"""DeployEndpoint: serve the registered version through the stack's model deployer."""

from __future__ import annotations

from typing import Annotated, Optional

from zenml import log_metadata, step
from zenml.client import Client

from churn.config import DeploySettings
from churn.model_registry import approved_version


@step(enable_cache=False)
def deploy(registration: dict, endpoint_name: str, deploy_enabled: bool = True,
           deploy_settings: Optional[dict] = None) -> Annotated[dict, "deployment"]:
    """Create or update the endpoint with the version just registered, if it is approved.

    Only approved models are deployed (spec, Model Approval Workflow). A failed
    deployment raises (and alerts); the previously deployed model keeps serving.
    ``deploy_settings``: the pipeline config's deploy keys (``churn.config.deploy_settings``).
    """
    if not registration.get("registered"):
        print(f"Not deployed: {registration.get('reason', 'no model was registered')}")
        return {"deployed": False, "reason": registration.get("reason", "not registered")}
    approved = approved_version(Client().active_stack.model_registry, registration["model_name"])  # batch's rule too
    if approved is None or str(approved.version) != str(registration["version"]):
        reason = (f"version {registration['version']} is {registration['approval_status']}; only Approved models are deployed"
                  if registration["approval_status"] != "Approved" or approved is None else
                  f"version {registration['version']} is not the approved model (version {approved.version} is); "
                  "the approved model is the one deployed")
        print(f"Not deployed: {reason}")
        return {"deployed": False, "reason": reason}
    if not deploy_enabled:
        return {"deployed": False, "reason": "deployment disabled in config (deploy: false)"}
    deployer = Client().active_stack.model_deployer
    if deployer is None:
        raise RuntimeError("the active stack has no model deployer; run `python run.py stack setup local`")
    settings = DeploySettings(**(deploy_settings or {}))
    unused = deployer.unused_settings()
    if unused:
        print(f"note: {', '.join(unused)} have no effect on this stack's model deployer ({deployer.flavor})")
    endpoint = deployer.deploy_bundle(
        endpoint_name=endpoint_name, model_name=registration["model_name"], version=registration["version"],
        bundle_uri=registration["bundle_uri"], sha256=registration["sha256"],
        metadata={k: registration[k] for k in ("mlflow_run_id", "zenml_run_id")}, settings=settings,
    )
    deployment = {"deployed": True, **endpoint}
    log_metadata(metadata={"deployment": deployment})
    print(f"Endpoint {endpoint_name} serves {registration['model_name']} v{registration['version']} at {endpoint['url']}")
    return deployment
