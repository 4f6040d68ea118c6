"""A pandas materializer that gives ZenML a content hash, so unchanged data keeps the cache.

``source_features`` always reads the feature store (new ingests must be seen), so its
output is a new artifact on every run. ZenML's own pandas materializer has no content
hash, so every step after it would re-run even when the records are exactly the same.
With this one, the cache key of ``preprocess`` (and through it train/evaluate/gate)
depends on the records' values: a re-run on unchanged data reuses the earlier results
(the lineage then points at the run that trained the model), and any new, changed or
deleted record re-runs them.
"""

from __future__ import annotations

import hashlib
from typing import Any, Optional

import pandas as pd
from zenml.integrations.pandas.materializers.pandas_materializer import PandasMaterializer


def frame_content_hash(frame: pd.DataFrame) -> str:
    """SHA-256 over column names, dtypes and every value (row order included)."""
    digest = hashlib.sha256()
    digest.update(repr([(str(name), str(dtype)) for name, dtype in frame.dtypes.items()]).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=True).to_numpy().tobytes())
    return digest.hexdigest()


class ContentHashedDataFrameMaterializer(PandasMaterializer):
    """ZenML's PandasMaterializer (same files, same visualizations) plus a content hash."""

    def compute_content_hash(self, data: Any) -> Optional[str]:
        return frame_content_hash(data) if isinstance(data, pd.DataFrame) else None
