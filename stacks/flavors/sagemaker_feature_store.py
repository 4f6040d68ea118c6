"""SageMaker feature store flavor: PutRecord ingestion, offline-store reads through Athena.

The feature-store contract (``stacks.contracts.ChurnFeatureStore``: ``describe``, ``record_count``,
``ingest``, ``read``), so the steps do not know which backend they talk to. The logic is in
``churn.aws.feature_store``; this is the ZenML wrapper.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from pydantic import model_validator
from zenml.feature_stores.base_feature_store import BaseFeatureStoreConfig, BaseFeatureStoreFlavor

from churn.aws.athena import Polling
from churn.aws.feature_store import FeatureGroupClient as _Store
from churn.aws.settings import component_check
from churn.feature_query import FeatureQuery
from churn.schema import ID_COLUMN
from stacks.contracts import ChurnFeatureStore

FLAVOR = "churn_sagemaker_feature_store"


class SageMakerFeatureStoreConfig(BaseFeatureStoreConfig):
    """Where the feature groups live; credentials come from the environment/profile/role only.

    ``offline_store_s3_uri``: S3 location new feature groups write their offline store to;
    ``athena_query_results``: S3 location for Athena results (spec key of the same name).
    """

    region: str
    role_arn: str
    offline_store_s3_uri: str
    athena_query_results: str
    athena_workgroup: str = "primary"
    enable_online_store: bool = True
    ingest_max_workers: int = 8
    query_timeout_seconds: float = 600.0
    poll_initial_seconds: float = 0.5
    poll_max_seconds: float = 5.0
    aws_profile: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _check(cls, values: Any) -> Any:
        return component_check(values)


class SageMakerFeatureStore(ChurnFeatureStore):
    """The feature-store contract (``stacks.contracts.ChurnFeatureStore``) over SageMaker Feature Store + Athena."""

    @property
    def config(self) -> SageMakerFeatureStoreConfig:
        return self._config  # type: ignore[return-value]

    @property
    def store(self) -> _Store:
        c = self.config
        polling = Polling(initial=c.poll_initial_seconds, maximum=c.poll_max_seconds, timeout=c.query_timeout_seconds)
        create = Polling(initial=c.poll_initial_seconds, maximum=max(c.poll_max_seconds, 15.0), timeout=900.0)
        return _Store(
            c.region,
            c.role_arn,
            c.offline_store_s3_uri,
            c.athena_query_results,
            athena_workgroup=c.athena_workgroup,
            enable_online_store=c.enable_online_store,
            max_workers=c.ingest_max_workers,
            query_polling=polling,
            create_polling=create,
            profile=c.aws_profile,
        )

    def record_count(self, feature_group: str) -> int:
        return self.store.record_count(feature_group)

    def read(self, query: FeatureQuery) -> tuple[pd.DataFrame, str]:
        return self.store.read(query)

    def get_online_features(
        self, entity_rows: list[dict[str, Any]], features: list[str], full_feature_names: bool = False
    ) -> dict[str, Any]:
        """Latest record per customer from the online store; ``features`` are ``group:column`` references."""
        group, columns = self.online_feature_refs(features)
        records = self.store.get_records(group, [str(r[ID_COLUMN]) for r in entity_rows], columns)
        return {name: [record.get(name) for record in records] for name in [ID_COLUMN, *columns]}


class SageMakerFeatureStoreFlavor(BaseFeatureStoreFlavor):
    @property
    def name(self) -> str:
        return FLAVOR

    @property
    def config_class(self) -> type[SageMakerFeatureStoreConfig]:
        return SageMakerFeatureStoreConfig

    @property
    def implementation_class(self) -> type[SageMakerFeatureStore]:
        return SageMakerFeatureStore
