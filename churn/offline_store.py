"""A local offline store laid out like SageMaker Feature Store's, read with DuckDB.

Layout under ``root``::

    <feature_group>/feature_group.json          # definition: features, types, ids
    <feature_group>/data/year=YYYY/month=MM/day=DD/hour=HH/<write-id>.parquet

Records are only ever appended (as SageMaker's offline store does); reads pick the
latest non-deleted record per customer with the shared SQL in ``feature_query``.
"""

from __future__ import annotations

import json
import os
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Dict, List, Optional

import pandas as pd

from churn.feature_query import FeatureQuery, latest_records_sql
from churn.schema import EVENT_TIME, ID_COLUMN, STORE_METADATA_COLUMNS

DEFINITION_FILE = "feature_group.json"


class FeatureStoreError(RuntimeError):
    """A feature group that is missing, or a read that found nothing."""


class LocalOfflineStore:
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def _group_dir(self, group: str) -> Path:
        return self.root / group

    def list_groups(self) -> List[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.parent.name for p in self.root.glob(f"*/{DEFINITION_FILE}"))

    def describe(self, group: str) -> Optional[dict]:
        path = self._group_dir(group) / DEFINITION_FILE
        return json.loads(path.read_text()) if path.is_file() else None

    def create_group(self, group: str, feature_definitions: Dict[str, str], target: str) -> dict:
        definition = {
            "FeatureGroupName": group,
            "RecordIdentifierFeatureName": ID_COLUMN,
            "EventTimeFeatureName": EVENT_TIME,
            "TargetColumn": target,
            "FeatureDefinitions": feature_definitions,
            "CreationTime": datetime.now(timezone.utc).isoformat(),
            "OfflineStoreConfig": {"S3Uri": str(self._group_dir(group) / "data")},
        }
        directory = self._group_dir(group)
        directory.mkdir(parents=True, exist_ok=True)
        _atomic_write(directory / DEFINITION_FILE, json.dumps(definition, indent=2).encode())
        return definition

    def put_records(self, group: str, records: pd.DataFrame) -> Path:
        """Append records as one parquet file (written to a temp name, then renamed)."""
        if self.describe(group) is None:
            raise FeatureStoreError(f"feature group '{group}' does not exist")
        now = datetime.now(timezone.utc)
        partition = self._group_dir(group) / "data" / now.strftime("year=%Y/month=%m/day=%d/hour=%H")
        partition.mkdir(parents=True, exist_ok=True)
        target = partition / f"{now.strftime('%Y%m%dT%H%M%SZ')}_{uuid.uuid4().hex[:12]}.parquet"
        tmp = partition / f".{target.name}.tmp"
        records.to_parquet(tmp, index=False)
        os.replace(tmp, target)
        return target

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
        table = f"read_parquet('{self.data_glob(query.feature_group)}', union_by_name = true)"
        sql = latest_records_sql(query, table, columns)
        if not list(self._group_dir(query.feature_group).glob("data/**/*.parquet")):
            frame = pd.DataFrame(columns=columns)
        else:
            with duckdb.connect(":memory:") as connection:
                frame = connection.execute(sql).df()
        if frame.empty:
            raise FeatureStoreError(f"no records found for {query.describe()}")
        return frame, sql


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
