import copy
import csv
import io
import json
import random

import numpy as np
import pandas as pd
import pytest

from churn.bundle import BundleError, ModelBundle, bundle_sha256
from churn.preprocessing import InputError, MissingColumnsError, Preprocessor, split_train_test


def _frame():
    return pd.DataFrame(
        {
            "customer_id": ["CUST_000001", "CUST_000002", "CUST_000003", "CUST_000004"],
            "event_time": ["t"] * 4,
            "write_time": ["t"] * 4,
            "api_invocation_time": ["t"] * 4,
            "is_deleted": [False] * 4,
            "age": [30, None, 50, 70],
            "plan": ["b", "a", None, "b"],
            "churn": [0, 1, 0, 1],
        }
    )


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
    fresh = copy.deepcopy(bundle)  # not yet compiled: a few rows are scored by the estimator, no compile
    fresh._compiled = None
    proba, _ = fresh.predict_proba({c: [split.test[c].iloc[0]] for c in bundle.feature_order})
    assert abs(proba[0] - expected[0]) <= 1e-9 and fresh._compiled is None
    bundle.prepare()  # what the servers do before their first request
    for i in range(0, 40):  # then one-row requests take the compiled path inside the bundle
        proba, _ = bundle.predict_proba({c: [split.test[c].iloc[i]] for c in bundle.feature_order})
        assert abs(proba[0] - expected[i]) <= 1e-9
    assert bundle._compiled is not None and bundle._compiled is not False
    assert CompiledForest.compile(object()) is None


def test_out_of_range_numbers_and_non_scalars_are_input_errors():
    pre = Preprocessor.fit(_frame(), "churn")
    with pytest.raises(InputError, match="column 'age' row 1: '1e309' is out of range"):
        pre.transform({"age": ["1e309"], "plan": ["a"]})
    with pytest.raises(InputError, match="column 'plan' row 2: .* is not a single value"):
        pre.transform({"age": [1, 2], "plan": ["a", ["x"]]})


# -- large CSV batches: the Arrow fast path equals the exact per-value path ------------------

_NUMBER_CELLS = [
    "",
    " ",
    "  7 ",
    "\t3",
    "nan",
    "NaN",
    "-nan",
    "NA",
    "null",
    "None",
    "?",
    "N/A",
    "1_000",
    "+5",
    "-0",
    "0",
    "007",
    "1e3",
    "1E-3",
    ".5",
    "5.",
    "-.5e+2",
    "1e309",
    "-1e309",
    "1e-400",
    "5e-324",
    "3.4028234663852886e38",
    "3.4028235e38",
    "-3.5e38",
    "123456789012345678901234567890",
    "0.1000000000000000055511151231257827021181583404541015625",
    "inf",
    "-Infinity",
    "lots",
    "١٢",
    "1e",
    "--1",
    "1.5.2",
    "0x10",
    "2.5e-3",
    "1,5",
]
_CLEAN_NUMBER_CELLS = [
    "",
    "0",
    "-0",
    "12",
    "70.5",
    "+3",
    ".25",
    "1e3",
    "99999999999999999999",
    "4.4e-310",
    "0.30000000000000004",
]
_CATEGORY_CELLS = [
    "a",
    "b",
    " a",
    "A",
    "",
    " ",
    "NA",
    "na ",
    "nan",
    "null",
    "None",
    "?",
    "Unknown",
    "unknown",
    "zzz",
    "ünï",
    "b ",
    " c",
    "c",
    "x,y",
    'q"uote',
]


def _tricky_preprocessor() -> Preprocessor:
    """Classes include a missing marker ('NA') and a padded name (' c'), which must not shortcut."""
    frame = pd.DataFrame(
        {
            "age": [30.0, None, 50, 70, 20, 40],
            "charges": [1.5, 2.5, None, 4.0, 5.0, 6.0],
            "plan": ["b", "a", None, "b", "NA", " c"],
            "churn": [0, 1, 0, 1, 0, 1],
        }
    )
    pre = Preprocessor.fit(frame, "churn")
    assert pre.classes == {"plan": [" c", "NA", "Unknown", "a", "b"]}
    return pre


def _csv(header, rows) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode()


def _outcome(pre, columns):
    try:
        matrix, unseen = pre.transform(columns)
    except InputError as error:
        return type(error), str(error)
    return matrix.shape, matrix.tobytes(), unseen


def _fast_and_exact(pre, body: bytes):
    """transform of the large-CSV parse (fast path) and of the same cells as object arrays of str,
    which is what that parser returned before (the exact path). The fast path's two reads (number
    columns as text, or as numbers in the parse: what the server asks for) must agree."""
    from churn.serving.protocol import _parse_large_csv

    exact_columns = dict(_parse_large_csv(body).items())
    fast = _outcome(pre, _parse_large_csv(body))
    assert _outcome(pre, _parse_large_csv(body, numeric=pre.numeric_columns)) == fast
    return fast, _outcome(pre, exact_columns)


def test_number_columns_read_as_numbers_keep_their_text_for_the_exact_path():
    from churn.serving.protocol import _parse_large_csv

    columns = _parse_large_csv(_csv(["age", "plan"], [["1.5", "a"], ["", "b"], ["-2e3", "NA"]]), numeric=["age"])
    assert str(columns.arrow("age").type) == "double" and str(columns.arrow("plan").type) == "string"
    assert columns["age"].tolist() == ["1.5", "", "-2e3"]  # the cells as sent, parsed as text on demand
    # a cell Arrow does not read as a number: every column is text, as without ``numeric``
    odd = _parse_large_csv(_csv(["age", "plan"], [["1_000", "a"], ["2", "b"]]), numeric=["age"])
    assert str(odd.arrow("age").type) == "string" and odd["age"].tolist() == ["1_000", "2"]


def test_large_csv_columns_read_as_before():
    from churn.serving.protocol import _parse_large_csv

    columns = _parse_large_csv(_csv(["age", "plan", "x"], [["1", "", " a "], ["", "NA", "2"]]))
    assert list(columns) == ["age", "plan", "x"] and len(columns) == 3 and "plan" in columns and "y" not in columns
    for name, expected in {"age": ["1", ""], "plan": ["", "NA"], "x": [" a ", "2"]}.items():
        values = columns[name]
        assert values.dtype == object and values.tolist() == expected and all(type(v) is str for v in values)


def test_fast_path_equals_exact_path_on_tricky_cells():
    pre = _tricky_preprocessor()
    rng = random.Random(7)
    fast_ok = 0
    for _ in range(600):
        clean = rng.random() < 0.5  # half the batches only hold cells the fast path takes
        numbers = _CLEAN_NUMBER_CELLS if clean else _NUMBER_CELLS
        categories = _CATEGORY_CELLS[: rng.randrange(1, len(_CATEGORY_CELLS) + 1)]
        rows = [
            [
                rng.choice(numbers),
                rng.choice(_CLEAN_NUMBER_CELLS if rng.random() < 0.9 else numbers),
                rng.choice(categories),
                rng.choice(["x", "1"]),
            ]
            for _ in range(rng.randrange(1, 40))
        ]
        fast, exact = _fast_and_exact(pre, _csv(["age", "charges", "plan", "extra"], rows))
        assert fast == exact, rows
        fast_ok += len(fast) == 3
    assert fast_ok > 200  # plenty of batches were scored, not only refused


def test_fast_path_numbers_are_bit_identical_and_skip_python_objects(monkeypatch):
    from churn.preprocessing import ArrowColumns
    from churn.serving.protocol import _parse_large_csv

    rng = random.Random(11)

    def literal() -> str:  # decimal literals of all shapes, within float32 range
        digits = "".join(rng.choice("0123456789") for _ in range(rng.randrange(0, 21)))
        fraction = "".join(rng.choice("0123456789") for _ in range(rng.randrange(0, 21)))
        if not digits and not fraction:
            return rng.choice(["", "0", "-0", "1."])
        text = rng.choice(["", "-", "+"]) + digits + ("." + fraction if fraction or rng.random() < 0.2 else "")
        if rng.random() < 0.5:
            exponent = (
                rng.choice(["", "+"]) + str(rng.randrange(16)) if rng.random() < 0.5 else "-" + str(rng.randrange(340))
            )
            text += rng.choice("eE") + exponent.zfill(rng.choice([1, 3]))
        return text

    cells = [literal() for _ in range(20_000)]
    pre = _tricky_preprocessor()
    body = _csv(["age", "charges", "plan"], [[c, "1", rng.choice(["a", "b", "", "NA", "new"])] for c in cells])
    fast, exact = _fast_and_exact(pre, body)
    assert fast == exact and len(fast) == 3
    assert fast[2] == {"plan": ["new"]}
    # and the fast path took every column: no object array of Python strings was made
    monkeypatch.setattr(ArrowColumns, "__getitem__", lambda self, name: pytest.fail(f"exact path for {name}"))
    assert _outcome(pre, _parse_large_csv(body)) == exact


def test_large_csv_errors_and_predictions_are_unchanged(trained_bundle):
    from churn.serving import protocol

    bundle, split = trained_bundle
    features = bundle.feature_order
    frame = pd.concat([split.test[features]] * 2, ignore_index=True)
    body = frame.to_csv(index=False).encode()
    assert len(body) > protocol.LARGE_CSV_BYTES
    columns = protocol.parse_request(body, "text/csv")
    exact = {name: columns[name] for name in columns}  # object arrays of str, as the parser returned before
    fast_proba, fast_unseen = bundle.predict_proba(protocol.parse_request(body, "text/csv"))
    exact_proba, exact_unseen = bundle.predict_proba(exact)
    assert fast_proba.tobytes() == exact_proba.tobytes() and fast_unseen == exact_unseen

    def message(changed: pd.DataFrame) -> str:
        with pytest.raises(protocol.RequestError) as error:
            protocol.predict(bundle, protocol.parse_request(changed.to_csv(index=False).encode(), "text/csv"))
        assert error.value.status == 400
        return error.value.message

    def with_cell(column: str, row: int, text: str) -> pd.DataFrame:
        changed = frame.astype(object)
        changed.loc[row, column] = text
        return changed

    assert message(with_cell("monthly_charges", 3, "lots")) == "column 'monthly_charges' row 4: 'lots' is not a number"
    assert message(with_cell("age", 900, "1e309")) == "column 'age' row 901: '1e309' is out of range"
    assert message(with_cell("tenure_months", 5, "-4e38")) == "column 'tenure_months' row 6: '-4e38' is out of range"
    assert message(frame.drop(columns=["tech_support", "age"])) == "missing required column(s): age, tech_support"
    # missing markers and unseen categories in a large batch: same numbers, same unseen report
    odd = frame.astype(object).copy()
    odd.loc[::7, "total_charges"] = ""
    odd.loc[::11, "age"] = " NaN "
    odd.loc[::13, "contract_type"] = "Weekly"
    odd.loc[::17, "payment_method"] = "null"
    odd.loc[::19, "internet_service"] = " DSL"
    body = odd.to_csv(index=False).encode()
    columns = protocol.parse_request(body, "text/csv")
    exact = {name: columns[name] for name in columns}
    fast_proba, fast_unseen = bundle.predict_proba(protocol.parse_request(body, "text/csv"))
    exact_proba, exact_unseen = bundle.predict_proba(exact)
    assert fast_proba.tobytes() == exact_proba.tobytes()
    assert fast_unseen == exact_unseen == {"contract_type": ["Weekly"], "internet_service": [" DSL"]}


def test_json_records_of_mixed_types_score_like_the_same_cells_in_a_large_csv():
    from churn.serving.protocol import _parse_json, _parse_large_csv

    pre = _tricky_preprocessor()
    records = [
        {"age": 30, "charges": "2.5", "plan": "a"},
        {"age": "40", "charges": None, "plan": None},
        {"age": 50.5, "charges": "", "plan": "NA"},
        {"age": None, "charges": " 7 ", "plan": " c"},
        {"age": "", "charges": "nan", "plan": "zzz"},
        {"age": 1e3, "charges": "1e3", "plan": ""},
        {"age": -0.0, "charges": 12345678901234567890, "plan": "null"},
    ]
    cells = [
        ["30", "2.5", "a"],
        ["40", "", ""],
        ["50.5", "", "NA"],
        ["", " 7 ", " c"],
        ["", "nan", "zzz"],
        ["1000.0", "1e3", ""],
        ["-0.0", "12345678901234567890", "null"],
    ]
    from_json = _outcome(pre, _parse_json(json.dumps(records).encode()))
    from_csv = _outcome(pre, _parse_large_csv(_csv(["age", "charges", "plan"], cells)))
    assert from_json == from_csv
    matrix = np.frombuffer(from_json[1]).reshape(from_json[0])
    assert matrix.tolist() == [
        [30.0, 2.5, 3.0],
        [40.0, 4.0, 2.0],
        [50.5, 4.0, 2.0],
        [40.0, 7.0, 0.0],
        [40.0, 4.0, 0.0],
        [1000.0, 1000.0, 2.0],
        [-0.0, 12345678901234567890.0, 2.0],
    ]
    assert from_json[2] == {"plan": ["zzz"]}
    # a non-scalar in a JSON record is still refused with the same message
    records[2]["plan"] = ["x"]
    assert _outcome(pre, _parse_json(json.dumps(records).encode())) == (
        InputError,
        "column 'plan' row 3: \"['x']\" is not a single value",
    )


def test_load_verified_fails_closed_without_a_recorded_hash(trained_bundle, tmp_path):
    from churn.bundle import load_verified

    bundle, split = trained_bundle
    sha = bundle.save(tmp_path / "b")
    for missing in (None, "", "  "):
        with pytest.raises(BundleError, match="no bundle sha256 is recorded in the registry: refusing"):
            load_verified(tmp_path / "b", missing)
    with pytest.raises(BundleError, match="is not a 64-character hex digest"):
        load_verified(tmp_path / "b", "sha256:abc")
    with pytest.raises(BundleError, match="refusing to load a bundle that is not the registered one"):
        load_verified(tmp_path / "b", "0" * 64)
    loaded = load_verified(tmp_path / "b", sha.upper())  # the digest's case does not matter
    assert np.array_equal(loaded.predict_proba(split.test)[0], bundle.predict_proba(split.test)[0])


def test_the_hash_covers_the_bytes_that_are_loaded(trained_bundle, tmp_path, monkeypatch):
    """A file swapped after hashing cannot be loaded: the bytes are read once, hashed, then deserialized."""
    import churn.bundle as bundle_module
    from churn.bundle import load_verified

    bundle, _ = trained_bundle
    sha = bundle.save(tmp_path / "b")
    other = bundle_module.ModelBundle(estimator={"not": "the model"}, preprocessor=bundle.preprocessor)
    other.save(tmp_path / "evil")
    real_check = bundle_module._check_digest

    def swap_after_check(where, files, expected):  # an attacker replacing the file between check and load
        real_check(where, files, expected)
        (tmp_path / "b" / "estimator.joblib").write_bytes((tmp_path / "evil" / "estimator.joblib").read_bytes())

    monkeypatch.setattr(bundle_module, "_check_digest", swap_after_check)
    loaded = load_verified(tmp_path / "b", sha)
    assert type(loaded.estimator) is type(bundle.estimator)  # what was verified is what was loaded


# -- text columns: the Arrow encoding equals the per-value definition -----------------------

_TEXT_POOL = [
    "a",
    "b",
    " c",
    "NA",
    "Unknown",
    "",
    " ",
    "na ",
    "nan",
    "None",
    "null",
    "zzz",
    "ünï",
    "日本語",
    "😀",
    "a\x00b",
    "x,y",
    'q"uote',
    "\u00a0",
    "\u2003b",
    "B",
    None,
    float("nan"),
    pd.NA,
]


def _text_columns():
    from hypothesis import strategies as st

    cell = st.one_of(st.sampled_from(_TEXT_POOL), st.text(max_size=6))
    return st.lists(cell, min_size=0, max_size=300)


@pytest.mark.parametrize("form", ["str Series", "object Series", "arrow", "chunked arrow"])
def test_text_encoding_equals_the_per_value_definition(form):
    import pyarrow as pa
    from hypothesis import given, settings

    pre = _tricky_preprocessor()

    @settings(max_examples=150, deadline=None, derandomize=True)
    @given(_text_columns())
    def check(cells):
        if form == "str Series":
            values = pd.Series(cells, dtype="str")
        elif form == "object Series":
            values = pd.Series(cells, dtype=object)
        else:
            values = pa.array(cells, type=pa.string(), from_pandas=True)
            if form == "chunked arrow":
                values = pa.chunked_array([values[: len(cells) // 3], values[len(cells) // 3 :]], type=pa.string())
        got_codes, got_unseen = pre._encode("plan", values)
        want_codes, want_unseen = pre._encode_exact("plan", list(cells))
        assert got_codes.tobytes() == want_codes.tobytes() and got_unseen == want_unseen

    check()


def test_frames_and_json_records_encode_alike_with_mixed_and_missing_values():
    """A DataFrame column (Arrow path), the same cells as JSON lists (exact path), and mixed-type
    columns (numbers among text: exact path everywhere) give the same matrix and unseen list."""
    pre = _tricky_preprocessor()
    rng = random.Random(3)
    for _ in range(30):
        n = rng.randrange(64, 400)
        plan = [rng.choice(_TEXT_POOL) for _ in range(n)]
        mixed = [rng.choice(["a", "b", 1, 2.5, True, None]) for _ in range(n)]
        age = [rng.choice([None, 31, 44.5, float("nan")]) for _ in range(n)]
        for column in (plan, mixed):
            frame = pd.DataFrame({"age": age, "charges": [1.0] * n, "plan": pd.Series(column, dtype=object)})
            records = {"age": age, "charges": [1.0] * n, "plan": column}
            got, want = pre.transform(frame), pre.transform(records)
            assert got[0].tobytes() == want[0].tobytes() and got[1] == want[1]
    strings = pd.Series(["a", None, "new", "b"] * 40, dtype="str")
    matrix, unseen = pre.transform(pd.DataFrame({"age": 1, "charges": 2, "plan": strings}))
    assert matrix[:4, 2].tolist() == [3.0, 2.0, 0.0, 4.0] and unseen == {"plan": ["new"]}  # None -> Unknown


def test_estimator_pickles_naming_moved_or_missing_code():
    """A bundle written before a module moved still loads; one naming code we lack gets a BundleError."""
    import pickle

    from churn.aws import autopilot_transform
    from churn.bundle import BundleError, _unpickle_estimator

    data = pickle.dumps(autopilot_transform.AutopilotModel, protocol=2)  # no framing: names are plain text
    assert b"churn.aws.autopilot_transform\nAutopilotModel\n" in data
    written_before_the_split = data.replace(b"churn.aws.autopilot_transform\n", b"churn.aws.autopilot\n")
    assert _unpickle_estimator(written_before_the_split) is autopilot_transform.AutopilotModel

    unknown = data.replace(b"churn.aws.autopilot_transform\n", b"churn.no_such_module\n")
    with pytest.raises(BundleError, match="no_such_module.*retrain"):
        _unpickle_estimator(unknown, "models/v7")


def test_a_number_cell_over_the_cell_limit_is_refused_as_before():
    from churn.serving import protocol

    limits = protocol.Limits(max_cell_bytes=100)
    rows = [["1.5", "a"]] * 20_000 + [["1" + "0" * 150, "b"]]  # a valid number, but 151 bytes
    body = _csv(["age", "plan"], rows)
    assert len(body) > protocol.LARGE_CSV_BYTES
    with pytest.raises(protocol.RequestError) as error:
        protocol.parse_request(body, "text/csv", limits, numeric=["age"])
    assert error.value.status == 413 and error.value.message == (
        "column 'age' has a cell of 151 bytes: over the limit of 100 (CHURN_MAX_CELL_BYTES)"
    )
