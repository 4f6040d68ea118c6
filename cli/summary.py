"""The end of a training run: metrics, gate verdict, registry version, endpoint, where to look next.

(Moved unchanged from run.py; the typed-artifacts work rewrites it.)
"""

from __future__ import annotations

import click


def _output(run, step: str, name: str):
    try:
        return run.steps[step].outputs[name][0].load()
    except (KeyError, IndexError):
        return None


def _print_summary(run) -> None:
    from zenml.client import Client

    run = Client().get_pipeline_run(run.id)
    orchestrator = Client().active_stack.orchestrator.flavor
    if run.status.value != "completed" and orchestrator != "local":
        click.echo(f"\nRun {run.name}: {run.status.value} on the {orchestrator} orchestrator")
        for key in ("orchestrator_url", "pipeline_execution_arn"):
            if run.run_metadata.get(key):
                click.echo(f"  {key}: {run.run_metadata[key]}")
        click.echo("  metrics, registry and endpoint follow when the steps finish (ZenML dashboard / SageMaker console)")
        return
    report = _output(run, "evaluate", "evaluation_report") or {}
    verdict = _output(run, "gate", "gate_verdict") or {}
    registration = _output(run, "register", "registration") or {}
    deployment = _output(run, "deploy", "deployment") or {}
    click.echo("\n" + "=" * 72)
    click.echo(f"Run {run.name}: {run.status.value}")
    if report:
        click.echo("Metrics:  " + "  ".join(f"{k}={report[k]:.4f}" for k in ("accuracy", "precision", "recall", "f1_score", "roc_auc") if report.get(k) is not None))
    if verdict:
        click.echo(f"Gate:     {verdict['message']}")
    if registration.get("registered"):
        trained_in = registration.get("trained_in_mlflow_run_id") or registration["mlflow_run_id"]
        click.echo(f"Registry: {registration['model_name']} version {registration['version']} ({registration['approval_status']}), "
                   f"MLflow run {registration['mlflow_run_id']}"
                   + ("" if trained_in == registration["mlflow_run_id"] else
                      f"\n          data and code unchanged: training reused from MLflow run {trained_in} (--no-cache retrains)"))
    else:
        click.echo(f"Registry: nothing registered ({registration.get('reason', 'see above')})")
    if deployment.get("deployed"):
        click.echo(f"Endpoint: {deployment['endpoint_name']} -> {deployment['invocations_url']}")
        click.echo("          try: .venv/bin/python run.py predict --csv sample_input.csv")
    else:
        click.echo(f"Endpoint: not updated ({deployment.get('reason', 'see above')})")
    tracker = Client().active_stack.experiment_tracker
    if tracker is not None and hasattr(tracker, "get_tracking_uri"):
        click.echo(f"MLflow:   mlflow ui --backend-store-uri {tracker.get_tracking_uri()} --host 127.0.0.1")
    click.echo("ZenML:    .venv/bin/python run.py dashboard   (runs, steps, evaluation report, model card)")
    click.echo("=" * 72)
