"""DataSource: read training records from the active stack's feature store."""

from __future__ import annotations

from typing import Annotated

import pandas as pd
from zenml import step
from zenml.client import Client

from churn.artifacts import FeatureLineage
from churn.feature_query import FeatureQuery
from materializers.artifact_materializer import TypedArtifactMaterializer
from materializers.dataframe_materializer import ContentHashedDataFrameMaterializer


# Always read the store (new ingests must be seen); the records carry a content hash, so the
# steps after this one stay cached while the data is unchanged.
@step(
    enable_cache=False,
    output_materializers={
        "raw_features": ContentHashedDataFrameMaterializer,
        "feature_query": TypedArtifactMaterializer,
    },
)
def source_features(
    feature_group_name: str, customer_id_start: int, customer_id_end: int, as_of: str | None = None
) -> tuple[Annotated[pd.DataFrame, "raw_features"], Annotated[FeatureLineage, "feature_query"]]:
    """Latest non-deleted record per customer in [start, end] (CUST_XXXXXX), optionally as of a time.

    Args:
        feature_group_name: The feature group to read.
        customer_id_start: First customer id of the range (inclusive).
        customer_id_end: Last customer id of the range (inclusive).
        as_of: Point-in-time read: an ISO-8601 UTC timestamp (None: the latest records).

    Returns:
        The records, and the query as lineage (feature group, range, SQL, rows, fingerprint).

    Raises:
        RuntimeError: The active stack has no feature store.
    """
    query = FeatureQuery(feature_group_name, customer_id_start, customer_id_end, as_of)
    feature_store = Client().active_stack.feature_store
    if feature_store is None:
        raise RuntimeError("the active stack has no feature store; run `python run.py stack setup local`")
    frame, sql = feature_store.read(query)
    print(f"Read {len(frame)} records from {query.describe()}")
    return frame, FeatureLineage.of_read(query, sql, frame)
