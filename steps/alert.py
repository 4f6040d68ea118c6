"""The failure hook: one alert through the active stack's alerter when a step fails.

ZenML 0.98 fires a step's ``on_failure`` hook only when the step *body* raises
(``zenml/orchestrators/step_runner.py``): loading the inputs (``_parse_inputs``, the input
materializers), checking the outputs (``_validate_outputs``) and saving them
(``_store_output_artifacts``, the output materializers) run outside that ``try``, so a
failure there fails the run silently. :func:`alert_on_input_output_failures` closes the
gap: it wraps those three runner methods so an error in them fires the same configured
failure hook once, then re-raises. The body's failure path and these paths exclude each
other, so every failed step sends exactly one alert. It is installed when the ``steps``
package is imported, i.e. in every process that runs our steps (local or in a SageMaker job).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from zenml import get_step_context
from zenml.client import Client

from churn.redaction import redact, redact_then_truncate
from stacks.contracts import FailureAlertParams

log = logging.getLogger(__name__)
MAX_ERROR_CHARS = 2000
_WRAPPED = ("_parse_inputs", "_validate_outputs", "_store_output_artifacts")


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
        pipeline=context.pipeline.name,
        step=context.step_name,
        error=redact_then_truncate(f"{type(exception).__name__}: {exception}", MAX_ERROR_CHARS),
        run_id=str(run.id),
        run_name=run.name,
        logs=logs or f"`zenml pipeline runs logs {run.id}` / step '{context.step_name}'",
    )
    message = redact(
        f"{params.subject}\n"
        f"Pipeline: {params.pipeline}\nStep: {params.step}\nRun: {params.run_name} ({params.run_id})\n"
        f"Error: {params.error}\nLogs: {params.logs}"
    )
    _withdraw_what_the_step_registered(context)
    alerter = Client().active_stack.alerter
    if alerter is None:
        log.error("step failed and the active stack has no alerter: %s", message)
        return
    alerter.post(message, params=params)


def _withdraw_what_the_step_registered(context: Any) -> None:
    """A failed step that registered a model version (e.g. register, whose outputs then failed to save) withdraws it."""
    try:
        model_name = (context.step_run.config.parameters or {}).get("model_name")
        registry = Client().active_stack.model_registry
        if not model_name or registry is None:
            return
        from churn.model_registry import withdraw_run_registrations

        for version, outcome in withdraw_run_registrations(
            registry, str(model_name), str(context.pipeline_run.id), context.step_name
        ):
            log.error(
                "step %s failed after registering %s version %s: %s", context.step_name, model_name, version, outcome
            )
    except Exception as error:  # noqa: BLE001 - the alert must still go out
        log.error("could not check what the failed step registered: %s", redact(error))


def _fire_failure_hook(runner: Any, error: BaseException) -> None:
    if getattr(runner, "_churn_failure_alerted", False):
        return
    runner._churn_failure_alerted = True
    from zenml.enums import HookType

    source = runner.configuration.failure_hook_source
    if source is None:
        return
    try:
        runner._fire_step_hook(source, HookType.STEP_FAILURE, {}, optional_args=(error,))
    except Exception as hook_error:  # noqa: BLE001 - the step's own error is what must surface
        log.error("the failure hook itself failed: %s", redact(hook_error))


def _alerting(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except BaseException as error:
            if not isinstance(error, (KeyboardInterrupt, SystemExit)):
                _fire_failure_hook(self, error)
            raise

    wrapper.churn_alerting = True  # type: ignore[attr-defined]
    return wrapper


def alert_on_input_output_failures() -> bool:
    """Make input-loading and output-saving errors fire the step's failure hook; idempotent.

    Returns False (and logs why) when the runner does not have the methods this relies on,
    i.e. on a ZenML other than the pinned 0.98.
    """
    from zenml.orchestrators.step_runner import StepRunner

    missing = [name for name in _WRAPPED if not callable(getattr(StepRunner, name, None))]
    if missing:
        log.warning("ZenML's StepRunner has no %s: input/output failures will not alert", ", ".join(missing))
        return False
    for name in _WRAPPED:
        method = getattr(StepRunner, name)
        if not getattr(method, "churn_alerting", False):
            setattr(StepRunner, name, _alerting(method))
    return True
