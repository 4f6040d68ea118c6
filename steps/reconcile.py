"""Reconcile: make the endpoint serve the registry's model to serve (what a scheduled reconcile runs)."""

from __future__ import annotations

from typing import Annotated

from zenml import log_metadata, step
from zenml.client import Client

from churn.config import DeploySettings
from churn.model_control import follow_reconcile
from churn.model_registry import reconcile


@step(enable_cache=False)
def reconcile_endpoint(
    model_name: str, endpoint_name: str, deploy_settings: dict | None = None
) -> Annotated[dict, "reconcile"]:
    """Deploy ``churn.model_registry.model_to_serve`` when the endpoint serves something else; idempotent.

    Args:
        model_name: The registered model / model package group.
        endpoint_name: Its endpoint.
        deploy_settings: The pipeline config's deploy keys (``churn.config.deploy_settings``).

    Returns:
        What the endpoint served before, what it serves now and what was done.

    Raises:
        churn.bundle.BundleError: The model to serve has no recorded bundle sha256.
        DeploymentError: The deployer could not serve it (the previous model keeps serving).
    """
    stack = Client().active_stack
    outcome = reconcile(
        stack.model_registry, stack.model_deployer, model_name, endpoint_name, DeploySettings(**(deploy_settings or {}))
    )
    follow_reconcile(stack.model_registry, model_name, outcome)  # the ZenML versions' stages follow (warn-only)
    summary = {k: outcome[k] for k in ("model_name", "endpoint_name", "to_serve", "served_before", "action")}
    log_metadata(metadata={"reconcile": summary})
    print(f"Endpoint {endpoint_name}: {summary['action']} (model to serve: {model_name} v{summary['to_serve']})")
    return summary
