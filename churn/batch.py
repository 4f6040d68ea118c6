"""Batch inference (the spec's batch_inference_poc) as plain functions.

Scores a frame of feature-store records in fixed-size chunks and streams each chunk to the
output as it is scored (parquet row groups or CSV appends), so memory stays bounded by the
input plus one chunk. It writes customer_id, prediction, probability, model name and
version and run id, and never leaves a half-written output: locally a temporary name
renamed when complete, on S3 a multipart upload completed only on success.

Where scoring happens is the stack's business: the model deployer's ``batch_predict``
(``stacks.contracts.EndpointDeployer``) scores in this process by default (``score_to``);
the SageMaker deployer runs a Batch Transform job with the serving image instead.
"""

from __future__ import annotations

import io
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from churn.bundle import ModelBundle
from churn.config import ConfigError, _describe, _refuse_credentials, read_yaml_mapping
from churn.files import atomic_path
from churn.schema import ID_COLUMN

OUTPUT_COLUMNS = [ID_COLUMN, "prediction", "probability", "model_name", "model_version", "run_id"]


class BatchConfig(BaseModel):
    """configs/batch.yaml: which customers to score, with which model, to where."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    feature_group_name: str = "mlops_poc_churn_classification_feature"
    customer_id_start: int = Field(4001, ge=0, le=999_999)
    customer_id_end: int = Field(5000, ge=0, le=999_999)
    as_of: str | None = None
    model_package_group: str = "classification-model-group"
    output_uri: str | None = None  # default: <zenml local stores>/batch_predictions
    output_format: str = Field("parquet", pattern="^(parquet|csv)$")
    chunk_rows: int = Field(50_000, ge=1, le=200_000)  # le: the serving limit on rows per request (protocol.Limits)
    # SageMaker stack: the Batch Transform job's instances (the local stack scores in process)
    instance_type: str = "ml.m5.xlarge"
    instance_count: int = Field(1, ge=1, le=100)


def load_batch_config(path: str | Path, **overrides: object) -> BatchConfig:
    raw = read_yaml_mapping(path, overrides)
    _refuse_credentials(raw)
    try:
        config = BatchConfig(**raw)
    except ValidationError as error:
        raise ConfigError(f"{path}: {_describe(error)}") from None
    if config.customer_id_end < config.customer_id_start:
        raise ConfigError(
            f"{path}: customer_id_end ({config.customer_id_end}) "
            f"is below customer_id_start ({config.customer_id_start})"
        )
    return config


def score_in_chunks(
    bundle: ModelBundle,
    frame: pd.DataFrame,
    chunk_rows: int,
    model_name: str,
    model_version: str,
    run_id: str,
    threads: int | None = None,
) -> Iterator[pd.DataFrame]:
    """Predictions for ``frame`` one chunk at a time, in order (customer_id, prediction, probability, lineage).

    An estimator with a ``batch_rows`` attribute (a remote model, e.g. Autopilot's batch
    transform handle, where each call is a job) is given chunks of at least that many rows.
    A forest scored by the compiled kernel (which releases the GIL) is scored on ``threads``
    threads (default: the CPUs this process may use, at most 4), a few chunks ahead of the
    consumer, so scoring overlaps the writing of earlier chunks; other models score one chunk
    at a time in the caller's thread.
    """
    chunk_rows = max(chunk_rows, int(getattr(bundle.estimator, "batch_rows", 0) or 0))

    def score(start: int) -> pd.DataFrame:
        chunk = frame.iloc[start : start + chunk_rows]
        proba, _ = bundle.predict_proba(chunk)
        return pd.DataFrame(
            {
                ID_COLUMN: chunk[ID_COLUMN].to_numpy(),
                "prediction": bundle.label(proba),
                "probability": proba,
                "model_name": model_name,
                "model_version": str(model_version),
                "run_id": run_id,
            }
        )

    starts = range(0, len(frame), chunk_rows)
    if threads is None:
        threads = min(4, len(os.sched_getaffinity(0))) if bundle._fast_path() is not None else 1
    if threads <= 1 or len(starts) <= 1:
        yield from map(score, starts)
        return
    pool = ThreadPoolExecutor(threads, thread_name_prefix="batch-score")
    pending: deque[Future] = deque()
    try:
        for start in starts:
            pending.append(pool.submit(score, start))
            if len(pending) > threads:  # at most threads + 1 chunks scored and not yet consumed
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:  # also when the consumer stops early (a write failed): drop what is not started
        pool.shutdown(wait=True, cancel_futures=True)


def write_chunks(
    chunks: Iterable[pd.DataFrame],
    uri: str,
    output_format: str = "parquet",
    *,
    region: str | None = None,
    profile: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Stream chunks to ``uri`` (a path, file:// or s3:// URI) as they come; nothing is held but one chunk.

    The output appears only when every chunk is written: locally a hidden temporary file
    renamed into place, on S3 a multipart upload completed at the end. When scoring or
    writing fails, the temporary file is removed or the upload aborted, so the final
    name holds the previous output or nothing, never a partial one. Returns
    ``{"rows", "positives"}``; ``progress(rows_so_far)`` is called after each chunk.
    """
    if output_format not in ("parquet", "csv"):
        raise ValueError(f"output_format must be parquet or csv, got {output_format!r}")
    if uri.startswith("s3://"):
        from churn.aws.s3 import AtomicS3Writer

        content_type = "text/csv" if output_format == "csv" else "application/vnd.apache.parquet"
        with AtomicS3Writer(
            uri,
            region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION", ""),
            profile,
            content_type=content_type,
        ) as handle:
            counts = _write(chunks, _Unclosable(handle), output_format, progress)
        return counts
    if "://" in uri and not uri.startswith("file://"):
        raise ValueError(f"batch output {uri!r}: use a local path, file:// or s3:// URI")
    final = uri.removeprefix("file://")
    os.makedirs(os.path.dirname(final) or ".", exist_ok=True)
    with atomic_path(final) as target, open(target, "wb") as handle:
        counts = _write(chunks, handle, output_format, progress)
    return counts


class _Unclosable(io.RawIOBase):
    """Lets a parquet writer close "its" file without closing (and so aborting) the upload under it."""

    def __init__(self, inner: Any):
        super().__init__()
        self.inner = inner

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:  # type: ignore[override]
        return self.inner.write(data)

    def tell(self) -> int:
        return self.inner.tell()


def _write(
    chunks: Iterable[pd.DataFrame], handle: Any, output_format: str, progress: Callable[[int], None] | None
) -> dict[str, Any]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows, positives, writer = 0, 0, None
    try:
        for chunk in chunks:
            if output_format == "csv":
                handle.write(chunk.to_csv(index=False, header=rows == 0).encode())
            else:
                table = pa.Table.from_pandas(chunk, preserve_index=False)
                writer = writer or pq.ParquetWriter(handle, table.schema)
                writer.write_table(table)
            rows += len(chunk)
            positives += int(chunk["prediction"].sum()) if "prediction" in chunk else 0
            if progress:
                progress(rows)
    except BaseException:
        if writer is not None:  # finish the writer into the output that is being discarded anyway
            try:
                writer.close()
            except Exception:  # noqa: BLE001 - the scoring error is the one to report
                pass
        raise
    if writer is not None:
        writer.close()
    elif output_format == "parquet":  # no rows: still a valid parquet file with our columns
        pq.write_table(pa.Table.from_pandas(pd.DataFrame({c: [] for c in OUTPUT_COLUMNS})), handle)
    return {"rows": rows, "positives": positives}


def score_to(
    bundle: ModelBundle,
    frame: pd.DataFrame,
    location: str,
    output_format: str,
    chunk_rows: int,
    model_name: str,
    model_version: str,
    run_id: str,
    *,
    region: str | None = None,
    profile: str | None = None,
    progress: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Score ``frame`` in chunks streamed to ``location`` (in this process); returns the batch summary."""
    total = len(frame)

    def report(done: int) -> None:
        progress(f"  scored {done:,}/{total:,} rows ({done / max(total, 1):.0%})")

    counts = write_chunks(
        score_in_chunks(bundle, frame, chunk_rows, model_name, model_version, run_id),
        location,
        output_format,
        region=region,
        profile=profile,
        progress=report,
    )
    return {
        "rows": counts["rows"],
        "location": location,
        "scored_by": "in-process chunks",
        "positive_rate": counts["positives"] / counts["rows"] if counts["rows"] else 0.0,
    }


def fetch_bundle(uri: str, destination: str | Path, expected_sha256: str | None = None) -> ModelBundle:
    """Copy a bundle directory from a registry URI and load it, checking its hash.

    A path, file:// or s3:// (fsspec), or an MLflow artifact URI (``mlflow-artifacts:/``, ``runs:/``,
    ``models:/``: what a tracking server that serves its artifacts gives), downloaded by MLflow.
    """
    import fsspec

    if uri.split(":", 1)[0] in ("mlflow-artifacts", "runs", "models"):
        import mlflow.artifacts

        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(destination)))
        inside = (
            sorted(p for p in (local / "artifacts").glob("*") if p.is_dir()) if (local / "MLmodel").is_file() else []
        )
        if len(inside) == 1:  # a whole MLflow model (models:/...): the bundle is its one artifact
            local = inside[0]
        return ModelBundle.load(local, expected_sha256=expected_sha256)
    if "://" not in uri or uri.startswith("file://"):
        return ModelBundle.load(uri.removeprefix("file://"), expected_sha256=expected_sha256)
    filesystem, path = fsspec.core.url_to_fs(uri)
    filesystem.get(path.rstrip("/") + "/", str(destination).rstrip("/") + "/", recursive=True)
    return ModelBundle.load(destination, expected_sha256=expected_sha256)
