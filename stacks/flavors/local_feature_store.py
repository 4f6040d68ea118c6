"""Local feature store flavor: parquet offline store laid out like SageMaker's, read with DuckDB."""

from __future__ import annotations

import os
from typing import Any, Dict, List, Optional, Type

import pandas as pd
from zenml.config.global_config import GlobalConfiguration
from zenml.feature_stores.base_feature_store import BaseFeatureStore, BaseFeatureStoreConfig, BaseFeatureStoreFlavor

from churn.feature_query import FeatureQuery
from churn.offline_store import LocalOfflineStore, parquet_table

FLAVOR = "churn_local_offline"


class LocalFeatureStoreConfig(BaseFeatureStoreConfig):
    """``path``: root of the offline store (default: inside ZenML's local stores)."""

    path: Optional[str] = None

    @property
    def is_local(self) -> bool:
        return True


class LocalFeatureStore(BaseFeatureStore):
    """The feature store contract our steps use: ``ingest``, ``read`` and ``describe``."""

    @property
    def config(self) -> LocalFeatureStoreConfig:
        return self._config  # type: ignore[return-value]

    @property
    def store(self) -> LocalOfflineStore:
        root = self.config.path or os.path.join(GlobalConfiguration().local_stores_path, "feature_store", str(self.id))
        return LocalOfflineStore(root)

    def describe(self, feature_group: str) -> Optional[dict]:
        return self.store.describe(feature_group)

    def record_count(self, feature_group: str) -> int:
        import duckdb

        if self.describe(feature_group) is None or not any(self.store.root.glob(f"{feature_group}/data/**/*.parquet")):
            return 0
        with duckdb.connect(":memory:") as con:
            sql = f"SELECT count(DISTINCT customer_id) FROM {parquet_table(self.store.data_glob(feature_group))}"
            return int(con.execute(sql).fetchone()[0])

    def ingest(self, feature_group: str, frame: pd.DataFrame, target: str) -> Dict[str, Any]:
        """Validate everything, then create the group if missing and append the records (under the group's lock)."""
        return self.store.ingest(feature_group, frame, target)

    def read(self, query: FeatureQuery) -> tuple[pd.DataFrame, str]:
        """Latest non-deleted record per customer in range; returns (frame, the SQL run)."""
        return self.store.read_latest(query)

    # ZenML's generic feature-store API, answered from the same offline store.
    def get_historical_features(self, entity_df: Any, features: List[str], full_feature_names: bool = False) -> Any:
        query = entity_df if isinstance(entity_df, FeatureQuery) else FeatureQuery(**entity_df)
        frame, _ = self.read(query)
        return frame[[c for c in frame.columns if c in set(features) | {"customer_id"}]] if features else frame

    def get_online_features(self, entity_rows: List[Dict[str, Any]], features: List[str], full_feature_names: bool = False) -> Dict[str, Any]:
        """Latest record per customer; ``features`` are ``feature_group:column`` references."""
        refs = [f.split(":", 1) for f in features]
        groups = {ref[0] for ref in refs}
        if len(groups) != 1 or any(len(ref) != 2 for ref in refs):
            raise ValueError("features must be 'feature_group:column' references to one feature group")
        ids = [str(row["customer_id"]) for row in entity_rows]
        numbers = [int(i.replace("CUST_", "")) for i in ids]
        frame, _ = self.read(FeatureQuery(groups.pop(), min(numbers), max(numbers)))
        frame = frame[frame["customer_id"].isin(ids)]
        columns = ["customer_id", *[ref[1] for ref in refs if ref[1] != "customer_id"]]
        return frame[columns].to_dict(orient="list")


class LocalFeatureStoreFlavor(BaseFeatureStoreFlavor):
    @property
    def name(self) -> str:
        return FLAVOR

    @property
    def config_class(self) -> Type[LocalFeatureStoreConfig]:
        return LocalFeatureStoreConfig

    @property
    def implementation_class(self) -> Type[LocalFeatureStore]:
        return LocalFeatureStore
