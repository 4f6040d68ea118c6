"""The feature ingestion pipeline (the spec's feature_store_poc)."""

from __future__ import annotations

from zenml import pipeline

from steps.alert import notify_failure
from steps.ingest import ingest_features


@pipeline(on_failure=notify_failure, enable_cache=False)
def churn_feature_ingestion(
    feature_group_name: str,
    target_column: str = "churn",
    csv_path: str | None = None,
    demo_customers: int = 5000,
    demo_seed: int = 42,
) -> None:
    ingest_features(feature_group_name, target_column, csv_path, demo_customers, demo_seed)
