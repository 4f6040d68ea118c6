"""Batch inference (the spec's batch_inference_poc) as plain functions.

Scores a frame of feature-store records in fixed-size chunks, so memory stays bounded by
the chunk size plus the input, and writes customer_id, prediction, probability, model
version and run id to parquet (local path or s3:// via fsspec) without ever leaving a
half-written file: the output goes to a temporary name and is renamed when complete.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator, Optional

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from churn.bundle import ModelBundle
from churn.config import ConfigError, _describe, _refuse_credentials, read_yaml_mapping
from churn.schema import ID_COLUMN

OUTPUT_COLUMNS = [ID_COLUMN, "prediction", "probability", "model_name", "model_version", "run_id"]


class BatchConfig(BaseModel):
    """configs/batch.yaml: which customers to score, with which model, to where."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    feature_group_name: str = "mlops_poc_churn_classification_feature"
    customer_id_start: int = Field(4001, ge=0, le=999_999)
    customer_id_end: int = Field(5000, ge=0, le=999_999)
    as_of: Optional[str] = None
    model_package_group: str = "classification-model-group"
    output_uri: Optional[str] = None  # default: <zenml local stores>/batch_predictions
    output_format: str = Field("parquet", pattern="^(parquet|csv)$")
    chunk_rows: int = Field(50_000, ge=1)


def load_batch_config(path: str | Path, **overrides: object) -> BatchConfig:
    raw = read_yaml_mapping(path, overrides)
    _refuse_credentials(raw)
    try:
        config = BatchConfig(**raw)
    except ValidationError as error:
        raise ConfigError(f"{path}: {_describe(error)}") from None
    if config.customer_id_end < config.customer_id_start:
        raise ConfigError(f"{path}: customer_id_end ({config.customer_id_end}) is below customer_id_start ({config.customer_id_start})")
    return config


def score_in_chunks(bundle: ModelBundle, frame: pd.DataFrame, chunk_rows: int, model_name: str,
                    model_version: str, run_id: str) -> Iterator[pd.DataFrame]:
    """Predictions for ``frame`` one chunk at a time (customer_id, prediction, probability, lineage).

    An estimator with a ``batch_rows`` attribute (a remote model, e.g. Autopilot's batch
    transform handle, where each call is a job) is given chunks of at least that many rows.
    """
    chunk_rows = max(chunk_rows, int(getattr(bundle.estimator, "batch_rows", 0) or 0))
    for start in range(0, len(frame), chunk_rows):
        chunk = frame.iloc[start:start + chunk_rows]
        proba, _ = bundle.predict_proba(chunk)
        yield pd.DataFrame({
            ID_COLUMN: chunk[ID_COLUMN].to_numpy(),
            "prediction": bundle.label(proba),
            "probability": proba,
            "model_name": model_name,
            "model_version": str(model_version),
            "run_id": run_id,
        })


def write_chunks(chunks: Iterator[pd.DataFrame], uri: str, output_format: str = "parquet") -> int:
    """Write chunks to ``uri`` (a file path or s3:// URI), atomically for local paths; returns rows."""
    import fsspec
    import pyarrow as pa
    import pyarrow.parquet as pq

    local = "://" not in uri or uri.startswith("file://")
    final = uri.removeprefix("file://")
    target = f"{os.path.dirname(final)}/.{os.path.basename(final)}.partial" if local else uri
    if local:
        os.makedirs(os.path.dirname(final) or ".", exist_ok=True)
    rows, writer = 0, None
    try:
        with fsspec.open(target, "wb") as handle:
            for chunk in chunks:
                if output_format == "csv":
                    handle.write(chunk.to_csv(index=False, header=rows == 0).encode())
                else:
                    table = pa.Table.from_pandas(chunk, preserve_index=False)
                    writer = writer or pq.ParquetWriter(handle, table.schema)
                    writer.write_table(table)
                rows += len(chunk)
            if writer is not None:
                writer.close()
        if local:
            os.replace(target, final)
    except BaseException:
        if local and os.path.exists(target):
            os.remove(target)
        raise
    return rows


def fetch_bundle(uri: str, destination: str | Path, expected_sha256: Optional[str] = None) -> ModelBundle:
    """Copy a bundle directory from a registry URI (path, file:// or s3://) and load it, checking its hash."""
    import fsspec

    if "://" not in uri or uri.startswith("file://"):
        return ModelBundle.load(uri.removeprefix("file://"), expected_sha256=expected_sha256)
    filesystem, path = fsspec.core.url_to_fs(uri)
    filesystem.get(path.rstrip("/") + "/", str(destination).rstrip("/") + "/", recursive=True)
    return ModelBundle.load(destination, expected_sha256=expected_sha256)
