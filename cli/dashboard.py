"""``python run.py dashboard``: ZenML's local dashboard on 127.0.0.1, and the MLflow UI command."""

from __future__ import annotations

import click

from cli.common import ensure_stack, fail, stack_component


@click.command(help="Start the ZenML dashboard on 127.0.0.1 (no browser pop-up, onboarding skipped) and print its URL.")
@click.option("--port", default=8237, show_default=True)
@click.option("--stop", is_flag=True, help="Stop the local dashboard server instead.")
def dashboard(port: int, stop: bool) -> None:
    from churn.dashboard import DashboardError, start_zenml_dashboard, stop_zenml_dashboard

    try:
        if stop:
            stop_zenml_dashboard()
            click.echo("Stopped the local ZenML dashboard.")
            return
        url = start_zenml_dashboard(port=port)
    except DashboardError as error:
        fail(str(error))
    ensure_stack()  # `zenml login --local` may reset the active stack to ZenML's default
    tracker = stack_component("experiment_tracker")
    click.echo(f"ZenML dashboard: {url}  (stop it with: python run.py dashboard --stop)")
    click.echo(f"MLflow UI:       mlflow ui --backend-store-uri {tracker.get_tracking_uri()} --host 127.0.0.1")
