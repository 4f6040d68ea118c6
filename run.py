"""churn-mlops command line.

\b
    python run.py --variant rf [--config FILE] [--no-cache]     train, gate, register, deploy
    python run.py ingest [--csv FILE --target COL] [--if-empty]  feature ingestion
    python run.py predict --csv FILE [--endpoint NAME] [--probabilities]
    python run.py schedule list | status | start | stop | delete NAME   scheduled runs (times in UTC)
    python run.py stack setup local                              register the local stack
    python run.py image build [--push]                           the SageMaker image (docker/Dockerfile)
    python run.py endpoints | cleanup [--yes]                    list / stop local endpoints
    python run.py approve | reject | promote GROUP VERSION [--no-deploy]   approval workflow, then deploy
    python run.py reconcile [--variant V] [--schedule CRON]     deploy the model to serve if not served
"""

from __future__ import annotations

import os
import sys

import click

os.environ.setdefault("ZENML_ANALYTICS_OPT_IN", "false")
os.environ.setdefault("ZENML_ENABLE_REPO_INIT_WARNINGS", "false")
os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
os.environ.setdefault("MLFLOW_ENABLE_TELEMETRY", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")

from churn.aws.clients import use_standard_retries  # noqa: E402 - stdlib only; before any boto3 client exists

use_standard_retries()  # botocore's standard retries for every client: ours, ZenML's, the SageMaker SDK's

from cli.batch import batch  # noqa: E402 - after the environment defaults above
from cli.common import (  # noqa: E402
    ensure_stack,
    fail,
    load_config,
    seed_tracking_store,
    stack_component,
    training_pipeline,
)
from cli.dashboard import dashboard  # noqa: E402
from cli.image import image  # noqa: E402
from cli.ingest import ingest  # noqa: E402
from cli.lifecycle import approve, promote, reconcile, reject  # noqa: E402
from cli.predict import endpoints, predict  # noqa: E402
from cli.schedule import create_training_schedule, revive_scheduler, schedule  # noqa: E402
from cli.stack import cleanup, stack  # noqa: E402
from cli.summary import _print_summary  # noqa: E402


@click.group(invoke_without_command=True, help=__doc__)
@click.option("--variant", type=click.Choice(["rf", "automl"]), default="rf", show_default=True)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    help="Pipeline config YAML (default: configs/<variant>.yaml).",
)
@click.option("--no-cache", is_flag=True, help="Run every step, even when its inputs did not change.")
@click.option(
    "--demo-data-if-empty", is_flag=True, help="Ingest the demo data first when the feature group has no records."
)
@click.option(
    "--schedule",
    "cron",
    default=None,
    help="Run on a cron schedule instead of now (standard 5 fields, e.g. '0 3 * * 1').",
)
@click.option("--schedule-name", default=None, help="Name of the schedule (default: <variant>-training).")
@click.pass_context
def cli(
    ctx: click.Context,
    variant: str,
    config_path: str | None,
    no_cache: bool,
    demo_data_if_empty: bool,
    cron: str | None,
    schedule_name: str | None,
) -> None:
    if ctx.invoked_subcommand != "schedule":
        revive_scheduler()
    if ctx.invoked_subcommand is not None:
        return
    config = load_config(variant, config_path)
    ensure_stack()
    if cron is not None:
        create_training_schedule(variant, config_path, config, cron, schedule_name or f"{variant}-training")
        return
    from stacks.sagemaker.run_options import configure_for_active_stack

    seed_tracking_store()  # a fresh local stack: MLflow's store starts migrated (~6 s of its first run)
    store = stack_component("feature_store")
    if demo_data_if_empty and store.record_count(config.feature_group_name) == 0:
        click.echo(f"Feature group '{config.feature_group_name}' is empty: ingesting the demo data first.")
        from pipelines.ingestion import churn_feature_ingestion

        configure_for_active_stack(churn_feature_ingestion)(
            feature_group_name=config.feature_group_name, target_column=config.target_column
        )
    pipeline = configure_for_active_stack(training_pipeline(variant).with_options(enable_cache=not no_cache))
    try:
        run = pipeline(config=config.model_dump())
    except RuntimeError as error:  # the step's own error and the alert were already logged above
        fail(f"{error}. If a step failed, the stack's alerter was told; its message names the step log.")
    _print_summary(run)


for command in (ingest, predict, batch, schedule, dashboard, stack, image, endpoints, cleanup):
    cli.add_command(command)
for command in (approve, reject, promote, reconcile):
    cli.add_command(command)


if __name__ == "__main__":
    sys.exit(cli())
