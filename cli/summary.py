"""The end of a training run: metrics, gate verdict, registry version, endpoint, where to look next."""

from __future__ import annotations

import click


def _output(steps, step: str, name: str):
    """The artifact ``name`` that ``step`` produced, loaded (None: the step did not produce it).

    ``steps``: ``run.steps`` read once (each read of that property queries every step of the run).
    """
    try:
        return steps[step].outputs[name][0].load()
    except (KeyError, IndexError):
        return None


def _print_summary(run) -> None:
    from zenml.client import Client

    from churn.metrics import summary_line
    from stacks.contracts import runs_remotely

    run = Client().get_pipeline_run(run.id)
    stack = Client().active_stack
    if run.status.value != "completed" and runs_remotely(stack):
        click.echo(f"\nRun {run.name}: {run.status.value} on the {stack.orchestrator.flavor} orchestrator")
        for key in ("orchestrator_url", "pipeline_execution_arn"):
            if run.run_metadata.get(key):
                click.echo(f"  {key}: {run.run_metadata[key]}")
        click.echo(
            "  metrics, registry and endpoint follow when the steps finish (ZenML dashboard / SageMaker console)"
        )
        return
    steps = run.steps
    report = _output(steps, "evaluate", "evaluation_report") or {}
    verdict = _output(steps, "gate", "gate_verdict")
    registration = _output(steps, "register", "registration")
    deployment = _output(steps, "deploy", "deployment")
    click.echo("\n" + "=" * 72)
    click.echo(f"Run {run.name}: {run.status.value}")
    if report:
        click.echo("Metrics:  " + summary_line(report))
    if verdict is not None:
        click.echo(f"Gate:     {verdict.message}")
    if registration is not None and registration.registered:
        trained_in = registration.trained_in_mlflow_run_id or registration.mlflow_run_id
        click.echo(
            f"Registry: {registration.model_name} version {registration.version} ({registration.approval_status}), "
            f"MLflow run {registration.mlflow_run_id}"
            + (
                ""
                if trained_in == registration.mlflow_run_id
                else f"\n          data and code unchanged: training reused from MLflow run {trained_in} "
                "(--no-cache retrains)"
            )
        )
    else:
        click.echo(f"Registry: nothing registered ({registration.reason if registration else 'see above'})")
    if deployment is not None and deployment.deployed:
        click.echo(f"Endpoint: {deployment.endpoint_name} -> {deployment.invocations_url}")
        click.echo("          try: .venv/bin/python run.py predict --csv sample_input.csv")
    else:
        click.echo(f"Endpoint: not updated ({deployment.reason if deployment else 'see above'})")
    tracker = stack.experiment_tracker
    if tracker is not None and hasattr(tracker, "get_tracking_uri"):
        click.echo(f"MLflow:   mlflow ui --backend-store-uri {tracker.get_tracking_uri()} --host 127.0.0.1")
    click.echo("ZenML:    .venv/bin/python run.py dashboard   (runs, steps, evaluation report, model card)")
    click.echo("=" * 72)
