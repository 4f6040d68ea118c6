"""The shared feature-store SQL, run by DuckDB over a parquet offline store."""

import pandas as pd
import pytest

from churn.feature_query import FeatureQuery, latest_records_sql
from churn.ingest import prepare_records
from churn.offline_store import FeatureStoreError, LocalOfflineStore


def _store(tmp_path, rows, now="2026-02-01T00:00:00.000000Z"):
    store = LocalOfflineStore(tmp_path)
    records, definitions = prepare_records(pd.DataFrame(rows), "churn", "g", None, now=now)
    store.create_group("g", definitions, "churn")
    store.put_records("g", records)
    return store


def test_latest_record_per_customer_wins_and_range_is_inclusive(tmp_path):
    store = _store(
        tmp_path,
        [
            {"customer_id": 1, "x": 1.0, "churn": 0, "event_time": "2026-01-01T00:00:00Z"},
            {"customer_id": 2, "x": 2.0, "churn": 1, "event_time": "2026-01-01T00:00:00Z"},
            {"customer_id": 3, "x": 3.0, "churn": 0, "event_time": "2026-01-01T00:00:00Z"},
        ],
    )
    update, _ = prepare_records(
        pd.DataFrame([{"customer_id": 2, "x": 20.0, "churn": 0, "event_time": "2026-01-05T00:00:00Z"}]),
        "churn",
        "g",
        store.describe("g")["FeatureDefinitions"],
    )
    store.put_records("g", update)
    frame, sql = store.read_latest(FeatureQuery("g", 1, 2))
    assert frame["customer_id"].tolist() == ["CUST_000001", "CUST_000002"]  # 3 is out of range
    assert frame.set_index("customer_id").loc["CUST_000002", "x"] == 20.0  # no duplicate, latest wins
    assert "ROW_NUMBER() OVER" in sql and "'CUST_000001' AND 'CUST_000002'" in sql


def test_as_of_reads_the_past_and_deleted_customers_are_gone(tmp_path):
    store = _store(
        tmp_path,
        [
            {"customer_id": 1, "x": 1.0, "churn": 0, "event_time": "2026-01-01T00:00:00Z"},
            {"customer_id": 2, "x": 2.0, "churn": 1, "event_time": "2026-01-01T00:00:00Z"},
        ],
    )
    later, _ = prepare_records(
        pd.DataFrame([{"customer_id": 1, "x": 9.0, "churn": 1, "event_time": "2026-03-01T00:00:00Z"}]),
        "churn",
        "g",
        store.describe("g")["FeatureDefinitions"],
    )
    store.put_records("g", later)
    past, _ = store.read_latest(FeatureQuery("g", 1, 2, as_of="2026-02-01T00:00:00Z"))
    assert past.set_index("customer_id").loc["CUST_000001", "x"] == 1.0
    now, _ = store.read_latest(FeatureQuery("g", 1, 2))
    assert now.set_index("customer_id").loc["CUST_000001", "x"] == 9.0
    # a delete marker as the latest record removes the customer
    deleted = later.assign(is_deleted=True, event_time="2026-04-01T00:00:00.000000Z")
    store.put_records("g", deleted)
    after, _ = store.read_latest(FeatureQuery("g", 1, 2))
    assert after["customer_id"].tolist() == ["CUST_000002"]


def test_empty_range_and_missing_group_are_clear_errors(tmp_path):
    store = _store(tmp_path, [{"customer_id": 1, "x": 1.0, "churn": 0}])
    with pytest.raises(
        FeatureStoreError, match=r"no records found for feature group 'g', customer_id CUST_000500\.\.CUST_000600"
    ):
        store.read_latest(FeatureQuery("g", 500, 600))
    with pytest.raises(FeatureStoreError, match="feature group 'nope' does not exist"):
        store.read_latest(FeatureQuery("nope", 1, 2))


def test_query_validates_its_inputs():
    with pytest.raises(ValueError, match="range is empty"):
        FeatureQuery("g", 10, 5)
    with pytest.raises(ValueError, match="as_of must be an ISO-8601"):
        FeatureQuery("g", 1, 5, as_of="yesterday'; DROP TABLE x; --")
    sql = latest_records_sql(FeatureQuery("g", 1, 5, "2026-01-01T00:00:00Z"), '"db"."tbl"', ["customer_id", "x"])
    assert "event_time <= '2026-01-01T00:00:00.000Z'" in sql and 'FROM "db"."tbl"' in sql


def test_ties_on_event_time_go_to_the_record_feature_store_received_last(tmp_path):
    # same event time twice: AWS orders by api_invocation_time before write_time (a record can reach
    # the offline store, write_time, after a later PutRecord's did)
    store = _store(tmp_path, [{"customer_id": 1, "x": 1.0, "churn": 0, "event_time": "2026-01-01T00:00:00Z"}])
    definitions = store.describe("g")["FeatureDefinitions"]
    row = [{"customer_id": 1, "x": 0.0, "churn": 0, "event_time": "2026-01-02T00:00:00Z"}]
    received_last, _ = prepare_records(pd.DataFrame(row).assign(x=2.0), "churn", "g", definitions)
    received_first, _ = prepare_records(pd.DataFrame(row).assign(x=3.0), "churn", "g", definitions)
    store.put_records(
        "g", received_last.assign(api_invocation_time="2026-01-02T00:00:05.000Z", write_time="2026-01-02T00:01:00.000Z")
    )
    store.put_records(
        "g",
        received_first.assign(api_invocation_time="2026-01-02T00:00:01.000Z", write_time="2026-01-02T00:09:00.000Z"),
    )
    frame, sql = store.read_latest(FeatureQuery("g", 1, 1))
    assert frame["x"].tolist() == [2.0]
    assert "ORDER BY event_time DESC, api_invocation_time DESC, write_time DESC" in sql


def test_event_times_and_as_of_compare_at_millisecond_precision(tmp_path):
    store = _store(
        tmp_path,
        [
            {"customer_id": 1, "x": 1.0, "churn": 0, "event_time": "2026-01-01T00:00:00.400Z"},
            {"customer_id": 2, "x": 2.0, "churn": 1, "event_time": "2026-01-01T00:00:00.000123Z"},
        ],
    )
    frame, _ = store.read_latest(FeatureQuery("g", 1, 2))
    assert frame["event_time"].tolist() == ["2026-01-01T00:00:00.400Z", "2026-01-01T00:00:00.000Z"]
    # as_of without fractions means .000: a record 400 ms later is not "as of" it
    past, _ = store.read_latest(FeatureQuery("g", 1, 2, as_of="2026-01-01T00:00:00Z"))
    assert past["customer_id"].tolist() == ["CUST_000002"]
