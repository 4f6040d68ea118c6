import numpy as np
import pandas as pd
import pytest

from churn.bundle import BundleError, ModelBundle, bundle_sha256
from churn.preprocessing import InputError, MissingColumnsError, Preprocessor, split_train_test


def _frame():
    return pd.DataFrame({
        "customer_id": ["CUST_000001", "CUST_000002", "CUST_000003", "CUST_000004"],
        "event_time": ["t"] * 4, "write_time": ["t"] * 4, "api_invocation_time": ["t"] * 4, "is_deleted": [False] * 4,
        "age": [30, None, 50, 70], "plan": ["b", "a", None, "b"], "churn": [0, 1, 0, 1],
    })


def test_spec_rules_drop_ids_impute_and_label_encode():
    pre = Preprocessor.fit(_frame(), "churn")
    assert pre.feature_order == ["age", "plan"]  # id and metadata dropped, target excluded
    assert pre.medians == {"age": 50.0}
    assert pre.classes == {"plan": ["Unknown", "a", "b"]}  # missing -> 'Unknown', sorted like LabelEncoder
    matrix, unseen = pre.transform({"age": ["", "40"], "plan": ["b", "zzz"], "extra": [1, 2]})
    assert matrix.tolist() == [[50.0, 2.0], [40.0, 0.0]]  # median fill; unseen -> first class
    assert unseen == {"plan": ["zzz"]}


def test_transform_errors_name_column_and_row():
    pre = Preprocessor.fit(_frame(), "churn")
    with pytest.raises(MissingColumnsError, match="missing required column\\(s\\): plan"):
        pre.transform({"age": [1]})
    with pytest.raises(InputError, match="column 'age' row 2: 'forty' is not a number"):
        pre.transform({"age": ["1", "forty"], "plan": ["a", "a"]})


def test_split_is_stratified_80_20_and_refuses_what_it_cannot_split(demo_frame):
    split = split_train_test(demo_frame, "churn", 0.2, 1)
    assert (len(split.train), len(split.test)) == (4000, 1000)
    assert abs(split.train["churn"].mean() - split.test["churn"].mean()) < 0.01
    tiny = demo_frame.iloc[:3].assign(churn=[0, 0, 1])
    with pytest.raises(InputError, match="too few rows to split"):
        split_train_test(tiny, "churn", 0.2, 1)
    with pytest.raises(InputError, match="must be binary 0/1"):
        split_train_test(demo_frame.assign(churn=demo_frame["churn"] * 3), "churn", 0.2, 1)


def test_bundle_round_trip_predicts_identically_and_checks_its_hash(trained_bundle, tmp_path):
    bundle, split = trained_bundle
    sha = bundle.save(tmp_path / "b")
    assert sha == bundle_sha256(tmp_path / "b")
    loaded = ModelBundle.load(tmp_path / "b", expected_sha256=sha)
    a, _ = bundle.predict_proba(split.test)
    b, _ = loaded.predict_proba(split.test)
    assert np.array_equal(a, b)
    # bundle predictions equal sklearn's own predict_proba on the same encoded matrix
    matrix, _ = bundle.preprocessor.transform(split.test)
    assert np.allclose(a, bundle.estimator.predict_proba(matrix)[:, 1], atol=1e-12, rtol=0)
    assert loaded.info["library_versions"]["scikit-learn"]
    with pytest.raises(BundleError, match="refusing to load a bundle that is not the registered one"):
        ModelBundle.load(tmp_path / "b", expected_sha256="0" * 64)
    (tmp_path / "b" / "estimator.joblib").unlink()
    with pytest.raises(BundleError, match="estimator.joblib is missing"):
        ModelBundle.load(tmp_path / "b")


def test_compiled_forest_equals_sklearn_predict_proba(trained_bundle):
    from churn.fast_forest import CompiledForest

    bundle, split = trained_bundle
    matrix, _ = bundle.preprocessor.transform(split.test)
    compiled = CompiledForest.compile(bundle.estimator)
    expected = bundle.estimator.predict_proba(matrix)[:, 1]
    assert np.abs(compiled.predict_positive(matrix) - expected).max() <= 1e-9
    for i in range(0, 40):  # one-row requests take the compiled path inside the bundle
        proba, _ = bundle.predict_proba({c: [split.test[c].iloc[i]] for c in bundle.feature_order})
        assert abs(proba[0] - expected[i]) <= 1e-9
    assert CompiledForest.compile(object()) is None


def test_out_of_range_numbers_and_non_scalars_are_input_errors():
    pre = Preprocessor.fit(_frame(), "churn")
    with pytest.raises(InputError, match="column 'age' row 1: '1e309' is out of range"):
        pre.transform({"age": ["1e309"], "plan": ["a"]})
    with pytest.raises(InputError, match="column 'plan' row 2: .* is not a single value"):
        pre.transform({"age": [1, 2], "plan": ["a", ["x"]]})
