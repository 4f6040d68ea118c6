"""Cron handling and the local scheduler's policies (overlap, missed runs, persistence)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from churn.schedules import LocalScheduler, ScheduleError, ScheduleStore, to_aws_cron, validate_cron

T0 = datetime(2026, 1, 5, 2, 59, 30, tzinfo=UTC)  # a Monday


@pytest.mark.parametrize(
    "cron, aws",
    [
        ("0 3 * * *", "0 3 * * ? *"),
        ("*/15 * * * 1-5", "*/15 * ? * 2-6 *"),
        ("30 2 * * 0", "30 2 ? * 1 *"),
        ("0 6 * * 5-7", "0 6 ? * 6-7,1 *"),
        ("0 0 1 * *", "0 0 1 * ? *"),
    ],
)
def test_standard_cron_converts_to_aws_six_fields(cron, aws):
    assert to_aws_cron(cron) == aws


@pytest.mark.parametrize(
    "cron, message",
    [
        ("0 3 * *", "has 4 fields; use the standard 5"),
        ("0 3 * * ? *", "has 6 fields"),
        ("61 3 * * *", "is not valid"),
    ],
)
def test_bad_cron_is_refused_clearly(cron, message):
    with pytest.raises(ScheduleError, match=message):
        validate_cron(cron)


def test_aws_cannot_restrict_both_days():
    with pytest.raises(ScheduleError, match="restricts both day-of-month and day-of-week"):
        to_aws_cron("0 3 1 * 1")


class FakeRun:
    def __init__(self):
        self.returncode = None

    def poll(self):
        return self.returncode


def test_fires_on_time_never_overlaps_and_coalesces_missed_runs(tmp_path):
    store = ScheduleStore(tmp_path)
    store.add("nightly", "0 3 * * *", ["true"], now=T0)
    runs, messages = [], []
    scheduler = LocalScheduler(store, lambda s: runs.append(FakeRun()) or runs[-1], messages.append)
    assert scheduler.tick(T0 + timedelta(seconds=20)) == []  # 02:59:50: not yet
    assert scheduler.tick(T0 + timedelta(seconds=31)) == ["nightly"]  # 03:00:01
    assert scheduler.tick(T0 + timedelta(minutes=5)) == []  # fired once only
    # next night, the first run still going: skipped, not overlapped
    assert scheduler.tick(T0 + timedelta(days=1, seconds=31)) == []
    assert len(runs) == 1 and "still going; skipped" in messages[-1]
    runs[0].returncode = 0
    scheduler.tick(T0 + timedelta(days=1, minutes=1))
    assert store.get("nightly").last_status == "succeeded"
    # scheduler down for three nights: one catch-up run, not three
    restarted = LocalScheduler(ScheduleStore(tmp_path), lambda s: runs.append(FakeRun()) or runs[-1], messages.append)
    assert restarted.tick(T0 + timedelta(days=4, hours=5)) == ["nightly"]
    assert restarted.tick(T0 + timedelta(days=4, hours=6)) == []
    assert len(runs) == 2 and "catch-up" in messages[-1]


def test_schedule_names_and_duplicates(tmp_path):
    store = ScheduleStore(tmp_path)
    store.add("a", "* * * * *", ["true"])
    with pytest.raises(ScheduleError, match="already exists"):
        store.add("a", "* * * * *", ["true"])
    with pytest.raises(ScheduleError, match="schedule .bad name!. is not a valid name"):
        store.add("bad name!", "* * * * *", ["true"])
    assert [s.name for s in store.list()] == ["a"] and store.delete("a") and not store.delete("a")


def test_scheduler_process_runs_a_missed_schedule_once_and_survives_restart(tmp_path):
    """The real daemon (a process we start and stop by pid) on a schedule that is already due."""
    marker = tmp_path / "runs.txt"
    store = ScheduleStore(tmp_path / "schedules")
    store.add(
        "every-minute",
        "* * * * *",
        [sys.executable, "-c", f"open({str(marker)!r}, 'a').write('run\\n')"],
        now=datetime.now(UTC) - timedelta(minutes=10),
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}

    def start():
        return subprocess.Popen(
            [sys.executable, "-m", "churn.schedules", "--root", str(tmp_path), "--poll-seconds", "0.2"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    daemon = start()
    try:
        deadline = time.monotonic() + 30
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1.0)
        assert marker.read_text() == "run\n"  # ten missed minutes -> one catch-up run
        second = start()  # a second scheduler for the same root refuses to run
        assert second.wait(30) != 0
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        daemon.wait(10)
    reloaded = ScheduleStore(tmp_path / "schedules").get("every-minute")
    assert reloaded.last_fire is not None and reloaded.cron == "* * * * *"


def test_one_bad_schedule_is_reported_and_the_others_still_run(tmp_path):
    store = ScheduleStore(tmp_path)
    store.add("good", "* * * * *", ["true"], now=T0)
    store.add("unlaunchable", "* * * * *", ["/no/such/program"], now=T0)
    (tmp_path / "broken.json").write_text("{not json")
    messages, runs = [], []

    def launch(schedule):
        if schedule.command[0].startswith("/no/"):
            raise FileNotFoundError(schedule.command[0])
        runs.append(FakeRun())
        return runs[-1]

    scheduler = LocalScheduler(store, launch, messages.append)
    assert scheduler.tick(T0 + timedelta(minutes=2)) == ["good"]
    assert any("broken.json" in m and "cannot be used" in m for m in messages)
    assert any("schedule unlaunchable: not run: FileNotFoundError" in m for m in messages)
    assert store.get("unlaunchable").last_status.startswith("failed to start")
    reported = len(messages)
    runs[0].returncode = 0
    scheduler.tick(T0 + timedelta(minutes=4))  # keeps going; the broken file is not re-reported every tick
    assert len(runs) == 2 and not any("broken.json" in m for m in messages[reported:])


def test_a_dead_scheduler_is_revived_when_schedules_exist_unless_stopped_on_purpose():
    from stacks.scheduling import (
        STOPPED_MARKER,
        local_root,
        local_scheduler_pid,
        local_store,
        revive_local_scheduler,
        stop_local_scheduler,
    )

    stop_local_scheduler()  # earlier tests of this session may have left one running, or stopped on purpose
    (local_root() / STOPPED_MARKER).unlink(missing_ok=True)  # now: dead, not stopped on purpose
    local_store().add("revive-me", "0 3 * * *", ["true"])
    try:
        assert local_scheduler_pid() is None
        message = revive_local_scheduler()
        assert message and "restarted it" in message and local_scheduler_pid() is not None
        assert revive_local_scheduler() is None  # already running
        assert stop_local_scheduler() and local_scheduler_pid() is None
        assert revive_local_scheduler() is None  # stopped on purpose stays stopped
    finally:
        stop_local_scheduler()
        local_store().delete("revive-me")
