"""``python run.py ingest``: the demo data or a CSV into the active stack's feature store."""

from __future__ import annotations

from pathlib import Path

import click

from cli.common import ensure_stack, fail, load_config, stack_component


@click.command(help="Write demo data (default) or a CSV into the feature store.")
@click.option(
    "--csv", "csv_path", type=click.Path(exists=True, dir_okay=False), help="CSV with customer_id and a binary target."
)
@click.option("--target", default=None, help="Target column of the CSV (default: the config's target_column).")
@click.option("--feature-group", default=None, help="Feature group (default: the config's feature_group_name).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False))
@click.option(
    "--customers",
    default=5000,
    show_default=True,
    type=click.IntRange(1, 999_999),
    help="Demo data: number of customers (ids CUST_000001 onwards).",
)
@click.option("--if-empty", is_flag=True, help="Do nothing when the feature group already has records.")
def ingest(csv_path, target, feature_group, config_path, customers, if_empty) -> None:
    from churn import names
    from churn.ingest import IngestError, prepare_records, read_csv

    config = load_config("rf", config_path)
    group = feature_group or config.feature_group_name
    target = target or config.target_column
    try:
        names.feature_group(group)
        names.feature(target)
    except names.InvalidName as error:
        fail(str(error))
    ensure_stack()
    store = stack_component("feature_store")
    if if_empty and store.record_count(group) > 0:
        click.echo(f"Feature group '{group}' already has {store.record_count(group)} customers; not ingesting.")
        return
    if csv_path:  # validate before starting a pipeline: a clear message, nothing written
        try:
            existing = store.describe(group)
            prepare_records(read_csv(csv_path), target, group, existing.features if existing else None)
        except IngestError as error:
            fail(str(error))
    from pipelines.ingestion import churn_feature_ingestion
    from stacks.sagemaker.run_options import configure_for_active_stack

    configure_for_active_stack(churn_feature_ingestion)(
        feature_group_name=group,
        target_column=target,
        csv_path=str(Path(csv_path).resolve()) if csv_path else None,
        demo_customers=customers,
    )
