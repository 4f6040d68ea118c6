import numpy as np

from churn.demo_data import FEATURE_COLUMNS, generate_customers


def test_same_seed_same_data_and_spec_columns():
    a, b = generate_customers(300, seed=7), generate_customers(300, seed=7)
    assert a.equals(b)
    assert not a.equals(generate_customers(300, seed=8))
    assert list(a.columns) == ["customer_id", *FEATURE_COLUMNS, "churn", "event_time"]
    assert a["customer_id"].iloc[0] == "CUST_000001" and a["customer_id"].iloc[-1] == "CUST_000300"
    assert set(a["churn"].unique()) == {0, 1}


def test_churn_follows_telecom_patterns(demo_frame):
    by_contract = demo_frame.groupby("contract_type")["churn"].mean()
    assert by_contract["Month-to-month"] > by_contract["One year"] > by_contract["Two year"]
    short = demo_frame[demo_frame.tenure_months <= 6]["churn"].mean()
    long = demo_frame[demo_frame.tenure_months >= 36]["churn"].mean()
    assert short > 2 * long
    assert demo_frame.groupby("internet_service")["churn"].mean().idxmax() == "Fiber optic"
    assert 0.15 < demo_frame["churn"].mean() < 0.45
    # a few missing values, as real exports have
    assert 0 < demo_frame.isna().sum().sum() < 0.02 * demo_frame.size


def test_a_good_model_is_good_but_not_perfect(trained_bundle):
    from churn.training import evaluate_bundle

    bundle, split = trained_bundle
    report = evaluate_bundle(bundle, split.test)
    assert 0.75 < report["roc_auc"] < 0.95
    assert report["accuracy"] > 1 - split.test["churn"].mean()  # beats always predicting "no churn"
    assert np.isclose(sum(report["confusion_matrix"].values()), len(split.test))
