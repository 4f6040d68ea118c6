"""A local offline store laid out like SageMaker Feature Store's, read with DuckDB.

Layout under ``root``::

    <feature_group>/feature_group.json          # definition: features, types, ids
    <feature_group>/data/year=YYYY/month=MM/day=DD/hour=HH/<write-id>.parquet

Records are only ever appended (as SageMaker's offline store does); reads pick the
latest non-deleted record per customer with the shared SQL in ``feature_query``.

Concurrency: ``ingest`` holds a per-feature-group lock (``.<group>.lock`` beside the
group) while it checks the schema, creates the group and appends, so two first ingests
cannot both create it; the loser is checked against the winner's schema. Every file
is written under a unique temporary name and renamed into place, and a new group's
definition is written last: a writer killed at any point leaves the store reading as
before (leftover ``.tmp`` files are never read).
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from filelock import FileLock

from churn import names
from churn.feature_query import FeatureQuery, latest_records_sql
from churn.files import atomic_path, atomic_write_json
from churn.schema import EVENT_TIME, ID_COLUMN, STORE_METADATA_COLUMNS

DEFINITION_FILE = "feature_group.json"
# Arrow types that DuckDB's .df() gives a pandas nullable dtype when the column holds a null
_NULLABLE = {
    **{f"int{bits}": pd.api.types.pandas_dtype(f"Int{bits}") for bits in (8, 16, 32, 64)},
    **{f"uint{bits}": pd.api.types.pandas_dtype(f"UInt{bits}") for bits in (8, 16, 32, 64)},
    "bool": pd.BooleanDtype(),
}


class FeatureStoreError(RuntimeError):
    """A feature group that is missing, or a read that found nothing."""


class LocalOfflineStore:
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def _group_dir(self, group: str) -> Path:
        return self.root / names.feature_group(group)

    def lock(self, group: str, timeout: float = 600) -> FileLock:
        """The per-feature-group lock (held while creating, checking the schema and writing)."""
        self.root.mkdir(parents=True, exist_ok=True)
        return FileLock(str(self.root / f".{names.feature_group(group)}.lock"), timeout=timeout)

    def list_groups(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.parent.name for p in self.root.glob(f"*/{DEFINITION_FILE}"))

    def describe(self, group: str) -> dict | None:
        path = self._group_dir(group) / DEFINITION_FILE
        return json.loads(path.read_text()) if path.is_file() else None

    def create_group(self, group: str, feature_definitions: dict[str, str], target: str) -> dict:
        definition = {
            "FeatureGroupName": group,
            "RecordIdentifierFeatureName": ID_COLUMN,
            "EventTimeFeatureName": EVENT_TIME,
            "TargetColumn": target,
            "FeatureDefinitions": feature_definitions,
            "CreationTime": datetime.now(UTC).isoformat(),
            "OfflineStoreConfig": {"S3Uri": str(self._group_dir(group) / "data")},
        }
        for column in feature_definitions:
            names.feature(column)
        directory = self._group_dir(group)
        directory.mkdir(parents=True, exist_ok=True)
        atomic_write_json(directory / DEFINITION_FILE, definition)
        return definition

    def put_records(self, group: str, records: pd.DataFrame) -> Path:
        """Append records as one parquet file (written to a temp name, then renamed)."""
        if self.describe(group) is None:
            raise FeatureStoreError(f"feature group '{group}' does not exist")
        return self._append(group, records)

    def _append(self, group: str, records: pd.DataFrame) -> Path:
        now = datetime.now(UTC)
        partition = self._group_dir(group) / "data" / now.strftime("year=%Y/month=%m/day=%d/hour=%H")
        partition.mkdir(parents=True, exist_ok=True)
        target = partition / f"{now.strftime('%Y%m%dT%H%M%SZ')}_{uuid.uuid4().hex[:12]}.parquet"
        with atomic_path(target) as tmp:
            records.to_parquet(tmp, index=False)
        return target

    def ingest(self, group: str, frame: pd.DataFrame, target: str) -> dict[str, object]:
        """Validate ``frame`` against the group (created if missing) and append it, under the group's lock."""
        from churn.ingest import prepare_records

        with self.lock(group):
            existing = self.describe(group)
            records, definitions = prepare_records(
                frame, target, group, existing["FeatureDefinitions"] if existing else None
            )
            if existing is None:  # data from a first ingest killed before its definition was written is not ours
                shutil.rmtree(self._group_dir(group) / "data", ignore_errors=True)
                path = self._append(group, records)
                self.create_group(group, definitions, target)  # the definition last: it makes the group exist
            else:
                path = self.put_records(group, records)
        return {
            "feature_group": group,
            "records": len(records),
            "created": existing is None,
            "location": str(path),
            "feature_definitions": definitions,
        }

    def data_glob(self, group: str) -> str:
        return str(self._group_dir(group) / "data" / "**" / "*.parquet")

    def read_latest(self, query: FeatureQuery) -> tuple[pd.DataFrame, str]:
        """Latest non-deleted record per customer for ``query``; returns (frame, sql)."""
        import duckdb

        definition = self.describe(query.feature_group)
        if definition is None:
            known = ", ".join(self.list_groups()) or "none"
            raise FeatureStoreError(
                f"feature group '{query.feature_group}' does not exist in {self.root} "
                f"(feature groups: {known}); run `python run.py ingest` first"
            )
        columns = list(definition["FeatureDefinitions"]) + list(STORE_METADATA_COLUMNS)
        table = parquet_table(self.data_glob(query.feature_group))
        sql = latest_records_sql(query, table, columns)
        if not list(self._group_dir(query.feature_group).glob("data/**/*.parquet")):
            frame = pd.DataFrame(columns=columns)
        else:
            with duckdb.connect(":memory:") as connection:
                frame = arrow_to_frame(connection.sql(sql).to_arrow_table())
        if frame.empty:
            raise FeatureStoreError(f"no records found for {query.describe()}")
        return frame, sql


def arrow_to_frame(table) -> pd.DataFrame:
    """A pyarrow table as the DataFrame DuckDB's ``.df()`` makes of the same result, at half its cost.

    Training and scoring must see the same frame whichever way it was read: integer and boolean
    columns holding a null become pandas' nullable ``Int64``/``boolean`` (``.df()``'s dtypes; plain
    Arrow conversion would give float64 and object); every other column converts as ``.df()`` does
    (numpy int/float/bool, pandas ``str``).
    """
    frame = table.to_pandas()
    for name, column in zip(table.column_names, table.columns):
        nullable = _NULLABLE.get(str(column.type))
        if column.null_count and nullable is not None:
            frame[name] = column.to_pandas(types_mapper=lambda _, dtype=nullable: dtype)
    return frame


def parquet_table(glob: str) -> str:
    """DuckDB's table function over the parquet files matching ``glob`` (the path quoted as a literal)."""
    return "read_parquet(" + "'" + glob.replace("'", "''") + "'" + ", union_by_name = true)"
