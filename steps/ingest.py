"""Feature ingestion: validated records into the active stack's feature store."""

from __future__ import annotations

from typing import Annotated

from zenml import log_metadata, step
from zenml.client import Client

from churn.demo_data import generate_customers
from churn.ingest import read_csv


@step(enable_cache=False)
def ingest_features(
    feature_group_name: str,
    target_column: str = "churn",
    csv_path: str | None = None,
    demo_customers: int = 5000,
    demo_seed: int = 42,
) -> Annotated[dict, "ingestion_summary"]:
    """Ingest a CSV (any customer_id + binary target file) or the seeded demo data.

    Everything is validated before anything is written; the feature group is created
    (schema inferred and recorded) if it does not exist.

    Args:
        feature_group_name: The feature group to write.
        target_column: The binary target column of the records.
        csv_path: A CSV to ingest (None: the seeded demo data).
        demo_customers: Demo data: number of customers.
        demo_seed: Demo data: the seed.

    Returns:
        What was ingested (records, whether the group was created, its feature definitions, the source).

    Raises:
        RuntimeError: The active stack has no feature store.
        churn.ingest.IngestError: The records are invalid (nothing is written).
    """
    frame = read_csv(csv_path) if csv_path else generate_customers(demo_customers, demo_seed)
    feature_store = Client().active_stack.feature_store
    if feature_store is None:
        raise RuntimeError("the active stack has no feature store; run `python run.py stack setup local`")
    summary = feature_store.ingest(feature_group_name, frame, target_column)
    summary["source"] = csv_path or f"demo data ({demo_customers} customers, seed {demo_seed})"
    log_metadata(metadata={"ingestion": {k: v for k, v in summary.items() if k != "feature_definitions"}})
    print(
        f"Ingested {summary['records']} records into '{feature_group_name}'"
        f"{' (feature group created)' if summary['created'] else ''}"
    )
    return summary
