"""SageMaker Feature Store: ingest records (PutRecord) and read the offline store (Athena).

Ingest validates everything with ``churn.ingest.prepare_records`` before anything is
written, creates the feature group when it is missing (record identifier
``customer_id``, event time ``event_time``, offline store in S3 with a Glue table), waits
for it, then puts the records with bounded concurrency; throttled calls are retried by
the clients' backoff policy. Read describes the group to find its Glue database and
table, runs THE query from ``churn.feature_query.latest_records_sql`` on Athena and reads
the CSV result from S3 with the dtypes the feature definitions say.

The offline store lags PutRecord by up to ~15 minutes, so each ingestion leaves a manifest
and a read stops when Athena returned fewer customers than the manifests say were ingested
(``churn.aws.ingestion_manifests``), instead of training on a partial set.

Length: one API family (a feature group's create, ingest and offline-store read); the ingestion
manifests are in ``churn.aws.ingestion_manifests``.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any

import pandas as pd

from churn.aws import athena
from churn.aws import ingestion_manifests as manifests
from churn.aws.clients import AwsError, aws_errors, client, error_code, explain
from churn.aws.ingestion_manifests import OFFLINE_STORE_LAG
from churn.feature_query import FeatureQuery, latest_records_sql
from churn.ingest import FRACTIONAL, INTEGRAL, prepare_records
from churn.offline_store import FeatureStoreError
from churn.schema import EVENT_TIME, ID_COLUMN, STORE_METADATA_COLUMNS

METADATA_TYPES = {"write_time": "String", "api_invocation_time": "String", "is_deleted": "Boolean"}
_TARGET_NOTE = re.compile(r"target column: (\S+)")


def _print(message: str) -> None:
    print(message, flush=True)


class FeatureGroupClient:
    """One region's SageMaker Feature Store, as our feature-store contract needs it."""

    def __init__(
        self,
        region: str,
        role_arn: str,
        offline_store_s3_uri: str,
        athena_output: str,
        *,
        athena_workgroup: str = "primary",
        enable_online_store: bool = True,
        max_workers: int = 8,
        query_polling: athena.Polling | None = None,
        create_polling: athena.Polling | None = None,
        profile: str | None = None,
        progress: Callable[[str], None] = _print,
    ):
        self.region, self.role_arn, self.profile = region, role_arn, profile
        self.offline_store_s3_uri = offline_store_s3_uri.rstrip("/")
        self.athena_output = athena_output if athena_output.endswith("/") else athena_output + "/"
        self.athena_workgroup = athena_workgroup
        self.enable_online_store = enable_online_store
        self.max_workers = max(1, int(max_workers))
        self.query_polling = query_polling or athena.Polling()
        self.create_polling = create_polling or athena.Polling(initial=2.0, maximum=15.0, timeout=900.0)
        self.progress = progress

    @property
    def _sagemaker(self):
        return client("sagemaker", self.region, self.profile)

    @property
    def _runtime(self):
        return client("sagemaker-featurestore-runtime", self.region, self.profile)

    # -- describe / create ----------------------------------------------------------
    def describe_raw(self, group: str) -> dict | None:
        try:
            return self._sagemaker.describe_feature_group(FeatureGroupName=group)
        except Exception as error:  # noqa: BLE001 - translated below
            if error_code(error) in ("ResourceNotFound", "ResourceNotFoundException"):
                return None
            raise FeatureStoreError(str(explain(error, f"describing feature group '{group}'"))) from None

    def describe(self, group: str) -> dict | None:
        """The group's definition in the local store's shape ("FeatureDefinitions": {name: type}), or None."""
        raw = self.describe_raw(group)
        if raw is None:
            return None
        catalog = raw.get("OfflineStoreConfig", {}).get("DataCatalogConfig", {})
        target = _TARGET_NOTE.search(raw.get("Description") or "")
        return {
            "FeatureGroupName": raw["FeatureGroupName"],
            "FeatureGroupArn": raw.get("FeatureGroupArn"),
            "RecordIdentifierFeatureName": raw["RecordIdentifierFeatureName"],
            "EventTimeFeatureName": raw["EventTimeFeatureName"],
            "TargetColumn": target.group(1) if target else None,
            "FeatureDefinitions": {d["FeatureName"]: d["FeatureType"] for d in raw["FeatureDefinitions"]},
            "FeatureGroupStatus": raw.get("FeatureGroupStatus"),
            "CreationTime": str(raw.get("CreationTime", "")),
            "OfflineStoreConfig": {
                "S3Uri": raw.get("OfflineStoreConfig", {}).get("S3StorageConfig", {}).get("ResolvedOutputS3Uri")
                or raw.get("OfflineStoreConfig", {}).get("S3StorageConfig", {}).get("S3Uri"),
                "Catalog": catalog.get("Catalog", "AwsDataCatalog"),
                "Database": catalog.get("Database"),
                "Table": catalog.get("TableName"),
            },
        }

    def create_group(self, group: str, definitions: dict[str, str], target: str) -> dict:
        """Create the feature group (online + offline store) and wait until it is Created."""
        self.progress(
            f"Creating feature group '{group}' ({len(definitions)} features, offline store "
            f"{self.offline_store_s3_uri}) ..."
        )
        with aws_errors(f"creating feature group '{group}'", FeatureStoreError):
            self._sagemaker.create_feature_group(
                FeatureGroupName=group,
                RecordIdentifierFeatureName=ID_COLUMN,
                EventTimeFeatureName=EVENT_TIME,
                FeatureDefinitions=[{"FeatureName": name, "FeatureType": kind} for name, kind in definitions.items()],
                OnlineStoreConfig={"EnableOnlineStore": self.enable_online_store},
                OfflineStoreConfig={
                    "S3StorageConfig": {"S3Uri": self.offline_store_s3_uri},
                    "DisableGlueTableCreation": False,
                },
                RoleArn=self.role_arn,
                Description=f"churn-mlops features; target column: {target}",
                Tags=[{"Key": "managed-by", "Value": "churn-mlops"}],
            )
        status = "Creating"
        for wait in self.create_polling.waits():
            raw = self.describe_raw(group) or {}
            status = raw.get("FeatureGroupStatus", "Creating")
            if status == "Created":
                self.progress(f"Feature group '{group}' is Created")
                return self.describe(group)  # type: ignore[return-value]
            if status in ("CreateFailed", "DeleteFailed", "Deleting"):
                raise FeatureStoreError(
                    f"feature group '{group}' could not be created: {status}: "
                    f"{raw.get('FailureReason', 'no reason given')}"
                )
            time.sleep(wait)
        raise FeatureStoreError(f"feature group '{group}' was still {status} after {self.create_polling.timeout:.0f}s")

    # -- ingest ---------------------------------------------------------------------
    def ingest(self, group: str, frame: pd.DataFrame, target: str) -> dict[str, Any]:
        """Validate everything first, create the group if missing, then put every record."""
        existing = self.describe(group)
        records, definitions = prepare_records(
            frame, target, group, existing["FeatureDefinitions"] if existing else None
        )
        described = existing or self.create_group(group, definitions, target)
        written = self.put_records(group, records, definitions)
        manifest = self.record_ingestion(group, records)
        return {
            "manifest": manifest,
            "feature_group": group,
            "records": written,
            "created": existing is None,
            "location": described.get("FeatureGroupArn") or group,
            "offline_store": described["OfflineStoreConfig"].get("S3Uri") or self.offline_store_s3_uri,
            "feature_definitions": definitions,
        }

    def put_records(self, group: str, records: pd.DataFrame, definitions: dict[str, str]) -> int:
        """PutRecord every row with ``max_workers`` in flight; raise naming the failures."""
        columns = [c for c in records.columns if c not in STORE_METADATA_COLUMNS]
        payloads = [_record(row, columns, definitions) for row in records[columns].itertuples(index=False, name=None)]
        total, done, failures = len(payloads), 0, []
        give_up = threading.Event()
        limit = max(10, total // 100)
        started, step = time.monotonic(), max(1, math.ceil(total / 10))
        runtime = self._runtime

        def put(payload: list[dict[str, str]]) -> None:
            if give_up.is_set():
                raise RuntimeError("skipped after too many failures")
            runtime.put_record(FeatureGroupName=group, Record=payload)

        self.progress(f"Writing {total} records to '{group}' ({self.max_workers} in flight) ...")
        with ThreadPoolExecutor(max_workers=self.max_workers, thread_name_prefix="put-record") as pool:
            futures = {pool.submit(put, payload): payload for payload in payloads}
            for future in as_completed(futures):
                error = future.exception()
                if error is not None:
                    failures.append((_record_id(futures[future]), error))
                    if len(failures) >= limit:
                        give_up.set()
                else:
                    done += 1
                    if done % step == 0 or done == total:
                        rate = done / max(time.monotonic() - started, 1e-6)
                        self.progress(f"  {done}/{total} records written ({rate:.0f}/s)")
        if failures:
            real = [f for f in failures if not str(f[1]).startswith("skipped")]
            record_id, error = real[0] if real else failures[0]
            raise FeatureStoreError(
                f"{len(failures)} of {total} records were not written to feature group '{group}' "
                f"({done} were); first failure, {record_id}: {explain(error, 'PutRecord')}. "
                "Re-running the ingestion is safe: the latest record per customer wins"
            )
        return done

    # -- ingestion manifests (churn.aws.ingestion_manifests) --------------------------
    def _manifest_prefix(self, group: str) -> str:
        return manifests.manifest_prefix(self.describe_raw(group) or {}, group, self.offline_store_s3_uri)

    def record_ingestion(self, group: str, records: pd.DataFrame) -> str:
        """Write the manifest of one completed ingestion (after every PutRecord succeeded); returns its URI."""
        return manifests.write_manifest(self._manifest_prefix(group), group, records, self.region, self.profile)

    def ingested(self, group: str) -> list[dict]:
        """Every ingestion manifest of the group (oldest first)."""
        return manifests.read_manifests(self._manifest_prefix(group), group, self.region, self.profile)

    # -- read -----------------------------------------------------------------------
    def _table(self, group: str) -> tuple[dict, str]:
        definition = self.describe(group)
        if definition is None:
            raise FeatureStoreError(
                f"feature group '{group}' does not exist in {self.region}; "
                "run `python run.py ingest` on this stack first"
            )
        offline = definition["OfflineStoreConfig"]
        if not offline.get("Database") or not offline.get("Table"):
            raise FeatureStoreError(f"feature group '{group}' has no offline store Glue table to query with Athena")
        return definition, f'"{offline["Database"]}"."{offline["Table"]}"'

    def _query(
        self,
        definition: dict,
        sql: str,
        types: dict[str, str],
        what: str,
        progress: Callable[[str], None] | None = None,
    ) -> tuple[dict, pd.DataFrame]:
        """Run ``sql`` in the group's offline-store database; returns (execution, result typed by ``types``)."""
        offline = definition["OfflineStoreConfig"]
        execution = athena.run_query(
            sql,
            offline["Database"],
            self.athena_output,
            self.region,
            catalog=offline["Catalog"],
            workgroup=self.athena_workgroup,
            polling=self.query_polling,
            profile=self.profile,
            progress=progress,
            what=what,
        )
        return execution, athena.read_result(execution, types, self.region, self.profile)

    def read(self, query: FeatureQuery) -> tuple[pd.DataFrame, str]:
        """Latest non-deleted record per customer in range (optionally as of a time); returns (frame, sql)."""
        definition, table = self._table(query.feature_group)
        columns = list(definition["FeatureDefinitions"]) + list(STORE_METADATA_COLUMNS)
        sql = latest_records_sql(query, table, columns)
        types = {**definition["FeatureDefinitions"], **METADATA_TYPES}
        try:
            execution, frame = self._query(
                definition, sql, types, f"Athena query for {query.describe()}", progress=self.progress
            )
        except AwsError as error:
            raise FeatureStoreError(f"reading {query.describe()} failed: {error}") from None
        manifests.check_complete(
            query, len(frame), self.ingested(query.feature_group), f"Athena execution {execution['QueryExecutionId']}"
        )
        if frame.empty:
            raise FeatureStoreError(
                f"no records found for {query.describe()} in {table} "
                f"(Athena execution {execution['QueryExecutionId']}); {OFFLINE_STORE_LAG}"
            )
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise FeatureStoreError(f"the Athena result for {query.describe()} lacks column(s) {', '.join(missing)}")
        return frame[columns].reset_index(drop=True), sql

    def record_count(self, group: str) -> int:
        """Distinct customers in the offline store (0 when the group does not exist)."""
        if self.describe_raw(group) is None:
            return 0
        definition, table = self._table(group)
        sql = f'SELECT count(DISTINCT "{ID_COLUMN}") AS customers FROM {table}'
        try:
            _, frame = self._query(definition, sql, {"customers": INTEGRAL}, f"counting records in '{group}'")
        except AwsError as error:
            raise FeatureStoreError(str(error)) from None
        return int(frame.iloc[0, 0]) if len(frame) and pd.notna(frame.iloc[0, 0]) else 0

    def get_records(self, group: str, ids: Iterable[str], features: list[str] | None = None) -> list[dict[str, Any]]:
        """Latest record per id from the online store (GetRecord), typed by the feature definitions."""
        definition = self.describe(group)
        if definition is None:
            raise FeatureStoreError(f"feature group '{group}' does not exist in {self.region}")
        types = definition["FeatureDefinitions"]
        out = []
        for record_id in ids:
            kwargs = {"FeatureGroupName": group, "RecordIdentifierValueAsString": str(record_id)}
            if features:
                kwargs["FeatureNames"] = list(dict.fromkeys([ID_COLUMN, *features]))
            with aws_errors(f"GetRecord {record_id} from '{group}'", FeatureStoreError):
                record = self._runtime.get_record(**kwargs).get("Record", [])
            out.append(
                {item["FeatureName"]: _typed(item["ValueAsString"], types.get(item["FeatureName"])) for item in record}
            )
        return out


def _record(row: tuple, columns: list[str], definitions: dict[str, str]) -> list[dict[str, str]]:
    record = []
    for name, value in zip(columns, row):
        if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
            continue  # a missing feature is simply absent from the record
        kind = definitions.get(name)
        if kind == INTEGRAL:
            text = str(int(value))
        elif kind == FRACTIONAL:
            text = repr(float(value))
        else:
            text = str(value)
        record.append({"FeatureName": name, "ValueAsString": text})
    return record


def _record_id(payload: list[dict[str, str]]) -> str:
    return next((item["ValueAsString"] for item in payload if item["FeatureName"] == ID_COLUMN), "?")


def _typed(text: str, kind: str | None) -> Any:
    if kind == INTEGRAL:
        return int(text)
    if kind == FRACTIONAL:
        return float(text)
    return text
