"""Concurrent writers and killed writers, with real processes: the feature store and the endpoint server lock."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from churn import names
from churn.feature_query import FeatureQuery
from churn.ingest import IngestError
from churn.offline_store import LocalOfflineStore
from churn.processes import holder_pid

REPO = Path(__file__).resolve().parents[1]


def _first_ingest(root, kind, barrier, results):
    frame = pd.DataFrame(
        {"customer_id": range(1, 2001), "x": [1.5 if kind == "float" else "text"] * 2000, "churn": [0, 1] * 1000}
    )
    barrier.wait()
    try:
        LocalOfflineStore(root).ingest("g", frame, "churn")
        results.put((kind, "ok"))
    except IngestError as error:
        results.put((kind, str(error)))


def test_two_first_ingests_with_different_schemas_one_wins_the_other_is_told(tmp_path):
    context = multiprocessing.get_context("fork")
    barrier, results = context.Barrier(2), context.Queue()
    workers = [
        context.Process(target=_first_ingest, args=(tmp_path, kind, barrier, results)) for kind in ("float", "text")
    ]
    for worker in workers:
        worker.start()
    outcome = dict(results.get(timeout=120) for _ in workers)
    for worker in workers:
        worker.join(30)
    winners = [kind for kind, message in outcome.items() if message == "ok"]
    assert len(winners) == 1, outcome
    loser = "text" if winners == ["float"] else "float"
    assert "schema conflicts with feature group 'g': column 'x' is" in outcome[loser]
    stored = LocalOfflineStore(tmp_path).describe("g")["FeatureDefinitions"]["x"]
    assert stored == ("Fractional" if winners == ["float"] else "String")
    frame, _ = LocalOfflineStore(tmp_path).read_latest(FeatureQuery("g", 1, 2000))
    assert len(frame) == 2000  # only the winner's records


_BIG_INGEST = """
import sys, pandas as pd
from churn.offline_store import LocalOfflineStore
n = 900_000
frame = pd.DataFrame({"customer_id": range(1, n + 1), "x": [float(i) for i in range(n)],
                      "note": ["a long text value to make the parquet file slow to write " * 4] * n,
                      "churn": [i % 2 for i in range(n)]})
LocalOfflineStore(sys.argv[1]).ingest("g", frame, "churn")
"""


def test_kill_9_during_an_ingest_leaves_the_store_reading_as_before(tmp_path):
    store = LocalOfflineStore(tmp_path)
    store.ingest(
        "g", pd.DataFrame({"customer_id": [1, 2], "x": [1.0, 2.0], "note": ["a", "b"], "churn": [0, 1]}), "churn"
    )
    before, _ = store.read_latest(FeatureQuery("g", 1, 999_999))
    writer = subprocess.Popen(
        [sys.executable, "-c", _BIG_INGEST, str(tmp_path)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 240
        while not list(tmp_path.glob("g/data/**/.*.tmp")):
            assert writer.poll() is None, "the ingest finished before it could be killed mid-write"
            assert time.monotonic() < deadline
            time.sleep(0.005)
        os.killpg(writer.pid, signal.SIGKILL)
    finally:
        writer.wait(30)
    assert writer.returncode == -signal.SIGKILL
    after, _ = store.read_latest(FeatureQuery("g", 1, 999_999))
    pd.testing.assert_frame_equal(before, after)
    # the group's lock died with the writer: the next ingest goes through
    store.ingest("g", pd.DataFrame({"customer_id": [3], "x": [3.0], "note": ["c"], "churn": [1]}), "churn")
    assert len(store.read_latest(FeatureQuery("g", 1, 999_999))[0]) == 3


def test_names_that_could_escape_or_break_sql_are_refused_and_odd_roots_still_read(tmp_path):
    store = LocalOfflineStore(tmp_path / "it's here")
    with pytest.raises(names.InvalidName, match=r"feature group '\.\./\.\./x' is not a valid name"):
        store.ingest("../../x", pd.DataFrame({"customer_id": [1], "churn": [0]}), "churn")
    with pytest.raises(names.InvalidName, match="feature group 'a\"b'"):
        store.describe('a"b')
    assert not (tmp_path / "x").exists()
    store.ingest("g", pd.DataFrame({"customer_id": [1], "x": [1.0], "churn": [0]}), "churn")  # a quote in the root path
    assert store.read_latest(FeatureQuery("g", 1, 1))[0]["x"].tolist() == [1.0]


def test_one_server_per_endpoint_and_liveness_by_its_held_lock(tmp_path):
    from tests.conftest import ServerProcess

    first = ServerProcess(tmp_path)
    try:
        deadline = time.monotonic() + 60
        while holder_pid(tmp_path / "server.lock") != first.process.pid:
            assert first.process.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        second = ServerProcess(tmp_path)
        assert second.process.wait(60) != 0  # a second server for the same endpoint refuses to start
        second.stop()
        assert "another server holds" in (tmp_path / "test-server.log").read_text()
        assert holder_pid(tmp_path / "server.lock") == first.process.pid
    finally:
        first.stop()
    assert holder_pid(tmp_path / "server.lock") is None  # dead server: no live holder, whatever the file says
