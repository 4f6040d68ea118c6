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
    with pytest.raises(
        IngestError, match="column 'y' is not in the feature group; column 'x' is String here but Fractional"
    ):
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
    records, definitions = prepare_records(
        pd.DataFrame({"customer_id": [7], "x": [1.5], "churn": [1]}), "churn", "g", now="2026-01-01T00:00:00.000000Z"
    )
    row = records.iloc[0]
    assert row["customer_id"] == "CUST_000007"
    assert row["event_time"] == row["write_time"] == row["api_invocation_time"] == "2026-01-01T00:00:00.000000Z"
    assert row["is_deleted"] is False or row["is_deleted"] == False  # noqa: E712
    assert definitions == {"customer_id": "String", "x": "Fractional", "churn": "Integral", "event_time": "String"}


def test_epoch_event_times_are_read_as_seconds_or_milliseconds_never_1970():
    base = pd.DataFrame({"customer_id": [1, 2], "x": [1.0, 2.0], "churn": [0, 1]})
    seconds, _ = prepare_records(base.assign(event_time=[1767225600, 1767229200]), "churn", "g")
    assert seconds["event_time"].tolist() == ["2026-01-01T00:00:00.000Z", "2026-01-01T01:00:00.000Z"]
    millis, _ = prepare_records(base.assign(event_time=[1767225600123, 1767229200000]), "churn", "g")
    assert millis["event_time"].tolist() == ["2026-01-01T00:00:00.123Z", "2026-01-01T01:00:00.000Z"]
    for values in ([1767225600, 1767225600123], [1767225600 * 10**6, 1], [-5, 1767225600]):
        with pytest.raises(IngestError, match="column 'event_time' row .* is not a Unix epoch time"):
            prepare_records(base.assign(event_time=values), "churn", "g")


def test_duplicate_csv_headers_are_refused_by_name(tmp_path):
    path = tmp_path / "dup.csv"
    path.write_text("customer_id,x,churn,x\n1,1.0,0,2.0\n")
    with pytest.raises(IngestError, match="column\\(s\\) 'x' appear more than once in the header"):
        read_csv(path)


def test_ids_outside_the_six_digit_range_and_bad_column_names_are_refused():
    base = pd.DataFrame({"customer_id": [1, 1_000_000], "x": [1.0, 2.0], "churn": [0, 1]})
    with pytest.raises(IngestError, match="row 2 has 1000000, outside the customer id range 0..999999"):
        prepare_records(base, "churn", "g")
    with pytest.raises(IngestError, match="row 1 has -3, outside"):
        prepare_records(base.assign(customer_id=[-3, 2]), "churn", "g")
    with pytest.raises(IngestError, match="column 'a\"b' is not a valid name"):
        prepare_records(base.assign(customer_id=[1, 2]).rename(columns={"x": 'a"b'}), "churn", "g")


def test_ingest_command_refuses_zero_customers_and_traversal_names():
    from click.testing import CliRunner

    import run as cli_module

    zero = CliRunner().invoke(cli_module.cli, ["ingest", "--customers", "0"])
    assert zero.exit_code != 0 and "Invalid value for '--customers': 0 is not in the range 1<=x<=999999" in zero.output
    escape = CliRunner().invoke(cli_module.cli, ["ingest", "--feature-group", "../../x"])
    assert escape.exit_code != 0 and "feature group '../../x' is not a valid name" in escape.output
    delete = CliRunner().invoke(cli_module.cli, ["schedule", "delete", "../../x"])
    assert delete.exit_code != 0 and "schedule '../../x' is not a valid name" in delete.output
