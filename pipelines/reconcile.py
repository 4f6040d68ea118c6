"""The reconcile pipeline: one step that makes the endpoint serve the registry's model to serve.

``python run.py reconcile --schedule CRON`` schedules it (EventBridge Scheduler on SageMaker), so an
approval made outside our CLI (SageMaker Studio) reaches the endpoint at the next run.
"""

from __future__ import annotations

from zenml import pipeline

from churn.config import deploy_settings
from steps.alert import notify_failure
from steps.reconcile import reconcile_endpoint


@pipeline(on_failure=notify_failure)
def churn_reconcile(config: dict) -> None:
    """Reconcile ``config``'s endpoint with its model package group; ``config`` is a PipelineConfig dump."""
    reconcile_endpoint(config["model_package_group"], config["endpoint_name"], deploy_settings(config))
