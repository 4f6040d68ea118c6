"""DataSource: read training records from the active stack's feature store."""

from __future__ import annotations

from typing import Annotated, Optional, Tuple

import pandas as pd
from zenml import step
from zenml.client import Client

from churn.feature_query import FeatureQuery, fingerprint
from materializers.dataframe_materializer import ContentHashedDataFrameMaterializer


# Always read the store (new ingests must be seen); the records carry a content hash, so the
# steps after this one stay cached while the data is unchanged.
@step(enable_cache=False, output_materializers={"raw_features": ContentHashedDataFrameMaterializer})
def source_features(
    feature_group_name: str, customer_id_start: int, customer_id_end: int, as_of: Optional[str] = None
) -> Tuple[Annotated[pd.DataFrame, "raw_features"], Annotated[dict, "feature_query"]]:
    """Latest non-deleted record per customer in [start, end] (CUST_XXXXXX), optionally as of a time.

    Returns:
        The records, and the query as lineage (feature group, range, SQL, fingerprint).
    """
    query = FeatureQuery(feature_group_name, customer_id_start, customer_id_end, as_of)
    feature_store = Client().active_stack.feature_store
    if feature_store is None:
        raise RuntimeError("the active stack has no feature store; run `python run.py stack setup local`")
    frame, sql = feature_store.read(query)
    lineage = {**query.to_dict(), "description": query.describe(), "sql": sql,
               "rows": len(frame), "data_fingerprint": fingerprint(frame)}
    print(f"Read {len(frame)} records from {query.describe()}")
    return frame, lineage
