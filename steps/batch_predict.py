"""Batch scoring: the stack's model deployer scores every record and writes the predictions."""

from __future__ import annotations

import os
from typing import Annotated

import pandas as pd
from zenml import get_step_context, log_metadata, step
from zenml.client import Client
from zenml.config.global_config import GlobalConfiguration

from churn.bundle import ModelBundle


@step(enable_cache=False)
def batch_predict(
    raw_features: pd.DataFrame,
    model_bundle: ModelBundle,
    model_version: dict,
    output_uri: str | None,
    output_format: str = "parquet",
    chunk_rows: int = 50_000,
    instance_type: str | None = None,
    instance_count: int = 1,
) -> Annotated[dict, "batch_summary"]:
    """Score every record (streamed to the output, written atomically); returns where and how many.

    The active stack's model deployer decides where scoring runs: in this process on the
    local stack, a SageMaker Batch Transform job with the serving image on the SageMaker stack.

    Args:
        raw_features: The records to score (from ``source_features``).
        model_bundle: The approved model (from ``load_approved_model``).
        model_version: Which version it is (from ``load_approved_model``).
        output_uri: Folder or S3 prefix for the predictions (None: the local stores' batch_predictions).
        output_format: ``parquet`` or ``csv``.
        chunk_rows: Rows scored per chunk.
        instance_type: SageMaker stack: the transform job's instance type.
        instance_count: SageMaker stack: the transform job's instance count.

    Returns:
        Where the predictions are and how many rows (plus the model name and version).

    Raises:
        RuntimeError: The active stack has no model deployer.
    """
    run = get_step_context().pipeline_run
    base = output_uri or os.path.join(GlobalConfiguration().local_stores_path, "batch_predictions")
    location = f"{base.rstrip('/')}/{run.name}.{output_format}"
    deployer = Client().active_stack.model_deployer
    if deployer is None:
        raise RuntimeError("the active stack has no model deployer to score the batch with")
    summary = deployer.batch_predict(
        raw_features,
        model_bundle,
        model_version,
        location,
        output_format,
        chunk_rows,
        str(run.id),
        instance_type=instance_type,
        instance_count=instance_count,
    )
    summary = {**summary, **{k: model_version[k] for k in ("model_name", "version")}}
    log_metadata(metadata={"batch": summary})
    print(
        f"Scored {summary['rows']} customers with {model_version['model_name']} v{model_version['version']} "
        f"({summary.get('scored_by')}); wrote {location}"
    )
    return summary
