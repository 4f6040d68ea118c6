"""``python run.py predict`` and ``python run.py endpoints``: the active stack's endpoints."""

from __future__ import annotations

from pathlib import Path

import click

from cli.common import fail, load_config, stack_component


@click.command(help="Send a CSV (header row of raw features) to an endpoint and print the predictions.")
@click.option("--csv", "csv_path", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--endpoint", default=None, help="Endpoint name (default: the variant config's endpoint_name).")
@click.option("--variant", type=click.Choice(["rf", "automl"]), default="rf", show_default=True)
@click.option("--probabilities", is_flag=True, help="Also print the churn probability per row.")
@click.option("--json", "as_json", is_flag=True, help="Ask for a JSON answer.")
def predict(csv_path, endpoint, variant, probabilities, as_json) -> None:
    config = load_config(variant, None)
    deployer = stack_component("model_deployer")
    try:
        response = deployer.invoke(
            endpoint or config.endpoint_name,
            Path(csv_path).read_bytes(),
            "text/csv",
            "application/json" if as_json else "text/csv",
            probabilities,
        )
    except Exception as error:  # noqa: BLE001 - shown to the user as one line
        fail(str(error))
    if response.status_code != 200:
        fail(f"endpoint answered HTTP {response.status_code}: {response.text.strip()}")
    if response.headers.get("X-Unseen-Categories"):
        click.echo(
            f"note: unseen categories mapped to the first known class: {response.headers['X-Unseen-Categories']}",
            err=True,
        )
    click.echo(response.text.rstrip("\n"))


@click.command(help="List the active stack's endpoints (the ZenML services `zenml model-deployer models list` shows).")
def endpoints() -> None:
    deployer = stack_component("model_deployer")
    try:
        services = deployer.endpoint_services()
    except Exception as error:  # noqa: BLE001 - shown to the user as one line
        fail(str(error))
    if not services:
        click.echo("No endpoints.")
    for service in services:
        entry = service.entry()
        note = f" ({entry['message']})" if entry["message"] else ""
        click.echo(
            f"{entry['endpoint_name']}: {entry['state']}{note} {entry['url'] or ''} serving "
            f"{entry['model_name']} v{entry['version']} [ZenML service {entry['uuid']}]"
        )
