"""Athena: run one query with bounded polling, read its CSV result from S3 with the right dtypes."""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import pandas as pd

from churn.aws import s3
from churn.aws.clients import AwsError, aws_errors, client

# SageMaker Feature Store feature types and the offline store's metadata columns.
_BOOL_TEXT = {"true": True, "false": False}


class QueryError(AwsError):
    """An Athena query that failed, was cancelled or did not finish in time."""


@dataclass
class Polling:
    """Backoff for status polls.

    ``initial`` seconds, times ``factor``, at most ``maximum``; give up after ``timeout``.
    """

    initial: float = 0.5
    factor: float = 1.5
    maximum: float = 5.0
    timeout: float = 600.0

    def waits(self):
        """Yield the successive waits until the timeout is used up."""
        deadline = time.monotonic() + self.timeout
        wait = self.initial
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            yield min(wait, left)
            wait = min(self.maximum, wait * self.factor)


def run_query(
    sql: str,
    database: str,
    output_location: str,
    region: str,
    *,
    catalog: str = "AwsDataCatalog",
    workgroup: str = "primary",
    polling: Polling | None = None,
    profile: str | None = None,
    progress: Callable[[str], None] | None = None,
    what: str = "Athena query",
) -> dict:
    """Start ``sql`` and wait for it; return the QueryExecution (with the result's S3 location).

    Raises QueryError naming ``what`` with Athena's reason when the query fails, and stops
    the query when it does not finish within ``polling.timeout`` seconds.
    """
    polling = polling or Polling()
    athena = client("athena", region, profile)
    with aws_errors(f"starting {what}", QueryError):
        execution_id = athena.start_query_execution(
            QueryString=sql,
            QueryExecutionContext={"Database": database, "Catalog": catalog},
            ResultConfiguration={"OutputLocation": output_location},
            WorkGroup=workgroup,
        )["QueryExecutionId"]
    started, state = time.monotonic(), "QUEUED"
    for wait in polling.waits():
        with aws_errors(f"checking {what} ({execution_id})", QueryError):
            execution = athena.get_query_execution(QueryExecutionId=execution_id)["QueryExecution"]
        state = execution["Status"]["State"]
        if state == "SUCCEEDED":
            if progress:
                progress(f"{what} {execution_id} succeeded in {time.monotonic() - started:.1f}s")
            return execution
        if state in ("FAILED", "CANCELLED"):
            reason = execution["Status"].get("StateChangeReason") or "no reason given"
            raise QueryError(f"{what} {state.lower()} (execution {execution_id}): {reason}")
        time.sleep(wait)
    try:
        athena.stop_query_execution(QueryExecutionId=execution_id)
    except Exception:  # noqa: BLE001 - best effort; the timeout is the error to report
        pass
    raise QueryError(
        f"{what} did not finish within {polling.timeout:.0f}s (last state {state}, execution "
        f"{execution_id}); it was stopped"
    )


def read_result(
    execution: Mapping, column_types: Mapping[str, str], region: str, profile: str | None = None
) -> pd.DataFrame:
    """Read a SELECT's CSV result (header row, quoted values, empty = NULL) from S3.

    ``column_types`` maps result columns (case-insensitively, as Athena lowercases names)
    to feature-store types: Integral -> int64 (float64 when values are missing),
    Fractional -> float64, String -> str, Boolean -> bool; others stay text.
    Missing values (NULL, empty) become NaN.
    """
    location = execution["ResultConfiguration"]["OutputLocation"]
    body = s3.read_bytes(location, region, profile)
    if not body.strip():
        return pd.DataFrame(columns=list(column_types))
    frame = pd.read_csv(io.BytesIO(body), dtype=str, keep_default_na=False, na_values=[""])
    by_lower = {name.lower(): name for name in column_types}
    frame = frame.rename(columns={c: by_lower.get(c.lower(), c) for c in frame.columns})
    for column in frame.columns:
        frame[column] = convert(frame[column], column_types.get(column, "String"), column)
    return frame


def convert(values: pd.Series, kind: str, column: str = "") -> pd.Series:
    """Text from Athena's CSV -> the dtype a feature-store type maps to."""
    if kind == "Integral":
        numbers = pd.to_numeric(values, errors="coerce")
        _check_parsed(values, numbers, column, kind)
        return numbers.astype("int64") if numbers.notna().all() else numbers.astype("float64")
    if kind == "Fractional":
        numbers = pd.to_numeric(values, errors="coerce").astype("float64")
        _check_parsed(values, numbers, column, kind)
        return numbers
    if kind == "Boolean":
        flags = values.str.lower().map(_BOOL_TEXT)
        _check_parsed(values, flags, column, kind)
        return flags.astype(bool) if flags.notna().all() else flags
    return values.astype("str") if values.notna().all() else values


def _check_parsed(raw: pd.Series, parsed: pd.Series, column: str, kind: str) -> None:
    bad = parsed.isna() & raw.notna()
    if bad.any():
        raise QueryError(f"column '{column}' ({kind}) has a value that is not {kind.lower()}: {raw[bad].iloc[0]!r}")
