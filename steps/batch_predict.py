"""Batch scoring: chunked predictions written as an artifact and to the configured location."""

from __future__ import annotations

import os
from typing import Annotated, Optional, Tuple

import pandas as pd
from zenml import get_step_context, log_metadata, step
from zenml.config.global_config import GlobalConfiguration

from churn.batch import score_in_chunks, write_chunks
from churn.bundle import ModelBundle


@step(enable_cache=False)
def batch_predict(
    raw_features: pd.DataFrame, model_bundle: ModelBundle, model_version: dict, output_uri: Optional[str],
    output_format: str = "parquet", chunk_rows: int = 50_000,
) -> Tuple[Annotated[pd.DataFrame, "predictions"], Annotated[dict, "batch_summary"]]:
    """Score every record in chunks; returns the predictions and where they were written."""
    run = get_step_context().pipeline_run
    base = output_uri or os.path.join(GlobalConfiguration().local_stores_path, "batch_predictions")
    location = f"{base.rstrip('/')}/{run.name}.{output_format}"
    chunks = []
    for chunk in score_in_chunks(model_bundle, raw_features, chunk_rows, model_version["model_name"],
                                 model_version["version"], str(run.id)):
        chunks.append(chunk)
        done = sum(len(c) for c in chunks)
        print(f"  scored {done:,}/{len(raw_features):,} rows ({done / len(raw_features):.0%})")
    rows = write_chunks(iter(chunks), location, output_format)
    predictions = pd.concat(chunks, ignore_index=True)
    summary = {"rows": rows, "location": location, "positive_rate": float(predictions["prediction"].mean()),
               **{k: model_version[k] for k in ("model_name", "version")}}
    log_metadata(metadata={"batch": summary})
    print(f"Scored {rows} customers with {model_version['model_name']} v{model_version['version']}; wrote {location}")
    return predictions, summary
