"""The one SQL query both feature stores run (DuckDB locally, Athena on AWS).

Semantics, the same on both stores:
- records whose customer_id lies in [CUST_<start>, CUST_<end>] (fixed-width ids, so
  string order is numeric order);
- optionally only records with event_time <= as_of (point-in-time read);
- per customer the latest record wins: event_time, then api_invocation_time, then
  write_time, descending (the order AWS's offline-store sample queries use, so two records
  with the same event time resolve to the one Feature Store received last);
- a customer whose latest record is a delete (is_deleted) is left out.

Event times are ISO-8601 UTC with millisecond precision (``yyyy-MM-dd'T'HH:mm:ss.SSSZ``),
the finest String format PutRecord accepts; every event time is written in that one
fixed-width form, so comparing them as text is comparing them as times.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from churn.schema import EVENT_TIME, ID_COLUMN, customer_key

_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")


@dataclass(frozen=True)
class FeatureQuery:
    """What was read from the feature store: kept as lineage with every model."""

    feature_group: str
    customer_id_start: int
    customer_id_end: int
    as_of: str | None = None

    def __post_init__(self) -> None:
        if self.customer_id_end < self.customer_id_start:
            raise ValueError(f"customer id range is empty: end {self.customer_id_end} < start {self.customer_id_start}")
        if self.as_of is not None and not _TIMESTAMP.match(self.as_of):
            raise ValueError(f"as_of must be an ISO-8601 UTC timestamp like 2026-01-31T00:00:00Z, got {self.as_of!r}")

    @property
    def id_range(self) -> str:
        return f"{customer_key(self.customer_id_start)}..{customer_key(self.customer_id_end)}"

    def describe(self) -> str:
        when = f" as of {self.as_of}" if self.as_of else ""
        return f"feature group '{self.feature_group}', customer_id {self.id_range}{when}"

    def to_dict(self) -> dict:
        return asdict(self)


def latest_records_sql(query: FeatureQuery, table: str, columns: Sequence[str]) -> str:
    """SQL selecting the latest non-deleted record per customer for ``query`` from ``table``.

    ``columns`` are the feature group's columns (listed, because Athena has no
    ``SELECT * EXCEPT``). ``table`` is a quoted table reference or table function (``"db"."tbl"`` on Athena,
    ``read_parquet(...)`` on DuckDB). Values are formatted, not bound, because Athena
    takes a plain string; they come from validated ints and a regex-checked timestamp.
    """
    conditions = [
        f"{ID_COLUMN} BETWEEN '{customer_key(query.customer_id_start)}' AND '{customer_key(query.customer_id_end)}'"
    ]
    if query.as_of is not None:
        conditions.append(f"{EVENT_TIME} <= '{iso_millis(query.as_of)}'")
    where = "\n      AND ".join(conditions)
    selected = ", ".join(f'"{c}"' for c in columns)
    return (
        f"SELECT {selected} FROM (\n"
        f"  SELECT {selected}, ROW_NUMBER() OVER (\n"
        f"    PARTITION BY {ID_COLUMN} ORDER BY {EVENT_TIME} DESC, api_invocation_time DESC, write_time DESC\n"
        "  ) AS _rank\n"
        f"  FROM {table}\n"
        f"  WHERE {where}\n"
        ")\n"
        "WHERE _rank = 1 AND NOT is_deleted\n"
        f"ORDER BY {ID_COLUMN}"
    )


EVENT_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%f"  # cut to milliseconds, then "Z": yyyy-MM-dd'T'HH:mm:ss.SSSZ


def utc_now_iso() -> str:
    """Current UTC time in the feature store's event_time format (millisecond precision)."""
    return datetime.now(UTC).strftime(EVENT_TIME_FORMAT)[:-3] + "Z"


def iso_millis(value: str) -> str:
    """An ISO-8601 UTC timestamp text as ``yyyy-MM-ddTHH:mm:ss.SSSZ`` (finer digits are cut, not rounded)."""
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
    return parsed.strftime(EVENT_TIME_FORMAT)[:-3] + "Z"


def event_times_text(parsed):
    """A pandas Series of UTC datetimes as event_time texts (millisecond precision, fixed width)."""
    return parsed.dt.strftime(EVENT_TIME_FORMAT).str.slice(0, 23) + "Z"


def fingerprint(frame) -> str:
    """A stable SHA-256 of a DataFrame's content (columns, dtypes and values)."""
    import pandas as pd

    digest = hashlib.sha256()
    digest.update(",".join(f"{c}:{frame[c].dtype}" for c in frame.columns).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()
