"""SageMaker feature store against the emulator: ingest (PutRecord), then read (Athena)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from churn.aws.athena import Polling, read_result, run_query
from churn.aws.feature_store import FeatureGroupClient
from churn.feature_query import FeatureQuery
from churn.ingest import IngestError, prepare_records
from churn.offline_store import FeatureStoreError, LocalOfflineStore
from churn.schema import STORE_METADATA_COLUMNS
from tests.cloud import moto_extensions as emulator
from tests.cloud.conftest import BUCKET, PREFIX, REGION, ROLE_ARN, boto

GROUP = "mlops_poc_churn_classification_feature"
FAST = Polling(initial=0.01, maximum=0.05, timeout=20)


def make_store(**kwargs) -> FeatureGroupClient:
    return FeatureGroupClient(
        REGION,
        ROLE_ARN,
        f"s3://{BUCKET}/{PREFIX}/feature-store",
        f"s3://{BUCKET}/athena-query-results/",
        query_polling=FAST,
        create_polling=FAST,
        max_workers=4,
        progress=lambda _: None,
        **kwargs,
    )


def queue_latest(aws, query: FeatureQuery) -> str:
    return emulator.queue_latest_records(aws, query, REGION)


@pytest.fixture
def customers(demo_frame):
    frame = demo_frame.iloc[:60].copy()
    frame.loc[3, "total_charges"] = np.nan  # missing numbers and categories, as real exports have
    frame.loc[5, "payment_method"] = None
    return frame


def test_ingest_creates_the_group_and_puts_every_record(aws, bucket, customers):
    store = make_store()
    assert store.describe(GROUP) is None and store.record_count(GROUP) == 0
    summary = store.ingest(GROUP, customers, "churn")
    assert summary["created"] and summary["records"] == 60

    _, expected_definitions = prepare_records(customers, "churn", GROUP)
    described = store.describe(GROUP)
    assert described["FeatureDefinitions"] == expected_definitions
    assert described["RecordIdentifierFeatureName"] == "customer_id" and described["TargetColumn"] == "churn"
    raw = boto("sagemaker").describe_feature_group(FeatureGroupName=GROUP)
    assert raw["OfflineStoreConfig"]["S3StorageConfig"]["S3Uri"] == f"s3://{BUCKET}/{PREFIX}/feature-store"
    assert raw["RoleArn"] == ROLE_ARN

    held = emulator.offline_records(GROUP).set_index("customer_id")
    assert len(held) == 60 and held.loc["CUST_000001", "age"] == customers.loc[0, "age"]
    assert pd.isna(held.loc["CUST_000004", "total_charges"]) and pd.isna(held.loc["CUST_000006", "payment_method"])
    # metadata columns are the store's, not features: never sent with PutRecord
    assert set(held.columns) >= set(STORE_METADATA_COLUMNS)

    online = store.get_records(GROUP, ["CUST_000002"], ["age", "monthly_charges"])
    assert online == [
        {
            "customer_id": "CUST_000002",
            "age": int(customers.loc[1, "age"]),
            "monthly_charges": float(customers.loc[1, "monthly_charges"]),
        }
    ]


def test_read_runs_the_shared_sql_and_parses_dtypes_and_missing_values(aws, bucket, customers, tmp_path):
    store = make_store()
    store.ingest(GROUP, customers, "churn")
    changed = customers.iloc[:1].assign(age=99, event_time="2026-03-01T00:00:00Z")
    store.ingest(GROUP, changed, "churn")  # a newer record for CUST_000001
    query = FeatureQuery(GROUP, 1, 40)
    expected_sql = queue_latest(aws, query)

    frame, sql = store.read(query)

    assert sql == expected_sql == emulator.athena_queries()[-1]
    database, table = emulator.offline_table(GROUP)
    assert f'FROM "{database}"."{table}"' in sql and "BETWEEN 'CUST_000001' AND 'CUST_000040'" in sql
    assert len(frame) == 40 and frame["customer_id"].is_unique
    assert frame.set_index("customer_id").loc["CUST_000001", "age"] == 99
    assert frame["age"].dtype == np.int64 and frame["churn"].dtype == np.int64
    assert frame["monthly_charges"].dtype == np.float64 and frame["total_charges"].dtype == np.float64
    assert frame["is_deleted"].dtype == bool and not frame["is_deleted"].any()
    assert pd.api.types.is_string_dtype(frame["contract_type"])
    assert pd.isna(frame.loc[3, "total_charges"]) and pd.isna(frame.loc[5, "payment_method"])

    # the local store, given the same two ingestions, reads the same features (one SQL, same semantics)
    local = LocalOfflineStore(tmp_path)
    records, definitions = prepare_records(customers, "churn", GROUP)
    local.create_group(GROUP, definitions, "churn")
    local.put_records(GROUP, records)
    local.put_records(GROUP, prepare_records(changed, "churn", GROUP, definitions)[0])
    local_frame, _ = local.read_latest(query)
    features = [c for c in definitions if c != "event_time"]
    pd.testing.assert_frame_equal(frame[features], local_frame[features], check_dtype=False)
    assert frame["event_time"].tolist() == local_frame["event_time"].tolist()


def test_read_errors_name_the_group_and_range(aws, bucket, customers):
    store = make_store()
    with pytest.raises(FeatureStoreError, match=f"feature group '{GROUP}' does not exist in {REGION}"):
        store.read(FeatureQuery(GROUP, 1, 10))
    store.ingest(GROUP, customers, "churn")
    emulator.queue_athena_result(aws, pd.DataFrame({c: [] for c in ["customer_id", "age"]}))
    with pytest.raises(
        FeatureStoreError,
        match=r"no records found for feature group '.*', customer_id "
        r"CUST_900000..CUST_900100 .*15 minutes",
    ):
        store.read(FeatureQuery(GROUP, 900000, 900100))


def test_invalid_input_writes_nothing(aws, bucket, customers):
    store = make_store()
    with pytest.raises(IngestError, match="must be binary"):
        store.ingest(GROUP, customers.assign(churn=2), "churn")
    assert store.describe(GROUP) is None  # not even the group
    store.ingest(GROUP, customers, "churn")
    with pytest.raises(IngestError, match="schema conflicts"):
        store.ingest(GROUP, customers.assign(new_column=1), "churn")
    assert len(emulator.offline_records(GROUP)) == 60


def test_athena_result_with_missing_integers_and_a_query_that_times_out(aws, bucket):
    result = pd.DataFrame(
        {"customer_id": ["CUST_000001", "CUST_000002"], "age": [30, None], "is_deleted": [False, False]}
    )
    emulator.queue_athena_result(aws, result)
    execution = run_query(
        "SELECT 1", "sagemaker_featurestore", f"s3://{BUCKET}/athena-query-results/", REGION, polling=FAST
    )
    frame = read_result(execution, {"customer_id": "String", "age": "Integral", "is_deleted": "Boolean"}, REGION)
    assert frame["age"].dtype == np.float64 and frame["age"].isna().tolist() == [False, True]
    assert frame["is_deleted"].dtype == bool

    from churn.aws.athena import QueryError

    with pytest.raises(QueryError, match=r"counting did not finish within 0s .*it was stopped"):
        run_query(
            "SELECT 1",
            "sagemaker_featurestore",
            f"s3://{BUCKET}/athena-query-results/",
            REGION,
            polling=Polling(timeout=0.0),
            what="counting",
        )


def test_event_times_are_written_with_millisecond_precision(aws, bucket, customers):
    # the emulator refuses what PutRecord refuses: a String event time other than ...ss'Z' or ...ss.SSS'Z'
    store = make_store()
    given = customers.iloc[:3].assign(
        event_time=["2026-03-01T10:00:00.123456Z", "2026-03-01T10:00:00.000001Z", "2026-03-01T12:00:00.500000+02:00"]
    )
    store.ingest(GROUP, given, "churn")
    held = emulator.offline_records(GROUP).sort_values("customer_id")["event_time"]  # puts run concurrently
    assert held.tolist() == ["2026-03-01T10:00:00.123Z", "2026-03-01T10:00:00.000Z", "2026-03-01T10:00:00.500Z"]
    store.ingest(GROUP, customers.iloc[3:5], "churn")  # no event_time column: the ingestion time
    assert all(
        emulator.EVENT_TIME_TEXT.match(t) and len(t) == 24 for t in emulator.offline_records(GROUP)["event_time"]
    )


def test_a_read_that_finds_fewer_customers_than_were_ingested_stops(aws, bucket, customers):
    store = make_store()
    summary = store.ingest(GROUP, customers, "churn")
    assert summary["manifest"].startswith(f"s3://{BUCKET}/{PREFIX}/feature-store/churn-ingestions/{GROUP}-")
    query = FeatureQuery(GROUP, 1, 40)
    database, table = emulator.offline_table(GROUP)
    full = emulator.run_offline_query(latest_records_sql_for(query), GROUP)
    assert len(full) == 40

    # the offline store has not received the last 15 records of the range yet (it lags PutRecord)
    emulator.queue_athena_result(aws, full.iloc[:25])
    with pytest.raises(
        FeatureStoreError,
        match=rf"returned 25 of the 40 customers ingested for feature group "
        rf"'{GROUP}', customer_id CUST_000001..CUST_000040 .*15 minutes",
    ):
        store.read(query)

    # once it caught up, the same read succeeds
    emulator.queue_athena_result(aws, full)
    frame, _ = store.read(query)
    assert len(frame) == 40

    # nothing in the range yet at all: the lag is named, not "no records"
    emulator.queue_athena_result(aws, full.iloc[:0])
    with pytest.raises(FeatureStoreError, match=r"returned 0 of the 40 customers ingested"):
        store.read(query)


def test_the_completeness_check_counts_each_customer_once_and_respects_as_of(aws, bucket, customers):
    store = make_store()
    store.ingest(GROUP, customers.iloc[:30].assign(event_time="2026-01-01T00:00:00Z"), "churn")
    store.ingest(GROUP, customers.iloc[10:50].assign(event_time="2026-02-01T00:00:00Z"), "churn")  # overlaps 11-30
    manifests = store.ingested(GROUP)
    assert [m["id_ranges"] for m in manifests] == [[[1, 30]], [[11, 50]]]
    from churn.aws.ingestion_manifests import expected_customers

    assert expected_customers(FeatureQuery(GROUP, 1, 60), manifests)[0] == 50
    assert expected_customers(FeatureQuery(GROUP, 21, 40), manifests)[0] == 20
    # as of January only the first ingestion's customers can be there
    assert expected_customers(FeatureQuery(GROUP, 1, 60, as_of="2026-01-15T00:00:00Z"), manifests)[0] == 30
    query = FeatureQuery(GROUP, 1, 60, as_of="2026-01-15T00:00:00Z")
    queue_latest(aws, query)
    frame, sql = store.read(query)
    assert len(frame) == 30 and "event_time <= '2026-01-15T00:00:00.000Z'" in sql


def test_a_group_created_again_does_not_inherit_the_old_groups_ingestions(aws, bucket, customers):
    store = make_store()
    store.ingest(GROUP, customers, "churn")  # 60 customers
    emulator.forget_feature_group(GROUP)  # DeleteFeatureGroup (moto lacks it)
    import time

    time.sleep(1.1)  # a later CreationTime (seconds)
    store.ingest(GROUP, customers.iloc[:20], "churn")  # the new group holds 20
    assert [m["records"] for m in store.ingested(GROUP)] == [20]
    query = FeatureQuery(GROUP, 1, 60)
    queue_latest(aws, query)
    frame, _ = store.read(query)
    assert len(frame) == 20


def latest_records_sql_for(query: FeatureQuery) -> str:
    from churn.feature_query import latest_records_sql

    database, table = emulator.offline_table(query.feature_group)
    columns = list(make_store().describe(query.feature_group)["FeatureDefinitions"]) + list(STORE_METADATA_COLUMNS)
    return latest_records_sql(query, f'"{database}"."{table}"', columns)
