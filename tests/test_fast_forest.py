"""The compiled forest scores exactly as scikit-learn's predict_proba (to 1e-9) on several forests."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier

from churn.fast_forest import CompiledForest, LockstepTrees


def churn_like(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the project's shape: numeric columns on churn scales plus one-hot/0-1 columns, no NaN."""
    rng = np.random.default_rng(seed)
    numeric = np.column_stack(
        [
            rng.integers(18, 90, n),
            rng.integers(0, 72, n),
            rng.uniform(18, 120, n).round(2),
            rng.uniform(0, 8000, n).round(2),
        ]
    )
    binary = rng.integers(0, 2, (n, 12)).astype(float)
    x = np.column_stack([numeric, binary])
    logit = -0.04 * x[:, 1] + 0.02 * x[:, 2] + binary[:, 0] - binary[:, 3] + rng.normal(0, 1, n)
    return x, (logit > np.median(logit)).astype(int)


FORESTS = {
    "rf depth 10 (spec)": lambda: RandomForestClassifier(n_estimators=100, max_depth=10, random_state=42),
    "rf unlimited depth": lambda: RandomForestClassifier(n_estimators=30, random_state=1),
    "rf depth 3, one tree": lambda: RandomForestClassifier(n_estimators=1, max_depth=3, random_state=2),
    "rf balanced class weights, min leaf 5": lambda: RandomForestClassifier(
        n_estimators=50, max_depth=12, min_samples_leaf=5, class_weight="balanced", random_state=3
    ),
    "rf balanced_subsample": lambda: RandomForestClassifier(
        n_estimators=40, class_weight="balanced_subsample", random_state=4
    ),
    "extratrees": lambda: ExtraTreesClassifier(n_estimators=60, max_depth=15, random_state=5),
    "extratrees class weights {0:1, 1:7}": lambda: ExtraTreesClassifier(
        n_estimators=40, class_weight={0: 1, 1: 7}, random_state=6
    ),
}


@pytest.mark.parametrize("name", list(FORESTS))
def test_compiled_forest_equals_predict_proba(name):
    x, y = churn_like(3000, 0)
    estimator = FORESTS[name]().fit(x, y)
    forest = CompiledForest.compile(estimator)
    # unseen rows, including values beyond the training range and ones sitting exactly on thresholds
    rows, _ = churn_like(20_000, 7)
    thresholds = estimator.estimators_[0].tree_.threshold
    on_split = rows[:50].copy()
    on_split[:, 1] = thresholds[thresholds > 0][0]
    rows = np.vstack([rows, on_split, rows[:10] * 100, -rows[:10]])
    expected = estimator.predict_proba(rows)[:, list(estimator.classes_).index(1)]
    for part in (slice(None), slice(0, 1), slice(0, 17), slice(5, 21)):  # lockstep blocks of 16, full and partial
        np.testing.assert_allclose(forest.predict_positive(rows[part]), expected[part], rtol=0, atol=1e-9)
    for threads in (1, 3, 8):  # the rows split into ranges scored on that many threads (uneven ranges)
        np.testing.assert_allclose(forest.predict_positive(rows, threads=threads), expected, rtol=0, atol=1e-9)


def test_labels_other_than_0_1_order_are_handled():
    x, y = churn_like(1000, 1)
    estimator = RandomForestClassifier(n_estimators=10, random_state=0).fit(x, 1 - y)  # same classes_, other data
    rows, _ = churn_like(500, 2)
    np.testing.assert_allclose(
        CompiledForest.compile(estimator).predict_positive(rows), estimator.predict_proba(rows)[:, 1], rtol=0, atol=1e-9
    )


def test_wrong_column_count_is_a_clear_error():
    x, y = churn_like(500, 1)
    forest = CompiledForest.compile(RandomForestClassifier(n_estimators=3, random_state=0).fit(x, y))
    with pytest.raises(ValueError, match="16 feature columns"):
        forest.predict_positive(x[:, :5])


def test_non_forest_is_not_compiled():
    from sklearn.linear_model import LogisticRegression

    x, y = churn_like(200, 1)
    assert CompiledForest.compile(LogisticRegression().fit(x, y)) is None


def _assert_equal_to_sklearn(estimator, rows):
    expected = estimator.predict_proba(rows)[:, list(estimator.classes_).index(1)]
    np.testing.assert_allclose(CompiledForest.compile(estimator).predict_positive(rows), expected, rtol=0, atol=1e-9)


@pytest.mark.parametrize(
    "params",
    [
        {"n_estimators": 1, "max_depth": 1},  # one stump
        {"n_estimators": 25, "max_depth": 1},  # stumps
        {"n_estimators": 5, "min_samples_split": 10_000},  # every tree a single leaf (depth 0)
        {"n_estimators": 1, "max_depth": None},  # one fully grown tree
    ],
)
def test_degenerate_forests_equal_predict_proba(params):
    x, y = churn_like(2000, 3)
    rows, _ = churn_like(999, 4)
    _assert_equal_to_sklearn(RandomForestClassifier(random_state=0, **params).fit(x, y), rows)


def test_inputs_next_to_float32_rounded_thresholds_split_as_sklearn():
    """sklearn compares float32 inputs with float64 thresholds; inputs one float32 step around each
    threshold (and those thresholds themselves, rounded both ways) must fall on the same side."""
    rng = np.random.default_rng(5)
    x = rng.normal(0, 1, (3000, 4)) * np.array([1e-3, 1.0, 1e3, 1e30])
    y = (x[:, 0] + x[:, 1] / 1e3 + rng.normal(0, 1e-3, 3000) > 0).astype(int)
    estimator = RandomForestClassifier(n_estimators=20, random_state=0).fit(x, y)
    splits = [
        (t.feature[t.children_left >= 0], t.threshold[t.children_left >= 0])
        for t in (e.tree_ for e in estimator.estimators_)
    ]
    rows = np.repeat(x[:1], sum(len(f) for f, _ in splits) * 4, axis=0).astype(np.float32)
    i = 0
    for features, thresholds in splits:
        for feature, threshold in zip(features, thresholds):
            near = np.float32(threshold)
            for value in (
                near,
                np.nextafter(near, np.float32(-np.inf)),
                np.nextafter(near, np.float32(np.inf)),
                np.float32(-threshold),
            ):
                rows[i, feature] = value
                i += 1
    _assert_equal_to_sklearn(estimator, rows)
    _assert_equal_to_sklearn(estimator, np.array([[3.4e38, -3.4e38, 3.4e38, -3.4e38]] * 3))
    with pytest.raises(ValueError, match="infinity"):  # refused as sklearn refuses it
        CompiledForest.compile(estimator).predict_positive(np.array([[np.inf, 0, 0, 0]]))


def test_missing_values_are_routed_as_sklearn_routes_them():
    """NaN goes where sklearn's missing-value support sends it (the batch falls back to predict_proba)."""
    x, y = churn_like(2000, 5)
    x_missing = x.copy()
    x_missing[::7, 1] = np.nan
    rows, _ = churn_like(300, 6)
    rows[::3, 1] = np.nan
    for train in (x, x_missing):  # no NaN seen in training, and NaN seen
        _assert_equal_to_sklearn(RandomForestClassifier(n_estimators=15, random_state=0).fit(train, y), rows)


def test_class_labels_other_than_0_1_are_left_to_sklearn():
    x, y = churn_like(500, 1)
    assert CompiledForest.compile(RandomForestClassifier(n_estimators=3).fit(x, np.where(y, "yes", "no"))) is None
    three = RandomForestClassifier(n_estimators=3, random_state=0).fit(x, y + (x[:, 0] > 60))
    assert CompiledForest.compile(three) is None
    booleans = RandomForestClassifier(n_estimators=5, random_state=0).fit(x, y.astype(bool))  # True is class 1
    _assert_equal_to_sklearn(booleans, x[:100])


def test_threads_scoring_at_once_get_each_their_own_answer():
    """The server scores requests on a thread pool; the kernel releases the GIL and shares no state."""
    from concurrent.futures import ThreadPoolExecutor

    x, y = churn_like(2000, 8)
    estimator = RandomForestClassifier(n_estimators=40, random_state=0).fit(x, y)
    forest = CompiledForest.compile(estimator)
    batches = [churn_like(2000 + 37 * i, 100 + i)[0] for i in range(8)]
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(forest.predict_positive, batches * 3))
    for batch, answer in zip(batches * 3, answers):
        np.testing.assert_allclose(answer, estimator.predict_proba(batch)[:, 1], rtol=0, atol=1e-9)


def test_the_bundle_path_of_server_and_batch_equals_sklearn(trained_bundle, tmp_path):
    """The numbers a client gets: a saved and loaded bundle scoring a large CSV request (Arrow
    parse), a JSON-like request (lists) and batch chunks (a DataFrame as the feature store
    returns it) equal sklearn's predict_proba on the encoded matrix."""
    import pandas as pd

    from churn.batch import score_in_chunks
    from churn.bundle import ModelBundle
    from churn.serving import protocol

    bundle, split = trained_bundle
    loaded = ModelBundle.load(tmp_path / "b", expected_sha256=bundle.save(tmp_path / "b"))
    assert loaded._fast_path() is not None  # the compiled kernel is what scores here
    frame = pd.concat([split.test] * 3, ignore_index=True)
    frame.loc[::11, "contract_type"] = None  # missing and unseen categories, missing numbers
    frame.loc[::13, "payment_method"] = "Carrier pigeon"
    frame.loc[::17, "monthly_charges"] = np.nan
    frame = frame.assign(customer_id=[f"CUST_{i + 1:06d}" for i in range(len(frame))])
    matrix, _ = loaded.preprocessor.transform({c: frame[c].tolist() for c in loaded.feature_order})
    assert not np.isnan(matrix).any()
    expected = loaded.estimator.predict_proba(matrix)[:, 1]

    body = frame[loaded.feature_order].to_csv(index=False).encode()
    assert len(body) > protocol.LARGE_CSV_BYTES  # the Arrow parse of large requests
    csv_answer = protocol.predict(loaded, protocol.parse_request(body, "text/csv"))
    json_answer = protocol.predict(
        loaded,
        protocol.parse_request(frame[loaded.feature_order].to_json(orient="records").encode(), "application/json"),
    )
    batch = pd.concat(score_in_chunks(loaded, frame, 500, "m", "1", "r"), ignore_index=True)
    for got in (csv_answer.proba, json_answer.proba, batch["probability"].to_numpy()):
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)
    assert csv_answer.labels.tolist() == (expected > 0.5).astype(int).tolist() == batch["prediction"].tolist()
    # the demo data has no missing contract types, so 'Unknown' is unseen too
    want_unseen = {"contract_type": ["Unknown"], "payment_method": ["Carrier pigeon"]}
    assert csv_answer.unseen == json_answer.unseen == want_unseen


def test_without_numba_forests_are_scored_by_sklearn():
    """An environment without numba still imports the bundle code and scores with predict_proba."""
    import subprocess
    import sys
    from pathlib import Path

    script = (
        "import sys; sys.modules['numba'] = None\n"  # 'import numba' now raises ImportError
        "import numpy as np\n"
        "from sklearn.ensemble import RandomForestClassifier\n"
        "from churn.bundle import ModelBundle\n"
        "from churn.fast_forest import CompiledForest\n"
        "from churn.preprocessing import Preprocessor\n"
        "x = np.arange(40.0).reshape(20, 2); y = np.arange(20) % 2\n"
        "rf = RandomForestClassifier(n_estimators=3, random_state=0).fit(x, y)\n"
        "assert CompiledForest.compile(rf) is None\n"
        "pre = Preprocessor('y', ['a', 'b'], {'a': 0.0, 'b': 0.0}, {})\n"
        "proba, _ = ModelBundle(rf, pre).predict_proba({'a': list(x[:, 0]), 'b': list(x[:, 1])})\n"
        "assert np.array_equal(proba, rf.predict_proba(x)[:, 1])\n"
        "print('ok')\n"
    )
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


def test_the_servers_scoring_pool_bounds_the_threads_a_large_request_uses(monkeypatch):
    """A request scored alone by the server's pool (``Scorer``) splits its rows; side by side, one thread each."""
    import threading

    import anyio

    from churn import fast_forest
    from churn.serving.app import Scorer

    monkeypatch.setattr(fast_forest, "cpus", lambda: 2)  # the rule is about the CPUs; this machine may have 1
    monkeypatch.delenv("CHURN_ROW_THREADS", raising=False)
    monkeypatch.delenv("CHURN_WORKERS", raising=False)
    x, y = churn_like(2000, 8)
    estimator = RandomForestClassifier(n_estimators=20, random_state=0).fit(x, y)
    forest = CompiledForest.compile(estimator)
    big = churn_like(20_000, 9)[0]
    scored_on: list[str] = []
    score = LockstepTrees._score

    def spy(self, *args):  # records which thread scored each row range, then scores it
        scored_on.append(threading.current_thread().name)
        return score(self, *args)

    monkeypatch.setattr(LockstepTrees, "_score", spy)
    alone = Scorer(threads=2, max_queue=4)
    answer = anyio.run(alone.run, forest.predict_positive, big)
    np.testing.assert_allclose(answer, estimator.predict_proba(big)[:, 1], rtol=0, atol=1e-9)
    assert len(scored_on) == 2  # nothing else in flight: both CPUs
    scored_on.clear()
    alone.pending = 1  # another request in flight
    anyio.run(alone.run, forest.predict_positive, big)
    assert len(scored_on) == 1 and not scored_on[0].startswith("forest-rows")
    scored_on.clear()
    anyio.run(Scorer(threads=2, max_queue=4, workers=2).run, forest.predict_positive, big)
    assert len(scored_on) == 1  # two worker processes: each one's share is one CPU
    scored_on.clear()
    busy = Scorer(threads=2, max_queue=4, row_threads=2)
    busy.pending = 1
    anyio.run(busy.run, forest.predict_positive, big)
    assert len(scored_on) == 2  # an explicit setting (CHURN_ROW_THREADS) splits the rows whatever else runs
    scored_on.clear()
    forest.predict_positive(big, threads=2)  # batch's own choice is untouched
    assert len(scored_on) == 2
