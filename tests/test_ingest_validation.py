import pandas as pd
import pytest

from churn.ingest import IngestError, prepare_records, read_csv


def test_bad_inputs_name_the_problem(tmp_path):
    ok = pd.DataFrame({"customer_id": [1, 2], "x": [1.0, 2.0], "churn": [0, 1]})
    cases = [
        (ok.drop(columns="customer_id"), "no 'customer_id' column"),
        (ok.drop(columns="churn"), "target column 'churn' is not in the data"),
        (ok.assign(churn=[0, 2]), "must be binary 0/1, found value\\(s\\) 2"),
        (ok.assign(churn=[0, None]), "target column 'churn' has missing values"),
        (ok.assign(customer_id=[1, 1]), "CUST_000001 appears more than once"),
        (ok.assign(customer_id=["abc", "CUST_000002"]), "row 1 has 'abc'"),
        (ok.iloc[:0], "no rows to ingest"),
        (ok.assign(event_time=["2026-01-01", "not a time"]), "column 'event_time' row 2"),
    ]
    for frame, message in cases:
        with pytest.raises(IngestError, match=message):
            prepare_records(frame, "churn", "g")


def test_schema_conflicts_with_existing_group_are_named():
    existing = {"customer_id": "String", "x": "Fractional", "churn": "Integral", "event_time": "String"}
    frame = pd.DataFrame({"customer_id": [1], "x": ["text"], "y": [1], "churn": [0]})
    with pytest.raises(IngestError, match="column 'y' is not in the feature group; column 'x' is String here but Fractional"):
        prepare_records(frame, "churn", "g", existing)
    # ints are accepted into a Fractional column
    records, _ = prepare_records(pd.DataFrame({"customer_id": [1], "x": [3], "churn": [0]}), "churn", "g", existing)
    assert records["x"].dtype == float


def test_csv_reading_errors(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(IngestError, match="is empty"):
        read_csv(empty)
    header_only = tmp_path / "header.csv"
    header_only.write_text("customer_id,churn\n")
    with pytest.raises(IngestError, match="header but no rows"):
        read_csv(header_only)


def test_records_get_store_metadata_and_customer_keys():
    records, definitions = prepare_records(pd.DataFrame({"customer_id": [7], "x": [1.5], "churn": [1]}), "churn", "g",
                                           now="2026-01-01T00:00:00.000000Z")
    row = records.iloc[0]
    assert row["customer_id"] == "CUST_000007"
    assert row["event_time"] == row["write_time"] == row["api_invocation_time"] == "2026-01-01T00:00:00.000000Z"
    assert row["is_deleted"] is False or row["is_deleted"] == False  # noqa: E712
    assert definitions == {"customer_id": "String", "x": "Fractional", "churn": "Integral", "event_time": "String"}
