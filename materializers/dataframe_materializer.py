"""A pandas materializer that gives ZenML a content hash, so unchanged data keeps the cache.

``source_features`` always reads the feature store (new ingests must be seen), so its
output is a new artifact on every run. ZenML's own pandas materializer has no content
hash, so every step after it would re-run even when the records are exactly the same.
With this one, the cache key of ``preprocess`` (and through it train/evaluate/gate)
depends on the records' values: a re-run on unchanged data reuses the earlier results
(the lineage then points at the run that trained the model), and any new, changed or
deleted record re-runs them. The hash is the data fingerprint the lineage records.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from zenml.integrations.pandas.materializers.pandas_materializer import PandasMaterializer

from churn.feature_query import fingerprint


class ContentHashedDataFrameMaterializer(PandasMaterializer):
    """ZenML's PandasMaterializer (same files, same visualizations) plus a content hash."""

    def compute_content_hash(self, data: Any) -> str | None:
        return fingerprint(data) if isinstance(data, pd.DataFrame) else None
