"""Column names shared by the feature store, preprocessing and the endpoint."""

ID_COLUMN = "customer_id"
EVENT_TIME = "event_time"
# Columns SageMaker Feature Store adds to every offline-store record.
STORE_METADATA_COLUMNS = ("write_time", "api_invocation_time", "is_deleted")
# The spec: "Drops identifier and metadata columns".
NON_FEATURE_COLUMNS = (ID_COLUMN, EVENT_TIME, *STORE_METADATA_COLUMNS)
DEFAULT_TARGET = "churn"


def customer_key(number: int) -> str:
    """The feature store's record identifier for a customer number (CUST_XXXXXX)."""
    if number < 0 or number > 999_999:
        raise ValueError(f"customer number {number} does not fit CUST_XXXXXX")
    return f"CUST_{number:06d}"
