"""Local feature store flavor: parquet offline store laid out like SageMaker's, read with DuckDB."""

from __future__ import annotations

import os
from typing import Any

import pandas as pd
from zenml.config.global_config import GlobalConfiguration
from zenml.feature_stores.base_feature_store import BaseFeatureStoreConfig, BaseFeatureStoreFlavor

from churn.feature_query import FeatureQuery
from churn.offline_store import LocalOfflineStore, parquet_table
from churn.schema import ID_COLUMN
from stacks.contracts import ChurnFeatureStore

FLAVOR = "churn_local_offline"


class LocalFeatureStoreConfig(BaseFeatureStoreConfig):
    """``path``: root of the offline store (default: inside ZenML's local stores)."""

    path: str | None = None

    @property
    def is_local(self) -> bool:
        return True


class LocalFeatureStore(ChurnFeatureStore):
    """The feature-store contract (``stacks.contracts.ChurnFeatureStore``) over a local parquet offline store."""

    @property
    def config(self) -> LocalFeatureStoreConfig:
        return self._config  # type: ignore[return-value]

    @property
    def store(self) -> LocalOfflineStore:
        root = self.config.path or os.path.join(GlobalConfiguration().local_stores_path, "feature_store", str(self.id))
        return LocalOfflineStore(root)

    def record_count(self, feature_group: str) -> int:
        import duckdb

        if self.describe(feature_group) is None or not any(self.store.root.glob(f"{feature_group}/data/**/*.parquet")):
            return 0
        with duckdb.connect(":memory:") as con:
            sql = f"SELECT count(DISTINCT customer_id) FROM {parquet_table(self.store.data_glob(feature_group))}"
            return int(con.execute(sql).fetchone()[0])

    def read(self, query: FeatureQuery) -> tuple[pd.DataFrame, str]:
        return self.store.read_latest(query)

    def get_online_features(
        self, entity_rows: list[dict[str, Any]], features: list[str], full_feature_names: bool = False
    ) -> dict[str, Any]:
        """Latest record per customer (from the offline store); ``features`` are ``feature_group:column`` references."""
        group, wanted = self.online_feature_refs(features)
        ids = [str(row[ID_COLUMN]) for row in entity_rows]
        numbers = [int(i.replace("CUST_", "")) for i in ids]
        frame, _ = self.read(FeatureQuery(group, min(numbers), max(numbers)))
        frame = frame[frame[ID_COLUMN].isin(ids)]
        return frame[[ID_COLUMN, *wanted]].to_dict(orient="list")


class LocalFeatureStoreFlavor(BaseFeatureStoreFlavor):
    @property
    def name(self) -> str:
        return FLAVOR

    @property
    def config_class(self) -> type[LocalFeatureStoreConfig]:
        return LocalFeatureStoreConfig

    @property
    def implementation_class(self) -> type[LocalFeatureStore]:
        return LocalFeatureStore
