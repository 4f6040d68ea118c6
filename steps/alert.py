"""The failure hook: one alert through the active stack's alerter when a step fails."""

from __future__ import annotations

import logging

from zenml import get_step_context
from zenml.client import Client

from stacks.flavors.local_alerter import FailureAlertParams

log = logging.getLogger(__name__)


def notify_failure(exception: BaseException) -> None:
    """``on_failure`` hook: names the pipeline, step, error and where the logs are."""
    context = get_step_context()
    run = context.pipeline_run
    logs = ""
    try:
        collection = context.step_run.log_collection or []
        logs = ", ".join(entry.body.uri for entry in collection if entry.body and entry.body.uri)
    except Exception:  # the log location is a courtesy; never fail the alert over it
        logs = ""
    params = FailureAlertParams(
        pipeline=context.pipeline.name, step=context.step_name,
        error=f"{type(exception).__name__}: {exception}"[:2000],
        run_id=str(run.id), run_name=run.name,
        logs=logs or f"`zenml pipeline runs logs {run.id}` / step '{context.step_name}'",
    )
    message = (
        f"{params.subject}\n"
        f"Pipeline: {params.pipeline}\nStep: {params.step}\nRun: {params.run_name} ({params.run_id})\n"
        f"Error: {params.error}\nLogs: {params.logs}"
    )
    alerter = Client().active_stack.alerter
    if alerter is None:
        log.error("step failed and the active stack has no alerter: %s", message)
        return
    alerter.post(message, params=params)
