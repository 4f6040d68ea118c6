"""Ingestion manifests: what each ingestion put, so a read can tell when the offline store has not caught up.

The offline store lags PutRecord by up to ~15 minutes, so a read right after an ingestion
can find only part of it. Each ingestion therefore leaves a small manifest in S3 (beside
the offline store, under ``<offline store S3 URI>/churn-ingestions/<group>-<created>/``: how many
records, which customer ids as ranges, the event times); a read counts what those
manifests say was ingested in its id range (and before its ``as_of``) and stops with a
FeatureStoreError when Athena returned fewer customers, instead of training on a partial
set. Groups ingested by other tools have no manifest and are read unchecked.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from churn.aws import s3
from churn.aws.clients import AwsError
from churn.feature_query import FeatureQuery, iso_millis, utc_now_iso
from churn.offline_store import FeatureStoreError
from churn.schema import EVENT_TIME, ID_COLUMN

OFFLINE_STORE_LAG = "records reach the offline store (and Athena) up to ~15 minutes after ingestion"
MANIFEST_FOLDER = "churn-ingestions"


def manifest_prefix(described: Mapping[str, Any], group: str, default_root: str) -> str:
    """``<offline store root>/churn-ingestions/<group>-<creation time>/``.

    A group deleted and created again (same name) starts with no manifests, as SageMaker names
    its offline-store folder.

    Args:
        described: DescribeFeatureGroup's answer for the group (empty when it does not exist).
        group: the feature group's name.
        default_root: the offline store S3 URI to use when the description names none.

    Returns:
        The S3 prefix (ending in ``/``) the group's manifests are under.
    """
    root = described.get("OfflineStoreConfig", {}).get("S3StorageConfig", {}).get("S3Uri") or default_root
    created = described.get("CreationTime")
    stamp = f"-{int(created.timestamp())}" if hasattr(created, "timestamp") else ""
    return s3.join(root, MANIFEST_FOLDER, f"{group}{stamp}") + "/"


def write_manifest(prefix: str, group: str, records: pd.DataFrame, region: str, profile: str | None) -> str:
    """Write the manifest of one completed ingestion under ``prefix``; returns its URI."""
    manifest = ingestion_manifest(group, records)
    uri = f"{prefix}{manifest['finished_at'].replace(':', '')}-{uuid.uuid4().hex[:8]}.json"
    s3.upload_bytes(json.dumps(manifest).encode(), uri, region, profile, "application/json")
    return uri


def read_manifests(prefix: str, group: str, region: str, profile: str | None) -> list[dict]:
    """Every manifest under ``prefix`` (oldest first).

    Raises:
        FeatureStoreError: listing or reading them failed, or one is not JSON.
    """
    bucket, _ = s3.parse_s3_uri(prefix)
    try:
        keys = sorted(k for k in s3.list_keys(prefix, region, profile) if k.endswith(".json"))
        return [json.loads(s3.read_bytes(f"s3://{bucket}/{key}", region, profile)) for key in keys]
    except (AwsError, ValueError) as error:
        raise FeatureStoreError(
            f"reading the ingestion manifests of '{group}' under {prefix} failed: {error}"
        ) from None


def _id_ranges(ids: pd.Series) -> list[list[int]]:
    """Customer ids (CUST_XXXXXX) as sorted, merged [first, last] number ranges (small for contiguous ids)."""
    numbers = sorted(set(int(text[5:]) for text in ids.astype(str)))
    ranges: list[list[int]] = []
    for number in numbers:
        if ranges and number == ranges[-1][1] + 1:
            ranges[-1][1] = number
        else:
            ranges.append([number, number])
    return ranges


def ingestion_manifest(group: str, records: pd.DataFrame) -> dict[str, Any]:
    """What one ingestion put: record count, customer id ranges, event-time bounds, when it finished."""
    times = records[EVENT_TIME].astype(str)
    return {
        "feature_group": group,
        "records": int(len(records)),
        "id_ranges": _id_ranges(records[ID_COLUMN]),
        "min_event_time": iso_millis(times.min()),
        "max_event_time": iso_millis(times.max()),
        "finished_at": utc_now_iso(),
    }


def expected_customers(query: FeatureQuery, manifests: Iterable[dict]) -> tuple[int, str | None]:
    """(customers the manifests say were ingested in the query's id range, the last such ingestion's finish time).

    With ``as_of``, only ingestions whose records all lie at or before it count (one with
    later event times may have replaced an earlier record, which the offline store keeps
    but a manifest cannot tell), so the check never asks for more than the store can hold.
    """
    start, end = query.customer_id_start, query.customer_id_end
    cutoff = iso_millis(query.as_of) if query.as_of else None
    covered: list[tuple[int, int]] = []
    last = None
    for manifest in manifests:
        if cutoff is not None and manifest["max_event_time"] > cutoff:
            continue
        clipped = [(max(a, start), min(b, end)) for a, b in manifest["id_ranges"] if b >= start and a <= end]
        if clipped:
            covered.extend(clipped)
            last = max(last or "", manifest["finished_at"])
    total, reach = 0, -1
    for a, b in sorted(covered):
        if b > reach:
            total += b - max(a, reach + 1) + 1
            reach = b
    return total, last


def check_complete(query: FeatureQuery, found: int, manifests: Iterable[dict], where: str) -> None:
    """Raise when the read found fewer customers than were ingested in its range (the offline store lags)."""
    expected, last = expected_customers(query, manifests)
    if found < expected:
        raise FeatureStoreError(
            f"the offline store returned {found} of the {expected} customers ingested for {query.describe()} "
            f"({where}; the last ingestion into this range finished at {last}). {OFFLINE_STORE_LAG}: wait and run "
            "again; nothing was trained or scored on the partial set"
        )
