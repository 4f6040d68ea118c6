"""``python run.py batch``: score customers with the latest Approved model through the stack's model deployer."""

from __future__ import annotations

import click

from cli.common import HERE, ensure_stack, fail, load_config
from cli.summary import _output


@click.command(help="Batch inference: score customers 4001-5000 (configurable) with the latest Approved model.")
@click.option("--variant", type=click.Choice(["rf", "automl"]), default="rf", show_default=True)
@click.option(
    "--config", "config_path", type=click.Path(dir_okay=False), help="Batch config YAML (default: configs/batch.yaml)."
)
@click.option("--output", "output_uri", default=None, help="Where to write predictions (path or s3:// URI).")
def batch(variant: str, config_path: str | None, output_uri: str | None) -> None:
    from churn.batch import load_batch_config
    from churn.config import ConfigError

    try:
        training = load_config(variant, None)
        config = load_batch_config(
            config_path or HERE / "configs" / "batch.yaml",
            output_uri=output_uri,
            **({} if config_path else {"model_package_group": training.model_package_group}),
        )
    except ConfigError as error:
        fail(str(error))
    ensure_stack()
    from pipelines.batch_inference import churn_batch_inference
    from stacks.sagemaker.run_options import configure_for_active_stack

    try:
        run = configure_for_active_stack(churn_batch_inference)(config=config.model_dump())
    except RuntimeError as error:
        fail(f"{error}. If a step failed, the stack's alerter was told; its message names the step log.")
    from zenml.client import Client

    summary = _output(Client().get_pipeline_run(run.id).steps, "batch_predict", "batch_summary") or {}
    click.echo(
        f"\nScored {summary.get('rows')} customers with {summary.get('model_name')} v{summary.get('version')}: "
        f"{summary.get('location')}"
    )
